//! A request relayed from one leg to the other (sent by `call/relay_request.rs`, answered
//! through `call/relayed.rs`), and what stood before the offer it carried.

use super::super::Side;
use super::{MediaState, SentSdp};
use crate::sip::{Method, Request, Response};
use crate::txn::TxnId;

/// A request relayed from one leg to the other, waiting for the far side's response.
#[derive(Debug, Clone)]
pub struct Relayed {
    pub origin: Side,
    pub origin_txn: TxnId,
    pub origin_req: Request,
    pub method: Method,
    /// The request as we sent it on the far leg (answered again if that peer challenges it).
    pub sent: Request,
    /// The far leg sent a provisional response: a CANCEL may follow (RFC 3261 §9.1).
    pub heard: bool,
    /// Being cancelled on the far leg (its origin cancelled, or Timer C fired); the origin is
    /// answered with what the far leg answers.
    pub cancelled: bool,
    /// When it carried an offer: what it may change, put back if it is refused, since a
    /// refused offer changes nothing (RFC 3264 §8).
    pub standing: Option<Box<Standing>>,
    /// A re-INVITE without SDP on an anchored call: the streams before it. An offer the far
    /// leg makes in a provisional (binding there, RFC 3264) changes them; the re-INVITE
    /// failing puts them back whole (kinds, directions, timeouts, the offer's shape).
    pub media_before: Option<Box<MediaState>>,
    /// Sent again after the far peer's 422 (once: RFC 4028 §7.4).
    pub retried_422: bool,
}

/// What stood before a relayed offer.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    /// The SDP the far leg had last been sent (offered again by session refreshes), and
    /// that offer uncut when it was cut to its answer.
    pub far_sent: Option<SentSdp>,
    pub far_uncut: Option<bytes::Bytes>,
    /// The `o=` line the origin's peer had sent last (a re-INVITE with it again is a
    /// refresh).
    pub origin_received: Option<String>,
    /// The SDP the origin had last been sent (and uncut, as `far_uncut`), and the `o=` line
    /// the far leg had sent last: an answer in a provisional (a 183) changes both before the
    /// offer fails.
    pub origin_sent: Option<SentSdp>,
    pub origin_uncut: Option<bytes::Bytes>,
    pub far_received: Option<String>,
    /// The anchored streams.
    pub media: Option<MediaState>,
    /// Taken before the call was answered: an answer since (the callee's 2xx, another
    /// branch's) is what stands once this offer is refused, not this.
    pub early: bool,
    /// The callee's 2xx to the INVITE (and its transaction), when it came while this offer
    /// (the caller's, in its PRACK) was with the callee: taken once the offer is answered or
    /// not, against the session that leaves (`prack_offer.rs`).
    pub deferred_2xx: Option<Deferred2xx>,
}

/// A callee's 2xx to the INVITE, and its transaction, kept while the caller's PRACK offer
/// is with it.
pub type Deferred2xx = Box<(TxnId, Response)>;

impl Relayed {
    /// The callee's 2xx that waited for this relay's offer, if any, taken.
    pub fn take_deferred_2xx(&mut self) -> Option<Deferred2xx> {
        self.standing.as_mut().and_then(|s| s.deferred_2xx.take())
    }
}
