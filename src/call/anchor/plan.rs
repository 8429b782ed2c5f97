//! What a new call's media will be: anchored or not, recorded where.

use super::super::cx::Env;
use super::super::state::MediaState;
use crate::config::{Config, PeerName, Profile};
use crate::media::RecordSpec;

/// The media plan of a new call: anchored when its caller's profile or any peer of its route
/// anchors (recording implies anchoring in the config), recorded when any of them records
/// (until the answer: then only if the caller's peer or the callee that answered records,
/// [`crate::call::Call::media_answered`]).
pub(in crate::call) fn media_plan(
    env: &mut Env,
    cfg: &Config,
    ingress: &Profile,
    targets: &[PeerName],
    call_id: &str,
    caller_ip: Option<std::net::IpAddr>,
    now: std::time::Instant,
) -> Option<Box<MediaState>> {
    let peers = || {
        std::iter::once(ingress).chain(targets.iter().filter_map(|t| cfg.profile(t).map(|p| &**p)))
    };
    if !peers().any(|p| p.anchor) {
        return None;
    }
    let recording = peers()
        .any(|p| p.record)
        .then(|| recording_path(env, cfg, call_id, now));
    Some(Box::new(MediaState {
        recording,
        caller_ip,
        ..Default::default()
    }))
}

/// `<dir>/<day>/<HHMMSSmmm>-<call-id>-<token>.wav`, the Call-ID reduced to file-name-safe
/// characters (so `a/b` and `a_b` read alike) and a random token making the name this
/// call's: the CDR names the file, and two calls starting in one millisecond with Call-IDs
/// that read alike must not name one file.
fn recording_path(
    env: &mut Env,
    cfg: &Config,
    call_id: &str,
    now: std::time::Instant,
) -> RecordSpec {
    let stamp = crate::call::cdr::stamp(env.wall(now));
    let day = stamp.get(..10).unwrap_or("unknown-day").to_string();
    let safe: String = call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let time: String = stamp
        .get(11..23)
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    let token: String = env.ids.hex_token(8);
    RecordSpec {
        path: cfg
            .recording_dir
            .join(day)
            .join(format!("{time}-{safe}-{token}.wav")),
        stereo: cfg.recording_stereo,
        jitter: cfg.recording_jitter,
    }
}
