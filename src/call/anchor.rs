//! Media anchoring in the call: SDP toward each leg names the gateway's ports, and the
//! shell's relay is told where each leg's RTP really goes (RFC 4566 endpoints from each SDP).

use bytes::Bytes;
use tracing::warn;

use super::cx::{Cx, Env};
use super::state::{Call, MediaState};
use super::{CallRef, Output, PerSide, Side};
use crate::config::{Config, PeerName, Profile};
use crate::media::{Latch, MediaAction, RecordSpec, RelayPair};
use crate::sip::Body;

/// The SDP could not be anchored: no RTP ports left.
#[derive(Debug)]
pub(super) struct NoPorts;

/// The media plan of a new call: anchored when its caller's profile or any peer of its route
/// anchors (recording implies anchoring in the config), recorded when any of them records.
pub(super) fn media_plan(
    env: &Env,
    cfg: &Config,
    ingress: &Profile,
    targets: &[PeerName],
    call_id: &str,
    now: std::time::Instant,
) -> Option<MediaState> {
    let peers = || {
        std::iter::once(ingress).chain(targets.iter().filter_map(|t| cfg.profile(t).map(|p| &**p)))
    };
    if !peers().any(|p| p.anchor) {
        return None;
    }
    let recording = peers()
        .any(|p| p.record)
        .then(|| recording_path(env, cfg, call_id, now));
    Some(MediaState {
        recording,
        ..Default::default()
    })
}

/// `<dir>/<day>/<HHMMSSmmm>-<call-id>.wav`, the Call-ID reduced to file-name-safe characters.
fn recording_path(env: &Env, cfg: &Config, call_id: &str, now: std::time::Instant) -> RecordSpec {
    let stamp = humantime::format_rfc3339_millis(env.wall(now)).to_string();
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
    RecordSpec {
        path: cfg
            .recording_dir
            .join(day)
            .join(format!("{time}-{safe}.wav")),
        stereo: cfg.recording_stereo,
        jitter: cfg.recording_jitter,
    }
}

/// Give a call's ports back and stop its relay.
pub(super) fn release_media(env: &mut Env, r: CallRef, media: MediaState) {
    for p in media.ports.a.into_iter().chain(media.ports.b) {
        env.pool.free(p);
    }
    env.out
        .push_back(Output::Media(MediaAction::Release { call: r }));
}

impl Call {
    /// An SDP body from leg `from`, rewritten for the other leg: its streams now point at the
    /// gateway. Records `from`'s real endpoints and updates the relay. `Ok(None)` when the
    /// call is not anchored or the body is not SDP (forward it as is).
    ///
    /// `callee` names the callee's profile while an attempt is being set up (before the call
    /// records it); otherwise the current attempt's is used.
    fn anchor_body(
        &mut self,
        cx: &mut Cx,
        from: Side,
        body: &Bytes,
        ct: Option<&str>,
        callee: Option<&Profile>,
    ) -> Result<Option<Bytes>, NoPorts> {
        if body.is_empty() || !crate::sdp::is_sdp(ct) {
            return Ok(None);
        }
        let profile = |side: Side| match (side, callee) {
            (Side::B, Some(p)) => Some(p),
            _ => self.profile(side).map(|p| &**p),
        };
        let latch = |side: Side| profile(side).map_or(Latch::Any, |p| p.latch);
        let repack = |side: Side| {
            profile(side)
                .filter(|p| p.repacketize)
                .and_then(|p| p.ptime)
        };
        let latches = PerSide {
            a: latch(Side::A),
            b: latch(Side::B),
        };
        let ptimes = PerSide {
            a: repack(Side::A),
            b: repack(Side::B),
        };
        // The shorter of the two legs' media timeouts.
        let rtp_timeout = [Side::A, Side::B]
            .iter()
            .filter_map(|s| profile(*s).and_then(|p| p.rtp_timeout))
            .min();
        let media_ip = self.cfg.media_ip;
        let call_id = &self.a.call_id;
        let Some(media) = self.media.as_mut() else {
            return Ok(None);
        };
        let Some(eps) = crate::sdp::endpoints(body) else {
            warn!(%call_id, "unreadable SDP on an anchored call: streams refused");
            return Ok(crate::sdp::anchor(body, media_ip, &[]));
        };
        while media.ports.a.len() < eps.len() {
            let (Some(a), Some(b)) = (cx.env.pool.alloc(), cx.env.pool.alloc()) else {
                return Err(NoPorts);
            };
            media.ports.a.push(a);
            media.ports.b.push(b);
            media.remote.a.push(None);
            media.remote.b.push(None);
        }
        for (slot, ep) in media.remote[from].iter_mut().zip(&eps) {
            *slot = match (ep.ip, ep.port) {
                (Some(ip), p) if p != 0 => Some((ip, p).into()),
                _ => None,
            };
        }
        let toward = media.ports[from.other()].clone();
        let pairs = (0..media.ports.a.len())
            .filter_map(|i| {
                Some(RelayPair {
                    a_port: *media.ports.a.get(i)?,
                    b_port: *media.ports.b.get(i)?,
                    a_remote: *media.remote.a.get(i)?,
                    b_remote: *media.remote.b.get(i)?,
                    a_latch: latches.a,
                    b_latch: latches.b,
                    a_ptime: ptimes.a,
                    b_ptime: ptimes.b,
                })
            })
            .collect();
        let record = media.recording.clone();
        cx.emit(Output::Media(MediaAction::Relay {
            call: cx.r,
            pairs,
            record,
            rtp_timeout,
        }));
        Ok(crate::sdp::anchor(body, media_ip, &toward))
    }

    /// The SDP of a message relayed from leg `from`, anchored; `None` leaves the body as is.
    /// With no ports left for a new stream, that stream is refused in the SDP rather than
    /// leaking the peer's address.
    pub(super) fn anchored_body(
        &mut self,
        cx: &mut Cx,
        from: Side,
        body: &Bytes,
        ct: Option<&str>,
    ) -> Option<Bytes> {
        match self.anchor_body(cx, from, body, ct, None) {
            Ok(b) => b,
            Err(NoPorts) => crate::sdp::anchor(body, self.cfg.media_ip, &[]),
        }
    }

    /// Anchor the SDP of the INVITE toward a new callee (`callee`), from leg `from`.
    pub(super) fn anchor_outgoing<M: Body>(
        &mut self,
        cx: &mut Cx,
        from: Side,
        msg: &mut M,
        callee: Option<&Profile>,
    ) -> Result<(), NoPorts> {
        let ct = msg.content_type();
        let body = msg.body().clone();
        if let Some(b) = self.anchor_body(cx, from, &body, ct.as_deref(), callee)?
            && let Err(e) = msg.set_body(b, ct.as_deref())
        {
            warn!(error = %e, "cannot set anchored SDP");
        }
        Ok(())
    }

    /// Anchor the SDP of a message relayed from leg `from`.
    pub(super) fn anchor_relayed<M: Body>(&mut self, cx: &mut Cx, from: Side, msg: &mut M) {
        let ct = msg.content_type();
        let body = msg.body().clone();
        if let Some(b) = self.anchored_body(cx, from, &body, ct.as_deref())
            && let Err(e) = msg.set_body(b, ct.as_deref())
        {
            warn!(error = %e, "cannot set anchored SDP");
        }
    }
}
