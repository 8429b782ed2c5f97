//! An offer/answer in the early dialog, relayed by UPDATE (either peer's) or made of the
//! caller's PRACK offer (`prack_offer`): which branch of the callee it was with, and what it
//! leaves of the caller's session (offered to a later callee) and of the callee's answer kept
//! for a 2xx without SDP.

use super::Side;
use super::state::{Call, Relayed};
use crate::sip::{Body, Hdr, Response};

impl Call {
    /// The early dialog `rel`'s exchange was in (its tag), and whether another branch than
    /// that one answered the call meanwhile (its 2xx taken, or waiting for this answer):
    /// then this branch's session is not the call's, nor its answer the caller's.
    pub(super) fn exchange_branch(&self, rel: &Relayed) -> (Option<String>, bool) {
        let exchange_tag = match rel.origin {
            Side::A => rel.sent.to_tag(),
            Side::B => rel.origin_req.from_tag(),
        };
        let branch = self.dialog(Side::B).and_then(|d| d.remote_tag.clone());
        let same_branch = exchange_tag.as_deref() == branch.as_deref();
        let deferred_tag = (rel.standing.as_ref())
            .and_then(|s| s.deferred_2xx.as_ref())
            .map(|d| d.1.to_tag());
        let answered_elsewhere = (!same_branch && !self.phase.is_routing())
            || deferred_tag.is_some_and(|t| t.as_deref() != exchange_tag.as_deref());
        (exchange_tag, answered_elsewhere)
    }

    /// The early offer/answer of `rel` was taken (`resp`, the far leg's 2xx), in the early
    /// dialog `exchange_tag`.
    pub(super) fn after_early_exchange(
        &mut self,
        rel: &Relayed,
        resp: &Response,
        exchange_tag: Option<&str>,
    ) {
        // The caller agreed to another session than the one its PRACK did (or may have):
        // no re-offer is made of what it took early.
        if super::anchor::carries_sdp(&rel.origin_req)
            && let Some(m) = self.media.as_mut()
        {
            m.caller_agreed = None;
        }
        // An early offer/answer by UPDATE changes the caller's session, which a later callee
        // of a failover is offered: the caller's offer, or its answer.
        if self.uas_rel.early_answer.is_some() {
            let (body, ct) = match rel.origin {
                Side::A => (
                    rel.origin_req.body(),
                    rel.origin_req.header(&Hdr::CONTENT_TYPE),
                ),
                Side::B => (resp.body(), resp.header(&Hdr::CONTENT_TYPE)),
            };
            if super::anchor::carries_sdp(&rel.origin_req) {
                self.set_early_answer(body, ct);
            }
        }
        // The same for a caller that offered in its INVITE: its own new offer, taken.
        let origin = &rel.origin_req;
        if rel.origin == Side::A
            && self.caller_txn().is_some()
            && super::anchor::carries_sdp(self.template())
            && crate::sdp::is_sdp(origin.content_type().as_deref())
            && !origin.encoded()
        {
            let session = (origin.body().clone(), origin.content_type());
            self.uas_rel.caller_session = Some(Box::new(session));
        }
        // The callee's session in its early dialog is now what this exchange said: its
        // answer in a reliable provisional, kept for a 2xx without SDP, is no longer it.
        let (ct, body, encoded) = match rel.origin {
            Side::A => (resp.content_type(), resp.body(), resp.encoded()),
            Side::B => {
                let r = &rel.origin_req;
                (r.content_type(), r.body(), r.encoded())
            }
        };
        if crate::sdp::carries_sdp(ct.as_deref(), body)
            && !encoded
            && let Some(tag) = exchange_tag
        {
            // The callee's own offer stands for its answer to our INVITE's offer only in the
            // same shape (its m= lines). Another is not kept; the old answer is emptied when
            // the caller has its answer already (a 2xx without SDP then re-anchors nothing
            // stale), else kept for the caller's 2xx.
            let answers_ours = rel.origin == Side::A;
            let empty_other = self.uas_rel.answer_acked;
            self.uac_rel
                .refresh_early_answer(tag, body, ct, (answers_ours, empty_other));
        }
    }
}
