//! Where a request of ours in a dialog goes when the peer's connection has closed: the port
//! its next hop names at the peer's address, read off the wire form we built.

use super::{Name, name_of};

/// The port a request's Request-URI names when its host is the literal address `ip`
/// (5060 when it names none, 5061 for `sips:`); `None` when it names another host or cannot
/// be read. In a dialog the Request-URI is the peer's Contact: where it listens.
pub fn request_uri_port_for(wire: &[u8], ip: std::net::IpAddr) -> Option<u16> {
    request_uri(wire).and_then(|uri| uri_port_for(uri, ip))
}

/// Where a request of ours in a dialog goes when the peer's connection has closed: the port
/// its top Route names when that names `ip` (a proxy that record-routed the dialog, RFC 3261
/// §12.2.1.1: the next hop, not the Contact behind it), else [`request_uri_port_for`].
/// Read from the head as we build it: one `Route` line per value list, no folding.
pub fn next_hop_port_for(wire: &[u8], ip: std::net::IpAddr) -> Option<u16> {
    (routed(wire).and_then(|uri| uri_port_for(uri, ip))).or_else(|| request_uri_port_for(wire, ip))
}

/// Whether our request in a dialog goes to a peer behind NAT as seen from `ip`, the address
/// its connection came from: no loose Route (a proxy's path says nothing of the peer's
/// NAT), and a Request-URI (its Contact) naming a private address (RFC 1918, the shared
/// 100.64/10, link-local, IPv6 unique-local or link-local) while `ip` is none. Then no
/// connection but its own reaches it. (Another address alone proves nothing: an SBC's
/// Contact may name another of its interfaces.)
pub fn next_hop_natted(wire: &[u8], ip: std::net::IpAddr) -> bool {
    if routed(wire).is_some() || is_private(ip) {
        return false;
    }
    request_uri(wire).and_then(uri_ip).is_some_and(is_private)
}

/// A request's Request-URI, from its first line.
fn request_uri(wire: &[u8]) -> Option<&[u8]> {
    let line = &wire[..memchr::memchr(b'\n', wire).unwrap_or(wire.len())];
    line.split(|&b| b == b' ').nth(1)
}

/// An address only a NAT's inside uses.
fn is_private(ip: std::net::IpAddr) -> bool {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The URI of a request's top Route when it is a loose router's (`;lr`).
fn routed(wire: &[u8]) -> Option<&[u8]> {
    let head_end = memchr::memmem::find(wire, b"\r\n\r\n").unwrap_or(wire.len());
    let top_route = wire[..head_end]
        .split(|&b| b == b'\n')
        .skip(1)
        .find_map(|line| match name_of(line) {
            Some((Name::Route, value)) => Some(value),
            _ => None,
        });
    top_route.and_then(|value| {
        let open = memchr::memchr(b'<', value)?;
        let close = open + memchr::memchr(b'>', &value[open..])?;
        let uri = &value[open + 1..close];
        // A strict router (no `;lr`) is in the Request-URI, the next hop; the top Route is
        // then the entry after it (RFC 3261 §12.2.1.1).
        let uri = &uri[..memchr::memchr(b'?', uri).unwrap_or(uri.len())];
        let loose = uri.split(|&b| b == b';').skip(1).any(|p| {
            let name = p.split(|&b| b == b'=').next().unwrap_or_default();
            name.trim_ascii().eq_ignore_ascii_case(b"lr")
        });
        loose.then_some(uri)
    })
}

/// The IP address a SIP URI's host is, when it is one.
fn uri_ip(uri: &[u8]) -> Option<std::net::IpAddr> {
    let (_, rest) = scheme_and_rest(uri)?;
    let (host, _) = host_and_port(rest)?;
    std::str::from_utf8(host).ok()?.parse().ok()
}

/// A SIP URI's default port and what follows its scheme.
fn scheme_and_rest(uri: &[u8]) -> Option<(u16, &[u8])> {
    if uri.len() > 5 && uri[..5].eq_ignore_ascii_case(b"sips:") {
        Some((5061, &uri[5..]))
    } else if uri.len() > 4 && uri[..4].eq_ignore_ascii_case(b"sip:") {
        Some((5060, &uri[4..]))
    } else {
        None
    }
}

/// A SIP URI's host (brackets off) and what follows it up to its parameters (`:port` or
/// nothing), from what follows its scheme.
fn host_and_port(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = &rest[..memchr::memchr(b'?', rest).unwrap_or(rest.len())];
    let hostport = match memchr::memrchr(b'@', rest) {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let hostport = &hostport[..memchr::memchr(b';', hostport).unwrap_or(hostport.len())];
    Some(match hostport.strip_prefix(b"[") {
        Some(v6) => {
            let close = memchr::memchr(b']', v6)?;
            (&v6[..close], &v6[close + 1..])
        }
        None => match memchr::memchr(b':', hostport) {
            Some(c) => (&hostport[..c], &hostport[c..]),
            None => (hostport, &b""[..]),
        },
    })
}

/// The port a SIP URI names when its host is the literal address `ip` (5060 when it names
/// none, 5061 for `sips:`).
fn uri_port_for(uri: &[u8], ip: std::net::IpAddr) -> Option<u16> {
    let (default, rest) = scheme_and_rest(uri)?;
    let (host, port) = host_and_port(rest)?;
    let host: std::net::IpAddr = std::str::from_utf8(host).ok()?.parse().ok()?;
    if host.to_canonical() != ip.to_canonical() {
        return None;
    }
    match port.strip_prefix(b":") {
        None if port.is_empty() => Some(default),
        None => None,
        Some(p) => std::str::from_utf8(p).ok()?.parse().ok().filter(|&p| p > 0),
    }
}
