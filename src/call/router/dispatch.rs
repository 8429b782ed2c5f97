//! Which call a message goes to: a CANCEL, a request or ACK in a dialog, a response to one
//! of our transactions, a stray 2xx. Only a leg's own peer speaks in its dialog; what
//! belongs to no call is answered here (481) or dropped.

use std::time::Instant;

use tracing::debug;

use super::B2bua;
use crate::call::peer_health::PeerHealth;
use crate::call::state::TxnRole;
use crate::call::{CallRef, Output, Side};
use crate::sip::{Method, Request, Response, Target};
use crate::txn::{TxnId, TxnOutput};

impl B2bua {
    /// A CANCEL: for the INVITE of a call of ours, or 481.
    pub(in crate::call) fn on_cancel(
        &mut self,
        now: Instant,
        id: TxnId,
        req: Request,
        source: Target,
    ) {
        let invite = self.env.txn.cancelled_invite(&req);
        let owner = invite.and_then(|i| self.env.owners.get(&i).copied());
        let live = owner.is_some_and(|(r, _)| self.calls.contains_key(&r));
        let found = owner.filter(|(_, role)| *role == TxnRole::CallerInvite);
        let ip = self.env.origin_ip(&req, source);
        let fronts = self.env.fronts_own(&req, source);
        // A re-INVITE's CANCEL carries our tag: it belongs to a dialog, and to its peer.
        if let (Some(invite), None, Some(tag)) = (invite, found, req.to_tag()) {
            let from = req.from_tag();
            let dialog =
                self.dialog_with(&req.call_id().unwrap_or_default(), &tag, from.as_deref());
            if let Some((r, side)) = dialog
                && self.is_leg_peer(r, side, ip)
            {
                return self.with_call_answering(r, now, id, |c, cx| {
                    c.on_cancel_relayed(cx, side, id, invite, &req)
                });
            }
        }
        match found {
            // Only the caller cancels its INVITE.
            Some((r, _)) if fronts || self.is_leg_peer(r, Side::A, ip) => {
                self.with_call_answering(r, now, id, |c, cx| c.on_cancel(cx, id, &req))
            }
            // The INVITE was answered and its call is gone: the CANCEL changes nothing. Its
            // 200 carries the tag the INVITE's response did (RFC 3261 §9.2).
            Some((r, _)) if !self.calls.contains_key(&r) => {
                let tag = invite.and_then(|i| self.env.txn.server_to_tag(i));
                (self.env).respond_tagged(now, id, &req, 200, "OK", tag.as_deref(), &[])
            }
            Some(_) => {
                debug!(%source, "CANCEL from another address than the INVITE's: 481");
                self.env
                    .respond(now, id, &req, 481, "Call/Transaction Does Not Exist", &[])
            }
            // An INVITE refused before it became a call (or whose call is gone): the CANCEL
            // matches its transaction and changes nothing (RFC 3261 §9.2).
            None if invite.is_some() && !live => {
                let tag = invite.and_then(|i| self.env.txn.server_to_tag(i));
                (self.env).respond_tagged(now, id, &req, 200, "OK", tag.as_deref(), &[])
            }
            None => self
                .env
                .respond(now, id, &req, 481, "Call/Transaction Does Not Exist", &[]),
        }
    }

    /// Whether a CANCEL of INVITE server transaction `invite` comes from that INVITE's peer:
    /// one of its call's peers, or (no call) where the INVITE came from.
    pub(in crate::call) fn is_from_invites_peer(
        &self,
        invite: TxnId,
        req: &Request,
        source: Target,
    ) -> bool {
        match self.env.owners.get(&invite) {
            Some(&(r, _)) if self.calls.contains_key(&r) => {
                let ip = self.env.origin_ip(req, source);
                self.env.fronts_own(req, source)
                    || self.is_leg_peer(r, Side::A, ip)
                    || self.is_leg_peer(r, Side::B, ip)
            }
            _ => (self.env.txn).is_from_target(invite, &self.env.heard_request(req, source)),
        }
    }

    /// The call and leg whose dialog has this Call-ID and our tag: the index's hit, checked
    /// against the dialog itself.
    pub(in crate::call) fn dialog_of(
        &self,
        call_id: &str,
        our_tag: &str,
    ) -> Option<(CallRef, Side)> {
        let (r, side) = self.env.dialogs.find(call_id, our_tag)?;
        let d = self.calls.get(&r)?.dialog(side)?;
        (*d.call_id == *call_id && *d.local_tag == *our_tag).then_some((r, side))
    }

    /// As [`Self::dialog_of`], and the far end's tag is the dialog's (RFC 3261 §12.2.2: a
    /// dialog is its Call-ID and both tags). Another fork of the same INVITE shares our tag
    /// and Call-ID: what it sends is not this dialog's.
    pub(in crate::call) fn dialog_with(
        &self,
        call_id: &str,
        our_tag: &str,
        their_tag: Option<&str>,
    ) -> Option<(CallRef, Side)> {
        let (r, side) = self.dialog_of(call_id, our_tag)?;
        let call = self.calls.get(&r)?;
        let d = call.dialog(side)?;
        // A dialog without the peer's tag is the tagless peer's alone (RFC 2543: a caller
        // whose From had none, a callee that answered without one); a callee's whose tag
        // is not known yet takes the first that speaks.
        let theirs = match d.remote_tag.as_deref() {
            Some(t) => Some(t) == their_tag,
            None => their_tag.is_none() || (side == Side::B && !d.answered),
        };
        // Or the callee's other branch, still ringing (`forks.rs`).
        (theirs || (side == Side::B && their_tag.is_some_and(|t| call.has_early_fork(t))))
            .then_some((r, side))
    }

    /// A request carrying a To tag: it belongs to one of our dialogs, or to none (481).
    pub(in crate::call) fn on_in_dialog_request(
        &mut self,
        now: Instant,
        id: TxnId,
        req: Request,
        source: Target,
    ) {
        match self.dialog_of_request(&req, source) {
            Some((r, side)) => {
                self.with_call_answering(r, now, id, |c, cx| c.on_in_dialog(cx, side, id, req))
            }
            None => self
                .env
                .respond(now, id, &req, 481, "Call/Transaction Does Not Exist", &[]),
        }
    }

    /// The call and leg whose dialog an in-dialog request from `source` is in. Only the
    /// leg's own peer speaks in its dialog: a BYE, re-INVITE or CSeq jump from anywhere else
    /// is answered as if the dialog did not exist.
    pub(in crate::call) fn dialog_of_request(
        &self,
        req: &Request,
        source: Target,
    ) -> Option<(CallRef, Side)> {
        let found = self.dialog_named_by(req);
        let ip = self.env.origin_ip(req, source);
        found.filter(|&(r, side)| self.is_leg_peer(r, side, ip))
    }

    /// The call and leg whose dialog a request in a dialog names: its Call-ID, our tag in
    /// its To, the peer's in its From.
    pub(in crate::call) fn dialog_named_by(&self, req: &Request) -> Option<(CallRef, Side)> {
        let (call_id, tag) = (
            req.call_id().unwrap_or_default(),
            req.to_tag().unwrap_or_default(),
        );
        let found = self.dialog_with(&call_id, &tag, req.from_tag().as_deref());
        // Every dialog's tag of ours is one the edge recognises (`sip::TagKey`): else its
        // requests would wait with new work under load. Every call flow the tests run
        // checks it.
        debug_assert!(
            found.is_none() || self.env.ids.tag_key().ours(&tag, &call_id),
            "the tag {tag} of a dialog of ours ({call_id}) does not check"
        );
        found
    }

    /// Whether `ip` is the peer of call `r`'s leg `side`: only it speaks in that leg's dialog.
    fn is_leg_peer(&self, r: CallRef, side: Side, ip: std::net::IpAddr) -> bool {
        self.calls.get(&r).is_some_and(|c| c.is_peer_of(side, ip))
    }

    /// An ACK for one of our 2xx responses (it is never part of a transaction of ours).
    pub(in crate::call) fn on_ack(&mut self, now: Instant, ack: &Request, source: Target) {
        let found = self.dialog_named_by(ack);
        let ip = self.env.origin_ip(ack, source);
        match found {
            Some((r, side)) if self.is_leg_peer(r, side, ip) => {
                // (Its only request on a new TCP connection, or from a NAT's new port, may be
                // this ACK.)
                if let Some(c) = self.calls.get_mut(&r) {
                    c.follow_peer(side, Some(source), ack);
                }
                self.with_call(r, now, |c, cx| c.on_ack(cx, side, ack))
            }
            _ => debug!(%source, "ACK for no dialog of its sender dropped"),
        }
    }

    /// A response to one of our client transactions.
    pub(super) fn on_client_response(&mut self, now: Instant, id: TxnId, resp: Response) {
        let Some(&(r, role)) = self.env.owners.get(&id) else {
            return;
        };
        let invite = matches!(
            role,
            TxnRole::Invite(_) | TxnRole::Relay | TxnRole::Refresh(_)
        );
        // A 2xx to an INVITE of a dialog this transaction's user handled before is a copy.
        let tag =
            (invite && resp.is_success() && resp.cseq().is_some_and(|c| c.1 == Method::Invite))
                .then(|| resp.to_tag())
                .flatten();
        let again = tag
            .as_ref()
            .is_some_and(|t| self.env.txn.handled_2xx(id, t));
        if self.calls.contains_key(&r) {
            self.with_call(r, now, |c, cx| c.on_client_response(cx, id, role, resp));
            if let Some(t) = &tag {
                self.env.txn.note_handled_2xx(id, t);
            }
        } else if invite && let Some(target) = self.env.txn.target(id) {
            // Its call is gone. A 2xx to an INVITE (a re-INVITE's too: its ACK may have
            // been lost) still needs ACK (answering an offer in it when ours went without
            // one), and BYE unless it is a copy of one handled: that dialog was ended or
            // hung up then (before, each copy got a BYE of its own).
            let how = crate::call::orphan::Unwanted {
                offerless: self.env.txn.sent_without_sdp(id).unwrap_or(false),
                hang_up: !again,
            };
            // Noted once ACKed (and hung up): one the orphans' budget or a source check
            // left unanswered gets both with a later copy.
            if self.on_stray_response(now, resp, target, how)
                && let Some(t) = &tag
            {
                self.env.txn.note_handled_2xx(id, t);
            }
        }
    }

    /// Timer B/F/H or a transport error on one of our transactions.
    pub(super) fn on_client_failure(&mut self, now: Instant, id: TxnId, timeout: bool) {
        let Some(&(r, role)) = self.env.owners.get(&id) else {
            return;
        };
        self.with_call(r, now, |c, cx| c.on_client_failure(cx, id, role, timeout));
    }

    /// A response no live call step expects. A 2xx to an INVITE is the one that matters: a
    /// retransmission gets our ACK again, and a dialog nobody will use gets ACK and BYE
    /// (`how`: whether the INVITE it answers went without SDP, and whether to hang up).
    /// Whether it was answered so (not dropped).
    pub(in crate::call) fn on_stray_response(
        &mut self,
        now: Instant,
        resp: Response,
        source: Target,
        how: crate::call::orphan::Unwanted,
    ) -> bool {
        let cseq = match resp.cseq() {
            Some((n, Method::Invite)) if resp.is_success() => n,
            _ => {
                debug!(%source, status = resp.status(), "stray response dropped");
                return false;
            }
        };
        let known = resp
            .call_id()
            .zip(resp.from_tag())
            .and_then(|(call_id, tag)| self.dialog_with(&call_id, &tag, resp.to_tag().as_deref()));
        let from = self.env.response_origin_ip(&resp, source);
        match known {
            // Only the leg's own peer answers in its dialog: a 2xx from elsewhere can make
            // the gateway send nothing and end nothing. (Through a front that does not name
            // the response's source, the front is taken at its word.)
            Some((r, side)) if from.is_some_and(|ip| !self.is_leg_peer(r, side, ip)) => {
                debug!(%source, "2xx in a dialog of another peer dropped");
                false
            }
            Some((r, side)) => {
                self.with_call(r, now, |c, cx| c.ack_again_on(cx, side, cseq, &resp));
                true
            }
            None => crate::call::orphan::ack_and_bye(&mut self.env, now, &resp, cseq, source, how),
        }
    }

    /// What the transaction layer produced: to the registrations, the pings, or the calls.
    pub(super) fn on_txn_output(&mut self, now: Instant, o: TxnOutput) {
        match o {
            TxnOutput::Send { id, target, wire } => self.env.out.push_back(Output::Transmit {
                target,
                wire,
                txn: Some(id),
            }),
            TxnOutput::Request { id, req, source } => self.on_new_request(now, id, req, source),
            TxnOutput::Response { id, resp } if self.registrations.owns(id) => self
                .registrations
                .on_response(&mut self.env, now, id, &resp),
            TxnOutput::Response { id, resp } if self.env.health.owns(id) => {
                PeerHealth::on_response(&mut self.env, id, &resp)
            }
            TxnOutput::Response { id, resp } => self.on_client_response(now, id, resp),
            TxnOutput::Timeout { id } | TxnOutput::TransportError { id }
                if self.env.health.owns(id) =>
            {
                let timeout = matches!(o, TxnOutput::Timeout { .. });
                PeerHealth::on_failure(&mut self.env, id, timeout)
            }
            TxnOutput::Timeout { id } if self.registrations.owns(id) => {
                self.registrations.on_failure(&mut self.env, now, id, true)
            }
            TxnOutput::TransportError { id } if self.registrations.owns(id) => {
                self.registrations.on_failure(&mut self.env, now, id, false)
            }
            TxnOutput::Ack { ack, source, .. } => self.on_ack(now, &ack, source),
            TxnOutput::Timeout { id } => self.on_client_failure(now, id, true),
            TxnOutput::TransportError { id } => self.on_client_failure(now, id, false),
            TxnOutput::Terminated { id } => {
                self.env.owners.remove(&id);
                crate::maps::shrink_if_sparse(&mut self.env.owners);
            }
        }
    }
}
