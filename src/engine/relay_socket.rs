//! Relay sockets: a UDP socket bound to a port of the media pool, and the batch a relay
//! thread reads queued packets into (`relay_thread`).

use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;

use nix::sys::socket::{SockaddrLike, SockaddrStorage};

/// Packets one read takes at most: more than a relay thread finds queued on one socket in
/// one turn even when it runs behind (each stream brings 50 packets a second).
pub(super) const BATCH: usize = 8;
/// Room per packet: more than any packet relayed (`media::MAX_PACKET`), so an oversized one
/// is seen as such (a longer datagram is cut to this length and fails the size check).
const SLOT: usize = 2048;

/// A relay socket on `ip:port`, non-blocking, for a relay thread's poll. Sends never wait
/// (a packet that finds the send buffer full is dropped, as a late packet would be), so the
/// thread polls it for reading only: polling for writability too would cost an event for
/// every packet sent (the kernel reports each freed send buffer).
pub(super) fn bind(ip: IpAddr, port: u16) -> std::io::Result<mio::net::UdpSocket> {
    let s = super::bind::udp(SocketAddr::new(ip, port))?;
    Ok(mio::net::UdpSocket::from_std(s))
}

/// Room for one `recvmmsg`: the packets, their senders, and the kernel's headers for them.
pub(super) struct Batch {
    data: Box<[[u8; SLOT]; BATCH]>,
    names: [libc::sockaddr_storage; BATCH],
    iov: [libc::iovec; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
}

impl Batch {
    pub(super) fn new() -> Batch {
        Batch {
            data: Box::new([[0; SLOT]; BATCH]),
            // SAFETY: all-zero is a valid value of these plain C structs (no sender, no
            // buffer); `read` fills in every field the kernel reads before each call.
            names: unsafe { std::mem::zeroed() },
            iov: unsafe { std::mem::zeroed() },
            hdrs: unsafe { std::mem::zeroed() },
        }
    }

    /// Read what is queued on `s` (at most [`BATCH`] packets) without waiting. Fewer than
    /// a batch means the queue was empty.
    pub(super) fn read(&mut self, s: &impl AsRawFd) -> std::io::Result<usize> {
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
    pub(super) fn each(
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
            // A relay socket is bound to one address, never the wildcard nor a mapped one
            // (the configuration takes `::ffff:a.b.c.d` as IPv4): an IPv4-mapped sender on it
            // is an IPv6 packet posing as IPv4, past IPv4's source checks
            // (`bind::mapped_impostor`, which on a socket of one address comes to this).
            if super::bind::is_mapped(from.ip()) {
                crate::ops::metrics::rtp_dropped("foreign_source").increment(1);
                continue;
            }
            each(&self.data[i][..len], from)?;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay socket, its address, and a peer socket to send from.
    fn relay_and_peer() -> (mio::net::UdpSocket, SocketAddr, std::net::UdpSocket) {
        let relay = bind("127.0.0.1".parse().unwrap(), 0).unwrap();
        let to = relay.local_addr().unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        (relay, to, peer)
    }

    /// Packets come out whole, in order, with their sender, across batches: ten packets
    /// queued before the first read take two reads of at most [`BATCH`], and a third finds
    /// the queue empty.
    #[test]
    fn a_read_hands_every_queued_packet_with_its_sender() {
        let (relay, to, peer) = relay_and_peer();
        let sender = peer.local_addr().unwrap();
        for i in 0..10u8 {
            peer.send_to(&vec![i; 12 + i as usize], to).unwrap();
        }
        let mut b = Batch::new();
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        for _ in 0..2 {
            let n = b.read(&relay).unwrap();
            sizes.push(n);
            let flow = b.each(n, &mut |pkt: &[u8], from| {
                got.push((pkt.to_vec(), from));
                ControlFlow::Continue(())
            });
            assert_eq!(flow, ControlFlow::Continue(()));
        }
        assert_eq!(sizes, [BATCH, 2], "one full batch, then the rest");
        let empty = b.read(&relay).unwrap_err();
        assert_eq!(empty.kind(), std::io::ErrorKind::WouldBlock);
        for (i, (pkt, from)) in got.iter().enumerate() {
            assert_eq!(*from, sender);
            assert_eq!(pkt, &vec![i as u8; 12 + i]);
        }
    }

    /// `Break` from the handler stops the batch there: the packets after it are not handed
    /// on (the stream is ending).
    #[test]
    fn a_handler_that_stops_sees_no_more_packets() {
        let (relay, to, peer) = relay_and_peer();
        for i in 0..3u8 {
            peer.send_to(&[i; 20], to).unwrap();
        }
        let mut b = Batch::new();
        let n = b.read(&relay).unwrap();
        assert_eq!(n, 3);
        let mut seen = 0;
        let flow = b.each(n, &mut |_: &[u8], _| {
            seen += 1;
            ControlFlow::Break(())
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(seen, 1);
    }

    /// A datagram longer than a slot arrives cut to the slot, so the size check (at most
    /// `media::MAX_PACKET` bytes) refuses it rather than relaying a truncated packet.
    #[test]
    fn an_oversized_datagram_is_seen_as_oversized() {
        let (relay, to, peer) = relay_and_peer();
        peer.send_to(&[0x80; 4000], to).unwrap();
        let mut b = Batch::new();
        let n = b.read(&relay).unwrap();
        let mut len = 0;
        let flow = b.each(n, &mut |pkt: &[u8], _| {
            len = pkt.len();
            ControlFlow::Continue(())
        });
        assert_eq!(flow, ControlFlow::Continue(()));
        assert_eq!(len, SLOT);
        assert!(len > crate::media::MAX_PACKET);
    }
}
