//! SDP in the caller's PRACK that is a new offer (RFC 3262 §5): the gateway terminates
//! PRACK on each leg and has no way to put an offer to the callee before the answer, so
//! it answers an unchanged offer itself and refuses a changed one.

use bytes::Bytes;

use super::cx::Cx;
use super::session::sdp_origin;
use super::state::Call;
use crate::sip::{Body, Hdr, Request, Response};
use crate::txn::TxnId;

impl Call {
    /// Whether the SDP in the caller's PRACK `req` is an offer: the caller offered in its
    /// INVITE (so it has had our answer), or the provisional PRACKed carried no offer to
    /// answer. False for a PRACK without SDP.
    pub(super) fn offers_in_prack(&self, req: &Request) -> bool {
        if !super::anchor::carries_sdp(req) {
            return false;
        }
        let late_offer = !super::anchor::carries_sdp(self.template());
        let carried_sdp = self.uas_rel.pending.as_ref().is_some_and(|p| p.has_sdp);
        !(late_offer && carried_sdp)
    }

    /// Answer the caller's PRACK `req` (transaction `id`), whose SDP is an offer. One that
    /// restates the session of the caller's INVITE (the same `o=` line, RFC 3264 §8) gets
    /// 200 with the answer the PRACKed provisional gave it, unchanged; true then, and the
    /// provisional is acknowledged. Anything else gets 488 (the caller may PRACK again
    /// without it; its provisional stays unacknowledged and is retransmitted meanwhile).
    pub(super) fn answer_offer_in_prack(&mut self, cx: &mut Cx, id: TxnId, req: &Request) -> bool {
        let given = self
            .uas_rel
            .pending
            .as_ref()
            .filter(|p| p.has_sdp && !p.resp.encoded());
        let restated = given.is_some()
            && sdp_origin(
                self.template().header(&Hdr::CONTENT_TYPE).as_deref(),
                self.template().body(),
            )
            .is_some_and(|o| {
                Some(o) == sdp_origin(req.header(&Hdr::CONTENT_TYPE).as_deref(), req.body())
            });
        let answered = given
            .filter(|_| restated)
            .and_then(|p| unchanged_answer(req, &p.resp).ok());
        match answered {
            Some(resp) => {
                cx.send_response(id, resp);
                true
            }
            None => {
                tracing::info!(call_id = %self.call_id(), "a new offer in the caller's PRACK: refused");
                cx.respond(
                    id,
                    req,
                    488,
                    "Not Acceptable Here",
                    &[(Hdr::WARNING, "399 trunkgate \"No new offer in PRACK\"")],
                );
                false
            }
        }
    }
}

/// 200 to `prack` carrying the SDP of `given`, the provisional it acknowledges.
fn unchanged_answer(prack: &Request, given: &Response) -> Result<Response, crate::sip::SipError> {
    let mut out = Response::to_request(prack, 200, "OK", None)?;
    let body = Bytes::copy_from_slice(given.body());
    out.set_body(body, given.header(&Hdr::CONTENT_TYPE).as_deref())?;
    Ok(out)
}
