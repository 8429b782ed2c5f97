//! The gateway's own session refreshes (RFC 4028 §7.4, §10), on a leg where it is the
//! refresher: sent when the leg's timer says, as UPDATE when the peer takes one (it carries
//! no offer) or as a re-INVITE offering our last SDP again, and what their answers do.

use std::time::Duration;

use tracing::{debug, info, warn};

use crate::call::Side;
use crate::call::challenge::is_challenge;
use crate::call::cx::Cx;
use crate::call::phase::Phase;
use crate::call::state::{Call, Refreshing, TxnRole};
use crate::call::timers::CallTimer;
use crate::sip::session::{OPTION_TAG, Session};
use crate::sip::{Hdr, Method, Response};
use crate::txn::TxnId;

/// A refresh that could not be sent now (another INVITE in the dialog, a refusal that may
/// pass) is tried again after this long; the expiry deadline still runs.
const REFRESH_RETRY: Duration = Duration::from_secs(4);

/// Why a refresh is sent again at once.
#[derive(Debug, Clone, Copy)]
enum Retry {
    /// The peer's 422 asked for at least this interval.
    After422(Duration),
    /// The peer took no UPDATE: the same refresh as a re-INVITE.
    ByInvite,
}

/// The longest a 5xx's Retry-After holds back the next try of a refresh UPDATE: the session
/// must still be refreshed (by re-INVITE if need be) before it expires.
const MAX_REFRESH_RETRY_AFTER: Duration = Duration::from_secs(16);

/// How a leg's session refreshes of ours go.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum RefreshBy {
    /// As UPDATE when the peer takes one.
    #[default]
    Update,
    /// The last refresh UPDATE got a 5xx (a peer busy for a moment): tried again once, and
    /// sent as a re-INVITE if that one fails too.
    UpdateFailedOnce,
    /// As re-INVITE: the peer refused a refresh UPDATE.
    Invite,
}

/// How a final `status` to a refresh UPDATE (not a challenge, 408 or 481, or a 422 whose
/// Min-SE can be asked for) bears on the next: `None` when it is no refusal of UPDATE as a
/// refresh (glare), `Some(true)` when UPDATE is refused for good (a 3xx, a 4xx, 501, a 6xx:
/// some peers take UPDATE only with SDP, and a retried UPDATE would be refused until the
/// session expired), `Some(false)` for a 5xx, which may pass on the next try.
fn update_refused(status: u16) -> Option<bool> {
    match status {
        491 => None,
        500..=599 if status != 501 => Some(false),
        _ => Some(true),
    }
}

impl Call {
    /// `SessionRefresh(side)` fired: the gateway refreshes the leg.
    pub(in crate::call) fn on_session_refresh(&mut self, cx: &mut Cx, side: Side) {
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
        // Nor may an INVITE go before the ACK of the leg's last 2xx (RFC 3261 §14.1).
        let invite_busy = !self.refreshes_by_update(side) && self.no_invite_to(side);
        // Nor may it overtake a request relayed to the leg that nothing was heard of yet: if
        // that one's first send was lost, the refresh's higher CSeq would get there first
        // and the request would be refused as out of order (RFC 3261 §12.2.2).
        let unheard = (self.relayed.iter()).any(|(_, r)| r.origin == side.other() && !r.heard);
        let busy = self.refresh.is_some()
            || invite_busy
            || unheard
            || self.pending_2xx[side].is_some()
            || !matches!(self.phase, Phase::Confirmed { .. });
        if busy {
            self.timers
                .set(CallTimer::SessionRefresh(side), cx.now + REFRESH_RETRY);
            return;
        }
        self.send_refresh(cx, side, s.interval, None);
    }

    /// Whether no re-INVITE of ours may go to `side` now: another INVITE is under way in the
    /// call, an offer to or from it waits for its answer (RFC 3311 §5.1), or its last 2xx
    /// waits for an ACK (RFC 3261 §14.1).
    fn no_invite_to(&self, side: Side) -> bool {
        self.reinvite_in_progress()
            || self.unanswered_offer(side).is_some()
            || self.invite_toward(side)
            || self.pending_2xx[side].is_some()
    }

    /// Whether `side`'s refreshes go as UPDATE: its peer said it takes one, and no refresh
    /// by UPDATE failed there.
    fn refreshes_by_update(&self, side: Side) -> bool {
        self.peer_lists(side, &Method::Update) && self.refresh_by[side] != RefreshBy::Invite
    }

    /// Send a session refresh on `side` asking for `interval`, the gateway refreshing: an
    /// UPDATE when the peer said it takes one, else a re-INVITE offering our last SDP again.
    /// `retry`: it is sent again after a refusal, after a 422 with the peer's minimum, which
    /// it then carries as its `Min-SE` (RFC 4028 §7.4).
    fn send_refresh(&mut self, cx: &mut Cx, side: Side, interval: Duration, retry: Option<Retry>) {
        let retried = retry.is_some();
        // The leg's own floor: an interval its peer's 2xx set below `min_se_s` is asked for
        // with a Min-SE that allows it (RFC 4028 §7.4: never less than the Min-SE stated).
        let policy = self.timer_policy(side).agreed(self.session[side]);
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
        // The SDP alone: a SIP-I call's IAM (or ANM) beside it went once, at the call's
        // start, and a second would be an ISUP message out of place mid-call.
        let sdp = sdp
            .filter(|_| method == Method::Invite)
            .map(|(body, ct, answer)| {
                let (body, ct) = crate::call::reoffer::sdp_alone(body, ct);
                (self.shown_again(side, &body, ct.as_deref()), ct, answer)
            });
        let Some(leg) = self.dialog_mut(side) else {
            return;
        };
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
                if let Some(Retry::After422(min)) = retry {
                    r.set_header(&Hdr::MIN_SE, min.as_secs().to_string())?;
                }
                r.insert_header_before_length(&Hdr::SUPPORTED, OPTION_TAG)?;
                if method == Method::Invite
                    && let Some((body, ct, _)) = sdp
                {
                    r.set_body(body, ct.as_deref())?;
                }
                Ok(r)
            });
        match built {
            Ok(req) => {
                debug!(call_id = %self.call_id(), ?side, %method, "session refresh");
                self.launch_own_invite(cx, side, req, interval, (retried, false));
            }
            Err(e) => warn!(error = %e, "cannot build the session refresh"),
        }
    }

    /// The answer to our session refresh `id`.
    pub(in crate::call) fn on_refresh_response(&mut self, cx: &mut Cx, id: TxnId, resp: Response) {
        if resp.is_provisional() {
            return self.own_invite_heard(cx, id);
        }
        self.close_txn(id);
        let Some(r) = self.refresh.take_if(|r| r.txn == id) else {
            self.ack_2xx_again(cx, &resp);
            return;
        };
        self.own_invite_done();
        let side = r.side;
        let status = resp.status();
        if self.phase.is_ending() {
            if resp.is_success() && r.sent.method() == Method::Invite {
                self.send_ack(cx, side, resp.seq(), None);
            }
            return;
        }
        if resp.is_success() {
            self.refresh_refusals[side] = 0;
            // A refresh's answer starts anew what may be carried over to the other leg.
            if !r.reoffer {
                self.carried_none();
            }
            // A 5xx before it was a moment's: the next 5xx is tried again too.
            if self.refresh_by[side] == RefreshBy::UpdateFailedOnce {
                self.refresh_by[side] = RefreshBy::Update;
            }
            // The 2xx's Contact is the leg's target from now on (RFC 3261 §12.2.1.2), its
            // ACK's Request-URI included (§13.2.2.4).
            if let Some(leg) = self.dialog_mut(side)
                && let Some(c) = resp.contact_uri()
            {
                leg.remote_target = c.into();
            }
            if r.sent.method() == Method::Invite {
                self.send_ack(cx, side, resp.seq(), None);
            }
            // The peer's answer to the session we offered again may move its media (RFC
            // 3264 §8): the relay follows it, as it would the answer to a relayed offer. An
            // answer whose `o=` is the one it sent last changed nothing: the relay is not
            // told (each update counts as media activity, and a refresh is none).
            let ct = crate::call::anchor::readable_type(&resp);
            let origin = super::sdp_origin(ct.as_deref(), resp.body());
            let known = self.sdp[side]
                .as_ref()
                .and_then(|s| s.received_origin.as_ref());
            if crate::call::anchor::carries_sdp(&r.sent)
                && crate::call::anchor::carries_sdp(&resp)
                && (r.reoffer || origin.is_none() || origin.as_ref() != known)
            {
                let sent_ct = crate::call::anchor::readable_type(&r.sent);
                self.take_answer_to_ours(cx, side, (r.sent.body(), sent_ct.as_deref()), &resp);
            }
            if r.reoffer {
                // It restated the leg's timer, or asked for none: the peer's 2xx says which
                // the leg has now (RFC 4028 §9), as for a relayed re-INVITE.
                if self.timer_policy(side).supported() {
                    self.adopt_session(cx, side, &resp, Some(&r.sent));
                }
                return;
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
                    // A refusal like any other: a peer that challenges every refresh backs
                    // off as one that refuses them.
                    if !r.reoffer {
                        self.refresh_later(cx, side, REFRESH_RETRY);
                    }
                }
            }
            return;
        }
        // RFC 4028 §10: a refresh that finds no dialog (481) or no peer (408) ends the call;
        // so does a re-offer (RFC 3261 §12.2.1.2).
        if matches!(status, 408 | 481) {
            return self.own_invite_lost(cx, side, r.reoffer, status);
        }
        if r.reoffer {
            // Refused: the session stays as the caller has it, and what it is sent next is a
            // new version. Glare (491) is no refusal: the offer is made again later.
            self.shown_refused(side);
            self.carried_none();
            if status == 491 {
                return self.reoffer_after_glare(cx, side, &r.sent);
            }
            info!(call_id = %self.call_id(), ?side, status, "our offer of the session refused");
            return;
        }
        // The session cut to the peer's own answer refused: its next refresh offers the
        // offer as it was before the cut, at a version past the refused one.
        if matches!(status, 400 | 415 | 488 | 606)
            && r.sent.method() == Method::Invite
            && crate::call::anchor::carries_sdp(&r.sent)
            && self.offer_uncut_again(side)
        {
            info!(call_id = %self.call_id(), ?side, status, "the agreed session refused: the next refresh offers it uncut");
        }
        if !r.retried {
            let policy = self.timer_policy(side);
            if status == 422
                && let Some(min) = policy.after_422(&resp, Some(r.asked))
            {
                return self.send_refresh(cx, side, min, Some(Retry::After422(min)));
            }
            // A refused refresh UPDATE: a re-INVITE from now on, after a second 5xx in a row
            // (the first is tried again as an UPDATE, after its Retry-After).
            let refused = update_refused(status).filter(|_| r.sent.method() == Method::Update);
            if refused == Some(false) && self.refresh_by[side] == RefreshBy::Update {
                self.refresh_by[side] = RefreshBy::UpdateFailedOnce;
                info!(call_id = %self.call_id(), ?side, status, "session refresh UPDATE refused for now; trying again");
                let wait = resp.retry_after_secs().map_or(REFRESH_RETRY, |s| {
                    Duration::from_secs(s).clamp(REFRESH_RETRY, MAX_REFRESH_RETRY_AFTER)
                });
                self.timers
                    .set(CallTimer::SessionRefresh(side), cx.now + wait);
                return;
            }
            if refused.is_some() {
                self.refresh_by[side] = RefreshBy::Invite;
                if matches!(status, 405 | 501)
                    && let Some(leg) = self.dialog_mut(side)
                {
                    leg.peer_refuses("UPDATE");
                }
                if self.sdp[side].as_ref().is_some_and(|s| s.sent.is_some()) {
                    // One INVITE at a time within a dialog (RFC 3261 §14.1): while another is
                    // under way (or its 2xx waits for our ACK) the re-INVITE waits for the
                    // refresh timer's next try.
                    if self.no_invite_to(side) {
                        self.timers
                            .set(CallTimer::SessionRefresh(side), cx.now + REFRESH_RETRY);
                        return;
                    }
                    return self.send_refresh(cx, side, r.asked, Some(Retry::ByInvite));
                }
            }
        }
        // Anything else (491, a re-INVITE refused): try again shortly; the leg expires if it
        // never works.
        info!(call_id = %self.call_id(), ?side, status, "session refresh refused; trying again");
        let wait = if status == 491 {
            self.glare_wait(cx, side)
        } else {
            REFRESH_RETRY
        };
        self.refresh_later(cx, side, wait);
    }

    /// Try the refresh of `side` again after `wait`, and twice as long after each refusal in
    /// a row.
    fn refresh_later(&mut self, cx: &mut Cx, side: Side, wait: Duration) {
        // Twice as long after each refusal in a row, up to an eighth of the interval (the
        // leg still expires in time if none works): a peer that refuses every refresh
        // (491 at once, a 5xx) would otherwise draw one every few seconds until then,
        // hundreds per call.
        let refusals = self.refresh_refusals[side];
        self.refresh_refusals[side] = refusals.saturating_add(1);
        let most = self.session[side].map_or(wait, |s| (s.interval / 8).max(wait));
        let wait = (wait * 2u32.pow(u32::from(refusals.min(10)))).min(most);
        self.timers
            .set(CallTimer::SessionRefresh(side), cx.now + wait);
    }

    /// Offer `side` our offer as it was before its cut (`Call::agree`) from now on; false
    /// when it was never cut.
    fn offer_uncut_again(&mut self, side: Side) -> bool {
        let Some(seen) = self.sdp[side].as_mut() else {
            return false;
        };
        let (Some(uncut), Some(sent)) = (seen.uncut.take(), seen.sent.as_mut()) else {
            return false;
        };
        sent.0 = uncut;
        self.shown_refused(side);
        true
    }

    /// How long to wait after glare (a 491) on `side` (RFC 3261 §14.1): the owner of the
    /// dialog's Call-ID 2.1–4 s, the other party 0–2 s, at random in 10 ms steps, so that the
    /// other side's retry goes first and the two do not cross again. The gateway made the
    /// Call-ID of the callee's leg, and of both legs of a call-back.
    pub(in crate::call) fn glare_wait(&self, cx: &mut Cx, side: Side) -> Duration {
        use rand::Rng;
        let owner = side == Side::B || self.third_party().is_some();
        let steps: u64 = if owner {
            cx.env.ids.rng().random_range(210..=400)
        } else {
            cx.env.ids.rng().random_range(0..=200)
        };
        Duration::from_millis(steps * 10)
    }

    /// Our session refresh got no answer at all (`timeout`): the peer is gone. One that could
    /// not be sent (a transport error: a TCP connection backed up, refused or closed) is a
    /// 503 (RFC 3261 §8.1.3.1), which ends no dialog (RFC 5057 §5.1): a refresh is tried
    /// again later (the leg still expires if none gets through, RFC 4028 §10), a re-offer
    /// is refused. Before, either released a healthy call at once (`session_expired`).
    pub(in crate::call) fn on_refresh_failed(&mut self, cx: &mut Cx, id: TxnId, timeout: bool) {
        self.close_txn(id);
        let Some(r) = self.refresh.take_if(|r| r.txn == id) else {
            return;
        };
        self.own_invite_done();
        if self.phase.is_ending() {
            return;
        }
        if timeout {
            return self.own_invite_lost(cx, r.side, r.reoffer, 408);
        }
        info!(call_id = %self.call_id(), side = ?r.side, "session refresh could not be sent; trying again");
        if r.reoffer {
            self.shown_refused(r.side);
        } else {
            self.refresh_later(cx, r.side, REFRESH_RETRY);
        }
    }

    /// Our own request on `side` found no dialog (481) or no peer (408, or no answer): a
    /// refresh's session expired, a re-offer's leg is gone.
    fn own_invite_lost(&mut self, cx: &mut Cx, side: Side, reoffer: bool, status: u16) {
        use crate::interop::causes::Q850Cause;
        if reoffer {
            let cause = if status == 481 {
                Q850Cause::TEMPORARY_FAILURE
            } else {
                Q850Cause::TIMER_EXPIRY
            };
            self.far_leg_lost(cx, side, cause);
        } else {
            self.session_expired(cx, side);
        }
    }
}
