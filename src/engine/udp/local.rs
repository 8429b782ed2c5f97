//! The address a datagram leaves from on a wildcard listener (`0.0.0.0`, `[::]`). The kernel
//! would pick one by its routes: often not the address the peer sent to, nor the one it
//! knows us by (a floating address that moves between two hosts, a second address on the
//! interface), and a peer or its firewall drops what comes from an address it never
//! heard of. So an answer, or a request in a dialog the peer opened, leaves from the address
//! the peer's datagram came to (RFC 3581 §4 asks it of answers), and a request we start
//! from `[sip] advertise` when that is an IP address; the kernel is told with
//! `IP_PKTINFO`/`IPV6_PKTINFO`, and picks as before when it refuses (an address this host
//! does not have, yet or any more).
//!
//! The reader notes each destination address it sees in a table of the process (the host's
//! addresses: few, and bounded here) and hands the core a [`ListenerId`] that names the
//! listener and the table entry, so the core's [`crate::sip::Target`] carries it unchanged.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::sip::ListenerId;

/// Entries of the table: a host has a handful of addresses, and nothing but a datagram's
/// destination address (one of the host's, or a broadcast) gets in.
const MAX_LOCAL_IPS: usize = 254;
/// Entries one network's addresses may take at most ([`network_of`]: loopback, an IPv4
/// /24, an IPv6 /64). Every `127.x.y.z` is this host's, as is every address of a network
/// routed to it whole (an AnyIP route) or its rotating IPv6 temporary addresses: a local
/// process, or a sender to such a network, could otherwise fill the table for good, and a
/// floating address that comes to this host later would never be noted.
const MAX_PER_NETWORK: usize = 16;

/// The destination addresses seen on wildcard listeners; an entry is never removed or
/// changed, so its number names it for good.
struct LocalIps {
    slots: [OnceLock<IpAddr>; MAX_LOCAL_IPS],
    used: AtomicUsize,
}

impl LocalIps {
    fn new() -> LocalIps {
        LocalIps {
            slots: [const { OnceLock::new() }; MAX_LOCAL_IPS],
            used: AtomicUsize::new(0),
        }
    }
}

fn table() -> &'static LocalIps {
    static TABLE: OnceLock<LocalIps> = OnceLock::new();
    TABLE.get_or_init(LocalIps::new)
}

/// The number of `ip` in the table, noted now if new. `None`: the table is full, or the
/// address is none to send from (multicast, broadcast, unspecified).
fn slot_of(ip: IpAddr) -> Option<usize> {
    slot_in(table(), ip)
}

fn slot_in(t: &LocalIps, ip: IpAddr) -> Option<usize> {
    let ip = ip.to_canonical();
    let unicast = match ip {
        IpAddr::V4(v4) => !(v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    };
    if !unicast {
        return None;
    }
    let filled = t.used.load(Ordering::Acquire).min(MAX_LOCAL_IPS);
    if let Some(i) = (0..filled).find(|&i| t.slots[i].get() == Some(&ip)) {
        return Some(i);
    }
    // Past its network's share a new address is answered from what the kernel picks.
    let net = network_of(ip);
    let same = (0..filled)
        .filter(|&i| t.slots[i].get().is_some_and(|s| network_of(*s) == net))
        .count();
    if same >= MAX_PER_NETWORK {
        return None;
    }
    // Two readers noting the same new address take two entries: both name it.
    let i = t.used.fetch_add(1, Ordering::AcqRel);
    if i >= MAX_LOCAL_IPS {
        // (`used` keeps growing past the table, one a new address: the first says so.)
        if i == MAX_LOCAL_IPS {
            tracing::warn!(%ip, "{MAX_LOCAL_IPS} local addresses seen on wildcard listeners: answers to new ones leave from the address the kernel picks");
        }
        return None;
    }
    let _ = t.slots[i].set(ip);
    Some(i)
}

/// The network an address is counted in for [`MAX_PER_NETWORK`]: loopback as one, else
/// its IPv4 /24 or IPv6 /64.
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::from([127, 0, 0, 0]),
        IpAddr::V4(v4) => std::net::Ipv4Addr::from(u32::from(v4) & 0xFFFF_FF00).into(),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::from([127, 0, 0, 0]),
        IpAddr::V6(v6) => std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)).into(),
    }
}

/// The id a datagram that came in on listener `index` to address `dst` is known by: the
/// listener's own when `dst` is unknown or cannot be noted.
pub(super) fn arrived_on(index: ListenerId, dst: Option<IpAddr>) -> ListenerId {
    match (u8::try_from(index.0), dst.and_then(slot_of)) {
        (Ok(l), Some(s)) => ListenerId(u16::from(l) | ((s as u16 + 1) << 8)),
        _ => index,
    }
}

/// The listener an id names, and the address to send from when it names one.
pub(super) fn split(id: ListenerId) -> (usize, Option<IpAddr>) {
    let slot = usize::from(id.0 >> 8);
    if slot == 0 {
        return (usize::from(id.0), None);
    }
    let ip = table().slots.get(slot - 1).and_then(|s| s.get().copied());
    (usize::from(id.0 & 0xff), ip)
}

/// Send `bytes` to `to` without waiting, from `from` when given (a local address; the socket
/// is a wildcard one), else, or when the kernel will not send from there (an address this
/// host does not have, yet or any more), from what the kernel picks; the flag says it
/// would not. `WouldBlock` is the caller's, as for any send.
pub(super) fn try_send(
    sock: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    from: Option<IpAddr>,
) -> (io::Result<usize>, bool) {
    if let Some(ip) = from {
        match sock.try_io(Interest::WRITABLE, || send_from(sock, bytes, to, ip)) {
            Err(e) if source_refused(&e) => return (sock.try_send_to(bytes, to), true),
            sent => return (sent, false),
        }
    }
    (sock.try_send_to(bytes, to), false)
}

/// [`try_send`] waiting for room in the socket buffer.
pub(super) async fn send(
    sock: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    from: Option<IpAddr>,
) -> io::Result<usize> {
    if let Some(ip) = from {
        let sent = sock
            .async_io(Interest::WRITABLE, || send_from(sock, bytes, to, ip))
            .await;
        if !sent.as_ref().is_err_and(source_refused) {
            return sent;
        }
    }
    sock.send_to(bytes, to).await
}

/// Whether an error says the kernel would not send from the address asked for.
fn source_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EADDRNOTAVAIL | libc::ENETUNREACH)
    )
}

fn send_from(sock: &UdpSocket, bytes: &[u8], to: SocketAddr, from: IpAddr) -> io::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
    // The destination's family decides the option: an IPv4 peer of a dual-stack socket goes
    // out over IPv4, which reads `IP_PKTINFO` whatever the socket's family.
    let (mut v4, mut v6) = (None, None);
    match (to, from.to_canonical()) {
        (SocketAddr::V4(_), IpAddr::V4(src)) => {
            v4 = Some(libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(src).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            });
        }
        (SocketAddr::V6(_), IpAddr::V6(src)) => {
            v6 = Some(libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: src.octets(),
                },
                ipi6_ifindex: 0,
            });
        }
        // Another family than the peer's: nothing to ask.
        _ => {}
    }
    let one;
    let cmsg: &[ControlMessage<'_>] = match (&v4, &v6) {
        (Some(info), _) => {
            one = [ControlMessage::Ipv4PacketInfo(info)];
            &one
        }
        (_, Some(info)) => {
            one = [ControlMessage::Ipv6PacketInfo(info)];
            &one
        }
        _ => &[],
    };
    let iov = [io::IoSlice::new(bytes)];
    let dest = SockaddrStorage::from(to);
    sendmsg(sock.as_raw_fd(), &iov, cmsg, MsgFlags::empty(), Some(&dest)).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback addresses take at most 16 entries: a local process sending to 127.0.0.2 …
    /// 127.0.0.255 cannot fill the table for good. Before, it could, and a floating address
    /// that came to this host afterwards was never noted.
    #[test]
    fn loopback_addresses_cannot_fill_the_table() {
        let t = LocalIps::new();
        let lo = |n: u8| IpAddr::from([127, 0, 0, n]);
        let taken: Vec<usize> = (1..=255).filter_map(|n| slot_in(&t, lo(n))).collect();
        assert_eq!(taken.len(), MAX_PER_NETWORK);
        assert_eq!(
            slot_in(&t, lo(1)),
            Some(taken[0]),
            "a noted one keeps its entry"
        );
        let vip = IpAddr::from([198, 51, 100, 7]);
        let slot = slot_in(&t, vip);
        assert_eq!(slot, Some(MAX_PER_NETWORK));
        assert_eq!(slot_in(&t, vip), slot);
        assert_eq!(slot_in(&t, "::1".parse().unwrap()), None, "past the share");
    }

    /// Nor can a network routed to this host whole (an AnyIP route) or an IPv6 /64 of
    /// rotating temporary addresses: each takes 16 entries, and an address of another
    /// network (a floating one learnt later) is still noted. Before, datagrams to 254
    /// addresses of one such network filled the table for good.
    #[test]
    fn no_one_network_fills_the_table() {
        let t = LocalIps::new();
        let anyip = |n: u8| IpAddr::from([198, 51, 100, n]);
        let temp = |n: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, n, 0, 0, 1]);
        assert_eq!((1..=255).filter_map(|n| slot_in(&t, anyip(n))).count(), 16);
        assert_eq!((1..=300).filter_map(|n| slot_in(&t, temp(n))).count(), 16);
        assert_eq!(
            slot_in(&t, anyip(1)),
            Some(0),
            "a noted one keeps its entry"
        );
        assert_eq!(slot_in(&t, IpAddr::from([203, 0, 113, 9])), Some(32));
        assert_eq!(
            slot_in(&t, "2001:db8:0:2::1".parse().unwrap()),
            Some(33),
            "another /64"
        );
    }
}
