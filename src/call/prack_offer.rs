//! SDP in the caller's PRACK that is a new offer (RFC 3262 §5). The gateway terminates
//! PRACK on each leg and does not put that offer to the callee, yet a PRACK that
//! acknowledges our provisional must get a 2xx (§3: a caller refused one does not PRACK the
//! retransmissions again, §4, and its call would fail). An offer that restates the session
//! of the caller's INVITE is answered with the answer it already has; a changed one gets a
//! 200 without an answer, as other B2BUAs do, and the session stays as it was.

use bytes::Bytes;
use tracing::{info, warn};

use super::cx::Cx;
use super::events::CallEvent;
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

    /// Answer 200 to the caller's PRACK `req` (transaction `id`), whose SDP is an offer.
    /// One whose session is the caller's INVITE's (every line but `o=` the same: a new
    /// version at most, RFC 3264 §8) gets the answer the PRACKed provisional gave, which
    /// answers it still (none when that provisional had no SDP: the answer came in an
    /// earlier one, not kept); any other gets no answer (CDR event `prack_offer_ignored`).
    pub(super) fn answer_offer_in_prack(&mut self, cx: &mut Cx, id: TxnId, req: &Request) {
        let ct = req.header(&Hdr::CONTENT_TYPE);
        let given = (self.uas_rel.pending.as_ref())
            .filter(|p| p.has_sdp && !p.resp.encoded())
            .and_then(|p| sdp_part(&p.resp));
        let template = self.template();
        let restated = same_session(
            (
                template.header(&Hdr::CONTENT_TYPE).as_deref(),
                template.body(),
            ),
            (ct.as_deref(), req.body()),
        );
        let answer = match given {
            Some(a) if restated => {
                info!(call_id = %self.call_id(), "the caller's PRACK restates its offer: answered as before");
                Some(a)
            }
            // The answer it has came in an earlier provisional, not kept: none to give.
            None if restated => None,
            _ => {
                warn!(call_id = %self.call_id(), "a changed offer in the caller's PRACK: not passed on, answered without SDP");
                self.events.push(CallEvent::PrackOfferIgnored);
                None
            }
        };
        let built = Response::to_request(req, 200, "OK", None).and_then(|mut out| {
            match answer {
                Some(body) => out.set_body(body, Some("application/sdp"))?,
                None => out.set_no_body()?,
            }
            Ok(out)
        });
        match built {
            Ok(resp) => cx.send_response(id, resp),
            Err(_) => cx.respond(id, req, 200, "OK", &[]),
        }
    }
}

/// The SDP of a provisional we sent (its SDP part alone, of a multipart body).
fn sdp_part(resp: &Response) -> Option<Bytes> {
    let ct = resp.header(&Hdr::CONTENT_TYPE);
    crate::sdp::sdp_of(ct.as_deref(), resp.body()).map(Bytes::copy_from_slice)
}

/// Whether two bodies (Content-Type, bytes) carry SDP describing the same session: every
/// line but the `o=` line the same, in the same order.
fn same_session(a: (Option<&str>, &[u8]), b: (Option<&str>, &[u8])) -> bool {
    match (session_lines(a.0, a.1), session_lines(b.0, b.1)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The lines of a body's SDP but its `o=` line; `None` when it carries no SDP.
fn session_lines<'a>(ct: Option<&str>, body: &'a [u8]) -> Option<Vec<&'a [u8]>> {
    let lines = crate::sdp::lines(crate::sdp::sdp_of(ct, body)?).map(|l| l.text);
    Some(lines.filter(|t| !t.starts_with(b"o=")).collect())
}
