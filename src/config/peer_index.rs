//! The profiles' `match` networks and `address`es indexed for the edge, which asks about
//! every datagram's source: a hash lookup per distinct prefix length instead of a scan
//! of every profile (a stranger's flood against thousands of peers cost a scan each).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;

use super::{PeerName, Profile};

/// [`PeerIndex`] built at the first lookup. A clone starts without one: a test edits a
/// cloned configuration's profiles, and the index is rebuilt from what it then holds.
#[derive(Debug, Default)]
pub struct PeerLookup(OnceLock<Arc<PeerIndex>>);

impl Clone for PeerLookup {
    fn clone(&self) -> Self {
        PeerLookup::default()
    }
}

impl PeerLookup {
    pub(super) fn get(&self, profiles: &HashMap<PeerName, Arc<Profile>>) -> &PeerIndex {
        let idx = self.0.get_or_init(|| Arc::new(PeerIndex::of(profiles)));
        debug_assert_eq!(
            idx.built_from,
            profiles.len(),
            "Config::profiles changed after a lookup"
        );
        idx
    }
}

/// Per address family, per prefix length (longest first), each network's address → the
/// profile that owns it (loading refuses two profiles claiming one network; at equal
/// networks all the same, the first name in order, as the scan this replaced took).
#[derive(Debug, Default)]
pub(super) struct PeerIndex {
    v4: Vec<(u8, HashMap<IpAddr, PeerName>)>,
    v6: Vec<(u8, HashMap<IpAddr, PeerName>)>,
    /// Every profile's `address` IP, canonical.
    addresses: HashSet<IpAddr>,
    /// How many profiles it was built from: a test that edits `Config::profiles` after a
    /// lookup would read a stale index (checked in debug builds).
    pub(super) built_from: usize,
}

impl PeerIndex {
    pub(super) fn of(profiles: &HashMap<PeerName, Arc<Profile>>) -> PeerIndex {
        let mut idx = PeerIndex {
            built_from: profiles.len(),
            ..PeerIndex::default()
        };
        for p in profiles.values() {
            idx.addresses.insert(p.address.addr.ip().to_canonical());
            for n in &p.matches {
                let table = match n {
                    IpNet::V4(_) => &mut idx.v4,
                    IpNet::V6(_) => &mut idx.v6,
                };
                let len = n.prefix_len();
                let at = match table.iter().position(|(l, _)| *l == len) {
                    Some(i) => i,
                    None => {
                        table.push((len, HashMap::new()));
                        table.len() - 1
                    }
                };
                table[at]
                    .1
                    .entry(n.network())
                    .and_modify(|owner| {
                        if p.name < *owner {
                            owner.clone_from(&p.name);
                        }
                    })
                    .or_insert_with(|| p.name.clone());
            }
        }
        for table in [&mut idx.v4, &mut idx.v6] {
            table.sort_unstable_by_key(|t| std::cmp::Reverse(t.0));
        }
        idx
    }

    /// The profile whose `match` holds `ip` (canonical) with the longest prefix.
    pub(super) fn peer_for(&self, ip: IpAddr) -> Option<&PeerName> {
        let table = match ip {
            IpAddr::V4(_) => &self.v4,
            IpAddr::V6(_) => &self.v6,
        };
        table.iter().find_map(|(len, nets)| {
            let net = IpNet::new(ip, *len).ok()?.network();
            nets.get(&net)
        })
    }

    /// Whether `ip` (canonical) is a profile's `address`.
    pub(super) fn is_address(&self, ip: IpAddr) -> bool {
        self.addresses.contains(&ip)
    }
}
