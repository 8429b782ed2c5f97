//! A callee's offer in a reliable provisional, our INVITE having none (a late offer): our
//! PRACK must carry the answer (RFC 3262 §5), and only the caller can give it. A forking
//! proxy's branches each offer in their own early dialog, while the caller, with one early
//! dialog toward the gateway, answers once: that one answer answers every branch's offer.

use super::anchor::Exchange;
use bytes::Bytes;

use super::Side;
use super::cx::Cx;
use super::reliable::PrackAnswer;
use super::state::{Call, HeldPrack};

impl Call {
    /// The offer of the branch `held` came from: its PRACK waits for the caller's answer,
    /// or, when the caller has answered another branch's offer already, goes with that once
    /// this branch's offer is anchored ([`Call::answer_held_offers`]). Past
    /// `MAX_EARLY_DIALOGS` branches waiting, one goes at once without an answer.
    pub(super) fn answer_in_prack(&mut self, cx: &mut Cx, held: HeldPrack) {
        if self.uac_rel.may_hold() {
            self.uac_rel.hold_for_answer(held);
        } else {
            self.prack_held(cx, held, None);
        }
    }

    /// The PRACKs held only until their offer was anchored go now with the caller's answer
    /// (to another branch's offer); the others still wait for the caller's PRACK.
    pub(super) fn answer_held_offers(&mut self, cx: &mut Cx) {
        let Some((body, ct)) = self.uas_rel.early_answer.as_deref().cloned() else {
            return;
        };
        let Some(list) = self.uac_rel.awaiting_answer.as_mut() else {
            return;
        };
        let now: Vec<HeldPrack> = list.extract_if(.., |h| h.answer_known).collect();
        if list.is_empty() {
            self.uac_rel.awaiting_answer = None;
        }
        if now.is_empty() {
            return;
        }
        let answer = self.prack_answer(cx, &body, ct.clone(), (ct, None));
        self.prack_all_held(cx, now, Some(answer));
    }

    /// Send the PRACKs `held`, each in its own early dialog, with `answer` (the caller's).
    pub(super) fn prack_all_held(
        &mut self,
        cx: &mut Cx,
        held: Vec<HeldPrack>,
        answer: Option<PrackAnswer>,
    ) {
        for h in held {
            let tag = h.dialog.remote_tag.clone();
            if self.prack_held(cx, h, answer.clone())
                && answer.is_some()
                && let Some(tag) = tag
            {
                self.uac_rel.answered(&tag);
            }
        }
    }

    /// Whether side B's branch offered in a reliable provisional and our PRACK answered it:
    /// SDP in its 2xx is that offer again, no new one.
    pub(super) fn branch_answered_in_prack(&self) -> bool {
        let tag = self.b.as_ref().and_then(|b| b.remote_tag.as_deref());
        tag.is_some_and(|t| self.uac_rel.answered_in(t))
    }

    /// The caller's answer `body` (readable as `ct`, `None` when encoded) as our PRACK
    /// carries it to the callee: anchored when the call is, else as it came (`as_sent`: its
    /// Content-Type and Content-Encoding).
    pub(super) fn prack_answer(
        &mut self,
        cx: &mut Cx,
        body: &Bytes,
        ct: Option<String>,
        as_sent: (Option<String>, Option<String>),
    ) -> PrackAnswer {
        self.note_sdp_received(Side::A, body, ct.as_deref());
        // (`prack_callee` shapes it so again, to the same bytes.)
        let shaped = self.shaped_for(Side::B, body, ct.as_deref());
        match self.anchored_body(cx, Side::A, &shaped, ct.as_deref(), Exchange::Answer) {
            Some((body, ct)) => (body, ct, None),
            None => (body.clone(), ct.or(as_sent.0), as_sent.1),
        }
    }
}
