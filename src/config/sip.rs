//! `[sip]`: the addresses the gateway listens on and writes into its messages, and the SIP
//! front it may run behind.

use std::net::SocketAddr;
use std::ops::Range;

use super::file::SipSection;
use super::{ConfigError, Listen};
use crate::sip::{Target, Transport};

pub(super) struct Sip {
    pub listen: Vec<Listen>,
    pub front: Option<Target>,
    pub advertise: String,
}

pub(super) fn sip(
    s: &SipSection,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> Sip {
    let mut listen = Vec::new();
    for l in s.listen.get_ref() {
        match parse_transport_addr(l.get_ref()) {
            Ok((transport, addr)) => listen.push(Listen { transport, addr }),
            Err(m) => errs.push(at(l.span(), m)),
        }
    }
    if s.listen.get_ref().is_empty() {
        errs.push(at(
            s.listen.span(),
            "[sip] listen must name at least one address".into(),
        ));
    }
    let front = match &s.front {
        Some(f) => match parse_transport_addr(f.get_ref()) {
            // The front's stamp of a request's source is believed by its address alone, and
            // the shipped front and its tests speak UDP to the instances: TCP is not built.
            Ok((Transport::Tcp, _)) => {
                errs.push(at(
                    f.span(),
                    "[sip] front must be \"udp:IP:PORT\": a front is reached over UDP".into(),
                ));
                None
            }
            // Every request and answer goes to the front from a UDP socket.
            Ok(_)
                if !listen
                    .iter()
                    .any(|l: &Listen| l.transport == Transport::Udp) =>
            {
                errs.push(at(
                    f.span(),
                    "[sip] front needs a udp: address in [sip] listen (the front is reached over UDP)".into(),
                ));
                None
            }
            Ok((_, addr)) if reachable(addr.ip()).is_err() => {
                errs.push(at(
                    f.span(),
                    format!("[sip] front {}: the address of no one host", addr.ip()),
                ));
                None
            }
            Ok((transport, addr)) => Some(Target {
                transport,
                addr,
                conn: None,
                listener: None,
            }),
            Err(m) => {
                errs.push(at(f.span(), format!("[sip] front: {m}")));
                None
            }
        },
        None => None,
    };
    let mut advertise = s.advertise.get_ref().trim().to_string();
    // An address is written in its one printed form: peers echo our Via's host as their
    // parser prints it (`2001:db8::10` for `2001:0db8::10`), and a Via not written as ours
    // names someone else (every answer to our requests was dropped). Written mapped
    // (`::ffff:a.b.c.d`), it is that IPv4 address in Via and Contact too.
    if let Some(ip) = advertise_ip(&advertise) {
        advertise = match ip {
            std::net::IpAddr::V6(v6) if advertise.starts_with('[') => format!("[{v6}]"),
            ip => ip.to_string(),
        };
    }
    if let Err(why) = advertisable(&advertise) {
        errs.push(at(
            s.advertise.span(),
            format!("[sip] advertise {advertise:?} {why}"),
        ));
    }
    Sip {
        listen,
        front,
        advertise,
    }
}

/// Whether `host` can be the address peers are told to reach us at (`[sip] advertise`): a
/// host name or an IP address, without a port (Via and Contact add the listener's), and
/// not one that reaches no one in particular (`0.0.0.0`, multicast, broadcast). The error
/// says what is wrong.
pub(super) fn advertisable(host: &str) -> Result<(), &'static str> {
    if let Some(ip) = advertise_ip(host) {
        return reachable(ip);
    }
    if host.contains([':', '[', ']']) || !crate::interop::uri::valid_host(host) {
        return Err("must be a host name or an IP address, without a port");
    }
    Ok(())
}

/// The IP address an advertised host is, if it is one: an IPv4 address, or an IPv6 one
/// bare or in brackets (brackets around anything else make it no address at all).
pub(super) fn advertise_ip(host: &str) -> Option<std::net::IpAddr> {
    let ip: std::net::IpAddr = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner.parse::<std::net::Ipv6Addr>().ok()?.into(),
        None => host.parse().ok()?,
    };
    // `::ffff:a.b.c.d` is that IPv4 address (written so, IPv4 peers were shown an IPv6 one).
    Some(ip.to_canonical())
}

/// Whether peers can be sent to `ip` (an advertised address): not the unspecified address,
/// multicast or broadcast (an IPv4 one written as IPv6 included).
pub(super) fn reachable(ip: std::net::IpAddr) -> Result<(), &'static str> {
    if !super::net::names_one_host(ip) {
        return Err("reaches no one in particular: name the address peers reach this host at");
    }
    if is_link_local(ip) {
        return Err(LINK_LOCAL);
    }
    Ok(())
}

/// Why a link-local address is refused wherever the gateway is told one.
const LINK_LOCAL: &str = "is link-local (fe80::/10): it means something only with its zone \
    (`%eth0`), which sockets, Via and SDP do not carry; use a global or unique-local address";

/// An IPv6 link-local address (fe80::/10).
fn is_link_local(ip: std::net::IpAddr) -> bool {
    matches!(ip, std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// `udp:127.0.0.1:5060`, `tcp:[::1]:5060`. A bare `ip:port` means UDP.
pub fn parse_transport_addr(s: &str) -> Result<(Transport, SocketAddr), String> {
    let (transport, rest) = match s.split_once(':') {
        Some((t, rest)) if t.eq_ignore_ascii_case("udp") => (Transport::Udp, rest),
        Some((t, rest)) if t.eq_ignore_ascii_case("tcp") => (Transport::Tcp, rest),
        Some((t, _)) if t.eq_ignore_ascii_case("tls") => {
            return Err(format!("{s:?}: TLS is not supported yet; use udp: or tcp:"));
        }
        _ => (Transport::Udp, s),
    };
    let addr = rest.parse::<SocketAddr>().map_err(|_| {
        if rest.contains('%') {
            return format!(
                "{s:?}: a zone (`%eth0`) is not kept; use a global or unique-local address"
            );
        }
        format!("{s:?} must be transport:ip:port, e.g. \"udp:127.0.0.1:5060\" (IP addresses only)")
    })?;
    // A zone (`[fe80::1%2]`) would be dropped below, leaving an address that means nothing.
    if is_link_local(addr.ip()) {
        return Err(format!("{s:?} {LINK_LOCAL}"));
    }
    // `[::ffff:a.b.c.d]` is that IPv4 address, as every reader takes a source so written:
    // kept mapped, a peer's answers (from a.b.c.d) would match none of its transactions.
    let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
    // Port 0 is no port: a listener on it gets one at random that Via and Contact cannot
    // name, and nothing can be sent to a peer at it.
    if addr.port() == 0 {
        return Err(format!("{s:?}: port 0 is no port"));
    }
    Ok((transport, addr))
}
