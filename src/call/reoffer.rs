//! The gateway's own offer to the caller once the call is up, when the session the 2xx
//! showed it is not the one it agreed to. A caller that took the answer to its offer in a
//! reliable provisional (RFC 3262) is done with that offer/answer, and a 2xx after it must
//! carry the same SDP (RFC 3261 §13.2.1), so the caller ignores a different one: another
//! branch of a forking callee, or the next callee after a failover, that answered with
//! another codec would be sent the codec of the first answer for the rest of the call. On an
//! anchored call the gateway offers the caller, after its ACK, the session that 2xx showed
//! (RFC 3264 §8; a re-INVITE, which every peer takes), and the relay follows the answer.
//! Its answer goes through the session-refresh path (`session/refresh.rs`), one own
//! re-INVITE at a time. Glare (a 491: the caller's own request crossed ours) is no refusal:
//! the offer is made again after the wait RFC 3261 §14.1 gives, unless the caller's own
//! offer settled the session meanwhile.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use super::Side;
use super::cx::Cx;
use super::state::Call;
use super::timers::CallTimer;
use crate::sip::{Hdr, Method, Request, Response};

/// Times an offer met by glare is made again: a caller that answers every one 491 is not
/// offered for ever.
const GLARE_TRIES: u8 = 3;

/// Offers in a row that carry an answer's new terms over ([`Call::carry_over`]): two peers
/// that make new keys in every answer would otherwise offer each other for ever.
const CARRIED_IN_A_ROW: u8 = 2;

/// An offer of ours waiting to be made on one leg (after glare, or while an INVITE is
/// under way).
#[derive(Debug, Clone)]
pub struct ReofferAgain {
    body: Bytes,
    ct: Option<String>,
    /// The `o=` version that leg was last shown: any SDP sent to it since (its own offer
    /// answered) moves it, and settles the session.
    version: u64,
    due: Instant,
}

impl Call {
    /// The caller's ACK confirmed the call; `shown` is our 2xx's body and Content-Type, and
    /// `agreed` the `o=` version of the session the caller took early. When that is another
    /// session than the 2xx showed, it is offered that session now. A caller's own offer
    /// under way settles the session as well.
    pub(super) fn reoffer_if_moved(
        &mut self,
        cx: &mut Cx,
        agreed: u64,
        shown: (Bytes, Option<String>),
    ) {
        let now = self
            .media
            .as_ref()
            .and_then(|m| m.shown.a.map(|o| o.version()));
        if now.is_none_or(|v| v == agreed)
            || self.phase.is_ending()
            || self.refresh.is_some()
            || self.reinvite_in_progress()
            || self.unanswered_offer(Side::A).is_some()
            || !crate::sdp::carries_sdp(shown.1.as_deref(), &shown.0)
        {
            return;
        }
        info!(call_id = %self.call_id(), "the answer differs from the one the caller took early: offering it to the caller");
        // Its SDP alone: an ISUP beside it in a SIP-I 2xx (an ANM) is no part of the offer.
        let (body, ct) = sdp_alone(shown.0, shown.1);
        // The same `o=` version as the 2xx: for a caller that ignored that SDP a newer one,
        // for one that took it the same session again.
        if let Some(m) = self.media.as_mut() {
            m.glare_tries.a = 0;
        }
        self.send_reoffer(cx, Side::A, body, ct);
    }

    /// A relayed offer on `side` was answered after it was given up (`ack.rs`): that peer
    /// took a session its other side was told had failed. On an anchored call it is offered
    /// again the session the gateway has with it (our last SDP toward it, at the next
    /// version), and the relay follows its answer. Not on a call that is not anchored: our
    /// last SDP there is the other peer's, at a version that peer has already gone past.
    pub(super) fn offer_standing_session(&mut self, cx: &mut Cx, side: Side) {
        if self.media.is_none() || self.phase.is_ending() {
            return;
        }
        let Some((body, ct, _)) = self.sdp[side].as_ref().and_then(|s| s.sent.clone()) else {
            return;
        };
        info!(call_id = %self.call_id(), ?side, "offering that leg the session it has again (a late answer to an offer given up, or an answer that could not be read)");
        let (body, ct) = sdp_alone(body, ct);
        let Some(m) = self.media.as_mut() else {
            return;
        };
        m.glare_tries[side] = 0;
        if self.leg_busy(side) {
            let wait = self.glare_wait(cx, side);
            return self.reoffer_later(cx, side, (body, ct), None, wait);
        }
        self.send_reoffer(cx, side, body, ct);
    }

    /// An offer of ours on `side` (a refresh, a re-offer, both our last SDP toward it) was
    /// answered after it was given up: the peer took it, and on an anchored call the relay
    /// follows its answer. Offering again would only start another such INVITE.
    pub(super) fn take_late_answer(&mut self, cx: &mut Cx, side: Side, resp: &Response) {
        // An offer or INVITE under way on the leg settles its session, and the answer came
        // to an older offer than the one it would be read against.
        if self.media.is_none() || self.phase.is_ending() || self.leg_busy(side) {
            return;
        }
        let Some((body, ct, _)) = self.sdp[side].as_ref().and_then(|s| s.sent.clone()) else {
            return;
        };
        self.take_answer_to_ours(cx, side, (&body, ct.as_deref()), resp);
    }

    /// Our offer on the other leg was answered with terms `to`'s peer was not shown
    /// ([`crate::sdp::Terms`]: SRTP keys made anew, another DTLS certificate or role,
    /// payload types renumbered), `made` being that answer anchored for `to`. With the
    /// session it was shown, that peer could not decrypt, or would misread, what the relay
    /// passes it: it is offered `made` (RFC 3264 §8), and the relay follows its answer.
    pub(super) fn carry_over(&mut self, cx: &mut Cx, to: Side, made: (Bytes, Option<String>)) {
        if !self.phase.is_up() || self.phase.is_ending() {
            return;
        }
        let Some((sent, sent_ct, _)) = self.sdp[to].as_ref().and_then(|s| s.sent.as_ref()) else {
            return;
        };
        // What it was shown: our offer before it was cut to its answer, if it was one.
        let shown = (self.sdp[to].as_ref().and_then(|s| s.uncut.as_ref())).unwrap_or(sent);
        let (Some(before), Some(now)) = (
            crate::sdp::terms(sent_ct.as_deref(), shown),
            crate::sdp::terms(made.1.as_deref(), &made.0),
        ) else {
            return;
        };
        let Some(m) = self.media.as_mut() else {
            return;
        };
        if !now.moved_from(&before) {
            m.carried = 0;
            return;
        }
        if m.carried >= CARRIED_IN_A_ROW {
            m.carried = 0;
            warn!(call_id = %self.call_id(), ?to, "the peers change their SDP's keys or payload numbers in every answer: the last change is not offered on (its media may not decrypt)");
            return;
        }
        m.carried += 1;
        m.glare_tries[to] = 0;
        info!(call_id = %self.call_id(), ?to, "an answer to our offer changed keys, certificate or payload numbers: offering them to the other leg");
        let (body, ct) = sdp_alone(made.0, made.1);
        if self.leg_busy(to) {
            let wait = self.glare_wait(cx, to);
            return self.reoffer_later(cx, to, (body, ct), None, wait);
        }
        self.send_reoffer(cx, to, body, ct);
    }

    /// No offer of ours carries an answer over now ([`Call::carry_over`]).
    pub(super) fn carried_none(&mut self) {
        if let Some(m) = self.media.as_mut() {
            m.carried = 0;
        }
    }

    /// An offer or an INVITE under way: an offer of ours on `side` waits.
    fn leg_busy(&self, side: Side) -> bool {
        self.refresh.is_some()
            || self.reinvite_in_progress()
            || self.invite_toward(side)
            || self.unanswered_offer(side).is_some()
            || self.pending_2xx[side].is_some()
    }

    /// Offer `side`'s peer `body` (SDP alone) in a re-INVITE.
    fn send_reoffer(&mut self, cx: &mut Cx, side: Side, body: Bytes, ct: Option<String>) {
        let body = self.shown_again(side, &body, ct.as_deref());
        let Some(leg) = self.dialog_mut(side) else {
            return;
        };
        let built = leg
            .request(Method::Invite, &cx.env.local, &mut cx.env.ids)
            .and_then(|mut r| {
                r.set_body(body, ct.as_deref())?;
                Ok(r)
            })
            .and_then(|mut r| self.restate_session(side, &mut r).map(|()| r));
        match built {
            Ok(req) => {
                let asked = self.session[side].map(|s| s.interval).unwrap_or_default();
                self.launch_own_invite(cx, side, req, asked, (false, true));
            }
            Err(e) => warn!(error = %e, "cannot build our offer"),
        }
    }

    /// Our offer `sent` on `side` met glare (491): made again after the wait RFC 3261
    /// §14.1 gives (toward the caller, the party that does not own the Call-ID waits less,
    /// so the caller's own retry comes after ours), at most [`GLARE_TRIES`] times.
    pub(super) fn reoffer_after_glare(&mut self, cx: &mut Cx, side: Side, sent: &Request) {
        let wait = self.glare_wait(cx, side);
        let Some(m) = self.media.as_mut() else {
            return;
        };
        if m.glare_tries[side] >= GLARE_TRIES {
            info!(call_id = %self.call_id(), ?side, "every offer of ours met glare: the session is left as it is");
            return;
        }
        m.glare_tries[side] += 1;
        info!(call_id = %self.call_id(), ?side, "glare on our offer: made again");
        let ct = sent.header(&Hdr::CONTENT_TYPE);
        self.reoffer_later(cx, side, (sent.body().clone(), ct), None, wait);
    }

    /// Make our offer `body` on `side` after `wait`, unless that peer was shown another
    /// session than the one at `version` meanwhile (its own offer, answered, settled it);
    /// `None`: the one it was shown last.
    fn reoffer_later(
        &mut self,
        cx: &mut Cx,
        side: Side,
        (body, ct): (Bytes, Option<String>),
        version: Option<u64>,
        wait: Duration,
    ) {
        let Some(m) = self.media.as_mut() else {
            return;
        };
        let Some(version) = version.or_else(|| m.shown[side].map(|o| o.version())) else {
            return;
        };
        m.reoffer_again[side] = Some(Box::new(ReofferAgain {
            body,
            ct,
            version,
            due: cx.now + wait,
        }));
        self.arm_reoffer_timer();
    }

    /// [`CallTimer::Reoffer`] at the earlier of the two legs' waiting offers, if any.
    fn arm_reoffer_timer(&mut self) {
        let due = (self.media.as_ref()).and_then(|m| {
            [&m.reoffer_again.a, &m.reoffer_again.b]
                .into_iter()
                .flatten()
                .map(|r| r.due)
                .min()
        });
        match due {
            Some(at) => self.timers.set(CallTimer::Reoffer, at),
            None => self.timers.clear(CallTimer::Reoffer),
        }
    }

    /// [`CallTimer::Reoffer`]: each leg's offer whose wait is over, now, unless its peer was
    /// shown another session since; while an offer or INVITE is under way it waits another
    /// while, still against the session it was to change.
    pub(super) fn on_reoffer_timer(&mut self, cx: &mut Cx) {
        for side in [Side::A, Side::B] {
            let Some(m) = self.media.as_mut() else {
                return;
            };
            let Some(again) = m.reoffer_again[side].take_if(|r| r.due <= cx.now) else {
                continue;
            };
            let ReofferAgain {
                body, ct, version, ..
            } = *again;
            if self.phase.is_ending() || m.shown[side].map(|o| o.version()) != Some(version) {
                continue;
            }
            if self.leg_busy(side) {
                let wait = self.glare_wait(cx, side);
                self.reoffer_later(cx, side, (body, ct), Some(version), wait);
                continue;
            }
            self.send_reoffer(cx, side, body, ct);
        }
        self.arm_reoffer_timer();
    }
}

/// The SDP of a body alone: an ISUP beside it in a SIP-I body is no part of an offer.
pub(super) fn sdp_alone(body: Bytes, ct: Option<String>) -> (Bytes, Option<String>) {
    match crate::sdp::sdp_of(ct.as_deref(), &body) {
        Some(sdp) if crate::sdp::is_multipart(ct.as_deref()) => (
            Bytes::copy_from_slice(sdp),
            Some("application/sdp".to_string()),
        ),
        _ => (body, ct),
    }
}
