//! Call-backs: calls the gateway places itself when the call-back service asks
//! (`callback::Command`; `originate` places them), by RFC 3725 third-party call control,
//! flow I. The gateway INVITEs user1 without SDP; user1's 2xx carries its offer; the gateway
//! INVITEs user2 with that offer; user2's 2xx answer goes to user1 in the ACK, and user2 is
//! ACKed.
//!
//! A call-back is an ordinary [`Call`] with another [`Origin`]: while user1 is called it is
//! the call's side B (so routing, failover, limits, 100rel and CANCEL are the attempt
//! machinery's); once user1 answers, its dialog moves to side A and user2 is called on side
//! B. From then on the call is bridged like any other (re-INVITEs, BYE, media, recording,
//! max duration). What differs is where a caller would be told things: here the call-back
//! service is told instead (`Output::Callback`), and user1, who already answered, gets an
//! ACK and a BYE when user2 cannot be reached.

use super::anchor::Exchange;
use std::time::Duration;

use tracing::info;

use super::admission::ring_timeout;
use super::attempt::AttemptOutcome;
use super::cx::Cx;
use super::phase::EndInfo;
use super::state::{Call, Origin, RoutePlan};
use super::timers::CallTimer;
use super::{Direction, Output, Side, Stage};
use crate::callback::{CallbackId, End, Outcome, State};
use crate::cdr::CallTag;
use crate::config::{PeerName, Route};
use crate::interop::causes::{Q850Cause, reason_header};
use crate::interop::uri::escape_user;
use crate::sip::{
    Hdr, IdGen, LocalAddrs, Method, NewRequest, Request, Response, SipError, Transport,
};
use crate::txn::TxnId;

/// What the call layer tells the call-back service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackReport {
    /// The call-back got further (`Calling2`, then `Connected`).
    Progress { id: CallbackId, state: State },
    /// It ended; reported exactly once per `Originate`.
    Ended { id: CallbackId, end: End },
}

/// Longest user2 may ring, as a multiple of T1: user1 retransmits its 2xx for 64·T1 while
/// waiting for our ACK, and hangs up after that (RFC 3261 §13.3.1.4), so user2 must answer
/// (or be given up) before then: 60·T1 is 30 s with the default T1.
const USER2_RING_T1S: u32 = 60;

/// A call-back's own state, beside the call's.
#[derive(Debug)]
pub struct ThirdParty {
    pub id: CallbackId,
    /// `Calling1`, `Calling2` or `Connected` (the call's phase says when it ended).
    pub stage: State,
    pub user1: String,
    pub user2: String,
    /// The number user2 is shown.
    pub shown_to_user2: String,
    /// What the INVITE toward the current side B is built from (`Call::template`): a
    /// request of our own, carrying user1's offer once user1 answered.
    pub template: Request,
    pub user2_route: Route,
    pub max_duration: Duration,
    /// user1's INVITE transaction and CSeq: its 2xx retransmissions, and our ACK for it.
    pub user1_txn: Option<TxnId>,
    pub user1_cseq: u32,
    /// user1's offer (its 2xx body and Content-Type).
    pub user1_offer: Option<(bytes::Bytes, Option<String>)>,
    /// The peer user1 is reached through, counted in `[limits]` until the call is forgotten.
    pub user1_counted: Option<PeerName>,
    /// When user1 answered and user2's INVITE went: user2's setup is timed from here
    /// (`trunkgate_setup_seconds` of user2's peer), not from the call-back's start.
    pub user2_since: Option<std::time::Instant>,
    /// user1 hung up before user2 answered (its BYE was answered): its 2xx gets its ACK,
    /// but no BYE.
    pub user1_left: bool,
    /// When user1 answered (the CDR's `user1_answer`).
    pub user1_answered: Option<std::time::SystemTime>,
    /// The service was told how the call-back ended (once, whichever way it ended).
    pub reported: bool,
}

/// The request a call-back's INVITE toward `to` is built from, as if `from` had dialled it
/// from the gateway itself. Never sent: `outbound_invite` takes its numbers and body.
pub(super) fn template(
    local: &LocalAddrs,
    ids: &mut IdGen,
    to: &str,
    from: &str,
) -> Result<Request, SipError> {
    let host = local.uri_host();
    let (to, from) = (escape_user(to), escape_user(from));
    let call_id = ids.call_id(&local.host);
    let tag = ids.tag(&call_id);
    let mut r = NewRequest {
        method: Method::Invite,
        uri: &format!("sip:{to}@{host}"),
        via: &local.via(Transport::Udp, &ids.branch()),
        max_forwards: 70,
        routes: &[],
        from: &format!("<sip:{from}@{host}>;tag={tag}"),
        to: &format!("<sip:{to}@{host}>"),
        call_id: &call_id,
        cseq: 1,
    }
    .build()?;
    r.push_header(&Hdr::CONTENT_LENGTH, "0")?;
    Ok(r)
}

/// Remove 100rel from `headers` of an INVITE without an offer (toward user1 of a call-back,
/// or a late offer from a caller without 100rel): a reliable provisional with an offer in
/// it would need an answer in our PRACK that nobody can give before the final answer.
pub(super) fn without_100rel(invite: &mut Request, headers: &[Hdr]) -> Result<(), SipError> {
    for h in headers {
        let tokens: Vec<String> = invite
            .header_tokens(h)
            .into_iter()
            .filter(|t| !t.eq_ignore_ascii_case("100rel"))
            .collect();
        invite.remove_header(h);
        if !tokens.is_empty() {
            invite.insert_header_before_length(h, tokens.join(", "))?;
        }
    }
    Ok(())
}

impl Call {
    fn third_party_mut(&mut self) -> Option<&mut ThirdParty> {
        match &mut self.origin {
            Origin::Callback(tp) => Some(tp),
            Origin::Caller(_) => None,
        }
    }

    fn stage(&self) -> Option<State> {
        self.third_party().map(|tp| tp.stage)
    }

    /// Shape the INVITE toward the current side B for a call-back (see [`without_100rel`]).
    pub(super) fn shape_callback_invite(&self, invite: &mut Request) -> Result<(), SipError> {
        match self.stage() {
            Some(State::Calling1) => without_100rel(invite, &[Hdr::SUPPORTED, Hdr::REQUIRE]),
            _ => Ok(()),
        }
    }

    /// A 2xx from user1 or from user2 can be a retransmission after the attempt it
    /// answered is over: user1's gets our ACK again (once we sent it). False when `id` is
    /// not user1's INVITE.
    pub(super) fn on_user1_2xx_again(&mut self, cx: &mut Cx, id: TxnId, resp: &Response) -> bool {
        if self.third_party().is_none_or(|tp| tp.user1_txn != Some(id)) {
            return false;
        }
        // (user1 may have answered without a To tag, RFC 2543: its dialog has a null tag.)
        let same = (self.a.remote_tag.is_some() || self.a.answered)
            && self.a.remote_tag.as_deref() == resp.to_tag().as_deref();
        if resp.is_success() && same {
            self.resend_ack(cx, Side::A, resp.seq());
        } else if resp.is_success() {
            // Another device user1's INVITE forked to answered too: ACK that dialog and end
            // it (RFC 3261 §13.2.2.4), or it would hang up with a BYE in user1's name. Its
            // 2xx again gets the ACK again, not another BYE (each a transaction of its own,
            // spending the gateway's budget for such answers); counted once a branch.
            let source = self.a.target;
            let offerless = cx.env.txn.sent_without_sdp(id).unwrap_or(false);
            let (now, seq) = (cx.now, resp.seq());
            let first = !self.released_before(resp);
            let how = super::orphan::Unwanted {
                offerless,
                hang_up: first,
            };
            let sent = super::orphan::ack_and_bye(cx.env, now, resp, seq, source, how);
            if sent && first && self.first_release_of(resp) {
                let peer = self.profile(Side::A).map(|p| p.name.clone());
                self.late_answer_released(cx, peer);
            }
        }
        true
    }

    /// The current attempt (toward user1 or user2) answered.
    pub(super) fn on_callback_answer(&mut self, cx: &mut Cx, resp: Response) {
        match self.stage() {
            Some(State::Calling1) => self.user1_answered(cx, resp),
            Some(State::Calling2) => self.user2_answered(cx, resp),
            _ => {}
        }
    }

    /// user1 answered with its offer: its dialog becomes side A, and user2 is called.
    fn user1_answered(&mut self, cx: &mut Cx, resp: Response) {
        // Answered, and billed by its carrier, whatever comes next.
        let wall = cx.env.wall(cx.now);
        if let Some(tp) = self.third_party_mut() {
            tp.user1_answered = Some(wall);
        }
        if !super::anchor::carries_sdp(&resp) {
            // Flow I calls user2 with user1's offer: without one there is nothing to call
            // user2 with. user1's 2xx is ACKed and hung up.
            info!(call_id = %self.call_id(), "user1 answered without an SDP offer: releasing the call-back");
            // (Its 2xx again is ACKed again, not hung up again: `kill_fork`.)
            self.first_release_of(&resp);
            self.ack_and_bye_b(cx, &resp);
            let end = EndInfo::internal(
                CallTag::GatewayError,
                488,
                Q850Cause::INTERWORKING.0,
                cx.now,
            );
            return self.end_call(cx, end);
        }
        let (Some(leg), Some(att)) = (self.b.take(), self.attempt.take()) else {
            return;
        };
        cx.remove_dialog(&leg);
        cx.add_dialog(&leg, Side::A);
        self.a = leg;
        // user1's challenges and the credentials its INVITE carried move with its dialog.
        self.auth.a = self.auth.b.take();
        self.invite_auth.a = self.invite_auth.b.take();
        // So do its session timer and the SDP seen on it.
        let (timer, sdp) = (self.session.b.take(), self.sdp.b.take());
        self.set_session(cx, Side::B, None);
        self.set_session(cx, Side::A, timer);
        self.sdp.a = sdp;
        self.ingress = att.peer.clone();
        self.progress(
            cx,
            att.peer.name.clone(),
            Direction::Outbound,
            Stage::Answered,
        );
        let counted = self.counted_egress.take();
        let offer = (resp.body().clone(), resp.header(&Hdr::CONTENT_TYPE));
        let t1 = cx.env.timers.t1;
        let (local, ids) = (&cx.env.local, &mut cx.env.ids);
        let Some(tp) = self.third_party_mut() else {
            return;
        };
        tp.stage = State::Calling2;
        tp.user2_since = Some(cx.now);
        tp.user1_txn = Some(att.txn);
        tp.user1_cseq = resp.seq();
        tp.user1_offer = Some(offer.clone());
        tp.user1_counted = counted;
        let id = tp.id.clone();
        let (user2, shown) = (tp.user2.clone(), tp.shown_to_user2.clone());
        let route = tp.user2_route.clone();
        let built = template(local, ids, &user2, &shown).and_then(|mut t| {
            t.set_body(offer.0, offer.1.as_deref())?;
            Ok(t)
        });
        let built = built.map(|t| tp.template = t);
        cx.emit(Output::Callback(CallbackReport::Progress {
            id,
            state: State::Calling2,
        }));
        if let Err(e) = built {
            info!(call_id = %self.call_id(), error = %e, "cannot build user2's INVITE: releasing the call-back");
            let end = EndInfo::internal(
                CallTag::GatewayError,
                500,
                Q850Cause::PROTOCOL_ERROR.0,
                cx.now,
            );
            return self.release_callback(cx, end);
        }
        info!(call_id = %self.call_id(), "call-back: user1 answered, calling user2");
        self.number = user2;
        self.caller = shown;
        self.route = RoutePlan {
            targets: route.to.clone(),
            next: 0,
            // user1 holds its 200 for 64·T1 at most: user2's ring is one bound in all.
            ring_per_peer: false,
            rang: false,
            before: u16::try_from(self.route.attempt()).unwrap_or(u16::MAX),
        };
        self.uac_rel = Default::default();
        self.last_failure = None;
        let ring = ring_timeout(&self.cfg, &route).min(t1 * USER2_RING_T1S);
        self.timers.set(CallTimer::Ring, cx.now + ring);
        let outcome = self.start_attempt(cx);
        self.on_attempt_outcome(cx, outcome);
    }

    /// user2 answered: its answer goes to user1 in our ACK, and user2 is ACKed. An answer
    /// whose SDP cannot be read (an anchored call-back) fails the call-back, as such an
    /// answer fails a call: user2 is ACKed and hung up, user1 gets every stream refused in
    /// its ACK and a BYE, and the service hears `user2_failed`, not `connected` (no one was
    /// connected: the two would have had no audio).
    fn user2_answered(&mut self, cx: &mut Cx, resp: Response) {
        // (Failing a call-back releases user1 as `release_callback` does.)
        if self.refused_unreadable_answer(cx, &resp, &resp) {
            return;
        }
        // No answer to user1's offer (none in the 2xx, none kept from a reliable
        // provisional: `with_early_answer` put that in), which user1's ACK must carry (RFC
        // 3261 §13.2.2.4): failed as an unreadable answer. Before, user1's ACK had none.
        if !super::anchor::carries_sdp(&resp) {
            tracing::warn!(call_id = %self.call_id(), "user2 answered without an answer to user1's offer: releasing the call-back");
            self.first_release_of(&resp);
            self.ack_and_bye_b(cx, &resp);
            return self.fail_call(cx, 502, CallTag::MediaUnavailable, Q850Cause::INTERWORKING);
        }
        let own_max = self.third_party().map(|tp| tp.max_duration);
        self.answered_now(cx, own_max);
        let Some(tp) = self.third_party() else {
            return;
        };
        let (id, user1_cseq) = (tp.id.clone(), tp.user1_cseq);
        let b_cseq = resp.seq();
        let mut answer = resp;
        self.agree_with(Side::B, &answer);
        self.shape_in_place(Side::A, &mut answer);
        self.anchor_answer(cx, Side::B, &mut answer, Exchange::Answer);
        let body = (answer.body().clone(), answer.header(&Hdr::CONTENT_TYPE));
        self.send_ack(cx, Side::A, user1_cseq, Some(body));
        self.send_ack(cx, Side::B, b_cseq, None);
        self.phase.confirm();
        if let Some(tp) = self.third_party_mut() {
            tp.stage = State::Connected;
        }
        info!(call_id = %self.call_id(), "call-back connected");
        cx.emit(Output::Callback(CallbackReport::Progress {
            id,
            state: State::Connected,
        }));
    }

    /// What a call does when an attempt could not be sent (`None` when it was).
    pub(super) fn on_attempt_outcome(&mut self, cx: &mut Cx, outcome: AttemptOutcome) {
        // Behind a front, this instance's own want of room (its RTP ports, its share of the
        // route's peers' limits) is said with a Retry-After: the front then moves the call
        // to another instance, which may have room, as it does the instance's other
        // refusals (a trunk's failure, passed on without one, goes to the caller).
        let behind_front = cx.env.cfg.front.is_some();
        let (end, retry) = match outcome {
            AttemptOutcome::Sent => return,
            // 47: resource unavailable, when it was the RTP ports that ran out.
            AttemptOutcome::NoMediaPorts => (
                EndInfo::internal(CallTag::MediaUnavailable, 503, 47, cx.now),
                behind_front.then_some("5"),
            ),
            // 488 → Q.850 65, as a callee's 488 is (`rfc3398_cause`): the offer itself is
            // what we cannot take, a refused session, not a failure of the network (127,
            // before); its Warning says why.
            AttemptOutcome::BadSdp(w) => {
                let end = EndInfo::internal(
                    CallTag::CallerRejected,
                    488,
                    Q850Cause::BEARER_NOT_IMPLEMENTED.0,
                    cx.now,
                );
                let warning = w.value(&cx.env.local.uri_host());
                return self.fail_call_with_extra(cx, end, &[(Hdr::named("Warning"), &warning)]);
            }
            // No Retry-After: it is this route's peers that are full, not the gateway, and a
            // caller honouring it would hold back every call (RFC 3261 §21.5.4). (The
            // front's is no caller: it tries the next instance, and the last one's refusal,
            // marked as the route's, it answers with a 503 of its own without one.)
            AttemptOutcome::RateLimited(over) => (
                EndInfo::internal(CallTag::RateLimited, 503, Q850Cause::CONGESTION.0, cx.now),
                behind_front.then(|| over.retry_after()),
            ),
            AttemptOutcome::NoPeerLeft => (
                EndInfo::internal(CallTag::PeerUnreachable, 503, 38, cx.now),
                None,
            ),
        };
        let route_full = matches!(outcome, AttemptOutcome::RateLimited(_));
        match retry {
            Some(r) if route_full => {
                let scope = (Hdr::named(super::cx::SCOPE_HEADER), "route");
                self.fail_call_with_extra(cx, end, &[(Hdr::RETRY_AFTER, r), scope]);
            }
            Some(r) => self.fail_call_with_extra(cx, end, &[(Hdr::RETRY_AFTER, r)]),
            None => self.fail_call_with(cx, end),
        }
    }

    /// End a call-back that is not connected: cancel the attempt in progress, and if user1
    /// already answered, answer its offer (every stream refused, RFC 3261 §13.2.2.4) in the
    /// ACK and hang up with the cause.
    pub(super) fn release_callback(&mut self, cx: &mut Cx, end: EndInfo) {
        self.cancel_attempt(cx, &end);
        let media_ip = self.cfg.media_ip;
        let waiting = self
            .third_party()
            .filter(|tp| tp.stage == State::Calling2)
            .map(|tp| (tp.user1_cseq, tp.user1_offer.clone(), tp.user1_left));
        if let Some((cseq, offer, left)) = waiting {
            let refusal =
                offer.and_then(|(b, ct)| super::ack::refusal(ct.as_deref(), &b, media_ip, None));
            // Owed whatever user1 did since (RFC 3261 §13.2.2.4: each 2xx is ACKed), also
            // when it hung up first; its BYE was answered, so no BYE of ours.
            self.send_ack(cx, Side::A, cseq, refusal);
            if !left {
                self.send_bye(cx, Side::A, Some(reason_header(Q850Cause(end.cause))));
            }
        }
        self.end_call(cx, end);
    }

    /// user1 hung up (its BYE is answered) before user2 answered.
    pub(super) fn user1_left(&mut self) {
        if let Some(tp) = self.third_party_mut() {
            tp.user1_left = true;
        }
    }

    /// The call-back service cancels: at whatever stage the call-back is.
    pub(super) fn cancel_callback(&mut self, cx: &mut Cx) {
        info!(call_id = %self.call_id(), "call-back cancelled by the application server");
        let cause = Q850Cause::NORMAL_CLEARING;
        if self.phase.is_routing() {
            let end = EndInfo::internal(CallTag::CallbackCancelled, 487, cause.0, cx.now);
            self.release_callback(cx, end);
        } else if self.phase.is_up() {
            self.release_answered(cx, CallTag::CallbackCancelled, cause);
        }
    }

    /// The call ended: tell the call-back service how, once (from `end_call`, or after a
    /// fault cut that short: `router/fault.rs`).
    pub(super) fn report_callback_end(&mut self, cx: &mut Cx) {
        let Some(end) = self.phase.end_info().cloned() else {
            return;
        };
        let answered = self.phase.answered_at();
        let Some(tp) = self.third_party_mut().filter(|tp| !tp.reported) else {
            return;
        };
        tp.reported = true;
        let outcome = match (answered, end.tag, tp.stage) {
            (Some(_), _, _) => Outcome::Connected,
            (None, CallTag::CallbackCancelled, _) => Outcome::Cancelled,
            (None, _, State::Calling1) => Outcome::User1Failed,
            (None, _, _) => Outcome::User2Failed,
        };
        let duration = answered.map_or(Duration::ZERO, |a| end.at.saturating_duration_since(a));
        let end = End {
            outcome,
            duration,
            call_tag: end.tag,
            cause: Q850Cause(end.cause),
        };
        cx.emit(Output::Callback(CallbackReport::Ended {
            id: tp.id.clone(),
            end,
        }));
    }

    /// The CDR's identifiers for a call-back: user1's leg is the call's (side B while it
    /// was being called), user2's the egress one; `from`/`to` are user1 and user2.
    pub(super) fn callback_facts(&self) -> Option<CallbackFacts<'_>> {
        let tp = self.third_party()?;
        let calling1 = tp.stage == State::Calling1;
        Some(CallbackFacts {
            id: tp.id.to_string(),
            user1_call_id: match (&self.b, calling1) {
                (Some(b), true) => b.call_id.to_string(),
                _ => self.a.call_id.to_string(),
            },
            user2_call_id: self
                .b
                .as_ref()
                .filter(|_| !calling1)
                .map(|b| b.call_id.to_string()),
            user1: &tp.user1,
            user2: &tp.user2,
            user1_peer: match calling1 {
                true => self.egress_name().unwrap_or(&self.ingress.name).to_string(),
                false => self.ingress.name.to_string(),
            },
            user2_peer: self
                .egress_name()
                .filter(|_| !calling1)
                .map(|p| p.to_string()),
            user1_answered: tp.user1_answered,
        })
    }
}

/// See [`Call::callback_facts`].
pub(super) struct CallbackFacts<'a> {
    pub id: String,
    pub user1_call_id: String,
    pub user2_call_id: Option<String>,
    pub user1: &'a str,
    pub user2: &'a str,
    pub user1_peer: String,
    pub user2_peer: Option<String>,
    pub user1_answered: Option<std::time::SystemTime>,
}
