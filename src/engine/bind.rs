//! Opening the gateway's sockets. A socket bound to `[::]` hears IPv4 peers too whatever
//! the host's `net.ipv6.bindv6only` says: an operator who writes `[::]:5060` means every
//! address, and a host with `bindv6only = 1` would otherwise leave IPv4 peers unheard with
//! no error (the IPv4 form of the source is taken at each reader, see `engine::udp`). Not
//! when the configuration also listens on an IPv4 address at that port (`0.0.0.0`, the pair
//! an operator on a `bindv6only = 1` host writes, or another): that one hears IPv4, and
//! `[::]` only IPv6.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Whether a socket on the IPv6 wildcard hears IPv4 too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stack {
    /// Both families (the usual).
    Dual,
    /// IPv6 only: another socket holds IPv4 at that port.
    V6Only,
}

/// The stack of a listener on `addr` among `all` (of its transport): IPv6 only when one of
/// them is an IPv4 address at the same port (a dual-stack `[::]` would hold that port on
/// every IPv4 address, and one of them could not bind).
pub(super) fn stack_among(addr: SocketAddr, mut all: impl Iterator<Item = SocketAddr>) -> Stack {
    let v4_there = |o: SocketAddr| o.is_ipv4() && o.port() == addr.port();
    if is_v6_wildcard(addr) && addr.port() != 0 && all.any(v4_there) {
        Stack::V6Only
    } else {
        Stack::Dual
    }
}

/// Whether a datagram whose sender the socket reported as `from` is an IPv6 packet posing
/// as IPv4: its source an IPv4-mapped address (`::ffff:a.b.c.d`), which every reader takes
/// as `a.b.c.d`, so it would pass as that IPv4 peer past every IPv4 defence (the kernel's
/// martian and reverse-path checks, IPv4 filters: Linux delivers such UDP since 5.12).
/// A real IPv4 packet on a dual-stack socket came to a mapped destination (`dst_mapped`,
/// from `IPV6_PKTINFO`); without that, only a socket on one native IPv6 address can tell:
/// it hears no IPv4 at all.
pub(super) fn mapped_impostor(
    from: std::net::IpAddr,
    local: std::net::IpAddr,
    dst_mapped: Option<bool>,
) -> bool {
    use std::net::IpAddr;
    if !is_mapped(from) {
        return false;
    }
    match dst_mapped {
        Some(mapped) => !mapped,
        None => {
            matches!(local, IpAddr::V6(l) if !l.is_unspecified() && l.to_ipv4_mapped().is_none())
        }
    }
}

/// [`mapped_impostor`] where a wrong "no" costs calls (the call-back service): a mapped
/// source on `[::]` whose destination is not known (no `IPV6_PKTINFO`) is taken as one.
/// `dst`: the datagram's destination, when the socket reported it.
pub(super) fn posing_as_ipv4(
    from: std::net::IpAddr,
    local: std::net::IpAddr,
    dst: Option<std::net::IpAddr>,
) -> bool {
    match dst {
        Some(d) => mapped_impostor(from, local, Some(is_mapped(d))),
        None if local.is_ipv6() && local.is_unspecified() => is_mapped(from),
        None => mapped_impostor(from, local, None),
    }
}

/// Whether `ip` is an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
pub(super) fn is_mapped(ip: std::net::IpAddr) -> bool {
    matches!(ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

/// Whether `addr` is the IPv6 wildcard, which [`Stack`] is about.
pub(super) fn is_v6_wildcard(addr: SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(a) if a.ip().is_unspecified())
}

/// Set `sock`, to be bound to `addr`, to `stack` if `addr` is the IPv6 wildcard (whatever
/// the host's default); other sockets are left as they are.
fn set_stack(sock: &Socket, addr: SocketAddr, stack: Stack) -> io::Result<()> {
    if is_v6_wildcard(addr) {
        sock.set_only_v6(stack == Stack::V6Only)?;
    }
    Ok(())
}

/// A new socket for `addr` on `stack`; not yet bound.
pub(super) fn socket(
    addr: SocketAddr,
    ty: Type,
    proto: Protocol,
    stack: Stack,
) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    set_stack(&sock, addr, stack)?;
    Ok(sock)
}

/// A non-blocking UDP socket bound to `addr`, dual-stack if it is the IPv6 wildcard.
pub(super) fn udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let sock = socket(addr, Type::DGRAM, Protocol::UDP, Stack::Dual)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// A TCP listener on `addr` for the tokio shell, as `tokio::net::TcpListener::bind` makes
/// it (address reuse, so a restart does not wait out TIME_WAIT; a backlog of 1,024).
pub(super) fn tcp_listener(addr: SocketAddr, stack: Stack) -> io::Result<tokio::net::TcpListener> {
    let sock = socket(addr, Type::STREAM, Protocol::TCP, stack)?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    tokio::net::TcpListener::from_std(sock.into())
}

/// A test that needs IPv6 (`what`) found none on this host: it is skipped, said on stderr,
/// unless `TRUNKGATE_REQUIRE_IPV6` is set (`.ci/run` sets it on a host with an IPv6
/// loopback), where a skip would hide a failure to bind.
#[cfg(test)]
pub(crate) fn no_ipv6_here(what: &str) {
    assert!(
        std::env::var_os("TRUNKGATE_REQUIRE_IPV6").is_none(),
        "{what} cannot be opened, and TRUNKGATE_REQUIRE_IPV6 is set"
    );
    eprintln!("no IPv6 here ({what}): skipped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_packet_with_a_mapped_source_is_an_impostor() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let mapped = ip("::ffff:127.0.0.2");
        // On a dual-stack socket: a real IPv4 packet came to a mapped destination.
        assert!(!mapped_impostor(mapped, ip("::"), Some(true)));
        assert!(mapped_impostor(mapped, ip("::"), Some(false)));
        // Without the destination: only a socket on one native IPv6 address can tell.
        assert!(mapped_impostor(mapped, ip("2001:db8::1"), None));
        assert!(!mapped_impostor(mapped, ip("::"), None));
        assert!(!mapped_impostor(mapped, ip("::ffff:192.0.2.1"), None));
        // Other sources are what they say.
        assert!(!mapped_impostor(
            ip("2001:db8::9"),
            ip("2001:db8::1"),
            Some(false)
        ));
        assert!(!mapped_impostor(ip("127.0.0.2"), ip("127.0.0.1"), None));
    }

    #[test]
    fn where_an_impostor_costs_calls_a_mapped_source_on_the_wildcard_needs_its_destination() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let mapped = ip("::ffff:127.0.0.1");
        assert!(!posing_as_ipv4(
            mapped,
            ip("::"),
            Some(ip("::ffff:127.0.0.1"))
        ));
        assert!(posing_as_ipv4(mapped, ip("::"), Some(ip("::1"))));
        assert!(posing_as_ipv4(mapped, ip("::"), None));
        assert!(posing_as_ipv4(mapped, ip("2001:db8::1"), None));
        assert!(!posing_as_ipv4(ip("::1"), ip("::"), None));
        assert!(!posing_as_ipv4(ip("127.0.0.1"), ip("0.0.0.0"), None));
    }

    fn wildcard() -> SocketAddr {
        "[::]:0".parse().unwrap()
    }

    /// Whether this host can open IPv6 sockets at all (a container may have IPv6 off): if
    /// not, the test is skipped, unless CI said it has IPv6 (`no_ipv6_here`).
    fn has_ipv6() -> bool {
        std::net::UdpSocket::bind("[::1]:0").is_ok() || {
            crate::engine::bind::no_ipv6_here("the IPv6 loopback");
            false
        }
    }

    /// The wildcard is dual-stack whatever the host's default (`bindv6only = 1` made every
    /// IPv4 peer unheard before); a named IPv6 address is left as the kernel makes it.
    #[test]
    fn the_ipv6_wildcard_hears_ipv4_peers() {
        if !has_ipv6() {
            return;
        }
        let s = udp(wildcard()).unwrap();
        assert!(!socket2::SockRef::from(&s).only_v6().unwrap());
        let port = s.local_addr().unwrap().port();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"hello", ("127.0.0.1", port)).unwrap();
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(
            from.ip(),
            "::ffff:127.0.0.1".parse::<std::net::IpAddr>().unwrap()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let l = rt
            .block_on(async { tcp_listener(wildcard(), Stack::Dual) })
            .unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!socket2::SockRef::from(&l).only_v6().unwrap());
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    }

    /// The stack is set whatever the host's default: a socket the kernel made IPv6-only
    /// (`bindv6only = 1`) is made dual-stack, and the other way round.
    #[test]
    fn the_stack_is_set_whatever_the_default() {
        if !has_ipv6() {
            return;
        }
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.set_only_v6(true).unwrap();
        set_stack(&s, wildcard(), Stack::Dual).unwrap();
        assert!(!s.only_v6().unwrap());
        set_stack(&s, wildcard(), Stack::V6Only).unwrap();
        assert!(s.only_v6().unwrap());
        // A named IPv6 address is left alone.
        set_stack(&s, "[::1]:0".parse().unwrap(), Stack::Dual).unwrap();
        assert!(s.only_v6().unwrap());
    }

    /// `0.0.0.0:P` and `[::]:P` both configured (what a `bindv6only = 1` host needed): the
    /// `[::]` one is IPv6 only, and both bind. Made dual-stack it would fail to bind.
    #[test]
    fn an_ipv4_wildcard_at_the_same_port_keeps_the_ipv6_one_to_ipv6() {
        if !has_ipv6() {
            return;
        }
        let v4 = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6: SocketAddr = format!("[::]:{port}").parse().unwrap();
        let all = [v4.local_addr().unwrap(), v6];
        assert_eq!(stack_among(v6, all.into_iter()), Stack::V6Only);
        let s = socket(v6, Type::DGRAM, Protocol::UDP, Stack::V6Only).unwrap();
        s.bind(&v6.into()).unwrap();
        let dual = socket(v6, Type::DGRAM, Protocol::UDP, Stack::Dual).unwrap();
        drop(s);
        assert!(dual.bind(&v6.into()).is_err(), "the IPv4 port is taken");
        // Beside a named IPv4 address at that port too; alone, or beside another port:
        // dual-stack.
        let named: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert_eq!(stack_among(v6, [named, v6].into_iter()), Stack::V6Only);
        let other: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert_eq!(stack_among(v6, [other, v6].into_iter()), Stack::Dual);
        assert_eq!(stack_among(v6, [v6].into_iter()), Stack::Dual);
    }
}
