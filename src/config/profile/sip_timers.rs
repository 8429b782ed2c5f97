//! A profile's `[sip]` timings: how long an INVITE to the peer may go unheard
//! (`invite_timeout_s`), how often its answered calls are probed (`probe_s`), and how
//! often the peer itself is (`ping_s`, `ping_failures`).

use std::path::Path;
use std::time::Duration;

use crate::config::file::ProfileSipSection;
use crate::config::{ConfigError, Role};

/// `[sip] probe_s` of a trunk's profile that says nothing (other peers: off): RFC 4028's
/// recommended session interval, how often a dialog with timers proves itself.
pub const DEFAULT_PROBE: Duration = Duration::from_secs(1800);

/// `[sip] probe_s` other than 0 (off): a probe every few seconds would be traffic, not a
/// check; one a day finds a lost call too late to matter.
pub const PROBE_RANGE: std::ops::RangeInclusive<u64> = 60..=86_400;

/// `[sip] invite_timeout_s`. Timer B (64·T1, 32 s) is the longest an INVITE waits for a
/// first word: past it the transaction has failed anyway.
pub(super) fn invite_timeout(
    sip: &ProfileSipSection,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<Duration> {
    let t = sip.invite_timeout_s.as_ref()?;
    if (1..=32).contains(t.get_ref()) {
        return Some(Duration::from_secs(*t.get_ref()));
    }
    let m = "[sip] invite_timeout_s must be 1..=32 (Timer B is 32 s)";
    errs.push(ConfigError::at(path, text, t.span().start, m));
    None
}

/// `[sip] probe_s` (None: never).
pub(super) fn probe(
    sip: &ProfileSipSection,
    role: Role,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<Duration> {
    match &sip.probe_s {
        // Trunks: on a fixed address, answering OPTIONS. A phone behind NAT may not hear an
        // OPTIONS once its binding has lapsed mid-call, and would be released talking.
        None => (role == Role::Trunk).then_some(DEFAULT_PROBE),
        Some(t) => seconds_or_off(t, &PROBE_RANGE, "probe_s", (path, text), errs)
            .ok()
            .flatten(),
    }
}

/// `[sip] key` in seconds, 0 for off: `Ok(None)` off, `Ok(Some(_))` within `range`, `Err`
/// outside it (reported at its place).
fn seconds_or_off(
    t: &toml::Spanned<u64>,
    range: &std::ops::RangeInclusive<u64>,
    key: &str,
    (path, text): (&Path, &str),
    errs: &mut Vec<ConfigError>,
) -> Result<Option<Duration>, ()> {
    match *t.get_ref() {
        0 => Ok(None),
        s if range.contains(&s) => Ok(Some(Duration::from_secs(s))),
        _ => {
            let (lo, hi) = (range.start(), range.end());
            let m = format!("[sip] {key} must be 0 (off) or {lo}..={hi}");
            errs.push(ConfigError::at(path, text, t.span().start, m));
            Err(())
        }
    }
}

/// `[sip] ping_s` other than 0 (off): how often the peer is sent an OPTIONS outside any
/// call. More often than every 5 s is load on the peer, not news; less than hourly finds a
/// dead trunk after the calls did.
pub const PING_RANGE: std::ops::RangeInclusive<u64> = 5..=3600;

/// `[sip] ping_failures`: pings in a row that go unanswered before the peer is sent no
/// calls. Each ping is a transaction, resent until its answer or its deadline: one lost
/// packet is not a failed ping.
const PING_FAILURES: std::ops::RangeInclusive<u64> = 1..=10;

/// A peer's pings: an OPTIONS every `every`; `failures` unanswered in a row (or answered
/// 408 or 503) and it takes no calls until one is answered again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    pub every: Duration,
    pub failures: u8,
}

/// `[sip] ping_s` and `ping_failures` (None: the peer is not pinged). `allow`: the methods
/// `[sip] allow` names, as read.
pub(super) fn ping(
    sip: &ProfileSipSection,
    allow: Option<&[String]>,
    path: &Path,
    text: &str,
    (errs, warns): (&mut Vec<ConfigError>, &mut Vec<ConfigError>),
) -> Option<Ping> {
    let failures = match &sip.ping_failures {
        None => Some(1),
        Some(n) if PING_FAILURES.contains(n.get_ref()) => u8::try_from(*n.get_ref()).ok(),
        Some(n) => {
            let (lo, hi) = (PING_FAILURES.start(), PING_FAILURES.end());
            let m = format!("[sip] ping_failures must be {lo}..={hi}");
            errs.push(ConfigError::at(path, text, n.span().start, m));
            None
        }
    };
    let every = match &sip.ping_s {
        Some(t) => seconds_or_off(t, &PING_RANGE, "ping_s", (path, text), errs).ok()?,
        None => None,
    };
    let failures = failures?;
    let Some(every) = every else {
        if let Some(n) = &sip.ping_failures {
            let m = "warning: [sip] ping_failures without ping_s: the peer is not pinged";
            warns.push(ConfigError::at(path, text, n.span().start, m));
        }
        return None;
    };
    // Pings are OPTIONS: a peer said to take none would be taken for dead.
    if allow.is_some_and(|a| !a.iter().any(|m| m == "OPTIONS"))
        && let Some(t) = &sip.ping_s
    {
        let m = "[sip] ping_s: the peer is pinged with OPTIONS, which `allow` leaves out";
        errs.push(ConfigError::at(path, text, t.span().start, m));
        return None;
    }
    Some(Ping { every, failures })
}
