//! Ending a call before answer: the caller's CANCEL, the ring timeout, failures of the
//! gateway's own making, and cancelling the attempt toward the callee (RFC 3261 §9).

use tracing::{info, warn};

use super::cx::Cx;
use super::phase::{EndInfo, Then};
use super::state::Call;
use crate::cdr::CallTag;
use crate::interop::causes::{CauseSource, Q850Cause, ReasonInfo, parse_reason, reason_header};
use crate::sip::{Hdr, Method, NewRequest, Request, SipError};
use crate::txn::TxnId;

impl Call {
    /// A CANCEL from the caller for this call's INVITE (server transaction `id`).
    pub(super) fn on_cancel(&mut self, cx: &mut Cx, id: TxnId, req: &Request) {
        // The 200 to CANCEL carries the tag our INVITE responses carry.
        cx.respond_tagged(id, req, 200, "OK", &self.a.local_tag, &[]);
        // Answered by the callee, but the 2xx waits for the caller's PRACK (RFC 3262 §3): for
        // the caller the call still rings, and its CANCEL ends it.
        let held = self.uas_rel.held_2xx.is_some() && !self.phase.is_ending();
        if !(self.phase.is_routing() || held)
            || !self
                .caller_txn()
                .is_some_and(|t| cx.env.txn.server_pending(t))
        {
            return;
        }
        let (cause, cause_source, reason_sip) = match parse_reason(&req.header_lines(&Hdr::REASON))
        {
            ReasonInfo { q850: Some(q), sip } => (q.0, CauseSource::ReasonHeader, sip),
            // The caller cleared the call, as with a BYE: 16 (RFC 3398 §8.2.6.1).
            other => (
                Q850Cause::NORMAL_CLEARING.0,
                CauseSource::Rfc3398,
                other.sip,
            ),
        };
        let end = EndInfo {
            tag: CallTag::CallerCancel,
            status: 487,
            cause,
            cause_source,
            reason_sip,
            at: cx.now,
        };
        if held {
            // The caller gets 487 and the callee ACK (`end_call`), then BYE.
            self.end_call(cx, end);
            self.send_bye(cx, super::Side::B, Some(reason_header(Q850Cause(cause))));
            return;
        }
        self.fail_call_with(cx, end);
    }

    /// Our response to the caller's INVITE could not be sent (RFC 3261 §17.2.4: its TCP
    /// connection is gone and none could be opened to its Via): it would never hear the
    /// answer, nor could its CANCEL find the call, and the callee would ring on, be answered
    /// and billed for a ghost. The call fails as if cancelled, toward the callee too.
    pub(super) fn on_caller_unreachable(&mut self, cx: &mut Cx) {
        if self.pending_2xx[super::Side::A].is_some()
            && !matches!(self.phase, super::phase::Phase::Confirmed { .. })
        {
            return self.on_2xx_unreachable(cx);
        }
        let held = self.uas_rel.held_2xx.is_some() && !self.phase.is_ending();
        if !(self.phase.is_routing() || held) {
            return;
        }
        warn!(call_id = %self.call_id(), "the caller cannot be reached with our answer: ending the call");
        self.events
            .push(super::events::CallEvent::CallerUnreachable);
        let end = EndInfo::internal(
            CallTag::PeerUnreachable,
            503,
            Q850Cause::TEMPORARY_FAILURE.0,
            cx.now,
        );
        if held {
            self.end_call(cx, end);
            self.send_bye(
                cx,
                super::Side::B,
                Some(reason_header(Q850Cause::TEMPORARY_FAILURE)),
            );
            return;
        }
        self.fail_call_with(cx, end);
    }

    /// Our 2xx cannot reach the caller: it will never ACK, and the callee, answered, would
    /// be held (and a carrier's answered call paid for) until the ACK timeout, 64·T1 later.
    /// The callee gets its ACK and BYE now; the caller, without the 2xx, has no dialog to
    /// end. A call ending already (its BYE to the caller waiting for that ACK) stops
    /// waiting.
    fn on_2xx_unreachable(&mut self, cx: &mut Cx) {
        // Also when the 2xx was sent again meanwhile (over TCP too: `await_ack`): a failure
        // comes when opening a connection back to the caller failed (5 s, or at once), and
        // a caller that had the first 2xx has ACKed by then, over a connection of its own.
        let Some(p) = self.take_pending_2xx(super::Side::A) else {
            return;
        };
        self.send_owed_ack(cx, super::Side::A, &p);
        if self.phase.is_ending() {
            return;
        }
        warn!(call_id = %self.call_id(), "the caller cannot be reached with our 2xx: ending the call");
        self.events
            .push(super::events::CallEvent::CallerUnreachable);
        let cause = Q850Cause::TEMPORARY_FAILURE;
        self.settle_pending_2xx_on(cx, super::Side::B);
        self.end_call(
            cx,
            EndInfo::internal(CallTag::PeerUnreachable, 200, cause.0, cx.now),
        );
        self.send_bye(cx, super::Side::B, Some(reason_header(cause)));
    }

    /// The ring timeout fired.
    pub(super) fn on_ring_timeout(&mut self, cx: &mut Cx) {
        if !self.phase.is_routing() {
            return;
        }
        // RFC 3398 §8.2.1: cause 19 (alerted, no answer) is 480, cause 18 (no response) 408.
        // A 408 after ringing reads upstream as a hop that timed out: a front or a PBX then
        // tries the call again elsewhere, ringing the called party once more. So does one
        // rung through an earlier peer of the route, which then failed over.
        let alerted = self.party_alerted();
        let (status, cause) = if alerted {
            (480, Q850Cause::NO_ANSWER)
        } else {
            (408, Q850Cause::NO_USER_RESPONDING)
        };
        info!(call_id = %self.call_id(), status, "ring timeout");
        self.fail_call(cx, status, CallTag::NoAnswerTimeout, cause);
    }

    /// Answer the caller with a failure of our own making, cancel any attempt, and release.
    pub(super) fn fail_call(&mut self, cx: &mut Cx, status: u16, tag: CallTag, cause: Q850Cause) {
        let end = EndInfo::internal(tag, status, cause.0, cx.now);
        self.fail_call_with(cx, end);
    }

    pub(super) fn fail_call_with(&mut self, cx: &mut Cx, end: EndInfo) {
        self.fail_call_with_extra(cx, end, &[]);
    }

    /// [`Call::fail_call_with`], the response carrying `headers` too (Retry-After, …).
    pub(super) fn fail_call_with_extra(
        &mut self,
        cx: &mut Cx,
        end: EndInfo,
        headers: &[(Hdr, &str)],
    ) {
        let Some(txn) = self.caller_txn() else {
            return self.release_callback(cx, end);
        };
        self.clear_reliable();
        let phrase = crate::sip::reason_phrase(end.status);
        self.answer_caller(cx, txn, (end.status, phrase, end.cause), headers);
        self.cancel_attempt(cx, &end);
        self.end_call(cx, end);
    }

    /// Answer the caller's INVITE `txn` with a failure `status` and `phrase` under the
    /// caller's To tag, with `headers` and, as its profile's `[causes] send_reason` says,
    /// the Q.850 `cause`.
    pub(super) fn answer_caller(
        &self,
        cx: &mut Cx,
        txn: crate::txn::TxnId,
        (status, phrase, cause): (u16, &str, u16),
        headers: &[(Hdr, &str)],
    ) {
        let reason_hdr = reason_header(Q850Cause(cause));
        let mut extra: Vec<(Hdr, &str)> = headers.to_vec();
        if self.ingress.causes.send_reason {
            extra.push((Hdr::REASON, reason_hdr.as_str()));
        }
        cx.respond_tagged(
            txn,
            self.template(),
            status,
            phrase,
            &self.a.local_tag,
            &extra,
        );
    }

    /// Stop the current attempt, the call ending as `end`: CANCEL now if a provisional
    /// arrived, else as soon as one does.
    pub(super) fn cancel_attempt(&mut self, cx: &mut Cx, end: &EndInfo) {
        let Some(att) = self.attempt.as_mut() else {
            return;
        };
        // Not sent again should its connection be lost before the provisional it waits for.
        cx.env.txn.forgo_resend(att.txn);
        if att.state.cancel() == Then::SendCancel {
            self.send_cancel(cx, Some(end));
        }
    }

    /// CANCEL the attempt's INVITE (RFC 3261 §9.1: same Request-URI, Call-ID, To, From,
    /// CSeq number and top Via branch), saying why when the call's end is known.
    pub(super) fn send_cancel(&mut self, cx: &mut Cx, end: Option<&EndInfo>) {
        let Some(att) = self.attempt.as_ref() else {
            return;
        };
        let Some(inv) = att.invite.as_ref() else {
            return;
        };
        let reasons = end
            .filter(|_| att.peer.causes.send_reason)
            .map(cancel_reasons)
            .unwrap_or_default();
        match cancel_for(inv, &reasons) {
            Ok(c) => cx.send_unowned(c, att.peer.address),
            Err(e) => warn!(error = %e, "cannot build CANCEL"),
        }
    }
}

/// The Reason values of a CANCEL for a call ending as `end` (RFC 3326): its Q.850 cause, and
/// the caller's own SIP reason when its CANCEL gave one (a forking PBX's `SIP;cause=200;
/// text="Call completed elsewhere"` spares the callee a missed-call entry).
fn cancel_reasons(end: &EndInfo) -> Vec<String> {
    crate::interop::causes::reason_values(Q850Cause(end.cause), end.reason_sip.as_deref())
}

/// RFC 3261 §9.1: the CANCEL of `inv` (its Route too, for an INVITE within a dialog), with
/// `reasons` as Reason headers.
pub(super) fn cancel_for(inv: &Request, reasons: &[String]) -> Result<Request, SipError> {
    let copied = |h: &Hdr| {
        inv.header(h)
            .ok_or(SipError::MissingHeader("INVITE header"))
    };
    let routes = inv.header_lines(&Hdr::ROUTE);
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    let mut c = NewRequest {
        method: Method::Cancel,
        uri: &inv.uri(),
        via: &copied(&Hdr::VIA)?,
        max_forwards: 70,
        routes: &routes,
        from: &copied(&Hdr::FROM)?,
        to: &copied(&Hdr::TO)?,
        call_id: &copied(&Hdr::CALL_ID)?,
        cseq: inv.seq(),
    }
    .build()?;
    for r in reasons {
        c.push_header(&Hdr::REASON, r.clone())?;
    }
    c.push_header(&Hdr::CONTENT_LENGTH, "0")?;
    Ok(c)
}
