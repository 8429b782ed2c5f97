//! IP networks looked up by address as the edge does for every datagram: a hash lookup per
//! distinct prefix length (longest first), not a scan of every network.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

use ipnet::IpNet;

/// Networks, each with a value, per address family and prefix length.
#[derive(Debug, Clone)]
pub struct PrefixTable<V> {
    v4: Vec<(u8, HashMap<IpAddr, V>)>,
    v6: Vec<(u8, HashMap<IpAddr, V>)>,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        PrefixTable {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
}

impl<V> PrefixTable<V> {
    fn family(&self, ip: IpAddr) -> &[(u8, HashMap<IpAddr, V>)] {
        match ip {
            IpAddr::V4(_) => &self.v4,
            IpAddr::V6(_) => &self.v6,
        }
    }

    /// `net`'s place (host bits cleared), to fill or update.
    pub fn entry(&mut self, net: IpNet) -> Entry<'_, IpAddr, V> {
        let table = match net {
            IpNet::V4(_) => &mut self.v4,
            IpNet::V6(_) => &mut self.v6,
        };
        let len = net.prefix_len();
        // Longest first: the first hit of a lookup is the longest match.
        let at = match table.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(i) => i,
            Err(i) => {
                table.insert(i, (len, HashMap::new()));
                i
            }
        };
        table[at].1.entry(net.network())
    }

    /// The value of the longest network holding `ip` (canonical: an IPv4 peer is matched in
    /// its IPv4 form).
    pub fn longest(&self, ip: IpAddr) -> Option<&V> {
        self.family(ip).iter().find_map(|(len, nets)| {
            let net = IpNet::new(ip, *len).ok()?.network();
            nets.get(&net)
        })
    }

    /// Whether some network here holds all of `net`.
    pub fn covers(&self, net: IpNet) -> bool {
        (self.family(net.addr()).iter())
            .filter(|(len, _)| *len <= net.prefix_len())
            .any(|(len, nets)| {
                IpNet::new(net.addr(), *len).is_ok_and(|n| nets.contains_key(&n.network()))
            })
    }

    /// How many networks it holds.
    pub fn len(&self) -> usize {
        (self.v4.iter().chain(&self.v6)).map(|(_, n)| n.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_longest_network_holding_an_address_answers() {
        let mut t = PrefixTable::default();
        t.entry(net("10.0.0.0/8")).or_insert("wide");
        t.entry(net("10.1.2.0/24")).or_insert("narrow");
        t.entry(net("2001:db8::/32")).or_insert("six");
        assert_eq!(t.longest("10.1.2.3".parse().unwrap()), Some(&"narrow"));
        assert_eq!(t.longest("10.9.9.9".parse().unwrap()), Some(&"wide"));
        assert_eq!(t.longest("2001:db8::1".parse().unwrap()), Some(&"six"));
        assert_eq!(t.longest("192.0.2.1".parse().unwrap()), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_network_is_covered_only_by_one_as_wide_or_wider() {
        let mut t = PrefixTable::default();
        t.entry(net("10.1.0.0/16")).or_insert(());
        assert!(t.covers(net("10.1.2.0/24")));
        assert!(t.covers(net("10.1.0.0/16")));
        assert!(!t.covers(net("10.0.0.0/8")), "wider than any held");
        assert!(!t.covers(net("10.2.0.0/24")));
        assert!(!t.covers(net("::/0")));
    }
}
