//! UDP transport: one reader task per socket; sends happen on the core task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::Event;
use super::inbox::Inbox;
use super::overload::Shed;
use crate::sip::fast::{self, Peek};
use crate::sip::{ListenerId, Target, parse_datagram};

/// Socket buffers for SIP over UDP. The default (about 200 KiB) overflows in the bursts a
/// busy trunk sends (a timer sweep, a reconnecting PBX); the kernel caps this at
/// net.core.rmem_max / wmem_max.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Datagrams a full socket buffer made wait, at most: past it one is dropped (SIP over UDP
/// retransmits), so a peer that cannot keep up, or a flood of answers, cannot grow tasks.
const MAX_DEFERRED: usize = 4096;

/// The UDP listeners, for sending, in `[sip] listen` order ([`ListenerId`] is the index):
/// each with its bound address, so that a datagram leaves from one of its address family
/// without a syscall to ask.
pub(super) struct Out {
    socks: Vec<(Arc<UdpSocket>, SocketAddr)>,
    /// Sends waiting for room in a socket buffer (each a task).
    deferred: Arc<Slots>,
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
        Out {
            socks,
            deferred: Slots::new(MAX_DEFERRED),
        }
    }

    /// Send toward `target.addr`: by the listener it names (a reply leaves where its request
    /// came in), else by the first listener of the address family.
    pub(super) fn send(&self, target: Target, bytes: Bytes) {
        let to = target.addr;
        let named = target
            .listener
            .and_then(|ListenerId(i)| self.socks.get(usize::from(i)))
            .filter(|(_, local)| local.is_ipv4() == to.is_ipv4());
        let Some(sock) = named
            .or_else(|| {
                self.socks
                    .iter()
                    .find(|(_, local)| local.is_ipv4() == to.is_ipv4())
            })
            .or(self.socks.first())
            .map(|(s, _)| s)
        else {
            warn!(%to, "no UDP listener to send from");
            return;
        };
        match sock.try_send_to(&bytes, to) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let Some(slot) = self.deferred.take() else {
                    crate::ops::metrics::udp_send_dropped().increment(1);
                    return;
                };
                let sock = sock.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = sock.send_to(&bytes, to).await {
                        warn!(%to, error = %e, "UDP send failed");
                    }
                });
            }
            // ICMP errors from earlier sends surface here; UDP has no delivery to report.
            Err(e) => warn!(%to, error = %e, "UDP send failed"),
        }
    }
}

/// Bind a non-blocking UDP socket with large buffers.
pub(super) fn bind(addr: std::net::SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
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
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// Receive, check the source, parse, hand to the core. Nothing here logs per datagram:
/// what is dropped is counted (metrics, and the shell's periodic summary).
pub(super) async fn reader(sock: Arc<UdpSocket>, id: ListenerId, max: usize, inbox: Inbox) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, src, at) = match recv_stamped(&sock, &mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // Linux reports ICMP port-unreachable for earlier sends here; keep serving.
                debug!(error = %e, "UDP receive error");
                continue;
            }
        };
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
        let (screened, remember) = match shed_early(&sock, &inbox, data, src, at) {
            Early::Done => continue,
            Early::Other => (false, None),
            Early::Screened { remember } => (true, remember),
        };
        let source = Target::udp_on(src, id);
        // A message lives until its transaction has taken what it keeps (the call copies
        // its own facts out): its buffer and parsed form are short-lived (src/zone.rs).
        let parsed = crate::zone::short_lived(|| parse_datagram(Bytes::copy_from_slice(data), max));
        match parsed {
            Ok(msg) => {
                let delivered = inbox.try_deliver(Event::Message {
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
                let why = match &e {
                    crate::sip::SipError::Parse(m) | crate::sip::SipError::TooLarge(m) => m.clone(),
                    other => other.to_string(),
                };
                let _ = inbox.try_deliver(Event::Unparseable {
                    raw: Bytes::copy_from_slice(data),
                    why,
                    source,
                });
            }
        }
    }
}

/// Seconds a refused peer is asked to wait (the same as the core's refusals).
const RETRY_AFTER_S: u32 = 5;

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
fn shed_early(sock: &UdpSocket, inbox: &Inbox, data: &[u8], src: SocketAddr, at: Instant) -> Early {
    let ov = &inbox.overload;
    match fast::peek(data) {
        Peek::Ack { to_tag } if to_tag == ov.tag.as_bytes() => Early::Done,
        Peek::NewInvite { head, branch } => {
            let key = ov.invite_key(src.ip(), branch);
            if ov.seen(key) {
                // A retransmission of an INVITE the core has: it answers from its
                // transaction.
                return Early::Screened { remember: None };
            }
            let now = Instant::now();
            match ov.decide(now, now.saturating_duration_since(at), false) {
                Shed::Admit => Early::Screened {
                    remember: Some(key),
                },
                Shed::Refuse => {
                    // Strangers learn nothing, not even that we are busy.
                    if inbox.knows_source(src.ip()) {
                        if let Some(reply) = fast::refuse(&head, data.len(), &ov.tag, RETRY_AFTER_S)
                        {
                            let _ = sock.try_send_to(&reply, src);
                        }
                        inbox.tally.count_refused();
                        crate::ops::metrics::refused("overload");
                    } else {
                        crate::ops::metrics::refused("unknown_source");
                    }
                    Early::Done
                }
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

/// The longest a datagram is believed to have waited in the socket buffer: a clock step
/// (the stamp is wall-clock time) must not make every message look ancient.
const MAX_KERNEL_WAIT: Duration = Duration::from_secs(10);

/// Receive one datagram with the instant the kernel received it (now, when the kernel gave
/// no stamp).
async fn recv_stamped(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, Instant)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    loop {
        sock.readable().await?;
        let got = sock.try_io(Interest::READABLE, || {
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
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
            let stamp = msg.cmsgs().ok().and_then(|mut it| {
                it.find_map(|c| match c {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(
                        SystemTime::UNIX_EPOCH
                            + Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec() as u32),
                    ),
                    _ => None,
                })
            });
            Ok((msg.bytes, src, stamp))
        });
        match got {
            Ok((n, Some(src), stamp)) => {
                let now = Instant::now();
                let waited = stamp
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .unwrap_or_default()
                    .min(MAX_KERNEL_WAIT);
                return Ok((n, src, now.checked_sub(waited).unwrap_or(now)));
            }
            // A datagram without an IP source address cannot come over an IP socket.
            Ok((_, None, _)) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_waiting_for_room_are_bounded_and_give_their_slot_back() {
        let slots = Slots::new(3);
        let held: Vec<Slot> = (0..3).filter_map(|_| slots.take()).collect();
        assert_eq!(held.len(), 3);
        assert!(
            slots.take().is_none(),
            "the fourth waits for no one: dropped"
        );
        drop(held);
        assert_eq!(slots.used.load(Ordering::Relaxed), 0);
        assert!(slots.take().is_some());
    }
    use crate::config::Protect;
    use std::sync::Arc;

    fn invite(branch: &str) -> String {
        format!(
            "INVITE sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch={branch}\r\n\
             From: <sip:1000@127.0.0.2>;tag=a\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: {branch}\r\n\
             CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    }

    /// An inbox whose overload control refuses every new request (a standing queue for a
    /// whole second raised the share to 1).
    fn overloaded_inbox() -> Inbox {
        let mut cfg = crate::call::tests::config();
        cfg.protect = Protect::default();
        let (inbox, queues) = Inbox::new(Arc::new(cfg), Instant::now());
        std::mem::forget(queues);
        let t0 = Instant::now();
        for i in 0..2000 {
            let now = t0 + Duration::from_millis(i);
            inbox
                .overload
                .decide(now, Duration::from_millis(200), false);
        }
        assert!(inbox.overload.share() > 0.99);
        inbox
    }

    #[tokio::test]
    async fn under_overload_a_new_invite_gets_a_503_before_parsing_and_its_ack_is_dropped() {
        let inbox = overloaded_inbox();
        let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The reader's sends are non-blocking attempts; a serving socket is known writable.
        gw.writable().await.unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let src = peer.local_addr().unwrap();
        // Past the drop threshold it would be dropped: stamp it as just received.
        let at = Instant::now();
        let inv = invite("z9hG4bKfast1");
        assert_eq!(
            shed_early(&gw, &inbox, inv.as_bytes(), src, at),
            Early::Done
        );
        let mut buf = [0u8; 2048];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            reply.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
            "{reply}"
        );
        assert!(
            reply.contains(&format!(";tag={}\r\n", inbox.overload.tag)),
            "{reply}"
        );
        assert!(reply.contains("\r\nRetry-After: 5\r\n"), "{reply}");
        // Its ACK is recognised by the tag and goes no further.
        let ack = inv
            .replace("INVITE sip:", "ACK sip:")
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            .replace(
                "To: <sip:+8610123@127.0.0.1>",
                &format!("To: <sip:+8610123@127.0.0.1>;tag={}", inbox.overload.tag),
            );
        assert_eq!(
            shed_early(&gw, &inbox, ack.as_bytes(), src, at),
            Early::Done
        );
        // Anything else goes on to the parser, unscreened.
        let bye = inv.replace("INVITE sip:", "BYE sip:");
        assert_eq!(
            shed_early(&gw, &inbox, bye.as_bytes(), src, at),
            Early::Other
        );
    }

    /// Audit L7: with two listeners, what is sent back to a peer leaves by the listener its
    /// request came in on, not by the first one.
    #[tokio::test]
    async fn a_reply_leaves_by_the_listener_its_request_came_in_on() {
        let mut cfg = crate::call::tests::config();
        cfg.protect = Protect::default();
        let (inbox, mut queues) = Inbox::new(Arc::new(cfg), Instant::now());
        let mut socks = Vec::new();
        for ip in ["127.0.0.1", "127.0.0.3"] {
            let s = Arc::new(bind(format!("{ip}:0").parse().unwrap()).unwrap());
            let local = s.local_addr().unwrap();
            let id = ListenerId(u16::try_from(socks.len()).unwrap());
            tokio::spawn(reader(s.clone(), id, 65_536, inbox.clone()));
            socks.push((s, local));
        }
        let second = socks[1].1;
        let out = Out::new(socks);
        // The peer of call::tests::config, whose requests the reader lets in.
        let peer = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        peer.send_to(invite("z9hG4bKtwo").as_bytes(), second)
            .unwrap();
        let source = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                if let Some(Event::Message { source, .. }) = queues.try_next() {
                    return source;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the INVITE reached the core");
        assert_eq!(source.listener, Some(ListenerId(1)));
        assert_eq!(source.addr, peer.local_addr().unwrap());
        let mut buf = [0u8; 64];
        out.send(source, Bytes::from_static(b"reply"));
        let (_, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(
            from, second,
            "the reply leaves by the listener the request came in on"
        );
        // A target that names no listener (a peer's configured address) leaves by the first.
        out.send(Target::udp(source.addr), Bytes::from_static(b"request"));
        let (_, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(from.ip().to_string(), "127.0.0.1");
    }

    #[tokio::test]
    async fn a_retransmission_of_an_invite_already_let_in_is_never_refused() {
        let mut cfg = crate::call::tests::config();
        cfg.protect = Protect::default();
        let (inbox, _queues) = Inbox::new(Arc::new(cfg), Instant::now());
        let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let src: SocketAddr = "127.0.0.2:5060".parse().unwrap();
        let inv = invite("z9hG4bKfast2");
        // Not overloaded: let in (screened), and remembered once delivered.
        let Early::Screened {
            remember: Some(key),
        } = shed_early(&gw, &inbox, inv.as_bytes(), src, Instant::now())
        else {
            panic!("not let in")
        };
        inbox.overload.remember(key, Instant::now());
        // Overload begins; the retransmission still goes to the core.
        let t0 = Instant::now();
        for i in 0..2000 {
            inbox.overload.decide(
                t0 + Duration::from_millis(i),
                Duration::from_millis(200),
                false,
            );
        }
        assert_eq!(
            shed_early(&gw, &inbox, inv.as_bytes(), src, Instant::now()),
            Early::Screened { remember: None }
        );
        // A stranger's new INVITE under overload: dropped without a word.
        let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
        stranger
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let s_inv = invite("z9hG4bKfast3");
        assert_eq!(
            shed_early(
                &gw,
                &inbox,
                s_inv.as_bytes(),
                stranger.local_addr().unwrap(),
                Instant::now()
            ),
            Early::Done
        );
        let mut buf = [0u8; 100];
        assert!(
            stranger.recv_from(&mut buf).is_err(),
            "a stranger hears nothing"
        );
    }
}
