//! The B2BUA: one [`Call`](state::Call) owns two legs (each a dialog) and bridges them.
//!
//! Sans-IO: [`B2bua`] takes received messages and fired timers with the current `Instant`,
//! and leaves [`Action`]s for the engine to perform. No sockets, no clock, no tasks.

mod b2bua;
mod dialog;
mod explain;
mod ids;
mod leg;
mod media;
mod outbound;
mod reliable;
mod setup;
mod state;
mod teardown;

use std::time::Instant;

pub use b2bua::{B2bua, LocalAddrs, Stats};
pub use explain::{ExplainError, Explained, explain_invite};

use crate::cdr::CdrRecord;
use crate::sip::Target;
use crate::txn::{TxnId, TxnTimer};

/// Internal handle of a call.
pub type CallRef = u64;

/// The two legs of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Toward the caller: the gateway is the UAS.
    A,
    /// Toward the callee: the gateway is the UAC.
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Timers the call layer arms itself (transaction timers are [`TimerId::Txn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallTimer {
    /// The callee has not answered within the ring timeout.
    Ring,
    /// Retransmit our 2xx on this side until its ACK arrives (RFC 3261 §13.3.1.4).
    Retransmit2xx(Side),
    /// No ACK for our 2xx within 64·T1.
    AckTimeout(Side),
    /// Retransmit our reliable provisional to the caller until its PRACK (RFC 3262 §3).
    Rel1xx,
    /// Safety net: a call still cleaning up after this long is dropped.
    Linger,
}

/// A timer the engine arms and hands back when it fires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimerId {
    Txn(TxnId, TxnTimer),
    Call(CallRef, CallTimer),
}

/// What the core asks the engine to do.
// `Send` is both the large variant and the common one: boxing it would cost an allocation
// per message to save memory in a short-lived Vec.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Action {
    /// Send a message. `txn` names the transaction it belongs to, so a delivery failure
    /// can be reported back with [`B2bua::on_send_failed`].
    Send {
        target: Target,
        wire: bytes::Bytes,
        txn: Option<TxnId>,
    },
    /// Arm (or re-arm) a timer.
    SetTimer { id: TimerId, at: Instant },
    /// Disarm a timer.
    ClearTimer(TimerId),
    /// Write a CDR.
    Cdr(Box<CdrRecord>),
    /// Start, update or stop relaying a call's media.
    Media(crate::media::MediaAction),
}

#[cfg(test)]
mod tests;
