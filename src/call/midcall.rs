//! Within the dialogs: BYE, re-INVITE/UPDATE (hold and unhold), INFO and other mid-call
//! requests, each answered here or relayed leg to leg (`relay_request`; their answers:
//! `relayed`).

use tracing::debug;

use super::Side;
use super::admission;
use super::anchor;
use super::cx::Cx;
use super::phase::EndInfo;
use super::release::bye_cause;
use super::session::PutOff::{Glare, RetryLater};
use super::state::Call;
use super::transfer::is_refer_event;
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;
use crate::interop::egress::ACCEPT;
use crate::interop::transfer::TransferMode;
use crate::sip::{Hdr, Method, Request};
use crate::txn::TxnId;

impl Call {
    /// A request within this call's dialog on `side` (server transaction `id`).
    pub(super) fn on_in_dialog(&mut self, cx: &mut Cx, side: Side, id: TxnId, mut req: Request) {
        let privacy = req.header_lines(&Hdr::named("Privacy"));
        self.note_privacy(side, req.from_tag().as_deref(), &privacy);
        // One whose body cannot be taken apart is refused (see `unbelieved_body.rs`); an ACK
        // goes on without it, and ends the call as an ACK without its answer does.
        if self.unbelieved_isdn(side, &mut req)
            && crate::interop::isdn::may_carry_session(&req.method(), None)
        {
            cx.respond(
                id,
                &req,
                415,
                "Unsupported Media Type",
                &[(Hdr::named("Accept"), "application/sdp")],
            );
            return;
        }
        // A request in another branch's early dialog (`forks.rs`) is judged in that dialog,
        // and that branch is followed from now on if the request goes on to the caller.
        let mut followed = None;
        // A callee may not end an early dialog (RFC 3261 §15); one that does ends its own
        // branch, not the call another branch may still answer.
        if side == Side::B
            && req.method() == Method::Bye
            && let Some(tag) = req.from_tag()
            && self.branch_gone(cx, &tag)
        {
            cx.respond(id, &req, 200, "OK", &[]);
            return;
        }
        if side == Side::B
            && let Some(tag) = req.from_tag()
            && self.has_early_fork(&tag)
        {
            followed = self.b.as_ref().and_then(|b| b.remote_tag.clone());
            self.follow_fork(&tag);
        }
        self.on_in_dialog_judged(cx, side, id, req);
        if let Some(before) = followed
            && !self.relayed.iter().any(|(_, r)| r.origin_txn == id)
        {
            self.follow_fork(&before);
        }
    }

    /// [`Call::on_in_dialog`] once side B is the request's branch.
    fn on_in_dialog_judged(&mut self, cx: &mut Cx, side: Side, id: TxnId, req: Request) {
        // RFC 3261 §12.2.2: a lower CSeq than the last one is out of order.
        let cseq = req.seq();
        let heard_on = cx.env.txn.target(id);
        if let Some(leg) = self.dialog_mut(side) {
            if leg.remote_cseq.is_some_and(|last| cseq < last) {
                cx.respond(id, &req, 500, "Server Internal Error", &[]);
                return;
            }
            leg.remote_cseq = Some(cseq);
        }
        if self.dialog_mut(side).is_some() {
            self.follow_peer(side, heard_on, &req);
        }
        // An extension the request requires and we do not support is refused, not dropped
        // as the request goes on (its Require is the leg's own, RFC 3261 §8.2.2.3). Not a
        // BYE: whatever it requires, the call ends. `timer` passes on any leg: a peer's
        // refresh that insists on it is a re-INVITE we relay, not one to refuse mid-call.
        let required = match req.method() {
            Method::Bye => Some(Vec::new()),
            _ => super::admission::unsupported_required(&req, true),
        };
        match required {
            None => {
                cx.respond(id, &req, 400, "Bad Require", &[]);
                return;
            }
            Some(tags) if !tags.is_empty() => {
                let tags = tags.join(", ");
                cx.respond(id, &req, 420, "Bad Extension", &[(Hdr::UNSUPPORTED, &tags)]);
                return;
            }
            Some(_) => {}
        }
        // An INVITE without SDP asks for an offer: it crosses one still unanswered too.
        let crossing = match req.method() {
            Method::Invite => self.unanswered_offer(side),
            Method::Update if anchor::carries_sdp(&req) => self.unanswered_offer(side),
            _ => None,
        };
        match req.method() {
            Method::Bye => self.on_bye(cx, side, id, &req),
            _ if self.phase.is_ending() => {
                cx.respond(id, &req, 481, "Call/Transaction Does Not Exist", &[]);
            }
            // A second INVITE from a peer before we answered its first (RFC 3261 §14.2).
            Method::Invite if self.relayed_from(side, Method::Invite) => {
                self.put_off(cx, side, id, &req, RetryLater)
            }
            // So too a second UPDATE before its first has its final answer (RFC 3311 §5.2),
            // offer or not: relayed, the far peer would refuse one of the two.
            Method::Update if self.relayed_from(side, Method::Update) => {
                self.put_off(cx, side, id, &req, RetryLater)
            }
            // An INVITE of ours toward it is under way: glare (RFC 3261 §14.2).
            Method::Invite if self.invite_toward(side) => self.put_off(cx, side, id, &req, Glare),
            // One offer at a time across the call: an offer crossing one still unanswered
            // would leave the legs with different sessions, and a refusal of either could not
            // tell what to put back. Its sender's own offer unanswered: 500 with Retry-After;
            // one made to it, or on the other leg: 491 (RFC 3311 §5.2).
            Method::Invite | Method::Update if crossing == Some(Offerer::This) => {
                self.put_off(cx, side, id, &req, RetryLater)
            }
            // The caller's own first INVITE is not answered yet: 500 with Retry-After (RFC
            // 3261 §14.2), not the 491 of glare.
            Method::Invite
                if side == Side::A && self.caller_txn().is_some() && self.phase.is_routing() =>
            {
                cx.respond_retry_later(id, &req)
            }
            Method::Invite
                if self.reinvite_in_progress()
                    || self.pending_2xx[side].is_some()
                    || self.pending_2xx[side.other()].is_some()
                    || !matches!(self.phase, super::phase::Phase::Confirmed { .. }) =>
            {
                // One INVITE transaction at a time within a dialog (RFC 3261 §14.1).
                self.put_off(cx, side, id, &req, Glare)
            }
            Method::Invite | Method::Update if crossing.is_some() => {
                self.put_off(cx, side, id, &req, Glare)
            }
            // PRACKs are answered on the leg they arrive on, never relayed.
            Method::Prack if side == Side::A => self.on_prack_from_caller(cx, id, &req),
            Method::Prack => cx.respond(id, &req, 481, "Call/Transaction Does Not Exist", &[]),
            // A transfer lets one party make the other's side place a call: only from a
            // peer whose `[transfer]` relays, and only to a number via the gateway (RFC 3515
            // lets the recipient refuse with 403).
            Method::Refer if self.may_refer_toward(side) && self.refers_spent() => {
                tracing::warn!(call_id = %self.call_id(), ?side, "REFER past the call's limit of transfers: refused");
                cx.respond(id, &req, 403, "Too Many Transfers", &[]);
            }
            Method::Refer if self.may_refer_toward(side) => self.relay_request(cx, side, id, req),
            Method::Refer => cx.respond(id, &req, 403, "Forbidden", &[]),
            // The transferee's progress reports go back to the referrer: only on a REFER we
            // relayed to it (else a peer could put reports of its own, which the referrer may
            // act on, into the other party's dialog); RFC 6665 §4.1.3: 481 for a
            // subscription that does not exist.
            Method::Notify if req.header(&Hdr::EVENT).is_some_and(|e| is_refer_event(&e)) => {
                let reported = (req.header(&Hdr::EVENT))
                    .and_then(|e| self.refer_reported(side, &e))
                    .is_some();
                if reported && self.relays_transfers(side.other()) {
                    // (A final one ends the subscription once relayed: `relay_request`.)
                    self.relay_request(cx, side, id, req)
                } else {
                    cx.respond(id, &req, 481, "Subscription Does Not Exist", &[])
                }
            }
            Method::Invite | Method::Update if self.on_session_request(cx, side, id, &req) => {}
            // Asked whether the gateway has this dialog (the peer's own probe) or what it
            // takes: while the far leg is watched (`Call::watched`), or its peer takes no
            // OPTIONS (its `allow`, or its own Allow), the gateway answers for its own leg
            // (RFC 3261 §11.2). Relayed, the answer would wait on the far peer: one that
            // ignores OPTIONS would make this peer think the call gone, and its silence
            // would release the call.
            Method::Options
                if self.watched(side.other())
                    || !self.peer_takes(side.other(), &Method::Options) =>
            {
                let allow = self.allow_toward(side);
                let mut extra = vec![(Hdr::ALLOW, allow), (Hdr::ACCEPT, ACCEPT)];
                let supported = self.profile(side).and_then(|p| admission::supported_for(p));
                extra.extend(supported.map(|s| (Hdr::SUPPORTED, s)));
                cx.respond(id, &req, 200, "OK", &extra)
            }
            Method::Invite | Method::Update | Method::Info | Method::Options => {
                self.relay_request(cx, side, id, req)
            }
            // A method no RFC we know defines (RFC 3261 §21.5.2).
            Method::Other(_) => {
                let allow = self.allow_toward(side);
                cx.respond(id, &req, 501, "Not Implemented", &[(Hdr::ALLOW, allow)])
            }
            // SUBSCRIBE, NOTIFY, MESSAGE, PUBLISH, …: not ours to carry between the legs,
            // and not in the Allow we send (RFC 3261 §8.2.1: 405 with our Allow).
            _ => {
                let allow = self.allow_toward(side);
                cx.respond(id, &req, 405, "Method Not Allowed", &[(Hdr::ALLOW, allow)])
            }
        }
    }

    fn on_bye(&mut self, cx: &mut Cx, side: Side, id: TxnId, req: &Request) {
        cx.respond(id, req, 200, "OK", &[]);
        if self.phase.is_ending() {
            // The caller hangs up while its BYE waited for its ACK (both hung up at once):
            // its dialog is over, so is ours toward it: no 2xx again, no BYE.
            if self.pending_2xx[side]
                .as_ref()
                .is_some_and(|p| p.then_bye.is_some())
            {
                self.take_pending_2xx(side);
            }
            return;
        }
        // (Read as the gateway writes them again: a control character in a value's text is
        // left out there, not the value with its cause.)
        let reason_lines: Vec<String> = req.header_lines(&Hdr::REASON);
        let (cause, cause_source, reason_sip) = bye_cause(&reason_lines);
        // Toward the other leg: the sender's Reason values (as we write them) with the cause
        // the CDR records (normal clearing without one).
        let rebuilt = crate::interop::causes::reasons_rebuilt(&reason_lines);
        let told =
            crate::interop::causes::reasons_told(rebuilt, Q850Cause(cause), reason_sip.as_deref());
        let reason_hdr = Some(told.join(", "));
        let tag = match side {
            // Its 2xx is held for its PRACK: it has only an early dialog, and gave up on a
            // call it never had answered, as when ringing.
            Side::A if self.uas_rel.held_2xx.is_some() => CallTag::CallerCancel,
            Side::A => CallTag::CallerBye,
            Side::B => CallTag::CalleeBye,
        };
        if self.phase.is_routing() {
            // BYE on an early dialog: the caller gave up (treat as CANCEL); the callee
            // cannot answer any more (the caller gets 480).
            let (tag, status) = match side {
                Side::A => {
                    // A call-back's user1 leaving while user2 rings: its BYE is answered.
                    self.user1_left();
                    (CallTag::CallerCancel, 487)
                }
                Side::B => (tag, 480),
            };
            let end = EndInfo {
                tag,
                status,
                cause,
                cause_source,
                reason_sip,
                at: cx.now,
            };
            self.fail_call_with(cx, end);
            return;
        }
        // Answered or confirmed: hang up the other leg. A 2xx still waiting for its ACK on
        // this side (the BYE overtook the caller's ACK) is settled first, and on the other
        // once the dialogs are confirmed (a re-INVITE's answer relayed to the side now hung
        // up to). Before that, ours to the caller is the call's first: it is sent until the
        // caller ACKs it (RFC 3261 §13.3.1.4), BYE or not.
        let other = side.other();
        let confirmed = matches!(self.phase, super::phase::Phase::Confirmed { .. });
        if confirmed {
            self.settle_pending_2xx(cx);
        } else {
            self.settle_pending_2xx_on(cx, side);
        }
        // The callee hung up before the caller's ACK of the call's 2xx: the callee's 2xx is
        // ACKed now (its ACK waited for the caller's), ours goes on to the caller, and the
        // caller's BYE waits for its ACK (RFC 3261 §15).
        let other_waits = !confirmed && self.pending_2xx[other].is_some();
        if other_waits && let Some(mut p) = self.pending_2xx[other].take() {
            self.send_owed_ack(cx, other, &p);
            p.other_cseq = None;
            p.then_bye = Some(reason_hdr.clone());
            self.pending_2xx[other] = Some(p);
        }
        // The caller never ACKed our 2xx, and the callee (whose ACK waits for the caller's)
        // gave up on its own 2xx as RFC 3261 §13.3.1.4 says, 64·T1 after it: the caller's ACK
        // timeout, whichever of its end and ours came first. Before, the callee's BYE (as
        // likely as not first: its clock started a transit earlier) made it `callee_bye`.
        let caller_silent = side == Side::B
            && other_waits
            && (self.phase.answered_at())
                .is_some_and(|at| cx.now.saturating_duration_since(at) >= cx.env.timers.t1 * 48);
        let end = if caller_silent {
            self.events.push(super::CallEvent::AckTimeout(Side::A));
            EndInfo::internal(
                CallTag::PeerUnreachable,
                200,
                Q850Cause::TIMER_EXPIRY.0,
                cx.now,
            )
        } else {
            EndInfo {
                tag,
                status: 200,
                cause,
                cause_source,
                reason_sip,
                at: cx.now,
            }
        };
        self.end_call(cx, end);
        if !other_waits {
            self.send_bye(cx, other, reason_hdr);
        }
    }

    /// An INVITE from `side`'s peer is relayed and not answered yet.
    /// A request of `method` from `side` is relayed and not yet finally answered.
    fn relayed_from(&self, side: Side, method: Method) -> bool {
        self.relayed
            .iter()
            .any(|(_, r)| r.origin == side && r.origin_req.method() == method)
    }

    /// An INVITE of ours toward `side`'s peer is under way: relayed to it, our refresh, or
    /// our INVITE whose 2xx from it we have not ACKed yet (we ACK when the other side does).
    pub(super) fn invite_toward(&self, side: Side) -> bool {
        let other = side.other();
        self.relayed
            .iter()
            .any(|(_, r)| r.origin == other && r.sent.method() == Method::Invite)
            || self
                .refresh
                .as_ref()
                .is_some_and(|r| r.side == side && r.sent.method() == Method::Invite)
            || self.pending_2xx[other]
                .as_ref()
                .is_some_and(|p| p.other_cseq.is_some())
    }

    /// Who made the offer that still waits for its answer somewhere in the call, as `side`'s
    /// peer sees it, if one does.
    pub(super) fn unanswered_offer(&self, side: Side) -> Option<Offerer> {
        let by = |maker: Side| {
            if maker == side {
                Offerer::This
            } else {
                Offerer::Other
            }
        };
        // A relayed re-INVITE or UPDATE with SDP, or the caller's PRACK offer.
        if let Some((_, r)) = self.relayed.iter().find(|(_, r)| r.standing.is_some()) {
            return Some(by(r.origin));
        }
        // Our 2xx to an INVITE without SDP carries the other leg's offer; the ACK answers it.
        for s in [Side::A, Side::B] {
            if self.pending_2xx[s].as_ref().is_some_and(|p| p.offer) {
                return Some(by(s.other()));
            }
        }
        // The callee's offer in a reliable 18x, answered by the caller's PRACK.
        if self.uac_rel.awaiting_answer.is_some() {
            return Some(by(Side::B));
        }
        // Our session refresh by re-INVITE offers our last SDP again.
        if self
            .refresh
            .as_ref()
            .is_some_and(|r| anchor::carries_sdp(&r.sent))
        {
            return Some(Offerer::Other);
        }
        None
    }

    /// The peer on `side` may transfer the call (its `[transfer] mode = "relay"`).
    fn relays_transfers(&self, side: Side) -> bool {
        self.profile(side)
            .is_some_and(|p| p.transfer == TransferMode::Relay)
    }

    /// Whether a REFER from `side` may reach the other leg (`interop::transfer::relays_to`).
    fn may_refer_toward(&self, side: Side) -> bool {
        self.profile(side)
            .is_some_and(|p| crate::interop::transfer::relays_to(p, self.other_is_trunk(side)))
    }

    /// An UPDATE or INFO the other leg's peer never said it accepts (RFC 3311 §5.1: do not
    /// send it): answered here. INFO, and an UPDATE without SDP (a connected-identity
    /// refresh, as IMS networks send in the early dialog), get 200; an UPDATE with an offer
    /// before the answer cannot be carried (a re-INVITE needs a confirmed dialog), so it gets
    /// 500 with Retry-After and the session stays as it was.
    pub(super) fn answer_for_the_other_leg(
        &mut self,
        cx: &mut Cx,
        side: Side,
        id: TxnId,
        req: &Request,
    ) {
        debug!(call_id = %self.call_id(), method = %req.method(), "the other leg's peer does not allow it: answered here");
        if req.method() == Method::Update && anchor::carries_sdp(req) {
            cx.respond(
                id,
                req,
                500,
                "Server Internal Error",
                &[(Hdr::RETRY_AFTER, "5")],
            );
            return;
        }
        // An INFO that carries something (a DTMF digit, an Info Package's payload) cannot be
        // delivered: its sender is told so, as the far peer would tell it (RFC 6086 §4.2.2:
        // 469 for a package, with the packages taken; 501 for a legacy INFO), and may fall
        // back (to RFC 4733 events, say). A 200 told it the digit went through. An empty one
        // (a keep-alive) still gets its 200.
        if req.method() == Method::Info
            && (!req.body().is_empty() || req.has_header(&Hdr::named("Info-Package")))
        {
            tracing::warn!(call_id = %self.call_id(), ?side, "INFO toward a peer that does not take INFO: refused (use RFC 4733 for DTMF toward it)");
            match req.has_header(&Hdr::named("Info-Package")) {
                true => cx.respond(
                    id,
                    req,
                    469,
                    "Bad Info Package",
                    &[(Hdr::named("Recv-Info"), "")],
                ),
                false => cx.respond(id, req, 501, "Not Implemented", &[]),
            }
            return;
        }
        // Its connected identity (IMS updates P-Asserted-Identity this way) goes with the
        // next message toward the other side.
        if req.method() == Method::Update {
            self.keep_identity_for(side.other(), req);
        }
        // A 2xx to UPDATE refreshes the target: it carries our Contact (RFC 3311 §5.2).
        let transport = self
            .dialog(side)
            .map_or(crate::sip::Transport::Udp, |d| d.target.transport);
        let contact = cx.env.local.contact(transport);
        let mut extra: Vec<(Hdr, String)> = Vec::new();
        if req.method() == Method::Update {
            extra.push((Hdr::CONTACT, contact));
            // A 2xx to an UPDATE states the session timer (RFC 4028 §9): without one the
            // peer takes its session to run unrefreshed, while ours would still expire it.
            if self.phase.is_up() {
                extra.extend(self.answer_session(cx, side, req));
            }
        }
        let extra: Vec<(Hdr, &str)> = extra.iter().map(|(h, v)| (h.clone(), v.as_str())).collect();
        cx.respond(id, req, 200, "OK", &extra);
        if req.method() == Method::Update {
            self.refresh_target(side, req.contact_uri());
        }
    }

    /// A target refresh on `side` succeeded (its re-INVITE or UPDATE answered 2xx, or our
    /// re-INVITE or UPDATE answered 2xx by it): the `contact` it carried, if any, is where
    /// that peer's dialog goes from now on (RFC 3261 §12.2.1.2, §12.2.2; a PBX node that
    /// routes by Request-URI answers 404 to the old one).
    pub(super) fn refresh_target(&mut self, side: Side, contact: Option<String>) {
        if let Some(c) = contact
            && let Some(leg) = self.dialog_mut(side)
        {
            leg.remote_target = c.into();
        }
    }
}

/// Whose offer an offer would cross, as the peer that sends it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Offerer {
    /// Its own: it may not make another before that one is answered.
    This,
    /// One made to it, or one on the other leg.
    Other,
}
