//! A callee that says nothing at all: its profile's `[sip] invite_timeout_s` gives its
//! INVITE up, before Timer B (32 s), for the route's next peer. A peer that is up answers
//! an INVITE with 100 Trying within a fraction of a second (RFC 3261 §17.2.1: 200 ms); one
//! that says nothing for seconds is down or unreachable, and the caller waits the whole of
//! Timer B for the next peer otherwise, or hears the ring timeout first.

use super::cancel::cancel_for;
use super::cx::Cx;
use super::state::Call;
use super::timers::CallTimer;
use crate::sip::{Request, Response, Target};
use crate::txn::TxnId;

/// INVITEs given up unheard a call remembers.
const MAX_ABANDONED: usize = 4;

/// The INVITEs a call gave up unheard (boxed in the call: most calls have none).
#[derive(Debug, Default)]
pub struct Abandons(Vec<Abandoned>);

/// An INVITE given up unheard. RFC 3261 §9.1 allows no CANCEL before a provisional: if the
/// peer speaks after all, its provisional gets the CANCEL (a 2xx gets ACK and BYE as any
/// answer to an attempt given up).
#[derive(Debug)]
pub struct Abandoned {
    txn: TxnId,
    invite: Request,
    to: Target,
    cancelled: bool,
}

impl Call {
    /// An INVITE of the current attempt was sent (the first, or again with credentials or
    /// after a 422): its peer's `[sip] invite_timeout_s` runs from now.
    pub(super) fn arm_invite_timeout(&mut self, now: std::time::Instant) {
        match self.attempt.as_ref().and_then(|a| a.peer.invite_timeout) {
            Some(t) => self.timers.set(CallTimer::InviteTimeout, now + t),
            None => self.timers.clear(CallTimer::InviteTimeout),
        }
    }

    /// `[sip] invite_timeout_s` passed for the current attempt with no response: it is
    /// given up as if Timer B had fired (event `peer_timeout`), and the route goes on.
    pub(super) fn on_invite_timeout(&mut self, cx: &mut Cx) {
        let Some(att) = self.attempt.as_mut() else {
            return;
        };
        if !matches!(att.state, super::phase::AttemptState::Calling) || !self.phase.is_routing() {
            return;
        }
        let txn = att.txn;
        if let Some(invite) = att.invite.take() {
            // As many as a route's peers may all be silent at once (a shared upstream
            // outage); past a few, the oldest is let go (it rings on its own timer).
            let list = &mut self.abandoned.get_or_insert_with(Box::default).0;
            if list.len() >= MAX_ABANDONED {
                list.remove(0);
            }
            list.push(Abandoned {
                txn,
                invite: *invite,
                to: att.peer.address,
                cancelled: false,
            });
        }
        tracing::info!(call_id = %self.call_id(), egress = self.egress_str(), "no response to the INVITE in the peer's invite_timeout_s");
        self.on_invite_unreachable(cx, txn, true);
        // Its transaction is still open (Timer B, or the peer's final answer, ends it): the
        // call waits for it, even once released, to CANCEL it if it speaks. (Not sent again
        // on a new connection: the call has moved on.)
        cx.env.txn.forgo_resend(txn);
        if !self.open.contains(&txn) {
            self.open.push(txn);
        }
    }

    /// A response from an INVITE given up unheard: its first provisional gets the CANCEL;
    /// a final answer ends what there was to do for it (its caller closes its transaction,
    /// and ACKs and hangs up a 2xx, as for any earlier attempt's answer).
    pub(super) fn abandoned_heard(&mut self, cx: &mut Cx, txn: TxnId, resp: &Response) {
        let Some(list) = self.abandoned.as_deref_mut().map(|a| &mut a.0) else {
            return;
        };
        let Some(i) = list.iter().position(|a| a.txn == txn) else {
            return;
        };
        if !resp.is_provisional() {
            list.swap_remove(i);
            return;
        }
        let a = &mut list[i];
        if std::mem::replace(&mut a.cancelled, true) {
            return;
        }
        match cancel_for(&a.invite, &[]) {
            Ok(c) => cx.send_unowned(c, a.to),
            Err(e) => tracing::warn!(error = %e, "cannot build CANCEL"),
        }
    }

    /// Whether `txn` is an INVITE given up unheard.
    pub(super) fn was_abandoned(&self, txn: TxnId) -> bool {
        self.abandoned
            .as_deref()
            .is_some_and(|a| a.0.iter().any(|a| a.txn == txn))
    }

    /// An INVITE given up unheard timed out (Timer B) or failed: nothing more to do for it.
    pub(super) fn abandoned_over(&mut self, txn: TxnId) {
        if let Some(a) = self.abandoned.as_deref_mut() {
            a.0.retain(|a| a.txn != txn);
        }
    }
}
