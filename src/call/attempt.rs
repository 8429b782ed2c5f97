//! Attempts toward the callee: the INVITE to each peer of the route in turn, and what the
//! callee answers (its failures, and the failover they lead to: `failover`).

use super::anchor::Exchange;
use tracing::{debug, info, warn};

use super::anchor::AnchorError;
use super::cx::{Cx, Rewrite};
use super::events::CallEvent;
use super::limits::Over;
use super::outbound::outbound_invite;
use super::phase::{AttemptState, Then};
use super::reliable::reliable_rseq;
use super::state::{Attempt, Call, RseqIs, StreamUse, TxnRole, UacRel};
use super::timers::CallTimer;
use super::{CoreEvent, Direction, Output, Side, Stage};
use crate::cdr::CallTag;
use crate::config::{DEFAULT_RING_TIMEOUT, Profile};
use crate::interop::causes::Q850Cause;
use crate::interop::egress::{Sender, relayed_response};
use crate::interop::uri::{UriPolicy, request_uri};
use crate::sip::{Hdr, Request, Response, SipError, Target};
use crate::txn::TxnId;

/// What came of trying to send the INVITE onward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    /// Every peer of the route was tried (or could not be written to).
    NoPeerLeft,
    /// The call's media could not be anchored: no RTP ports left.
    NoMediaPorts,
    /// The caller's SDP cannot be anchored (unreadable, too many streams): 488.
    BadSdp,
    /// Every peer left was over one of its `[limits]`: 503 with Retry-After.
    RateLimited(Over),
}

impl Call {
    /// Start a client transaction of this call; it stays open until its final answer.
    pub(super) fn start_client(
        &mut self,
        cx: &mut Cx,
        req: Request,
        target: Target,
        role: TxnRole,
    ) -> Option<TxnId> {
        self.start_client_timed(cx, req, target, role, None)
    }

    /// [`Call::start_client`] for an INVITE attempt to a peer whose `[sip]
    /// invite_timeout_s` is `silence` (a front is told it).
    pub(super) fn start_client_timed(
        &mut self,
        cx: &mut Cx,
        req: Request,
        target: Target,
        role: TxnRole,
        silence: Option<std::time::Duration>,
    ) -> Option<TxnId> {
        let id = cx.send_client(req, target, role, silence)?;
        self.open.push(id);
        Some(id)
    }

    /// Send the INVITE to the next peer of the route.
    pub(super) fn start_attempt(&mut self, cx: &mut Cx) -> AttemptOutcome {
        // The callee before this one failed.
        self.let_callee_go(cx);
        let mut limited = None;
        while let Some(name) = self.route.take_next().cloned() {
            let Some(peer) = self.cfg.profile(&name).cloned() else {
                warn!(peer = %name, "route names a peer without a profile; skipping");
                continue;
            };
            // A reload since the call began took the peer out (a trunk removed after fraud,
            // say): no new INVITE goes to it, though the call's route still names it.
            if cx.env.cfg.profile(&name).is_none() {
                info!(peer = %name, "a reload removed this peer: not tried");
                continue;
            }
            // A peer tried in an earlier turn of this loop no longer carries this call.
            if let Some(prev) = self.counted_egress.take() {
                cx.env.limits.release(&prev);
            }
            if let Err(over) = cx.env.limits.admit_attempt(cx.now, &name) {
                debug!(peer = %name, reason = over.label(), "peer over its limits; trying the next");
                self.events.push(CallEvent::PeerLimited(over.label()));
                cx.emit(Output::Event(CoreEvent::LimitRefused {
                    peer: name,
                    reason: over.label(),
                }));
                limited = Some(over);
                continue;
            }
            self.counted_egress = Some(name.clone());
            // A call-back's numbers come from the application server, not from a peer's
            // callers: read with the receiving peer's own prefixes.
            let mut sender = Sender::of(Some(&self.ingress));
            if self.third_party().is_some() {
                sender.plan = None;
            }
            let built = outbound_invite(
                &cx.env.local,
                &mut cx.env.ids,
                self.template(),
                &self.number,
                &self.caller,
                &peer,
                sender,
            );
            let (dialog, mut invite) = match built {
                Ok(x) => x,
                Err(e) => {
                    warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                    continue;
                }
            };
            if let Err(e) = self.shape_callback_invite(&mut invite) {
                warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                continue;
            }
            if let Err(e) = self.offer_callers_session(cx, &peer, &mut invite) {
                warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                continue;
            }
            // A late offer (no SDP) from a caller without 100rel: the callee must not offer
            // in a reliable provisional, whose PRACK would need the caller's answer (RFC 3262
            // §5), which nobody can give. Not even to a peer whose profile requires 100rel:
            // one that insists answers 421 and the attempt ends as for any 421 (the caller
            // gets 500), where a Require kept would have the gateway PRACK an offer without
            // its answer.
            if !self.uas_rel.reliable
                && self.caller_txn().is_some()
                && !super::anchor::carries_sdp(&invite)
                && let Err(e) =
                    super::third_party::without_100rel(&mut invite, &[Hdr::SUPPORTED, Hdr::REQUIRE])
            {
                warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                continue;
            }
            // (After every change but anchoring, which counts itself.)
            self.count_invite_rewrites(cx, &invite, &peer);
            // A new callee: what the one before said of the streams does not carry over.
            // (An INVITE with SDP tells the relay again as it is anchored; one without
            // would not.)
            self.forget_callee_media(cx, Some(&peer));
            match self.anchor_offer(cx, Side::A, &mut invite, Some(&peer)) {
                Ok(()) => {}
                Err(AnchorError::NoPorts) => {
                    warn!(call_id = %self.call_id(), "no RTP ports left: refusing the call");
                    self.route.stop();
                    self.events.push(CallEvent::MediaPortsExhausted);
                    return AttemptOutcome::NoMediaPorts;
                }
                Err(AnchorError::Unreadable(e)) => {
                    debug!(call_id = %self.call_id(), error = %e, "caller's SDP cannot be anchored: 488");
                    self.route.stop();
                    return AttemptOutcome::BadSdp;
                }
            }
            let target = dialog.target;
            self.b = Some(dialog);
            // A new peer: its challenges, if any, are its own; so are its branches.
            self.auth.b = None;
            if let Some(earlier) = self.invite_auth.b.take() {
                self.earlier_invite_auth = Some(earlier);
            }
            self.forget_early_forks();
            debug!(peer = %name, call_id = %self.call_id(), "INVITE toward peer");
            let role = TxnRole::Invite(self.route.attempt());
            let silence = peer.invite_timeout;
            let Some(txn) = self.start_client_timed(cx, invite.clone(), target, role, silence)
            else {
                // Never sent: the CDR's egress Call-ID must not name it.
                self.b = None;
                continue;
            };
            // Indexed once its INVITE went: a dialog whose INVITE could not start would stay
            // in the index after the call (only the last attempt's is removed then).
            if let Some(b) = self.b.as_ref() {
                cx.add_dialog(b, Side::B);
            }
            let name = peer.name.clone();
            if self.route.ring_per_peer {
                let ring = peer.ring_timeout.unwrap_or(DEFAULT_RING_TIMEOUT);
                self.timers.set(CallTimer::Ring, cx.now + ring);
            }
            let asked_se = peer.session_timer.asked(None);
            let offered = super::anchor::carries_sdp(&invite);
            self.attempt = Some(Attempt {
                peer,
                txn,
                invite: Some(Box::new(invite)),
                state: AttemptState::Calling,
                asked_se,
                retried_422: false,
                offered,
            });
            self.arm_invite_timeout(cx.now);
            self.progress(cx, name, Direction::Outbound, Stage::Offered);
            return AttemptOutcome::Sent;
        }
        match limited {
            Some(over) => AttemptOutcome::RateLimited(over),
            None => AttemptOutcome::NoPeerLeft,
        }
    }

    /// Nothing the callee said of the streams, or was shown, carries over to the next one
    /// (the caller's RTP must not go on to a callee that failed); the relay is told at once
    /// (`peer`: the next callee's profile, when one is being set up).
    pub(super) fn forget_callee_media(&mut self, cx: &mut Cx, peer: Option<&Profile>) {
        if let Some(m) = self.media.as_mut() {
            m.remote.b.iter_mut().for_each(|r| *r = None);
            m.b_branch = None;
            m.uses.iter_mut().for_each(|u| *u = StreamUse::default());
            m.shown.b = None;
            m.callee = m.callee.wrapping_add(1);
            m.heard.b = false;
            // A failed callee's offers say nothing of what the next one may answer.
            m.offered.b = None;
            m.directions.b.clear();
            if m.proposed.as_ref().is_some_and(|(s, _)| *s == Side::B) {
                m.proposed = None;
            }
            self.emit_relay(cx, peer);
        }
    }

    /// Count what the INVITE built for the peer changed of the caller's (anchoring counts
    /// itself).
    fn count_invite_rewrites(&self, cx: &mut Cx, invite: &Request, peer: &Profile) {
        let template = self.template();
        // (A late offer may carry the caller's early answer, alone or beside its ISUP: not a
        // rewrite of the caller's SDP, and counted where it is shaped.) The caller's SDP is
        // its session as it last offered it.
        let session = self
            .callers_session_over(template)
            .map_or(template.body(), |(body, _)| body);
        if peer.ptime.is_some() && super::anchor::carries_sdp(template) && invite.body() != session
        {
            cx.env.rewrote(Rewrite::Ptime);
        }
        let plain = request_uri(&self.number, false, &UriPolicy::default(), &peer.domain);
        if invite.uri() != plain {
            cx.env.rewrote(Rewrite::RequestUri);
        }
        let rel = |r: &Request| {
            (
                r.header_has_token(&Hdr::SUPPORTED, "100rel"),
                r.header_has_token(&Hdr::REQUIRE, "100rel"),
            )
        };
        if rel(invite) != rel(template) {
            cx.env.rewrote(Rewrite::Prack100rel);
        }
    }

    /// The current attempt got its final outcome: false when it already had one.
    pub(super) fn finish_attempt(&mut self) -> bool {
        let Some(att) = self.attempt.as_mut() else {
            return false;
        };
        let first = att.state.finish();
        att.invite = None;
        let txn = att.txn;
        self.close_txn(txn);
        first
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
        self.phase.answer(cx.now);
        self.forget_early_forks();
        self.media_answered(cx);
        self.answered_wall = Some(cx.env.wall(cx.now));
        self.timers.clear(CallTimer::Ring);
        self.timers
            .set(CallTimer::Settle, cx.now + cx.env.timers.t1 * 64);
        if let Some(peer) = self.egress_name().cloned() {
            self.progress(cx, peer, Direction::Outbound, Stage::Answered);
        }
        let caller = self.ingress.name.clone();
        self.progress(cx, caller, Direction::Inbound, Stage::Answered);
        // The shorter of the two peers' maximum durations, counted from the answer.
        let max = [Side::A, Side::B]
            .iter()
            .filter_map(|s| self.profile(*s).and_then(|p| p.limits.max_call_duration))
            .min();
        if let Some(max) = max {
            self.timers.set(CallTimer::MaxDuration, cx.now + max);
        }
        self.arm_probes(cx.now);
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
