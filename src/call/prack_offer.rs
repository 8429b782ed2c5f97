//! SDP in the caller's PRACK that is a new offer (RFC 3262 §5). The gateway terminates
//! PRACK on each leg and cannot put that offer to the callee before the answer, yet a PRACK
//! that acknowledges our provisional must get a 2xx (§3: a caller refused one does not PRACK
//! the retransmissions again, §4, and its call would fail). So the 200 answers the offer
//! itself: with the answer the caller already has when that still fits the offer, else
//! with every stream refused.

use bytes::Bytes;
use tracing::info;

use super::cx::Cx;
use super::events::CallEvent;
use super::session::sdp_origin;
use super::state::Call;
use crate::sdp::MediaBody;
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

    /// Answer 200 to the caller's PRACK `req` (transaction `id`), whose SDP is an offer. One
    /// restating the session of the caller's INVITE (the same `o=` line, RFC 3264 §8), or a
    /// new one the answer given in the PRACKed provisional still fits (as many streams, of
    /// the same transports), gets that answer unchanged: the session stays as it was (a
    /// changed address of the caller's is not followed). Anything else gets every stream
    /// refused, as RFC 3264 §6 lets an answerer refuse an offer.
    pub(super) fn answer_offer_in_prack(&mut self, cx: &mut Cx, id: TxnId, req: &Request) {
        let ct = req.header(&Hdr::CONTENT_TYPE);
        let given = (self.uas_rel.pending.as_ref())
            .filter(|p| p.has_sdp && !p.resp.encoded())
            .and_then(|p| sdp_part(&p.resp));
        let template = self.template();
        let invite_origin = sdp_origin(
            template.header(&Hdr::CONTENT_TYPE).as_deref(),
            template.body(),
        );
        let restated =
            invite_origin.is_some() && invite_origin == sdp_origin(ct.as_deref(), req.body());
        let answer = match given {
            Some(a) if restated || fits(&a, ct.as_deref(), req.body()) => {
                if !restated {
                    info!(call_id = %self.call_id(), "a new offer in the caller's PRACK: answered with the session it has");
                    self.events.push(CallEvent::PrackOfferKept);
                }
                Some((a, Some("application/sdp".to_string())))
            }
            _ => {
                info!(call_id = %self.call_id(), "a new offer in the caller's PRACK: every stream refused");
                self.events.push(CallEvent::PrackOfferRefused);
                super::ack::refusal(ct.as_deref(), req.body(), self.cfg.media_ip, None)
            }
        };
        let built = Response::to_request(req, 200, "OK", None).and_then(|mut out| {
            match answer {
                Some((body, ct)) => out.set_body(body, ct.as_deref())?,
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
    let part = crate::sdp::locate(ct.as_deref(), resp.body()).ok()??;
    Some(Bytes::copy_from_slice(resp.body().get(part.range())?))
}

/// Whether `answer` is a valid answer to the offer `offer` (Content-Type `ct`) still: as
/// many media sections, each of the same transport.
fn fits(answer: &[u8], ct: Option<&str>, offer: &[u8]) -> bool {
    let read = |ct, body| MediaBody::read(ct, body, usize::MAX).ok().flatten();
    match (read(Some("application/sdp"), answer), read(ct, offer)) {
        (Some(a), Some(o)) => {
            a.streams.len() == o.streams.len()
                && (a.streams.iter().zip(&o.streams)).all(|(a, o)| a.transport == o.transport)
        }
        _ => false,
    }
}
