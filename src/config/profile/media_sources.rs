//! Where a profile's peer's media may come from (`[media] networks` and
//! `rebind_after_silence_ms`), and how many streams it may open (`max_streams`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::ConfigError;
use crate::config::file::ProfileMediaSection;

/// `[media] networks` (None: anywhere). An empty list would refuse all media: a mistake,
/// not a policy.
pub(super) fn media_networks(
    media: &ProfileMediaSection,
    path: &Path,
    text: &str,
    (errs, warns): (&mut Vec<ConfigError>, &mut Vec<ConfigError>),
) -> Option<Arc<[IpNet]>> {
    let list = media.networks.as_ref()?;
    if list.get_ref().is_empty() {
        let m = "[media] networks is empty (leave it out to allow media anywhere)";
        errs.push(ConfigError::at(path, text, list.span().start, m));
        return None;
    }
    let at =
        |n: &toml::Spanned<String>, msg: String| ConfigError::at(path, text, n.span().start, msg);
    let nets = crate::config::net::parse_nets(
        list.get_ref(),
        "[media] networks",
        |n, msg| errs.push(at(n, msg)),
        |n, msg| warns.push(at(n, msg)),
    );
    Some(Arc::from(nets))
}

/// `[media] rebind_after_silence_ms` bounds: under 200 ms a packet burst after a short loss
/// could move a stream; over a minute a rebinding NAT leaves the call silent too long.
const REBIND_RANGE_MS: std::ops::RangeInclusive<u64> = 200..=60_000;

/// `[media] rebind_after_silence_ms` (the default when absent or out of bounds).
pub(super) fn rebind_after_silence(
    media: &ProfileMediaSection,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> Duration {
    match &media.rebind_after_silence_ms {
        Some(ms) if REBIND_RANGE_MS.contains(ms.get_ref()) => Duration::from_millis(*ms.get_ref()),
        Some(ms) => {
            let (lo, hi) = (REBIND_RANGE_MS.start(), REBIND_RANGE_MS.end());
            let m = format!("[media] rebind_after_silence_ms must be {lo}..={hi}");
            errs.push(ConfigError::at(path, text, ms.span().start, m));
            crate::media::MOVE_AFTER_SILENCE
        }
        None => crate::media::MOVE_AFTER_SILENCE,
    }
}

/// `[media] max_streams` of a profile: as the gateway's (1..=16); None when absent (the
/// gateway's applies) or out of bounds (reported).
pub(super) fn max_streams(
    media: &ProfileMediaSection,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<usize> {
    let n = media.max_streams.as_ref()?;
    crate::config::media::checked_max_streams(*n.get_ref())
        .map_err(|m| errs.push(ConfigError::at(path, text, n.span().start, m)))
        .ok()
}

/// The settings only the relay carries out (watching RTP, latching), set on a profile whose
/// calls do not go through it by themselves: they act only on calls the other peer's profile
/// anchors. Said at `check`, start and reload, not left for the operator to find out when a
/// dead call is never ended.
pub(super) fn warn_relay_only(
    media: &ProfileMediaSection,
    path: &Path,
    text: &str,
    warns: &mut Vec<ConfigError>,
) {
    if media.anchors() {
        return;
    }
    let set = [
        (
            "rtp_timeout_s",
            media.rtp_timeout_s.as_ref().map(|s| s.span().start),
        ),
        (
            "rtp_hold_timeout_s",
            media.rtp_hold_timeout_s.as_ref().map(|s| s.span().start),
        ),
        ("latch", media.latch.as_ref().map(|s| s.span().start)),
        (
            "rebind_after_silence_ms",
            media
                .rebind_after_silence_ms
                .as_ref()
                .map(|s| s.span().start),
        ),
        (
            "max_streams",
            media.max_streams.as_ref().map(|s| s.span().start),
        ),
    ];
    for (key, at) in set {
        if let Some(at) = at {
            warns.push(ConfigError::at(
                path,
                text,
                at,
                format!(
                    "warning: [media] {key} acts on calls the relay carries only, and this \
                     profile does not anchor (`anchor = true`, or `record`, `repacketize`, \
                     `networks`): only its calls with a peer whose profile anchors"
                ),
            ));
        }
    }
}
