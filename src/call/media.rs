//! Media anchoring in the call: SDP toward each leg names the gateway's ports, and the
//! engine is told where each leg's RTP really goes (RFC 4566 endpoints from each SDP).

use bytes::Bytes;
use tracing::warn;

use super::b2bua::B2bua;
use super::state::{Call, MediaState};
use super::{Action, CallRef, Side};
use crate::config::Profile;
use crate::media::{Latch, MediaAction, RelayPair};

/// The SDP could not be anchored: no RTP ports left.
#[derive(Debug)]
pub(super) struct NoPorts;

impl B2bua {
    /// Whether a new call relays its media: its caller's profile or any peer of its route
    /// anchors.
    pub(super) fn wants_anchoring(&self, call: &Call) -> bool {
        call.ingress.anchor
            || call
                .targets
                .iter()
                .any(|t| call.cfg.profile(t).is_some_and(|p| p.anchor || p.record))
    }

    /// An SDP body from leg `from`, rewritten for the other leg: its streams now point at the
    /// gateway. Records `from`'s real endpoints and updates the relay. `Ok(None)` when the call
    /// is not anchored or the body is not SDP (forward it as is).
    ///
    /// `callee` names the callee's profile while an attempt is being set up (before the call
    /// records it); otherwise the current attempt's is used.
    pub(super) fn anchor_body(
        &mut self,
        r: CallRef,
        call: &mut Call,
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
            _ => call.profile(side).map(|p| &**p),
        };
        let latch = |side: Side| profile(side).map(|p| p.latch).unwrap_or(Latch::Any);
        let (a_latch, b_latch) = (latch(Side::A), latch(Side::B));
        let repack = |side: Side| {
            profile(side)
                .filter(|p| p.repacketize)
                .and_then(|p| p.ptime)
        };
        let (a_ptime, b_ptime) = (repack(Side::A), repack(Side::B));
        // The shorter of the two legs' media timeouts.
        let rtp_timeout = [Side::A, Side::B]
            .iter()
            .filter_map(|s| profile(*s).and_then(|p| p.rtp_timeout))
            .min();
        let call_id = call.a.call_id.clone();
        let Some(media) = call.media.as_mut() else {
            return Ok(None);
        };
        let Some(eps) = crate::sdp::endpoints(body) else {
            warn!(%call_id, "unreadable SDP on an anchored call: streams refused");
            return Ok(crate::sdp::anchor(body, self.cfg.media_ip, &[]));
        };
        while media.a_ports.len() < eps.len() {
            let (Some(a), Some(b)) = (self.pool.alloc(), self.pool.alloc()) else {
                return Err(NoPorts);
            };
            media.a_ports.push(a);
            media.b_ports.push(b);
            media.a_remote.push(None);
            media.b_remote.push(None);
        }
        let remotes = match from {
            Side::A => &mut media.a_remote,
            Side::B => &mut media.b_remote,
        };
        for (i, ep) in eps.iter().enumerate() {
            if let Some(slot) = remotes.get_mut(i) {
                *slot = match (ep.ip, ep.port) {
                    (Some(ip), p) if p != 0 => Some((ip, p).into()),
                    _ => None,
                };
            }
        }
        let toward = match from {
            Side::A => media.b_ports.clone(),
            Side::B => media.a_ports.clone(),
        };
        let pairs = (0..media.a_ports.len())
            .map(|i| RelayPair {
                a_port: media.a_ports[i],
                b_port: media.b_ports[i],
                a_remote: media.a_remote[i],
                b_remote: media.b_remote[i],
                a_latch,
                b_latch,
                a_ptime,
                b_ptime,
            })
            .collect();
        let record = media.recording.clone();
        self.actions.push(Action::Media(MediaAction::Relay {
            call: r,
            pairs,
            record,
            rtp_timeout,
        }));
        Ok(crate::sdp::anchor(body, self.cfg.media_ip, &toward))
    }

    /// The SDP of a message relayed from leg `from`, anchored; `None` leaves the body as is.
    /// With no ports left for a new stream, that stream is refused in the SDP rather than
    /// leaking the peer's address.
    pub(super) fn relayed_sdp(
        &mut self,
        r: CallRef,
        call: &mut Call,
        from: Side,
        body: &Bytes,
        ct: Option<&str>,
    ) -> Option<Bytes> {
        match self.anchor_body(r, call, from, body, ct, None) {
            Ok(b) => b,
            Err(NoPorts) => crate::sdp::anchor(body, self.cfg.media_ip, &[]),
        }
    }

    /// Anchor the SDP of a response relayed from leg `from`.
    pub(super) fn anchor_response(
        &mut self,
        r: CallRef,
        call: &mut Call,
        from: Side,
        out: &mut crate::sip::Response,
    ) {
        let ct = out.header(&crate::sip::Hdr::CONTENT_TYPE);
        if let Some(b) = self.relayed_sdp(r, call, from, &out.body().clone(), ct.as_deref())
            && let Err(e) = out.set_body(b, ct.as_deref())
        {
            warn!(error = %e, "cannot set anchored SDP");
        }
    }

    /// Anchor the SDP of a request relayed from leg `from`.
    pub(super) fn anchor_request(
        &mut self,
        r: CallRef,
        call: &mut Call,
        from: Side,
        out: &mut crate::sip::Request,
    ) {
        let ct = out.header(&crate::sip::Hdr::CONTENT_TYPE);
        if let Some(b) = self.relayed_sdp(r, call, from, &out.body().clone(), ct.as_deref())
            && let Err(e) = out.set_body(b, ct.as_deref())
        {
            warn!(error = %e, "cannot set anchored SDP");
        }
    }

    /// The recording of a new call, if its caller's profile or a peer of its route records.
    pub(super) fn recording_for(
        &self,
        call: &Call,
        now: std::time::Instant,
    ) -> Option<crate::media::RecordSpec> {
        let wanted = call.ingress.record
            || call
                .targets
                .iter()
                .any(|t| call.cfg.profile(t).is_some_and(|p| p.record));
        if !wanted {
            return None;
        }
        let stamp = humantime::format_rfc3339_millis(self.wall(now)).to_string();
        let day = stamp.get(..10).unwrap_or("unknown-day").to_string();
        let safe: String = call
            .a
            .call_id
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
        Some(crate::media::RecordSpec {
            path: call
                .cfg
                .recording_dir
                .join(day)
                .join(format!("{time}-{safe}.wav")),
            stereo: call.cfg.recording_stereo,
            jitter: call.cfg.recording_jitter,
        })
    }

    /// Give a call's ports back and stop its relay.
    pub(super) fn release_media(&mut self, r: CallRef, media: MediaState) {
        for p in media.a_ports.into_iter().chain(media.b_ports) {
            self.pool.free(p);
        }
        self.actions
            .push(Action::Media(MediaAction::Release { call: r }));
    }

    /// No RTP in either direction for the profile's `rtp_timeout_s`: release the call with
    /// BYE to both legs.
    pub fn on_media_timeout(&mut self, now: std::time::Instant, r: CallRef) {
        let Some(mut call) = self.calls.remove(&r) else {
            return;
        };
        if matches!(
            call.state,
            super::state::CallState::Answered | super::state::CallState::Confirmed
        ) {
            warn!(call_id = %call.a.call_id, "no RTP for the media timeout: releasing the call");
            let cause = crate::interop::causes::Q850Cause::TIMER_EXPIRY;
            for side in [Side::A, Side::B] {
                if let Some(p) = call.pending_2xx[Call::slot(side)].take() {
                    self.send_ack(&mut call, side.other(), p.other_cseq, None);
                }
            }
            self.end_call(
                now,
                r,
                &mut call,
                super::state::EndInfo::internal(crate::cdr::CallTag::RtpTimeout, 200, cause.0, now),
            );
            let reason = Some(crate::interop::causes::reason_header(cause));
            self.send_bye(now, r, &mut call, Side::A, reason.clone());
            self.send_bye(now, r, &mut call, Side::B, reason);
        }
        self.put_back(r, call);
        self.pump(now);
    }

    /// Free RTP port pairs (for tests and health).
    pub fn free_media_ports(&self) -> usize {
        self.pool.available()
    }
}
