//! Profiles (`profiles/NAME.toml`): validating each file into a [`Profile`], with every
//! problem reported at its file:line:col (the folder is read in `folder.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use toml::Spanned;

use super::error::{Place, one_of};
use super::file::ProfileFile;
use super::toml_read::toml_error;
use super::{ConfigError, PeerName, Profile, Role, auth, limits, parse_transport_addr};
use crate::interop::causes::{CausePolicy, Q850Cause};
use crate::interop::transfer::TransferMode;
use crate::media::Latch;
use crate::sip::Target;

mod folder;
mod media_sources;
pub(super) use folder::{ProfileSource, profile_errors_beside};
mod media_timeouts;
mod policies;
mod sip_allow;
mod sip_timers;
use policies::{header_policy, prack_policy, uri_policy};
pub use sip_timers::{DEFAULT_PROBE, PING_RANGE, PROBE_RANGE, Ping};

/// Where a loaded profile's file says what the checks across files look at, so that their
/// errors point at the line to edit.
#[derive(Clone)]
pub(super) struct Places {
    pub path: PathBuf,
    /// Each `match` entry, in the order of [`Profile::matches`].
    pub matches: Vec<Place>,
    /// What gives `[register]` its transport: its `transport`, else the profile's `address`.
    pub register_transport: Place,
    /// The profile's `address`.
    pub address: Place,
}

impl Places {
    /// Where a profile's file is, its places unknown (errors then name its first line).
    pub fn unknown(path: PathBuf) -> Places {
        Places {
            path,
            matches: Vec::new(),
            register_transport: Place { line: 1, col: 1 },
            address: Place { line: 1, col: 1 },
        }
    }

    /// The place of the `match` entry that gave `net`, else of the file's first line.
    pub fn of_match(&self, p: &Profile, net: &IpNet) -> Place {
        p.matches
            .iter()
            .position(|n| n == net)
            .and_then(|i| self.matches.get(i).copied())
            .unwrap_or(Place { line: 1, col: 1 })
    }
}

/// The profiles that loaded, by name, with where their files say what; and the file stems
/// of those that did not.
pub(super) struct Loaded {
    pub profiles: HashMap<PeerName, Arc<Profile>>,
    pub places: HashMap<PeerName, Places>,
    pub broken: std::collections::HashSet<String>,
}

pub(super) fn load_profiles(
    sources: Vec<(PathBuf, Option<String>)>,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) -> Loaded {
    let mut out = HashMap::new();
    let mut places = HashMap::new();
    let mut broken = std::collections::HashSet::new();
    let mut seen_nets: HashMap<IpNet, (PeerName, PathBuf, Place)> = HashMap::new();
    for (path, text) in sources {
        let loaded = text.and_then(|text| load_profile(&path, &text, errs, warns));
        if loaded.is_none()
            && let Some(stem) = path.file_stem()
        {
            broken.insert(stem.to_string_lossy().into_owned());
        }
        if let Some((p, at)) = loaded {
            for (n, place) in p.matches.iter().zip(&at.matches) {
                if let Some((other, _, _)) = seen_nets.get(n).filter(|(o, ..)| *o == p.name) {
                    // One network written twice (`10.0.0.5` and `10.0.0.5/32`) is no
                    // other peer's claim.
                    warns.push(ConfigError::placed(
                        &path,
                        *place,
                        format!("warning: match {n} is listed twice in peer {other}"),
                    ));
                } else if let Some((other, _, _)) = seen_nets.get(n) {
                    errs.push(ConfigError::placed(
                        &path,
                        *place,
                        format!("match {n} is also claimed by peer {other}: inbound traffic would be ambiguous"),
                    ));
                } else {
                    seen_nets.insert(*n, (p.name.clone(), path.clone(), *place));
                }
            }
            places.insert(p.name.clone(), at);
            out.insert(p.name.clone(), Arc::new(p));
        }
    }
    warn_nested_matches(&seen_nets, &out, warns);
    Loaded {
        profiles: out,
        places,
        broken,
    }
}

/// A `match` network inside another peer's is allowed (the longest prefix wins: a carrier's
/// own server within its provider's range), but said: an operator who meant the wider one
/// learns that part of it is another peer's.
fn warn_nested_matches(
    nets: &HashMap<IpNet, (PeerName, PathBuf, Place)>,
    profiles: &HashMap<PeerName, Arc<Profile>>,
    warns: &mut Vec<ConfigError>,
) {
    let mut found: Vec<ConfigError> = Vec::new();
    for (inner, (peer, path, place)) in nets {
        // A network this wide (`0.0.0.0/0`, `::/0`) makes every stranger the peer: no 403
        // for `unknown_sources`, no cool-down of the source guard. Meant, it is said once.
        let widest = if inner.addr().is_ipv4() { 8 } else { 16 };
        if inner.prefix_len() < widest {
            found.push(ConfigError::placed(
                path,
                *place,
                format!(
                    "warning: match {inner} covers a large part of the internet: every source \
                     in it is {peer}'s, strangers included (no unknown_sources refusal, no \
                     source cool-down)"
                ),
            ));
        }
        // Each shorter prefix of this network, looked up (the networks are stored cut to
        // their prefix): at most 128 lookups a network, not a pass over every other one.
        let outers = (0..inner.prefix_len())
            .filter_map(|len| IpNet::new(inner.addr(), len).ok().map(|n| n.trunc()))
            .filter_map(|n| nets.get_key_value(&n));
        for (outer, (other, _, _)) in outers {
            if other != peer {
                // A registering peer's contact outranks the prefix (`peer_for_contact`),
                // unless the inner peer registers the same contact user (the source decides).
                let user_of = |name: &PeerName| {
                    (profiles.get(name)).and_then(|p| p.register.as_ref().map(|r| &r.contact_user))
                };
                let contact = (profiles.get(other))
                    .and_then(|o| o.register.as_ref())
                    .filter(|r| user_of(peer) != Some(&r.contact_user))
                    .map(|r| {
                        format!(
                            ", but requests from there to {:?}, {other}'s registered contact \
                             user, are {other}'s",
                            r.contact_user
                        )
                    })
                    .unwrap_or_default();
                found.push(ConfigError::placed(
                    path,
                    *place,
                    format!(
                        "warning: match {inner} lies within peer {other}'s {outer}: traffic from \
                         {inner} is {peer}'s (the longest prefix wins){contact}"
                    ),
                ));
            }
        }
    }
    // In file order, whatever the map's.
    found.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    warns.extend(found);
}

fn load_profile(
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) -> Option<(Profile, Places)> {
    let file: ProfileFile = match super::toml_read::from_toml(text) {
        Ok(f) => f,
        Err(es) => {
            errs.extend(es.iter().map(|e| toml_error::<ProfileFile>(path, text, e)));
            return None;
        }
    };
    let before = errs.len();
    let at = |s: &Spanned<String>, msg: String| ConfigError::at(path, text, s.span().start, msg);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file.name.get_ref() != &stem {
        errs.push(at(
            &file.name,
            format!(
                "name {:?} must equal the file name {stem:?}",
                file.name.get_ref()
            ),
        ));
    }
    if file.name.get_ref() == "*" || file.name.get_ref().is_empty() {
        errs.push(at(&file.name, "name must not be empty or \"*\"".into()));
    }
    let role = match file.role.get_ref().as_str() {
        "trunk" => Role::Trunk,
        "internal" => Role::Internal,
        other => {
            errs.push(at(
                &file.role,
                format!("role {other:?} must be \"trunk\" or \"internal\""),
            ));
            Role::Trunk
        }
    };
    let address = match parse_transport_addr(file.address.get_ref()) {
        // Sent to, 0.0.0.0 is this host (the gateway itself, at the shipped ports), and a
        // multicast or broadcast address no one peer: refused here, not found at call time.
        Ok((_, addr)) if !super::net::names_one_host(addr.ip()) => {
            errs.push(at(
                &file.address,
                format!(
                    "address {}: the address of no one host (name the peer's own address)",
                    addr.ip()
                ),
            ));
            Target::udp(SocketAddr::from(([0, 0, 0, 0], 0)))
        }
        Ok((transport, addr)) => Target {
            transport,
            addr,
            conn: None,
            listener: None,
        },
        Err(m) => {
            errs.push(at(&file.address, m));
            Target::udp(SocketAddr::from(([0, 0, 0, 0], 0)))
        }
    };
    let matches = super::net::parse_nets(
        &file.match_,
        "match",
        |m, msg| errs.push(at(m, msg)),
        |m, msg| warns.push(at(m, msg)),
    );
    if file.match_.is_empty() {
        warns.push(at(
            &file.name,
            "warning: no `match`: nothing that comes to the gateway is taken as this peer's \
             (calls from it are a stranger's; calls to it and their answers work)"
                .to_string(),
        ));
    }
    let domain = match &file.domain {
        Some(d) if !crate::interop::uri::valid_host(d.get_ref()) => {
            errs.push(at(
                d,
                format!(
                    "domain {:?} must be a host name or an IP address",
                    d.get_ref()
                ),
            ));
            String::new()
        }
        // A URI's host: an IPv6 address goes in brackets (RFC 3261 §19.1.1).
        Some(d) => match d.get_ref().parse::<std::net::Ipv6Addr>() {
            Ok(ip) => format!("[{ip}]"),
            Err(_) => d.get_ref().clone(),
        },
        None => crate::sip::uri_host(&address.addr.ip().to_string()),
    };
    let invite_timeout = sip_timers::invite_timeout(&file.sip, path, text, errs);
    let probe = sip_timers::probe(&file.sip, role, path, text, errs);
    let ring_timeout = match &file.ring_timeout_s {
        Some(t) => super::ring_timeout_s(*t.get_ref())
            .map_err(|m| errs.push(ConfigError::at(path, text, t.span().start, m)))
            .ok(),
        None => None,
    };
    let uri = uri_policy(&file.uri, path, text, errs);
    // A local number in a tel: URI carries a phone-context: `+CC`, or the domain, which must
    // then be a domain name (RFC 3966 §5.1.5: an IP address is not one).
    // Only "tel": with "keep" a local number is written as tel: only when the caller used
    // tel:, and a profile that works for every other call must not fail to load for it.
    if let Some(s) = &file.uri.scheme
        && uri.scheme == crate::interop::uri::UriScheme::Tel
        && uri.country_code.is_none()
        && crate::interop::uri::host_of(&domain)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok()
    {
        errs.push(at(
            s,
            format!(
                "[uri] scheme {:?} needs country_code or a domain name: a local number's tel: URI takes either as its phone-context, and the domain here is an IP address",
                s.get_ref()
            ),
        ));
    }
    let prack = prack_policy(&file.prack, path, text, errs);
    let ptime = match &file.sdp.ptime {
        Some(p) if *p.get_ref() == 0 => None,
        Some(p) if (5..=200).contains(p.get_ref()) => {
            let ms = *p.get_ref();
            if ms % 10 != 0 {
                let msg = format!(
                    "warning: ptime {ms} is no multiple of 10 ms: G.729 (10 ms frames), AMR and \
                     many phones can neither send nor take it (20 suits G.711 and G.729)"
                );
                warns.push(ConfigError::at(path, text, p.span().start, msg));
            }
            Some(ms as u16)
        }
        Some(p) => {
            errs.push(ConfigError::at(
                path,
                text,
                p.span().start,
                "[sdp] ptime must be 0 (leave as is) or 5..=200 ms",
            ));
            None
        }
        None => None,
    };
    let mut causes = CausePolicy {
        send_reason: file.causes.send_reason,
        ..CausePolicy::default()
    };
    for (k, v) in &file.causes.map {
        match k.get_ref().parse::<u16>() {
            Ok(status) if (300..=699).contains(&status) => {}
            _ => errs.push(ConfigError::at(
                path,
                text,
                k.span().start,
                format!(
                    "[causes.map] key {:?} must be a SIP status 300..=699",
                    k.get_ref()
                ),
            )),
        }
        if !(1..=127).contains(v.get_ref()) {
            errs.push(ConfigError::at(
                path,
                text,
                v.span().start,
                "[causes.map] values are Q.850 causes 1..=127",
            ));
        }
        if let Ok(status) = k.get_ref().parse::<u16>() {
            causes.map.insert(status, Q850Cause(*v.get_ref() as u16));
        }
    }
    if let Some(r) = file.media.repacketize.as_ref().filter(|r| *r.get_ref())
        && file.sdp.ptime.as_ref().is_none_or(|p| *p.get_ref() == 0)
    {
        errs.push(ConfigError::at(
            path,
            text,
            r.span().start,
            "[media] repacketize needs [sdp] ptime (the packet size to produce)",
        ));
    }
    // (A ptime out of its own range was reported above, and is None here.)
    let max_repack = crate::media::repacketize::MAX_PTIME_MS;
    if file.media.repacketizes()
        && let (Some(ms), Some(p)) = (ptime, &file.sdp.ptime)
        && ms > max_repack
    {
        errs.push(ConfigError::at(
            path,
            text,
            p.span().start,
            format!(
                "[media] repacketize sends packets of [sdp] ptime: at most {max_repack} ms of G.711 fit one packet of {} bytes",
                crate::media::MAX_PACKET
            ),
        ));
    }
    let latch = match &file.media.latch {
        Some(l) => {
            let choices = [("any", Latch::Any), ("sdp-ip", Latch::SdpIp)];
            one_of(l, "[media] latch", &choices, (path, text), errs).unwrap_or(Latch::Any)
        }
        // A trunk's media comes from the addresses its SDP names (carriers do not sit behind
        // NAT); a phone may well be behind one.
        None if role == Role::Trunk => Latch::SdpIp,
        None => Latch::Any,
    };
    let rebind_after_silence = media_sources::rebind_after_silence(&file.media, path, text, errs);
    let max_streams = media_sources::max_streams(&file.media, path, text, errs);
    let media_networks = media_sources::media_networks(&file.media, path, text, (errs, warns));
    media_sources::warn_relay_only(&file.media, path, text, warns);
    let (rtp_timeout, rtp_hold_timeout) =
        media_timeouts::media_timeouts(&file.media, path, text, errs, warns);
    let limits = limits::peer_limits(
        &file.limits,
        |offset, msg| ConfigError::at(path, text, offset, msg),
        errs,
    );
    let peer_auth = auth::peer_auth(&file, path, text, errs, warns);
    let allow = sip_allow::allowed_methods(file.sip.allow.as_deref(), path, text, (errs, warns));
    let ping = sip_timers::ping(&file.sip, allow.as_deref(), path, text, (errs, warns));
    let transfer = file
        .transfer
        .mode
        .as_ref()
        .and_then(|m| {
            let choices = [
                ("refuse", TransferMode::Refuse),
                ("relay", TransferMode::Relay),
            ];
            one_of(m, "[transfer] mode", &choices, (path, text), errs)
        })
        .unwrap_or_default();
    let headers = header_policy(&file.headers, role, path, text, errs);
    let session_timer =
        super::session_timer::session_timer_policy(&file.session_timer, path, text, errs);
    let places = Places {
        path: path.to_path_buf(),
        matches: Place::of_each(text, file.match_.iter().map(|m| m.span().start)),
        register_transport: Place::of(
            text,
            file.register
                .as_ref()
                .and_then(|r| r.transport.as_ref())
                .unwrap_or(&file.address)
                .span()
                .start,
        ),
        address: Place::of(text, file.address.span().start),
    };
    let profile = (errs.len() == before).then(|| Profile {
        name: PeerName(file.name.into_inner().into()),
        role,
        address,
        matches,
        domain,
        ring_timeout,
        invite_timeout,
        probe,
        ping,
        uri,
        prack,
        ptime,
        causes,
        anchor: file.media.anchors(),
        record: file.media.record,
        latch,
        rtp_timeout,
        rtp_hold_timeout,
        repacketize: file.media.repacketizes(),
        rebind_after_silence,
        max_streams,
        media_networks,
        limits,
        auth: peer_auth.0,
        register: peer_auth.1,
        session_timer,
        allow,
        transfer,
        transfer_to_trunks: file
            .transfer
            .to_trunks
            .as_ref()
            .is_some_and(|t| *t.get_ref()),
        headers,
    })?;
    Some((profile, places))
}
