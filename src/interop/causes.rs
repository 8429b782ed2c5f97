//! SIP status ⇄ Q.850 cause, and the `Reason` header (RFC 3326, RFC 6432).

use serde::Serialize;

/// Where `cause` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CauseSource {
    /// A `Reason: Q.850;cause=N` header from a peer.
    ReasonHeader,
    /// The peer profile's `[causes.map]`.
    PeerMap,
    /// The built-in RFC 3398 table.
    Rfc3398,
    /// The gateway made the decision (timers, limits, shutdown).
    Internal,
}

/// A Q.850 cause value (1..=127).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Q850Cause(pub u16);

impl Q850Cause {
    /// 16: normal call clearing (a BYE without a Reason, RFC 3398 §9).
    pub const NORMAL_CLEARING: Q850Cause = Q850Cause(16);
    /// 8: preemption (a `Reason: preemption` of RFC 4411 without a Q.850 one).
    pub const PREEMPTION: Q850Cause = Q850Cause(8);
    /// 18: no user responding (no provisional from the callee before the ring timeout).
    pub const NO_USER_RESPONDING: Q850Cause = Q850Cause(18);
    /// 19: no answer from user (user alerted).
    pub const NO_ANSWER: Q850Cause = Q850Cause(19);
    /// 1: unallocated number (no route).
    pub const UNALLOCATED: Q850Cause = Q850Cause(1);
    /// 21: call rejected (RFC 3398's mapping of 401/407: a challenge we could not answer).
    pub const CALL_REJECTED: Q850Cause = Q850Cause(21);
    /// 42: switching equipment congestion (a limit refused the call).
    pub const CONGESTION: Q850Cause = Q850Cause(42);
    /// 25: exchange routing error (a loop; RFC 3398 maps 482 and 483 to it).
    pub const ROUTING_ERROR: Q850Cause = Q850Cause(25);
    /// 41: temporary failure.
    pub const TEMPORARY_FAILURE: Q850Cause = Q850Cause(41);
    /// 102: recovery on timer expiry.
    pub const TIMER_EXPIRY: Q850Cause = Q850Cause(102);
    /// 111: protocol error, unspecified.
    pub const PROTOCOL_ERROR: Q850Cause = Q850Cause(111);
    /// 127: interworking, unspecified.
    pub const INTERWORKING: Q850Cause = Q850Cause(127);
    /// 65: bearer capability not implemented (a 488's, [`rfc3398_cause`]).
    pub const BEARER_NOT_IMPLEMENTED: Q850Cause = Q850Cause(65);
}

/// The built-in SIP status → Q.850 table of RFC 3398 §8.2.6.1. Statuses the RFC does not list
/// (487 among them) fall back by class: 4xx → 31 (normal, unspecified), 5xx → 41 (temporary
/// failure), 6xx → 31. 488 and 606, which the RFC maps "by Warning header" without saying
/// how, are 65 (bearer capability not implemented: what RFC 4497 and gateways map to 488),
/// a refused session, not a failure of the network. A profile's `[causes.map]` is consulted
/// before this table.
pub fn rfc3398_cause(status: u16) -> Q850Cause {
    Q850Cause(match status {
        400 => 41,
        401..=403 => 21,
        404 => 1,
        405 => 63,
        406 => 79,
        407 => 21,
        408 => 102,
        410 => 22,
        413 | 414 | 416 | 420 | 421 | 423 => 127,
        415 => 79,
        480 => 18,
        481 => 41,
        482 | 483 => 25,
        484 => 28,
        485 => 1,
        486 => 17,
        488 => 65,
        500 => 41,
        501 => 79,
        502 => 38,
        503 => 41,
        504 => 102,
        505 | 513 => 127,
        600 => 17,
        603 => 21,
        604 => 1,
        606 => 65,
        s if (500..600).contains(&s) => 41,
        _ => 31,
    })
}

/// `[causes]` of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CausePolicy {
    /// Add `Reason: Q.850;cause=N` to failures and BYEs sent to this peer.
    pub send_reason: bool,
    /// This peer's SIP status → Q.850 cause, used when its response has no Q.850 Reason.
    pub map: std::collections::BTreeMap<u16, Q850Cause>,
}

impl Default for CausePolicy {
    fn default() -> Self {
        CausePolicy {
            send_reason: true,
            map: Default::default(),
        }
    }
}

/// The cause of a failure response from a peer: its Q.850 Reason header, else the peer's
/// `[causes.map]`, else RFC 3398. Also returns a SIP Reason's text when a Q.850 one won.
pub fn cause_for_status(
    status: u16,
    reason_lines: &[String],
    peer: &CausePolicy,
) -> (Q850Cause, CauseSource, Option<String>) {
    let r = parse_reason(reason_lines);
    if let Some(q) = r.q850 {
        return (q, CauseSource::ReasonHeader, r.sip);
    }
    match peer.map.get(&status) {
        Some(c) => (*c, CauseSource::PeerMap, r.sip),
        None => (rfc3398_cause(status), CauseSource::Rfc3398, r.sip),
    }
}

/// The `Reason` header value the gateway adds for a cause.
pub fn reason_header(cause: Q850Cause) -> String {
    format!("Q.850;cause={}", cause.0)
}

/// A `Reason` value as we write it from what it says (RFC 3326): its protocol and its
/// parameters, each a token (`cause=16`, `location=LN`) or a text quoted anew (no quote,
/// backslash or control character in it, at most 128 characters); a parameter that is
/// neither is left out. `SIP` and `Q.850` must name a valid cause (a SIP status, a Q.850
/// cause), else the value is left out. A peer's value goes on to the other leg in this form
/// only: as written it may be broken (an unclosed quote), and a strict peer would refuse the
/// whole message (a BYE refused leaves that leg up).
pub fn reason_rebuilt(value: &str) -> Option<String> {
    let token = crate::sip::is_token;
    let mut parts = crate::sip::split_params(value).into_iter();
    let protocol = parts.next()?.trim();
    let (name, causes) = if protocol.eq_ignore_ascii_case("SIP") {
        ("SIP", Some(100..=699))
    } else if protocol.eq_ignore_ascii_case("Q.850") {
        ("Q.850", Some(1..=127))
    } else if token(protocol) && protocol.len() <= MAX_PROTOCOL {
        (protocol, None)
    } else {
        return None;
    };
    let mut out = name.to_string();
    let mut cause_ok = causes.is_none();
    let mut seen: Vec<String> = Vec::new();
    // At most a few parameters, each once: a peer's value is bounded in what it costs the
    // other leg's message whatever it held.
    for p in parts.take(MAX_REASON_PARAMS) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if !token(k) || seen.iter().any(|s| s.eq_ignore_ascii_case(k)) {
            continue;
        }
        seen.push(k.to_string());
        let v = match v {
            None => {
                out.push(';');
                out.push_str(k);
                continue;
            }
            Some(v) => v,
        };
        if k.eq_ignore_ascii_case("cause") {
            // Digits (RFC 3326), in the protocol's range when it has one.
            let c = v
                .parse::<u16>()
                .ok()
                .filter(|_| v.bytes().all(|b| b.is_ascii_digit()));
            match c.filter(|c| causes.as_ref().is_none_or(|r| r.contains(c))) {
                Some(c) => {
                    cause_ok = true;
                    out.push_str(&format!(";cause={c}"));
                }
                None => return None,
            }
        } else if k.eq_ignore_ascii_case("text") || v.starts_with('"') {
            // A text is a quoted string (RFC 3326), however it came.
            let quoted = v.strip_prefix('"').unwrap_or(v);
            let inner = quoted.strip_suffix('"').unwrap_or(quoted);
            let clean: String = inner
                .chars()
                .filter(|c| !matches!(c, '"' | '\\') && !c.is_control())
                .take(128)
                .collect();
            out.push_str(&format!(";{k}=\"{clean}\""));
        } else if token(v) {
            out.push_str(&format!(";{k}={v}"));
        }
    }
    cause_ok.then_some(out)
}

/// The Reason values we send for `cause`: its Q.850 value, and a peer's SIP reason `sip`
/// (a CANCEL's "Call completed elsewhere", a callee's failure) as we write it.
pub fn reason_values(cause: Q850Cause, sip: Option<&str>) -> Vec<String> {
    std::iter::once(reason_header(cause))
        .chain(sip.and_then(reason_rebuilt))
        .collect()
}

/// What the other leg is told of a peer's Reason values (`rebuilt`, as we write them) for
/// the `cause` (and SIP reason `sip`) the CDR records: the peer's own when a Q.850 one is
/// among them; else that cause as we write it, beside the peer's values of other protocols
/// (a `preemption` one, which the CDR reads as cause 8: before, only it went on, and the
/// other leg learnt no cause while the CDR said 8).
pub fn reasons_told(rebuilt: Vec<String>, cause: Q850Cause, sip: Option<&str>) -> Vec<String> {
    let protocol = |v: &str| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase()
    };
    if rebuilt.iter().any(|v| protocol(v) == "Q.850") {
        return rebuilt;
    }
    let mut told = reason_values(cause, sip);
    told.extend(rebuilt.into_iter().filter(|v| protocol(v) != "SIP"));
    told.truncate(MAX_REASON_VALUES);
    told
}

/// Parameters of one Reason value kept at most.
const MAX_REASON_PARAMS: usize = 8;

/// Reason values (so protocols) passed on from one message at most: SIP and Q.850, and a
/// few registered ones (`preemption`, `RELEASE_CAUSE`, …); more is a peer filling the
/// other leg's message, each value a header line of its own.
const MAX_REASON_VALUES: usize = 4;

/// The longest protocol name of a Reason value passed on (registered ones are a dozen
/// characters).
const MAX_PROTOCOL: usize = 32;

/// The values of `lines` (Reason headers, one or several values each) that
/// [`reason_rebuilt`] can write, the first of each protocol only: RFC 3326 allows one per
/// protocol, and the first valid one is what the CDR records (`parse_reason`), so a peer
/// past us must not act on another.
pub fn reasons_rebuilt(lines: &[String]) -> Vec<String> {
    let mut protocols: Vec<String> = Vec::new();
    (lines.iter())
        .flat_map(|l| crate::sip::split_header_list(l))
        .filter_map(|v| reason_rebuilt(&v))
        .filter(|r| {
            let protocol = r
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let first = !protocols.contains(&protocol);
            if first {
                protocols.push(protocol);
            }
            first
        })
        .take(MAX_REASON_VALUES)
        .collect()
}

/// What the `Reason` headers of one message say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReasonInfo {
    /// `Reason: Q.850;cause=N`.
    pub q850: Option<Q850Cause>,
    /// A `Reason: SIP;cause=N;text="…"` value, kept as written.
    pub sip: Option<String>,
}

/// Read every `Reason` value (one per line or comma-separated). Malformed values are skipped:
/// a peer's bad Reason must not fail a call. Read from the values as they are passed on
/// ([`reasons_rebuilt`]), so the CDR records the cause the other leg is told: read apart,
/// `cause=+17` or a bad `cause` before a good one gave the CDR one cause and the other leg
/// another.
///
/// A `preemption` value (RFC 4411: the network took the call's resources for a call of
/// higher priority) with no Q.850 one beside it reads as Q.850 cause 8, preemption: before,
/// such a BYE was recorded as 16, normal clearing, as if a party had hung up.
pub fn parse_reason(lines: &[String]) -> ReasonInfo {
    let mut info = ReasonInfo::default();
    let mut preempted = false;
    for value in reasons_rebuilt(lines) {
        // A quoted text may hold `;cause=`: only parameters outside quotes count.
        let mut parts = crate::sip::split_params(&value).into_iter();
        let protocol = parts.next().unwrap_or("");
        let cause = parts.find_map(|p| p.strip_prefix("cause=")?.parse::<u8>().ok());
        if protocol == "Q.850" {
            info.q850 = cause.map(|c| Q850Cause(c.into()));
        } else if protocol == "SIP" {
            info.sip = Some(value);
        } else if protocol.eq_ignore_ascii_case("preemption") {
            preempted = true;
        }
    }
    if preempted && info.q850.is_none() {
        info.q850 = Some(Q850Cause::PREEMPTION);
    }
    info
}

#[cfg(test)]
mod tests;
