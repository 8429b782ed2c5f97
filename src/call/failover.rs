//! A callee's failure: the next peer of the route (failover on 408/503, Timer B, a
//! transport error or a challenge the gateway cannot answer), or the caller's failure.

use crate::interop::transfer::redirect_targets;
use tracing::{debug, info, warn};

use super::Side;
use super::attempt::AttemptOutcome;
use super::challenge::is_challenge;
use super::cx::Cx;
use super::events::CallEvent;
use super::phase::{AttemptState, EndInfo};
use super::state::{Call, Failure, PeerResponse, TxnRole, UacRel};
use crate::cdr::CallTag;
use crate::config::Profile;
use crate::interop::causes::{CauseSource, Q850Cause, cause_for_status};
use crate::sip::{Hdr, Response};
use crate::txn::TxnId;

/// Statuses after which the next peer of the route is tried: no answer, the peer out of
/// service, or a path through it that loops (482: our INVITE came back to it, or to us,
/// which refuses its own INVITE come back when that peer's route has no other): the next
/// peer may route otherwise. Not 483 (too many hops): a loop through B2BUAs, which make
/// their own Call-IDs, ends only by Max-Forwards, and every gateway in it failing over on
/// the 483 at its bottom would go round again, one more time per peer at each level.
const FAILOVER_STATUSES: &[u16] = &[408, 482, 503];

/// The longest a peer's 503 Retry-After keeps calls away from it.
const MAX_REST: std::time::Duration = std::time::Duration::from_secs(300);

/// Statuses that describe our hop to the callee's peer, not the call: extensions that hop
/// wanted or refused (420, 421), its session timer demands (422), its registration interval
/// (423), or glare on a dialog the caller never saw (491). The caller, which asked for
/// none of it, gets 500 with the cause instead; the CDR keeps the original.
const HOP_STATUSES: &[u16] = &[420, 421, 422, 423, 491];

impl Call {
    /// Try the next peer of the route after a callee failed: true when its INVITE went, or
    /// waits for the caller's answer to the failed callee's offer. A caller that answers
    /// that offer (in its PRACK) answers no other in its early dialog, so the next callee is
    /// offered that answer rather than asked for an offer of its own.
    pub(super) fn fail_over(&mut self, cx: &mut Cx) -> bool {
        // No peer left: the caller is not kept waiting for an answer no callee will get.
        // (The failed callee is let go, as an attempt that found no peer would.)
        if self.route.exhausted() {
            self.let_callee_go(cx);
            return false;
        }
        // (A SIP-I late offer gets the answer beside its ISUP.)
        let answering = self.caller_txn().is_some()
            && self.uas_rel.early_answer.is_none()
            && self.uas_rel.pending.as_ref().is_some_and(|p| p.has_sdp)
            && super::next_offer::takes_early_answer(self.template());
        if !answering {
            return self.next_attempt(cx);
        }
        debug!(call_id = %self.call_id(), "failover waits for the caller's answer");
        self.uas_rel.failover_waits = true;
        // Meanwhile the call has no callee.
        self.let_callee_go(cx);
        self.forget_callee_media(cx, None);
        true
    }

    /// The callee before the next one (if any) is let go: its dialog (kept for the CDR until
    /// the next one's replaces it, but found by nothing), what was relayed to or from it,
    /// its offer, its provisionals still queued for the caller, and its place in its peer's
    /// limits.
    pub(super) fn let_callee_go(&mut self, cx: &mut Cx) {
        self.end_relayed(cx);
        if let Some(old) = self.b.as_ref() {
            cx.remove_dialog(old);
        }
        self.uas_rel.queue = None;
        self.uac_rel = UacRel::default();
        // A session timer agreed with it (in an early UPDATE) is not the next callee's: its
        // terms would be restated to that one, its refresh and expiry timers run.
        if self.session[Side::B].is_some() {
            self.set_session(cx, Side::B, None);
        }
        // The connected identity it sent (in an UPDATE answered here) is not the next
        // callee's.
        if self.identity.as_ref().is_some_and(|i| i.0 == Side::A) {
            self.identity = None;
        }
        // Nor is the privacy it asked for.
        self.marks.set_id_private(Side::B, false);
        if let Some(prev) = self.counted_egress.take() {
            cx.env.limits.release(&prev);
        }
    }

    /// The caller answered (or was to answer) the offer a failover waited for: the next
    /// peer now, or the call's failure.
    pub(super) fn fail_over_now(&mut self, cx: &mut Cx) {
        if !self.next_attempt(cx) {
            self.fail_with_last(cx);
        }
    }

    /// Start the next peer's attempt: true when its INVITE went, or when the gateway itself
    /// could not send one (no RTP ports, the caller's SDP unreadable) and the call ended
    /// saying so: that, not the peer before's failure, is why the caller gets no call.
    /// False when no peer was left to try (the caller is to get the last failure).
    fn next_attempt(&mut self, cx: &mut Cx) -> bool {
        match self.start_attempt(cx) {
            AttemptOutcome::Sent => true,
            ours @ (AttemptOutcome::NoMediaPorts | AttemptOutcome::BadSdp(_)) => {
                self.last_failure = None;
                self.on_attempt_outcome(cx, ours);
                true
            }
            AttemptOutcome::RateLimited(_) | AttemptOutcome::NoPeerLeft => false,
        }
    }

    /// Try the next peer after the attempt failed as `failure`; when there is none (or it
    /// could not be sent), the caller gets the last failure.
    fn fail_over_or_end(&mut self, cx: &mut Cx, failure: Failure) {
        self.last_failure = Some(Box::new(failure));
        if !self.fail_over(cx) {
            self.fail_with_last(cx);
        }
    }

    /// No peer of the route answers: end the call with the last attempt's failure.
    fn fail_with_last(&mut self, cx: &mut Cx) {
        match self.last_failure.take().map(|f| *f) {
            Some(Failure::Response(last)) => {
                if let Some(p) = &last.peer
                    && self.egress_name() != Some(&p.name)
                {
                    self.events.push(CallEvent::FailureFrom(p.name.clone()));
                }
                self.relay_failure(cx, &last.resp, last.peer.as_deref(), false)
            }
            Some(Failure::Auth { status, .. }) => {
                let end = EndInfo {
                    tag: CallTag::CalleeReject,
                    status: 403,
                    cause: Q850Cause::CALL_REJECTED.0,
                    cause_source: CauseSource::Internal,
                    reason_sip: Some(format!("SIP;cause={status}")),
                    at: cx.now,
                };
                self.fail_call_with(cx, end);
            }
            Some(Failure::Unreachable { timeout: true }) => {
                self.fail_call(cx, 408, CallTag::PeerUnreachable, Q850Cause::TIMER_EXPIRY);
            }
            Some(Failure::Unreachable { timeout: false }) | None => {
                self.fail_call(cx, 503, CallTag::PeerUnreachable, Q850Cause(38));
            }
        }
    }

    pub(super) fn on_invite_failure(&mut self, cx: &mut Cx, resp: Response) {
        // A callee that rang (180–183), or an earlier peer of the route that did, has reached
        // the called party: a 408 after it is that party's not answering, and another peer
        // would ring it again. (A 503 after early
        // media is the peer's own failure: the next peer is tried, as before any ringing.)
        let alerted = self.party_alerted();
        let sent = self.attempt.as_mut().and_then(|a| {
            let wanted = !a.state.unwanted();
            a.invite.take().filter(|_| wanted)
        });
        if !self.finish_attempt() || !self.phase.is_routing() {
            return;
        }
        let status = resp.status();
        if is_challenge(&resp) {
            let Some(sent) = sent else {
                return self.relay_failure_here(cx, &resp);
            };
            let role = TxnRole::Invite(self.route.attempt());
            match self.answer_challenge(cx, Side::B, &sent, &resp, role) {
                Ok((txn, invite)) => {
                    self.forget_branches(&invite);
                    if let Some(att) = self.attempt.as_mut() {
                        att.txn = txn;
                        att.invite = Some(Box::new(invite));
                        att.state = AttemptState::Calling;
                    }
                    self.arm_invite_timeout(cx.now);
                    return;
                }
                Err(why) => {
                    self.challenge_failed(status, &why);
                    return self.on_auth_failure(cx, status);
                }
            }
        }
        if status == 422
            && let Some(sent) = &sent
            && self.retry_after_422(cx, sent, &resp)
        {
            return;
        }
        if status == 503 {
            self.rest_peer(cx, &resp);
        }
        let no_answer = status == 408 && alerted;
        if FAILOVER_STATUSES.contains(&status) && !no_answer && !self.route.exhausted() {
            info!(call_id = %self.call_id(), egress = self.egress_str(), status, "failing over to the next peer");
            self.events.push(CallEvent::Failover(status));
            let peer = self.profile(Side::B).cloned();
            return self
                .fail_over_or_end(cx, Failure::Response(Box::new(PeerResponse { resp, peer })));
        }
        let peer = self.profile(Side::B).cloned();
        self.relay_failure(cx, &resp, peer.as_deref(), no_answer);
    }

    /// A callee trunk's 503 with Retry-After: it is sent no other call for that long (at most
    /// [`MAX_REST`]: one 503 must not take a trunk away for hours), as RFC 3261 §21.5.4 asks.
    /// Not an internal peer's: a PBX that passes on one phone's 503 would take itself away
    /// from every caller.
    fn rest_peer(&mut self, cx: &mut Cx, resp: &Response) {
        let Some(secs) = resp.retry_after_secs() else {
            return;
        };
        let Some(peer) = self
            .profile(Side::B)
            .filter(|p| p.role == crate::config::Role::Trunk)
            .map(|p| p.name.clone())
        else {
            return;
        };
        let rest = std::time::Duration::from_secs(secs).min(MAX_REST);
        if !rest.is_zero() {
            info!(peer = %peer, seconds = rest.as_secs(), "peer asked for a rest (503 Retry-After)");
            cx.env.limits.rest(&peer, cx.now + rest);
        }
    }

    /// The callee peer's challenge could not be answered: the next peer of the route, else
    /// the caller gets 403 (Q.850 21, call rejected: RFC 3398's mapping of 401/407), never
    /// the challenge itself, which names a realm the caller has no credentials for.
    fn on_auth_failure(&mut self, cx: &mut Cx, status: u16) {
        let earlier = match self.last_failure.take().map(|f| *f) {
            Some(Failure::Response(r)) => Some(r),
            Some(Failure::Auth { earlier, .. }) => earlier,
            _ => None,
        };
        let failure = Failure::Auth { status, earlier };
        if self.route.exhausted() {
            self.last_failure = Some(Box::new(failure));
            return self.fail_with_last(cx);
        }
        self.events.push(CallEvent::Failover(status));
        self.fail_over_or_end(cx, failure);
    }

    /// Pass the failure of the callee being tried to the caller and release the call.
    pub(super) fn relay_failure_here(&mut self, cx: &mut Cx, resp: &Response) {
        let peer = self.profile(Side::B).cloned();
        self.relay_failure(cx, resp, peer.as_deref(), false);
    }

    /// Pass a callee's final failure to the caller and release the call; `peer` is the
    /// profile of the peer that sent it, `no_answer`: it is a 408 after the callee rang.
    fn relay_failure(
        &mut self,
        cx: &mut Cx,
        resp: &Response,
        peer: Option<&Profile>,
        no_answer: bool,
    ) {
        let status = resp.status();
        // (Read as the gateway writes them again: a control character in a value's text is
        // left out there, not the value with its cause.)
        let reasons: Vec<String> = resp.header_lines(&Hdr::REASON);
        let (cause, cause_source, reason_sip) = match peer {
            Some(p) => cause_for_status(status, &reasons, &p.causes),
            None => cause_for_status(status, &reasons, &Default::default()),
        };
        if status == 420 && resp.header_has_token(&Hdr::UNSUPPORTED, "100rel") {
            self.events.push(CallEvent::PeerRejected100rel);
        }
        let end = EndInfo {
            tag: CallTag::CalleeReject,
            status,
            cause: cause.0,
            cause_source,
            reason_sip: reason_sip.clone(),
            at: cx.now,
        };
        let Some(txn) = self.caller_txn() else {
            // A call-back's leg failed: there is no caller to tell.
            return self.release_callback(cx, end);
        };
        if HOP_STATUSES.contains(&status) {
            let end = EndInfo {
                status: 500,
                reason_sip: Some(format!("SIP;cause={status}")),
                ..end
            };
            return self.fail_call_with(cx, end);
        }
        // A 408 after ringing (a proxy's no-answer timer) is the called party not
        // answering, and goes as the gateway's own ring timeout does: 480, cause 19 unless
        // the callee gave one or its profile maps 408 (RFC 3398 §8.2.1). Passed on, it reads
        // upstream as a hop that timed out, and a front or a PBX tries the call again
        // elsewhere, ringing the called party once more. The CDR keeps the 408 in
        // `reason_sip` (the callee's own SIP Reason when it gave one).
        if no_answer {
            let (cause, cause_source) = match cause_source {
                CauseSource::ReasonHeader | CauseSource::PeerMap => (cause, cause_source),
                _ => (Q850Cause::NO_ANSWER, CauseSource::Internal),
            };
            let end = EndInfo {
                status: 480,
                cause: cause.0,
                cause_source,
                reason_sip: reason_sip.or_else(|| Some("SIP;cause=408".into())),
                ..end
            };
            return self.fail_call_with(cx, end);
        }
        let sender = crate::interop::egress::Sender::of(peer);
        let from_trunk = sender.trunk;
        // A redirect makes the caller place a call, as a transfer makes its recipient: it
        // goes on (its number targets at the gateway) only from a callee whose `[transfer]`
        // relays, and to a trunk only with `to_trunks` (a carrier that follows redirects in
        // its network dials the target itself, on the trunk's account). Otherwise, or with
        // no target the caller could follow, the callee cannot be reached: 480.
        let caller_is_trunk = self.other_is_trunk(Side::B);
        let may_redirect =
            peer.is_some_and(|p| crate::interop::transfer::relays_to(p, caller_is_trunk));
        let redirect = (300..400).contains(&status).then(|| {
            let contacts = resp.header_lines(&Hdr::CONTACT);
            match may_redirect {
                true => {
                    let places = self.cfg.dial_plans();
                    // (Our address as the caller reaches us: its leg's transport.)
                    let at = cx.env.local.dial_at_over(self.a.target.transport);
                    redirect_targets(&contacts, &at, from_trunk, &places)
                }
                false => Vec::new(),
            }
        });
        if redirect.as_ref().is_some_and(Vec::is_empty) {
            let end = EndInfo {
                status: 480,
                reason_sip: Some(format!("SIP;cause={status}")),
                ..end
            };
            return self.fail_call_with(cx, end);
        }
        self.clear_reliable();
        match self.toward_caller(cx, resp, sender) {
            Ok(mut out) => {
                for target in redirect.into_iter().flatten() {
                    let _ = out.insert_header_before_length(&Hdr::CONTACT, target);
                }
                // A failure answers no offer: SDP in it (a 488's capabilities) goes on
                // with every stream refused, never with the callee's addresses.
                self.neutralise_sdp(&mut out);
                // The caller learns the cause in its own profile's terms (or not at all).
                out.remove_header(&Hdr::REASON);
                // (A 500's or 503's Retry-After, which describes the callee's server, is
                // left out by `relayed_response`.)
                if self.ingress.causes.send_reason {
                    // The callee's own Reason values when it gave a Q.850 one (text and all,
                    // as we write them), else the cause we determined beside its others.
                    let theirs = if cause_source == CauseSource::ReasonHeader {
                        crate::interop::causes::reasons_rebuilt(&reasons)
                    } else {
                        Vec::new()
                    };
                    let values =
                        crate::interop::causes::reasons_told(theirs, cause, reason_sip.as_deref());
                    for v in values {
                        let _ = out.insert_header_before_length(&Hdr::REASON, v);
                    }
                }
                cx.send_response(txn, out);
            }
            Err(e) => {
                // The callee's response cannot be carried (a reason phrase with a NUL, say):
                // the caller still gets a final answer, or its transaction would wait for
                // ever. 502: what came from downstream was not valid.
                warn!(error = %e, "cannot relay {status} to caller: 502 instead");
                // With the To tag the caller's early dialog has (one tag for every response
                // to a request, RFC 3261 §8.2.6.2), and the cause the CDR records.
                self.answer_caller(cx, txn, (502, "Bad Gateway", end.cause), &[]);
                // The CDR says what the caller got; the callee's status stays in its reason.
                let end = EndInfo {
                    status: 502,
                    reason_sip: Some(format!("SIP;cause={status}")),
                    ..end
                };
                return self.end_call(cx, end);
            }
        }
        self.end_call(cx, end);
    }

    /// The INVITE attempt `id` timed out (Timer B) or could not be sent.
    pub(super) fn on_invite_unreachable(&mut self, cx: &mut Cx, id: TxnId, timeout: bool) {
        if self.attempt.as_ref().is_none_or(|a| a.txn != id) {
            return;
        }
        if !self.finish_attempt() || !self.phase.is_routing() {
            return;
        }
        warn!(call_id = %self.call_id(), egress = self.egress_str(), timeout, "peer unreachable");
        if let (Some(peer), Some(b)) = (self.egress_name(), self.b.as_ref()) {
            cx.env.health.missed(peer, &b.target, cx.now);
        }
        self.events.push(if timeout {
            CallEvent::PeerTimeout
        } else {
            CallEvent::PeerTransportError
        });
        // A response from an earlier peer says more than this one's silence: it stays the
        // failure the caller gets (a challenge that could not be answered is not one).
        let failure = match self.last_failure.take().map(|f| *f) {
            Some(
                Failure::Response(r)
                | Failure::Auth {
                    earlier: Some(r), ..
                },
            ) => Failure::Response(r),
            _ => Failure::Unreachable { timeout },
        };
        self.fail_over_or_end(cx, failure);
    }
}
