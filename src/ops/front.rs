//! What the shipped SIP front (`contrib/kamailio/trunkgate-front.cfg`) needs to know of the
//! profiles: the addresses that identify peers, as a Kamailio `permissions` address file.
//! The front drops a request from anywhere else before it keeps any state for it: behind a
//! front every request reaches an instance from the front's address, so the instances
//! cannot drop a stranger's INVITE unanswered and unheld; the front, which would relay it
//! statefully (a `100 Trying`, its failure resent for 32 s), must.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{Config, UnknownSources};

/// The networks (not single hosts) the shipped front's `permissions` keeps
/// (`max_subnets` in its configuration): past it Kamailio drops the rest with a log line
/// only, so the list is refused instead.
pub const MAX_NETWORKS: usize = 8192;

/// Why no list was written.
#[derive(Debug, thiserror::Error)]
#[error(
    "the profiles' `match` lists hold {0} networks, more than the {MAX_NETWORKS} the shipped \
     front keeps (permissions' max_subnets): raise it there and in trunkgate, or merge networks"
)]
pub struct TooManyNetworks(pub usize);

/// The address file: group 1, one line per profile `match` network and per profile
/// `address` no `match` of its own covers (a carrier's SBC answering from it, or sending
/// its BYE), tagged with the profile's name. A first comment says what the front does with
/// other sources, from `[protect] unknown_sources` (`run-front.sh` reads it).
pub fn kamailio_address_list(cfg: &Config) -> Result<String, TooManyNetworks> {
    let mut out = String::new();
    let mode = match cfg.protect.unknown_sources {
        UnknownSources::Drop => "drop",
        UnknownSources::Reject => "reject",
    };
    let _ = writeln!(out, "# unknown_sources = {mode}");
    let _ = writeln!(
        out,
        "# Written by `trunkgate front-sources` from the profiles: the sources the front relays."
    );
    let mut networks = 0;
    let mut profiles: Vec<_> = cfg.profiles.values().collect();
    profiles.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    for p in profiles {
        // A name Kamailio could not read as one token is left out (the tag is a note only).
        let tag = Some(p.name.as_str())
            .filter(|n| n.bytes().all(|b| b.is_ascii_graphic() && b != b'#'))
            .unwrap_or("");
        for net in p.matches.iter().flat_map(halves) {
            let _ = writeln!(out, "1 {} {} 0 {tag}", net.network(), net.prefix_len());
            if net.prefix_len() < net.max_prefix_len() {
                networks += 1;
            }
        }
        let ip = p.address.addr.ip().to_canonical();
        if !p.matches.iter().any(|n| n.contains(&ip)) && !ip.is_unspecified() {
            let len = match ip {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            };
            let _ = writeln!(out, "1 {ip} {len} 0 {tag}");
        }
    }
    if networks > MAX_NETWORKS {
        return Err(TooManyNetworks(networks));
    }
    Ok(out)
}

/// `net`, or its two halves when it is everything (`/0`): Kamailio reads a mask of 0 as a
/// single host's.
fn halves(net: &IpNet) -> Vec<IpNet> {
    if net.prefix_len() > 0 {
        return vec![*net];
    }
    net.subnets(1).map(|s| s.collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_match_network_and_each_address_outside_them_is_listed() {
        let mut cfg = crate::call::tests::config();
        assert!(!cfg.profiles.is_empty());
        let list = kamailio_address_list(&cfg).unwrap();
        assert!(list.starts_with("# unknown_sources = drop\n"), "{list}");
        for p in cfg.profiles.values() {
            for net in &p.matches {
                let line = format!("1 {} {} 0 {}\n", net.network(), net.prefix_len(), p.name);
                assert!(list.contains(&line), "{line} missing from\n{list}");
            }
        }
        // An address outside its profile's `match`: listed on its own, as a host.
        let p = std::sync::Arc::make_mut(cfg.profiles.values_mut().next().unwrap());
        p.address.addr = "198.51.100.77:5060".parse().unwrap();
        p.matches = vec!["203.0.113.0/24".parse().unwrap()];
        let name = p.name.to_string();
        cfg.protect.unknown_sources = UnknownSources::Reject;
        let list = kamailio_address_list(&cfg).unwrap();
        assert!(list.starts_with("# unknown_sources = reject\n"), "{list}");
        assert!(
            list.contains(&format!("1 203.0.113.0 24 0 {name}\n")),
            "{list}"
        );
        assert!(
            list.contains(&format!("1 198.51.100.77 32 0 {name}\n")),
            "{list}"
        );
        // Inside it: not twice.
        let p = cfg
            .profiles
            .values_mut()
            .find(|p| p.name.as_str() == name)
            .unwrap();
        let p = std::sync::Arc::make_mut(p);
        p.address.addr = "203.0.113.9:5060".parse().unwrap();
        let list = kamailio_address_list(&cfg).unwrap();
        assert!(!list.contains("203.0.113.9"), "{list}");
    }

    /// Everything (`/0`) is written as its two halves (Kamailio reads a mask of 0 as a
    /// host's: every other source was refused), and more networks than the front keeps
    /// are refused, not cut short by Kamailio with a log line.
    #[test]
    fn everything_is_written_as_two_halves_and_too_many_networks_are_refused() {
        let mut cfg = crate::call::tests::config();
        let p = std::sync::Arc::make_mut(cfg.profiles.values_mut().next().unwrap());
        p.matches = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
        let list = kamailio_address_list(&cfg).unwrap();
        for half in [
            "1 0.0.0.0 1 0",
            "1 128.0.0.0 1 0",
            "1 :: 1 0",
            "1 8000:: 1 0",
        ] {
            assert!(list.contains(half), "{half} missing from\n{list}");
        }
        assert!(!list.contains(" 0 0 "), "{list}");
        let p = std::sync::Arc::make_mut(cfg.profiles.values_mut().next().unwrap());
        p.matches = (0..=MAX_NETWORKS as u32)
            .map(|i| {
                IpNet::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24).unwrap()
            })
            .collect();
        assert!(kamailio_address_list(&cfg).is_err());
    }
}
