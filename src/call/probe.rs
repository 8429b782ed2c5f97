//! Whether an answered call's peers still have it: a leg that runs no session timer is sent
//! an in-dialog OPTIONS every `[sip] probe_s` of its peer's profile (RFC 3261 §11 allows
//! OPTIONS within a dialog; on by default toward trunks). A BYE lost on UDP or a peer
//! restarted leave a call the gateway would otherwise keep for good: its slot in the
//! limits, its relay ports, and a CDR that is never written (or is, at shutdown, billing
//! hours nobody talked).
//!
//! A 481 or a 408, or no answer at all (Timer F), ends the dialog (RFC 3261 §12.2.1.2): the
//! call is released as when a request relayed to that leg finds it gone. The answers RFC
//! 5057 §5.1 says destroy a dialog (the remote target or route no longer works: 404, 410,
//! 416, 482–485, 502, 604) and a transport error (a TCP connection that cannot be opened)
//! are doubtful: a proxy on the way may be having a bad minute. The leg is asked again 32 s
//! later, and the call released after [`DOUBTS`] such outcomes in a row. Any other answer
//! (200, 405, 501, …) shows the peer has the dialog; a challenge is answered once and the
//! authenticated answer judged.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::Side;
use super::challenge::is_challenge;
use super::cx::Cx;
use super::events::CallEvent;
use super::phase::Phase;
use super::state::{Call, TxnRole};
use super::timers::CallTimer;
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::sip::{Method, Response};
use crate::txn::TxnId;

/// A probe due while another request of ours is open on the call waits this long: its
/// higher CSeq must not overtake a lost first send of the other (RFC 3261 §12.2.2).
const PROBE_RETRY: Duration = Duration::from_secs(4);

/// After a doubtful outcome the leg is asked again this much later (64·T1).
const PROBE_RECHECK: Duration = Duration::from_secs(32);

/// Doubtful outcomes in a row that release the call.
const DOUBTS: u8 = 3;

/// What an answer to an in-dialog request says of its dialog.
#[derive(Debug)]
enum Verdict {
    /// Gone (RFC 3261 §12.2.1.2).
    Gone,
    /// Gone by RFC 5057 §5.1, unless a proxy on the way answered for a moment.
    Doubtful,
    /// The peer has it.
    Alive,
}

fn verdict(status: u16) -> Verdict {
    match status {
        408 | 481 => Verdict::Gone,
        404 | 410 | 416 | 482..=485 | 502 | 604 => Verdict::Doubtful,
        _ => Verdict::Alive,
    }
}

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

    /// `Probe(side)` fired: the leg is asked, unless something else already proves it. Every
    /// path that sends nothing looks again later: what kept it from asking may change.
    pub(super) fn on_probe_timer(&mut self, cx: &mut Cx, side: Side) {
        if self.phase.is_ending() {
            return;
        }
        // A session timer finds a lost leg itself (its refresh fails, or stops coming),
        // unless its peer stretched it past the probe's interval (a Min-SE of up to a day);
        // a call still waiting for an ACK is ended by its own timer if none comes; a peer
        // that takes no OPTIONS (its profile's `[sip] allow`, else its Allow) is not asked.
        if self.session_proves(side)
            || !matches!(self.phase, Phase::Confirmed { .. })
            || !self.peer_takes(side, &Method::Options)
        {
            return self.arm_probe(side, cx.now);
        }
        if self.requests_open() {
            self.timers
                .set(CallTimer::Probe(side), cx.now + PROBE_RETRY);
            return;
        }
        if self.send_probe(cx, side, None).is_none() {
            self.arm_probe(side, cx.now);
        }
    }

    /// Whether `side`'s session timer finds the leg gone as soon as its probe would.
    fn session_proves(&self, side: Side) -> bool {
        let every = self.profile(side).and_then(|p| p.probe);
        self.session[side].is_some_and(|s| {
            every.is_none_or(|e| crate::interop::session_timer::finds_loss_within(s) <= e)
        })
    }

    /// Another request of ours is open on the call (a refresh, a relayed request, a
    /// re-INVITE among either): a probe's higher CSeq waits for it.
    fn requests_open(&self) -> bool {
        self.refresh.is_some() || !self.relayed.is_empty()
    }

    /// Whether `side` is watched: a session timer runs on it, or it is probed. A peer's own
    /// OPTIONS toward the other leg is answered here only then (`midcall.rs`); else it goes
    /// on as before, and a peer that audits its calls by OPTIONS learns of a far peer that
    /// lost the call.
    pub(super) fn watched(&self, side: Side) -> bool {
        self.session[side].is_some()
            || (self.profile(side).is_some_and(|p| p.probe.is_some())
                && self.peer_takes(side, &Method::Options))
    }

    /// Send the OPTIONS on `side`, or (`challenged`) answer the challenge to the one sent:
    /// judged against the probe as it went (the credentials it carried up front, its
    /// CSeq), not a new one, which would answer a refused nonce again from nc 1.
    fn send_probe(&mut self, cx: &mut Cx, side: Side, challenged: Option<&Response>) -> Option<()> {
        let Some(resp) = challenged else {
            let leg = self.dialog_mut(side)?;
            let target = leg.target;
            let mut req = match leg.request(Method::Options, &cx.env.local, &mut cx.env.ids) {
                Ok(req) => req,
                Err(e) => {
                    warn!(error = %e, "cannot build the in-dialog OPTIONS");
                    return None;
                }
            };
            self.sign(cx, side, &mut req);
            debug!(call_id = %self.call_id(), ?side, "probing the leg with OPTIONS");
            let role = TxnRole::Probe {
                side,
                challenged: false,
            };
            self.probe_sent[side] = Some(Box::new(req.clone()));
            return self.start_client(cx, req, target, role).map(|_| ());
        };
        let sent = self.probe_sent[side].take()?;
        let role = TxnRole::Probe {
            side,
            challenged: true,
        };
        match self.answer_challenge(cx, side, &sent, resp, role) {
            Ok(_) => Some(()),
            Err(why) => {
                // Once a call: it would come again with every probe.
                info!(call_id = %self.call_id(), status = resp.status(), "the probe's challenge not answered: {why}");
                self.events.push_once(CallEvent::AuthFailed);
                None
            }
        }
    }

    /// The answer to our probe on `side` (`challenged`: the probe answered a challenge).
    pub(super) fn on_probe_answer(
        &mut self,
        cx: &mut Cx,
        (side, challenged): (Side, bool),
        id: TxnId,
        resp: &Response,
    ) {
        if resp.is_provisional() {
            return;
        }
        self.close_txn(id);
        // Kept (just answered) only for a challenge to be answered below.
        let sent = self.probe_sent[side].take();
        if self.phase.is_ending() {
            return;
        }
        let status = resp.status();
        match verdict(status) {
            Verdict::Gone => return self.probe_failed(cx, side, status),
            Verdict::Doubtful => return self.probe_doubtful(cx, side, status),
            Verdict::Alive => {}
        }
        // A challenge is answered once (the proxy that sent it proves nothing of the peer),
        // not while another request of ours is open (its CSeq would overtake it: the leg is
        // asked afresh shortly); a second one, or one that cannot be answered, leaves the
        // leg to the next probe.
        if is_challenge(resp) && !challenged {
            if self.requests_open() {
                self.timers
                    .set(CallTimer::Probe(side), cx.now + PROBE_RETRY);
                return;
            }
            self.probe_sent[side] = sent;
            if self.send_probe(cx, side, Some(resp)).is_some() {
                return;
            }
        } else if is_challenge(resp) {
            // Our answer to its challenge refused: once a call, as every probe would.
            info!(call_id = %self.call_id(), status, "the probe's answered challenge was refused");
            self.events.push_once(CallEvent::AuthFailed);
        }
        self.probe_doubts[side] = 0;
        self.arm_probe(side, cx.now);
    }

    /// Our probe on `side` got no answer at all (`timeout`, Timer F), or its transport failed.
    pub(super) fn on_probe_unanswered(
        &mut self,
        cx: &mut Cx,
        side: Side,
        id: TxnId,
        timeout: bool,
    ) {
        self.close_txn(id);
        self.probe_sent[side] = None;
        if self.phase.is_ending() {
            return;
        }
        if timeout {
            return self.probe_failed(cx, side, 408);
        }
        self.probe_doubtful(cx, side, 503);
    }

    /// A doubtful outcome (`status`: the answer, or 503 for a transport error): the leg is
    /// asked again soon, and after [`DOUBTS`] in a row the call released.
    fn probe_doubtful(&mut self, cx: &mut Cx, side: Side, status: u16) {
        let doubts = &mut self.probe_doubts[side];
        *doubts = doubts.saturating_add(1);
        if *doubts >= DOUBTS {
            return self.probe_failed(cx, side, status);
        }
        info!(call_id = %self.call_id(), ?side, status, "the probe's outcome is doubtful: asking again shortly");
        self.timers
            .set(CallTimer::Probe(side), cx.now + PROBE_RECHECK);
    }

    fn probe_failed(&mut self, cx: &mut Cx, side: Side, status: u16) {
        if !self.phase.is_up() {
            return;
        }
        info!(call_id = %self.call_id(), ?side, status, "the peer no longer has the call: releasing it");
        self.events.push(CallEvent::ProbeFailed(side));
        let cause = if status == 408 {
            Q850Cause::TIMER_EXPIRY
        } else {
            Q850Cause::TEMPORARY_FAILURE
        };
        self.release_answered(cx, CallTag::PeerUnreachable, cause);
    }
}
