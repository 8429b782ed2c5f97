//! Answers the call does not want: a 2xx that crossed our CANCEL, a second fork's, or an
//! attempt's given up for a failover. Each is ACKed, as RFC 3261 requires, on the dialog
//! it sets up, then that dialog is hung up; its retransmissions are ACKed again, no more.

use tracing::warn;

use super::Side;
use super::cx::Cx;
use super::dialog::Dialog;
use super::events::CallEvent;
use super::state::{Call, TxnRole};
use crate::cdr::CallTag;
use crate::config::PeerName;
use crate::interop::causes::Q850Cause;
use crate::sip::{Hdr, Message, Method, Response};
use crate::txn::TxnId;

impl Call {
    /// The peer the current attempt went to.
    pub(super) fn attempt_peer(&self) -> Option<PeerName> {
        self.attempt.as_ref().map(|a| a.peer.name.clone())
    }

    /// The peer attempt `n` (INVITE `txn`) went to, for an attempt no longer the current
    /// one: its place in the route. One of an earlier route (a call-back's user1's, once
    /// user2 is called) is named by the network its INVITE went to (not known behind a
    /// front).
    pub(super) fn earlier_attempt_peer(&self, cx: &Cx, txn: TxnId, n: u32) -> Option<PeerName> {
        match n.checked_sub(u32::from(self.route.before) + 1) {
            Some(i) => self.route.targets.get(usize::try_from(i).ok()?).cloned(),
            None => {
                let ip = cx.env.txn.target(txn)?.addr.ip();
                cx.env.cfg.peer_at(ip).cloned()
            }
        }
    }

    /// A 2xx to our INVITE `txn` we do not want (a late answer after CANCEL, a second
    /// fork, an attempt given up for a failover): ACK it, as RFC 3261 requires, then BYE
    /// that dialog. A retransmission of one already hung up is ACKed again, and no more.
    pub(super) fn kill_fork(
        &mut self,
        cx: &mut Cx,
        txn: TxnId,
        resp: &Response,
        peer: Option<PeerName>,
    ) {
        let Some(leg) = self.leg_of_answer(cx, txn, resp, peer.as_ref()) else {
            return;
        };
        if !self.first_release_of(resp) || !self.may_hang_up_fork() {
            let this_peer = self.is_this_attempts(&leg);
            self.ack_answer(cx, &leg, resp, (this_peer, Some(txn)));
            return;
        }
        self.ack_and_bye(cx, leg, resp, Some(txn));
        self.late_answer_released(cx, peer);
    }

    /// Whether `leg` is a fork of the INVITE now followed: its peer is the one whose
    /// credentials the call holds (an earlier attempt's peer is not).
    fn is_this_attempts(&self, leg: &Dialog) -> bool {
        self.b.as_ref().is_some_and(|b| b.call_id == leg.call_id)
    }

    /// Whether one more unwanted 2xx dialog may be hung up by BYE (counted as it is): at
    /// most [`super::forks::MAX_HUNG_UP_FORKS`] a call.
    fn may_hang_up_fork(&mut self) -> bool {
        let forks = self.forks.get_or_insert_with(Default::default);
        if forks.hung_up >= super::forks::MAX_HUNG_UP_FORKS {
            if forks.hung_up == super::forks::MAX_HUNG_UP_FORKS {
                forks.hung_up += 1;
                warn!(call_id = %self.call_id(), "more unwanted 2xx dialogs than a call hangs up: the rest are ACKed only");
            }
            return false;
        }
        forks.hung_up += 1;
        true
    }

    /// A 2xx from `peer` no call wanted was ACKed and hung up: a CDR event while the CDR
    /// is still to be written, and counted in the metrics always (one after the call's end
    /// would be in no record otherwise).
    pub(super) fn late_answer_released(&mut self, cx: &mut Cx, peer: Option<PeerName>) {
        if !self.phase.is_ending() {
            self.events.push(CallEvent::Late2xxReleased);
        }
        if let Some(peer) = peer {
            cx.emit(super::Output::Event(super::CoreEvent::LateAnswer { peer }));
        }
    }

    /// Whether the dialog of the 2xx `resp` was released already (it is a retransmission).
    pub(super) fn released_before(&self, resp: &Response) -> bool {
        let (call_id, tag) = (
            resp.call_id().unwrap_or_default(),
            resp.to_tag().unwrap_or_default(),
        );
        (self.forks.as_deref())
            .is_some_and(|f| (f.released.iter()).any(|(c, t)| **c == *call_id && **t == *tag))
    }

    /// Whether the 2xx `resp` is the first of its dialog to be released (then remembered as
    /// released): false for a retransmission of one already hung up.
    pub(super) fn first_release_of(&mut self, resp: &Response) -> bool {
        if self.released_before(resp) {
            return false;
        }
        let key = (
            resp.call_id().unwrap_or_default(),
            resp.to_tag().unwrap_or_default(),
        );
        let list = &mut self.forks.get_or_insert_with(Default::default).released;
        if list.len() >= super::forks::MAX_RELEASED_FORKS {
            list.remove(0);
        }
        list.push((key.0.into(), key.1.into()));
        true
    }

    /// The dialog the 2xx `resp` to our INVITE `txn` (to `peer`) sets up. An earlier
    /// attempt's (the call failed over since) has a Call-ID, a From and a peer of its own:
    /// side B is the next attempt's dialog by now, and its ACK and BYE must not go to the
    /// next peer, but where that INVITE went (behind a front, whose address the transaction
    /// has, the peer's `address`; else, a peer the call cannot name, the 2xx's sender).
    fn leg_of_answer(
        &self,
        cx: &Cx,
        txn: TxnId,
        resp: &Response,
        peer: Option<&PeerName>,
    ) -> Option<Dialog> {
        let mut leg = self.b.clone()?;
        if self.attempt.as_ref().is_none_or(|a| a.txn != txn) {
            leg.call_id = resp.call_id()?.into();
            leg.local_hdr = resp.header(&Hdr::FROM)?.into();
            leg.local_tag = resp.from_tag()?.into();
            let went = cx.env.txn.target(txn)?;
            let named = peer.and_then(|p| self.cfg.profiles.get(p));
            leg.target = match named {
                Some(p) if cx.env.is_front(went) => p.address,
                _ => cx.env.responder_of(resp, went),
            };
            leg.peer_allows = None;
        }
        leg.learn_from_response(resp);
        Some(leg)
    }

    /// ACK the 2xx `resp` on side B's dialog (as that 2xx sets it up), then BYE it.
    pub(super) fn ack_and_bye_b(&mut self, cx: &mut Cx, resp: &Response) {
        let Some(mut leg) = self.b.clone() else {
            return;
        };
        leg.learn_from_response(resp);
        self.ack_and_bye(cx, leg, resp, None);
    }

    /// The callee's first 2xx on an anchored call (`out`: as the caller would get it),
    /// when the caller has no answer yet and its SDP cannot be read: the caller would be
    /// connected with every stream refused, a call without audio that is billed until
    /// someone hangs up. Instead that 2xx is ACKed and hung up (its retransmissions only
    /// ACKed) and the caller gets 502, the callee's response being invalid (RFC 3261
    /// §21.5.3). Whether it was so.
    pub(super) fn refused_unreadable_answer(
        &mut self,
        cx: &mut Cx,
        resp: &Response,
        out: &Response,
    ) -> bool {
        if self.uas_rel.caller_has_answer() {
            return false;
        }
        let Some(e) = self.unreadable_sdp(out) else {
            return false;
        };
        warn!(call_id = %self.call_id(), error = %e, "the callee's 2xx carries SDP that cannot be read: call failed");
        self.events.push(CallEvent::CalleeSdpUnreadable);
        self.first_release_of(resp);
        self.ack_and_bye_b(cx, resp);
        self.fail_call(cx, 502, CallTag::MediaUnavailable, Q850Cause::INTERWORKING);
        true
    }

    /// ACK the 2xx `resp` on `leg`, then BYE it. For a fork of this attempt's INVITE the BYE
    /// carries the callee's credentials up front (a carrier that challenged the INVITE
    /// challenges its dialogs' requests too), and a challenge to it is answered once
    /// (`release.rs`). An earlier attempt's peer (a late 2xx after a failover) gets none of
    /// the credentials the call holds (they are the next peer's): its ACK carries what its
    /// own INVITE carried, its BYE its own credentials, and a challenge to that BYE is
    /// answered with them (`earlier_peer.rs`).
    /// (`txn`: the INVITE transaction it answers, when known.)
    fn ack_and_bye(&mut self, cx: &mut Cx, mut leg: Dialog, resp: &Response, txn: Option<TxnId>) {
        let this_peer = self.is_this_attempts(&leg);
        self.ack_answer(cx, &leg, resp, (this_peer, txn));
        leg.local_cseq = leg.local_cseq.max(resp.seq());
        match leg.request(Method::Bye, &cx.env.local, &mut cx.env.ids) {
            Ok(mut bye) => {
                let answerable = if this_peer {
                    self.sign(cx, Side::B, &mut bye);
                    true
                } else {
                    self.sign_for_earlier(cx, &mut bye)
                };
                let id = self.start_client(cx, bye.clone(), leg.target, TxnRole::Bye(Side::B));
                if let Some(id) = id.filter(|_| answerable) {
                    let forks = self.forks.get_or_insert_with(Default::default);
                    forks.byes.push((id, bye, leg.target));
                }
            }
            Err(e) => warn!(error = %e, "cannot build BYE"),
        }
    }

    /// ACK the 2xx `resp` on `leg`. An offer in it (the attempt's INVITE had none, and its
    /// branch's offer was not answered in our PRACK) is answered in the ACK with every
    /// stream refused (RFC 3261 §13.2.2.4). `this_peer`: the 2xx is from this attempt's
    /// callee, whose INVITE's credentials the ACK carries; else from an earlier attempt's,
    /// whose own INVITE (transaction `txn`) says whether it went without SDP (before, the
    /// current attempt's did: a call-back's user1, called without SDP, answering late
    /// while user2 was called with an offer had its offer left unanswered in the ACK).
    fn ack_answer(
        &self,
        cx: &mut Cx,
        leg: &Dialog,
        resp: &Response,
        (this_peer, txn): (bool, Option<TxnId>),
    ) {
        let cseq = resp.seq();
        let attempt_offerless = self.attempt.as_ref().is_some_and(|a| !a.offered);
        let offerless = if this_peer {
            attempt_offerless && !self.uac_rel.answered_in(&resp.to_tag().unwrap_or_default())
        } else {
            (txn.and_then(|t| cx.env.txn.sent_without_sdp(t))).unwrap_or(attempt_offerless)
        };
        let answer = offerless.then(|| self.refusing_answer(resp)).flatten();
        // The INVITE's credentials, as every ACK of its 2xx carries (RFC 3261 §13.2.2.4):
        // an earlier attempt's peer gets those its own INVITE carried, no others.
        let sent = if this_peer {
            self.invite_auth.b.as_deref()
        } else {
            (self.earlier_peers.as_deref())
                .and_then(|e| e.of_call(&leg.call_id))
                .map(|e| &e.invite)
        };
        let creds = sent
            .filter(|c| c.cseq == cseq && *c.call_id == *leg.call_id)
            .map(|c| c.lines.clone())
            .unwrap_or_default();
        let acked = leg.ack(cseq, &cx.env.local).and_then(|mut ack| {
            for (h, v) in creds {
                ack.insert_header_before_length(&h, v)?;
            }
            if let Some((body, ct)) = answer {
                ack.set_body(body, ct.as_deref())?;
            }
            Ok(ack)
        });
        match acked {
            Ok(ack) => cx.send(leg.target, &Message::Request(ack)),
            Err(e) => warn!(error = %e, "cannot build ACK"),
        }
    }
}
