//! `[session_timer]` of a profile: RFC 4028 on that peer's leg.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::ConfigError;
use super::file::SessionTimerSection;
use crate::interop::session_timer::{MAX_INTERVAL, SessionTimerPolicy, TimerMode};
use crate::sip::session::ABSOLUTE_MIN_INTERVAL;

pub(super) fn session_timer_policy(
    s: &SessionTimerSection,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> SessionTimerPolicy {
    let at = |offset: usize, msg: String| ConfigError::at(path, text, offset, msg);
    let mut p = SessionTimerPolicy::default();
    let modes = [
        ("off", TimerMode::Off),
        ("accept", TimerMode::Accept),
        ("require", TimerMode::Require),
    ];
    if let Some(m) = s
        .mode
        .as_ref()
        .and_then(|m| super::error::one_of(m, "[session_timer] mode", &modes, (path, text), errs))
    {
        p.mode = m;
    }
    let secs = |v: &Spanned<u64>, key: &str, errs: &mut Vec<ConfigError>| {
        let (lo, hi) = (ABSOLUTE_MIN_INTERVAL.as_secs(), MAX_INTERVAL.as_secs());
        if (lo..=hi).contains(v.get_ref()) {
            Some(Duration::from_secs(*v.get_ref()))
        } else {
            // RFC 4028 §4: nothing below 90 s (a shorter interval is an amplifier); above a
            // day a session timer no longer detects anything.
            errs.push(at(
                v.span().start,
                format!("[session_timer] {key} must be {lo}..={hi} seconds"),
            ));
            None
        }
    };
    if let Some(d) = s
        .expires_s
        .as_ref()
        .and_then(|v| secs(v, "expires_s", errs))
    {
        p.expires = d;
    }
    if let Some(d) = s.min_se_s.as_ref().and_then(|v| secs(v, "min_se_s", errs)) {
        p.min_se = d;
    }
    if p.min_se > p.expires
        && let Some(v) = s.min_se_s.as_ref().or(s.expires_s.as_ref())
    {
        errs.push(at(
            v.span().start,
            format!(
                "[session_timer] min_se_s ({}) must not exceed expires_s ({})",
                p.min_se.as_secs(),
                p.expires.as_secs()
            ),
        ));
    }
    p
}
