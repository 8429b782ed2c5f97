//! A panic in the core is a defect, not an end: a call whose handling panicked is released
//! as the gateway's failure (its peers told as far as its state allows, its CDR written) and
//! forgotten; a panic outside any call costs the event that set it off. Every other call
//! goes on, where an unwound core would have ended the process and every call with it,
//! CDRs unwritten.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use tracing::error;

use super::B2bua;
use crate::call::cx::Cx;
use crate::call::state::Call;
use crate::call::{CallRef, CoreEvent, Output, Side};
use crate::interop::causes::reason_header;

/// Where a panic was caught (the label of `trunkgate_faults_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPlace {
    /// Handling one call's event: that call was released.
    Call,
    /// Outside any call (the transaction layer, the router): the event was dropped.
    Core,
}

impl FaultPlace {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultPlace::Call => "call",
            FaultPlace::Core => "core",
        }
    }
}

/// Run `f`; a panic in it is caught and reported as a fault at `place` (true: it ran).
pub(in crate::call) fn guarded(
    b: &mut B2bua,
    place: FaultPlace,
    f: impl FnOnce(&mut B2bua),
) -> bool {
    let ran = catch_unwind(AssertUnwindSafe(|| f(&mut *b))).is_ok();
    if !ran {
        b.note_fault(place);
    }
    ran
}

impl B2bua {
    /// [`Self::with_call`] for a request whose server transaction is `id`: should its
    /// handling fail (`router/fault.rs`), the transaction left unanswered is ended, and the
    /// request sent again is answered afresh.
    pub(super) fn with_call_answering(
        &mut self,
        r: CallRef,
        now: Instant,
        id: crate::txn::TxnId,
        f: impl FnOnce(&mut Call, &mut Cx),
    ) {
        if !self.run_call(r, now, f) && self.env.txn.server_pending(id) {
            self.env.txn.abandon(id, now, &mut self.env.txn_out);
        }
    }

    /// [`Self::with_call`]: false when `f` panicked (the call was then released).
    pub(super) fn run_call(
        &mut self,
        r: CallRef,
        now: Instant,
        f: impl FnOnce(&mut Call, &mut Cx),
    ) -> bool {
        let Some(call) = self.calls.get_mut(&r) else {
            return true;
        };
        let mut cx = Cx {
            now,
            r,
            env: &mut self.env,
        };
        // Every log line about the call carries its Call-ID and the peer it came from.
        let span =
            tracing::info_span!("call", call_id = %call.call_id(), peer = %call.ingress.name);
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            span.in_scope(|| {
                #[cfg(test)]
                test_fault::strike(FaultPlace::Call);
                f(call, &mut cx)
            })
        }));
        if ran.is_err() {
            self.on_call_fault(r, now);
            return false;
        }
        self.settle(r);
        true
    }

    /// Count a fault (logged at powers of two: a defect hit by every call must not flood
    /// the log).
    fn note_fault(&mut self, place: FaultPlace) {
        self.faults = self.faults.saturating_add(1);
        if self.faults.is_power_of_two() {
            error!(
                place = place.as_str(),
                faults = self.faults,
                "handling an event panicked (a defect): the rest goes on"
            );
        }
        self.env
            .out
            .push_back(Output::Event(CoreEvent::Fault { place }));
    }

    /// Call `r`'s handling panicked: its state cannot be trusted. It is released (as its
    /// phase allows: the caller's INVITE answered 500, answered legs sent BYE, cause 41),
    /// else, should that panic too, its CDR alone is written; then it is forgotten.
    pub(super) fn on_call_fault(&mut self, r: CallRef, now: Instant) {
        self.note_fault(FaultPlace::Call);
        if let Some(call) = self.calls.get_mut(&r) {
            let mut cx = Cx {
                now,
                r,
                env: &mut self.env,
            };
            let released = catch_unwind(AssertUnwindSafe(|| call.release_after_fault(&mut cx)));
            // (Ended already, its CDR may be the part that panicked: written now.)
            if released.is_err() || !call.marks.cdr_done() {
                let written = catch_unwind(AssertUnwindSafe(|| call.cdr_after_fault(&mut cx)));
                if written.is_err() {
                    error!(call_ref = r, "a call's fault left no CDR");
                }
            }
            // A call-back's service is told how it ended, once, whichever part faulted (the
            // release after the CDR, say): else its `max_active` slot waits for the
            // service's watchdog, an hour and more.
            let _ = catch_unwind(AssertUnwindSafe(|| call.report_callback_end(&mut cx)));
        }
        let ours: Vec<_> = (self.env.owners.iter())
            .filter(|(_, (owner, _))| *owner == r)
            .map(|(id, _)| *id)
            .collect();
        for id in ours {
            if self.env.txn.server_pending(id) {
                // A request of the call's left unanswered (the one whose handling
                // panicked, say) would hold its transaction for ever: ended, so that the
                // request sent again is answered afresh (481, the call being gone).
                self.env.txn.abandon(id, now, &mut self.env.txn_out);
            } else {
                // Its INVITEs answered only provisionally (ours, toward the callee) would be
                // open for ever with their `owners` entries: on a normal release the call's
                // linger ends them, and that goes with the call. Each is given up on 64·T1
                // from now instead, time for its final answer to come and be ACKed (its
                // CANCEL, if the release sent one, is its own transaction, timed as any).
                self.env.txn.abandon_later(id, now, &mut self.env.txn_out);
            }
        }
        self.forget(r);
    }
}

impl Call {
    /// Release the call as the gateway's failure after a panic in its handling.
    fn release_after_fault(&mut self, cx: &mut Cx) {
        #[cfg(test)]
        test_fault::strike(FaultPlace::Call);
        use crate::cdr::CallTag::GatewayError;
        use crate::interop::causes::Q850Cause;
        let cause = Q850Cause::TEMPORARY_FAILURE;
        let caller_waits = self
            .caller_txn()
            .is_some_and(|t| cx.env.txn.server_pending(t));
        if self.phase.is_routing() {
            self.fail_call(cx, 500, GatewayError, cause);
        } else if self.phase.is_up() && caller_waits {
            // The callee answered and the fault came before the caller heard of it: for the
            // caller, and the CDR, the call was never answered. Its INVITE gets 500, the
            // callee a BYE (its 2xx, sent again until ACKed, is then ACKed and hung up as a
            // stray's). Before, the caller was sent a BYE for a dialog it never had, its
            // INVITE left unanswered (ringing until its user gave up), and the CDR said 200.
            self.phase = crate::call::phase::Phase::Routing;
            self.answered_wall = None;
            self.fail_call(cx, 500, GatewayError, cause);
            self.send_bye(cx, Side::B, Some(reason_header(cause)));
        } else if self.phase.is_up() {
            self.release_answered(cx, GatewayError, cause);
        } else if self.phase.answered_at().is_some() {
            if caller_waits {
                // Its 2xx was held for its PRACK, the call ending as the fault came: never
                // answered for the caller, whose INVITE gets its final answer (the held 2xx
                // its ACK), and no BYE on an early dialog.
                self.phase.forget_answer();
                self.answered_wall = None;
                self.answer_caller_after_fault(cx);
            }
            self.bye_legs_left_up(cx, cause);
        }
    }

    /// The caller's INVITE, still waiting, gets the final status its CDR gives (500 when
    /// none was fixed; a 2xx held for its PRACK, its ACK).
    fn answer_caller_after_fault(&mut self, cx: &mut Cx) {
        let status = (self.phase.end_info())
            .map(|e| e.status)
            .filter(|s| *s >= 300)
            .unwrap_or(500);
        if self.uas_rel.held_2xx.is_some() {
            self.refuse_held_2xx(cx, status, None);
        } else if let Some(txn) = self.caller_txn() {
            let req = self.template().clone();
            cx.respond(txn, &req, status, crate::sip::reason_phrase(status), &[]);
        }
    }

    /// The call had ended, answered, when the fault came (between its CDR and its BYEs,
    /// say): a leg that neither sent a BYE nor was sent one gets it now, or it would stay up,
    /// billed, for a call the gateway forgets.
    fn bye_legs_left_up(&mut self, cx: &mut Cx, cause: crate::interop::causes::Q850Cause) {
        use crate::cdr::CallTag;
        let said_bye = match self.phase.end_info().map(|e| e.tag) {
            Some(CallTag::CallerBye) => Some(Side::A),
            Some(CallTag::CalleeBye) => Some(Side::B),
            _ => None,
        };
        for side in [Side::A, Side::B] {
            if said_bye != Some(side) && !self.marks.bye_sent(side) {
                self.send_bye(cx, side, Some(reason_header(cause)));
            }
        }
    }

    /// Releasing the call panicked too, or its release ended it without its CDR (the fault
    /// was there): its CDR, unless one was written, and a final answer to a caller still
    /// waiting (its transaction would wait for ever).
    fn cdr_after_fault(&mut self, cx: &mut Cx) {
        let end = crate::call::phase::EndInfo::internal(
            crate::cdr::CallTag::GatewayError,
            500,
            crate::interop::causes::Q850Cause::TEMPORARY_FAILURE.0,
            cx.now,
        );
        if self.phase.end(end) {
            cx.env.ended_calls += 1;
        }
        if !self.marks.cdr_done() {
            self.marks.set_cdr_done();
            let cdr = self.cdr(cx.env);
            let recorded = self.recorded(&cdr, cx.r);
            cx.emit(Output::Cdr(Box::new(cdr), recorded));
        }
        if let Some(txn) = self.caller_txn()
            && self.phase.answered_at().is_none()
            && cx.env.txn.server_pending(txn)
        {
            let req = self.template().clone();
            cx.respond(txn, &req, 500, "Server Internal Error", &[]);
        }
    }
}

/// Faults made on purpose, for the tests that a panic costs one call, or one event.
#[cfg(test)]
pub(crate) mod test_fault {
    use super::FaultPlace;
    use std::cell::Cell;

    thread_local! {
        static CALL: Cell<u32> = const { Cell::new(0) };
        static CORE: Cell<u32> = const { Cell::new(0) };
        static NEW_CALL: Cell<u32> = const { Cell::new(0) };
        static ENDED: Cell<u32> = const { Cell::new(0) };
        static RELOAD: Cell<u32> = const { Cell::new(0) };
        static ANSWERED: Cell<u32> = const { Cell::new(0) };
    }

    fn armed(place: FaultPlace) -> &'static std::thread::LocalKey<Cell<u32>> {
        match place {
            FaultPlace::Call => &CALL,
            FaultPlace::Core => &CORE,
        }
    }

    /// The next `n` fault points at `place` reached on this thread panic.
    pub(crate) fn arm(place: FaultPlace, n: u32) {
        armed(place).with(|a| a.set(n));
    }

    /// A fault point: panics when armed.
    pub(crate) fn strike(place: FaultPlace) {
        strike_on(armed(place));
    }

    /// The next `n` initial INVITEs handled on this thread panic before they are calls.
    pub(crate) fn arm_new_call(n: u32) {
        NEW_CALL.with(|a| a.set(n));
    }

    /// The fault point of [`arm_new_call`].
    pub(crate) fn strike_new_call() {
        strike_on(&NEW_CALL);
    }

    /// The next `n` callees' 2xx handled on this thread panic once the call counts as
    /// answered, before the caller is sent the 2xx.
    pub(crate) fn arm_answered(n: u32) {
        ANSWERED.with(|a| a.set(n));
    }

    /// The fault point of [`arm_answered`].
    pub(crate) fn strike_answered() {
        strike_on(&ANSWERED);
    }

    /// The next reload handled on this thread panics at its fault point `at` (1: before
    /// anything is changed; 2: once all but the configuration itself is).
    pub(crate) fn arm_reload(at: u32) {
        RELOAD.with(|a| a.set(at));
    }

    /// Fault point `at` of [`arm_reload`].
    pub(crate) fn strike_reload(at: u32) {
        if RELOAD.with(|a| a.get() == at) {
            RELOAD.with(|a| a.set(0));
            panic!("a test fault");
        }
    }

    /// The next `n` calls ended on this thread panic once ended, before their CDR.
    pub(crate) fn arm_ended(n: u32) {
        ENDED.with(|a| a.set(n));
    }

    /// The fault point of [`arm_ended`].
    pub(crate) fn strike_ended() {
        strike_on(&ENDED);
    }

    fn strike_on(armed: &'static std::thread::LocalKey<Cell<u32>>) {
        if armed.with(|a| {
            let n = a.get();
            a.set(n.saturating_sub(1));
            n > 0
        }) {
            panic!("a test fault");
        }
    }
}
