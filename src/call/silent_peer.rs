//! A callee that says nothing at all: its profile's `[sip] invite_timeout_s` gives its
//! INVITE up, before Timer B (32 s), for the route's next peer. A peer that is up answers
//! an INVITE with 100 Trying within a fraction of a second (RFC 3261 §17.2.1: 200 ms); one
//! that says nothing for seconds is down or unreachable, and the caller waits the whole of
//! Timer B for the next peer otherwise, or hears the ring timeout first.

use super::cancel::cancel_for;
use super::cx::Cx;
use super::state::Call;
use crate::sip::{Request, Response, Target};
use crate::txn::TxnId;

/// An INVITE given up unheard. RFC 3261 §9.1 allows no CANCEL before a provisional: if the
/// peer speaks after all, its provisional gets the CANCEL (a 2xx gets ACK and BYE as any
/// answer to an attempt given up).
#[derive(Debug)]
pub struct Abandoned {
    txn: TxnId,
    invite: Request,
    to: Target,
}

impl Call {
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
            self.abandoned = Some(Box::new(Abandoned {
                txn,
                invite: *invite,
                to: att.peer.address,
            }));
        }
        tracing::info!(call_id = %self.call_id(), peer = ?self.egress_name(), "no response to the INVITE in the peer's invite_timeout_s");
        self.on_invite_unreachable(cx, txn, true);
    }

    /// A response from the INVITE given up unheard: a provisional is CANCELled; anything
    /// else ends what there was to do for it.
    pub(super) fn abandoned_heard(&mut self, cx: &mut Cx, txn: TxnId, resp: &Response) {
        let Some(a) = self.abandoned.take_if(|a| a.txn == txn) else {
            return;
        };
        if !resp.is_provisional() {
            return;
        }
        match cancel_for(&a.invite) {
            Ok(c) => cx.send_unowned(c, a.to),
            Err(e) => tracing::warn!(error = %e, "cannot build CANCEL"),
        }
    }
}
