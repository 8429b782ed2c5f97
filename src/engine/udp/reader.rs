//! The UDP reader: one task per socket, receiving, checking the source, shedding new
//! INVITEs under overload before they are parsed, parsing, and handing to the core.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{debug, error};

use super::super::Event;
use super::super::inbox::Inbox;
use super::super::overload::{Shed, Stage};
use super::local;
use crate::sip::fast::{self, Peek};
use crate::sip::{ListenerId, Target, parse_datagram};

/// Receive, check the source, parse, hand to the core. Nothing here logs per datagram:
/// what is dropped is counted (metrics, and the shell's periodic summary).
pub(in crate::engine) async fn reader(
    sock: Arc<UdpSocket>,
    id: ListenerId,
    max: usize,
    inbox: Inbox,
) {
    let mut buf = vec![0u8; 65_536];
    let local = sock
        .local_addr()
        .map_or(std::net::Ipv6Addr::UNSPECIFIED.into(), |a| a.ip());
    let wildcard = local.is_unspecified();
    let mut empty_at = Instant::now();
    let mut panics = 0u64;
    let mut errors = super::super::read_errors::ReadErrors::default();
    loop {
        let (n, src, at, dst) = match recv_stamped(&sock, &mut buf, &mut empty_at).await {
            Ok(x) => x,
            Err(e) => {
                // Linux reports ICMP port-unreachable for earlier sends here; keep serving.
                debug!(error = %e, "UDP receive error");
                errors.pause_after(&e, "sip").await;
                continue;
            }
        };
        errors.ok();
        let got = Got {
            data: &buf[..n],
            src,
            at,
            dst,
        };
        let here = Here {
            sock: &sock,
            id,
            max,
            inbox: &inbox,
            local,
            wildcard,
        };
        // A panic in what one datagram set off (a parser's, ours) drops that datagram and
        // no more: the socket is read on. Unwound out of the task, it would have left the
        // listener deaf while its socket still sent, every answer to us unread.
        let handled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_datagram(&here, &got)));
        if handled.is_err() {
            panics += 1;
            crate::ops::metrics::refused("panicked");
            if panics.is_power_of_two() {
                error!(%src, panics, "handling a datagram panicked: it was dropped, the listener reads on");
            }
        }
    }
}

/// Where a datagram came in: the reader's socket and what it knows of it.
struct Here<'a> {
    sock: &'a UdpSocket,
    id: ListenerId,
    max: usize,
    inbox: &'a Inbox,
    local: IpAddr,
    wildcard: bool,
}

/// One datagram received.
struct Got<'a> {
    data: &'a [u8],
    src: SocketAddr,
    at: Instant,
    dst: Option<IpAddr>,
}

/// Check, shed, parse and hand on one datagram.
fn on_datagram(here: &Here<'_>, got: &Got<'_>) {
    let Here {
        sock,
        id,
        max,
        inbox,
        local,
        wildcard,
    } = *here;
    let Got { data, src, at, dst } = *got;
    // A fault for the test that a panic here costs one datagram, not the listener.
    #[cfg(test)]
    if data.starts_with(b"PANIC-TEST") {
        panic!("a test fault");
    }
    let dst_mapped = dst.map(super::super::bind::is_mapped);
    if super::super::bind::mapped_impostor(src.ip(), local, dst_mapped) {
        crate::ops::metrics::refused("mapped_source");
        return;
    }
    // An IPv4 peer heard on a dual-stack socket (`[::]`) is `::ffff:a.b.c.d`: taken as
    // its IPv4 address from here on, so every comparison (profiles, transactions,
    // dialogs, latching) sees one spelling; Linux sends to it from that socket as is.
    let src = SocketAddr::new(src.ip().to_canonical(), src.port());
    // RFC 5626 keepalives (CRLF) and stray empty datagrams.
    if data
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
    {
        return;
    }
    if !inbox.admit_datagram(src.ip(), at, data) {
        return;
    }
    if data.len() > max {
        inbox.count_oversize();
        return;
    }
    // A stranger costs a look at its first bytes: most of what it sends is dropped
    // here; a request the core may answer waits behind new work, a response carrying our
    // branch goes with accepted work (`try_deliver_stranger`). A peer's `address`
    // outside its `match` is no stranger: its responses, and the requests in its calls
    // (the core tells those from the rest), are that peer's.
    let stranger = !inbox.answers_from_peer(src.ip());
    if stranger && !inbox.hears_stranger(src.ip(), data, at) {
        return;
    }
    let deliver = |ev: Event| {
        if stranger {
            inbox.try_deliver_stranger(ev)
        } else {
            inbox.try_deliver(ev)
        }
    };
    // On a wildcard listener the id names the address it came to: what goes back to
    // this peer leaves from there.
    let id = if wildcard {
        local::arrived_on(id, dst)
    } else {
        id
    };
    let (listener, from) = local::split(id);
    // A stranger's INVITE (let in for its one 403) is no measure of load and gets its 403
    // whatever the load, here as in the core: not put to overload control, whose turns to
    // refuse it would spend for nothing (nor kept among the INVITEs let in: spoofed
    // strangers would push peers' out, and a peer's retransmission would get a fast 503
    // while the core goes on with its call).
    let early = if stranger {
        Early::Other
    } else {
        shed_early(sock, (listener, from), inbox, data, src, at)
    };
    let (screened, remember) = match early {
        Early::Done => return,
        Early::Other => (false, None),
        Early::Screened { remember } => (true, remember),
    };
    let source = Target::udp_on(src, id);
    // A message lives until its transaction has taken what it keeps (the call copies
    // its own facts out): its buffer and parsed form are short-lived (src/zone.rs).
    let (wire, parsed) = crate::zone::short_lived(|| {
        let wire = Bytes::copy_from_slice(data);
        (wire.clone(), parse_datagram(wire, max))
    });
    match parsed {
        Ok(msg) => {
            let delivered = deliver(Event::Message {
                held: msg.held_size(data.len()),
                msg,
                source,
                at,
                screened,
            });
            // Only an INVITE the core will see is one whose retransmissions it absorbs.
            if let (true, Some(key)) = (delivered, remember) {
                inbox.overload.remember(key, Instant::now());
            }
        }
        Err(e) => {
            // The core decides: a known peer may get a 400, a stranger gets nothing. While
            // overload control sheds, junk is dropped here, before it takes room.
            inbox.count_unparseable();
            // A stranger is never answered what it could not say (`on_unparseable`): it
            // would only take a place among the strangers' requests.
            if stranger {
                crate::ops::metrics::refused("unparseable");
                return;
            }
            if inbox.drops_unparseable(false) {
                return;
            }
            let _ = deliver(Event::Unparseable {
                raw: wire,
                why: e.why(),
                status: crate::sip::Unreadable::Malformed,
                source,
            });
        }
    }
}

/// What the reader does with a datagram after [`shed_early`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Early {
    /// Refused or dropped here: done with.
    Done,
    /// Not a new INVITE: parse it and hand it on.
    Other,
    /// A new INVITE let in (or a retransmission of one): parse it and hand it on as
    /// screened; remember `remember` once it is delivered.
    Screened { remember: Option<u64> },
}

/// Overload control before parsing: a new INVITE is refused (one stateless 503) or dropped
/// here when overload control says so, and the ACK of such a 503 is dropped.
pub(super) fn shed_early(
    sock: &UdpSocket,
    (listener, from): (usize, Option<IpAddr>),
    inbox: &Inbox,
    data: &[u8],
    src: SocketAddr,
    at: Instant,
) -> Early {
    let ov = &inbox.overload;
    match fast::peek(data) {
        Peek::Ack { to_tag } if to_tag == ov.tag.as_bytes() => Early::Done,
        Peek::NewInvite { head, branch } => {
            let key = ov.invite_key(src.ip(), branch, &head);
            let refuse = |again: bool| {
                // Strangers learn nothing, not even that we are busy.
                if inbox.knows_source(src.ip()) {
                    if let Some(reply) = fast::refuse(
                        &head,
                        data.len(),
                        &ov.tag,
                        crate::call::OVERLOAD_RETRY_AFTER_S,
                    ) {
                        let _ = local::try_send(sock, &reply, src, from);
                    }
                    if !again {
                        ov.remember_refused(key, Instant::now());
                        inbox.tally.count_refused();
                        crate::ops::metrics::refused("overload");
                    }
                } else {
                    crate::ops::metrics::refused("unknown_source");
                }
                Early::Done
            };
            // (Read now, not at `at`: a retransmission may have sat in the socket
            // behind its INVITE, received before that was remembered.)
            match ov.refused_here(key, Instant::now()) {
                // A retransmission of an INVITE the core has: it answers from its
                // transaction.
                Some(false) => return Early::Screened { remember: None },
                // Of one refused here: the same 503 again.
                Some(true) => return refuse(true),
                None => {}
            }
            let now = Instant::now();
            let waited = now.saturating_duration_since(at);
            let from = (false, inbox.fair_slot(src.ip()));
            match ov.decide(now, (waited, Stage::Reader(listener)), from) {
                Shed::Admit => Early::Screened {
                    remember: Some(key),
                },
                Shed::Refuse => refuse(false),
                Shed::Drop => {
                    inbox.tally.count_dropped();
                    crate::ops::metrics::refused("overload_drop");
                    Early::Done
                }
            }
        }
        _ => Early::Other,
    }
}

/// The longest a datagram is believed to have waited in the socket buffer.
const MAX_KERNEL_WAIT: Duration = Duration::from_secs(10);

/// How long a datagram stamped `stamp` (wall clock) waited, read at `now` (`wall`), when
/// the socket was last found empty at `empty_at`. It came after that, so it cannot have
/// waited longer: a wall clock stepped forward (NTP, a VM resumed) must not make what sat
/// in the buffer across the step look old enough to be shed.
pub(super) fn kernel_wait(
    stamp: Option<SystemTime>,
    wall: SystemTime,
    now: Instant,
    empty_at: Instant,
) -> Duration {
    stamp
        .and_then(|t| wall.duration_since(t).ok())
        .unwrap_or_default()
        .min(now.saturating_duration_since(empty_at))
        .min(MAX_KERNEL_WAIT)
}

/// Receive one datagram with the instant the kernel received it (now, when the kernel gave
/// no stamp) and, where the socket asks for it, the address it came to (on IPv6 an IPv4
/// packet's is IPv4-mapped). `empty_at`: when the socket was last found empty (updated).
pub(in crate::engine) async fn recv_stamped(
    sock: &UdpSocket,
    buf: &mut [u8],
    empty_at: &mut Instant,
) -> std::io::Result<(usize, SocketAddr, Instant, Option<IpAddr>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    loop {
        // A datagram counts against the task's share of the thread (tokio's budget): the
        // readiness and `try_io` below take none, so a socket a flood keeps full was read
        // for ever without a yield, and on the gateway's one thread the core, its timers
        // and every connection stopped. The excess waits in the socket's buffer, where the
        // kernel's stamps show overload control how long.
        tokio::task::consume_budget().await;
        sock.readable().await?;
        let got = sock.try_io(Interest::READABLE, || {
            let mut cmsg = nix::cmsg_space!(
                nix::sys::time::TimeSpec,
                libc::in6_pktinfo,
                libc::in_pktinfo
            );
            let mut iov = [std::io::IoSliceMut::new(buf)];
            let msg = recvmsg::<SockaddrStorage>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            )
            .map_err(std::io::Error::from)?;
            let src = msg.address.as_ref().and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::from(*v4))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
            });
            let (mut stamp, mut dst) = (None, None);
            for c in msg.cmsgs().into_iter().flatten() {
                match c {
                    ControlMessageOwned::ScmTimestampns(ts) => {
                        stamp = Some(
                            SystemTime::UNIX_EPOCH
                                + Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec() as u32),
                        )
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        dst = Some(IpAddr::V6(info.ipi6_addr.s6_addr.into()));
                    }
                    // The local address a reply goes from (for a broadcast, the interface's),
                    // not the header's destination.
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        dst = Some(IpAddr::V4(u32::from_be(info.ipi_spec_dst.s_addr).into()));
                    }
                    _ => {}
                }
            }
            Ok((msg.bytes, src, stamp, dst))
        });
        match got {
            Ok((n, Some(src), stamp, dst)) => {
                let now = Instant::now();
                let waited = kernel_wait(stamp, SystemTime::now(), now, *empty_at);
                return Ok((n, src, now.checked_sub(waited).unwrap_or(now), dst));
            }
            // A datagram without an IP source address cannot come over an IP socket.
            Ok((_, None, _, _)) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                *empty_at = Instant::now();
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}
