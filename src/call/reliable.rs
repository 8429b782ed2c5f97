//! Reliable provisional responses (RFC 3262), terminated on each leg: the gateway PRACKs the
//! callee's reliable 18x itself, and sends its own 18x to the caller reliably when the
//! caller's profile and INVITE allow it. A PRACK is never relayed end to end.

use tracing::warn;

use super::Side;
use super::cx::Cx;
use super::events::CallEvent;
use super::state::{Call, HeldPrack, MAX_QUEUED_1XX, PendingRel, TxnRole};
use super::timers::CallTimer;
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::interop::prack::PrackMode;
use crate::sip::{Body, Hdr, Method, Request, Response};
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

/// The caller's answer our PRACK carries to the callee: body, Content-Type and, for a body
/// passed as it came, its Content-Encoding.
pub(super) type PrackAnswer = (bytes::Bytes, Option<String>, Option<String>);

impl Call {
    /// A reliable provisional from the callee, the next of its early dialog
    /// ([`UacRel::take_rseq`]): PRACK it (unless this peer already refused PRACK in this
    /// call).
    pub(super) fn on_reliable_from_callee(&mut self, cx: &mut Cx, resp: &Response, rseq: u32) {
        if self.uac_rel.given_up {
            return;
        }
        if self
            .profile(Side::B)
            .is_some_and(|p| p.prack.mode == PrackMode::Disabled)
        {
            // We never offered 100rel; the peer insists anyway. PRACK it (RFC 3262 leaves us
            // no choice) and let on_405 decide if it then refuses its own PRACK.
            // (Once a call: a peer sends it with every reliable provisional.)
            self.events.push_once(CallEvent::PeerForced100rel);
        }
        // The callee's offer (our INVITE carried none) is answered in our PRACK: when the
        // caller does 100rel too, it gets the offer reliably and answers in its PRACK, and
        // ours waits for that answer (the callee retransmits meanwhile). A caller without
        // 100rel cannot answer an offer in a provisional: our PRACK goes at once.
        let offer = !self.attempt.as_ref().is_some_and(|a| a.offered)
            && super::anchor::carries_sdp(resp)
            && (self.uac_rel).first_offer_of(&resp.to_tag().unwrap_or_default());
        if offer
            && self.uas_rel.reliable
            && self.caller_txn().is_some()
            && let Some(dialog) = self.b.clone()
        {
            let held = HeldPrack {
                rseq,
                invite_cseq: resp.seq(),
                dialog,
                answer_known: self.uas_rel.early_answer.is_some(),
                sections: (super::anchor::readable_type(resp))
                    .and_then(|ct| crate::sdp::offered_sections(Some(&ct), resp.body())),
            };
            self.answer_in_prack(cx, held);
            return;
        }
        self.prack_callee(cx, rseq, resp.seq(), None);
    }

    /// Send the PRACK `held` for the caller's answer, in the early dialog its provisional
    /// came in: when another branch has spoken since (the call's dialog toward the callee is
    /// now that branch's), the PRACK goes in the held one's, numbered on from the call's.
    /// True when it went.
    pub(super) fn prack_held(
        &mut self,
        cx: &mut Cx,
        held: HeldPrack,
        answer: Option<PrackAnswer>,
    ) -> bool {
        let HeldPrack {
            rseq,
            invite_cseq,
            dialog,
            sections,
            ..
        } = held;
        // One answer serves every branch's offer: fitted to this one's m= lines.
        let answer = match (answer, sections) {
            (Some((body, ct, None)), Some(offered)) => {
                let ip = self.cfg.media_ip;
                let fit = crate::sdp::fit_sections(ct.as_deref(), &body, &offered, ip);
                Some((fit.unwrap_or(body), ct, None))
            }
            (answer, _) => answer,
        };
        match self.b.as_mut() {
            Some(b) if b.remote_tag != dialog.remote_tag => {
                let other_branch = super::forks::in_place_of(b, dialog);
                let sent = self.prack_callee(cx, rseq, invite_cseq, answer);
                if let Some(b) = self.b.as_mut() {
                    super::forks::in_place_of(b, other_branch);
                }
                sent
            }
            _ => self.prack_callee(cx, rseq, invite_cseq, answer),
        }
    }

    /// PRACK the callee's reliable provisional `rseq` to INVITE `invite_cseq`, with `answer`
    /// when it carried an offer. True when it went.
    pub(super) fn prack_callee(
        &mut self,
        cx: &mut Cx,
        rseq: u32,
        invite_cseq: u32,
        answer: Option<PrackAnswer>,
    ) -> bool {
        // A peer that refused PRACK in this call (`on_405 = "continue"`) is sent no other:
        // not for a branch's reliable 199, nor one held for the caller's answer (which then
        // goes in the ACK).
        if self.uac_rel.given_up {
            return false;
        }
        // The answer as this peer's profile wants its SDP (`[sdp] ptime`), like every SDP it
        // is sent; an encoded one as it came, with its encoding.
        let answer = answer.map(|(body, ct, encoding)| match self.profile(Side::B) {
            Some(p) if encoding.is_none() => (
                crate::interop::egress::body_for(p, &body, ct.as_deref()),
                ct,
                encoding,
            ),
            _ => (body, ct, encoding),
        });
        // What the callee is sent, as sent, is what a refresh of its leg offers again.
        if let Some((body, ct, _)) = &answer {
            self.note_sdp_sent(Side::B, body, ct.as_deref(), true, None);
        }
        let Some(leg) = self.b.as_mut() else {
            return false;
        };
        let target = leg.target;
        let built = leg
            .request(Method::Prack, &cx.env.local, &mut cx.env.ids)
            .and_then(|mut p| {
                p.insert_header_before_length(&Hdr::RACK, format!("{rseq} {invite_cseq} INVITE"))?;
                if let Some((body, ct, encoding)) = answer {
                    if let Some(e) = encoding {
                        p.insert_header_before_length(&Hdr::named("Content-Encoding"), e)?;
                    }
                    p.set_body(body, ct.as_deref())?;
                }
                Ok(p)
            });
        match built {
            Ok(mut prack) => {
                self.sign(cx, Side::B, &mut prack);
                let attempt = self.route.attempt();
                let Some(id) =
                    self.start_client(cx, prack.clone(), target, TxnRole::Prack(attempt))
                else {
                    return false;
                };
                self.uac_rel.keep_sent(id, prack);
                true
            }
            Err(e) => {
                warn!(error = %e, "cannot build PRACK");
                false
            }
        }
    }

    /// Send a provisional to the caller: reliably when this call does 100rel with the
    /// caller, one at a time, queued behind an unacknowledged one.
    pub(super) fn send_provisional_to_caller(&mut self, cx: &mut Cx, resp: Response) {
        let Some(txn) = self.caller_txn() else {
            return;
        };
        if !self.uas_rel.reliable || resp.status() == 100 {
            cx.send_response(txn, resp);
            return;
        }
        if self.provisional_waits(resp.status()) {
            let queue = self.uas_rel.queued();
            if queue.len() >= MAX_QUEUED_1XX {
                // Room is made by dropping a provisional without SDP (the newest such, or
                // this one): one with SDP carries the callee's offer or answer, or its early
                // media, which the caller must be given.
                let sdp = super::anchor::carries_sdp;
                match queue.iter().rposition(|r| !sdp(r)) {
                    Some(i) => {
                        queue.remove(i);
                    }
                    None if !sdp(&resp) => return,
                    None => {
                        queue.pop_back();
                    }
                }
            }
            queue.push_back(resp);
            return;
        }
        self.send_reliable(cx, resp);
    }

    /// Whether a provisional with `status` for the caller waits in the queue: behind one
    /// waiting for its PRACK, or while the caller's offer in its PRACK is with the callee
    /// (SDP in a provisional would cross it).
    pub(super) fn provisional_waits(&self, status: u16) -> bool {
        self.uas_rel.reliable
            && status != 100
            && (self.uas_rel.pending.is_some() || self.prack_offer_out())
    }

    /// The next provisional queued goes to the caller, reliably, while the call rings and
    /// none waits for its PRACK, nor the caller's PRACK offer for its answer (SDP then would
    /// cross it).
    pub(super) fn send_next_queued(&mut self, cx: &mut Cx) {
        if self.phase.is_routing()
            && self.uas_rel.pending.is_none()
            && !self.prack_offer_out()
            && let Some(mut next) = self.uas_rel.next_queued()
        {
            // Numbered now: it was not as it came (`on_invite_provisional`).
            if super::anchor::carries_sdp(&next)
                && let Some(m) = self.media.as_mut()
            {
                let ct = next.header(&Hdr::CONTENT_TYPE);
                let body = crate::sdp::present_again(ct.as_deref(), next.body(), &mut m.shown.a);
                if next.set_body(body, ct.as_deref()).is_err() {
                    warn!(call_id = %self.call_id(), "cannot number a queued provisional's SDP");
                }
            }
            self.send_reliable(cx, next);
        }
    }

    pub(super) fn send_reliable(&mut self, cx: &mut Cx, mut resp: Response) {
        if self.uas_rel.next_rseq == 0 {
            // RFC 3262 §3: the first RSeq is random in 1..2^31-1.
            self.uas_rel.next_rseq = 1 + (cx.env.ids.number() % 0x7fff_0000);
        }
        let rseq = self.uas_rel.next_rseq;
        self.uas_rel.next_rseq = rseq.wrapping_add(1);
        let added = resp
            .insert_header_before_length(&Hdr::REQUIRE, "100rel")
            .and_then(|_| resp.insert_header_before_length(&Hdr::RSEQ, rseq.to_string()));
        if let Err(e) = added {
            warn!(error = %e, "cannot make provisional reliable; sending it unreliably");
        }
        let Some(txn) = self.caller_txn() else {
            return;
        };
        // (A SIP-I 18x's ISUP alone is no offer or answer: nothing waits for its PRACK.)
        let has_sdp = super::anchor::carries_sdp(&resp);
        let t1 = cx.env.timers.t1;
        cx.send_response(txn, resp.clone());
        self.uas_rel.pending = Some(Box::new(PendingRel {
            resp,
            rseq,
            interval: t1,
            since: cx.now,
            has_sdp,
            shown: (self.media.as_ref())
                .and_then(|m| m.shown.a.map(|o| o.version()))
                .filter(|_| has_sdp),
            attempt: self.route.attempt(),
        }));
        self.timers.set(CallTimer::Rel1xx, cx.now + t1);
    }

    /// Retransmit the unacknowledged reliable provisional, T1 doubling; after 64*T1 the
    /// caller is not going to PRACK: fail the INVITE with 5xx (RFC 3262 §3).
    pub(super) fn on_rel1xx_timer(&mut self, cx: &mut Cx) {
        let t1 = cx.env.timers.t1;
        // Answered with the 2xx held for this PRACK, the caller still has to be asked.
        let held = self.uas_rel.held_2xx.is_some() && self.phase.is_up();
        if !self.phase.is_routing() && !held {
            self.uas_rel.pending = None;
            return;
        }
        let Some(p) = self.uas_rel.pending.as_mut() else {
            return;
        };
        if cx.now.saturating_duration_since(p.since) >= t1 * 64 {
            warn!(call_id = %self.a.call_id, "caller never PRACKed our reliable provisional");
            self.uas_rel.pending = None;
            self.events.push(CallEvent::CallerPrackTimeout);
            if held {
                // The callee answered: it gets ACK and BYE, the caller 500 (`end_call`).
                self.release_answered(cx, CallTag::PrackRejected, Q850Cause::TIMER_EXPIRY);
            } else {
                self.fail_call(cx, 500, CallTag::PrackRejected, Q850Cause::TIMER_EXPIRY);
            }
            return;
        }
        p.interval *= 2;
        // Never sleep past the 64*T1 deadline: that is when we give up.
        let (resp, next) = (p.resp.clone(), (cx.now + p.interval).min(p.since + t1 * 64));
        if let Some(txn) = self.caller_txn() {
            cx.send_response(txn, resp);
            cx.env.retransmissions.sent += 1;
        }
        self.timers.set(CallTimer::Rel1xx, next);
    }

    /// A PRACK from the caller: answered here, never relayed.
    pub(super) fn on_prack_from_caller(&mut self, cx: &mut Cx, id: TxnId, req: &Request) {
        let rack: Vec<String> = req
            .header(&Hdr::RACK)
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        let invite_cseq = self.template().seq();
        let acked = |want: Option<u32>| match (&rack[..], want) {
            ([rseq, cseq, method], Some(want)) => {
                rseq.parse::<u32>().ok() == Some(want)
                    && cseq.parse::<u32>().ok() == Some(invite_cseq)
                    && method.eq_ignore_ascii_case("INVITE")
            }
            _ => false,
        };
        // The PRACK of a provisional our 2xx overtook (RFC 3262 §3 lets a 2xx go before the
        // PRACK of an 18x without SDP): acknowledged, nothing else to do.
        if acked(self.uas_rel.crossed_rseq) {
            self.uas_rel.crossed_rseq = None;
            // (An offer in it comes after the call's answer: not put, and said so.)
            if self.offers_in_prack(req) {
                self.events
                    .push(super::events::CallEvent::PrackOfferIgnored);
            }
            cx.respond(id, req, 200, "OK", &[]);
            return;
        }
        let matches = acked(self.uas_rel.pending.as_ref().map(|p| p.rseq));
        if !matches {
            cx.respond(id, req, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        }
        if self.offers_in_prack(req) {
            self.answer_offer_in_prack(cx, id, req);
        } else {
            cx.respond(id, req, 200, "OK", &[]);
        }
        let carried_sdp = self.uas_rel.pending.as_ref().is_some_and(|p| p.has_sdp);
        let shown = self.uas_rel.pending.as_ref().and_then(|p| p.shown);
        let this_attempt = self
            .uas_rel
            .pending
            .as_ref()
            .is_some_and(|p| p.attempt == self.route.attempt());
        self.uas_rel.pending = None;
        self.timers.clear(CallTimer::Rel1xx);
        // (SDP in a PRACK to a caller that offered in its INVITE is a new offer:
        // `answer_offer_in_prack`.)
        let late_offer = !super::anchor::carries_sdp(self.template());
        if carried_sdp && late_offer {
            self.keep_early_answer(req);
        }
        if carried_sdp && !late_offer && !self.uas_rel.answer_acked {
            self.uas_rel.answer_acked = true;
            if let Some(m) = self.media.as_mut() {
                m.caller_agreed = shown;
            }
        }
        if std::mem::take(&mut self.uas_rel.failover_waits) && self.phase.is_routing() {
            // The callee whose offer this answers failed: the next one is offered it.
            self.fail_over_now(cx);
            if !self.phase.is_routing() {
                return;
            }
        }
        if carried_sdp
            && this_attempt
            && let Some(held) = self.uac_rel.awaiting_answer.take()
        {
            // The callee's offers: our PRACKs carry the caller's answer.
            let answer = super::anchor::carries_sdp(req).then(|| {
                let ct = super::anchor::readable_type(req);
                let as_sent = (req.header(&Hdr::CONTENT_TYPE), req.encoding());
                self.prack_answer(cx, req.body(), ct, as_sent)
            });
            self.prack_all_held(cx, *held, answer);
        }
        if let Some((resp, b_cseq)) = self.uas_rel.held_2xx.take().map(|h| *h) {
            self.deliver_2xx_to_caller(cx, resp, b_cseq);
            return;
        }
        self.send_next_queued(cx);
    }

    /// The call ends while the callee's 2xx waits for the caller's PRACK (RFC 3262 §3): the
    /// caller has only an early dialog, where the callee's side may not send BYE (RFC 3261
    /// §15), so its INVITE gets a final `status` instead, and the callee's 2xx is ACKed so
    /// that a BYE can follow it. Nothing when no 2xx is held.
    pub(super) fn refuse_held_2xx(&mut self, cx: &mut Cx, status: u16, reason: Option<&str>) {
        let Some(held) = self.uas_rel.held_2xx.take() else {
            return;
        };
        let (resp, b_cseq) = *held;
        // A 2xx with an offer (the caller's INVITE had none) is answered in the ACK, every
        // stream refused, before the BYE (RFC 3261 §13.2.2.4).
        // (Not when our PRACK answered that branch's offer: the 2xx's SDP is that offer.)
        let offered =
            super::anchor::carries_sdp(self.template()) || self.branch_answered_in_prack();
        let refusal = (!offered).then(|| self.refusing_answer(&resp)).flatten();
        self.send_ack(cx, Side::B, b_cseq, refusal);
        self.clear_reliable();
        let Some(txn) = self.caller_txn() else {
            return;
        };
        let extra: Vec<(Hdr, &str)> = reason
            .filter(|r| self.ingress.causes.send_reason && crate::interop::egress::buildable(r))
            .map(|r| (Hdr::REASON, r))
            .into_iter()
            .collect();
        let phrase = crate::sip::reason_phrase(status);
        cx.respond_tagged(
            txn,
            self.template(),
            status,
            phrase,
            &self.a.local_tag,
            &extra,
        );
    }

    /// Release bookkeeping when a final response goes to the caller.
    pub(super) fn clear_reliable(&mut self) {
        self.uas_rel.pending = None;
        self.timers.clear(CallTimer::Rel1xx);
        self.uas_rel.queue = None;
        self.uas_rel.held_2xx = None;
    }
}
