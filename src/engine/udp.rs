//! UDP transport: one reader task per socket; sends happen on the core task.

use std::sync::Arc;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::Event;
use super::inbox::Inbox;
use crate::sip::{Target, parse_datagram};

/// Socket buffers for SIP over UDP. The default (about 200 KiB) overflows in the bursts a
/// busy trunk sends (a timer sweep, a reconnecting PBX); the kernel caps this at
/// net.core.rmem_max / wmem_max.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

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
pub(super) async fn reader(sock: Arc<UdpSocket>, max: usize, inbox: Inbox) {
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
        if !inbox.admit(src.ip(), at) {
            continue;
        }
        if n > max {
            inbox.count_oversize();
            continue;
        }
        let source = Target::udp(src);
        match parse_datagram(Bytes::copy_from_slice(data), max) {
            Ok(msg) => inbox.try_deliver(Event::Message { msg, source, at }),
            Err(e) => {
                // The core decides: a known peer may get a 400, a stranger gets nothing.
                inbox.count_unparseable();
                let why = match &e {
                    crate::sip::SipError::Parse(m) | crate::sip::SipError::TooLarge(m) => m.clone(),
                    other => other.to_string(),
                };
                inbox.try_deliver(Event::Unparseable {
                    raw: Bytes::copy_from_slice(data),
                    why,
                    source,
                });
            }
        }
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
