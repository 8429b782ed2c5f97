//! UDP transport: one reader task per socket; sends happen on the core task.

use std::sync::Arc;

use std::time::Instant;

use bytes::Bytes;
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
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// Receive, check the source, parse, hand to the core. Nothing here logs per datagram:
/// what is dropped is counted (metrics, and the shell's periodic summary).
pub(super) async fn reader(sock: Arc<UdpSocket>, max: usize, inbox: Inbox) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
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
        let at = Instant::now();
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
