//! What a message's body is to anchoring: whether it may offer, holds SDP, and the
//! Content-Type it is read by.

use crate::sip::Body;

/// Whether a request of `method` may offer: an INVITE, an UPDATE (RFC 3311), a PRACK (RFC
/// 3262). SDP in any other is no offer, and what answers it no answer.
pub(in crate::call) fn may_offer(method: &crate::sip::Method) -> bool {
    use crate::sip::Method;
    matches!(method, Method::Invite | Method::Update | Method::Prack)
}

/// The Content-Type a message's body is anchored by: none when the body is encoded (gzip,
/// RFC 3261 §20.12), so that its SDP counts as SDP that cannot be read (an offer refused,
/// an answer's streams refused) rather than bytes that pass as they came, for a far end
/// that decodes them to read the peer's addresses.
pub(in crate::call) fn readable_type<M: Body>(m: &M) -> Option<String> {
    if m.encoded() { None } else { m.content_type() }
}

/// Whether a message's body holds SDP, or may hold SDP the gateway cannot find (an offer in
/// an INVITE or UPDATE, else an answer): an empty body and an ISUP-only SIP-I body do not.
pub(in crate::call) fn carries_sdp<M: Body>(m: &M) -> bool {
    crate::sdp::carries_sdp(m.content_type().as_deref(), m.body())
}
