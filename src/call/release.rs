//! Releasing calls: fixing how a call ended (and its CDR), hanging up answered calls from the
//! gateway's side, BYE, what our BYEs' answers mean, shutdown, and the Linger safety net.

use tracing::{debug, warn};

use super::Output;
use super::Side;
use super::challenge::is_challenge;
use super::cx::Cx;
use super::phase::EndInfo;
use super::state::{Call, TxnRole};
use super::timers::CallTimer;
use crate::cdr::CallTag;
use crate::interop::causes::{CauseSource, Q850Cause, parse_reason, reason_header};
use crate::interop::egress::reason_for;
use crate::sip::{Hdr, Method, Response};
use crate::txn::TxnId;

/// Q.850 cause for a BYE: its Reason header, else 16 normal clearing (RFC 3398 §9).
pub(super) fn bye_cause(reason_lines: &[String]) -> (u16, CauseSource, Option<String>) {
    let r = parse_reason(reason_lines);
    match r.q850 {
        Some(q) => (q.0, CauseSource::ReasonHeader, r.sip),
        None => (Q850Cause::NORMAL_CLEARING.0, CauseSource::Rfc3398, r.sip),
    }
}

/// The final answer to a caller whose 2xx was held for its PRACK when the call ended (the
/// callee had answered): 487 when the caller itself ended it (RFC 3261 §15.1.2), 480 when
/// the callee hung up, 500 when the caller never PRACKed, else 503.
fn held_refusal(tag: CallTag) -> u16 {
    match tag {
        CallTag::CallerBye | CallTag::CallerCancel => 487,
        CallTag::CalleeBye => 480,
        CallTag::PrackRejected => 500,
        _ => 503,
    }
}

impl Call {
    /// Fix how the call ended and write its CDR. Only the first release counts.
    pub(super) fn end_call(&mut self, cx: &mut Cx, mut end: EndInfo) {
        // The callee's 2xx held for the caller's PRACK never reached the caller: for the
        // caller, and the CDR, the call was not answered; its INVITE gets a final answer.
        let refused = self.uas_rel.held_2xx.is_some() && !self.phase.is_ending();
        if refused {
            end.status = held_refusal(end.tag);
            self.answered_wall = None;
        }
        let (status, cause) = (end.status, end.cause);
        if !self.phase.end(end) {
            return;
        }
        // Counted ended at once (the count `forget` takes back): a fault before the count
        // left the gateway's active calls, and its `max_calls`, one too high per fault.
        cx.env.ended_calls += 1;
        #[cfg(test)]
        super::router::test_fault::strike_ended();
        if refused {
            self.phase.forget_answer();
        }
        self.timers.clear(CallTimer::Ring);
        // The CDR first: the call counts as ended from here, and a fault in what follows
        // (`router/fault.rs`) writes none for a call ended already.
        let cdr = self.cdr(cx.env);
        debug!(
            call_id = %cdr.call_id,
            tag = ?cdr.call_tag,
            status = cdr.status,
            cause = cdr.cause,
            "call ended"
        );
        // Refused before any INVITE went out (every peer of its route over its limits or
        // gone, no relay ports, an offer the relay cannot take): as a refusal before the
        // call existed, its CDR is held to the caller's peer's `[cdr] refused_rate`, so a
        // flood of such INVITEs fills the file no faster than any other refused one.
        // (An attempt that failed over is kept as `last_failure`, whatever became of `b`.)
        let unsent =
            self.b.is_none() && self.last_failure.is_none() && self.third_party().is_none();
        let (cdr_tag, cdr_cause) = (cdr.call_tag, cdr.cause);
        if !unsent
            || cx
                .env
                .refusal_recorded(cx.now, &self.ingress.name, cdr_tag, cdr_cause)
        {
            let recorded = self.recorded(&cdr, cx.r);
            cx.emit(Output::Cdr(Box::new(cdr), recorded));
        }
        self.marks.set_cdr_done();
        // Its media stops now: no more audio to a party that hung up (a phone may reuse
        // the port for its next call), none past a `max_call_duration_s`, nothing in the
        // recording after the CDR's end. The ports are released when the call is forgotten.
        self.emit_relay(cx, None);
        if refused {
            self.refuse_held_2xx(cx, status, Some(&reason_header(Q850Cause(cause))));
        }
        // Over for its peers: their `max_calls` no longer count it, though its last
        // transactions may take 32 s more (a BYE toward a trunk that died), else an outage
        // would hold the caller's slots that long.
        for p in self.counted_peers() {
            cx.env.limits.release(&p);
        }
        self.report_callback_end(cx);
        // RFC 3261 §15.1.2: what is still pending in the dialog gets 487. A far leg that
        // never answers what we relayed (a re-INVITE left at 180) cannot hold the origin's
        // transaction open for ever; our request there ends by itself or at Linger.
        for (_, mut rel) in std::mem::take(&mut self.relayed) {
            rel.terminate(cx);
            // A re-INVITE relayed without SDP whose 2xx (an offer) still comes is ACKed with
            // every stream refused, not bodiless (RFC 3261 §13.2.2.4).
            if rel.sent.method() == Method::Invite {
                self.remember_given_up(rel.origin.other(), &rel.sent, false);
            }
            // A callee's 2xx that waited for the caller's PRACK offer: ACKed and hung up. (No
            // `prack_offer_ignored` here: the call's end says what became of it.)
            self.drop_deferred_2xx(cx, &mut rel);
        }
        // Safety net: whatever happens to the remaining transactions, forget the call after
        // they would all have timed out.
        self.timers
            .set(CallTimer::Linger, cx.now + cx.env.timers.t1 * 80);
    }

    /// The call ends: a 2xx of ours that waits for its ACK on either side is sent no more,
    /// and the peer's 2xx it answered (a re-INVITE relayed) gets its ACK now rather than when
    /// an ACK that will not come arrives.
    pub(super) fn settle_pending_2xx(&mut self, cx: &mut Cx) {
        for side in [Side::A, Side::B] {
            self.settle_pending_2xx_on(cx, side);
        }
    }

    /// [`Call::settle_pending_2xx`] on `side` only.
    pub(super) fn settle_pending_2xx_on(&mut self, cx: &mut Cx, side: Side) {
        if let Some(p) = self.take_pending_2xx(side) {
            self.send_owed_ack(cx, side, &p);
            if let Some(reason) = p.then_bye {
                self.send_held_bye(cx, side, reason);
            }
        }
    }

    /// The BYE held for `side`'s ACK goes (the ACK came, or its wait or the call's time is
    /// over), with time for its answer before the call is dropped.
    pub(super) fn send_held_bye(&mut self, cx: &mut Cx, side: Side, reason: Option<String>) {
        self.send_bye(cx, side, reason);
        self.timers
            .set(CallTimer::Linger, cx.now + cx.env.timers.t1 * 80);
    }

    /// Hang up an answered call from the gateway's side (timers, shutdown, media timeout):
    /// ACK any 2xx still waiting on either side, write the CDR, BYE both legs with the cause.
    /// Our 2xx to the caller, the call's first, that waits for its ACK is still sent until
    /// the ACK comes, and the caller's BYE waits for it (RFC 3261 §15, as when the callee
    /// hangs up then: `on_bye`). Before, the 2xx stopped and the BYE went at once: a caller
    /// whose 2xx was lost never had it, and answered the BYE 481.
    pub(super) fn release_answered(&mut self, cx: &mut Cx, tag: CallTag, cause: Q850Cause) {
        let reason = Some(reason_header(cause));
        let confirmed = matches!(self.phase, super::phase::Phase::Confirmed { .. });
        let caller_waits = !confirmed && self.pending_2xx[Side::A].is_some();
        if caller_waits && let Some(mut p) = self.pending_2xx[Side::A].take() {
            self.send_owed_ack(cx, Side::A, &p);
            p.other_cseq = None;
            p.then_bye = Some(reason.clone());
            self.pending_2xx[Side::A] = Some(p);
            self.settle_pending_2xx_on(cx, Side::B);
        } else {
            self.settle_pending_2xx(cx);
        }
        self.end_call(cx, EndInfo::internal(tag, 200, cause.0, cx.now));
        if !caller_waits {
            self.send_bye(cx, Side::A, reason.clone());
        }
        self.send_bye(cx, Side::B, reason);
    }

    /// Send a BYE on `side`, carrying `reason` (a Reason header value) when its peer wants it.
    pub(super) fn send_bye(&mut self, cx: &mut Cx, side: Side, reason: Option<String>) {
        if side == Side::A && self.caller_txn().is_some() && self.phase.answered_at().is_none() {
            // A caller never answered has no dialog to end: its INVITE got a final answer
            // (`end_call`, when its 2xx was held for a PRACK). A call-back's user1 (no
            // INVITE of its own) answered ours, and does get its BYE.
            return;
        }
        let reason = reason_for(self.profile(side).map(|p| &**p), reason);
        let Some(leg) = self.dialog_mut(side) else {
            return;
        };
        // A callee's early dialog is ended by CANCEL, not BYE; one that answered without a
        // To tag (RFC 2543) has its dialog all the same, its remote tag null.
        if side == Side::B && leg.remote_tag.is_none() && !leg.answered {
            return;
        }
        let target = leg.target;
        let built = leg
            .request(Method::Bye, &cx.env.local, &mut cx.env.ids)
            .and_then(|mut bye| {
                // A Reason that cannot be built stays out; the BYE goes all the same.
                if let Some(reason) = reason.filter(|r| crate::interop::egress::buildable(r)) {
                    bye.insert_header_before_length(&Hdr::REASON, reason)?;
                }
                Ok(bye)
            });
        match built {
            Ok(mut bye) => {
                self.sign(cx, side, &mut bye);
                self.marks.set_bye_sent(side);
                if let Some(id) = self.start_client(cx, bye.clone(), target, TxnRole::Bye(side)) {
                    self.byes.push((id, bye));
                }
            }
            Err(e) => warn!(error = %e, "cannot build BYE"),
        }
    }

    /// The final answer to our BYE `id` on `side`: a challenge is answered once (the BYE
    /// again, with credentials); anything else ends it.
    pub(super) fn on_bye_answer(&mut self, cx: &mut Cx, side: Side, id: TxnId, resp: &Response) {
        self.close_txn(id);
        let Some(i) = self.byes.iter().position(|(t, _)| *t == id) else {
            return self.on_fork_bye_answer(cx, id, resp);
        };
        let (_, sent) = self.byes.swap_remove(i);
        if !is_challenge(resp) {
            return;
        }
        match self.answer_challenge(cx, side, &sent, resp, TxnRole::Bye(side)) {
            Ok((id, bye)) => self.byes.push((id, bye)),
            Err(why) => self.challenge_failed(resp.status(), &why),
        }
    }

    /// The final answer to our BYE `id` to a fork we hung up (`Forks::byes`): a challenge
    /// is answered once, as to the call's own BYE.
    fn on_fork_bye_answer(&mut self, cx: &mut Cx, id: TxnId, resp: &Response) {
        let Some(forks) = self.forks.as_mut() else {
            return;
        };
        let Some(i) = forks.byes.iter().position(|(t, _, _)| *t == id) else {
            return;
        };
        let (_, sent, target) = forks.byes.swap_remove(i);
        if !is_challenge(resp) {
            return;
        }
        // An earlier attempt's peer's (a late 2xx after a failover): its own credentials.
        if self
            .b
            .as_ref()
            .is_none_or(|b| Some(&*b.call_id) != sent.call_id().as_deref())
        {
            return match self.answer_earlier_challenge(cx, &sent, target, resp) {
                Ok((id, bye)) => {
                    let forks = self.forks.get_or_insert_with(Default::default);
                    forks.byes.push((id, bye, target));
                }
                Err(why) => self.challenge_failed(resp.status(), &why),
            };
        }
        let again = (sent.seq().wrapping_add(1), target);
        match self.answer_challenge_to(cx, Side::B, again, &sent, resp, TxnRole::Bye(Side::B)) {
            Ok((id, bye)) => {
                let forks = self.forks.get_or_insert_with(Default::default);
                forks.byes.push((id, bye, target));
            }
            Err(why) => self.challenge_failed(resp.status(), &why),
        }
    }

    /// Our BYE got no answer. (The CDR is written already: nothing to add to it.)
    pub(super) fn on_bye_unanswered(&mut self) {
        self.byes.retain(|(t, _)| self.open.contains(t));
        if let Some(forks) = self.forks.as_mut() {
            forks.byes.retain(|(t, _, _)| self.open.contains(t));
        }
    }

    /// Shutdown: release the call whatever its phase. CDRs say `shutdown`.
    pub(super) fn hang_up(&mut self, cx: &mut Cx) {
        if self.phase.is_routing() {
            self.fail_call(cx, 503, CallTag::Shutdown, Q850Cause::TEMPORARY_FAILURE);
        } else if self.phase.is_up() {
            self.release_answered(cx, CallTag::Shutdown, Q850Cause::NORMAL_CLEARING);
            // The process is stopping: a BYE held for the caller's ACK goes now, as it would
            // not once the process has gone.
            self.settle_pending_2xx(cx);
        } else {
            // Ended, a BYE held for the caller's ACK (`Pending2xx::then_bye`): it goes now,
            // the process stopping.
            self.settle_pending_2xx(cx);
        }
    }

    /// The call reached its peers' maximum duration.
    pub(super) fn on_max_duration(&mut self, cx: &mut Cx) {
        if self.phase.is_up() {
            debug!(call_id = %self.call_id(), "maximum call duration reached: releasing the call");
            self.release_answered(cx, CallTag::MaxDuration, Q850Cause::NORMAL_CLEARING);
        }
    }

    /// No RTP in either direction for the media timeout: release an answered call.
    pub(super) fn on_media_timeout(&mut self, cx: &mut Cx) {
        if self.phase.is_up() {
            warn!(call_id = %self.call_id(), "no RTP for the media timeout: releasing the call");
            self.release_answered(cx, CallTag::RtpTimeout, Q850Cause::TIMER_EXPIRY);
        }
    }

    /// The call's relay failed (sockets would not open, or its task ended).
    pub(super) fn on_media_failure(&mut self, cx: &mut Cx) {
        warn!(call_id = %self.call_id(), "the call's media relay failed: releasing the call");
        if self.phase.is_routing() {
            self.fail_call(
                cx,
                503,
                CallTag::MediaUnavailable,
                Q850Cause::TEMPORARY_FAILURE,
            );
        } else if self.phase.is_up() {
            self.release_answered(cx, CallTag::MediaUnavailable, Q850Cause::TEMPORARY_FAILURE);
        }
    }

    /// The Linger timer: the call was released long ago and something of it is still open.
    pub(super) fn on_linger(&mut self, cx: &mut Cx) {
        warn!(call_id = %self.call_id(), open = self.open.len(), "released call still had open transactions; dropping it");
        // RFC 3261 §9.1: an INVITE that got no final answer within 64*T1 of our CANCEL is
        // over. Its transaction has no timer left in Proceeding, so end it.
        if let Some(att) = self.attempt.as_mut() {
            att.state.finish();
        }
        // Every request of ours still open is over: an INVITE (the call's, or a relayed
        // re-INVITE) that got a provisional has no timer left to end it.
        for id in std::mem::take(&mut self.open) {
            cx.env.owners.remove(&id);
            cx.env.txn.abandon(id, cx.now, &mut cx.env.txn_out);
        }
        // (A 2xx still waiting for its ACK is long past its 64·T1.)
        for side in [Side::A, Side::B] {
            self.take_pending_2xx(side);
        }
        if !self.phase.is_ending() {
            let end = EndInfo::internal(
                CallTag::GatewayError,
                500,
                Q850Cause::PROTOCOL_ERROR.0,
                cx.now,
            );
            self.end_call(cx, end);
        }
    }
}
