//! One relay socket: a UDP socket bound to a port of the media pool, registered with a media
//! thread's runtime for reading only.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::sys::socket::{SockaddrLike, SockaddrStorage};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Packets one read takes at most: more than a relay thread finds queued on one socket in
/// one turn even when it runs behind (each stream brings 50 packets a second).
const BATCH: usize = 8;
/// Room per packet: more than any packet relayed (`media::MAX_PACKET`), so an oversized one
/// is seen as such (a longer datagram is cut to this length and fails the size check).
const SLOT: usize = 2048;

/// A relay socket, registered with the media thread's runtime for reading only. Sends
/// never wait (a packet that finds the send buffer full is dropped, as a late packet would
/// be), so registering for writability too would only cost an epoll event for every packet
/// sent (the kernel reports each freed send buffer).
pub(super) struct RelaySocket(AsyncFd<std::net::UdpSocket>);

impl RelaySocket {
    /// Wait until packets are queued, read up to [`BATCH`] of them in one system call and
    /// hand each to `each` (its bytes and sender) until it says stop. Fewer than a batch
    /// means the queue was empty: readiness is cleared then, which spares the read that
    /// would only find that out (one `EAGAIN` per wake-up, a third of the reads).
    pub(super) async fn recv_each(
        &self,
        mut each: impl FnMut(&[u8], SocketAddr) -> ControlFlow<()>,
    ) -> std::io::Result<ControlFlow<()>> {
        loop {
            let Ok(mut ready) = self.0.readable().await else {
                // Only a runtime shutting down fails here: there is nothing left to relay.
                return Ok(ControlFlow::Break(()));
            };
            let got = BUFFERS.with_borrow_mut(|b| match ready.try_io(|s| b.read(s.get_ref())) {
                Err(_would_block) => None,
                Ok(Err(e)) => Some(Err(e)),
                Ok(Ok(n)) => {
                    if n < BATCH {
                        ready.clear_ready();
                    }
                    Some(Ok(b.each(n, &mut each)))
                }
            });
            match got {
                None => continue,
                Some(Err(e)) => {
                    // Nothing was read: wait for the next packet rather than spin on the error.
                    ready.clear_ready();
                    return Err(e);
                }
                Some(Ok(flow)) => return Ok(flow),
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

thread_local! {
    /// The relay thread's receive buffers: every socket the thread serves reads into them
    /// in turn (a task holds them only between two awaits), so a stream costs no buffer of
    /// its own.
    static BUFFERS: RefCell<Batch> = RefCell::new(Batch::new());
}

/// Room for one `recvmmsg`: the packets, their senders, and the kernel's headers for them.
struct Batch {
    data: Box<[[u8; SLOT]; BATCH]>,
    names: [libc::sockaddr_storage; BATCH],
    iov: [libc::iovec; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
}

impl Batch {
    fn new() -> Batch {
        Batch {
            data: Box::new([[0; SLOT]; BATCH]),
            // SAFETY: all-zero is a valid value of these plain C structs (no sender, no
            // buffer); `read` fills in every field the kernel reads before each call.
            names: unsafe { std::mem::zeroed() },
            iov: unsafe { std::mem::zeroed() },
            hdrs: unsafe { std::mem::zeroed() },
        }
    }

    /// Read what is queued on `s` (at most [`BATCH`] packets) without waiting.
    fn read(&mut self, s: &std::net::UdpSocket) -> std::io::Result<usize> {
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.data[i].as_mut_ptr().cast(),
                iov_len: SLOT,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        // SAFETY: every header points into `self` (names, one iovec over a SLOT-byte
        // buffer each), which outlives the call; the kernel writes only within those.
        let n = unsafe {
            libc::recvmmsg(
                s.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((n as usize).min(BATCH))
    }

    /// Hand the first `n` packets read to `each`, in arrival order, until it says stop.
    fn each(
        &self,
        n: usize,
        each: &mut impl FnMut(&[u8], SocketAddr) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        for i in 0..n {
            let len = (self.hdrs[i].msg_len as usize).min(SLOT);
            let name = &self.hdrs[i].msg_hdr;
            // SAFETY: the kernel wrote a sender of `msg_namelen` bytes into `names[i]`.
            let from = unsafe {
                SockaddrStorage::from_raw((&raw const self.names[i]).cast(), Some(name.msg_namelen))
            };
            let from = from.and_then(|a| match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Some(v4), _) => Some(SocketAddr::V4((*v4).into())),
                (_, Some(v6)) => Some(SocketAddr::V6((*v6).into())),
                _ => None,
            });
            // A datagram without an IP sender cannot come to a UDP/IP socket; skip it.
            let Some(from) = from else { continue };
            each(&self.data[i][..len], from)?;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay socket on its runtime, its address, and a peer socket to send from.
    fn relay_and_peer() -> (
        tokio::runtime::Runtime,
        Arc<RelaySocket>,
        SocketAddr,
        std::net::UdpSocket,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let relay = bind(rt.handle(), "127.0.0.1".parse().unwrap(), 0).unwrap();
        let to = relay.local_addr().unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        (rt, relay, to, peer)
    }

    /// Packets come out whole, in order, with their sender, across batches: ten packets
    /// queued before the first read take two reads of at most [`BATCH`].
    #[test]
    fn a_read_hands_every_queued_packet_with_its_sender() {
        let (rt, relay, to, peer) = relay_and_peer();
        let sender = peer.local_addr().unwrap();
        for i in 0..10u8 {
            peer.send_to(&vec![i; 12 + i as usize], to).unwrap();
        }
        let (got, reads) = rt.block_on(async {
            let (mut got, mut reads) = (Vec::new(), 0);
            while got.len() < 10 {
                let flow = relay
                    .recv_each(|pkt, from| {
                        got.push((pkt.to_vec(), from));
                        ControlFlow::Continue(())
                    })
                    .await;
                assert_eq!(flow.unwrap(), ControlFlow::Continue(()));
                reads += 1;
            }
            (got, reads)
        });
        assert_eq!(
            reads, 2,
            "10 queued packets take one full batch and one short one"
        );
        for (i, (pkt, from)) in got.iter().enumerate() {
            assert_eq!(*from, sender);
            assert_eq!(pkt, &vec![i as u8; 12 + i]);
        }
    }

    /// `Break` from the handler stops the batch there: the packets after it are not handed
    /// on (the task is ending).
    #[test]
    fn a_handler_that_stops_sees_no_more_packets() {
        let (rt, relay, to, peer) = relay_and_peer();
        for i in 0..3u8 {
            peer.send_to(&[i; 20], to).unwrap();
        }
        let mut seen = 0;
        let flow = rt.block_on(relay.recv_each(|_, _| {
            seen += 1;
            ControlFlow::Break(())
        }));
        assert_eq!(flow.unwrap(), ControlFlow::Break(()));
        assert_eq!(seen, 1);
    }

    /// A datagram longer than a slot arrives cut to the slot, so the size check (at most
    /// `media::MAX_PACKET` bytes) refuses it rather than relaying a truncated packet.
    #[test]
    fn an_oversized_datagram_is_seen_as_oversized() {
        let (rt, relay, to, peer) = relay_and_peer();
        peer.send_to(&[0x80; 4000], to).unwrap();
        let mut len = 0;
        let flow = rt.block_on(relay.recv_each(|pkt, _| {
            len = pkt.len();
            ControlFlow::Continue(())
        }));
        assert_eq!(flow.unwrap(), ControlFlow::Continue(()));
        assert_eq!(len, SLOT);
        assert!(len > crate::media::MAX_PACKET);
    }
}
