//! Where the SDP being anchored stands in its offer/answer exchange.

/// Where the SDP being anchored stands in its offer/answer exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::call) enum Exchange {
    /// An offer in a request: it may be refused.
    Offer,
    /// An offer in a response (to an INVITE without SDP): it cannot be refused.
    OfferInResponse,
    /// An answer in a provisional response: mid-call, the offerer's old addresses stay
    /// with the relay until the final one (a 183's answer, then a 488, moved the relay
    /// there and back, emptying the latch twice).
    EarlyAnswer,
    /// An answer in a final response, a PRACK or an ACK.
    Answer,
}

impl Exchange {
    /// An offer in a response when `offer`, else an answer.
    pub(in crate::call) fn in_response(offer: bool) -> Exchange {
        if offer {
            Exchange::OfferInResponse
        } else {
            Exchange::Answer
        }
    }

    /// `None` for an answer, `Some(binding)` for an offer, binding when it cannot be
    /// refused.
    pub(super) fn offer(self) -> Option<bool> {
        match self {
            Exchange::Offer => Some(false),
            Exchange::OfferInResponse => Some(true),
            Exchange::EarlyAnswer | Exchange::Answer => None,
        }
    }
}
