//! Session timers (RFC 4028) in a call, one leg at a time: each leg's timer is negotiated
//! with that leg's peer under its profile's `[session_timer]`, refreshed on that leg only
//! (the gateway refreshes where it is the refresher, and answers the peer's refreshes that
//! change nothing itself), and a leg whose session expires releases the call
//! (`call_tag = "session_expired"`). The rules are `interop::session_timer`'s.

use std::time::Duration;

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::Side;
use super::challenge::is_challenge;
use super::cx::Cx;
use super::events::CallEvent;
use super::state::{Call, Refreshing, SdpSeen, TxnRole};
use super::timers::CallTimer;
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::interop::session_timer::{
    SessionTimerPolicy, UasTerms, expiry_due, refresh_due, response_headers,
};
use crate::sip::session::{OPTION_TAG, Session};
use crate::sip::{Hdr, Method, Request, Response, SipError};
use crate::txn::TxnId;

/// A refresh that could not be sent now (another INVITE in the dialog, a refusal that may
/// pass) is tried again after this long; the expiry deadline still runs.
const REFRESH_RETRY: Duration = Duration::from_secs(4);

impl Call {
    /// The `[session_timer]` of the peer on `side` (off while that side has no peer).
    pub(super) fn timer_policy(&self, side: Side) -> SessionTimerPolicy {
        self.profile(side)
            .map_or_else(SessionTimerPolicy::off, |p| p.session_timer)
    }

    /// Adopt `s` as `side`'s session timer (None: the leg has none) and arm its deadlines
    /// from now: a successful refresh calls this again.
    pub(super) fn set_session(&mut self, cx: &mut Cx, side: Side, s: Option<Session>) {
        self.session[side] = s;
        self.timers.clear(CallTimer::SessionRefresh(side));
        self.timers.clear(CallTimer::SessionExpiry(side));
        if s.is_none() {
            // No refresh will offer it again or answer with it.
            self.sdp[side] = None;
        }
        if let Some(s) = s {
            // Checked: an interval is capped at a day, but a clock never overflows anyway.
            if s.we_refresh
                && let Some(at) = cx.now.checked_add(refresh_due(s))
            {
                self.timers.set(CallTimer::SessionRefresh(side), at);
            }
            if let Some(at) = cx.now.checked_add(expiry_due(s)) {
                self.timers.set(CallTimer::SessionExpiry(side), at);
            }
        }
    }

    /// Our 2xx to `req` on `side` ends an exchange that refreshes (or sets up) the leg's
    /// timer: the headers it carries, and the timer armed from now.
    pub(super) fn answer_session(
        &mut self,
        cx: &mut Cx,
        side: Side,
        req: &Request,
    ) -> Vec<(Hdr, String)> {
        let policy = self.timer_policy(side);
        let terms = policy.as_uas(req);
        let session = match terms {
            UasTerms::Timer { session, .. } => Some(session),
            _ => None,
        };
        self.set_session(cx, side, session);
        let mut out = response_headers(&terms);
        if policy.supported() {
            out.push((Hdr::SUPPORTED, OPTION_TAG.to_string()));
        }
        out
    }

    /// Add `side`'s session-timer headers to `msg` (our 2xx on that side).
    pub(super) fn announce_session(
        &mut self,
        cx: &mut Cx,
        side: Side,
        req: &Request,
        msg: &mut Response,
    ) {
        for (h, v) in self.answer_session(cx, side, req) {
            if let Err(e) = msg.insert_header_before_length(&h, v) {
                warn!(error = %e, "cannot add {}", h.as_str());
            }
        }
    }

    /// Our request on `side` (a relayed re-INVITE/UPDATE) restates the leg's timer.
    pub(super) fn restate_session(&self, side: Side, req: &mut Request) -> Result<(), SipError> {
        let policy = self.timer_policy(side);
        if !policy.supported() {
            return Ok(());
        }
        for (h, v) in policy.request_headers(self.session[side]) {
            req.insert_header_before_length(&h, v)?;
        }
        req.insert_header_before_length(&Hdr::SUPPORTED, OPTION_TAG)
    }

    /// The 2xx `resp` to our request on `side` that restated the leg's timer: the timer as
    /// the peer now has it, armed from now.
    pub(super) fn adopt_session(&mut self, cx: &mut Cx, side: Side, resp: &Response) {
        let policy = self.timer_policy(side);
        let asked = policy.asked(self.session[side]);
        let s = policy.as_uac(resp, asked);
        self.set_session(cx, side, s);
    }

    /// A re-INVITE or UPDATE from `side`'s peer, before it is relayed: a session interval
    /// too short gets 422, an unreadable one 400, and a refresh that changes nothing is
    /// answered here (the other leg never sees it). True when answered.
    pub(super) fn on_session_request(
        &mut self,
        cx: &mut Cx,
        side: Side,
        id: TxnId,
        req: &Request,
    ) -> bool {
        let policy = self.timer_policy(side);
        match policy.as_uas(req) {
            UasTerms::TooBrief(min) => {
                let min = min.as_secs().to_string();
                cx.respond(
                    id,
                    req,
                    422,
                    "Session Interval Too Small",
                    &[(Hdr::MIN_SE, min.as_str())],
                );
                return true;
            }
            UasTerms::Malformed => {
                cx.respond(id, req, 400, "Bad Session-Expires", &[]);
                return true;
            }
            UasTerms::NoTimer if self.session[side].is_none() => return false,
            _ => {}
        }
        if !matches!(self.phase, super::phase::Phase::Confirmed { .. }) {
            return false;
        }
        let unchanged = match req.method() {
            // An UPDATE without SDP that restates the timer is a refresh (RFC 4028 §7.4
            // prefers it); one without Session-Expires is something else (an identity
            // update) and goes on to the other leg.
            Method::Update => req.body().is_empty() && req.has_header(&Hdr::SESSION_EXPIRES),
            // A re-INVITE whose SDP is the one this peer sent last (same `o=` line: RFC 3264
            // §8), answered with what we sent it last, when that was our answer.
            Method::Invite => self.sdp[side].as_ref().is_some_and(|seen| {
                seen.sent.as_ref().is_some_and(|s| s.2)
                    && seen.received_origin.is_some()
                    && seen.received_origin
                        == sdp_origin(req.header(&Hdr::CONTENT_TYPE).as_deref(), req.body())
            }),
            _ => false,
        };
        if !unchanged {
            return false;
        }
        debug!(call_id = %self.call_id(), ?side, method = %req.method(), "session refresh answered here");
        // A connected identity riding on the refresh still reaches the other side.
        let pai = req.header_lines(&Hdr::P_ASSERTED_IDENTITY);
        if !pai.is_empty() {
            self.identity = Some(Box::new((side.other(), pai)));
        }
        match self.local_refresh_answer(cx, side, req) {
            Ok(resp) => {
                cx.send_response(id, resp.clone());
                if req.method() == Method::Invite {
                    let cseq = req.seq();
                    // Its SDP answers the peer's (a refresh answered here has SDP).
                    self.await_ack(cx, side, resp, (cseq, None), id, false);
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot answer the session refresh");
                cx.respond(id, req, 500, "Server Internal Error", &[]);
            }
        }
        true
    }

    /// Our 200 to a refresh on `side`: our Contact (a target refresh), the timer's terms,
    /// and for a re-INVITE the SDP we last sent that leg.
    fn local_refresh_answer(
        &mut self,
        cx: &mut Cx,
        side: Side,
        req: &Request,
    ) -> Result<Response, SipError> {
        let mut out = Response::to_request(req, 200, "OK", None)?;
        let transport = self
            .dialog(side)
            .map_or(crate::sip::Transport::Udp, |d| d.target.transport);
        out.push_header(&Hdr::CONTACT, cx.env.local.contact(transport))?;
        if req.method() == Method::Invite {
            out.push_header(&Hdr::ALLOW, self.allow_toward(side))?;
        }
        for (h, v) in self.answer_session(cx, side, req) {
            out.push_header(&h, v)?;
        }
        match self.sdp[side].as_ref().and_then(|s| s.sent.clone()) {
            Some((body, ct, _)) if req.method() == Method::Invite => {
                let body = self.shown_again(side, &body, ct.as_deref());
                out.set_body(body, ct.as_deref())?
            }
            _ => out.set_no_body()?,
        }
        Ok(out)
    }

    /// A body sent to `side` before, to be sent again: on an anchored call, its `o=` line as
    /// that peer must see it now ([`crate::sdp::present_again`]).
    fn shown_again(&mut self, side: Side, body: &Bytes, ct: Option<&str>) -> Bytes {
        match self.media.as_mut() {
            Some(m) => crate::sdp::present_again(ct, body, &mut m.shown[side]),
            None => body.clone(),
        }
    }

    /// The callee's 422 to our INVITE `sent`: the INVITE again, once, asking for the
    /// callee's `Min-SE` (RFC 4028 §7.4), when its profile runs timers. False: not retried.
    pub(super) fn retry_after_422(&mut self, cx: &mut Cx, sent: &Request, resp: &Response) -> bool {
        let policy = self.timer_policy(Side::B);
        let Some(att) = self.attempt.as_ref().filter(|a| !a.retried_422) else {
            return false;
        };
        let Some(min) = policy.after_422(resp, att.asked_se) else {
            return false;
        };
        let Some(leg) = self.b.as_mut() else {
            return false;
        };
        leg.local_cseq = leg.local_cseq.wrapping_add(1);
        let (cseq, target) = (leg.local_cseq, leg.target);
        let secs = min.as_secs().to_string();
        let via = cx.env.local.via(target.transport, &cx.env.ids.branch());
        let mut invite = sent.clone();
        let built = invite
            .set_header(&Hdr::VIA, via)
            .and_then(|()| invite.set_header(&Hdr::CSEQ, format!("{cseq} INVITE")))
            .and_then(|()| invite.set_header(&Hdr::SESSION_EXPIRES, secs.clone()))
            .and_then(|()| invite.set_header(&Hdr::MIN_SE, secs));
        if let Err(e) = built {
            warn!(error = %e, "cannot build the INVITE again after 422");
            return false;
        }
        self.sign(cx, Side::B, &mut invite);
        let Some(txn) = self.start_client(cx, invite.clone(), target, TxnRole::Invite) else {
            return false;
        };
        info!(call_id = %self.call_id(), interval = min.as_secs(), "callee wants a longer session interval (422): INVITE again");
        if invite.has_header(&Hdr::AUTHORIZATION) || invite.has_header(&Hdr::PROXY_AUTHORIZATION) {
            self.invite_auth.b = Some(Call::invite_credentials(&invite));
        }
        if let Some(att) = self.attempt.as_mut() {
            att.txn = txn;
            att.invite = Some(Box::new(invite));
            att.state = super::phase::AttemptState::Calling;
            att.asked_se = Some(min);
            att.retried_422 = true;
        }
        true
    }

    /// `SessionRefresh(side)` fired: the gateway refreshes the leg.
    pub(super) fn on_session_refresh(&mut self, cx: &mut Cx, side: Side) {
        let Some(s) = self.session[side] else {
            return;
        };
        if self.phase.is_ending() {
            return;
        }
        // A refresh by UPDATE carries no offer, so it may go while an INVITE is under way
        // (RFC 3311 §5.1): a re-INVITE left ringing (up to Timer C) must not let the leg's
        // session expire. One by re-INVITE waits for it.
        // Nor may it offer while another offer waits for its answer (RFC 3311 §5.1).
        let invite_busy = !self.refreshes_by_update(side)
            && (self.reinvite_in_progress() || self.unanswered_offer(side).is_some());
        let busy = self.refresh.is_some()
            || invite_busy
            || self.pending_2xx[side].is_some()
            || !matches!(self.phase, super::phase::Phase::Confirmed { .. });
        if busy {
            self.timers
                .set(CallTimer::SessionRefresh(side), cx.now + REFRESH_RETRY);
            return;
        }
        self.send_refresh(cx, side, s.interval, false);
    }

    /// Whether `side`'s refreshes go as UPDATE: its peer said it takes one, and no refresh
    /// by UPDATE failed there.
    fn refreshes_by_update(&self, side: Side) -> bool {
        self.peer_lists(side, &Method::Update) && !self.refresh_by_invite[side]
    }

    /// Send a session refresh on `side` asking for `interval`, the gateway refreshing: an
    /// UPDATE when the peer said it takes one, else a re-INVITE offering our last SDP again.
    fn send_refresh(&mut self, cx: &mut Cx, side: Side, interval: Duration, retried: bool) {
        let policy = self.timer_policy(side);
        let sdp = self.sdp[side].as_ref().and_then(|s| s.sent.clone());
        let update = self.refreshes_by_update(side);
        // Without our last SDP a re-INVITE cannot offer it again: UPDATE, unless the peer
        // said it takes none (then the leg cannot be refreshed and will expire).
        let method = match (update, &sdp) {
            (true, _) => Method::Update,
            (false, Some(_)) => Method::Invite,
            (false, None) if self.peer_takes(side, &Method::Update) => Method::Update,
            (false, None) => {
                warn!(call_id = %self.call_id(), ?side, "cannot refresh the session: no SDP to offer again and the peer takes no UPDATE");
                return;
            }
        };
        // Our last SDP again, its `o=` as this peer must see it now (the same line, or the
        // next version after an offer it refused).
        let sdp = sdp
            .filter(|_| method == Method::Invite)
            .map(|(body, ct, answer)| (self.shown_again(side, &body, ct.as_deref()), ct, answer));
        let Some(leg) = self.dialog_mut(side) else {
            return;
        };
        let target = leg.target;
        let session = Session {
            interval,
            we_refresh: true,
        };
        let built = leg
            .request(method.clone(), &cx.env.local, &mut cx.env.ids)
            .and_then(|mut r| {
                for (h, v) in policy.request_headers(Some(session)) {
                    r.insert_header_before_length(&h, v)?;
                }
                r.insert_header_before_length(&Hdr::SUPPORTED, OPTION_TAG)?;
                if method == Method::Invite
                    && let Some((body, ct, _)) = sdp
                {
                    r.set_body(body, ct.as_deref())?;
                }
                Ok(r)
            });
        let mut req = match built {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot build the session refresh");
                return;
            }
        };
        self.sign(cx, side, &mut req);
        debug!(call_id = %self.call_id(), ?side, %method, "session refresh");
        if let Some(txn) = self.start_client(cx, req.clone(), target, TxnRole::Refresh(side)) {
            self.refresh = Some(Box::new(Refreshing {
                txn,
                side,
                sent: req,
                asked: interval,
                retried,
            }));
        }
    }

    /// The answer to our session refresh `id`.
    pub(super) fn on_refresh_response(&mut self, cx: &mut Cx, id: TxnId, resp: Response) {
        if resp.is_provisional() {
            return;
        }
        self.close_txn(id);
        let Some(r) = self.refresh.take_if(|r| r.txn == id) else {
            self.ack_2xx_again(cx, &resp);
            return;
        };
        let side = r.side;
        let status = resp.status();
        if self.phase.is_ending() {
            if resp.is_success() && r.sent.method() == Method::Invite {
                self.send_ack(cx, side, resp.seq(), None);
            }
            return;
        }
        if resp.is_success() {
            if r.sent.method() == Method::Invite {
                self.send_ack(cx, side, resp.seq(), None);
            }
            if let Some(leg) = self.dialog_mut(side)
                && let Some(c) = resp.contact_uri()
            {
                leg.remote_target = c.into();
            }
            let policy = self.timer_policy(side);
            // A peer that does not know timers answers without one: we keep refreshing it.
            let s = policy.as_uac(&resp, Some(r.asked)).unwrap_or(Session {
                interval: r.asked,
                we_refresh: true,
            });
            self.set_session(cx, side, Some(s));
            return;
        }
        if is_challenge(&resp) {
            match self.answer_challenge(cx, side, &r.sent, &resp, TxnRole::Refresh(side)) {
                Ok((txn, sent)) => {
                    self.refresh = Some(Box::new(Refreshing { txn, sent, ..*r }));
                }
                Err(why) => {
                    self.challenge_failed(status, &why);
                    self.timers
                        .set(CallTimer::SessionRefresh(side), cx.now + REFRESH_RETRY);
                }
            }
            return;
        }
        // RFC 4028 §10: a refresh that finds no dialog (481) or no peer (408) ends the call.
        if matches!(status, 408 | 481) {
            return self.session_expired(cx, side);
        }
        if !r.retried {
            let policy = self.timer_policy(side);
            if status == 422
                && let Some(min) = policy.after_422(&resp, Some(r.asked))
            {
                return self.send_refresh(cx, side, min, true);
            }
            // The peer takes no UPDATE after all: a re-INVITE from now on.
            if matches!(status, 405 | 501) && r.sent.method() == Method::Update {
                self.refresh_by_invite[side] = true;
                if let Some(leg) = self.dialog_mut(side)
                    && let Some(allows) = leg.peer_allows.as_mut()
                {
                    allows.remove("UPDATE");
                }
                if self.sdp[side].as_ref().is_some_and(|s| s.sent.is_some()) {
                    // One INVITE at a time within a dialog (RFC 3261 §14.1): while another is
                    // under way the re-INVITE waits for the refresh timer's next try.
                    if self.reinvite_in_progress() {
                        self.timers
                            .set(CallTimer::SessionRefresh(side), cx.now + REFRESH_RETRY);
                        return;
                    }
                    return self.send_refresh(cx, side, r.asked, true);
                }
            }
        }
        // Anything else (491, 5xx): try again shortly; the leg expires if it never works.
        info!(call_id = %self.call_id(), ?side, status, "session refresh refused; trying again");
        self.timers
            .set(CallTimer::SessionRefresh(side), cx.now + REFRESH_RETRY);
    }

    /// Our session refresh got no answer at all: the peer is gone.
    pub(super) fn on_refresh_failed(&mut self, cx: &mut Cx, id: TxnId) {
        self.close_txn(id);
        if let Some(r) = self.refresh.take_if(|r| r.txn == id) {
            self.session_expired(cx, r.side);
        }
    }

    /// `SessionExpiry(side)` fired, or a refresh showed the leg is gone: release the call.
    pub(super) fn session_expired(&mut self, cx: &mut Cx, side: Side) {
        if !self.phase.is_up() {
            return;
        }
        info!(call_id = %self.call_id(), ?side, "session timer expired: releasing the call");
        self.events.push(CallEvent::SessionExpired(side));
        self.release_answered(cx, CallTag::SessionExpired, Q850Cause::TIMER_EXPIRY);
    }

    /// Record the SDP `side`'s peer sent (its `o=` line), on a leg that runs session timers.
    pub(super) fn note_sdp_received(&mut self, side: Side, body: &Bytes, ct: Option<&str>) {
        if !self.timer_policy(side).supported() || !self.may_need_sdp(side) {
            return;
        }
        let origin = sdp_origin(ct, body);
        if origin.is_some() {
            self.sdp[side].get_or_insert_default().received_origin = origin;
        }
    }

    /// Record the SDP we sent `side` (an answer or an offer), on a leg that runs session
    /// timers (`policy`: that leg's, given while an attempt is being set up).
    pub(super) fn note_sdp_sent(
        &mut self,
        side: Side,
        body: &Bytes,
        ct: Option<&str>,
        answer: bool,
        policy: Option<SessionTimerPolicy>,
    ) {
        let policy = policy.unwrap_or_else(|| self.timer_policy(side));
        if !policy.supported() || !self.may_need_sdp(side) || sdp_origin(ct, body).is_none() {
            return;
        }
        // A copy of its own: the message it came in is not kept alive by it.
        let body = Bytes::copy_from_slice(body);
        self.sdp[side]
            .get_or_insert_with(Box::<SdpSeen>::default)
            .sent = Some((body, ct.map(str::to_string), answer));
    }
}

impl Call {
    /// Before the answer a leg may still get a timer; after it, only a leg that has one
    /// keeps SDP for refreshes.
    fn may_need_sdp(&self, side: Side) -> bool {
        self.phase.is_routing() || self.session[side].is_some()
    }
}

/// The `o=` line of a body's SDP (the body itself, or its SDP part), found the way anchoring
/// finds it (`sdp::locate`, `sdp::lines`); None for a body that carries no SDP.
fn sdp_origin(ct: Option<&str>, body: &[u8]) -> Option<String> {
    let part = crate::sdp::locate(ct, body).ok()??;
    let sdp = body.get(part.range())?;
    crate::sdp::lines(sdp)
        .find(|l| l.text.starts_with(b"o="))
        .map(|l| String::from_utf8_lossy(l.text).into_owned())
}
