//! A profile's `[sip]` timings: how long an INVITE to the peer may go unheard
//! (`invite_timeout_s`) and how often its answered calls are probed (`probe_s`).

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
        Some(t) if *t.get_ref() == 0 => None,
        Some(t) if PROBE_RANGE.contains(t.get_ref()) => Some(Duration::from_secs(*t.get_ref())),
        Some(t) => {
            let (lo, hi) = (PROBE_RANGE.start(), PROBE_RANGE.end());
            let m = format!("[sip] probe_s must be 0 (off) or {lo}..={hi}");
            errs.push(ConfigError::at(path, text, t.span().start, m));
            None
        }
    }
}
