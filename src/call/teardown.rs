//! Releasing calls: the CDR, causes, cleanup once every transaction of the call is done,
//! routing of client-transaction results and call timers, and shutdown.

use std::time::Instant;

use tracing::{debug, warn};

use super::b2bua::{B2bua, ClientPurpose};
use super::state::{Call, CallState, EndInfo};
use super::{Action, CallRef, CallTimer, Side, TimerId};
use crate::cdr::{CallTag, CauseSource, CdrRecord};
use crate::interop::causes::{Q850Cause, parse_reason};
use crate::sip::Response;
use crate::txn::TxnId;

/// Q.850 cause for a BYE: its Reason header, else 16 normal clearing (RFC 3398 §9).
pub(super) fn bye_cause(reason_lines: &[String]) -> (u16, CauseSource, Option<String>) {
    let r = parse_reason(reason_lines);
    match r.q850 {
        Some(q) => (q.0, CauseSource::ReasonHeader, r.sip),
        None => (Q850Cause::NORMAL_CLEARING.0, CauseSource::Rfc3398, r.sip),
    }
}

impl B2bua {
    /// Fix how the call ended and write its CDR. Only the first release counts.
    pub(super) fn end_call(&mut self, now: Instant, r: CallRef, call: &mut Call, info: EndInfo) {
        if call.end.is_some() {
            return;
        }
        call.state = CallState::Ending;
        call.end = Some(info);
        self.clear_call_timer(r, CallTimer::Ring);
        let cdr = self.build_cdr(call);
        debug!(
            call_id = %cdr.call_id,
            tag = ?cdr.call_tag,
            status = cdr.status,
            cause = cdr.cause,
            "call ended"
        );
        crate::ops::metrics::call_ended(
            &cdr.ingress_peer,
            cdr.egress_peer.as_deref(),
            call_tag_name(cdr.call_tag),
        );
        self.actions.push(Action::Cdr(Box::new(cdr)));
        // Safety net: whatever happens to the remaining transactions, forget the call after
        // they would all have timed out.
        self.set_call_timer(r, CallTimer::Linger, now + self.timers.t1 * 80);
    }

    fn build_cdr(&self, call: &Call) -> CdrRecord {
        let fmt = |t: Instant| humantime::format_rfc3339_millis(self.wall(t)).to_string();
        let end = call.end.clone().unwrap_or(EndInfo::internal(
            CallTag::GatewayError,
            500,
            Q850Cause::PROTOCOL_ERROR.0,
            call.started,
        ));
        CdrRecord {
            call_id: call.a.call_id.clone(),
            egress_call_id: call.b.as_ref().map(|b| b.call_id.clone()),
            start: fmt(call.started),
            answer: call.answered.map(fmt),
            end: fmt(end.at),
            duration_ms: call
                .answered
                .map(|a| end.at.saturating_duration_since(a).as_millis() as u64)
                .unwrap_or(0),
            from: call.caller.clone(),
            to: call.number.clone(),
            ingress_peer: call.ingress.name.0.clone(),
            egress_peer: call.egress_name(),
            status: end.status,
            call_tag: end.tag,
            cause: end.cause,
            cause_source: end.cause_source,
            recording: call
                .media
                .as_ref()
                .and_then(|m| m.recording.as_ref())
                .map(|r| r.path.display().to_string()),
            events: call.events.clone(),
            reason_sip: end.reason_sip,
        }
    }

    /// Return a call to the table, or drop it when it is released and nothing of it is
    /// still in flight.
    pub(super) fn put_back(&mut self, r: CallRef, call: Call) {
        if call.end.is_some() && call.open_client == 0 {
            self.forget(r, call);
        } else {
            self.calls.insert(r, call);
        }
    }

    fn forget(&mut self, r: CallRef, mut call: Call) {
        if let Some(media) = call.media.take() {
            self.release_media(r, media);
        }
        self.dialogs
            .remove(&(call.a.call_id.clone(), call.a.local_tag.clone()));
        if let Some(b) = &call.b {
            self.dialogs
                .remove(&(b.call_id.clone(), b.local_tag.clone()));
        }
        for t in [
            CallTimer::Ring,
            CallTimer::Linger,
            CallTimer::Rel1xx,
            CallTimer::Retransmit2xx(Side::A),
            CallTimer::Retransmit2xx(Side::B),
            CallTimer::AckTimeout(Side::A),
            CallTimer::AckTimeout(Side::B),
        ] {
            self.actions.push(Action::ClearTimer(TimerId::Call(r, t)));
        }
        // Transactions still absorbing retransmissions outlive the call; their results
        // find no call and are dropped.
        for id in self.call_txns.remove(&r).unwrap_or_default() {
            self.server_txns.remove(&id);
            self.client_txns.remove(&id);
        }
    }

    /// A response to one of our client transactions.
    pub(super) fn on_client_response(&mut self, now: Instant, id: TxnId, resp: Response) {
        let Some((r, purpose)) = self.client_txns.get(&id).cloned() else {
            // Its call is gone. A 2xx to an INVITE still needs ACK and BYE.
            if resp.is_success()
                && resp
                    .cseq()
                    .is_some_and(|c| c.1 == crate::sip::Method::Invite)
            {
                let target = self.txn.target(&id);
                if let Some(t) = target {
                    self.handle_orphan_2xx(resp, t);
                }
            }
            return;
        };
        match purpose {
            ClientPurpose::Invite => self.on_invite_response(now, r, id, resp),
            ClientPurpose::Cancel => {}
            ClientPurpose::Bye(_) => {
                if !resp.is_provisional()
                    && let Some(mut call) = self.calls.remove(&r)
                {
                    call.open_client = call.open_client.saturating_sub(1);
                    // Only once: a retransmitted final is absorbed by the transaction.
                    self.client_txns.remove(&id);
                    self.put_back(r, call);
                }
            }
            ClientPurpose::Relay => self.on_relayed_response(now, r, id, resp),
            ClientPurpose::Prack => {
                if !resp.is_provisional() {
                    self.on_prack_result(now, r, &id, Some(resp.status()));
                }
            }
        }
    }

    fn handle_orphan_2xx(&mut self, resp: Response, target: crate::sip::Target) {
        // Same treatment as a 2xx no transaction claims.
        self.on_stray_2xx(resp, target);
    }

    /// Timer B/F or a transport error on one of our client transactions.
    pub(super) fn on_client_failure(&mut self, now: Instant, id: TxnId, timeout: bool) {
        let Some((r, purpose)) = self.client_txns.remove(&id) else {
            return;
        };
        if matches!(purpose, ClientPurpose::Prack) {
            self.client_txns.insert(id.clone(), (r, purpose));
            self.on_prack_result(now, r, &id, None);
            return;
        }
        let Some(mut call) = self.calls.remove(&r) else {
            return;
        };
        match purpose {
            ClientPurpose::Invite => {
                if call.attempt.as_ref().is_some_and(|a| a.txn == id) {
                    self.on_invite_unreachable(now, r, &mut call, timeout);
                }
            }
            ClientPurpose::Cancel => {}
            ClientPurpose::Bye(side) => {
                call.open_client = call.open_client.saturating_sub(1);
                call.events
                    .push(format!("bye_{}_unanswered", side_name(side)));
            }
            ClientPurpose::Relay => self.on_relay_failed(now, &mut call, &id),
            ClientPurpose::Prack => {}
        }
        self.put_back(r, call);
    }

    pub(super) fn on_call_timer(&mut self, now: Instant, r: CallRef, t: CallTimer) {
        let Some(mut call) = self.calls.remove(&r) else {
            return;
        };
        match t {
            CallTimer::Ring => self.on_ring_timeout(now, r, &mut call),
            CallTimer::Retransmit2xx(side) => self.on_retransmit_2xx(now, r, &mut call, side),
            CallTimer::AckTimeout(side) => self.on_ack_timeout(now, r, &mut call, side),
            CallTimer::Rel1xx => self.on_rel1xx_timer(now, r, &mut call),
            CallTimer::Linger => {
                warn!(call_id = %call.a.call_id, open = call.open_client, "released call still had open transactions; dropping it");
                // RFC 3261 §9.1: an INVITE that got no final answer within 64*T1 of our
                // CANCEL is over. Its transaction has no timer left in Proceeding, so end it.
                if let Some(att) = call.attempt.as_mut()
                    && !att.final_received
                {
                    att.final_received = true;
                    let txn = att.txn.clone();
                    self.client_txns.remove(&txn);
                    self.txn.on_transport_error(&txn, now, &mut self.txn_out);
                }
                call.open_client = 0;
                if call.end.is_none() {
                    self.end_call(
                        now,
                        r,
                        &mut call,
                        EndInfo::internal(
                            CallTag::GatewayError,
                            500,
                            Q850Cause::PROTOCOL_ERROR.0,
                            now,
                        ),
                    );
                }
            }
        }
        self.put_back(r, call);
    }

    /// Shutdown: release every call still up (BYE answered calls, fail ringing ones).
    /// CDRs say `shutdown`.
    pub fn hangup_all(&mut self, now: Instant) {
        let refs: Vec<CallRef> = self.calls.keys().copied().collect();
        for r in refs {
            let Some(mut call) = self.calls.remove(&r) else {
                continue;
            };
            match call.state {
                CallState::Proceeding => {
                    self.fail_call(
                        now,
                        r,
                        &mut call,
                        503,
                        CallTag::Shutdown,
                        Q850Cause::TEMPORARY_FAILURE,
                    );
                }
                CallState::Answered | CallState::Confirmed => {
                    for side in [Side::A, Side::B] {
                        if let Some(p) = call.pending_2xx[Call::slot(side)].take() {
                            self.send_ack_for_pending(&mut call, side, p.other_cseq);
                        }
                    }
                    self.end_call(
                        now,
                        r,
                        &mut call,
                        EndInfo::internal(
                            CallTag::Shutdown,
                            200,
                            Q850Cause::NORMAL_CLEARING.0,
                            now,
                        ),
                    );
                    let reason = Some(format!("Q.850;cause={}", Q850Cause::NORMAL_CLEARING.0));
                    self.send_bye(now, r, &mut call, Side::A, reason.clone());
                    self.send_bye(now, r, &mut call, Side::B, reason);
                }
                CallState::Ending => {}
            }
            self.put_back(r, call);
        }
        self.pump(now);
    }

    fn send_ack_for_pending(&mut self, call: &mut Call, side: Side, other_cseq: u32) {
        self.send_ack(call, side.other(), other_cseq, None);
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::A => "caller",
        Side::B => "callee",
    }
}

/// The CDR spelling of a call tag (for metric labels).
fn call_tag_name(t: CallTag) -> &'static str {
    match t {
        CallTag::CallerBye => "caller_bye",
        CallTag::CalleeBye => "callee_bye",
        CallTag::CallerCancel => "caller_cancel",
        CallTag::CalleeReject => "callee_reject",
        CallTag::NoAnswerTimeout => "no_answer_timeout",
        CallTag::PeerUnreachable => "peer_unreachable",
        CallTag::NoRoute => "no_route",
        CallTag::CallerRejected => "caller_rejected",
        CallTag::PrackRejected => "prack_rejected",
        CallTag::RateLimited => "rate_limited",
        CallTag::MediaUnavailable => "media_unavailable",
        CallTag::RtpTimeout => "rtp_timeout",
        CallTag::Shutdown => "shutdown",
        CallTag::GatewayError => "gateway_error",
    }
}
