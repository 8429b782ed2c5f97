//! UDP transport: one reader task per socket; sends happen on the core task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::Event;
use super::inbox::Inbox;
use super::overload::{Shed, Stage};
use crate::sip::fast::{self, Peek};
use crate::sip::{ListenerId, Target, parse_datagram};

/// Socket buffers for SIP over UDP. The default (about 200 KiB) overflows in the bursts a
/// busy trunk sends (a timer sweep, a reconnecting PBX); the kernel caps this at
/// net.core.rmem_max / wmem_max.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Datagrams a full socket buffer made wait, at most: past it one is dropped (SIP over UDP
/// retransmits), so a peer that cannot keep up, or a flood of answers, cannot grow tasks.
const MAX_DEFERRED: usize = 4096;

/// How long `[sip] advertise` is not asked for after the kernel refused to send from it.
const ADVERTISE_RETRY_MS: u64 = 10_000;

/// The UDP listeners, for sending, in `[sip] listen` order ([`ListenerId`] is the index):
/// each with its bound address, so that a datagram leaves from one of its address family
/// without a syscall to ask.
pub(super) struct Out {
    /// Each with whether it also serves IPv4 (a dual-stack `[::]` listener).
    socks: Vec<(Arc<UdpSocket>, SocketAddr, bool)>,
    /// What a request we start leaves from on a wildcard listener: `[sip] advertise`, when
    /// that is an IP address ([`local`]).
    advertise: Option<std::net::IpAddr>,
    /// Until when (ms after `born`) `advertise` is not asked for: the kernel refused it (a
    /// floating address on the other host), and each refusal costs a system call.
    advertise_off_until: std::sync::atomic::AtomicU64,
    born: Instant,
    /// Sends waiting for room in a socket buffer (each a task).
    deferred: Arc<Slots>,
    /// Where failed sends are counted for the shell's periodic summary.
    tally: Arc<super::inbox::Tally>,
}

/// A bounded number of things under way; each holds a [`Slot`] until it is done.
#[derive(Debug)]
struct Slots {
    used: AtomicUsize,
    max: usize,
}

impl Slots {
    fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// A slot, or None when all are taken.
    fn take(self: &Arc<Self>) -> Option<Slot> {
        if self.used.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.used.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(self.clone()))
    }
}

/// Given back when dropped (also when its task is cancelled).
struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Out {
    pub(super) fn new(socks: Vec<(Arc<UdpSocket>, SocketAddr)>) -> Out {
        let socks = socks
            .into_iter()
            .map(|(s, local)| {
                let dual = super::bind::is_v6_wildcard(local)
                    && socket2::SockRef::from(&*s).only_v6().is_ok_and(|v6| !v6);
                (s, local, dual)
            })
            .collect();
        Out {
            socks,
            advertise: None,
            advertise_off_until: std::sync::atomic::AtomicU64::new(0),
            born: Instant::now(),
            deferred: Slots::new(MAX_DEFERRED),
            tally: Arc::default(),
        }
    }

    /// Failed sends counted in `tally`, the edge's (the shell sums it up every 10 s).
    pub(super) fn counting(mut self, tally: Arc<super::inbox::Tally>) -> Out {
        self.tally = tally;
        self
    }

    /// Requests we start on a wildcard listener leave from `advertise` (when this host has
    /// it: else from what the kernel picks, as without).
    pub(super) fn advertising(mut self, advertise: Option<std::net::IpAddr>) -> Out {
        self.advertise = advertise.map(|ip| ip.to_canonical());
        self
    }

    /// Send toward `target.addr`: by the listener it names (a reply leaves where its request
    /// came in, a dual-stack `[::]` one for an IPv4 peer too), else by the first listener of
    /// the address family, else the first that serves it. On a wildcard listener, from the
    /// address the peer's datagram came to, else from `advertise` ([`local`]).
    pub(super) fn send(&self, target: Target, bytes: Bytes) {
        let to = target.addr;
        let same_family = |local: &SocketAddr| local.is_ipv4() == to.is_ipv4();
        let serves = |(_, local, dual): &&(Arc<UdpSocket>, SocketAddr, bool)| {
            same_family(local) || (*dual && to.is_ipv4())
        };
        let (index, came_to) = target.listener.map_or((None, None), |id| {
            let (i, ip) = local::split(id);
            (Some(i), ip)
        });
        let named = index.and_then(|i| self.socks.get(i)).filter(serves);
        let Some((sock, bound)) = named
            .or_else(|| self.socks.iter().find(|(_, local, _)| same_family(local)))
            .or_else(|| self.socks.iter().find(serves))
            .or(self.socks.first())
            .map(|(s, local, _)| (s, local))
        else {
            warn!(%to, "no UDP listener to send from");
            return;
        };
        // Only a wildcard listener picks a source, and only a request we start reads the
        // clock (whether `advertise` is asked for again): a bound listener's send is as it was.
        let now_ms = || self.born.elapsed().as_millis() as u64;
        let from = if bound.ip().is_unspecified() {
            came_to.or_else(|| {
                (self.advertise)
                    .filter(|_| now_ms() >= self.advertise_off_until.load(Ordering::Relaxed))
            })
        } else {
            None
        };
        let from = from.filter(|ip| ip.is_ipv4() == to.ip().to_canonical().is_ipv4());
        let (sent, refused) = local::try_send(sock, &bytes, to, from);
        if refused && came_to.is_none() {
            // Asked again in a while: a floating address may come to this host.
            (self.advertise_off_until).store(now_ms() + ADVERTISE_RETRY_MS, Ordering::Relaxed);
        }
        match sent {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let Some(slot) = self.deferred.take() else {
                    crate::ops::metrics::udp_send_dropped().increment(1);
                    return;
                };
                let sock = sock.clone();
                let tally = self.tally.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = local::send(&sock, &bytes, to, from).await {
                        debug!(%to, error = %e, "UDP send failed");
                        tally.count_send_failed();
                    }
                });
            }
            // ICMP errors from earlier sends surface here; UDP has no delivery to report.
            // Counted and summed up in the log every 10 s, never a line per datagram.
            Err(e) => {
                debug!(%to, error = %e, "UDP send failed");
                self.tally.count_send_failed();
            }
        }
    }
}

/// Bind a non-blocking UDP socket with large buffers.
pub(super) fn bind(
    addr: std::net::SocketAddr,
    stack: super::bind::Stack,
) -> std::io::Result<UdpSocket> {
    use socket2::{Protocol, Type};
    let sock = super::bind::socket(addr, Type::DGRAM, Protocol::UDP, stack)?;
    if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER) {
        warn!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    if let Err(e) = sock.set_send_buffer_size(SOCKET_BUFFER) {
        warn!(error = %e, "cannot enlarge the UDP send buffer");
    }
    // The kernel stamps each datagram as it arrives: the queue delay overload control
    // watches then includes the time spent in the socket buffer, where a saturated process
    // keeps most of its backlog.
    if let Err(e) =
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
    {
        warn!(error = %e, "no receive timestamps: overload control sees only the internal queue");
    }
    // Each datagram's destination, on IPv6: a real IPv4 packet on a dual-stack socket came
    // to a mapped address, an IPv6 one posing as IPv4 did not (`bind::mapped_impostor`).
    if addr.is_ipv6()
        && let Err(e) = nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::Ipv6RecvPacketInfo,
            &true,
        )
    {
        warn!(error = %e, "no IPv6 packet info: IPv6 packets posing as IPv4 are told apart only on a native IPv6 address");
    }
    // Each datagram's destination on an IPv4 wildcard, to answer from it (`local`).
    if addr.is_ipv4()
        && addr.ip().is_unspecified()
        && let Err(e) =
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
    {
        warn!(error = %e, "no IPv4 packet info: answers on 0.0.0.0 leave from the address the kernel picks");
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// Receive, check the source, parse, hand to the core. Nothing here logs per datagram:
/// what is dropped is counted (metrics, and the shell's periodic summary).
pub(super) async fn reader(sock: Arc<UdpSocket>, id: ListenerId, max: usize, inbox: Inbox) {
    let mut buf = vec![0u8; 65_536];
    let local = sock
        .local_addr()
        .map_or(std::net::Ipv6Addr::UNSPECIFIED.into(), |a| a.ip());
    let wildcard = local.is_unspecified();
    let mut empty_at = Instant::now();
    loop {
        let (n, src, at, dst) = match recv_stamped(&sock, &mut buf, &mut empty_at).await {
            Ok(x) => x,
            Err(e) => {
                // Linux reports ICMP port-unreachable for earlier sends here; keep serving.
                debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let dst_mapped = dst.map(super::bind::is_mapped);
        if super::bind::mapped_impostor(src.ip(), local, dst_mapped) {
            crate::ops::metrics::refused("mapped_source");
            continue;
        }
        // An IPv4 peer heard on a dual-stack socket (`[::]`) is `::ffff:a.b.c.d`: taken as
        // its IPv4 address from here on, so every comparison (profiles, transactions,
        // dialogs, latching) sees one spelling; Linux sends to it from that socket as is.
        let src = SocketAddr::new(src.ip().to_canonical(), src.port());
        let data = &buf[..n];
        // RFC 5626 keepalives (CRLF) and stray empty datagrams.
        if data
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
        {
            continue;
        }
        if !inbox.admit(src.ip(), at, false) {
            continue;
        }
        if n > max {
            inbox.count_oversize();
            continue;
        }
        // A stranger costs a look at its first bytes: most of what it sends is dropped
        // here, and what the core may answer goes behind accepted work.
        let stranger = if data.starts_with(b"SIP/2.0 ") {
            !inbox.answers_from_peer(src.ip())
        } else {
            !inbox.knows_source(src.ip())
        };
        if stranger && !inbox.hears_stranger(src.ip(), data, at) {
            continue;
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
        let (screened, remember) = match shed_early(&sock, (listener, from), &inbox, data, src, at)
        {
            Early::Done => continue,
            Early::Other => (false, None),
            // A stranger's INVITE (let in for its one 403) is not kept among the INVITEs
            // let in: spoofed strangers would push peers' out, and a peer's retransmission
            // would get a fast 503 while the core goes on with its call.
            Early::Screened { remember } => (true, remember.filter(|_| !stranger)),
        };
        let source = Target::udp_on(src, id);
        // A message lives until its transaction has taken what it keeps (the call copies
        // its own facts out): its buffer and parsed form are short-lived (src/zone.rs).
        let parsed = crate::zone::short_lived(|| parse_datagram(Bytes::copy_from_slice(data), max));
        match parsed {
            Ok(msg) => {
                let delivered = deliver(Event::Message {
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
                // The core decides: a known peer may get a 400, a stranger gets nothing.
                inbox.count_unparseable();
                let _ = deliver(Event::Unparseable {
                    raw: Bytes::copy_from_slice(data),
                    why: e.why(),
                    source,
                });
            }
        }
    }
}

/// What the reader does with a datagram after [`shed_early`].
#[derive(Debug, PartialEq, Eq)]
enum Early {
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
fn shed_early(
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
            match ov.refused_here(key) {
                // A retransmission of an INVITE the core has: it answers from its
                // transaction.
                Some(false) => return Early::Screened { remember: None },
                // Of one refused here: the same 503 again.
                Some(true) => return refuse(true),
                None => {}
            }
            let now = Instant::now();
            let waited = now.saturating_duration_since(at);
            match ov.decide(now, (waited, Stage::Reader(listener)), false) {
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
fn kernel_wait(
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
async fn recv_stamped(
    sock: &UdpSocket,
    buf: &mut [u8],
    empty_at: &mut Instant,
) -> std::io::Result<(usize, SocketAddr, Instant, Option<IpAddr>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    loop {
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

mod local;
#[cfg(test)]
mod tests;
