//! Trunk credentials in a call: a peer's 401/407 to a request the gateway sent it (the INVITE,
//! a PRACK, a BYE, a relayed re-INVITE/UPDATE/INFO, a probe's OPTIONS) is answered once with digest credentials from that
//! peer's `[auth]` (RFC 3261 §22.2, RFC 7616), as a new transaction with the next CSeq, same
//! Call-ID and From tag. The challenge is kept per leg (`auth::AuthSession`), so the leg's
//! later requests carry credentials up front. A challenge that cannot be answered, or that
//! comes again for our answer, ends that request (`auth_failed` in the CDR; a probe's, once a
//! call: `probe.rs`).

use tracing::{info, warn};

use super::Side;
use super::cx::Cx;
use super::events::CallEvent;
use super::state::{Call, TxnRole};
use std::sync::Arc;

use crate::auth::{AuthFailure, AuthSession, ChallengeKind, Credentials, Retry};
use crate::sip::{Hdr, Method, Request, Response};
use crate::txn::TxnId;

/// Whether `resp` is a digest challenge (401 or 407).
pub(super) fn is_challenge(resp: &Response) -> bool {
    ChallengeKind::for_status(resp.status()).is_some()
}

/// The Authorization/Proxy-Authorization lines of the INVITE with CSeq `cseq`.
#[derive(Debug, Clone)]
pub struct InviteCredentials {
    /// The INVITE's Call-ID: each attempt of a call has its own.
    pub call_id: Box<str>,
    pub cseq: u32,
    pub lines: Vec<(crate::sip::Hdr, String)>,
}

impl Call {
    /// The authentication state toward the peer on `side`, made on first use from that
    /// peer's profile, answering with its credentials as they are now.
    fn auth_session(&mut self, cx: &Cx, side: Side) -> Option<&mut AuthSession> {
        let creds = self.credentials_now(cx, side)?;
        match self.auth[side].as_deref_mut() {
            Some(s) => s.use_credentials(creds),
            None => self.auth[side] = Some(Box::new(AuthSession::new(creds))),
        }
        self.auth[side].as_deref_mut()
    }

    /// `side`'s peer's `[auth]` as the running configuration has it, while a profile of its
    /// name is there for the same peer (its `address` and `match` unchanged) and has one: a
    /// call keeps the configuration it began with, but not a password the carrier has
    /// changed (with the old one, a call up across the reload could neither refresh nor hang
    /// up its leg once challenged). Else the call's own: a name given to another carrier
    /// must not answer the old one's challenges, nor an `[auth]` removed leave the call
    /// without any.
    fn credentials_now(&self, cx: &Cx, side: Side) -> Option<Option<Arc<Credentials>>> {
        Some(Self::credentials_of(cx, self.profile(side)?))
    }

    /// [`Call::credentials_now`] of the peer whose profile, as the call began with it, is
    /// `own`.
    pub(super) fn credentials_of(
        cx: &Cx,
        own: &Arc<crate::config::Profile>,
    ) -> Option<Arc<Credentials>> {
        let same_peer = |now: &&Arc<crate::config::Profile>| {
            now.address.addr == own.address.addr && now.matches == own.matches
        };
        let now = (cx.env.cfg.profiles.get(&own.name))
            .filter(same_peer)
            .and_then(|now| now.auth.clone());
        now.or_else(|| own.auth.clone())
    }

    /// A new request on `side`'s dialog gets credentials up front for the challenges that
    /// leg has seen (nothing when it has seen none).
    pub(super) fn sign(&mut self, cx: &mut Cx, side: Side, req: &mut Request) {
        if !self.auth[side].as_ref().is_some_and(|s| s.has_cached()) {
            return;
        }
        let Some(session) = self.auth_session(cx, side) else {
            return;
        };
        match session.authorize(req, cx.env.ids.rng()) {
            Ok(()) => self.keep_for_ack(side, req),
            Err(e) => warn!(error = %e, "cannot add credentials up front"),
        }
    }

    /// An INVITE sent on `side` with credentials: the ACK of its 2xx carries them too (RFC
    /// 3261 §13.2.2.4), whether it is the first INVITE or a re-INVITE.
    pub(super) fn keep_for_ack(&mut self, side: Side, req: &Request) {
        if req.method() == Method::Invite {
            self.invite_auth[side] = Some(Box::new(Self::invite_credentials(req)));
        }
    }

    /// Answer the challenge `resp` to `sent` (on `side`, whose dialog gives the next CSeq):
    /// the same request again with credentials, sent as a new client transaction of `role`.
    /// Returns it and its transaction, or why not (the caller ends the request).
    pub(super) fn answer_challenge(
        &mut self,
        cx: &mut Cx,
        side: Side,
        sent: &Request,
        resp: &Response,
        role: TxnRole,
    ) -> Result<(TxnId, Request), AuthFailure> {
        let Some(leg) = self.dialog_mut(side) else {
            return Err(AuthFailure::Build("no dialog".into()));
        };
        leg.local_cseq = leg.local_cseq.wrapping_add(1);
        let (cseq, target) = (leg.local_cseq, leg.target);
        self.answer_challenge_to(cx, side, (cseq, target), sent, resp, role)
    }

    /// [`Call::answer_challenge`] for a request outside `side`'s dialog (a BYE to a fork
    /// of its INVITE): sent again as `cseq`, to `target`.
    pub(super) fn answer_challenge_to(
        &mut self,
        cx: &mut Cx,
        side: Side,
        (cseq, target): (u32, crate::sip::Target),
        sent: &Request,
        resp: &Response,
        role: TxnRole,
    ) -> Result<(TxnId, Request), AuthFailure> {
        // A request inside a dialog goes to the far end's Contact, through the peer: a
        // challenge to it may be the far end's own (a caller's, or a callee's on a carrier
        // that relays in-dialog responses), which would take a digest of the trunk's
        // password home, or one to spend on the carrier as the trunk (a re-INVITE's, for
        // the URI it chose as its Contact). Unless the profile says its peer challenges
        // inside calls it never challenged (`[auth] in_dialog = "always"`), only a leg whose
        // INVITE the peer authenticated is one it challenges, and only for a realm it
        // challenged the INVITE with.
        // The attempt's own INVITE (sent again after a 422 too), by its role: a request in
        // a dialog whose peer gave no To tag (RFC 2543) carries none either.
        let initial = matches!(role, TxnRole::Invite(_));
        // (The peer's settings now: a reload's `in_dialog` reaches calls up, as its
        // password does.)
        let always = (self.credentials_now(cx, side).flatten())
            .is_some_and(|c| c.in_dialog == crate::auth::InDialog::Always);
        let invite_authenticated = self.invite_auth[side].is_some();
        let via = cx.env.local.via(target.transport, &cx.env.ids.branch());
        let retry = Retry { cseq, via };
        // The running credentials first (a reload's): the realms are judged on what they
        // would answer, as they are what answers. Before, a challenge to a request in flight
        // across a reload was judged with the old ones and answered with the new.
        let Some(session) = self.auth_session(cx, side) else {
            return Err(AuthFailure::NoCredentials);
        };
        let answerable = initial || always || (invite_authenticated && session.realms_known(resp));
        if !answerable {
            return Err(AuthFailure::NotAuthenticatedLeg);
        }
        let req = session.on_challenge(sent, resp, retry, cx.env.ids.rng())?;
        self.keep_for_ack(side, &req);
        // An INVITE sent again with credentials: its peer's silence is timed anew.
        let silence = (self.attempt.as_ref())
            .filter(|_| req.method() == Method::Invite)
            .and_then(|a| a.peer.invite_timeout);
        let id = self
            .start_client_timed(cx, req.clone(), target, role, silence)
            .ok_or_else(|| AuthFailure::Build("cannot start the transaction".into()))?;
        info!(call_id = %self.call_id(), method = %req.method(), status = resp.status(), "answered the peer's challenge");
        Ok((id, req))
    }

    /// A challenge this call could not answer: counted, logged, the request ends.
    pub(super) fn challenge_failed(&mut self, status: u16, why: &AuthFailure) {
        info!(call_id = %self.call_id(), status, "peer's challenge not answered: {why}");
        self.events.push(CallEvent::AuthFailed);
    }

    /// The credentials an INVITE carried, for the ACK of its 2xx (RFC 3261 §13.2.2.4: the
    /// ACK carries the same credentials as the INVITE).
    pub(super) fn invite_credentials(invite: &Request) -> InviteCredentials {
        let lines = [Hdr::AUTHORIZATION, Hdr::PROXY_AUTHORIZATION]
            .into_iter()
            .flat_map(|h| {
                invite
                    .header_lines(&h)
                    .into_iter()
                    .map(move |v| (h.clone(), v))
            })
            .collect();
        InviteCredentials {
            call_id: invite.call_id().unwrap_or_default().into(),
            cseq: invite.seq(),
            lines,
        }
    }
}
