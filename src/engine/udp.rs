//! UDP transport: one reader task per socket; sends happen on the core task.

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Event;
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

/// Receive, parse, hand to the core. Malformed datagrams are logged and dropped here:
/// nothing that cannot be parsed can be answered.
pub(super) async fn reader(sock: Arc<UdpSocket>, max: usize, tx: mpsc::Sender<Event>) {
    let mut buf = vec![0u8; 65_536];
    // Messages this reader could not hand to a full core queue.
    let mut dropped: u64 = 0;
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
        if n > max {
            warn!(%src, bytes = n, max, "datagram over [protect] max_message_bytes dropped");
            continue;
        }
        match parse_datagram(Bytes::copy_from_slice(data), max) {
            Ok(msg) => {
                if tx
                    .try_send(Event::Message {
                        msg,
                        source: Target::udp(src),
                    })
                    .is_err()
                {
                    dropped += 1;
                    if dropped.is_power_of_two() {
                        warn!(dropped, "core overloaded: dropping received SIP messages");
                    }
                }
            }
            Err(e) => {
                // The core decides: a known peer may get a 400, a stranger gets nothing.
                let why = match &e {
                    crate::sip::SipError::Parse(m) | crate::sip::SipError::TooLarge(m) => m.clone(),
                    other => other.to_string(),
                };
                let _ = tx.try_send(Event::Unparseable {
                    raw: Bytes::copy_from_slice(data),
                    why,
                    source: Target::udp(src),
                });
            }
        }
    }
}
