//! Peers an earlier attempt of the call went to, that challenged its INVITE: after a
//! failover, such a peer's late 2xx is ACKed with what its own INVITE carried and hung up
//! with a BYE signed with its own credentials (a challenge to that BYE is answered once).
//! None of the call's current credentials, which are the next peer's, go to it. Before,
//! that BYE carried nothing, and a carrier that challenges its dialogs' requests kept the
//! unwanted call up, billed, until its own timers ended it.

use std::sync::Arc;

use tracing::info;

use super::Side;
use super::challenge::InviteCredentials;
use super::cx::Cx;
use super::state::{Call, TxnRole};
use crate::auth::{AuthFailure, AuthSession, Retry};
use crate::config::Profile;
use crate::sip::{Request, Response, Target};

/// Earlier peers a call keeps (the oldest forgotten): a route rarely has more.
const KEPT: usize = 8;

/// One earlier attempt's peer that challenged its INVITE.
#[derive(Debug, Clone)]
pub struct EarlierPeer {
    /// What its INVITE carried: the ACK of its 2xx carries the same (RFC 3261 §13.2.2.4).
    pub invite: InviteCredentials,
    pub peer: Arc<Profile>,
    /// Its challenges, which its BYE answers up front.
    pub session: Option<Box<AuthSession>>,
}

/// The earlier peers of a call that challenged their INVITEs, the last [`KEPT`].
#[derive(Debug, Clone, Default)]
pub struct EarlierPeers(Vec<EarlierPeer>);

impl EarlierPeers {
    pub(super) fn keep(&mut self, e: EarlierPeer) {
        self.0.retain(|k| k.invite.call_id != e.invite.call_id);
        if self.0.len() == KEPT {
            self.0.remove(0);
        }
        self.0.push(e);
    }

    /// The one whose INVITE had this Call-ID (each attempt has its own).
    pub(super) fn of_call(&self, call_id: &str) -> Option<&EarlierPeer> {
        self.0.iter().find(|e| *e.invite.call_id == *call_id)
    }

    fn of_call_mut(&mut self, call_id: &str) -> Option<&mut EarlierPeer> {
        self.0.iter_mut().find(|e| *e.invite.call_id == *call_id)
    }
}

impl Call {
    /// An attempt is given up for the next peer (side B still its dialog): the peer it went
    /// to, if it challenged the INVITE or challenges inside calls whatever it did with the
    /// INVITE (`[auth] in_dialog = "always"`, a carrier that lets calls in by address), is
    /// kept with its credentials and challenges.
    pub(super) fn keep_earlier_peer(&mut self, cx: &Cx) {
        let session = self.auth.b.take();
        let invite = self.invite_auth.b.take();
        let (Some(peer), Some(b)) = (self.attempt.as_ref().map(|a| a.peer.clone()), &self.b) else {
            return;
        };
        // Kept already, its credentials with it (the next peer's INVITE could not start, and
        // the one after is tried): nothing new, which must not replace them with none.
        let kept = (self.earlier_peers.as_deref()).is_some_and(|e| e.of_call(&b.call_id).is_some());
        if kept && session.is_none() && invite.is_none() {
            return;
        }
        let always = Self::credentials_of(cx, &peer)
            .is_some_and(|c| c.in_dialog == crate::auth::InDialog::Always);
        let invite = match invite {
            Some(i) => *i,
            // Nothing for its ACK to carry.
            None if always => InviteCredentials {
                call_id: b.call_id.clone(),
                cseq: b.local_cseq,
                lines: Vec::new(),
            },
            None => return,
        };
        let earlier = EarlierPeer {
            invite,
            peer,
            session,
        };
        (self.earlier_peers.get_or_insert_default()).keep(earlier);
    }

    /// The authentication state toward the earlier peer whose INVITE had `call_id`,
    /// answering with that peer's credentials as they are now.
    fn earlier_session(&mut self, cx: &Cx, call_id: &str) -> Option<&mut AuthSession> {
        let e = self.earlier_peers.as_deref_mut()?.of_call_mut(call_id)?;
        let creds = Self::credentials_of(cx, &e.peer);
        let session = e
            .session
            .get_or_insert_with(|| Box::new(AuthSession::new(creds.clone())));
        session.use_credentials(creds);
        Some(session)
    }

    /// A BYE to an earlier peer's late 2xx: credentials up front for the challenges that
    /// peer gave. True when the BYE is to such a peer (a challenge to it is answered).
    pub(super) fn sign_for_earlier(&mut self, cx: &mut Cx, bye: &mut Request) -> bool {
        let call_id = bye.call_id().unwrap_or_default();
        let Some(session) = self.earlier_session(cx, &call_id) else {
            return false;
        };
        if session.has_cached()
            && let Err(e) = session.authorize(bye, cx.env.ids.rng())
        {
            tracing::warn!(error = %e, "cannot add credentials up front");
        }
        true
    }

    /// A challenge to our BYE `sent` (to `target`) of an earlier peer's late 2xx: sent
    /// again with that peer's credentials, when the challenge is for a realm that peer
    /// challenged its INVITE with (or its profile says it challenges inside calls always),
    /// as for the call's own legs (`challenge.rs`).
    pub(super) fn answer_earlier_challenge(
        &mut self,
        cx: &mut Cx,
        sent: &Request,
        target: Target,
        resp: &Response,
    ) -> Result<(crate::txn::TxnId, Request), AuthFailure> {
        let call_id = sent.call_id().unwrap_or_default();
        let via = cx.env.local.via(target.transport, &cx.env.ids.branch());
        let retry = Retry {
            cseq: sent.seq().wrapping_add(1),
            via,
        };
        let always = (self.earlier_peers.as_deref())
            .and_then(|e| e.of_call(&call_id))
            .and_then(|e| Self::credentials_of(cx, &e.peer))
            .is_some_and(|c| c.in_dialog == crate::auth::InDialog::Always);
        let Some(session) = self.earlier_session(cx, &call_id) else {
            return Err(AuthFailure::NoCredentials);
        };
        if !(always || session.realms_known(resp)) {
            return Err(AuthFailure::NotAuthenticatedLeg);
        }
        let req = session.on_challenge(sent, resp, retry, cx.env.ids.rng())?;
        let id = self
            .start_client(cx, req.clone(), target, TxnRole::Bye(Side::B))
            .ok_or_else(|| AuthFailure::Build("cannot start the transaction".into()))?;
        info!(call_id = %self.call_id(), status = resp.status(), "answered an earlier peer's challenge to our BYE");
        Ok((id, req))
    }
}
