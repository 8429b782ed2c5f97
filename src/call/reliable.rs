//! Reliable provisional responses (RFC 3262), terminated on each leg: the gateway PRACKs the
//! callee's reliable 18x itself, and sends its own 18x to the caller reliably when the
//! caller's profile and INVITE allow it. A PRACK is never relayed end to end.

use std::time::Instant;

use tracing::{info, warn};

use super::b2bua::{B2bua, ClientPurpose};
use super::state::{Call, CallState, PendingRel};
use super::{CallRef, CallTimer, Side};
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::interop::prack::{On405, PrackMode, is_prack_refusal};
use crate::sip::{Hdr, Method, Request, Response};
use crate::txn::TxnId;

/// Whether a response asks for reliability, and its RSeq.
pub(super) fn reliable_rseq(resp: &Response) -> Option<u32> {
    if !resp.header_has_token(&Hdr::REQUIRE, "100rel") {
        return None;
    }
    resp.header(&Hdr::RSEQ)?.trim().parse().ok()
}

/// Whether a request supports or requires 100rel.
pub(super) fn offers_100rel(req: &Request) -> bool {
    req.header_has_token(&Hdr::SUPPORTED, "100rel") || req.header_has_token(&Hdr::REQUIRE, "100rel")
}

impl B2bua {
    /// A reliable provisional from the callee: PRACK it (unless this peer already refused
    /// PRACK in this call). Returns false for a retransmission, which must not be relayed.
    pub(super) fn on_reliable_from_callee(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        resp: &Response,
        rseq: u32,
    ) -> bool {
        if call.b_rel.last_rseq.is_some_and(|last| rseq <= last) {
            return false;
        }
        call.b_rel.last_rseq = Some(rseq);
        if call.b_rel.given_up {
            return true;
        }
        if call
            .profile(Side::B)
            .is_some_and(|p| p.prack.mode == PrackMode::Disabled)
        {
            // We never offered 100rel; the peer insists anyway. PRACK it (RFC 3262 leaves us
            // no choice) and let on_405 decide if it then refuses its own PRACK.
            call.events.push("peer_forced_100rel".into());
        }
        let invite_cseq = resp.cseq().map(|c| c.0).unwrap_or(1);
        let Some(leg) = call.b.as_mut() else {
            return true;
        };
        let target = leg.target;
        let built = leg
            .request(Method::Prack, &self.local, &mut self.ids)
            .and_then(|mut p| {
                let cl = p.remove_header(&Hdr::CONTENT_LENGTH);
                p.push_header(&Hdr::RACK, format!("{rseq} {invite_cseq} INVITE"))?;
                if cl > 0 {
                    p.push_header(&Hdr::CONTENT_LENGTH, "0")?;
                }
                Ok(p)
            });
        match built {
            Ok(prack) => {
                if self
                    .send_client(now, r, prack, target, ClientPurpose::Prack)
                    .is_some()
                {
                    call.open_client += 1;
                }
            }
            Err(e) => warn!(error = %e, "cannot build PRACK"),
        }
        true
    }

    /// The callee answered our PRACK (`Some(status)`) or never did (`None`).
    pub(super) fn on_prack_result(
        &mut self,
        now: Instant,
        r: CallRef,
        id: &TxnId,
        status: Option<u16>,
    ) {
        let Some(mut call) = self.calls.remove(&r) else {
            return;
        };
        self.client_txns.remove(id);
        call.open_client = call.open_client.saturating_sub(1);
        let refused = match status {
            Some(s) if (200..300).contains(&s) => false,
            Some(s) => is_prack_refusal(s) || s >= 400,
            None => true,
        };
        if refused && call.state == CallState::Proceeding {
            let what = status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "timeout".into());
            let peer = call.egress_name().unwrap_or_default();
            let on_405 = call
                .profile(Side::B)
                .map(|p| p.prack.on_405)
                .unwrap_or(On405::Continue);
            crate::ops::metrics::prack_failure(&peer, &what);
            match on_405 {
                On405::Continue => {
                    info!(call_id = %call.a.call_id, %peer, "PRACK refused ({what}); continuing without PRACK");
                    call.b_rel.given_up = true;
                    call.events.push(format!("prack_{what}_ignored"));
                }
                On405::Fail => {
                    info!(call_id = %call.a.call_id, %peer, "PRACK refused ({what}); failing the call");
                    call.events.push(format!("prack_{what}"));
                    self.fail_call(
                        now,
                        r,
                        &mut call,
                        502,
                        CallTag::PrackRejected,
                        Q850Cause::PROTOCOL_ERROR,
                    );
                }
            }
        }
        self.put_back(r, call);
    }

    /// Send a provisional to the caller: reliably when this call does 100rel with the
    /// caller, one at a time, queued behind an unacknowledged one.
    pub(super) fn send_provisional_to_caller(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        resp: Response,
    ) {
        if !call.a_rel.reliable || resp.status() == 100 {
            self.txn
                .send_response(&call.a_invite_txn, resp, now, &mut self.txn_out);
            return;
        }
        if call.a_rel.pending.is_some() {
            call.a_rel.queue.push_back(resp);
            return;
        }
        self.send_reliable(now, r, call, resp);
    }

    fn send_reliable(&mut self, now: Instant, r: CallRef, call: &mut Call, mut resp: Response) {
        if call.a_rel.next_rseq == 0 {
            // RFC 3262 §3: the first RSeq is random in 1..2^31-1.
            call.a_rel.next_rseq = 1 + (self.ids.number() % 0x7fff_0000);
        }
        let rseq = call.a_rel.next_rseq;
        call.a_rel.next_rseq = rseq.wrapping_add(1);
        let cl = resp.remove_header(&Hdr::CONTENT_LENGTH);
        let added = resp
            .push_header(&Hdr::REQUIRE, "100rel")
            .and_then(|_| resp.push_header(&Hdr::RSEQ, rseq.to_string()));
        if cl > 0 {
            let _ = resp.push_header(&Hdr::CONTENT_LENGTH, resp.body().len().to_string());
        }
        if let Err(e) = added {
            warn!(error = %e, "cannot make provisional reliable; sending it unreliably");
        }
        let has_sdp = !resp.body().is_empty();
        self.txn
            .send_response(&call.a_invite_txn, resp.clone(), now, &mut self.txn_out);
        call.a_rel.pending = Some(PendingRel {
            resp,
            rseq,
            interval: self.timers.t1,
            since: now,
            has_sdp,
        });
        self.set_call_timer(r, CallTimer::Rel1xx, now + self.timers.t1);
    }

    /// Retransmit the unacknowledged reliable provisional, T1 doubling; after 64*T1 the
    /// caller is not going to PRACK: fail the INVITE with 5xx (RFC 3262 §3).
    pub(super) fn on_rel1xx_timer(&mut self, now: Instant, r: CallRef, call: &mut Call) {
        let t1 = self.timers.t1;
        let Some(p) = call.a_rel.pending.as_mut() else {
            return;
        };
        if call.state != CallState::Proceeding {
            call.a_rel.pending = None;
            return;
        }
        if now.saturating_duration_since(p.since) >= t1 * 64 {
            warn!(call_id = %call.a.call_id, "caller never PRACKed our reliable provisional");
            call.a_rel.pending = None;
            call.events.push("caller_prack_timeout".into());
            self.fail_call(
                now,
                r,
                call,
                500,
                CallTag::PrackRejected,
                Q850Cause::TIMER_EXPIRY,
            );
            return;
        }
        p.interval *= 2;
        // Never sleep past the 64*T1 deadline: that is when we give up.
        let (resp, next) = (p.resp.clone(), (now + p.interval).min(p.since + t1 * 64));
        self.txn
            .send_response(&call.a_invite_txn, resp, now, &mut self.txn_out);
        self.set_call_timer(r, CallTimer::Rel1xx, next);
    }

    /// A PRACK from the caller: answered here, never relayed.
    pub(super) fn on_prack_from_caller(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        id: TxnId,
        req: Request,
    ) {
        let rack: Vec<String> = req
            .header(&Hdr::RACK)
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        let invite_cseq = call.a_invite.cseq().map(|c| c.0).unwrap_or(0);
        let matches = call.a_rel.pending.as_ref().is_some_and(|p| {
            rack.len() == 3
                && rack[0].parse::<u32>().ok() == Some(p.rseq)
                && rack[1].parse::<u32>().ok() == Some(invite_cseq)
                && rack[2].eq_ignore_ascii_case("INVITE")
        });
        if !matches {
            self.respond(now, &id, &req, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        }
        self.respond(now, &id, &req, 200, "OK", &[]);
        call.a_rel.pending = None;
        self.clear_call_timer(r, CallTimer::Rel1xx);
        if let Some((resp, b_cseq)) = call.a_rel.held_2xx.take() {
            self.deliver_2xx_to_caller(now, r, call, resp, b_cseq);
            return;
        }
        if let Some(next) = call.a_rel.queue.pop_front()
            && call.state == CallState::Proceeding
        {
            self.send_reliable(now, r, call, next);
        }
    }

    /// Send our 2xx to the caller, unless an unacknowledged reliable provisional carried SDP
    /// (RFC 3262 §3): then it waits for that PRACK.
    pub(super) fn deliver_2xx_to_caller(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        resp: Response,
        b_cseq: u32,
    ) {
        if call.a_rel.pending.as_ref().is_some_and(|p| p.has_sdp) {
            call.a_rel.held_2xx = Some((resp, b_cseq));
            return;
        }
        call.a_rel.pending = None;
        call.a_rel.queue.clear();
        self.clear_call_timer(r, CallTimer::Rel1xx);
        self.txn
            .send_response(&call.a_invite_txn, resp.clone(), now, &mut self.txn_out);
        let a_cseq = call.a_invite.cseq().map(|c| c.0).unwrap_or(0);
        let txn = call.a_invite_txn.clone();
        self.await_ack(now, r, call, Side::A, resp, a_cseq, b_cseq, txn);
    }

    /// The caller's INVITE against its profile's 100rel policy: `Some((status, extra))` to
    /// refuse it (421 when we require 100rel and it does not offer it, 420 when it requires
    /// 100rel of a profile that disables it).
    pub(super) fn prack_refusal(
        call_profile_mode: PrackMode,
        req: &Request,
    ) -> Option<(u16, (Hdr, &'static str))> {
        match call_profile_mode {
            PrackMode::Required if !offers_100rel(req) => Some((421, (Hdr::REQUIRE, "100rel"))),
            PrackMode::Disabled if req.header_has_token(&Hdr::REQUIRE, "100rel") => {
                Some((420, (Hdr::UNSUPPORTED, "100rel")))
            }
            _ => None,
        }
    }

    /// Release bookkeeping when a final response goes to the caller.
    pub(super) fn clear_reliable(&mut self, r: CallRef, call: &mut Call) {
        if call.a_rel.pending.take().is_some() {
            self.clear_call_timer(r, CallTimer::Rel1xx);
        }
        call.a_rel.queue.clear();
        call.a_rel.held_2xx = None;
    }
}
