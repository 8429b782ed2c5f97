//! The B2BUA: a router and the calls it routes to. One [`Call`](state::Call) owns two
//! dialogs (one per leg) and bridges them.
//!
//! Sans-IO, in the shape of str0m and quinn-proto: the shell feeds [`B2bua::handle_input`]
//! with messages off the wire (and the few other things that happen to a gateway), calls
//! [`B2bua::handle_timeout`] when [`B2bua::poll_timeout`] says, and performs every
//! [`Output`] it takes from [`B2bua::poll_output`]. No sockets, no clock, no tasks, no
//! globals: every deadline (transaction and call timers alike) lives in here.
//!
//! How one message flows (see also `src/README.md`):
//! `sip::ingress` (§8.2/§18 checks, once) → `txn` → `router` (Call-ID/tag/branch → call) →
//! a `Call` handler (`attempt`, `cancel`, `midcall`, `relayed`, `ack`, `reliable`, `release`) →
//! `interop::egress` (the peer's shaping) → `txn` → [`Output::Transmit`].

mod ack;
mod admission;
mod anchor;
mod attempt;
mod cancel;
mod cdr;
mod challenge;
mod cx;
mod dialog;
mod dialog_index;
mod earlier_peer;
mod early_answer;
mod early_exchange;
mod early_offer;
mod events;
mod explain;
mod failover;
mod follow;
mod forks;
mod handle;
mod headroom;
mod incoming;
mod invite_answer;
mod limits;
mod looped;
mod midcall;
mod moved;
mod next_offer;
mod offer_refused;
mod originate;
mod orphan;
mod outbound;
mod overloaded;
mod own_invite;
mod peer_health;
mod per_leg;
mod phase;
mod prack_answer;
mod prack_offer;
mod probe;
mod registrations;
mod relay_pace;
mod relay_request;
mod relayed;
mod relayed_cancel;
mod release;
mod reliable;
mod reoffer;
mod router;
mod session;
mod shutdown;
mod silent_peer;
mod state;
mod third_party;
mod timers;
mod transfer;
mod unbelieved_body;
mod unwanted_answer;

use std::ops::{Index, IndexMut};

pub use cdr::{recording_news_after_cdr, recording_unfinished};
pub use cx::SOURCE_HEADER;
pub use events::CallEvent;
pub use explain::{ExplainError, Explained, explain_invite};
pub use moved::MAX_MOVED_RELOADS;
pub use router::{B2bua, FaultPlace, Stats};
pub use third_party::CallbackReport;

use crate::cdr::CdrRecord;
use crate::config::PeerName;
use crate::sip::{Message, Target};
use crate::txn::TxnId;

/// Internal handle of a call.
pub type CallRef = u64;

/// Seconds an overloaded gateway asks a peer to wait (RFC 3261 §21.5.4): long enough for a
/// queue to drain, short enough that a trunk does not route around us for long. The core's
/// refusals and the shell's (UDP before parsing, TCP when the queue is full) say the same.
pub const OVERLOAD_RETRY_AFTER_S: u32 = 5;

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

    /// How CDR events and logs name the party on this side.
    pub fn party(self) -> &'static str {
        match self {
            Side::A => "caller",
            Side::B => "callee",
        }
    }
}

/// One value per leg, indexed by [`Side`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerSide<T> {
    pub a: T,
    pub b: T,
}

impl<T> Index<Side> for PerSide<T> {
    type Output = T;
    fn index(&self, side: Side) -> &T {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }
}

impl<T> IndexMut<Side> for PerSide<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }
}

/// What happens to the core.
// `Message` is both the largest variant and the common one (see `Output`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    /// A message arrived from `source`.
    Message { msg: Message, source: Target },
    /// A datagram or stream message from `source` that does not parse as SIP (`why`); a
    /// request among them is answered `status`'s answer where it can be.
    Unparseable {
        raw: bytes::Bytes,
        why: String,
        status: crate::sip::Unreadable,
        source: Target,
    },
    /// New work (a request outside any dialog) that waited in the shell's queue past
    /// `[protect] overload_delay_ms`: answered with a stateless 503 + Retry-After, without a
    /// transaction or a CDR. A retransmission of a request already taken is absorbed as
    /// usual; a stranger's request is dropped.
    Overloaded { msg: Message, source: Target },
    /// The shell could not deliver a message of this transaction (TCP connect refused, …).
    SendFailed(TxnId),
    /// The TCP connection a request of this transaction went out on closed: unless the
    /// request has been answered (a 100 Trying will do), it is taken as not delivered and
    /// sent once more over a new connection (the peer may have closed it idle just as we
    /// wrote); lost again, a transport error (RFC 3261 §17.1.4), so a call fails over.
    ConnectionLost(TxnId),
    /// A TCP connection the gateway opened to this address closed: a registration over it
    /// renews its binding on a new one.
    TcpClosed(std::net::SocketAddr),
    /// No RTP flowed for a call's media timeout.
    MediaTimeout(CallRef),
    /// A call's media relay could not open its sockets or stopped: the call cannot carry
    /// audio any more and is released (CDR `media_unavailable`) rather than left silent.
    MediaFailed(CallRef),
    /// A pair of `[media] ports` (by its RTP port) that a socket not the gateway's holds: a
    /// relay could not bind it. Handed out no more, until [`Input::MediaPortFree`].
    MediaPortHeld(u16),
    /// A pair withheld so binds again (the shell tries them every minute).
    MediaPortFree(u16),
    /// What became of a call's recording (a call whose recording went as planned hears
    /// nothing): its CDR names only a file that was made, and says when it stopped early.
    Recording {
        call: CallRef,
        news: crate::media::RecordingNews,
    },
    /// Shutting down: refuse new calls with 503.
    Drain,
    /// Whether CDRs can be written: while not, new calls are refused with 503 rather than
    /// run unbilled (`[cdr] fail_closed`, or a full CDR queue).
    CdrWritable(bool),
    /// Release every call still up (the drain period is over), at once: the shell does it
    /// in turns ([`router::B2bua::hang_up_some`]) unless it cannot wait.
    HangUpAll,
    /// The call-back service asks for a call-back to be placed or cancelled; the outcome
    /// comes back as [`Output::Callback`].
    Callback(crate::callback::Command),
}

/// What the core asks of the shell.
// `Transmit` is both the largest variant and the common one: boxing it would cost an
// allocation per message to save a few bytes in a short queue.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Output {
    /// Send these bytes. `txn` names the transaction they belong to, so a delivery failure
    /// can come back as [`Input::SendFailed`].
    Transmit {
        target: Target,
        wire: bytes::Bytes,
        txn: Option<TxnId>,
    },
    /// Write a CDR (the shell also counts the call's end from it). With the call's ref
    /// when the CDR names its recording: the shell finishes that file now, and holds the
    /// CDR until it is complete.
    Cdr(Box<CdrRecord>, Option<CallRef>),
    /// Start, update or stop relaying a call's media.
    Media(crate::media::MediaAction),
    /// Something worth counting that is not in a CDR.
    Event(CoreEvent),
    /// For the call-back service: a call-back's progress or end.
    Callback(CallbackReport),
}

/// Counted by the shell (metrics), never acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreEvent {
    /// A peer refused (or ignored) our PRACK; `what` is its status or `timeout`.
    PrackFailure { peer: PeerName, what: String },
    /// A 2xx from `peer` no call wanted any more was ACKed and hung up (also a CDR event,
    /// `late_2xx_released`, when it comes before the CDR is written).
    LateAnswer { peer: PeerName },
    /// A message was dropped or answered statelessly before any transaction: `why`.
    Refused { why: &'static str },
    /// Handling an event panicked (a defect), caught at `place`.
    Fault { place: router::FaultPlace },
    /// An INVITE from `peer` was refused past its `[cdr] refused_rate`: no CDR, but the
    /// call metrics count it as its CDR would have (`tag`, `cause`).
    RefusalUnrecorded {
        peer: PeerName,
        tag: crate::cdr::CallTag,
        cause: u16,
    },
    /// A call (or an attempt toward `peer`) was refused by a `[limits]` limit.
    LimitRefused {
        peer: PeerName,
        reason: &'static str,
    },
    /// A call reached a stage of its setup: `peer` is the peer it came from (`inbound`) or
    /// the one it was offered to (`outbound`); `after` is the time since the caller's INVITE.
    Progress {
        peer: PeerName,
        direction: Direction,
        stage: Stage,
        after: std::time::Duration,
    },
}

/// Which side of the gateway a peer is on for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The call came from this peer.
    Inbound,
    /// The call (an attempt of it) went to this peer.
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A stage of call setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Received from the caller, or an INVITE sent to a callee.
    Offered,
    /// The callee's first 180–183.
    Ringing,
    /// The callee's 2xx.
    Answered,
}

#[cfg(test)]
pub(crate) mod tests;
