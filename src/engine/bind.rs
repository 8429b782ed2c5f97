//! Opening the gateway's sockets. A socket bound to `[::]` hears IPv4 peers too whatever
//! the host's `net.ipv6.bindv6only` says: an operator who writes `[::]:5060` means every
//! address, and a host with `bindv6only = 1` would otherwise leave IPv4 peers unheard with
//! no error (the IPv4 form of the source is taken at each reader, see `engine::udp`).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// A new socket for `addr`, dual-stack if `addr` is the IPv6 wildcard; not yet bound.
pub(super) fn socket(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if let SocketAddr::V6(a) = addr
        && a.ip().is_unspecified()
    {
        sock.set_only_v6(false)?;
    }
    Ok(sock)
}

/// A non-blocking UDP socket bound to `addr`.
pub(super) fn udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let sock = socket(addr, Type::DGRAM, Protocol::UDP)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// A TCP listener on `addr` for the tokio shell, as `tokio::net::TcpListener::bind` makes
/// it (address reuse, so a restart does not wait out TIME_WAIT; a backlog of 1,024).
pub(super) fn tcp_listener(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let sock = socket(addr, Type::STREAM, Protocol::TCP)?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    tokio::net::TcpListener::from_std(sock.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wildcard() -> SocketAddr {
        "[::]:0".parse().unwrap()
    }

    /// Whether this host can open IPv6 sockets at all (a container may have IPv6 off).
    fn has_ipv6() -> bool {
        std::net::UdpSocket::bind("[::1]:0").is_ok()
    }

    /// The wildcard is dual-stack whatever the host's default (`bindv6only = 1` made every
    /// IPv4 peer unheard before); a named IPv6 address is left as the kernel makes it.
    #[test]
    fn the_ipv6_wildcard_hears_ipv4_peers() {
        if !has_ipv6() {
            eprintln!("no IPv6 here: skipped");
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
        let l = rt.block_on(async { tcp_listener(wildcard()) }).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!socket2::SockRef::from(&l).only_v6().unwrap());
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    }
}
