//! What a message's body is to anchoring: whether it may offer, holds SDP, and the
//! Content-Type it is read by.

use tracing::warn;

use super::super::state::Call;
use crate::sdp::{MediaBody, SdpError};
use crate::sip::{Body, Hdr};

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

impl Call {
    /// `body` (readable as `ct`) shaped as `to`'s peer wants its SDP (`[sdp] ptime`), as
    /// what is sent to it is; an answer is shaped so before it is anchored, so that its
    /// `o=` version is judged on the bytes the peer gets. An encoded body (`ct` none) as
    /// it is.
    pub(in crate::call) fn shaped_for(
        &self,
        to: super::super::Side,
        body: &bytes::Bytes,
        ct: Option<&str>,
    ) -> bytes::Bytes {
        match self.profile(to) {
            Some(p) if ct.is_some() => crate::interop::egress::body_for(p, body, ct),
            _ => body.clone(),
        }
    }

    /// `msg`'s body as [`Call::shaped_for`] `to` has it, in place (an encoded one is left
    /// as it is). Shaped before it is anchored, the SDP numbered for `to` is the one it is
    /// sent (its `a=ptime` among it): shaped after, the next time it went again it differed
    /// from what was numbered, and `to` saw the same session under a new `o=` version.
    pub(in crate::call) fn shape_in_place<M: crate::sip::Body>(
        &self,
        to: super::super::Side,
        msg: &mut M,
    ) {
        if msg.encoded() {
            return;
        }
        let ct = msg.content_type();
        let shaped = self.shaped_for(to, msg.body(), ct.as_deref());
        if shaped != *msg.body()
            && let Err(e) = msg.set_body(shaped, ct.as_deref())
        {
            tracing::debug!(error = %e, "body left as it came");
        }
    }

    /// Why the SDP of `msg` cannot be read for anchoring (`None`: it can, there is none, or
    /// the call's media is not anchored): what [`Call::anchored_body`] would send on with
    /// every stream refused.
    pub(in crate::call) fn unreadable_sdp<M: Body>(&self, msg: &M) -> Option<SdpError> {
        self.unreadable_answer(super::Side::B, msg)
    }

    /// [`Call::unreadable_sdp`] of an answer (or an offer in a response) from `from`.
    pub(in crate::call) fn unreadable_answer<M: Body>(
        &self,
        from: super::Side,
        msg: &M,
    ) -> Option<SdpError> {
        if self.media.is_none() || msg.body().is_empty() {
            return None;
        }
        let ct = readable_type(msg);
        // Read as `anchor_body` reads an answer.
        let offered = (self.media.as_ref())
            .and_then(|m| m.offered[from.other()].as_ref())
            .map(|o| &o.sections);
        match offered {
            Some(s) => MediaBody::read_answer(ct.as_deref(), msg.body(), s).err(),
            // (An offer, to a late-offer INVITE: held to that peer's own `max_streams`.)
            None => {
                let max = self.offer_max_streams(from, None);
                MediaBody::read(ct.as_deref(), msg.body(), max).err()
            }
        }
    }

    /// On an anchored call, SDP in a message that is no offer or answer (a failure, the
    /// 200 to an OPTIONS) goes on with every stream refused and the gateway's address in
    /// place of the peer's; nothing of the call's media changes.
    pub(in crate::call) fn neutralise_sdp<M: Body>(&self, msg: &mut M) {
        if self.media.is_none() || !carries_sdp(msg) {
            return;
        }
        let ct = readable_type(msg);
        let (body, ct) = crate::sdp::refuse_all(ct.as_deref(), msg.body(), self.cfg.media_ip);
        match msg.set_body(body, ct.as_deref()) {
            Ok(()) => {
                msg.remove_header(&Hdr::named("Content-Encoding"));
            }
            Err(e) => warn!(error = %e, "cannot refuse the SDP of a message that answers nothing"),
        }
    }
}
