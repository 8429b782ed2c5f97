//! The REFERs a call relayed, for the NOTIFYs that report on them.

use crate::call::Side;

/// A relayed REFER: see [`super::Call::refers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayedRefer {
    pub toward: Side,
    pub sent_cseq: u32,
    pub origin_cseq: u32,
    /// Its subscription ended: a NOTIFY on it said `Subscription-State: terminated`.
    pub ended: bool,
}

/// The REFERs a call relayed, oldest first (boxed in the call: most calls have none), per
/// side whether the first sent there was forgotten (past [`MAX_REFERS`]): a NOTIFY without
/// an id reports on that one (RFC 3515 §2.4.6), no longer known; and how many it relayed.
#[derive(Debug, Clone, Default)]
pub struct RelayedRefers(
    pub Vec<RelayedRefer>,
    pub crate::call::PerSide<bool>,
    pub u16,
);

/// Relayed REFERs a call remembers (see [`super::Call::refers`]).
pub const MAX_REFERS: usize = 4;

/// REFERs one call relays at most; more get 403. A transfer or two is a call's story (an
/// attended one, a transfer back); each REFER has the transferee place a call, and a peer
/// sending them in a stream would have the far side place calls without end (through the
/// gateway, held by its limits only; a carrier that dials transfers itself, billed).
pub const MAX_REFERS_PER_CALL: u16 = 16;
