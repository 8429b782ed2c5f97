//! The answers to requests relayed leg to leg (relayed INVITEs that do not end by
//! themselves: `relayed_cancel`).

use super::anchor::Exchange;
use tracing::{debug, warn};

use super::Side;
use super::challenge::is_challenge;
use super::cx::Cx;
use super::events::CallEvent;
use super::prack_offer::PrackOfferEnd;
use super::state::{Call, Relayed, TxnRole};
use super::timers::CallTimer;
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::interop::egress::relayed_response;
use crate::sip::{Body, Hdr, Method, Response};
use crate::txn::TxnId;

impl Relayed {
    /// Its origin's request ends without the far leg's answer: 487 (RFC 3261 §9.2, §15.1.2);
    /// the caller's PRACK, which acknowledged our provisional, 200 without an answer.
    pub(super) fn terminate(&self, cx: &mut Cx) {
        if self.method == Method::Prack {
            return cx.respond(self.origin_txn, &self.origin_req, 200, "OK", &[]);
        }
        cx.respond(
            self.origin_txn,
            &self.origin_req,
            487,
            "Request Terminated",
            &[],
        );
    }
}

impl Call {
    /// The far leg answered a relayed request: answer the origin the same way.
    pub(super) fn on_relayed_response(&mut self, cx: &mut Cx, id: TxnId, resp: Response) {
        let status = resp.status();
        let final_ = !resp.is_provisional();
        if !final_ {
            // Any provisional, 100 too, lets an INVITE be cancelled.
            self.relayed_invite_heard(cx, id);
            if status == 100 {
                return;
            }
        }
        let rel = if final_ {
            self.close_txn(id);
            self.take_relayed(id)
        } else {
            self.relayed
                .iter()
                .find(|(t, _)| *t == id)
                .map(|(_, r)| r.clone())
        };
        let Some(mut rel) = rel else {
            // A 2xx to a re-INVITE again (our ACK was lost): the same ACK again.
            self.ack_2xx_again(cx, &resp);
            return;
        };
        // Only an INVITE has provisionals to pass on: an UPDATE carried as a re-INVITE gets
        // none (RFC 4320 §4.1: a non-INVITE request's only provisional is a 100).
        if !final_ && rel.method != Method::Invite {
            return;
        }
        // A re-INVITE whose sender requires 100rel must have its provisionals sent reliably
        // (RFC 3262 §3), and the gateway relays a re-INVITE's unreliably: it gets none. A
        // UAS need send no provisional but the 100 its transaction sent; the final answer
        // still comes, and Timer C runs on the far leg as before.
        if !final_ && rel.origin_req.header_has_token(&Hdr::REQUIRE, "100rel") {
            return;
        }
        let far = rel.origin.other();
        if final_ && rel.sent.method() == Method::Invite {
            self.timers.clear(CallTimer::RelayedInvite);
        }
        if is_challenge(&resp) && rel.cancelled {
            // Not answered with credentials, and its realm is not the origin's business.
            self.offer_not_taken(cx, &rel);
            return rel.terminate(cx);
        }
        if is_challenge(&resp) {
            // The far peer wants credentials: the same request again, once, with them.
            match self.answer_challenge(cx, far, &rel.sent, &resp, TxnRole::Relay) {
                Ok((txn, sent)) => {
                    if rel.method == Method::Refer {
                        // The transferee knows it by the CSeq it goes again with.
                        self.refer_sent_again(far, rel.sent.seq(), sent.seq());
                    }
                    let again = Relayed {
                        sent,
                        heard: false,
                        ..rel
                    };
                    return self.relayed.push((txn, again));
                }
                Err(why) => {
                    // Not the challenge (its realm is not the origin's business): a refusal
                    // that leaves the session as it was (RFC 3261 §14.1).
                    self.challenge_failed(status, &why);
                    self.offer_not_taken(cx, &rel);
                    return self.origin_fails(cx, &mut rel, 403, "Forbidden");
                }
            }
        }
        // A REFER refused made no subscription: no report may come on it (one that came
        // would reach the referrer as the transfer's outcome).
        if final_ && rel.method == Method::Refer {
            if resp.is_success() {
                self.events.push(CallEvent::Transfer(rel.origin));
            } else {
                self.refer_refused(far, rel.sent.seq());
            }
        }
        // A transferee's final report (`Subscription-State: terminated`, RFC 6665 §4.1.3),
        // answered by the referrer: the subscription is over, and a later NOTIFY on it gets
        // 481. Not on an answer that asks for it again (491, 500, 503, 408): the transferee
        // may, and the referrer is still to hear the outcome.
        if final_
            && rel.method == Method::Notify
            && !matches!(status, 408 | 491 | 500 | 503)
            && let Some(event) = rel.origin_req.header(&Hdr::EVENT)
            && (rel.origin_req.header(&Hdr::named("Subscription-State")))
                .is_some_and(|s| super::transfer::is_terminated(&s))
        {
            if let Some(result) = super::transfer::sipfrag_status(rel.origin_req.body()) {
                self.events.push(CallEvent::TransferResult(result));
            }
            self.refer_subscription_ended(rel.origin, &event);
        }
        if final_ && self.for_a_losing_branch(cx, &mut rel, 500, "Server Internal Error") {
            return;
        }
        // A callee's branch whose early dialog is gone (it ended as the request went): the
        // caller's dialog with us is not (the INVITE is still under way), and a 481 would
        // end it, and with it the call (RFC 3261 §12.2.1.2). It gets 500 instead; the
        // branch is let go when another was heard.
        if final_ && status == 481 && far == Side::B && self.phase.is_routing() {
            if let Some(tag) = rel.sent.to_tag() {
                self.branch_gone(cx, &tag);
            }
            self.offer_not_taken(cx, &rel);
            return self.origin_fails(cx, &mut rel, 500, "Server Internal Error");
        }
        // The far peer wants a longer session interval than the gateway restated on its leg
        // (the sender's own does not reach it, RFC 4028 is per leg): the same request again,
        // once, at the peer's minimum. Relayed, its 422 would ask the sender for a change
        // that changes nothing on this leg.
        if status == 422
            && !rel.cancelled
            && let Some((txn, sent)) = self.again_after_422(cx, far, &rel, &resp)
        {
            let again = Relayed {
                sent,
                heard: false,
                retried_422: true,
                ..rel
            };
            return self.relayed.push((txn, again));
        }
        // A peer that refuses a relayed UPDATE or INFO as a method (its `Allow` said
        // otherwise, or nothing) takes it no more: the next offer toward it goes as a
        // re-INVITE, a bodiless UPDATE is answered here, and so is the next INFO, as toward
        // any peer that takes none.
        let method = rel.sent.method();
        if final_
            && matches!(status, 405 | 501)
            && matches!(method, Method::Update | Method::Info)
            && let Some(leg) = self.dialog_mut(far)
        {
            leg.peer_refuses(method.as_str());
        }
        if final_ && !resp.is_success() {
            self.offer_not_taken(cx, &rel);
            if rel.method == Method::Prack {
                return self.origin_fails(cx, &mut rel, status, "");
            }
        }
        let (exchange_tag, answered_elsewhere) = self.exchange_branch(&rel);
        if final_ && rel.method == Method::Prack && answered_elsewhere {
            self.offer_not_taken(cx, &rel);
            return self.origin_fails(cx, &mut rel, status, "");
        }
        // Target refresh (RFC 3261 §12.2.1.2, §12.2.2): a re-INVITE/UPDATE and its 2xx may
        // move either peer; the origin's Contact counts once the 2xx is sent.
        // The callee's Contact moves the dialog of the branch the exchange was with.
        let tag = exchange_tag.as_deref();
        if final_ && resp.is_success() && matches!(rel.method, Method::Invite | Method::Update) {
            self.refresh_branch_target(far, tag, resp.contact_uri());
            self.refresh_branch_target(rel.origin, tag, rel.origin_req.contact_uri());
        }
        // An UPDATE we carried as a re-INVITE: its 2xx is ACKed here (the UPDATE's sender
        // sends no ACK), to the target that 2xx just set (RFC 3261 §13.2.2.4).
        if final_
            && resp.is_success()
            && rel.method == Method::Update
            && rel.sent.method() == Method::Invite
        {
            self.send_ack(cx, far, resp.seq(), None);
        }
        // (A PRACK is no target refresh; the UPDATE it went on as is, of its own branch.)
        if final_ && resp.is_success() && rel.method == Method::Prack {
            self.refresh_branch_target(far, tag, resp.contact_uri());
        }
        if final_
            && resp.is_success()
            && matches!(rel.method, Method::Update | Method::Prack)
            && self.phase.is_routing()
        {
            self.after_early_exchange(&rel, &resp, exchange_tag.as_deref());
        }
        let refreshes =
            final_ && resp.is_success() && matches!(rel.method, Method::Invite | Method::Update);
        if refreshes {
            let had_timer = self.session[far].is_some();
            self.adopt_session(cx, far, &resp, Some(&rel.sent));
            // A timer this exchange started needs the offer we sent that leg (noted before
            // the leg had one).
            if !had_timer && self.session[far].is_some() && !rel.sent.body().is_empty() {
                let ct = rel.sent.header(&Hdr::CONTENT_TYPE);
                self.note_sdp_sent(far, rel.sent.body(), ct.as_deref(), false, None);
            }
        }
        if final_ && resp.is_success() && self.answer_unreadable(cx, &mut rel, &resp) {
            return;
        }
        let Some(tag) = self.dialog(rel.origin).map(|l| l.local_tag.clone()) else {
            return;
        };
        let Some(origin_peer) = self.profile(rel.origin).cloned() else {
            return;
        };
        let sender = self.sender(far);
        match relayed_response(
            &rel.origin_req,
            &resp,
            &tag,
            &origin_peer,
            &cx.env.local,
            sender,
        ) {
            Ok(mut out) => {
                self.carry_identity(&cx.env.local, rel.origin, &mut out);
                // Its timer first: a leg that gets one keeps the SDP it is sent now.
                if refreshes {
                    self.announce_session(cx, rel.origin, &rel.origin_req, &mut out);
                }
                // A re-INVITE without SDP asks for an offer: its responses carry it.
                let offer = rel.standing.is_none() && rel.method == Method::Invite;
                // Only a provisional or 2xx to what negotiates media answers (or offers):
                // SDP in a failure (a 488's capabilities, RFC 3261 §21.4.26) or in the 200
                // to an OPTIONS (§11.2) changes nothing of the call's media, and goes on
                // with every stream refused, never with the far peer's addresses.
                let negotiates = status < 300
                    && (rel.method == Method::Invite
                        || (rel.standing.is_some() && super::anchor::may_offer(&rel.method)));
                if negotiates {
                    if final_ && !offer {
                        self.agree_with(far, &out);
                    }
                    let exchange = match (offer, final_) {
                        (false, false) => Exchange::EarlyAnswer,
                        _ => Exchange::in_response(offer),
                    };
                    self.anchor_answer(cx, far, &mut out, exchange);
                    if let Some(m) = self.media.as_mut() {
                        // A 2xx settles the offer, with an answer in it or before it.
                        if final_ && !offer && m.moving.take().is_some() {
                            self.emit_relay(cx, None);
                        }
                    }
                } else {
                    self.neutralise_sdp(&mut out);
                }
                cx.send_response(rel.origin_txn, out.clone());
                if rel.method == Method::Prack {
                    let sdp = |ct: Option<String>, body: &[u8]| {
                        crate::sdp::sdp_of(ct.as_deref(), body).map(<[u8]>::to_vec)
                    };
                    let deferred = rel.take_deferred_2xx();
                    let end = PrackOfferEnd {
                        answer: sdp(out.header(&Hdr::CONTENT_TYPE), out.body()),
                        callee: (!resp.encoded())
                            .then(|| sdp(resp.header(&Hdr::CONTENT_TYPE), resp.body()))
                            .flatten(),
                        contact: resp.header(&Hdr::CONTACT),
                        // Crossing the callee's 2xx, its UPDATE was a refresh to it: the
                        // terms its 2xx states (none: no timer at its end) are the newer.
                        timer: (resp.is_success() && deferred.is_some()).then(|| resp.clone()),
                        deferred,
                    };
                    self.prack_offer_done(cx, end);
                }
                if rel.method == Method::Invite && resp.is_success() {
                    let cseq = rel.origin_req.seq();
                    let other_cseq = resp.seq();
                    let offer = offer && super::anchor::carries_sdp(&out);
                    self.await_ack(
                        cx,
                        rel.origin,
                        out,
                        (cseq, Some(other_cseq)),
                        rel.origin_txn,
                        offer,
                    );
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot relay {status}");
                // The origin still gets a final answer (its transaction would wait for
                // ever), and a 2xx to our INVITE its ACK.
                if final_ {
                    // (An UPDATE carried as a re-INVITE was ACKed above.)
                    if resp.is_success()
                        && rel.method == Method::Invite
                        && rel.sent.method() == Method::Invite
                    {
                        self.send_ack(cx, far, resp.seq(), None);
                    }
                    self.origin_fails(cx, &mut rel, 502, "Bad Gateway");
                }
            }
        }
        // The far leg's dialog is gone (RFC 3261 §12.2.1.2: a UAC that gets 481 or 408 SHOULD
        // end the dialog; RFC 4028 §10: a refresh that fails ends the session). The gateway
        // is that UAC: the call is released, not left up with one leg dead (its sender, told
        // the 408, would end only its own leg), as its own refresh and probe do. A NOTIFY's
        // failure ends only the transfer's subscription (RFC 5057 §5.1, RFC 6665 §4.2.2).
        if final_ && matches!(status, 408 | 481) && rel.method != Method::Notify {
            self.far_leg_lost(cx, rel.origin.other(), Q850Cause::TEMPORARY_FAILURE);
        }
    }

    /// On an anchored call, a 2xx whose answer to a relayed re-INVITE's or UPDATE's offer
    /// cannot be read (true: handled). Relayed with every stream refused, as it was, the
    /// far peer kept the session it answered while its other side was told every stream
    /// was refused: the legs disagreed for the rest of the call. Now the offer's sender
    /// keeps its session (`502`, RFC 3261 §14.1) and the far peer, its 2xx ACKed, is
    /// offered the session it had (our last SDP toward it, at the next version).
    fn answer_unreadable(&mut self, cx: &mut Cx, rel: &mut Relayed, resp: &Response) -> bool {
        let far = rel.origin.other();
        // (Once the call is up: an early dialog takes no re-INVITE to offer again in; an
        // early UPDATE's unreadable answer goes on refused, as an early answer does.)
        if !self.phase.is_up()
            || rel.standing.is_none()
            || !matches!(rel.method, Method::Invite | Method::Update)
            || self.unreadable_answer(far, resp).is_none()
        {
            return false;
        }
        warn!(call_id = %self.call_id(), ?far, "the answer to a relayed offer cannot be read: its sender keeps its session (502), the far peer is offered its session again");
        // (An UPDATE carried as a re-INVITE was ACKed above.)
        if rel.method == Method::Invite && rel.sent.method() == Method::Invite {
            self.send_ack(cx, far, resp.seq(), None);
        }
        self.offer_not_taken(cx, rel);
        self.origin_fails(cx, rel, 502, "Bad Gateway");
        self.offer_standing_session(cx, far);
        true
    }

    /// A relayed request got no answer (`timeout`), or could not be sent (a transport error,
    /// RFC 3261 §8.1.3.1: a 503, which ends no dialog, RFC 5057 §5.1: its origin gets the
    /// 503 and the call goes on; before, it got 408 and the call was released).
    pub(super) fn on_relay_failed(&mut self, cx: &mut Cx, id: TxnId, timeout: bool) {
        self.close_txn(id);
        let Some(mut rel) = self.take_relayed(id) else {
            return;
        };
        if rel.sent.method() == Method::Invite {
            self.timers.clear(CallTimer::RelayedInvite);
        }
        let (status, reason) = match timeout {
            true => (408, "Request Timeout"),
            false => (503, "Service Unavailable"),
        };
        if self.for_a_losing_branch(cx, &mut rel, status, reason) {
            return;
        }
        self.offer_not_taken(cx, &rel);
        // Cancelled, it ends as cancelled: a 408 would end the origin's dialog.
        if rel.cancelled {
            rel.terminate(cx);
        } else {
            self.origin_fails(cx, &mut rel, status, reason);
        }
        if !timeout {
            return;
        }
        // No answer at all in the far leg's dialog: as for a 481, that dialog is gone (not
        // for a NOTIFY: its subscription is; nor for an UPDATE in an early dialog, the
        // PRACK's offer, whose INVITE has its own answer). Cancelled too: the CANCEL waited
        // for a provisional that never came. (One that rang and then never answered our
        // CANCEL is not gone for that.)
        if (!rel.cancelled || !rel.heard) && !matches!(rel.method, Method::Notify | Method::Prack) {
            self.far_leg_lost(cx, rel.origin.other(), Q850Cause::TIMER_EXPIRY);
        }
    }

    /// `rel` went to a callee's branch that another has answered for since (a fork that
    /// lost, cancelled by its proxy): its outcome is not the call's. Its origin gets
    /// `status`, the caller's offer in it is dropped (its session stays the one the winner
    /// answered), and nothing else changes: no session timer or media of the losing
    /// branch's, no media restored to before the winner's answer, and its 481 or silence
    /// does not release the call the winner holds. True when so. (A PRACK has its own
    /// handling: `prack_offer`.)
    fn for_a_losing_branch(
        &mut self,
        cx: &mut Cx,
        rel: &mut Relayed,
        status: u16,
        reason: &str,
    ) -> bool {
        if rel.origin != Side::A
            || rel.method == Method::Prack
            || rel.sent.method() == Method::Invite
            || !self.exchange_branch(rel).1
        {
            return false;
        }
        self.drop_offer_of(cx, Side::A);
        self.origin_sdp_as_before(rel);
        self.origin_fails(cx, rel, status, reason);
        true
    }

    /// The offer from `side` waiting for its answer will have none: dropped, the relay
    /// kept at the addresses before it.
    pub(super) fn drop_offer_of(&mut self, cx: &mut Cx, side: Side) {
        if let Some(m) = self.media.as_mut()
            && m.proposed.as_ref().is_some_and(|(s, _)| *s == side)
        {
            m.proposed = None;
            m.offer_dropped(side);
            self.emit_relay(cx, None);
        }
    }

    /// The SDP `rel`'s origin had sent and been shown before `rel`, as it was.
    pub(super) fn origin_sdp_as_before(&mut self, rel: &Relayed) {
        if let (Some(standing), Some(seen)) =
            (rel.standing.as_deref(), self.sdp[rel.origin].as_mut())
        {
            seen.received_origin.clone_from(&standing.origin_received);
            seen.sent.clone_from(&standing.origin_sent);
            seen.uncut.clone_from(&standing.origin_uncut);
        }
    }

    /// The origin of `rel` gets `status` (the far leg's failure, or ours): the caller's
    /// PRACK, which must get a 2xx, 200 without an answer to its offer, and our 2xx that
    /// waited for it then goes.
    pub(super) fn origin_fails(
        &mut self,
        cx: &mut Cx,
        rel: &mut Relayed,
        status: u16,
        reason: &str,
    ) {
        if rel.method == Method::Prack {
            self.prack_offer_not_taken(cx, rel.origin_txn, &rel.origin_req, status);
            let deferred = rel.take_deferred_2xx();
            return self.prack_offer_done(cx, PrackOfferEnd::not_taken(deferred));
        }
        cx.respond(rel.origin_txn, &rel.origin_req, status, reason, &[]);
    }

    /// The leg on `side` of an answered call no longer has its dialog (a 481, or no answer,
    /// to a request sent to it): release the call (`peer_unreachable`, the CDR event naming
    /// the leg), both legs BYEd.
    pub(super) fn far_leg_lost(&mut self, cx: &mut Cx, side: Side, cause: Q850Cause) {
        if self.phase.is_up() {
            warn!(call_id = %self.call_id(), ?side, cause = cause.0, "that leg's dialog is gone: releasing the call");
            self.events.push(super::events::CallEvent::DialogGone(side));
            self.release_answered(cx, CallTag::PeerUnreachable, cause);
        }
    }

    /// End every relayed request (its callee failed and the next is tried): its origin gets
    /// 487 (the caller's PRACK, 200 and `prack_offer_ignored`), its offer changes nothing,
    /// and the failed callee's late answer finds no request to answer, so it cannot reach
    /// the caller as if the next callee had sent it.
    pub(super) fn end_relayed(&mut self, cx: &mut Cx) {
        for (_, mut rel) in std::mem::take(&mut self.relayed) {
            debug!(call_id = %self.call_id(), method = %rel.method, "relayed request ends with its callee");
            self.drop_deferred_2xx(cx, &mut rel);
            self.offer_not_taken(cx, &rel);
            if rel.method == Method::Prack {
                self.events
                    .push(super::events::CallEvent::PrackOfferIgnored);
            }
            rel.terminate(cx);
        }
    }
}
