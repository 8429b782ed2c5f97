//! The callee's answers to our PRACKs (RFC 3262): a challenge answered once, a 481 from a
//! forking proxy's branch that is gone (that branch ends), and a refusal or a timeout, which
//! the callee's `[prack] on_405` turns into PRACK given up or the call failed.

use tracing::info;

use super::cx::Cx;
use super::events::CallEvent;
use super::state::{Call, TxnRole};
use super::{CoreEvent, Output, Side};
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::interop::prack::On405;
use crate::sip::Response;
use crate::txn::TxnId;

impl Call {
    /// A PRACK failure (`what`: the status, or `timeout`) counted for the callee's peer (the
    /// metric `trunkgate_prack_failures_total`), which is returned; none before an attempt.
    fn count_prack_failure(&self, cx: &mut Cx, what: &str) -> Option<crate::config::PeerName> {
        let peer = self.egress_name().cloned()?;
        cx.emit(Output::Event(CoreEvent::PrackFailure {
            peer: peer.clone(),
            what: what.to_string(),
        }));
        Some(peer)
    }

    /// The final answer to our PRACK `id` (for the callee of `attempt`): a 481 from a branch
    /// that is gone (another branch was heard, or it was known gone already) ends that
    /// branch only; a challenge is answered once, with the PRACK again and the callee's
    /// credentials (an ITSP may challenge every request in the dialog); anything else is its
    /// result. Each branch's PRACK is kept for that (the caller's answer goes to every
    /// forked branch at once).
    pub(super) fn on_prack_answer(
        &mut self,
        cx: &mut Cx,
        id: TxnId,
        attempt: u32,
        resp: &Response,
    ) {
        let current = self.route.attempt() == attempt && self.phase.is_routing();
        // 481 from one branch of a forking proxy that another branch was heard from: that
        // early dialog is gone (it ended as our PRACK went), not PRACK refused. The other
        // branches are PRACKed as ever, whatever `on_405` says; so for a branch known gone
        // already (its BYE came first, or an earlier PRACK's 481). From the only branch
        // heard, it is a refusal like 405.
        // (The branch is the one our PRACK went to, whatever tag its answer carries.)
        if current
            && resp.status() == 481
            && let Some(tag) = self.uac_rel.sent_to(id)
            // (Asked first: `branch_gone` lets go of the branch's media, which the only
            // branch's 481, a refusal, must keep: its early media goes on.)
            && ((self.has_other_branch() && self.branch_gone(cx, &tag))
                || !self.knows_branch(&tag))
        {
            self.close_txn(id);
            self.uac_rel.take_sent(id);
            info!(call_id = %self.call_id(), "PRACK answered 481 by one branch: that branch is gone");
            self.count_prack_failure(cx, "481");
            self.events.push(CallEvent::PrackIgnored("481".into()));
            return;
        }
        if current
            && super::challenge::is_challenge(resp)
            && let Some(sent) = self.uac_rel.take_sent(id)
        {
            self.close_txn(id);
            match self.answer_challenge(cx, Side::B, &sent, resp, TxnRole::Prack(attempt)) {
                Ok((id, again)) => {
                    self.uac_rel.keep_sent(id, again);
                    return;
                }
                Err(why) => {
                    self.challenge_failed(resp.status(), &why);
                    // Refused like any other status: what it carried (the caller's answer
                    // to the branch's offer, which then goes in the ACK of its 2xx) is
                    // looked at there. Before, it was lost here, and that ACK went without.
                    self.uac_rel.keep_sent(id, sent);
                }
            }
        }
        self.on_prack_result(cx, id, attempt, Some(resp.status()));
    }

    /// The callee answered our PRACK `id` (`Some(status)`) or never did (`None`): a
    /// refusal gives up PRACK toward it, or fails the call, as its `on_405` says.
    pub(super) fn on_prack_result(
        &mut self,
        cx: &mut Cx,
        id: TxnId,
        attempt: u32,
        status: Option<u16>,
    ) {
        self.close_txn(id);
        let sent = self.uac_rel.take_sent(id);
        // Our PRACK to a callee that failed since: its fate is not the current callee's.
        if self.route.attempt() != attempt {
            return;
        }
        let refused = match status {
            Some(s) if (200..300).contains(&s) => false,
            Some(s) => s >= 400,
            None => true,
        };
        if !refused {
            return;
        }
        // A PRACK that carried the caller's answer to the branch's offer and was refused (or
        // never answered) answered nothing: for the callee its 2xx offers again, and the
        // ACK must carry the answer (RFC 3261 §13.2.1). Whatever the phase: that 2xx may
        // have come first, and the caller's ACK asks this when it comes.
        if let Some(tag) = sent
            .filter(super::anchor::carries_sdp)
            .and_then(|r| r.to_tag())
        {
            self.uac_rel.unanswered(&tag);
        }
        if !self.phase.is_routing() {
            return;
        }
        let what = status.map_or_else(|| "timeout".to_string(), |s| s.to_string());
        let Some(peer) = self.count_prack_failure(cx, &what) else {
            return;
        };
        let on_405 = self
            .profile(Side::B)
            .map_or(On405::Continue, |p| p.prack.on_405);
        match on_405 {
            On405::Continue => {
                info!(call_id = %self.call_id(), %peer, "PRACK refused ({what}); continuing without PRACK");
                self.uac_rel.given_up = true;
                self.events.push(CallEvent::PrackIgnored(what));
            }
            On405::Fail => {
                info!(call_id = %self.call_id(), %peer, "PRACK refused ({what}); failing the call");
                self.events.push(CallEvent::PrackFailed(what));
                self.fail_call(cx, 502, CallTag::PrackRejected, Q850Cause::PROTOCOL_ERROR);
            }
        }
    }
}
