//! SDP in the caller's PRACK that is a new offer (RFC 3262 §5). The gateway terminates
//! PRACK on each leg, yet a PRACK that acknowledges our provisional must get a 2xx (§3: a
//! caller refused one does not PRACK the retransmissions again, §4, and its call would
//! fail). An offer that restates the session of the caller's INVITE is answered with the
//! answer it already has. A changed one is put to the callee as an UPDATE in its early
//! dialog (RFC 3311), when the callee said it takes UPDATE, and the callee's answer goes
//! in the PRACK's 200; our 2xx to the INVITE waits for it. Otherwise (no UPDATE, the
//! callee refuses it, another offer is under way), the PRACK gets a 200 without an answer
//! and the session stays as it was.

use bytes::Bytes;
use tracing::{info, warn};

use super::Side;
use super::cx::Cx;
use super::events::CallEvent;
use super::state::{Call, Deferred2xx};
use super::timers::CallTimer;
use crate::sip::{Body, Hdr, Method, Request, Response};
use crate::txn::TxnId;

/// How long (in T1, 8 s by default) the caller's PRACK waits for the callee's answer to its
/// offer: a UA answers an UPDATE at once, and the caller's own PRACK transaction gives up at
/// 64·T1, after which a 200 would come too late.
pub(super) const PRACK_OFFER_WAIT_T1: u32 = 16;

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

    /// Answer the caller's PRACK `req` (transaction `id`), whose SDP is an offer, with a
    /// 200. One whose session is the caller's (its INVITE's, or its last offer taken:
    /// `caller_session`; every line but `o=` the same: a new version at most, RFC 3264 §8)
    /// gets the answer the PRACKed provisional gave,
    /// which answers it still (none when that provisional had no SDP: the answer came in
    /// an earlier one, not kept). Any other is put to the callee when it can be
    /// ([`Call::may_put_prack_offer`]), its 200 then sent with the callee's answer; else it
    /// gets no answer (CDR event `prack_offer_ignored`).
    pub(super) fn answer_offer_in_prack(&mut self, cx: &mut Cx, id: TxnId, req: &Request) {
        let ct = req.header(&Hdr::CONTENT_TYPE);
        let given = (self.uas_rel.pending.as_ref())
            .filter(|p| p.has_sdp && !p.resp.encoded())
            .and_then(|p| sdp_part(&p.resp));
        // The caller's session: its INVITE's, or as an offer of its own since changed it.
        let template = self.template();
        let (session_ct, session) = match self.uas_rel.caller_session.as_deref() {
            Some((body, ct)) => (ct.clone(), body),
            None => (template.header(&Hdr::CONTENT_TYPE), template.body()),
        };
        let restated = same_session(
            (session_ct.as_deref(), session),
            (ct.as_deref(), req.body()),
        );
        let answer = match given {
            Some(a) if restated => {
                info!(call_id = %self.call_id(), "the caller's PRACK restates its offer: answered as before");
                Some(a)
            }
            // The answer it has came in an earlier provisional, not kept: none to give.
            None if restated => None,
            _ if self.may_put_prack_offer() => {
                info!(call_id = %self.call_id(), "a changed offer in the caller's PRACK: put to the callee in an UPDATE");
                return self.relay_request(cx, Side::A, id, req.clone());
            }
            _ => return self.prack_offer_not_taken(cx, id, req, 0),
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

    /// Whether a changed offer in the caller's PRACK can go to the callee as an UPDATE: the
    /// call is unanswered and the caller has the answer to its INVITE's offer; the
    /// PRACKed provisional is the current callee's, whose early dialog is known, has
    /// completed its first offer/answer reliably, and who said it takes UPDATE (RFC 3311
    /// §5.1: no offer in an UPDATE before that exchange, and no UPDATE to a peer that never
    /// said it takes one), and no other offer is under way on either leg (one offer at a
    /// time across the call). Not with a forking proxy's branches: an UPDATE changes one
    /// branch's session, and another may answer the call.
    fn may_put_prack_offer(&self) -> bool {
        let this_callee =
            (self.uas_rel.pending.as_ref()).is_some_and(|p| p.attempt == self.route.attempt());
        let exchanged = (self.dialog(Side::B).and_then(|d| d.remote_tag.as_deref()))
            .is_some_and(|tag| self.uac_rel.exchange_done(tag));
        // The caller has the answer to its INVITE's offer: an offer before that, in the
        // PRACK of a provisional without SDP, is no new offer we could put.
        let answered = self.uas_rel.caller_has_answer();
        self.phase.is_routing()
            && answered
            && this_callee
            && !self.uas_rel.failover_waits
            && exchanged
            && self.uac_rel.early_dialogs() == 1
            && self.peer_lists(Side::B, &Method::Update)
            && self.unanswered_offer(Side::A).is_none()
            && self.unanswered_offer(Side::B).is_none()
    }

    /// The caller's PRACK carries an offer being put to the callee: our 2xx to the INVITE
    /// waits for the PRACK's answer.
    pub(super) fn prack_offer_out(&self) -> bool {
        self.relayed.iter().any(|(_, r)| r.method == Method::Prack)
    }

    /// The caller's PRACK `req` (transaction `id`) gets 200 without an answer to its offer:
    /// it could not be put to the callee (`status` 0), or the callee's UPDATE ended with
    /// `status`. The session stays as it was; CDR event `prack_offer_ignored`.
    pub(super) fn prack_offer_not_taken(
        &mut self,
        cx: &mut Cx,
        id: TxnId,
        req: &Request,
        status: u16,
    ) {
        if status == 0 {
            warn!(call_id = %self.call_id(), "a changed offer in the caller's PRACK: not passed on, answered without SDP");
        } else {
            warn!(call_id = %self.call_id(), status, "the callee did not take the offer in the caller's PRACK: answered without SDP");
        }
        self.events.push(CallEvent::PrackOfferIgnored);
        cx.respond(id, req, 200, "OK", &[]);
    }

    /// The callee's 2xx to the INVITE came while the PRACK's offer is with it: kept until
    /// that offer is answered or not (a retransmission replaces it; another branch's, while
    /// the first's waits, is ACKed and hung up).
    pub(super) fn defer_2xx_for_prack_offer(&mut self, cx: &mut Cx, txn: TxnId, resp: Response) {
        // The callee has answered: no ring timeout while its 2xx waits.
        self.timers.clear(CallTimer::Ring);
        let prack = self.relayed.iter_mut().map(|(_, r)| r);
        let standing = prack
            .filter(|r| r.method == Method::Prack)
            .find_map(|r| r.standing.as_mut());
        match standing {
            // Another branch's answer, the first one's waiting: ACKed and hung up now.
            Some(s)
                if s.deferred_2xx
                    .as_ref()
                    .is_some_and(|d| d.1.to_tag() != resp.to_tag()) =>
            {
                let peer = self.attempt_peer();
                self.kill_fork(cx, txn, &resp, peer);
            }
            Some(s) => s.deferred_2xx = Some(Box::new((txn, resp))),
            // (A PRACK relay always has its offer's standing: never so.)
            None => {}
        }
    }

    /// The PRACK relay `rel` ends with the call (or its callee): a 2xx that waited for it is
    /// ACKed and hung up, not left to its retransmissions (a callee over TCP sends none).
    pub(super) fn drop_deferred_2xx(&mut self, cx: &mut Cx, rel: &mut super::state::Relayed) {
        if let Some((txn, resp)) = rel.take_deferred_2xx().map(|d| *d) {
            let peer = self.attempt_peer();
            self.kill_fork(cx, txn, &resp, peer);
            // The attempt is over with it: its INVITE transaction is not the call's to wait
            // for (before, the call was held until the linger's 40 s).
            if self.attempt.as_ref().is_some_and(|a| a.txn == txn) {
                self.finish_attempt();
            }
        }
    }

    /// The caller's PRACK has been answered, its offer taken or not (`end`). A 2xx of the
    /// callee's that came meanwhile is taken now: when the offer was taken, with the SDP the
    /// callee answered it with (its 2xx's may be from before, RFC 6337 §3.1.1), so that it
    /// describes the session as the caller now has it. Else the next reliable provisional
    /// queued meanwhile goes. After an answer, the SDP of every provisional still queued is
    /// that answer's: theirs was anchored as they came, before it (an older session; each is
    /// numbered as it goes, `send_next_queued`); the caller's offer/answer is done, and the same SDP again
    /// changes nothing (RFC 3264 §8). (No 2xx is held for the caller meanwhile: a PRACK
    /// offer goes only while the call is unanswered, and the callee's 2xx waits unprocessed.)
    pub(super) fn prack_offer_done(&mut self, cx: &mut Cx, end: PrackOfferEnd) {
        self.timers.clear(CallTimer::PrackOffer);
        if let Some(sdp) = &end.answer {
            for r in self.uas_rel.queue.iter_mut().flat_map(|q| q.iter_mut()) {
                set_sdp(r, sdp);
            }
        }
        if let Some((txn, mut resp)) = end.deferred.map(|d| *d) {
            if let Some(sdp) = &end.callee {
                set_sdp(&mut resp, sdp);
            }
            // The UPDATE's 2xx came after this one was sent: its Contact is the callee's.
            if let Some(contact) = &end.contact
                && resp.set_header(&Hdr::CONTACT, contact.clone()).is_err()
            {
                warn!(call_id = %self.call_id(), "cannot keep the callee's newer Contact");
            }
            let branch = resp.to_tag();
            self.on_invite_2xx(cx, txn, resp);
            if let Some(update_2xx) = end.timer
                && self.phase.is_up()
                && update_2xx.to_tag() == branch
            {
                self.adopt_session(cx, Side::B, &update_2xx, None);
            }
            return;
        }
        self.send_next_queued(cx);
    }

    /// [`CallTimer::PrackOffer`]: the callee has not answered the UPDATE in time. The PRACK
    /// gets 200 without an answer and the session stays as it was; the UPDATE's own answer,
    /// if it still comes, finds nothing waiting for it.
    pub(super) fn on_prack_offer_timer(&mut self, cx: &mut Cx) {
        let Some(i) = self
            .relayed
            .iter()
            .position(|(_, r)| r.method == Method::Prack)
        else {
            return;
        };
        // Given up: its retransmissions stop, and a late answer finds no transaction.
        let mut rel = self.give_up_relayed(cx, i);
        self.offer_not_taken(cx, &rel);
        self.origin_fails(cx, &mut rel, 408, "Request Timeout");
    }
}

/// How the caller's offer in its PRACK ended, for [`Call::prack_offer_done`].
pub(super) struct PrackOfferEnd {
    /// The SDP of the answer the PRACK's 200 gave (anchored); none when not taken.
    pub answer: Option<Vec<u8>>,
    /// The SDP the callee answered the offer with, as it came (none when encoded).
    pub callee: Option<Vec<u8>>,
    /// The Contact of the callee's answer to the UPDATE (of the branch that answered).
    pub contact: Option<String>,
    /// The callee's 2xx to the UPDATE, when it crossed the callee's 2xx to the INVITE: to
    /// the callee the UPDATE was then a refresh (RFC 4028), and the session timer terms of
    /// its 2xx (none stated: the callee runs none, and the gateway refreshes) follow the
    /// INVITE's.
    pub timer: Option<Response>,
    /// The callee's 2xx to the INVITE that came meanwhile, with its transaction.
    pub deferred: Option<Deferred2xx>,
}

impl PrackOfferEnd {
    /// The offer was not taken.
    pub fn not_taken(deferred: Option<Deferred2xx>) -> Self {
        PrackOfferEnd {
            answer: None,
            callee: None,
            contact: None,
            timer: None,
            deferred,
        }
    }
}

/// Make the SDP `resp` carries, if any, `sdp`: the whole body when it is SDP, its SDP part
/// in a multipart one (an ISUP beside it stays); an encoded body is left as it is.
fn set_sdp(resp: &mut Response, sdp: &[u8]) {
    let ct = resp.header(&Hdr::CONTENT_TYPE);
    if resp.encoded() || !crate::sdp::carries_sdp(ct.as_deref(), resp.body()) {
        return;
    }
    let body = match crate::sdp::locate(ct.as_deref(), resp.body()) {
        Ok(Some(part)) => part.splice(resp.body(), sdp),
        _ => return,
    };
    if resp.set_body(body, ct.as_deref()).is_err() {
        warn!("cannot give a response to the caller the SDP it has");
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
