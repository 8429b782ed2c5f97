//! The profiles' `match` networks and `address`es indexed for the edge, which asks about
//! every datagram's source: a hash lookup per distinct prefix length instead of a scan
//! of every profile (a stranger's flood against thousands of peers cost a scan each).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;

use super::prefix_table::PrefixTable;
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

/// Each `match` network → the profile that owns it (loading refuses two profiles claiming
/// one network; at equal networks all the same, the first name in order, as the scan this
/// replaced took).
#[derive(Debug, Default)]
pub(super) struct PeerIndex {
    nets: PrefixTable<PeerName>,
    /// Every profile's `address` IP, canonical → the profile there (of several at one
    /// address, trunk-group variants on one SBC, the first name in order, at every reload
    /// alike: a scan of the profiles' map took whichever its random order gave first).
    addresses: HashMap<IpAddr, PeerName>,
    /// Each registering profile's `contact_user` → those profiles, in name order: an
    /// INVITE to a registered contact is its trunk's (`Config::peer_for_contact`), looked
    /// up by the user, not by a scan of every profile for every INVITE.
    contacts: HashMap<String, Vec<PeerName>>,
    /// Each profile's place in name order: overload control's fair share tells peers apart
    /// by it (a hash of the name put two peers in one slot now and then, for good).
    order: HashMap<PeerName, usize>,
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
        let mut named: Vec<(&PeerName, &Arc<Profile>)> = profiles.iter().collect();
        named.sort_by_key(|(name, _)| *name);
        // In name order, so that where profiles share a network, an address or a contact
        // user, the first by name is taken first.
        for (place, (name, p)) in named.into_iter().enumerate() {
            idx.order.insert(name.clone(), place);
            (idx.addresses.entry(p.address.addr.ip().to_canonical()))
                .or_insert_with(|| name.clone());
            for n in &p.matches {
                idx.nets.entry(*n).or_insert_with(|| name.clone());
            }
            if let Some(r) = &p.register {
                let owners = idx.contacts.entry(r.contact_user.clone()).or_default();
                owners.push(name.clone());
            }
        }
        idx
    }

    /// The profile whose `match` holds `ip` (canonical) with the longest prefix.
    pub(super) fn peer_for(&self, ip: IpAddr) -> Option<&PeerName> {
        self.nets.longest(ip)
    }

    /// Whether some profile's `match` holds all of `net`.
    pub(super) fn covers(&self, net: IpNet) -> bool {
        self.nets.covers(net)
    }

    /// Whether `ip` (canonical) is a profile's `address`.
    pub(super) fn is_address(&self, ip: IpAddr) -> bool {
        self.addresses.contains_key(&ip)
    }

    /// The registering profiles whose `contact_user` is `user`, in name order.
    pub(super) fn registered_as(&self, user: &str) -> &[PeerName] {
        self.contacts.get(user).map_or(&[], Vec::as_slice)
    }

    /// The profile whose `address` `ip` (canonical) is.
    pub(super) fn at_address(&self, ip: IpAddr) -> Option<&PeerName> {
        self.addresses.get(&ip)
    }

    /// The place of profile `name` in name order.
    pub(super) fn order_of(&self, name: &PeerName) -> Option<usize> {
        self.order.get(name).copied()
    }
}
