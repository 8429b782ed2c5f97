//! A call's entry points: what the router hands it (answers to its transactions, their
//! failures, its own timers) and where each goes.

use super::cx::Cx;
use super::state::{Call, TxnRole};
use super::timers::CallTimer;
use crate::sip::Response;
use crate::txn::TxnId;

impl Call {
    /// A response to one of this call's client transactions.
    pub(super) fn on_client_response(
        &mut self,
        cx: &mut Cx,
        id: TxnId,
        role: TxnRole,
        mut resp: Response,
    ) {
        // Its privacy stands for the rest of the dialog (`note_privacy`).
        // (Not an earlier callee's, nor an abandoned attempt's.)
        let from = match role {
            TxnRole::Invite(n) if n == self.route.attempt() => Some(super::Side::B),
            TxnRole::Relay => (self.relayed.iter())
                .find(|(t, _)| *t == id)
                .map(|(_, r)| r.origin.other()),
            _ => None,
        };
        if let Some(side) = from {
            let privacy = resp.header_lines(&crate::sip::Hdr::named("Privacy"));
            self.note_privacy(side, resp.to_tag().as_deref(), &privacy);
            // (A response whose body cannot be taken apart goes on without it: its
            // transaction has ended, and the call must hear its final answer.)
            let _ = self.unbelieved_isdn(side, &mut resp);
        }
        match role {
            TxnRole::Invite(n) => self.on_invite_response(cx, id, n, resp),
            TxnRole::Relay => self.on_relayed_response(cx, id, resp),
            TxnRole::Bye(side) if !resp.is_provisional() => self.on_bye_answer(cx, side, id, &resp),
            TxnRole::Prack(n) if !resp.is_provisional() => self.on_prack_answer(cx, id, n, &resp),
            TxnRole::Refresh(_) => self.on_refresh_response(cx, id, resp),
            TxnRole::Probe { side, challenged } => {
                self.on_probe_answer(cx, (side, challenged), id, &resp)
            }
            TxnRole::Bye(_) | TxnRole::Prack(_) | TxnRole::CallerInvite => {}
        }
    }

    /// Timer B/F (`timeout`) or a transport error on one of this call's client transactions.
    pub(super) fn on_client_failure(
        &mut self,
        cx: &mut Cx,
        id: TxnId,
        role: TxnRole,
        timeout: bool,
    ) {
        match role {
            TxnRole::Invite(_) => {
                self.on_invite_unreachable(cx, id, timeout);
                self.close_txn(id);
                self.abandoned_over(id);
            }
            TxnRole::Bye(_) => {
                self.close_txn(id);
                self.on_bye_unanswered();
            }
            TxnRole::Relay => self.on_relay_failed(cx, id, timeout),
            TxnRole::Prack(n) => self.on_prack_result(cx, id, n, None),
            TxnRole::Refresh(_) => self.on_refresh_failed(cx, id, timeout),
            TxnRole::Probe { side, .. } => self.on_probe_unanswered(cx, side, id, timeout),
            // Timer H (no ACK for our failure) comes when the call has ended already.
            TxnRole::CallerInvite if !timeout => self.on_caller_unreachable(cx),
            TxnRole::CallerInvite => {}
        }
    }

    /// Fire every timer of this call that is due.
    pub(super) fn on_timers(&mut self, cx: &mut Cx) {
        while let Some((t, due)) = self.timers.pop_due_at(cx.now) {
            match t {
                CallTimer::Ring => self.on_ring_timeout(cx),
                CallTimer::Retransmit2xx(side) => self.on_retransmit_2xx(cx, side),
                CallTimer::AckTimeout(side) => self.on_ack_timeout(cx, side),
                CallTimer::Rel1xx => self.on_rel1xx_timer(cx),
                CallTimer::Linger => self.on_linger(cx),
                CallTimer::MaxDuration => self.on_max_duration(cx),
                CallTimer::SessionRefresh(side) => self.on_session_refresh(cx, side),
                CallTimer::SessionExpiry(side) => self.on_session_expiry(cx, side, due),
                CallTimer::Settle => {
                    let key = self.setup_key();
                    self.settle(cx.env.timers.t1, cx.now);
                    // Settled: its INVITE cannot come again, by any path.
                    if let Some(key) = key.filter(|_| self.setup_key().is_none()) {
                        cx.env.dialogs.remove_setup(&key, cx.r);
                    }
                }
                CallTimer::RelayedInvite => self.on_relayed_invite_timer(cx),
                CallTimer::PrackOffer => self.on_prack_offer_timer(cx),
                CallTimer::InviteTimeout => self.on_invite_timeout(cx),
                CallTimer::Reoffer => self.on_reoffer_timer(cx),
                CallTimer::Probe(side) => self.on_probe_timer(cx, side),
            }
        }
    }
}
