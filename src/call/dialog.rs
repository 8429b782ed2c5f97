//! Within the dialogs: BYE, re-INVITE/UPDATE (hold and unhold), INFO/OPTIONS and other
//! mid-call requests relayed leg to leg, ACKs for 2xx, and the responses coming back.

use std::time::Instant;

use tracing::{debug, warn};

use super::b2bua::{B2bua, ClientPurpose};
use super::outbound::{body_for, copy_end_to_end, identity_header};
use super::state::{Call, CallState, EndInfo, Relayed};
use super::{CallRef, CallTimer, Side};
use crate::cdr::CallTag;
use crate::config::Profile;
use crate::interop::causes::Q850Cause;
use crate::interop::topology::{PER_LEG_HEADERS, REHOSTED_HEADERS};
use crate::sip::{Hdr, Message, Method, Request, Response, SipError};
use crate::txn::TxnId;

impl B2bua {
    /// A request carrying a To tag: it belongs to one of our dialogs, or to none (481).
    pub(super) fn on_in_dialog_request(&mut self, now: Instant, id: TxnId, req: Request) {
        let key = (
            req.call_id().unwrap_or_default(),
            req.to_tag().unwrap_or_default(),
        );
        let Some((r, side)) = self.dialogs.get(&key).copied() else {
            self.respond(now, &id, &req, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        let Some(mut call) = self.calls.remove(&r) else {
            self.respond(now, &id, &req, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        self.register_server_txn(&id, r, side);
        self.in_dialog(now, r, &mut call, side, id, req);
        self.put_back(r, call);
    }

    fn in_dialog(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        side: Side,
        id: TxnId,
        req: Request,
    ) {
        let method = req.method();
        // RFC 3261 §12.2.2: a lower CSeq than the last one is out of order.
        let cseq = req.cseq().map(|c| c.0).unwrap_or(0);
        if let Some(leg) = call.leg_mut(side) {
            if leg.remote_cseq.is_some_and(|last| cseq < last) {
                self.respond(now, &id, &req, 500, "Server Internal Error", &[]);
                return;
            }
            leg.remote_cseq = Some(cseq);
        }
        if matches!(req.max_forwards(), Some(Ok(0))) {
            self.respond(now, &id, &req, 483, "Too Many Hops", &[]);
            return;
        }
        match method {
            Method::Bye => self.on_bye(now, r, call, side, id, req),
            _ if call.state == CallState::Ending => {
                self.respond(now, &id, &req, 481, "Call/Transaction Does Not Exist", &[]);
            }
            Method::Invite if call.reinvite_in_progress || call.state != CallState::Confirmed => {
                // One INVITE transaction at a time within a dialog (RFC 3261 §14.1).
                self.respond(now, &id, &req, 491, "Request Pending", &[]);
            }
            // PRACKs are answered on the leg they arrive on, never relayed.
            Method::Prack if side == Side::A => self.on_prack_from_caller(now, r, call, id, req),
            Method::Prack => {
                self.respond(now, &id, &req, 481, "Call/Transaction Does Not Exist", &[]);
            }
            _ => self.relay_request(now, r, call, side, id, req),
        }
    }

    fn on_bye(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        side: Side,
        id: TxnId,
        req: Request,
    ) {
        self.respond(now, &id, &req, 200, "OK", &[]);
        if call.state == CallState::Ending {
            return;
        }
        let (cause, cause_source, reason_sip) =
            super::teardown::bye_cause(&req.header_lines(&Hdr::REASON));
        // Toward the other leg: the caller's Reason values, or normal clearing when it gave none.
        let reason_lines = req.header_lines(&Hdr::REASON);
        let reason_hdr = Some(if reason_lines.is_empty() {
            crate::interop::causes::reason_header(Q850Cause::NORMAL_CLEARING)
        } else {
            reason_lines.join(", ")
        });
        let tag = match side {
            Side::A => CallTag::CallerBye,
            Side::B => CallTag::CalleeBye,
        };
        if call.state == CallState::Proceeding {
            // BYE on an early dialog: the caller gave up (treat as CANCEL); the callee
            // cannot answer any more (the caller gets 480).
            let status = if side == Side::A { 487 } else { 480 };
            self.fail_call_with(
                now,
                r,
                call,
                EndInfo {
                    tag: if side == Side::A {
                        CallTag::CallerCancel
                    } else {
                        tag
                    },
                    status,
                    cause,
                    cause_source,
                    reason_sip,
                    at: now,
                },
            );
            return;
        }
        // Answered or confirmed: hang up the other leg. If its 2xx was never ACKed (the BYE
        // overtook the caller's ACK), ACK it first.
        let other = side.other();
        if let Some(p) = call.pending_2xx[Call::slot(side)].take() {
            self.clear_call_timer(r, CallTimer::Retransmit2xx(side));
            self.clear_call_timer(r, CallTimer::AckTimeout(side));
            self.send_ack(call, other, p.other_cseq, None);
        }
        self.end_call(
            now,
            r,
            call,
            EndInfo {
                tag,
                status: 200,
                cause,
                cause_source,
                reason_sip,
                at: now,
            },
        );
        self.send_bye(now, r, call, other, reason_hdr);
    }

    /// Send a BYE on `side`, carrying `reason` (a Reason header value) when given.
    pub(super) fn send_bye(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        side: Side,
        reason: Option<String>,
    ) {
        // The receiving peer's profile decides whether it hears a Reason at all.
        let reason = reason.filter(|_| call.profile(side).is_none_or(|p| p.causes.send_reason));
        let Some(leg) = call.leg_mut(side) else {
            return;
        };
        if side == Side::B && leg.remote_tag.is_none() {
            return;
        }
        let target = leg.target;
        let built = leg
            .request(Method::Bye, &self.local, &mut self.ids)
            .and_then(|mut bye| {
                if let Some(reason) = reason {
                    let cl = bye.remove_header(&Hdr::CONTENT_LENGTH);
                    bye.push_header(&Hdr::REASON, reason)?;
                    if cl > 0 {
                        bye.push_header(&Hdr::CONTENT_LENGTH, "0")?;
                    }
                }
                Ok(bye)
            });
        match built {
            Ok(bye) => {
                if self
                    .send_client(now, r, bye, target, ClientPurpose::Bye(side))
                    .is_some()
                {
                    call.open_client += 1;
                }
            }
            Err(e) => warn!(error = %e, "cannot build BYE"),
        }
    }

    /// Send the ACK for the 2xx to our INVITE with CSeq `cseq` on `side`.
    pub(super) fn send_ack(
        &mut self,
        call: &mut Call,
        side: Side,
        cseq: u32,
        body: Option<(bytes::Bytes, Option<String>)>,
    ) {
        let profile = call.profile(side).cloned();
        let Some(leg) = call.leg(side) else { return };
        let target = leg.target;
        let built = leg
            .ack(cseq, &self.local, &mut self.ids)
            .and_then(|mut ack| {
                if let Some((b, ct)) = body
                    && !b.is_empty()
                {
                    let b = match &profile {
                        Some(p) => body_for(p, &b, ct.as_deref()),
                        None => b,
                    };
                    ack.set_body(b, ct.as_deref())?;
                }
                Ok(ack)
            });
        match built {
            Ok(ack) => {
                call.acks_sent.insert((side, cseq), ack.clone());
                self.send(target, Message::Request(ack));
            }
            Err(e) => warn!(error = %e, "cannot build ACK"),
        }
    }

    /// Relay a mid-call request to the other leg as a request of that leg's dialog.
    fn relay_request(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        side: Side,
        id: TxnId,
        req: Request,
    ) {
        let other = side.other();
        let method = req.method();
        let ready = call
            .leg(other)
            .is_some_and(|l| other == Side::A || l.remote_tag.is_some());
        if !ready {
            self.respond(now, &id, &req, 491, "Request Pending", &[]);
            return;
        }
        let Some(profile) = call.profile(other).cloned() else {
            self.respond(now, &id, &req, 491, "Request Pending", &[]);
            return;
        };
        let local = self.local.clone();
        let mf = match req.max_forwards() {
            Some(Ok(n)) => n.saturating_sub(1),
            _ => 70,
        };
        let Some(leg) = call.leg_mut(other) else {
            return;
        };
        let target = leg.target;
        let built = leg
            .request(method.clone(), &self.local, &mut self.ids)
            .and_then(|mut out| {
                out.set_header(&Hdr::MAX_FORWARDS, mf.to_string())?;
                out.remove_header(&Hdr::CONTENT_LENGTH);
                copy_end_to_end(&mut out, &req, &local, &profile)?;
                out.push_header(&Hdr::CONTENT_LENGTH, "0")?;
                if !req.body().is_empty() {
                    let ct = req.header(&Hdr::CONTENT_TYPE);
                    out.set_body(body_for(&profile, req.body(), ct.as_deref()), ct.as_deref())?;
                }
                Ok(out)
            });
        let mut out = match built {
            Ok(out) => out,
            Err(e) => {
                warn!(error = %e, "cannot relay {method}");
                self.respond(now, &id, &req, 500, "Server Internal Error", &[]);
                return;
            }
        };
        self.anchor_request(r, call, side, &mut out);
        if let Some(txn) = self.send_client(now, r, out, target, ClientPurpose::Relay) {
            call.open_client += 1;
            if method == Method::Invite {
                call.reinvite_in_progress = true;
            }
            call.relayed.insert(
                txn,
                Relayed {
                    origin: side,
                    origin_txn: id,
                    origin_req: req,
                    method,
                },
            );
        }
    }

    /// The far leg answered a relayed request: answer the origin the same way.
    pub(super) fn on_relayed_response(
        &mut self,
        now: Instant,
        r: CallRef,
        id: TxnId,
        resp: Response,
    ) {
        let Some(mut call) = self.calls.remove(&r) else {
            return;
        };
        let Some(rel) = call.relayed.get(&id).cloned() else {
            self.put_back(r, call);
            return;
        };
        let status = resp.status();
        if status == 100 {
            self.put_back(r, call);
            return;
        }
        let far = rel.origin.other();
        let is_final = !resp.is_provisional();
        if is_final {
            call.relayed.remove(&id);
            call.open_client = call.open_client.saturating_sub(1);
            if rel.method == Method::Invite {
                call.reinvite_in_progress = false;
            }
            // Target refresh (RFC 3261 §12.2.1.2): a 2xx to re-INVITE/UPDATE may move the peer.
            if resp.is_success()
                && matches!(rel.method, Method::Invite | Method::Update)
                && let Some(leg) = call.leg_mut(far)
                && let Some(c) = resp.contact_uri()
            {
                leg.remote_target = c;
            }
        }
        let tag = call
            .leg(rel.origin)
            .map(|l| l.local_tag.clone())
            .unwrap_or_default();
        let Some(origin_peer) = call.profile(rel.origin).cloned() else {
            self.put_back(r, call);
            return;
        };
        match self.relayed_response(&rel.origin_req, &resp, &tag, &origin_peer) {
            Ok(mut out) => {
                self.anchor_response(r, &mut call, far, &mut out);
                self.txn
                    .send_response(&rel.origin_txn, out.clone(), now, &mut self.txn_out);
                if rel.method == Method::Invite && resp.is_success() {
                    let cseq = rel.origin_req.cseq().map(|c| c.0).unwrap_or(0);
                    let other_cseq = resp.cseq().map(|c| c.0).unwrap_or(0);
                    self.await_ack(
                        now,
                        r,
                        &mut call,
                        rel.origin,
                        out,
                        cseq,
                        other_cseq,
                        rel.origin_txn.clone(),
                    );
                }
            }
            Err(e) => warn!(error = %e, "cannot relay {status}"),
        }
        self.put_back(r, call);
    }

    /// A relayed request got no answer (timeout or transport error).
    pub(super) fn on_relay_failed(&mut self, now: Instant, call: &mut Call, id: &TxnId) {
        let Some(rel) = call.relayed.remove(id) else {
            return;
        };
        call.open_client = call.open_client.saturating_sub(1);
        if rel.method == Method::Invite {
            call.reinvite_in_progress = false;
        }
        self.respond(
            now,
            &rel.origin_txn,
            &rel.origin_req,
            408,
            "Request Timeout",
            &[],
        );
    }

    /// An ACK outside any transaction: for one of our 2xx responses.
    pub(super) fn on_unmatched_ack(&mut self, now: Instant, ack: Request) {
        let key = (
            ack.call_id().unwrap_or_default(),
            ack.to_tag().unwrap_or_default(),
        );
        let Some((r, side)) = self.dialogs.get(&key).copied() else {
            debug!("ACK for no dialog dropped");
            return;
        };
        let Some(mut call) = self.calls.remove(&r) else {
            return;
        };
        let cseq = ack.cseq().map(|c| c.0).unwrap_or(0);
        let slot = Call::slot(side);
        if call.pending_2xx[slot]
            .as_ref()
            .is_some_and(|p| p.cseq == cseq)
        {
            if let Some(p) = call.pending_2xx[slot].take() {
                self.clear_call_timer(r, CallTimer::Retransmit2xx(side));
                self.clear_call_timer(r, CallTimer::AckTimeout(side));
                let ct = ack.header(&Hdr::CONTENT_TYPE);
                let body = (!ack.body().is_empty()).then(|| {
                    // Late offer/answer: the ACK's SDP is anchored like any other.
                    let b = self
                        .relayed_sdp(r, &mut call, side, ack.body(), ct.as_deref())
                        .unwrap_or_else(|| ack.body().clone());
                    (b, ct.clone())
                });
                self.send_ack(&mut call, side.other(), p.other_cseq, body);
            }
            if call.state == CallState::Answered {
                call.state = CallState::Confirmed;
            }
        }
        let _ = now;
        self.put_back(r, call);
    }

    /// Retransmit our 2xx on `side`, doubling the interval up to T2.
    pub(super) fn on_retransmit_2xx(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        side: Side,
    ) {
        let t2 = self.timers.t2;
        let Some(p) = call.pending_2xx[Call::slot(side)].as_mut() else {
            return;
        };
        p.interval = (p.interval * 2).min(t2);
        let (resp, txn, interval) = (p.resp.clone(), p.txn.clone(), p.interval);
        self.txn
            .send_response(&txn, resp.clone(), now, &mut self.txn_out);
        self.set_call_timer(r, CallTimer::Retransmit2xx(side), now + interval);
    }

    /// No ACK for our 2xx within 64·T1: the side is gone (RFC 3261 §13.3.1.4). Hang up both.
    pub(super) fn on_ack_timeout(&mut self, now: Instant, r: CallRef, call: &mut Call, side: Side) {
        let Some(p) = call.pending_2xx[Call::slot(side)].take() else {
            return;
        };
        self.clear_call_timer(r, CallTimer::Retransmit2xx(side));
        warn!(call_id = %call.a.call_id, ?side, "no ACK for our 2xx: releasing the call");
        call.events.push("ack_timeout".into());
        let other = side.other();
        self.send_ack(call, other, p.other_cseq, None);
        if call.state != CallState::Ending {
            self.end_call(
                now,
                r,
                call,
                EndInfo {
                    tag: CallTag::GatewayError,
                    status: 200,
                    cause: Q850Cause::TIMER_EXPIRY.0,
                    cause_source: crate::cdr::CauseSource::Internal,
                    reason_sip: None,
                    at: now,
                },
            );
            let reason = Some(format!("Q.850;cause={}", Q850Cause::TIMER_EXPIRY.0));
            self.send_bye(now, r, call, side, reason.clone());
            self.send_bye(now, r, call, other, reason);
        }
    }

    /// Our response to `origin` mirroring the far leg's `from`: status, reason, end-to-end
    /// headers and body; our own Contact; nothing that names the far side's hosts.
    pub(super) fn relayed_response(
        &self,
        origin: &Request,
        from: &Response,
        our_tag: &str,
        to_peer: &Profile,
    ) -> Result<Response, SipError> {
        let status = from.status();
        let mut out = Response::to_request(origin, status, &from.reason(), Some(our_tag))?;
        out.remove_header(&Hdr::CONTENT_LENGTH);
        let method = origin.method();
        let transport = match origin.top_via().map(|v| v.transport) {
            Some(t) if t == "TCP" => crate::sip::Transport::Tcp,
            _ => crate::sip::Transport::Udp,
        };
        if status > 100 && status < 300 && matches!(method, Method::Invite | Method::Update) {
            out.push_header(&Hdr::CONTACT, self.local.contact(transport))?;
        }
        if matches!(method, Method::Invite) || status == 405 {
            out.push_header(&Hdr::ALLOW, super::b2bua::ALLOW)?;
        }
        out.copy_headers_except(from.headers_raw(), &PER_LEG_HEADERS);
        for h in REHOSTED_HEADERS.iter() {
            for v in from.header_lines(h) {
                out.push_header(h, identity_header(&v, &self.local, to_peer))?;
            }
        }
        out.push_header(&Hdr::CONTENT_LENGTH, "0")?;
        if !from.body().is_empty() {
            let ct = from.header(&Hdr::CONTENT_TYPE);
            out.set_body(body_for(to_peer, from.body(), ct.as_deref()), ct.as_deref())?;
        }
        Ok(out)
    }
}
