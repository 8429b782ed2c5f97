//! Whether an answered call's peers still have it: a leg that runs no session timer is sent
//! an in-dialog OPTIONS every `[sip] probe_s` of its peer's profile (RFC 3261 §11 allows
//! OPTIONS within a dialog). A BYE lost on UDP, a peer restarted or a NAT binding gone leave
//! a call the gateway would otherwise keep for good: its slot in the limits, its relay ports,
//! and a CDR that is never written (or is, at shutdown, billing hours nobody talked).
//!
//! Any answer but 481 means the peer has the dialog (a 405 or a challenge too: it answered
//! within it). A 481, a 408 or no answer at all (Timer F) means it does not, and the call is
//! released as when a request relayed to that leg finds it gone (RFC 5057 §5.1).

use tracing::{debug, info, warn};

use super::Side;
use super::cx::Cx;
use super::events::CallEvent;
use super::phase::Phase;
use super::state::{Call, TxnRole};
use super::timers::CallTimer;
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::sip::{Method, Response};
use crate::txn::TxnId;

impl Call {
    /// The call was answered: each leg's probe runs from now, at its peer's interval.
    pub(super) fn arm_probes(&mut self, now: std::time::Instant) {
        for side in [Side::A, Side::B] {
            self.arm_probe(side, now);
        }
    }

    fn arm_probe(&mut self, side: Side, now: std::time::Instant) {
        match self.profile(side).and_then(|p| p.probe) {
            Some(every) => self.timers.set(CallTimer::Probe(side), now + every),
            None => self.timers.clear(CallTimer::Probe(side)),
        }
    }

    /// `Probe(side)` fired: the leg is asked, unless something else already proves it.
    pub(super) fn on_probe_timer(&mut self, cx: &mut Cx, side: Side) {
        if self.phase.is_ending() {
            return;
        }
        // A session timer finds a lost leg itself (its refresh fails, or stops coming); a
        // call still waiting for an ACK is ended by its own timer if none comes. The probe
        // is looked at again an interval later (the timer may have been turned off).
        if self.session[side].is_some() || !matches!(self.phase, Phase::Confirmed { .. }) {
            return self.arm_probe(side, cx.now);
        }
        // An operator's `[sip] allow` without OPTIONS says the peer takes none.
        if !self.peer_takes(side, &Method::Options) {
            return;
        }
        let Some(leg) = self.dialog_mut(side) else {
            return;
        };
        let target = leg.target;
        match leg.request(Method::Options, &cx.env.local, &mut cx.env.ids) {
            Ok(mut req) => {
                self.sign(cx, side, &mut req);
                debug!(call_id = %self.call_id(), ?side, "probing the leg with OPTIONS");
                self.start_client(cx, req, target, TxnRole::Probe(side));
            }
            Err(e) => warn!(error = %e, "cannot build the in-dialog OPTIONS"),
        }
    }

    /// The answer to our probe on `side`.
    pub(super) fn on_probe_answer(&mut self, cx: &mut Cx, side: Side, id: TxnId, resp: &Response) {
        if resp.is_provisional() {
            return;
        }
        self.close_txn(id);
        match resp.status() {
            481 | 408 => self.probe_failed(cx, side, resp.status()),
            _ => self.arm_probe(side, cx.now),
        }
    }

    /// Our probe on `side` got no answer at all (Timer F), or could not be sent.
    pub(super) fn on_probe_unanswered(&mut self, cx: &mut Cx, side: Side, id: TxnId) {
        self.close_txn(id);
        self.probe_failed(cx, side, 408);
    }

    fn probe_failed(&mut self, cx: &mut Cx, side: Side, status: u16) {
        if !self.phase.is_up() {
            return;
        }
        info!(call_id = %self.call_id(), ?side, status, "the peer no longer has the call: releasing it");
        self.events.push(CallEvent::ProbeFailed(side));
        let cause = if status == 481 {
            Q850Cause::TEMPORARY_FAILURE
        } else {
            Q850Cause::TIMER_EXPIRY
        };
        self.release_answered(cx, CallTag::PeerUnreachable, cause);
    }
}
