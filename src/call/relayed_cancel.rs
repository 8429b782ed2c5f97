//! Relayed INVITEs that do not end by themselves: cancelled by their origin, or left at a
//! provisional by the far leg. Either way the far leg gets a CANCEL and its final answer
//! goes to the origin, as through a proxy (RFC 3261 §16.10, §16.8): the two legs never
//! disagree on whether the session changed. Only when the far leg does not answer the
//! CANCEL either does the gateway end the origin's request itself, with 487 (a 408 inside a
//! dialog tells the UA to end the whole dialog, RFC 3261 §12.2.1.2).

use std::time::Duration;

use tracing::{debug, warn};

use super::Side;
use super::cancel::cancel_for;
use super::cx::Cx;
use super::state::{Call, GivenUpInvite, Relayed};
use super::timers::CallTimer;
use crate::sip::{Method, Request};
use crate::txn::TxnId;

/// Timer C of RFC 3261 §16.6 step 11 ("greater than 3 minutes"), for a relayed INVITE whose
/// far leg answers only with provisionals (a video upgrade the callee must accept): each
/// provisional restarts it; when it fires the INVITE is cancelled on the far leg.
const TIMER_C: Duration = Duration::from_secs(181);

impl Call {
    /// A provisional response to relayed request `id`: for an INVITE, Timer C starts again,
    /// or, when a CANCEL waited for this first provisional (RFC 3261 §9.1), it goes now.
    pub(super) fn relayed_invite_heard(&mut self, cx: &mut Cx, id: TxnId) {
        let Some(i) = self.relayed_invite().filter(|i| self.relayed[*i].0 == id) else {
            return;
        };
        let rel = &mut self.relayed[i].1;
        let first = !rel.heard;
        rel.heard = true;
        if !rel.cancelled {
            // An UPDATE carried as a re-INVITE: its origin gives the UPDATE up 64·T1 after
            // sending it (Timer F), whatever our INVITE hears; cancelled after 16·T1 of
            // ringing, it is answered (as the far leg ends it) well before.
            if rel.method == Method::Update {
                if first {
                    let at = cx.now + cx.env.timers.t1 * 16;
                    self.timers.set(CallTimer::RelayedInvite, at);
                }
            } else {
                self.timers.set(CallTimer::RelayedInvite, cx.now + TIMER_C);
            }
        } else if first {
            self.cancel_relayed(cx, i);
        }
    }

    /// CANCEL from `side`, the origin of a relayed INVITE (its server transaction
    /// `invite`): 200 for the CANCEL, and the CANCEL goes on to the far leg, whose final
    /// answer (487, or a 2xx that crossed it) the origin then gets.
    pub(super) fn on_cancel_relayed(
        &mut self,
        cx: &mut Cx,
        side: Side,
        id: TxnId,
        invite: TxnId,
        req: &Request,
    ) {
        cx.respond(id, req, 200, "OK", &[]);
        let Some(i) = self.relayed_invite().filter(|i| {
            let r = &self.relayed[*i].1;
            r.origin == side && r.origin_txn == invite
        }) else {
            // Answered already: the CANCEL changes nothing.
            return;
        };
        if self.relayed[i].1.cancelled {
            return;
        }
        debug!(call_id = %self.call_id(), "relayed re-INVITE cancelled by its origin");
        self.start_cancel(cx, i);
    }

    /// Give relayed request `i` up: taken out, its transaction abandoned (no more
    /// retransmissions; a late answer finds none).
    pub(super) fn give_up_relayed(&mut self, cx: &mut Cx, i: usize) -> Relayed {
        let (txn, rel) = self.relayed.swap_remove(i);
        self.abandon_txn(cx, txn);
        rel
    }

    /// Our client transaction `txn` is given up: no more retransmissions, and a late
    /// answer finds none.
    pub(super) fn abandon_txn(&mut self, cx: &mut Cx, txn: TxnId) {
        self.close_txn(txn);
        cx.env.owners.remove(&txn);
        cx.env.txn.abandon(txn, cx.now, &mut cx.env.txn_out);
    }

    /// The relayed INVITE's timer: Timer C (only 1xx for too long) cancels it; after that,
    /// no final answer 64·T1 after the CANCEL ends it (RFC 3261 §9.1).
    pub(super) fn on_relayed_invite_timer(&mut self, cx: &mut Cx) {
        let Some(i) = self.relayed_invite() else {
            return self.on_own_invite_timer(cx);
        };
        if !self.relayed[i].1.cancelled {
            debug!(call_id = %self.call_id(), "relayed re-INVITE got no final answer in time (Timer C)");
            self.start_cancel(cx, i);
            return;
        }
        warn!(call_id = %self.call_id(), "far leg never answered the CANCEL of a re-INVITE; giving it up");
        let rel = self.give_up_relayed(cx, i);
        rel.terminate(cx);
        // The origin's session stands as it was; so does what the gateway keeps of it.
        self.offer_not_taken(cx, &rel);
        self.remember_given_up(rel.origin.other(), &rel.sent, false);
    }

    /// Our INVITE `sent` on `side` (`own`: the gateway's, not relayed) was given up: should
    /// its 2xx still come, it gets an ACK built from the dialog (`ack_again_on`).
    pub(super) fn remember_given_up(&mut self, side: Side, sent: &Request, own: bool) {
        if let Some(cseq) = sent.cseq().map(|c| c.0) {
            self.given_up[side]
                .get_or_insert_with(Box::default)
                .remember(GivenUpInvite {
                    cseq,
                    offerless: !super::anchor::carries_sdp(sent),
                    answered: false,
                    own,
                });
        }
    }

    /// Cancel relayed INVITE `i` on the far leg: at once if a provisional came back, else
    /// when one does. The dialog takes no other INVITE until the far leg answers, or 64·T1
    /// (one INVITE at a time within a dialog, RFC 3261 §14.1).
    fn start_cancel(&mut self, cx: &mut Cx, i: usize) {
        let rel = &mut self.relayed[i].1;
        rel.cancelled = true;
        if rel.heard {
            self.cancel_relayed(cx, i);
        } else {
            self.timers
                .set(CallTimer::RelayedInvite, cx.now + cx.env.timers.t1 * 64);
        }
    }

    /// CANCEL relayed INVITE `i` where it went.
    fn cancel_relayed(&mut self, cx: &mut Cx, i: usize) {
        let rel = &self.relayed[i].1;
        let (far, cancel) = (rel.origin.other(), cancel_for(&rel.sent, &[]));
        self.cancel_in_dialog(cx, far, cancel);
    }

    /// Send `cancel` (of an INVITE of ours, relayed or our own) on `side`; the INVITE has
    /// 64·T1 to answer (its timer, `CallTimer::RelayedInvite`).
    pub(super) fn cancel_in_dialog(
        &mut self,
        cx: &mut Cx,
        side: Side,
        cancel: Result<Request, crate::sip::SipError>,
    ) {
        match (cancel, self.dialog(side).map(|d| d.target)) {
            (Ok(c), Some(target)) => cx.send_unowned(c, target),
            (Err(e), _) => warn!(error = %e, "cannot build CANCEL"),
            (_, None) => {}
        }
        self.timers
            .set(CallTimer::RelayedInvite, cx.now + cx.env.timers.t1 * 64);
    }
}
