//! The gateway's own re-INVITE (or UPDATE) in a dialog: a session refresh
//! (`session/refresh.rs`) or a re-offer to the caller (`reoffer.rs`), one at a time
//! (`Call::refresh`). An INVITE of ours that the peer answers only with provisionals is
//! cancelled 64·T1 after the last one (a UAC may CANCEL a re-INVITE, RFC 3261 §14.1, and
//! the dialog takes no other INVITE meanwhile), and given up 64·T1 after that CANCEL if
//! the peer answers nothing (§9.1); its 2xx, should it come later, is still ACKed.

use super::anchor::Exchange;
use std::time::Duration;

use tracing::{info, warn};

use super::Side;
use super::cancel::cancel_for;
use super::cx::Cx;
use super::state::{Call, Refreshing, TxnRole};
use super::timers::CallTimer;
use crate::sip::{Method, Request};
use crate::txn::TxnId;

impl Call {
    /// Sign and send our own request `req` on `side` (a session refresh, or a re-offer),
    /// remembered as the one in flight. `flags`: sent again after a refusal, a re-offer.
    pub(super) fn launch_own_invite(
        &mut self,
        cx: &mut Cx,
        side: Side,
        mut req: Request,
        asked: std::time::Duration,
        (retried, reoffer): (bool, bool),
    ) {
        let Some(target) = self.dialog(side).map(|d| d.target) else {
            return;
        };
        self.sign(cx, side, &mut req);
        if let Some(txn) = self.start_client(cx, req.clone(), target, TxnRole::Refresh(side)) {
            self.refresh = Some(Box::new(Refreshing {
                txn,
                side,
                sent: req,
                asked,
                retried,
                reoffer,
                cancelled: false,
            }));
        }
    }

    /// `side`'s peer answered an offer of ours, `offer` (body, Content-Type), in `resp`:
    /// what was agreed is kept (`Call::agree`) and the relay follows the answer, as for the
    /// answer to a relayed offer.
    pub(super) fn take_answer_to_ours(
        &mut self,
        cx: &mut Cx,
        side: Side,
        (offer, offer_ct): (&bytes::Bytes, Option<&str>),
        resp: &crate::sip::Response,
    ) {
        let ct = super::anchor::readable_type(resp);
        // An offer of another session than the leg's last (an answer carried over from the
        // other leg, `Call::carry_over`) is the leg's session once answered, not before: a
        // refused one leaves its refreshes offering the session it has.
        let sdp = |ct: Option<&str>, body| crate::sdp::sdp_of(ct, body).unwrap_or_default();
        let last = self.sdp[side].as_ref().and_then(|s| s.sent.as_ref());
        if last.is_none_or(|(b, ct, _)| {
            !crate::sdp::same_but_origin(sdp(ct.as_deref(), b), sdp(offer_ct, offer))
        }) {
            self.note_sdp_sent(side, offer, offer_ct, false, None);
        }
        // Our last answer there, offered again (a refresh): answered, it is our offer now, no
        // answer to the peer's new SDP (which may have dropped some of its codecs), and a
        // refresh of the peer's with that SDP is relayed, not answered here with it.
        if let Some(sent) = self.sdp[side].as_mut().and_then(|s| s.sent.as_mut()) {
            sent.2 = false;
        }
        self.offered_toward(side, offer, offer_ct);
        self.note_sdp_received(side, resp.body(), ct.as_deref());
        self.agree(side, resp.body(), ct.as_deref());
        // The body made for the other side is not sent: the `o=` it was numbered with is
        // not what that side has been shown (its next SDP is one version up from the last
        // it got, RFC 3264 §8).
        let kept = self.media.as_ref().map(|m| m.shown[side.other()]);
        let made = self.anchored_body(cx, side, resp.body(), ct.as_deref(), Exchange::Answer);
        if let (Some(m), Some(kept)) = (self.media.as_mut(), kept) {
            m.shown[side.other()] = kept;
        }
        // Unless the other side cannot take the media as it was shown it: then offered it.
        if let Some(made) = made {
            self.carry_over(cx, side.other(), made);
        }
    }

    /// A provisional to our own request `id`: an INVITE of ours waits for its final answer
    /// 64·T1 from now. (It shares the relayed INVITE's timer: the dialog has one INVITE at a
    /// time, ours or a relayed one.)
    pub(super) fn own_invite_heard(&mut self, cx: &mut Cx, id: TxnId) {
        if self
            .refresh
            .as_ref()
            .is_some_and(|r| r.txn == id && !r.cancelled && r.sent.method() == Method::Invite)
        {
            self.timers
                .set(CallTimer::RelayedInvite, cx.now + own_invite_wait(cx));
        }
    }

    /// Our own INVITE ended (a final answer, or none at all): its timer goes.
    pub(super) fn own_invite_done(&mut self) {
        if self.relayed_invite().is_none() {
            self.timers.clear(CallTimer::RelayedInvite);
        }
    }

    /// The timer of our own INVITE: cancel it; past 64·T1 after the CANCEL, give it up.
    pub(super) fn on_own_invite_timer(&mut self, cx: &mut Cx) {
        let Some(r) = (self.refresh.as_mut()).filter(|r| r.sent.method() == Method::Invite) else {
            return;
        };
        let side = r.side;
        if !r.cancelled {
            r.cancelled = true;
            let cancel = cancel_for(&r.sent, &[]);
            info!(call_id = %self.call_id(), ?side, "our re-INVITE got no final answer in time: cancelled");
            return self.cancel_in_dialog(cx, side, cancel);
        }
        let Some(r) = self.refresh.take() else {
            return;
        };
        warn!(call_id = %self.call_id(), ?side, "the peer never answered the CANCEL of our re-INVITE: given up");
        self.abandon_txn(cx, r.txn);
        self.remember_given_up(side, &r.sent, true);
        if !r.reoffer && self.session[side].is_some() {
            // A refresh is tried again; the leg expires if none ever works.
            self.timers.set(
                CallTimer::SessionRefresh(side),
                cx.now + own_invite_wait(cx),
            );
        }
    }
}

fn own_invite_wait(cx: &Cx) -> Duration {
    cx.env.timers.t1 * 64
}
