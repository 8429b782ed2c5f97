//! Session timers (RFC 4028) in a call, one leg at a time: each leg's timer is negotiated
//! with that leg's peer under its profile's `[session_timer]`, refreshed on that leg only
//! (the gateway refreshes where it is the refresher, in `refresh.rs`, and answers the
//! peer's refreshes that change nothing itself), and a leg whose session expires releases
//! the call (`call_tag = "session_expired"`). The rules are `interop::session_timer`'s.

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::Side;
use super::cx::Cx;
use super::events::CallEvent;
use super::state::{Call, SdpSeen, TxnRole};
use super::timers::CallTimer;
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::interop::session_timer::{
    SessionTimerPolicy, UasTerms, expiry_due, refresh_due, response_headers,
};
use crate::sip::session::{OPTION_TAG, Session};
use crate::sip::{Hdr, Method, Request, Response, SipError};
use crate::txn::TxnId;

mod after_422;
mod put_off;
mod refresh;

pub(super) use put_off::PutOff;

pub(super) use refresh::RefreshBy;

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
        // A new interval: its first refused refresh waits as any first one does.
        self.refresh_refusals[side] = 0;
        self.marks.renew_session_grace(side);
        self.timers.clear(CallTimer::SessionRefresh(side));
        self.timers.clear(CallTimer::SessionExpiry(side));
        if s.is_none() {
            // No refresh will offer it again or answer with it. (An anchored leg keeps what
            // we sent, see `note_sdp_sent`; not what the peer sent, which only tells a
            // refresh from a new offer while a timer runs.)
            if self.media.is_none() {
                self.sdp[side] = None;
            } else if let Some(seen) = self.sdp[side].as_mut() {
                seen.received_origin = None;
            }
        }
        if let Some(s) = s {
            if s.we_refresh
                && let Some(at) = cx.now.checked_add(refresh_due(s))
            {
                self.timers.set(CallTimer::SessionRefresh(side), at);
            }
            self.arm_expiry(cx, side, s);
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
        let policy = self.timer_policy(side).agreed(self.session[side]);
        let terms = policy.as_uas_in(req, self.session[side]);
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
        let policy = self.timer_policy(side).agreed(self.session[side]);
        if !policy.supported() {
            return Ok(());
        }
        // Before a timer is agreed, the callee's early dialog has the terms our INVITE
        // asked for: after its 422, its minimum (RFC 4028 §7.4), not the profile's first
        // ask, which it would refuse again.
        let after_422 = (self.attempt.as_ref())
            .filter(|a| side == Side::B && self.phase.is_routing() && a.retried_422)
            .and_then(|a| a.asked_se)
            .filter(|_| self.session[side].is_none());
        let headers = match after_422 {
            Some(min) => terms_after_422(min).to_vec(),
            None => policy.request_headers(self.session[side]),
        };
        for (h, v) in headers {
            req.insert_header_before_length(&h, v)?;
        }
        req.insert_header_before_length(&Hdr::SUPPORTED, OPTION_TAG)
    }

    /// The 2xx `resp` to our request on `side` (`sent`, when at hand) that restated the
    /// leg's timer: the timer as the peer now has it, armed from now.
    pub(super) fn adopt_session(
        &mut self,
        cx: &mut Cx,
        side: Side,
        resp: &Response,
        sent: Option<&Request>,
    ) {
        let policy = self.timer_policy(side);
        // What the request asked as it went: one sent again after a 422 asked the peer's
        // minimum, not the leg's interval before (read against that, the peer's answer at
        // its minimum was clamped back, and we became the refresher against its word).
        let asked = (sent.and_then(Request::session_expires))
            .and_then(Result::ok)
            .map(|se| se.interval)
            .or_else(|| policy.asked(self.session[side]));
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
        let policy = self.timer_policy(side).agreed(self.session[side]);
        match policy.as_uas_in(req, self.session[side]) {
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
        self.keep_identity_for(side.other(), req);
        match self.local_refresh_answer(cx, side, req) {
            Ok(resp) => {
                cx.send_response(id, resp.clone());
                self.refresh_target(side, req.contact_uri());
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

    /// A refresh from `side`'s peer (it restates the timer) goes on to the other leg: the
    /// peer is alive, however long the other leg takes to answer or whatever it answers, so
    /// the leg's expiry runs anew from now (RFC 4028 §10: the side not refreshing ends the
    /// session when no refresh request reached it in time); the other leg's 2xx sets the
    /// terms agreed when it comes. Before, the expiry ran on until that 2xx, and a far leg
    /// slower than the time left (or refusing a re-INVITE without SDP) had a call with both
    /// peers alive released as `session_expired`.
    pub(super) fn refresh_heard(&mut self, cx: &mut Cx, side: Side, req: &Request) {
        if let Some(s) = self.session[side]
            && self.phase.is_up()
            && req.has_header(&Hdr::SESSION_EXPIRES)
        {
            self.arm_expiry(cx, side, s);
        }
    }

    /// `side`'s session expiry runs from now for session `s`, with its one grace anew.
    fn arm_expiry(&mut self, cx: &Cx, side: Side, s: Session) {
        // Checked: an interval is capped at a day, but a clock never overflows anyway.
        if let Some(at) = cx.now.checked_add(expiry_due(s)) {
            self.timers.set(CallTimer::SessionExpiry(side), at);
        }
        self.marks.renew_session_grace(side);
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
        // Taken before the timer's terms: a re-INVITE that turns the timer off (no
        // Session-Expires) makes an unanchored leg forget what we sent it, and is still an
        // offer this 200 must answer.
        let sent = self.sdp[side].as_ref().and_then(|s| s.sent.clone());
        for (h, v) in self.answer_session(cx, side, req) {
            out.push_header(&h, v)?;
        }
        match sent {
            // (The SDP alone: see `send_refresh`.)
            Some((body, ct, _)) if req.method() == Method::Invite => {
                let (body, ct) = super::reoffer::sdp_alone(body, ct);
                let body = self.shown_again(side, &body, ct.as_deref());
                out.set_body(body, ct.as_deref())?
            }
            _ => out.set_no_body()?,
        }
        Ok(out)
    }

    /// A body sent to `side` before, to be sent again: on an anchored call, its `o=` line as
    /// that peer must see it now ([`crate::sdp::present_again`]).
    pub(super) fn shown_again(&mut self, side: Side, body: &Bytes, ct: Option<&str>) -> Bytes {
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
        let via = cx.env.local.via(target.transport, &cx.env.ids.branch());
        let mut invite = sent.clone();
        let built = invite
            .set_header(&Hdr::VIA, via)
            .and_then(|()| invite.set_header(&Hdr::CSEQ, format!("{cseq} INVITE")))
            .and_then(|()| {
                (terms_after_422(min).into_iter()).try_for_each(|(h, v)| invite.set_header(&h, v))
            });
        if let Err(e) = built {
            warn!(error = %e, "cannot build the INVITE again after 422");
            return false;
        }
        self.sign(cx, Side::B, &mut invite);
        let role = TxnRole::Invite(self.route.attempt());
        // Its peer's silence is timed anew, and a front is told of it (`fr=`), as for the
        // INVITE before it.
        let silence = (self.attempt.as_ref()).and_then(|a| a.peer.invite_timeout);
        let Some(txn) = self.start_client_timed(cx, invite.clone(), target, role, silence) else {
            return false;
        };
        info!(call_id = %self.call_id(), interval = min.as_secs(), "callee wants a longer session interval (422): INVITE again");
        self.forget_branches(&invite);
        if let Some(att) = self.attempt.as_mut() {
            att.txn = txn;
            att.invite = Some(Box::new(invite));
            att.state = super::phase::AttemptState::Calling;
            att.asked_se = Some(min);
            att.retried_422 = true;
        }
        self.arm_invite_timeout(cx.now);
        true
    }

    /// `SessionExpiry(side)`, due at `due`, fired. Fired late, the process was stalled (a VM
    /// paused, no CPU): the peer's refresh may wait unread in the socket, or have been lost
    /// meanwhile and be on its way again. The leg then gets the time a refresh is given
    /// before the end (RFC 4028 §10: the lesser of 32 s and a third of the interval) from
    /// now; a leg that is really gone ends then.
    pub(super) fn on_session_expiry(&mut self, cx: &mut Cx, side: Side, due: std::time::Instant) {
        /// A timer this late is a stall, not a schedule.
        const LATE: std::time::Duration = std::time::Duration::from_secs(2);
        if cx.now.saturating_duration_since(due) > LATE
            && self.marks.take_session_grace(side)
            && let Some(s) = self.session[side]
            && let Some(at) = cx
                .now
                .checked_add((s.interval / 3).min(std::time::Duration::from_secs(32)))
        {
            info!(call_id = %self.call_id(), ?side, "session timer fired late (the gateway was stalled): the peer's refresh is given time");
            self.timers.set(CallTimer::SessionExpiry(side), at);
            return;
        }
        self.session_expired(cx, side);
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

    /// `side`'s peer answered the offer we last sent it with `body` (a 2xx, the early answer
    /// its 2xx stands on, an ACK): on an anchored call our refreshes offer it the session
    /// agreed from now on ([`crate::sdp::agreed`]), so that the peer cannot pick another
    /// codec than the other leg sends. Not on a call that is not anchored: its `o=` is the
    /// other peer's, which the gateway cannot number on for an SDP it changed.
    pub(super) fn agree(&mut self, side: Side, body: &Bytes, ct: Option<&str>) {
        if self.media.is_none() {
            return;
        }
        let Some(seen) = self.sdp[side].as_mut() else {
            return;
        };
        let Some((offer, offer_ct, false)) = seen.sent.as_ref() else {
            return;
        };
        if let Some(cut) = crate::sdp::agreed(offer_ct.as_deref(), offer, ct, body) {
            let offer = offer.clone();
            seen.uncut.get_or_insert(offer);
            seen.sent = Some((cut, offer_ct.clone(), false));
        }
    }

    /// [`Call::agree`] with the answer `msg` carries.
    pub(super) fn agree_with<M: crate::sip::Body>(&mut self, side: Side, msg: &M) {
        let ct = super::anchor::readable_type(msg);
        self.agree(side, msg.body(), ct.as_deref());
    }

    /// Record the SDP we sent `side` (an answer or an offer), on a leg that runs session
    /// timers (`policy`: that leg's, given while an attempt is being set up), and on any
    /// leg of an anchored call: the gateway may have to offer that session again itself
    /// (`reoffer.rs`), and its SDP there is the gateway's own, which it can number on.
    pub(super) fn note_sdp_sent(
        &mut self,
        side: Side,
        body: &Bytes,
        ct: Option<&str>,
        answer: bool,
        policy: Option<SessionTimerPolicy>,
    ) {
        let policy = policy.unwrap_or_else(|| self.timer_policy(side));
        let kept = self.media.is_some() || (policy.supported() && self.may_need_sdp(side));
        if !kept || sdp_origin(ct, body).is_none() {
            return;
        }
        // A copy of its own: the message it came in is not kept alive by it.
        let body = Bytes::copy_from_slice(body);
        let seen = self.sdp[side].get_or_insert_with(Box::<SdpSeen>::default);
        seen.sent = Some((body, ct.map(str::to_string), answer));
        seen.uncut = None;
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
/// finds it (`sdp::sdp_of`, `sdp::lines`), and a digest of that SDP; None for a body that
/// carries no SDP.
fn sdp_origin(ct: Option<&str>, body: &[u8]) -> Option<String> {
    use std::hash::{Hash, Hasher};
    let sdp = crate::sdp::sdp_of(ct, body)?;
    let o = crate::sdp::lines(sdp).find(|l| l.text.starts_with(b"o="))?;
    // With a digest of the whole SDP: a peer that changes its SDP without raising the
    // version (RFC 3264 §8 says it must; some do not) is heard, not answered here with
    // the old answer (a hold lost, the relay left at the old address).
    // Its lines' text, leaving out `a=ptime` (a profile's `[sdp] ptime` rewrites them, and
    // line ends with them, on the copy relayed, which is what is noted): the same SDP
    // again digests alike whichever copy was noted.
    let mut digest = std::hash::DefaultHasher::new();
    for l in crate::sdp::lines(sdp).filter(|l| !l.text.starts_with(b"a=ptime:")) {
        l.text.hash(&mut digest);
    }
    Some(format!(
        "{} #{:016x}",
        String::from_utf8_lossy(o.text),
        digest.finish()
    ))
}

/// The session-timer terms of a request to a callee after its 422 asked for `min`: that
/// interval, and it as our minimum too (RFC 4028 §7.4).
fn terms_after_422(min: std::time::Duration) -> [(Hdr, String); 2] {
    let secs = min.as_secs().to_string();
    [(Hdr::SESSION_EXPIRES, secs.clone()), (Hdr::MIN_SE, secs)]
}
