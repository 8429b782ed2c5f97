//! A profile's `[media] rtp_timeout_s` and `rtp_hold_timeout_s`: bounded, ordered, and
//! warned about when short.

use std::time::Duration;

use toml::Spanned;

use crate::config::ConfigError;

/// `[media] rtp_hold_timeout_s` when a profile does not set it: an hour, as rtpengine's
/// silent timeout.
const DEFAULT_RTP_HOLD_TIMEOUT_S: u64 = 3600;

/// The longest `rtp_timeout_s` or `rtp_hold_timeout_s`: a week (past that, a typo).
const MAX_MEDIA_TIMEOUT_S: u64 = 604_800;

/// Under this `rtp_timeout_s` a phone's silence suppression (no packets while nobody
/// speaks) can end a call: warned about.
const SHORT_RTP_TIMEOUT_S: u64 = 5;

/// `[media] rtp_timeout_s` and `rtp_hold_timeout_s` (rtpengine's split: a short timeout for
/// a call that should carry audio, a long one for a call on hold, which may send nothing,
/// not even RTCP). `None`: off.
pub(super) fn media_timeouts(
    media: &crate::config::file::ProfileMediaSection,
    path: &std::path::Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) -> (Option<Duration>, Option<Duration>) {
    let mut secs = |v: Option<&Spanned<u64>>, key: &str, default: u64| match v {
        Some(s) if *s.get_ref() > MAX_MEDIA_TIMEOUT_S => {
            errs.push(ConfigError::at(
                path,
                text,
                s.span().start,
                format!("[media] {key} must be 0 (off) to {MAX_MEDIA_TIMEOUT_S} (a week)"),
            ));
            0
        }
        Some(s) => *s.get_ref(),
        None => default,
    };
    let active = secs(media.rtp_timeout_s.as_ref(), "rtp_timeout_s", 0);
    // Unset, never shorter than the active one (a held call may send nothing).
    let held = secs(
        media.rtp_hold_timeout_s.as_ref(),
        "rtp_hold_timeout_s",
        DEFAULT_RTP_HOLD_TIMEOUT_S.max(active),
    );
    if let Some(s) = media.rtp_timeout_s.as_ref()
        && (1..SHORT_RTP_TIMEOUT_S).contains(&active)
    {
        warns.push(ConfigError::at(
            path,
            text,
            s.span().start,
            format!(
                "warning: [media] rtp_timeout_s = {active}: a phone that sends nothing while nobody \
                 speaks (silence suppression) will have its calls ended"
            ),
        ));
    }
    if let Some(s) = media.rtp_hold_timeout_s.as_ref()
        && active > 0
        && held > 0
        && held < active
    {
        errs.push(ConfigError::at(
            path,
            text,
            s.span().start,
            "[media] rtp_hold_timeout_s must not be shorter than rtp_timeout_s (a call on hold \
             may send nothing); 0 never ends a held call for silence",
        ));
    }
    let on = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    (on(active), on(held))
}
