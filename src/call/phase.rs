//! Where a call is in its life, and where its current INVITE attempt is: two explicit state
//! machines whose variants carry their data, with the transitions as methods (tested below
//! as tables, like the transaction machines).

use std::time::Instant;

use crate::cdr::CallTag;
use crate::interop::causes::CauseSource;

/// How the call was released, fixed at the moment of release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndInfo {
    pub tag: CallTag,
    pub status: u16,
    pub cause: u16,
    pub cause_source: CauseSource,
    pub reason_sip: Option<String>,
    pub at: Instant,
}

impl EndInfo {
    /// A release the gateway itself decided (timers, refusals, shutdown).
    pub fn internal(tag: CallTag, status: u16, cause: u16, at: Instant) -> EndInfo {
        EndInfo {
            tag,
            status,
            cause,
            cause_source: CauseSource::Internal,
            reason_sip: None,
            at,
        }
    }
}

/// The call's phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Trying the route's peers; nobody answered yet.
    Routing,
    /// The callee's 2xx went to the caller; waiting for the caller's ACK.
    Answered { at: Instant },
    /// Both dialogs confirmed.
    Confirmed { at: Instant },
    /// Released: the CDR is written; BYE/CANCEL transactions may still be finishing.
    Ending {
        end: EndInfo,
        answered: Option<Instant>,
    },
}

impl Phase {
    /// When the call was answered, if it was.
    pub fn answered_at(&self) -> Option<Instant> {
        match self {
            Phase::Routing => None,
            Phase::Answered { at } | Phase::Confirmed { at } => Some(*at),
            Phase::Ending { answered, .. } => *answered,
        }
    }

    pub fn is_routing(&self) -> bool {
        matches!(self, Phase::Routing)
    }

    pub fn is_ending(&self) -> bool {
        matches!(self, Phase::Ending { .. })
    }

    /// Up and talking (answered, ACKed or not).
    pub fn is_up(&self) -> bool {
        matches!(self, Phase::Answered { .. } | Phase::Confirmed { .. })
    }

    /// Routing → Answered. False (nothing changes) from any other phase.
    pub fn answer(&mut self, at: Instant) -> bool {
        if !self.is_routing() {
            return false;
        }
        *self = Phase::Answered { at };
        true
    }

    /// Answered → Confirmed on the caller's ACK; other phases stay.
    pub fn confirm(&mut self) {
        if let Phase::Answered { at } = *self {
            *self = Phase::Confirmed { at };
        }
    }

    /// Any phase but Ending → Ending. Only the first release counts: false when the call had
    /// already ended.
    pub fn end(&mut self, end: EndInfo) -> bool {
        if self.is_ending() {
            return false;
        }
        let answered = self.answered_at();
        *self = Phase::Ending { end, answered };
        true
    }

    /// An ended call whose answer never reached the caller (its 2xx was held for a PRACK)
    /// counts as not answered.
    pub fn forget_answer(&mut self) {
        if let Phase::Ending { answered, .. } = self {
            *answered = None;
        }
    }

    pub fn end_info(&self) -> Option<&EndInfo> {
        match self {
            Phase::Ending { end, .. } => Some(end),
            _ => None,
        }
    }
}

/// Where the current INVITE attempt toward the callee stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptState {
    /// Sent; no provisional yet.
    Calling,
    /// A provisional arrived; `alerted` once it was 180–183 (decides Q.850 18 vs 19).
    Early { alerted: bool },
    /// We want it gone, but may not CANCEL before a provisional (RFC 3261 §9.1).
    CancelWanted,
    /// CANCEL sent; waiting for the INVITE's final answer.
    Cancelling,
    /// It got its final outcome (a final response, Timer B, a transport error).
    Done,
}

/// What a transition asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Nothing,
    SendCancel,
}

impl AttemptState {
    /// A provisional response arrived.
    pub fn on_provisional(&mut self, status: u16) -> Then {
        let alerting = (180..=183).contains(&status);
        match *self {
            AttemptState::Calling => *self = AttemptState::Early { alerted: alerting },
            AttemptState::Early { alerted } => {
                *self = AttemptState::Early {
                    alerted: alerted || alerting,
                }
            }
            AttemptState::CancelWanted => {
                *self = AttemptState::Cancelling;
                return Then::SendCancel;
            }
            AttemptState::Cancelling | AttemptState::Done => {}
        }
        Then::Nothing
    }

    /// We want the attempt gone: CANCEL now if a provisional came, else once one does.
    pub fn cancel(&mut self) -> Then {
        match *self {
            AttemptState::Calling => *self = AttemptState::CancelWanted,
            AttemptState::Early { .. } => {
                *self = AttemptState::Cancelling;
                return Then::SendCancel;
            }
            AttemptState::CancelWanted | AttemptState::Cancelling | AttemptState::Done => {}
        }
        Then::Nothing
    }

    /// The attempt got its final outcome. False when it already had one.
    pub fn finish(&mut self) -> bool {
        let first = *self != AttemptState::Done;
        *self = AttemptState::Done;
        first
    }

    /// We asked for it to go away.
    pub fn unwanted(&self) -> bool {
        matches!(self, AttemptState::CancelWanted | AttemptState::Cancelling)
    }

    pub fn alerted(&self) -> bool {
        matches!(self, AttemptState::Early { alerted: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptState::*;

    #[test]
    fn attempt_transitions() {
        // (start, event, end, action)
        let table: &[(AttemptState, &str, AttemptState, Then)] = &[
            (Calling, "100", Early { alerted: false }, Then::Nothing),
            (Calling, "180", Early { alerted: true }, Then::Nothing),
            (
                Early { alerted: true },
                "100",
                Early { alerted: true },
                Then::Nothing,
            ),
            (
                Early { alerted: false },
                "183",
                Early { alerted: true },
                Then::Nothing,
            ),
            (CancelWanted, "180", Cancelling, Then::SendCancel),
            (Cancelling, "180", Cancelling, Then::Nothing),
            (Done, "180", Done, Then::Nothing),
            (Calling, "cancel", CancelWanted, Then::Nothing),
            (
                Early { alerted: false },
                "cancel",
                Cancelling,
                Then::SendCancel,
            ),
            (CancelWanted, "cancel", CancelWanted, Then::Nothing),
            (Cancelling, "cancel", Cancelling, Then::Nothing),
            (Done, "cancel", Done, Then::Nothing),
        ];
        for (start, ev, end, then) in table {
            let mut s = *start;
            let got = match *ev {
                "cancel" => s.cancel(),
                status => s.on_provisional(status.parse().unwrap()),
            };
            assert_eq!((s, got), (*end, *then), "{start:?} + {ev}");
        }
    }

    #[test]
    fn an_attempt_finishes_once() {
        for start in [Calling, Early { alerted: true }, CancelWanted, Cancelling] {
            let mut s = start;
            assert!(s.finish(), "{start:?}");
            assert!(!s.finish(), "{start:?} twice");
            assert_eq!(s, Done);
        }
    }

    #[test]
    fn phases_keep_the_answer_time_and_end_once() {
        let t0 = Instant::now();
        let end = |tag| EndInfo::internal(tag, 200, 16, t0);
        let mut p = Phase::Routing;
        p.confirm();
        assert_eq!(p, Phase::Routing, "no ACK confirms an unanswered call");
        assert!(p.answer(t0));
        assert!(!p.answer(t0), "answered once");
        p.confirm();
        assert_eq!(p, Phase::Confirmed { at: t0 });
        assert!(p.end(end(CallTag::CallerBye)));
        assert!(
            !p.end(end(CallTag::CalleeBye)),
            "only the first release counts"
        );
        assert_eq!(p.answered_at(), Some(t0));
        assert_eq!(p.end_info().map(|e| e.tag), Some(CallTag::CallerBye));

        let mut q = Phase::Routing;
        assert!(q.end(end(CallTag::NoRoute)));
        assert_eq!(q.answered_at(), None);
        assert!(!q.answer(t0), "an ended call is never answered");
    }
}
