//! What the running gateway asks of its configuration about peers and routes: which
//! profile a source or an address belongs to, which route a call takes, which peers a
//! reload moved.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{Config, DEFAULT_RING_TIMEOUT, PeerName, Profile, Route, auth};
use crate::sip::Transport;
use std::time::Duration;

impl Profile {
    /// Whether `ip` is this peer's by its profile: inside its `match`, or its `address` (a
    /// trunk's SBC outside `match`, which answers and ends its calls).
    pub fn holds(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.address.addr.ip().to_canonical() == ip || self.matches.iter().any(|n| n.contains(&ip))
    }
}

impl Config {
    /// Whether `ip` is the address of the SIP front this instance runs behind.
    pub fn is_front_ip(&self, ip: IpAddr) -> bool {
        self.front
            .is_some_and(|f| f.addr.ip().to_canonical() == ip.to_canonical())
    }

    /// Whether `source` is the SIP front itself: its IP, transport and port, not merely its
    /// host. The front sends from the one socket `[sip] front` names; anything else on its
    /// host (another process, a TCP connection from it) is no front, and its
    /// `X-Trunkgate-Source` is not believed.
    pub fn is_front(&self, source: crate::sip::Target) -> bool {
        self.front.is_some_and(|f| {
            f.transport == source.transport
                && f.addr.port() == source.addr.port()
                && f.addr.ip().to_canonical() == source.addr.ip().to_canonical()
        })
    }

    /// Whether `ip` is a profile's `address` (where requests to it go, so where its answers
    /// come from), whether or not a `match` covers it.
    pub fn is_peer_address(&self, ip: IpAddr) -> bool {
        self.peers.get(&self.profiles).is_address(ip.to_canonical())
    }

    /// Whether some profile matches `ip` (what [`Config::peer_for_source`] finds: the edge
    /// asks it for every datagram). An IPv4 peer heard on a dual-stack socket
    /// (`::ffff:a.b.c.d`) is matched as its IPv4 address.
    pub fn is_peer_source(&self, ip: IpAddr) -> bool {
        self.peers
            .get(&self.profiles)
            .peer_for(ip.to_canonical())
            .is_some()
    }

    /// Whether `from` is the same peer's as `to`, an address a request went to: the profile
    /// whose `match` holds `from` names `to` as its `address` or matches it too.
    pub fn is_same_peer(&self, to: IpAddr, from: IpAddr) -> bool {
        self.peer_for_source(from).is_some_and(|p| p.holds(to))
    }

    /// The peer `ip` belongs to: the profile whose `match` holds it, else the one whose
    /// `address` it is (a carrier's SBC outside its `match`; of several there, the first
    /// name in order).
    pub fn peer_at(&self, ip: IpAddr) -> Option<&PeerName> {
        let ip = ip.to_canonical();
        if let Some(p) = self.peer_for_source(ip) {
            return Some(&p.name);
        }
        self.peers.get(&self.profiles).at_address(ip)
    }

    /// Whether a peer of `old` was heard from addresses this configuration does not know
    /// (see [`Config::moved_sources_from`]): its calls in progress may still hear from them.
    pub fn peers_moved_from(&self, old: &Config) -> bool {
        !self.moved_sources_from(old).is_empty()
    }

    /// Where, in `old`, peers this configuration removed or changed were heard from, and
    /// this one hears no more: each `match` network no profile's `match` here holds all of,
    /// and each `address` no profile here matches or has, once each. A network added to a
    /// peer, a peer renamed, another's `match` that still holds the old one: nothing.
    pub fn moved_sources_from(&self, old: &Config) -> Vec<IpNet> {
        let here = self.peers.get(&self.profiles);
        let mut seen = std::collections::HashSet::new();
        let mut gone = Vec::new();
        for o in old.profiles.values().filter(|o| self.moved(o)) {
            let ip = o.address.addr.ip().to_canonical();
            let address =
                (!self.is_peer_source(ip) && !here.is_address(ip)).then(|| IpNet::from(ip));
            let nets = (o.matches.iter().copied()).filter(|n| !here.covers(*n));
            for n in nets.chain(address) {
                if seen.insert(n) {
                    gone.push(n);
                }
            }
        }
        gone
    }

    /// Whether `old`'s peer is gone from this configuration, matches other sources, or has
    /// another `address` (a request in its calls is heard from its old one too).
    fn moved(&self, old: &Profile) -> bool {
        self.profiles.get(&old.name).is_none_or(|new| {
            new.matches != old.matches
                || new.address.addr.ip().to_canonical() != old.address.addr.ip().to_canonical()
        })
    }

    /// The peer an inbound packet from `ip` belongs to: the profile whose `match` holds it
    /// with the longest prefix.
    pub fn peer_for_source(&self, ip: IpAddr) -> Option<&Arc<Profile>> {
        let name = self.peers.get(&self.profiles).peer_for(ip.to_canonical())?;
        self.profiles.get(name)
    }

    /// The place of the profile whose `match` holds `ip` among the profiles in name order:
    /// a number of its own for each peer (overload control's fair share).
    pub fn peer_order_for_source(&self, ip: IpAddr) -> Option<usize> {
        let idx = self.peers.get(&self.profiles);
        idx.order_of(idx.peer_for(ip.to_canonical())?)
    }

    /// `[sip] advertise` when it is an IP address (bare, or IPv6 in brackets): what our own
    /// requests and connections leave from, where the host has it.
    pub fn advertise_ip(&self) -> Option<IpAddr> {
        super::sip::advertise_ip(&self.advertise)
    }

    /// [`Config::route_from`] for a call from `from` whose number is written two ways (as
    /// dialled, and in its global form): the first route whose prefix either form starts
    /// with.
    pub fn route_for_either(&self, from: &PeerName, dialled: &str, global: &str) -> Option<&Route> {
        self.first_route(Some(from), &[dialled, global])
    }

    /// The first route for a call from `from` dialling `number`; a call the gateway places
    /// itself without a peer to come from (a call-back without `from_peer`) follows only the
    /// `from = "*"` routes.
    pub fn route_from(&self, from: Option<&PeerName>, number: &str) -> Option<&Route> {
        self.first_route(from, &[number])
    }

    fn first_route(&self, from: Option<&PeerName>, forms: &[&str]) -> Option<&Route> {
        (self.routes.iter())
            .find(|r| r.takes(from) && forms.iter().any(|n| n.starts_with(&r.prefix)))
    }

    pub fn profile(&self, name: &PeerName) -> Option<&Arc<Profile>> {
        self.profiles.get(name)
    }

    /// Whether any profile records its calls (`[media] record`).
    pub fn records(&self) -> bool {
        self.profiles.values().any(|p| p.record)
    }
}

/// What the gateway itself is, from its configuration: its own ports and addresses, how
/// long a call may ring.
impl Config {
    /// The UDP ports the gateway listens on itself (`[sip] listen`, the call-back
    /// service), which the media pool must not hand out.
    pub fn own_udp_ports(&self) -> Vec<u16> {
        self.listen
            .iter()
            .filter(|l| l.transport == crate::sip::Transport::Udp)
            .map(|l| l.addr.port())
            .chain(self.callback.listen.map(|a| a.port()))
            .collect()
    }

    /// The gateway's own addresses for Via and Contact.
    pub fn local_addrs(&self) -> crate::sip::LocalAddrs {
        let port = |t: Transport| auth::local_port(&self.listen, t, &self.advertise);
        crate::sip::LocalAddrs {
            host: self.advertise.clone(),
            udp_port: port(Transport::Udp),
            tcp_port: port(Transport::Tcp),
        }
    }

    /// The longest any call may ring: the longest route's or profile's `ring_timeout_s`,
    /// or the default.
    pub fn longest_ring(&self) -> Duration {
        longest_ring(&self.routes, &self.profiles)
    }
}

/// [`Config::longest_ring`] of `routes` and `profiles` (also asked while a configuration
/// is loaded, before it is one).
pub(super) fn longest_ring(
    routes: &[Route],
    profiles: &std::collections::HashMap<PeerName, Arc<Profile>>,
) -> Duration {
    (routes.iter().filter_map(|r| r.ring_timeout))
        .chain(profiles.values().filter_map(|p| p.ring_timeout))
        .fold(DEFAULT_RING_TIMEOUT, Duration::max)
}
