//! Addresses and networks: as the configuration names them (`match`, `allow`), what kind an
//! address is (one host; private, behind NAT), and this host's own (`host_ips`).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use toml::Spanned;

/// The networks of a list (`match`, `allow`, `networks`): each entry that is not one is
/// told to `bad` as "`key` ENTRY is not an IP address or CIDR network", and left out; one
/// written with host bits under its prefix (`198.51.100.7/24`, a host meant, a network
/// taken) is told to `warn`, and read as its whole network.
pub(super) fn parse_nets<'a>(
    entries: impl IntoIterator<Item = &'a Spanned<String>>,
    key: &str,
    mut bad: impl FnMut(&'a Spanned<String>, String),
    mut warn: impl FnMut(&'a Spanned<String>, String),
) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for e in entries {
        let s = e.get_ref().trim();
        match parse_net(s) {
            Some(n) => {
                if s.parse::<IpNet>().is_ok_and(|raw| raw.trunc() != raw) {
                    let m = format!(
                        "warning: {key} {s:?} has host bits under its prefix: read as {n}, the whole network"
                    );
                    warn(e, m);
                }
                nets.push(n);
            }
            None => bad(
                e,
                format!("{key} {s:?} is not an IP address or CIDR network"),
            ),
        }
    }
    nets
}

/// Whether `ip` names one host: not the unspecified address, multicast or broadcast,
/// judged as the address it reaches (`::ffff:a.b.c.d` as its IPv4 address).
pub fn names_one_host(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    !(ip.is_unspecified() || ip.is_multicast() || broadcast)
}

/// The addresses of this host's network interfaces, loopback aside (the relay judges that
/// by where the gateway itself is), each once, an IPv4 one as IPv4. Read from the system
/// when the configuration is loaded (start-up and each reload): an interface that comes
/// up later is known from the next reload.
pub fn host_ips() -> std::io::Result<Vec<IpAddr>> {
    let mut ips: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .map_err(std::io::Error::from)?
        .filter_map(|i| i.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .map(|ip| ip.to_canonical())
        .filter(|ip| !ip.is_loopback())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    Ok(ips)
}

/// Whether an SDP address `sdp` names an endpoint behind NAT, seen from where its
/// signalling comes from: a private address (RFC 1918, shared 100.64/10, link-local,
/// unique local) while the signalling comes from a public one. Sent to before the
/// endpoint's own packets show its public address, RTP would go to a host of our own
/// network of that address, or nowhere.
pub fn behind_nat(sdp: IpAddr, signalling: IpAddr) -> bool {
    let signalling = signalling.to_canonical();
    private(sdp) && !private(signalling) && !signalling.is_loopback()
}

/// Whether `ip` is on a private network (RFC 1918, shared 100.64/10, link-local, unique
/// local): no host on the internet sends from it.
pub fn private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Whether one of `nets` holds `ip`, an IPv4 peer heard on a dual-stack socket
/// (`::ffff:a.b.c.d`) taken as its IPv4 address.
pub fn holds(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| n.contains(&ip))
}

/// An IP address (a network of one) or a CIDR network, host bits cleared. An IPv4 network
/// written in IPv6's mapped form (`::ffff:10.0.0.0/104`) is taken as the IPv4 network it
/// names: sources are compared in their IPv4 form (a dual-stack socket reports IPv4 peers
/// as mapped addresses), so the mapped spelling would otherwise never match.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    let net = s
        .parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))?
        .trunc();
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
    {
        // Its host bits cleared too (the IPv6 form's were cleared as IPv6's, below the
        // mapped prefix only): `::ffff:127.0.0.1/96` is every IPv4 address, not loopback.
        return Ipv4Net::new(v4, v6.prefix_len() - 96)
            .ok()
            .map(|n| IpNet::V4(n.trunc()));
    }
    Some(net)
}

/// What one source is for per-source limits: an IPv4 address, an IPv6 /64 (what one host
/// or one subscriber line is given).
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    // An IPv4 address seen on a dual-stack socket (`::ffff:a.b.c.d`) is that IPv4 address.
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(net.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_networks_and_mapped_forms() {
        for (text, want) in [
            ("10.0.0.5", "10.0.0.5/32"),
            (" 10.1.2.3/8 ", "10.0.0.0/8"),
            ("::1", "::1/128"),
            ("2001:db8::7/32", "2001:db8::/32"),
            ("::ffff:10.0.0.5", "10.0.0.5/32"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:10.1.2.3/104", "10.0.0.0/8"),
            // Every IPv4 address, whatever the address written (before: 127.0.0.1/0, which
            // held them all but read as loopback to the call-back port's warning).
            ("::ffff:127.0.0.1/96", "0.0.0.0/0"),
            // Wider than the mapped block: an IPv6 network as written.
            ("::ffff:0.0.0.0/80", "::/80"),
        ] {
            assert_eq!(parse_net(text), Some(want.parse().unwrap()), "{text}");
        }
        for bad in ["", "scraper", "10.0.0.0/33", "10.0.0.1/"] {
            assert_eq!(parse_net(bad), None, "{bad}");
        }
    }
}
