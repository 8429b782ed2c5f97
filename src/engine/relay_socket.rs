//! One relay socket: a UDP socket bound to a port of the media pool, registered with a media
//! thread's runtime for reading only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A relay socket, registered with the media thread's runtime for reading only. Sends
/// never wait (a packet that finds the send buffer full is dropped, as a late packet would
/// be), so registering for writability too would only cost an epoll event for every packet
/// sent (the kernel reports each freed send buffer).
pub(super) struct RelaySocket(AsyncFd<std::net::UdpSocket>);

impl RelaySocket {
    pub(super) async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        loop {
            let mut ready = self.0.readable().await?;
            if let Ok(got) = ready.try_io(|s| s.get_ref().recv_from(buf)) {
                return got;
            }
        }
    }

    pub(super) fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.0.get_ref().send_to(buf, to)
    }

    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

pub(super) fn bind(
    rt: &tokio::runtime::Handle,
    ip: IpAddr,
    port: u16,
) -> std::io::Result<Arc<RelaySocket>> {
    let s = std::net::UdpSocket::bind((ip, port))?;
    s.set_nonblocking(true)?;
    let _in_media_runtime = rt.enter();
    // SAFETY: the `UdpSocket` owns its descriptor, and the `AsyncFd` owns the socket until
    // it deregisters it: nothing closes or replaces the descriptor while it is registered.
    let fd = unsafe { AsyncFd::register_with_interest(s, Interest::READABLE)? };
    Ok(Arc::new(RelaySocket(fd)))
}
