//! What the callee answers an INVITE attempt: its provisional responses (ringing, early
//! media, reliable ones), its 2xx, and the response the caller is sent from each; its
//! failures are `failover`'s.

use std::time::Duration;

use tracing::{debug, warn};

use super::anchor::Exchange;
use super::cx::Cx;
use super::phase::Then;
use super::reliable::reliable_rseq;
use super::state::{Call, RseqIs, UacRel};
use super::timers::CallTimer;
use super::{Direction, Side, Stage};
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::interop::egress::{Sender, relayed_response};
use crate::sip::{Hdr, Response, SipError};
use crate::txn::TxnId;

impl Call {
    /// The callee's 2xx answered the call now: its answer time, the relay told, ringing
    /// over, 64·T1 for the rest of the exchange (`Settle`), the callee's progress; its
    /// length bounded from now by the shorter of its two peers' `max_call_duration_s` and
    /// `own` (a call-back's), and its legs probed.
    pub(super) fn answered_now(&mut self, cx: &mut Cx, own: Option<Duration>) {
        self.phase.answer(cx.now);
        self.media_answered(cx);
        self.answered_wall = Some(cx.env.wall(cx.now));
        self.timers.clear(CallTimer::Ring);
        self.timers
            .set(CallTimer::Settle, cx.now + cx.env.timers.t1 * 64);
        if let Some(peer) = self.egress_name().cloned() {
            self.progress(cx, peer, Direction::Outbound, Stage::Answered);
        }
        let max = [Side::A, Side::B]
            .iter()
            .filter_map(|s| self.profile(*s).and_then(|p| p.limits.max_call_duration))
            .chain(own)
            .min();
        if let Some(max) = max {
            self.timers.set(CallTimer::MaxDuration, cx.now + max);
        }
        self.arm_probes(cx.now);
    }

    /// A response to the current (or an earlier) INVITE attempt, number `n`.
    pub(super) fn on_invite_response(&mut self, cx: &mut Cx, id: TxnId, n: u32, resp: Response) {
        // An INVITE given up unheard (the last of the route's too, which stays the current
        // attempt) is an earlier attempt's: CANCELled if it rings, hung up if it answers.
        let abandoned = self.was_abandoned(id);
        let current = !abandoned && self.attempt.as_ref().is_some_and(|a| a.txn == id);
        // Behind a front, what it says itself, unstamped: a Kamailio front answers every
        // INVITE it relays with its own 100 at once (which stops Timer B and our
        // `invite_timeout_s` as a proxy's 100 does: the front times the peer's silence,
        // told the timeout in `X-Trunkgate-Peer`), and sends its own 408 when that time
        // for the peer ends: the peer's silence, not its answer.
        let fronts_own = |code: u16| {
            resp.status() == code
                && cx.env.cfg.front.is_some()
                && resp.header(&Hdr::named(super::cx::SOURCE_HEADER)).is_none()
        };
        if current {
            // The peer is heard: its INVITE is no longer given up for silence.
            self.timers.clear(CallTimer::InviteTimeout);
        } else {
            if abandoned {
                self.abandoned_heard(cx, id, &resp);
            } else if self.on_user1_2xx_again(cx, id, &resp) {
                return;
            }
            // An earlier attempt's final answer ends its transaction for the call (one given
            // up unheard and let go of, for one, was kept open).
            if !resp.is_provisional() {
                self.close_txn(id);
            }
            // An answer to an attempt we already gave up on (failover raced a late 2xx).
            if resp.is_success() {
                let peer = self.earlier_attempt_peer(cx, id, n);
                self.kill_fork(cx, id, &resp, peer);
            }
            return;
        }
        let alerted = self.attempt.as_ref().is_some_and(|a| a.state.alerted());
        if resp.is_provisional() {
            self.on_invite_provisional(cx, resp);
        } else if resp.is_success() {
            self.on_invite_2xx(cx, id, resp);
        } else if fronts_own(408) && !alerted {
            // The peer never answered: its silence, as Timer B would have found it.
            self.on_invite_unreachable(cx, id, true);
        } else {
            self.on_invite_failure(cx, resp);
        }
    }

    fn on_invite_provisional(&mut self, cx: &mut Cx, resp: Response) {
        let status = resp.status();
        let Some(att) = self.attempt.as_mut() else {
            return;
        };
        let was_alerted = att.state.alerted();
        if att.state.on_provisional(status) == Then::SendCancel {
            let end = self.phase.end_info().cloned();
            self.send_cancel(cx, end.as_ref());
            return;
        }
        if !was_alerted && att.state.alerted() {
            let peer = att.peer.name.clone();
            self.progress(cx, peer, Direction::Outbound, Stage::Ringing);
        }
        if status == 100 || !self.phase.is_routing() {
            return;
        }
        if let Some(tag) = resp.to_tag()
            && self.branch_said_gone(&tag)
        {
            debug!(%tag, "provisional from a branch whose early dialog is gone: ignored");
            return;
        }
        let rseq = reliable_rseq(&resp);
        if let Some(rseq) = rseq {
            if self.uac_rel.open_pracks() >= usize::from(UacRel::MAX_OPEN_PRACKS) {
                debug!(
                    rseq,
                    "reliable provisional while our PRACKs wait: taken as lost"
                );
                return;
            }
            // Judged in its own early dialog, before it may change ours: a retransmission,
            // or one past a missing one (RFC 3262 §4), is neither PRACKed nor relayed.
            let tag = resp.to_tag().unwrap_or_default();
            let is = self.uac_rel.take_rseq(&tag, rseq);
            if is != RseqIs::Next {
                if is == RseqIs::Gap {
                    debug!(rseq, "reliable provisional past a missing one: ignored");
                }
                return;
            }
        }
        if status == 199 {
            return self.on_early_dialog_terminated(cx, &resp, rseq);
        }
        if let Some(tag) = resp.to_tag() {
            self.follow_fork(&tag);
            if let Some(b) = self.b.as_mut() {
                b.learn_from_response(&resp);
            }
        }
        if let Some(rseq) = rseq {
            self.on_reliable_from_callee(cx, &resp, rseq);
            self.keep_early_answer_of_callee(&resp);
        }
        if self.caller_txn().is_none() {
            // A call-back has no caller to show progress to (early media included).
            return;
        }
        match self.toward_caller(cx, &resp, self.sender(Side::B)) {
            Ok(mut out) => {
                self.carry_identity(&cx.env.local, Side::A, &mut out);
                // To an INVITE without SDP, the callee's SDP is its offer.
                let offer = !self.attempt.as_ref().is_some_and(|a| a.offered);
                // One that will wait in the queue is numbered for the caller (`o=`) as it
                // goes, not now: what the caller is shown meanwhile (the answer to its
                // PRACK's offer) comes first, and no version may be skipped (RFC 3264 §8).
                let waits = self.provisional_waits(status);
                let shown = self.media.as_ref().map(|m| m.shown.a);
                let exchange = if offer {
                    Exchange::OfferInResponse
                } else {
                    Exchange::EarlyAnswer
                };
                self.anchor_answer(cx, Side::B, &mut out, exchange);
                if waits && let (Some(m), Some(before)) = (self.media.as_mut(), shown) {
                    m.shown.a = before;
                }
                self.send_provisional_to_caller(cx, out)
            }
            Err(e) => warn!(error = %e, "cannot relay {status} to caller"),
        }
        // A branch offering after the caller answered another's: its PRACK goes now, its
        // offer anchored (the answer is shaped by it).
        self.answer_held_offers(cx);
    }

    pub(super) fn on_invite_2xx(&mut self, cx: &mut Cx, txn: TxnId, resp: Response) {
        let unwanted = self.attempt.as_ref().is_some_and(|a| a.state.unwanted());
        // The caller's offer in its PRACK is with the callee: this answer is taken once that
        // offer's is, against the session it leaves (one offer/answer at a time toward the
        // caller).
        if self.prack_offer_out() && self.phase.is_routing() && !unwanted {
            return self.defer_2xx_for_prack_offer(cx, txn, resp);
        }
        // A retransmitted or forked 2xx finds the attempt already finished.
        let first = self.finish_attempt();
        // Finished without an answer while the call still routes: the attempt failed and
        // a failover waits (for the caller's PRACK answer); another fork's 2xx has no place.
        let failed = !first && self.phase.is_routing();
        let same =
            self.b.as_ref().and_then(|b| b.remote_tag.as_deref()) == resp.to_tag().as_deref();
        // The answered 2xx again after the call ended (it was in flight when a side hung
        // up): its ACK again, as while the call was up; not a second BYE and a late answer.
        if !first && same && self.phase.is_ending() && self.resend_ack(cx, Side::B, resp.seq()) {
            return;
        }
        if self.phase.is_ending() || unwanted || failed {
            // The 2xx crossed our CANCEL (or the call ended meanwhile): accept and hang up.
            self.kill_fork(cx, txn, &resp, self.attempt_peer());
            return;
        }
        if !self.phase.is_routing() {
            // A retransmission (ACK it again) or another fork's answer (ACK and BYE it).
            if same {
                self.resend_ack(cx, Side::B, resp.seq());
            } else {
                self.kill_fork(cx, txn, &resp, self.attempt_peer());
            }
            return;
        }
        if let Some(b) = self.b.as_mut() {
            b.learn_from_response(&resp);
        }
        let resp = self.with_early_answer(cx, resp);
        let asked = self.attempt.as_ref().and_then(|a| a.asked_se);
        let callee_timer = self.timer_policy(Side::B).as_uac(&resp, asked);
        self.set_session(cx, Side::B, callee_timer);
        if self.caller_txn().is_none() {
            return self.on_callback_answer(cx, resp);
        }
        // Built before the call counts as answered: a 2xx that cannot be relayed fails the
        // call unanswered (no answer time, no recording kept), as the caller saw it.
        let mut out = match self.toward_caller(cx, &resp, self.sender(Side::B)) {
            Ok(out) => out,
            Err(e) => {
                warn!(error = %e, "cannot relay 2xx to caller");
                self.kill_fork(cx, txn, &resp, self.attempt_peer());
                self.fail_call(cx, 500, CallTag::GatewayError, Q850Cause::PROTOCOL_ERROR);
                return;
            }
        };
        if self.refused_unreadable_answer(cx, &resp, &out) {
            return;
        }
        self.forget_early_forks();
        self.answered_now(cx, None);
        #[cfg(test)]
        super::router::test_fault::strike_answered();
        self.carry_identity(&cx.env.local, Side::A, &mut out);
        // The caller's leg gets its own session timer, negotiated on its INVITE (before the
        // SDP goes: a leg with a timer keeps it for refreshes).
        let caller_invite = self.template().clone();
        self.announce_session(cx, Side::A, &caller_invite, &mut out);
        // To an INVITE without SDP, the callee's SDP is its offer.
        let offer = !self.attempt.as_ref().is_some_and(|a| a.offered);
        if !offer {
            self.agree_with(Side::B, &out);
        }
        self.anchor_answer(cx, Side::B, &mut out, Exchange::in_response(offer));
        let b_cseq = resp.seq();
        self.deliver_2xx_to_caller(cx, out, b_cseq);
        debug!(call_id = %self.call_id(), egress = self.egress_str(), "call answered");
    }

    /// A callee's response `resp`, as our response to the caller's INVITE (the caller's
    /// profile shapes it; `interop::egress`). `sender`: the callee that sent it (after a
    /// failover, the last failure may be an earlier callee's).
    pub(super) fn toward_caller(
        &self,
        cx: &Cx,
        resp: &Response,
        sender: Sender,
    ) -> Result<Response, SipError> {
        relayed_response(
            self.template(),
            resp,
            &self.a.local_tag,
            &self.ingress,
            &cx.env.local,
            sender,
        )
    }
}
