//! 2xx and ACK (RFC 3261 §13.3.1.4, §13.2.2.4): our 2xx to each side is retransmitted until
//! that side ACKs it, and each side's ACK triggers ours toward the other.

use super::anchor::Exchange;
use bytes::Bytes;
use tracing::warn;

use super::Side;
use super::cx::Cx;
use super::events::CallEvent;
use super::state::{Call, GivenUpInvite, Pending2xx, SentAck};
use super::timers::CallTimer;
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::interop::egress::body_for;
use crate::sip::{Body, Hdr, Message, Request, Response};
use crate::txn::TxnId;

impl Call {
    /// Send our 2xx to the caller, unless an unacknowledged reliable provisional carried SDP
    /// (RFC 3262 §3): then it waits for that PRACK.
    pub(super) fn deliver_2xx_to_caller(&mut self, cx: &mut Cx, resp: Response, b_cseq: u32) {
        if self.uas_rel.pending.as_ref().is_some_and(|p| p.has_sdp) {
            self.uas_rel.held_2xx = Some(Box::new((resp, b_cseq)));
            return;
        }
        // Answered for the caller's peer (`calls_answered_total`, the answer's setup time)
        // when the 2xx goes to it: one held for a PRACK that never comes ends the call
        // unanswered.
        let caller = self.ingress.name.clone();
        self.progress(
            cx,
            caller,
            super::Direction::Inbound,
            super::Stage::Answered,
        );
        self.uas_rel.crossed_rseq = self.uas_rel.pending.take().map(|p| p.rseq);
        self.uas_rel.queue = None;
        self.timers.clear(CallTimer::Rel1xx);
        let Some(txn) = self.caller_txn() else {
            return;
        };
        cx.send_response(txn, resp.clone());
        let a_cseq = self.template().seq();
        // To an INVITE without SDP, the callee's SDP is its offer, unless it came first in a
        // reliable 18x and our PRACK answered it. An offer the 2xx overtook (no PRACK yet)
        // is answered in the ACK, then.
        self.uac_rel.awaiting_answer = None;
        // (`resp` is ours to the caller: the callee's branch is side B's dialog now.)
        let late =
            !self.attempt.as_ref().is_some_and(|a| a.offered) && super::anchor::carries_sdp(&resp);
        let offer = late && !self.branch_answered_in_prack();
        self.await_ack(cx, Side::A, resp, (a_cseq, Some(b_cseq)), txn, offer);
        if let Some(p) = self.pending_2xx[Side::A].as_mut() {
            p.offer_if_prack_refused = late && !offer;
        }
    }

    /// Remember our 2xx on `side` and retransmit it until that side ACKs. `cseqs` are the
    /// INVITE's CSeq on this side and on the other; `offer`: the 2xx carries an offer.
    pub(super) fn await_ack(
        &mut self,
        cx: &mut Cx,
        side: Side,
        resp: Response,
        cseqs: (u32, Option<u32>),
        txn: TxnId,
        offer: bool,
    ) {
        let t1 = cx.env.timers.t1;
        self.pending_2xx[side] = Some(Box::new(Pending2xx {
            resp,
            cseq: cseqs.0,
            other_cseq: cseqs.1,
            interval: t1,
            txn,
            offer,
            offer_if_prack_refused: false,
            then_bye: None,
        }));
        // Over TCP too (RFC 3261 §13.3.1.4): a 2xx is retransmitted end to end, and a hop
        // beyond the peer's connection (its SBC or proxy toward a phone) may be UDP, where
        // it can be lost; only the ACK ends it.
        self.timers.set(CallTimer::Retransmit2xx(side), cx.now + t1);
        self.timers
            .set(CallTimer::AckTimeout(side), cx.now + t1 * 64);
    }

    /// Retransmit our 2xx on `side`, doubling the interval up to T2.
    pub(super) fn on_retransmit_2xx(&mut self, cx: &mut Cx, side: Side) {
        let t2 = cx.env.timers.t2;
        let Some(p) = self.pending_2xx[side].as_mut() else {
            return;
        };
        p.interval = (p.interval * 2).min(t2);
        let (resp, txn, interval) = (p.resp.clone(), p.txn, p.interval);
        cx.send_response(txn, resp);
        cx.env.retransmissions.sent += 1;
        self.timers
            .set(CallTimer::Retransmit2xx(side), cx.now + interval);
    }

    /// Our 2xx on `side` is waited for no more: taken, with its retransmission and its ACK
    /// timer.
    pub(super) fn take_pending_2xx(&mut self, side: Side) -> Option<Box<Pending2xx>> {
        let p = self.pending_2xx[side].take()?;
        self.timers.clear(CallTimer::Retransmit2xx(side));
        self.timers.clear(CallTimer::AckTimeout(side));
        Some(p)
    }

    /// The ACK our 2xx `p` on `side` owed the other side's 2xx, sent without waiting for
    /// `side`'s: a 2xx that offered gets a refusing answer in it (RFC 3261 §13.2.2.4), the
    /// session being over. Nothing when it owed none.
    pub(super) fn send_owed_ack(&mut self, cx: &mut Cx, side: Side, p: &Pending2xx) {
        if let Some(cseq) = p.other_cseq {
            // In the session the other side has been shown: an existing dialog.
            let answer = p
                .offer
                .then(|| {
                    let ct = p.resp.header(&Hdr::CONTENT_TYPE);
                    let shown = self.media.as_mut().map(|m| &mut m.shown[side.other()]);
                    refusal(ct.as_deref(), p.resp.body(), self.cfg.media_ip, shown)
                })
                .flatten();
            self.send_ack(cx, side.other(), cseq, answer);
        }
    }

    /// No ACK for our 2xx within 64·T1: the side is gone (RFC 3261 §13.3.1.4). Hang up both.
    pub(super) fn on_ack_timeout(&mut self, cx: &mut Cx, side: Side) {
        let Some(p) = self.take_pending_2xx(side) else {
            return;
        };
        warn!(call_id = %self.call_id(), ?side, "no ACK for our 2xx: releasing the call");
        self.events.push(CallEvent::AckTimeout(side));
        self.send_owed_ack(cx, side, &p);
        if let Some(reason) = p.then_bye {
            self.send_held_bye(cx, side, reason);
        }
        // The side is gone (its ACK never came: it crashed, or lost its way back), as a
        // leg whose dialog a relayed request found gone: the peer's failure, not ours.
        if !self.phase.is_ending() {
            self.release_answered(cx, CallTag::PeerUnreachable, Q850Cause::TIMER_EXPIRY);
        }
    }

    /// An ACK (outside any transaction) on `side`: for one of our 2xx responses.
    pub(super) fn on_ack(&mut self, cx: &mut Cx, side: Side, ack: &Request) {
        let cseq = ack.seq();
        if self.pending_2xx[side]
            .as_ref()
            .is_some_and(|p| p.cseq == cseq)
            && let Some(p) = self.take_pending_2xx(side)
        {
            // Only the caller's ACK of our 2xx confirms the call and ends its early
            // offer/answer: an ACK of nothing we sent (a stray, or one while the 2xx is held
            // for a PRACK) leaves all of it as it is.
            let (mut shown, mut early) = (None, None);
            if side == Side::A {
                self.phase.confirm();
                early = self.uas_rel.early_answer.take();
                self.uas_rel.caller_session = None;
                let agreed = self.media.as_mut().and_then(|m| m.caller_agreed.take());
                shown = agreed.map(|v| {
                    let ct = p.resp.header(&Hdr::CONTENT_TYPE);
                    (v, (p.resp.body().clone(), ct))
                });
            }
            // The other side hung up while this ACK was awaited (its 2xx was ACKed then):
            // this side's BYE may go now.
            if let Some(reason) = p.then_bye {
                self.send_held_bye(cx, side, reason);
                return;
            }
            // A 2xx the gateway sent on its own (a session refresh) has nothing to pass on.
            let Some(other_cseq) = p.other_cseq else {
                return;
            };
            let mut ct = super::anchor::readable_type(ack);
            // (Our PRACK that answered the callee's offer refused since the callee's 2xx:
            // that offer stands, and this ACK carries the answer.)
            let offer = p.offer || (p.offer_if_prack_refused && !self.branch_answered_in_prack());
            // Only a 2xx that offered is answered in its ACK (RFC 3264 §4, RFC 3261
            // §13.2.2.4): SDP in any other ACK is no answer, and nothing to pass on.
            let mut answer = if offer {
                ack.body().clone()
            } else {
                Bytes::new()
            };
            if answer.is_empty()
                && offer
                && let Some((early, early_ct)) = early.as_deref()
            {
                // The callee's 2xx offers the session its unreliable 18x showed; the caller
                // had that 18x reliably and answered in its PRACK, so for the caller the
                // offer/answer is done and its ACK is empty. That answer is the callee's
                // (RFC 3261 §13.2.2.4: an ACK to a 2xx offer must carry one).
                answer = early.clone();
                ct = early_ct.clone();
            }
            if offer && answer.is_empty() {
                // Our 2xx offered and this ACK does not answer (RFC 3261 §13.2.2.4 says it
                // must): the far leg's offer is refused in its ACK, so that neither leg keeps
                // a session the other never agreed to, and the call is released.
                warn!(call_id = %self.call_id(), ?side, "ACK without the answer to our 2xx's offer: call released");
                self.send_owed_ack(cx, side, &p);
                if !self.phase.is_ending() {
                    self.release_answered(cx, CallTag::GatewayError, Q850Cause::INTERWORKING);
                }
                return;
            }
            self.note_sdp_received(side, &answer, ct.as_deref());
            self.agree(side, &answer, ct.as_deref());
            let mut encoding = None;
            // (`send_ack_encoded` shapes it so again, to the same bytes.)
            let shaped = self.shaped_for(side.other(), &answer, ct.as_deref());
            let body = (!answer.is_empty()).then(|| {
                // Late offer/answer: the ACK's SDP is anchored like any other; unanchored,
                // it goes on as it came, typed (and encoded) as it came.
                self.anchored_body(cx, side, &shaped, ct.as_deref(), Exchange::Answer)
                    .unwrap_or_else(|| {
                        if answer == *ack.body() {
                            encoding = ack.encoding();
                        }
                        (
                            answer.clone(),
                            ct.clone().or_else(|| ack.header(&Hdr::CONTENT_TYPE)),
                        )
                    })
            });
            self.send_ack_encoded(cx, side.other(), other_cseq, body, encoding);
            if let Some((agreed, shown)) = shown {
                self.reoffer_if_moved(cx, agreed, shown);
            }
        }
    }

    /// Send the ACK for the 2xx to our INVITE with CSeq `cseq` on `side`.
    pub(super) fn send_ack(
        &mut self,
        cx: &mut Cx,
        side: Side,
        cseq: u32,
        body: Option<(Bytes, Option<String>)>,
    ) {
        self.send_ack_encoded(cx, side, cseq, body, None);
    }

    /// [`Call::send_ack`] with a body encoded as `encoding` says (`Content-Encoding`, sent
    /// with it; the body is then not shaped for the peer).
    fn send_ack_encoded(
        &mut self,
        cx: &mut Cx,
        side: Side,
        cseq: u32,
        body: Option<(Bytes, Option<String>)>,
        encoding: Option<String>,
    ) {
        let profile = self.profile(side).cloned();
        let creds = self.invite_auth[side]
            .as_ref()
            .filter(|c| c.cseq == cseq)
            .map(|c| c.lines.clone())
            .unwrap_or_default();
        let Some(leg) = self.dialog(side) else {
            return;
        };
        let target = leg.target;
        let mut ptime_set = false;
        let built = leg.ack(cseq, &cx.env.local).and_then(|mut ack| {
            for (h, v) in creds {
                ack.insert_header_before_length(&h, v)?;
            }
            if let Some((b, ct)) = body.clone()
                && !b.is_empty()
            {
                let shaped = match (&profile, &encoding) {
                    (Some(p), None) => body_for(p, &b, ct.as_deref()),
                    _ => b.clone(),
                };
                if let Some(e) = &encoding {
                    ack.insert_header_before_length(&Hdr::named("Content-Encoding"), e.clone())?;
                }
                if shaped != b {
                    ptime_set = true;
                }
                ack.set_body(shaped, ct.as_deref())?;
            }
            Ok(ack)
        });
        match built {
            Ok(mut ack) => {
                // An ACK's SDP is our answer to the leg's offer in its 2xx.
                if body.is_some() {
                    let ct = ack.header(&Hdr::CONTENT_TYPE);
                    let sent = ack.body().clone();
                    self.note_sdp_sent(side, &sent, ct.as_deref(), true, None);
                }
                if ptime_set {
                    cx.env.rewrote(super::cx::Rewrite::Ptime);
                }
                let has_body = !ack.body().is_empty();
                let target = cx.env.toward(&mut ack, target, None);
                let msg = Message::Request(ack);
                let wire = msg.to_bytes();
                self.acks[side] = Some(SentAck {
                    cseq,
                    wire: Some(wire.clone()),
                    has_body,
                });
                cx.emit(super::Output::Transmit {
                    target,
                    wire,
                    txn: None,
                });
            }
            Err(e) => warn!(error = %e, "cannot build ACK"),
        }
    }

    /// A 2xx to one of our in-dialog INVITEs that came again after its transaction was done
    /// (our ACK was lost): the leg it belongs to gets that ACK again.
    pub(super) fn ack_2xx_again(&mut self, cx: &mut Cx, resp: &Response) {
        let Some((cseq, crate::sip::Method::Invite)) = resp.cseq() else {
            return;
        };
        if !resp.is_success() {
            return;
        }
        let (call_id, tag) = (resp.call_id(), resp.from_tag());
        let side = [Side::A, Side::B].into_iter().find(|s| {
            self.dialog(*s).is_some_and(|d| {
                call_id.as_deref() == Some(&*d.call_id) && tag.as_deref() == Some(&*d.local_tag)
            })
        });
        if let Some(side) = side {
            self.ack_again_on(cx, side, cseq, resp);
        }
    }

    /// A 2xx to our INVITE with CSeq `cseq` on `side`, after its transaction was done.
    pub(super) fn ack_again_on(&mut self, cx: &mut Cx, side: Side, cseq: u32, resp: &Response) {
        if let Some(given_up) = self.given_up[side].as_mut().and_then(|g| g.answer(cseq)) {
            self.ack_given_up(cx, side, given_up, resp);
            return;
        }
        if !self.resend_ack(cx, side, cseq) && self.phase.is_ending() {
            // A re-INVITE of ours answered after the call ended (its origin got 487): the
            // 2xx still needs its ACK, or that peer retransmits it for 32 s.
            self.send_ack(cx, side, cseq, None);
        }
    }

    /// A 2xx (first or again) to a re-INVITE given up before its final answer: its ACK is
    /// built from the dialog each time, whatever ACK the leg got since (the one kept for
    /// resending stays the newer INVITE's). An offer in it, to a re-INVITE without one, the
    /// origin (answered 487) can no longer answer: the ACK answers it with every stream
    /// refused, and the session, now without media on that leg, ends with BYE (RFC 3261
    /// §13.2.2.4).
    fn ack_given_up(&mut self, cx: &mut Cx, side: Side, given_up: GivenUpInvite, resp: &Response) {
        let refusal = if given_up.offerless {
            // An existing dialog: an anchored leg sees the session it was shown go on.
            let ct = resp.header(&Hdr::CONTENT_TYPE);
            let shown = self.media.as_mut().map(|m| &mut m.shown[side]);
            refusal(ct.as_deref(), resp.body(), self.cfg.media_ip, shown)
        } else {
            None
        };
        let refused = refusal.is_some();
        let newer = self.acks[side].take();
        self.send_ack(cx, side, given_up.cseq, refusal);
        self.acks[side] = newer;
        if refused && !self.phase.is_ending() {
            warn!(
                call_id = %self.call_id(),
                "offer in a 2xx to a given-up re-INVITE: refused in the ACK, call released"
            );
            self.release_answered(cx, CallTag::GatewayError, Q850Cause::INTERWORKING);
        }
        // An offer answered after all. A relayed one: that peer took a session its other
        // side was told had failed, so it is offered again the session the gateway has with
        // it. One of ours: it offered that session, so the relay follows the answer.
        if !given_up.offerless
            && !given_up.answered
            && crate::sdp::carries_sdp(resp.header(&Hdr::CONTENT_TYPE).as_deref(), resp.body())
        {
            if given_up.own {
                self.take_late_answer(cx, side, resp);
            } else {
                self.offer_standing_session(cx, side);
            }
        }
    }

    /// The answer, for an ACK, that refuses every stream of the offer in `resp` (an offer
    /// the gateway must answer and cannot accept), with its Content-Type. `None`: `resp`
    /// carries no SDP, so no offer.
    pub(super) fn refusing_answer(&self, resp: &Response) -> Option<(Bytes, Option<String>)> {
        let ct = resp.header(&Hdr::CONTENT_TYPE);
        refusal(ct.as_deref(), resp.body(), self.cfg.media_ip, None)
    }

    /// The 2xx to our INVITE with CSeq `cseq` on `side` came again: repeat our ACK. False when
    /// we never ACKed that INVITE.
    pub(super) fn resend_ack(&mut self, cx: &mut Cx, side: Side, cseq: u32) -> bool {
        let Some(ack) = self.acks[side].as_ref().filter(|a| a.cseq == cseq) else {
            return false;
        };
        let Some(wire) = ack.wire.clone() else {
            // Settled without its bytes (it had no body): the same ACK again, from the dialog.
            cx.env.retransmissions.absorbed += 1;
            cx.env.retransmissions.sent += 1;
            self.send_ack(cx, side, cseq, None);
            return true;
        };
        let Some(target) = self.dialog(side).map(|d| d.target) else {
            return false;
        };
        // Where the first one went (the front, when there is one).
        let target = cx.env.cfg.front.unwrap_or(target);
        cx.env.retransmissions.absorbed += 1;
        cx.env.retransmissions.sent += 1;
        cx.emit(super::Output::Transmit {
            target,
            wire,
            txn: None,
        });
        true
    }
}

/// The body and Content-Type of an ACK (or other answer of the gateway's own) refusing every
/// stream of `offer` (see [`crate::sdp::refusing_answer`]; `shown`: the session the peer was
/// shown, on an anchored call's existing dialog); `None` when it holds no SDP.
pub(super) fn refusal(
    ct: Option<&str>,
    offer: &[u8],
    media_ip: std::net::IpAddr,
    shown: Option<&mut Option<crate::sdp::Origin>>,
) -> Option<(Bytes, Option<String>)> {
    crate::sdp::refusing_answer(ct, offer, media_ip, shown)
        .map(|b| (b, Some("application/sdp".into())))
}
