//! What a configuration behind a SIP front (`[sip] front`, "Scaling out" in the README)
//! must not say, and what it is warned of.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::profile::Places;
use super::{ConfigError, PeerName, Profile, Protect, limits};
use crate::sip::{Target, Transport};

/// The checks of the profiles and `[protect]` against `front`: a profile that matches the
/// front's address or sends to it (a message without a readable source stamp counts as the
/// front's own, which such a peer would take as its own; a request to it would go to the
/// front unaddressed) is an error; a peer over TCP (the shipped front relays none) and an
/// overload drop later than the front's wait for an instance are warned of.
pub(super) fn checks(
    front: Target,
    profiles: &HashMap<PeerName, Arc<Profile>>,
    protect: &Protect,
    places_of: &dyn Fn(&Profile) -> Places,
    path: &Path,
    errs: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) {
    let ip = front.addr.ip();
    warnings.extend(limits::outlasts_front(protect).map(|w| ConfigError::file(path, w)));
    for p in profiles.values() {
        let at = places_of(p);
        if p.holds(ip) {
            let c = ip.to_canonical();
            let place = match p.matches.iter().find(|n| n.contains(&c)) {
                Some(n) => at.of_match(p, n),
                None => at.address,
            };
            errs.push(ConfigError::placed(
                &at.path,
                place,
                format!(
                    "{ip} is the address of [sip] front: behind a front peers are told apart \
                     by the source it stamps, and the front itself must be no peer"
                ),
            ));
        }
        if p.address.transport == Transport::Tcp {
            warnings.push(ConfigError::placed(
                &at.path,
                at.address,
                "warning: a tcp: address behind [sip] front: the shipped front relays no TCP \
                 (its disable_tcp), and refuses every request to this peer; relay TCP at your \
                 front or use udp:"
                    .to_string(),
            ));
        }
    }
}

/// How long the shipped front lets an INVITE ring (its `fr_inv_timer`) before it gives up
/// itself with a `408`.
const FRONT_RING: std::time::Duration = std::time::Duration::from_secs(300);

/// A warning when a call may ring (`longest`, any route's or profile's `ring_timeout_s`)
/// longer than the shipped front lets it: the front cuts it first, and the instance records
/// the front's CANCEL as the caller's (`caller_cancel`).
pub(super) fn rings_past_front(longest: std::time::Duration) -> Option<String> {
    (longest > FRONT_RING).then(|| {
        format!(
            "warning: a ring_timeout_s of {} s behind [sip] front: the shipped front gives up \
             an INVITE after {} s (its fr_inv_timer; max_inv_lifetime 330 s), cutting such a \
             call as the caller's CANCEL; raise both in the front's configuration",
            longest.as_secs(),
            FRONT_RING.as_secs()
        )
    })
}
