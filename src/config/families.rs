//! Whether the addresses the gateway gives out reach who they are given to. One address
//! family per side of the gateway: `[sip] advertise` and `[media] advertise` name one
//! address each, so a peer reached over the other family is told an address it cannot use;
//! a loopback one reaches no peer elsewhere, nor a front elsewhere; and the relay can bind
//! only an address this host has. Said at load, rather than found on the first call.

use std::net::IpAddr;

use super::error::ConfigError;
use super::profile::Places;
use super::{Config, Listen, Profile, sip};
use crate::sip::Transport;

/// The errors (and a warning) for peer `p` (its places `at`) whose transport, or its
/// registration's, has no listener. Our Via and Contact toward a TCP peer name a TCP port:
/// without a TCP listener they name the UDP one, where its requests and the connections
/// back for our answers find nothing (an error). A UDP peer without a UDP listener is sent
/// nothing at all (each send was dropped at run time, and calls to it timed out), but a
/// peer that only calls in over TCP works: a warning, not a refusal of a configuration
/// that ran before.
pub(super) fn listener_errors(
    p: &Profile,
    at: &Places,
    listen: &[Listen],
    advertise: &str,
    (errs, warnings): (&mut Vec<ConfigError>, &mut Vec<ConfigError>),
) {
    let t = p.address.transport;
    if super::local_port(listen, t, advertise).is_none() {
        let (to, what) = match t {
            Transport::Tcp => (
                &mut *errs,
                "a tcp: address needs a tcp: address in [sip] listen (our Via and Contact \
                 toward this peer)",
            ),
            Transport::Udp => (
                &mut *warnings,
                "warning: a udp: address, and no udp: address in [sip] listen: nothing can be \
                 sent to this peer (it may still call in over TCP)",
            ),
        };
        to.push(ConfigError::placed(&at.path, at.address, what.to_string()));
    }
    if let Some(r) = &p.register
        && super::local_port(listen, r.transport, advertise).is_none()
    {
        let t = r.transport;
        errs.push(ConfigError::placed(
            &at.path,
            at.register_transport,
            format!(
                "[register] over {t} needs a {t} address in [sip] listen (the registered contact)"
            ),
        ));
    }
}

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
    listen: &[Listen],
    warnings: &mut Vec<ConfigError>,
) {
    let peer = p.address.addr.ip();
    if peer.is_unspecified() {
        return;
    }
    let family = |ip: IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let mut say = |what: String| warnings.push(ConfigError::placed(&at.path, at.address, what));
    // Sent from a UDP socket of the other family, every request to it fails (said only in
    // the send failures' summary). `[::]` takes both families.
    let serves = |l: &Listen| {
        l.transport == Transport::Udp
            && (l.addr.ip() == IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
                || l.addr.ip().is_ipv4() == peer.is_ipv4())
    };
    // (Behind a front, `advertise` none, every request goes to the front instead.)
    if advertise.is_some()
        && p.address.transport == Transport::Udp
        && listen.iter().any(|l| l.transport == Transport::Udp)
        && !listen.iter().any(serves)
    {
        say(format!(
            "warning: {} is reached over {} UDP, but no UDP address in [sip] listen is of that \
             family: nothing can be sent to it",
            p.name.0,
            family(peer)
        ));
    }
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

/// The relay binds its sockets to its address (`media_ip`): one this host does not have
/// (`ips`, loopback aside) fails every anchored call: a typo, the host's address seen from
/// inside a container's bridge network, a floating address not here yet. Said when a
/// profile anchors or records.
pub(super) fn relay_not_here(cfg: &Config, ips: &[IpAddr]) -> Option<String> {
    let media = cfg.media_ip.to_canonical();
    let p = cfg.profiles.values().find(|p| p.anchor || p.record)?;
    if media.is_loopback() || media.is_unspecified() || ips.contains(&media) {
        return None;
    }
    Some(format!(
        "warning: the relay's address {media} ([media] advertise, else [sip] advertise) is \
         no address of this host now: unless the kernel lets sockets bind an address it does \
         not have (net.ipv4.ip_nonlocal_bind, for a floating address), every call of {:?} and \
         the other anchored peers would end media_unavailable",
        p.name.0
    ))
}

/// Behind a front at `front`, our Contact (`[sip] advertise`) is where the peers' requests
/// within calls go, through the front, which relays them only to an address it can reach
/// (and has in its list of instances): a loopback one while the front is elsewhere, or one
/// of the other family, it cannot.
pub(super) fn front_cannot_reach(advertise: &str, front: IpAddr) -> Option<String> {
    let ours = sip::advertise_ip(advertise)?;
    let unreachable =
        (ours.is_loopback() && !front.is_loopback()) || ours.is_ipv4() != front.is_ipv4();
    unreachable.then(|| {
        format!(
            "warning: [sip] advertise {ours} cannot be reached from [sip] front {front}: the \
             peers' requests within calls come to the front for that address, and the front \
             refuses them (name this instance there as in the front's dispatcher list)"
        )
    })
}
