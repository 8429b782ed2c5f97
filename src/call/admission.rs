//! Whether a new INVITE becomes a call, decided from the request and the configuration
//! alone (a pure function, also used by `trunkgate explain`): the dialled and calling
//! numbers, the route, the extensions the caller requires, and the refusals with their SIP
//! status, CDR tag and Q.850 cause.

use std::time::Duration;

use super::reliable::offers_100rel;
use crate::cdr::CallTag;
use crate::config::{Config, DEFAULT_RING_TIMEOUT, PeerName, Profile, Route};
use crate::interop::causes::Q850Cause;
use crate::interop::prack::PrackMode;
use crate::interop::session_timer::UasTerms;
use crate::interop::uri::{NumberFormat, UriPolicy, normalise_number};
use crate::sip::{Hdr, NumberUri, Request, dialled_number, session, strip_visual_separators};

/// Option tags we can honour in a caller's `Require` (100rel unless the caller's profile
/// disables it; `timer` unless its `[session_timer]` is off). Anything else gets 420 (RFC
/// 3261 §8.2.2.3).
const SUPPORTED_EXTENSIONS: &[&str] = &["100rel"];

/// What an OPTIONS from `peer` is told the gateway supports as the UAS of its calls
/// (`Supported`): 100rel unless its `[prack]` is off, `timer` unless its
/// `[session_timer]` is. `None`: neither.
pub(super) fn supported_for(peer: &Profile) -> Option<&'static str> {
    let reliable = peer.prack.mode != PrackMode::Disabled;
    match (reliable, peer.session_timer.supported()) {
        (true, true) => Some("100rel, timer"),
        (true, false) => Some("100rel"),
        (false, true) => Some("timer"),
        (false, false) => None,
    }
}

/// The option tags `req` requires that the gateway does not support (RFC 3261 §8.2.2.3:
/// refused with 420 naming them); `timers`: session timers are on for its peer. `None` when
/// one is no token (RFC 3261 §25.1): it cannot be named back, and the request is malformed.
pub(super) fn unsupported_required(req: &Request, timers: bool) -> Option<Vec<String>> {
    let unsupported: Vec<String> = req
        .header_tokens(&Hdr::REQUIRE)
        .into_iter()
        .filter(|t| {
            let ours = SUPPORTED_EXTENSIONS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(t))
                || (timers && t.eq_ignore_ascii_case(session::OPTION_TAG));
            !ours
        })
        .collect();
    unsupported
        .iter()
        .all(|t| is_token(t))
        .then_some(unsupported)
}

/// A call to set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub number: String,
    pub caller: String,
    /// Peers to try, in order.
    pub targets: Vec<PeerName>,
    pub ring_timeout: Duration,
    /// The route sets no ring time: each peer rings for its own (`RoutePlan::ring_per_peer`).
    pub ring_per_peer: bool,
    /// Our provisionals to the caller go reliably (RFC 3262).
    pub reliable_to_caller: bool,
}

/// A call refused before routing: one response and one CDR.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    pub tag: CallTag,
    pub cause: Q850Cause,
    /// Headers the response must carry (Unsupported, Require, Retry-After).
    pub extra: Vec<(Hdr, String)>,
    pub number: String,
    pub caller: String,
}

/// The dialled number (global form: a tel: phone-context applied) and the calling number
/// (`anonymous` when the From carries none), with no dialling plan known: a local number with
/// a global context is the context's digits, then the number's. For telling two requests'
/// numbers apart (a loop); a call is routed on [`numbers_in`].
pub fn numbers(req: &Request) -> (Option<String>, String) {
    read_numbers(req, |_| UriPolicy::default())
}

/// [`numbers`] as a call is routed, billed and sent on: a local number with a global
/// `phone-context` read as dialled in that place ([`place_policy`]), so `0044…` dialled
/// within `+86` is `+44…`, not `+860044…` (which a route for `+86` would have let through
/// to a callee reading it as `+44…`).
pub fn numbers_in(
    cfg: &Config,
    sender: Option<&Profile>,
    req: &Request,
) -> (Option<String>, String) {
    read_numbers(req, |n| place_policy(cfg, sender, n))
}

fn read_numbers(
    req: &Request,
    policy: impl Fn(&NumberUri) -> UriPolicy,
) -> (Option<String>, String) {
    let read = |n: NumberUri| normalise_number(&n, &policy(&n));
    let number = dialled_number(&req.uri()).map(read);
    let caller = req
        .from_uri()
        .and_then(|u| dialled_number(&u))
        .map(read)
        .unwrap_or_else(|| "anonymous".into());
    (number, caller)
}

/// How `n` is read into global form. A local number with a global `phone-context` is dialled
/// in that place (RFC 3966 §5.1.5), with its prefixes: the sender's `[uri]` plan when its
/// `country_code` is that place's, else the plan of the first profile (by name) whose
/// `country_code` is; with none, the digits follow the context as dialled. Routing, the CDR
/// and every callee's INVITE take this one reading.
fn place_policy(cfg: &Config, sender: Option<&Profile>, n: &NumberUri) -> UriPolicy {
    let Some(place) = (n.phone_context.as_deref())
        .filter(|c| c.starts_with('+'))
        .map(strip_visual_separators)
    else {
        return UriPolicy::default();
    };
    let place = place.trim_start_matches('+');
    match sender.filter(|p| p.uri.country_code.as_deref() == Some(place)) {
        Some(p) => UriPolicy {
            country_code: p.uri.country_code.clone(),
            international_prefix: p.uri.international_prefix.clone(),
            national_prefix: p.uri.national_prefix.clone(),
            // (Its service numbers stay local: `tel:10086;phone-context=+86` is no `+86…`.)
            short_code_digits: p.uri.short_code_digits,
            ..UriPolicy::default()
        },
        // That country's plan, as every profile carries it (`Config::link_dial_plans`:
        // the first profile by name of that country), which `normalise_number` reads.
        None => UriPolicy {
            places: cfg.dial_plans(),
            ..UriPolicy::default()
        },
    }
}

/// The dialled number in E.164 as the ingress peer's callers dial (its `country_code`,
/// `international_prefix`, `national_prefix`): `0044…` and `010…` from a PBX in China are
/// `+44…` and `+8610…`, so a route written `+44` takes both ways of dialling it. Only a
/// number dialled with one of those prefixes: bare digits (`20001`) may be an extension of
/// the peer's own rather than a national number. `None` without a `country_code` (the
/// peer's dialling plan is unknown).
fn global_number(ingress: &Profile, req: &Request) -> Option<String> {
    let uri = &ingress.uri;
    uri.country_code.as_ref()?;
    let n = dialled_number(&req.uri())?;
    let digits = strip_visual_separators(&n.number);
    let dialled_with = |p: &str| !p.is_empty() && digits.starts_with(p);
    if n.phone_context.is_some()
        || !(dialled_with(&uri.international_prefix) || dialled_with(&uri.national_prefix))
    {
        return None;
    }
    let plan = UriPolicy {
        number: NumberFormat::E164,
        ..uri.clone()
    };
    Some(normalise_number(&n, &plan))
}

/// Decide what becomes of an initial INVITE from `ingress`.
pub fn admit(
    cfg: &Config,
    ingress: &Profile,
    req: &Request,
    draining: bool,
) -> Result<Admitted, Refusal> {
    let (number, caller) = numbers_in(cfg, Some(ingress), req);
    let refuse = |status, reason, tag, cause, extra: Vec<(Hdr, String)>| Refusal {
        status,
        reason,
        tag,
        cause,
        extra,
        number: number.clone().unwrap_or_default(),
        caller: caller.clone(),
    };
    if draining {
        return Err(refuse(
            503,
            "Service Unavailable",
            CallTag::Shutdown,
            Q850Cause::TEMPORARY_FAILURE,
            vec![(Hdr::RETRY_AFTER, "30".into())],
        ));
    }
    if matches!(req.max_forwards(), Some(Ok(0))) {
        return Err(refuse(
            483,
            "Too Many Hops",
            CallTag::CallerRejected,
            Q850Cause(25),
            vec![],
        ));
    }
    let Some(unsupported) = unsupported_required(req, ingress.session_timer.supported()) else {
        return Err(refuse(
            400,
            "Bad Require",
            CallTag::CallerRejected,
            Q850Cause::INTERWORKING,
            vec![],
        ));
    };
    if !unsupported.is_empty() {
        return Err(refuse(
            420,
            "Bad Extension",
            CallTag::CallerRejected,
            Q850Cause::INTERWORKING,
            vec![(Hdr::UNSUPPORTED, unsupported.join(", "))],
        ));
    }
    // The caller's session interval against its profile's `[session_timer]` (RFC 4028 §9).
    match ingress.session_timer.as_uas(req) {
        UasTerms::TooBrief(min) => {
            return Err(refuse(
                422,
                "Session Interval Too Small",
                CallTag::CallerRejected,
                Q850Cause::INTERWORKING,
                vec![(Hdr::MIN_SE, min.as_secs().to_string())],
            ));
        }
        UasTerms::Malformed => {
            return Err(refuse(
                400,
                "Bad Session-Expires",
                CallTag::CallerRejected,
                Q850Cause::INTERWORKING,
                vec![],
            ));
        }
        UasTerms::NoTimer | UasTerms::Timer { .. } => {}
    }
    // The caller's INVITE against its profile's 100rel policy: 421 when we require 100rel
    // and it does not offer it, 420 when it requires 100rel of a profile that disables it.
    match ingress.prack.mode {
        PrackMode::Required if !offers_100rel(req) => {
            return Err(refuse(
                421,
                "Extension Required",
                CallTag::CallerRejected,
                Q850Cause::INTERWORKING,
                vec![(Hdr::REQUIRE, "100rel".into())],
            ));
        }
        PrackMode::Disabled if req.header_has_token(&Hdr::REQUIRE, "100rel") => {
            return Err(refuse(
                420,
                "Bad Extension",
                CallTag::CallerRejected,
                Q850Cause::INTERWORKING,
                vec![(Hdr::UNSUPPORTED, "100rel".into())],
            ));
        }
        _ => {}
    }
    let Some(route) = number.as_deref().and_then(|n| {
        let global = global_number(ingress, req).unwrap_or_default();
        cfg.route_for_either(&ingress.name, n, &global)
    }) else {
        return Err(refuse(
            404,
            "Not Found",
            CallTag::NoRoute,
            Q850Cause::UNALLOCATED,
            vec![],
        ));
    };
    let ring_timeout = ring_timeout(cfg, route);
    // Our 18x to the caller go reliably when its profile wants 100rel and its INVITE offers
    // it (RFC 3262); never when the profile disables it.
    let reliable_to_caller = match ingress.prack.mode {
        PrackMode::Disabled => false,
        PrackMode::Required => true,
        PrackMode::Supported => offers_100rel(req),
    };
    Ok(Admitted {
        number: number.unwrap_or_default(),
        caller,
        targets: route.to.clone(),
        ring_timeout,
        ring_per_peer: route.ring_timeout.is_none(),
        reliable_to_caller,
    })
}

/// How long a route's first peer rings: the route's `ring_timeout_s` (for the whole call),
/// else that peer's, else the default.
pub fn ring_timeout(cfg: &Config, route: &Route) -> Duration {
    route
        .ring_timeout
        .or_else(|| {
            route
                .to
                .first()
                .and_then(|p| cfg.profile(p))
                .and_then(|p| p.ring_timeout)
        })
        .unwrap_or(DEFAULT_RING_TIMEOUT)
}

/// An RFC 3261 §25.1 `token` (what an option-tag is).
fn is_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}
