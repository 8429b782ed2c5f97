//! The answer a callee gave to our offer in a reliable provisional (RFC 3262 §5), kept per
//! early dialog, for a 2xx that comes without SDP: put into it when the other leg still
//! needs the answer, and shown to the relay when it does not.

use super::anchor::Exchange;
use tracing::warn;

use super::Side;
use super::cx::Cx;
use super::state::{Call, EarlyAnswer};
use crate::sip::{Body, Hdr, Response};

impl Call {
    /// A reliable provisional of the callee with SDP, our INVITE having offered: its answer,
    /// kept for a 2xx that comes without one.
    pub(super) fn keep_early_answer_of_callee(&mut self, resp: &Response) {
        let offered = self.attempt.as_ref().is_some_and(|a| a.offered);
        // An encoded answer could not go into the 2xx with its Content-Encoding: not kept.
        if !offered || !super::anchor::carries_sdp(resp) || resp.encoded() {
            return;
        }
        self.uac_rel.keep_early_answer(EarlyAnswer {
            tag: resp.to_tag().unwrap_or_default().into(),
            body: bytes::Bytes::copy_from_slice(resp.body()),
            ct: resp.header(&Hdr::CONTENT_TYPE),
        });
    }

    /// The callee's 2xx, carrying the answer it gave in a reliable provisional of the same
    /// early dialog when it came without SDP and the other leg still needs it: user1 of a
    /// call-back (answered in our ACK), or a caller not given that answer reliably (its 2xx
    /// is then its only reliable answer, RFC 3261 §13.2.1): it had it unreliably, or it is
    /// queued behind a provisional still unacknowledged, which the 2xx overtakes. A caller
    /// with a provisional carrying the answer unacknowledged gets the 2xx after its PRACK
    /// (`deliver_2xx_to_caller`), the answer given.
    ///
    /// When the other leg has it already, the relay still follows the answering branch: a
    /// forking proxy's branches each answered in their own 183, and the last one anchored
    /// need not be the one whose 2xx comes.
    pub(super) fn with_early_answer(&mut self, cx: &mut Cx, mut resp: Response) -> Response {
        let needed = self.caller_txn().is_none() || !self.uas_rel.caller_has_answer();
        let tag = resp.to_tag().unwrap_or_default();
        // (An emptied one describes a session that is no more: nothing to give or anchor.)
        let Some(early) = self
            .uac_rel
            .take_early_answer(&tag)
            .filter(|a| !a.body.is_empty())
        else {
            return resp;
        };
        // A 2xx repeating the answer in SDP that cannot be read (an anchored call) is taken
        // as one without: the reliable answer is the answer (RFC 3262 §5), and the call
        // need not fail for its unreadable copy.
        let unreadable = self.unreadable_sdp(&resp).is_some();
        if super::anchor::carries_sdp(&resp) && !unreadable {
            return resp;
        }
        if needed {
            if let Err(e) = carry(&mut resp, &early.body, early.ct.as_deref(), unreadable) {
                warn!(error = %e, "cannot carry the callee's early answer in its 2xx");
            }
        } else {
            // The relay learns (again) where this branch's media is; what it would show
            // the caller is not sent.
            self.note_sdp_received(Side::B, &early.body, early.ct.as_deref());
            self.agree(Side::B, &early.body, early.ct.as_deref());
            let _ = self.anchored_body(
                cx,
                Side::B,
                &early.body,
                early.ct.as_deref(),
                Exchange::Answer,
            );
            // Unless the caller agreed to another branch's answer: then this one goes in the
            // 2xx (the caller ignores it, RFC 3261 §13.2.1) and is offered to it after its
            // ACK (`reoffer.rs`).
            let moved = self.media.as_ref().is_some_and(|m| {
                m.caller_agreed.is_some() && m.shown.a.map(|o| o.version()) != m.caller_agreed
            });
            if moved {
                if let Err(e) = carry(&mut resp, &early.body, early.ct.as_deref(), unreadable) {
                    warn!(error = %e, "cannot carry the callee's early answer in its 2xx");
                }
            } else if unreadable {
                // The caller has its answer, and a 2xx without SDP is what it expects: the
                // copy goes no further (anchored, it would be every stream refused).
                resp.remove_header(&Hdr::named("Content-Encoding"));
                if let Err(e) = resp.set_body(bytes::Bytes::new(), None) {
                    warn!(error = %e, "cannot drop the callee's unreadable copy of its answer");
                }
            }
        }
        resp
    }
}

/// Put the callee's early answer (`body`, `ct`) into its 2xx `resp`, which has no SDP that
/// can be read (`unreadable`: it has some): beside a SIP-I 2xx's ISUP (its ANM), else as
/// the whole body. Only its SDP: a SIP-I 183's ISUP (its ACM) is no part of a 2xx.
fn carry(
    resp: &mut Response,
    body: &bytes::Bytes,
    ct: Option<&str>,
    unreadable: bool,
) -> Result<(), crate::sip::SipError> {
    let sdp = (crate::sdp::is_multipart(ct))
        .then(|| crate::sdp::sdp_of(ct, body))
        .flatten()
        .map(bytes::Bytes::copy_from_slice);
    let (body, ct) = match &sdp {
        Some(sdp) => (sdp, Some("application/sdp")),
        None => (body, ct),
    };
    let isup = (!unreadable && !resp.body().is_empty() && !resp.encoded())
        .then(|| resp.header(&Hdr::CONTENT_TYPE))
        .flatten()
        .filter(|isup| !crate::sdp::is_multipart(Some(isup)) && crate::sdp::is_sdp(ct));
    if let Some(isup) = isup
        && super::next_offer::sdp_beside(resp, body, &isup)?
    {
        return Ok(());
    }
    // (What an unreadable copy said of its encoding is not the early answer's.)
    resp.remove_header(&Hdr::named("Content-Encoding"));
    resp.set_body(body.clone(), ct)
}
