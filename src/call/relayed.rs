//! The answers to requests relayed leg to leg, and relayed INVITEs that do not end by
//! themselves: cancelled by their origin, or left at a provisional by the far leg.

use std::time::Duration;

use tracing::{debug, warn};

use super::Side;
use super::cancel::cancel_for;
use super::challenge::is_challenge;
use super::cx::Cx;
use super::state::{Call, Relayed, TxnRole};
use super::timers::CallTimer;
use crate::interop::egress::relayed_response;
use crate::sip::{Hdr, Method, Request, Response};
use crate::txn::TxnId;

/// Timer C of RFC 3261 §16.6 step 11 ("greater than 3 minutes"), for a relayed INVITE whose
/// far leg answers only with provisionals (a video upgrade the callee must accept): each
/// provisional restarts it; when it fires the INVITE is cancelled and its origin gets 408.
const TIMER_C: Duration = Duration::from_secs(181);

impl Call {
    /// The far leg answered a relayed request: answer the origin the same way.
    pub(super) fn on_relayed_response(&mut self, cx: &mut Cx, id: TxnId, resp: Response) {
        let status = resp.status();
        let final_ = !resp.is_provisional();
        // Any provisional, 100 too, lets an INVITE be cancelled; one given up goes no further.
        if !final_ && (self.relayed_invite_heard(cx, id) || status == 100) {
            return;
        }
        let rel = if final_ {
            self.close_txn(id);
            self.take_relayed(id)
        } else {
            self.relayed
                .iter()
                .find(|(t, _)| *t == id)
                .map(|(_, r)| r.clone())
        };
        let Some(rel) = rel else {
            // A 2xx to a re-INVITE again (our ACK was lost): the same ACK again.
            self.ack_2xx_again(cx, &resp);
            return;
        };
        let far = rel.origin.other();
        if final_ && rel.sent.method() == Method::Invite {
            self.timers.clear(CallTimer::RelayedInvite);
        }
        if rel.given_up {
            return self.given_up_answered(cx, far, &rel, &resp);
        }
        if is_challenge(&resp) {
            // The far peer wants credentials: the same request again, once, with them.
            match self.answer_challenge(cx, far, &rel.sent, &resp, TxnRole::Relay) {
                Ok((txn, sent)) => {
                    let again = Relayed {
                        sent,
                        heard: false,
                        ..rel
                    };
                    return self.relayed.push((txn, again));
                }
                Err(why) => {
                    // Not the challenge (its realm is not the origin's business): a refusal
                    // that leaves the session as it was (RFC 3261 §14.1).
                    self.challenge_failed(status, &why);
                    cx.respond(rel.origin_txn, &rel.origin_req, 403, "Forbidden", &[]);
                    return;
                }
            }
        }
        // An UPDATE we carried as a re-INVITE: its 2xx is ACKed here (the UPDATE's sender
        // sends no ACK).
        if final_
            && resp.is_success()
            && rel.method == Method::Update
            && rel.sent.method() == Method::Invite
        {
            self.send_ack(cx, far, resp.cseq().map_or(0, |c| c.0), None);
        }
        // Target refresh (RFC 3261 §12.2.1.2): a 2xx to re-INVITE/UPDATE may move the peer.
        if final_
            && resp.is_success()
            && matches!(rel.method, Method::Invite | Method::Update)
            && let Some(leg) = self.dialog_mut(far)
            && let Some(c) = resp.contact_uri()
        {
            leg.remote_target = c.into();
        }
        let refreshes =
            final_ && resp.is_success() && matches!(rel.method, Method::Invite | Method::Update);
        if refreshes {
            let had_timer = self.session[far].is_some();
            self.adopt_session(cx, far, &resp);
            // A timer this exchange started needs the offer we sent that leg (noted before
            // the leg had one).
            if !had_timer && self.session[far].is_some() && !rel.sent.body().is_empty() {
                let ct = rel.sent.header(&Hdr::CONTENT_TYPE);
                self.note_sdp_sent(far, rel.sent.body(), ct.as_deref(), false, None);
            }
        }
        let Some(tag) = self.dialog(rel.origin).map(|l| l.local_tag.clone()) else {
            return;
        };
        let Some(origin_peer) = self.profile(rel.origin).cloned() else {
            return;
        };
        match relayed_response(&rel.origin_req, &resp, &tag, &origin_peer, &cx.env.local) {
            Ok(mut out) => {
                self.carry_identity(&cx.env.local, rel.origin, &mut out);
                // Its timer first: a leg that gets one keeps the SDP it is sent now.
                if refreshes {
                    self.announce_session(cx, rel.origin, &rel.origin_req, &mut out);
                }
                self.anchor_answer(cx, far, &mut out);
                cx.send_response(rel.origin_txn, out.clone());
                if rel.method == Method::Invite && resp.is_success() {
                    let cseq = rel.origin_req.cseq().map_or(0, |c| c.0);
                    let other_cseq = resp.cseq().map_or(0, |c| c.0);
                    self.await_ack(
                        cx,
                        rel.origin,
                        out,
                        (cseq, Some(other_cseq)),
                        rel.origin_txn,
                    );
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot relay {status}");
                // The origin still gets a final answer (its transaction would wait for
                // ever), and a 2xx to our INVITE its ACK.
                if final_ {
                    // (An UPDATE carried as a re-INVITE was ACKed above.)
                    if resp.is_success()
                        && rel.method == Method::Invite
                        && rel.sent.method() == Method::Invite
                    {
                        self.send_ack(cx, far, resp.cseq().map_or(0, |c| c.0), None);
                    }
                    cx.respond(rel.origin_txn, &rel.origin_req, 502, "Bad Gateway", &[]);
                }
            }
        }
    }

    /// A relayed request got no answer (timeout or transport error).
    pub(super) fn on_relay_failed(&mut self, cx: &mut Cx, id: TxnId) {
        self.close_txn(id);
        let Some(rel) = self.take_relayed(id) else {
            return;
        };
        if rel.sent.method() == Method::Invite {
            self.timers.clear(CallTimer::RelayedInvite);
        }
        if !rel.given_up {
            cx.respond(rel.origin_txn, &rel.origin_req, 408, "Request Timeout", &[]);
        }
    }

    /// A provisional response to relayed request `id`. For an INVITE it (re)arms Timer C, or,
    /// when the origin gave it up before anything came back, lets our CANCEL go now. True when
    /// the origin has given it up (the response goes no further).
    fn relayed_invite_heard(&mut self, cx: &mut Cx, id: TxnId) -> bool {
        let Some(i) = self
            .relayed
            .iter()
            .position(|(t, r)| *t == id && r.sent.method() == Method::Invite)
        else {
            return false;
        };
        let rel = &mut self.relayed[i].1;
        let first = !rel.heard;
        rel.heard = true;
        if !rel.given_up {
            self.timers.set(CallTimer::RelayedInvite, cx.now + TIMER_C);
            return false;
        }
        if first {
            self.cancel_relayed(cx, i);
        }
        true
    }

    /// CANCEL from the origin of a relayed INVITE (its server transaction `invite`): the 200
    /// for the CANCEL, 487 for the INVITE, and our CANCEL on the far leg (RFC 3261 §9.2).
    pub(super) fn on_cancel_relayed(
        &mut self,
        cx: &mut Cx,
        id: TxnId,
        invite: TxnId,
        req: &Request,
    ) {
        cx.respond(id, req, 200, "OK", &[]);
        let Some(i) = self
            .relayed
            .iter()
            .position(|(_, r)| r.origin_txn == invite && !r.given_up)
        else {
            // Answered already: the CANCEL changes nothing.
            return;
        };
        debug!(call_id = %self.call_id(), "relayed re-INVITE cancelled by its origin");
        self.give_up_relayed(cx, i, 487, "Request Terminated");
    }

    /// The relayed INVITE's timer: Timer C (only 1xx for too long) gives it up; after that,
    /// no final answer 64·T1 after our CANCEL ends it (RFC 3261 §9.1).
    pub(super) fn on_relayed_invite_timer(&mut self, cx: &mut Cx) {
        let Some(i) = self
            .relayed
            .iter()
            .position(|(_, r)| r.sent.method() == Method::Invite)
        else {
            return;
        };
        if !self.relayed[i].1.given_up {
            debug!(call_id = %self.call_id(), "relayed re-INVITE got no final answer in time (Timer C)");
            self.give_up_relayed(cx, i, 408, "Request Timeout");
            return;
        }
        warn!(call_id = %self.call_id(), "far leg never answered our CANCEL of a re-INVITE; giving it up");
        let (txn, _) = self.relayed.swap_remove(i);
        self.close_txn(txn);
        cx.env.owners.remove(&txn);
        cx.env.txn.abandon(txn, cx.now, &mut cx.env.txn_out);
    }

    /// Answer the origin of relayed INVITE `i` now, and cancel it on the far leg (at once if a
    /// provisional came back, else when one does). Another re-INVITE waits until the far leg
    /// answers, or 64·T1 (one INVITE at a time within a dialog, RFC 3261 §14.1).
    fn give_up_relayed(&mut self, cx: &mut Cx, i: usize, status: u16, reason: &str) {
        let rel = &mut self.relayed[i].1;
        rel.given_up = true;
        let heard = rel.heard;
        cx.respond(rel.origin_txn, &rel.origin_req, status, reason, &[]);
        if heard {
            self.cancel_relayed(cx, i);
        } else {
            self.timers
                .set(CallTimer::RelayedInvite, cx.now + cx.env.timers.t1 * 64);
        }
    }

    /// CANCEL relayed INVITE `i` where it went; it has 64·T1 to answer.
    fn cancel_relayed(&mut self, cx: &mut Cx, i: usize) {
        let rel = &self.relayed[i].1;
        let far = rel.origin.other();
        let built = cancel_for(&rel.sent);
        match (built, self.dialog(far).map(|d| d.target)) {
            (Ok(c), Some(target)) => cx.send_unowned(c, target),
            (Err(e), _) => warn!(error = %e, "cannot build CANCEL"),
            (_, None) => {}
        }
        self.timers
            .set(CallTimer::RelayedInvite, cx.now + cx.env.timers.t1 * 64);
    }

    /// The far leg's final answer to a relayed INVITE whose origin was answered already: a
    /// 2xx still needs its ACK, and it moved that leg's session (the origin kept its own).
    fn given_up_answered(&mut self, cx: &mut Cx, far: Side, rel: &Relayed, resp: &Response) {
        if !resp.is_success() {
            return;
        }
        self.send_ack(cx, far, resp.cseq().map_or(0, |c| c.0), None);
        if let Some(leg) = self.dialog_mut(far)
            && let Some(c) = resp.contact_uri()
        {
            leg.remote_target = c.into();
        }
        warn!(
            call_id = %self.call_id(),
            method = %rel.method,
            "far leg accepted a re-INVITE after its origin was answered; the two legs may now disagree on the session"
        );
    }
}
