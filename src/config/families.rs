//! One address family per side of the gateway: `[sip] advertise` and `[media] advertise`
//! name one address each, so a peer reached over the other family is told an address it
//! cannot use. Said at load, at the peer's `address`, rather than found on the first call.

use std::net::IpAddr;

use super::error::ConfigError;
use super::profile::Places;
use super::{Profile, sip};

/// The warnings for peer `p` (its places `at`): its `address` in another family than the
/// advertised SIP address (it is told to send within calls where it cannot), or, anchored,
/// than the relay's (its media has nowhere to go: the relay's sockets are of one family);
/// or elsewhere than loopback, while either is loopback. `advertise` is `None` behind a
/// front, whose address the peers are told instead.
pub(super) fn family_warnings(
    p: &Profile,
    at: &Places,
    advertise: Option<&str>,
    media_ip: IpAddr,
    warnings: &mut Vec<ConfigError>,
) {
    let peer = p.address.addr.ip();
    if peer.is_unspecified() {
        return;
    }
    let family = |ip: IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let mut say = |what: String| warnings.push(ConfigError::placed(&at.path, at.address, what));
    let sip_ip = advertise.and_then(sip::advertise_ip);
    if let Some(sip_ip) = sip_ip
        && sip_ip.is_ipv4() != peer.is_ipv4()
    {
        say(format!(
            "warning: {} is reached over {}, but [sip] advertise {sip_ip} is {}: its requests \
             within calls go to an address it cannot reach",
            p.name.0,
            family(peer),
            family(sip_ip)
        ));
    }
    // A loopback address reaches nobody else: the example configuration's, kept when the
    // peers moved to real addresses.
    if let Some(sip_ip) = sip_ip
        && sip_ip.is_loopback()
        && !peer.is_loopback()
    {
        say(format!(
            "warning: {} is at {peer}, but [sip] advertise {sip_ip} is loopback: it is told \
             to send its requests within calls there",
            p.name.0
        ));
    }
    if (p.anchor || p.record) && media_ip.is_loopback() && !peer.is_loopback() {
        say(format!(
            "warning: {} is at {peer} and its media anchored, but the relay's address \
             {media_ip} is loopback: its calls would have no audio",
            p.name.0
        ));
    }
    if p.anchor && media_ip.is_ipv4() != peer.is_ipv4() {
        say(format!(
            "warning: {} is reached over {} and its media anchored, but the relay's address \
             {media_ip} is {}: its calls would have no audio",
            p.name.0,
            family(peer),
            family(media_ip)
        ));
    }
}
