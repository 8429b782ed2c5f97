//! A peer's secret, and the per-dialog state that answers its challenges: which challenges
//! were seen (so later requests carry credentials up front), the nonce count of each nonce,
//! and which requests were already answers (so a rejected password is not retried forever).

use std::collections::VecDeque;
use std::sync::Arc;

use thiserror::Error;

use super::digest::{
    self, Algorithm, Challenge, ChallengeError, ChallengeKind, DigestInput, parse_header_lines,
    split_challenges,
};
use crate::sip::{Hdr, Request, Response, SipError};

/// A password. Its `Debug` is redacted and it has no `Display`, so it cannot reach a log,
/// an error message, a metric or a CDR by accident; only the digest computation reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A peer's digest credentials (`[auth]` of its profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    /// Answer only this realm; `None` answers any.
    pub realm: Option<String>,
    /// Algorithms we answer, preferred first; others are never answered.
    pub algorithms: Vec<Algorithm>,
    /// Which challenges inside a call are answered (`[auth] in_dialog`).
    pub in_dialog: InDialog,
}

/// Which challenges to requests inside a call are answered. Such a request goes to the far
/// end's Contact through the peer, so a challenge to it may be the far end's own, relayed:
/// answered, it would take home a digest of the password (or, for a re-INVITE, one to
/// spend on the carrier as us, for a URI of its choosing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InDialog {
    /// Only on a call whose INVITE the peer challenged, and only for a realm it challenged
    /// the call with.
    #[default]
    Challenged,
    /// On any call with the peer, for any realm `realm` allows: a carrier that lets calls in
    /// by address and challenges only the requests inside them.
    Always,
}

impl Credentials {
    /// Whether a challenge is one these credentials may answer, and how much we like it
    /// (lower is better).
    fn rank(&self, ch: &Challenge) -> Option<usize> {
        if self.realm.as_ref().is_some_and(|r| r != &ch.realm) {
            return None;
        }
        self.algorithms.iter().position(|a| *a == ch.algorithm)
    }
}

/// Why a challenge is not answered. The call layer fails the attempt (failover applies, CDR
/// event `auth_failed`); the registration client backs off.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthFailure {
    #[error("challenged, but the peer's profile has no [auth] credentials")]
    NoCredentials,
    #[error("{0} is not an authentication challenge")]
    NotAChallenge(u16),
    #[error("no digest challenge we can answer: {0}")]
    NoUsableChallenge(String),
    #[error("challenge for realm {offered:?}, but [auth] realm is {configured:?}")]
    RealmMismatch { offered: String, configured: String },
    #[error("challenge offers only algorithms [auth] algorithm does not allow ({0})")]
    AlgorithmNotAllowed(String),
    #[error("challenged again with the same nonce: the peer refused our credentials")]
    SameNonce,
    #[error("challenged again after answering: the peer refused our credentials")]
    Rejected,
    #[error("gave up after {0} challenges for one request")]
    TooManyRounds(u8),
    #[error("cannot build the authenticated request: {0}")]
    Build(String),
    #[error(
        "a challenge inside a dialog whose INVITE the peer never authenticated, or for a realm it did not: it may come from the far end, which is not given the trunk's credentials ([auth] in_dialog)"
    )]
    NotAuthenticatedLeg,
}

impl AuthFailure {
    /// The CDR event of an attempt that failed this way.
    pub const CDR_EVENT: &'static str = "auth_failed";
}

impl From<SipError> for AuthFailure {
    fn from(e: SipError) -> Self {
        AuthFailure::Build(e.to_string())
    }
}

/// Challenge rounds per original request: a 407 from a proxy, a 401 from the server behind
/// it, and one stale nonce. A peer asking more often is refusing us.
pub const MAX_ROUNDS: u8 = 3;
/// Challenges remembered per dialog (one per realm and header, in practice one or two).
const MAX_CACHED: usize = 4;
/// Answers whose CSeq we remember, to tell an answer being refused from a first challenge
/// (and count its rounds). More than a leg's requests in flight (eight relayed, its own:
/// PRACKs, a refresh, a probe, a BYE) times [`MAX_ROUNDS`] answers each: an entry evicted
/// while its request could still be challenged made that request's refusal look like a
/// first challenge, answered again, and a peer refusing a burst of them was answered
/// round after round without end.
const MAX_ANSWERED: usize = 64;

/// What the retried request needs that only the caller knows: its new CSeq number (the
/// dialog's next) and its top Via (a new branch: it is a new transaction).
#[derive(Debug, Clone)]
pub struct Retry {
    pub cseq: u32,
    pub via: String,
}

#[derive(Debug, Clone)]
struct Cached {
    kind: ChallengeKind,
    challenge: Challenge,
    /// Nonce count last sent with this challenge's nonce.
    nc: u32,
    /// For a `-sess` algorithm, the cnonce of our first answer to this nonce: its session
    /// key (A1) is made of the nonce and that cnonce (RFC 7616 §3.4.2, RFC 2617 §3.2.2.2),
    /// and a server that keeps the key refuses a later request computed with another.
    session_cnonce: Option<String>,
}

/// Per-dialog (or per-registration) authentication state toward one peer.
#[derive(Debug, Clone)]
pub struct AuthSession {
    creds: Option<Arc<Credentials>>,
    cached: Vec<Cached>,
    /// Requests we built as answers to a challenge.
    answered: VecDeque<Answered>,
}

/// A request built to answer a challenge: its CSeq, its round, and the challenges it
/// answered with the nonce they had just given (kind and realm); its other credentials went
/// up front, with nonces of earlier challenges.
#[derive(Debug, Clone)]
struct Answered {
    cseq: u32,
    /// The request's To tag: a second branch's dialog (hung up with a BYE of its own) has
    /// another, and its numbers may be the main dialog's.
    to_tag: Option<Box<str>>,
    round: u8,
    fresh: Vec<(ChallengeKind, String)>,
}

impl AuthSession {
    /// `creds`: the peer's `[auth]`, or `None` when its profile has none (every challenge
    /// then fails with `NoCredentials`).
    pub fn new(creds: Option<Arc<Credentials>>) -> Self {
        AuthSession {
            creds,
            cached: Vec::new(),
            answered: VecDeque::new(),
        }
    }

    /// Answer with `creds` from now on (a reload changed the peer's password while the call
    /// was up): the challenges seen so far are kept, answered with them, but for those the
    /// new settings would not answer (another `realm`, an `algorithm` no longer allowed):
    /// credentials sent up front are an answer too.
    pub fn use_credentials(&mut self, creds: Option<Arc<Credentials>>) {
        if let Some(c) = &creds {
            self.cached.retain(|k| c.rank(&k.challenge).is_some());
        }
        self.creds = creds;
    }

    /// Forget the challenges seen: later requests go without credentials until the next
    /// challenge (after the peer refused them, the refused nonce is not sent again).
    pub fn forget_challenges(&mut self) {
        self.cached.clear();
    }

    /// Whether later requests will carry credentials up front.
    pub fn has_cached(&self) -> bool {
        !self.cached.is_empty()
    }

    /// Whether every challenge of `resp` that [`AuthSession::on_challenge`] would answer
    /// names a realm this session answered before (one the peer challenged the call's
    /// INVITE with): see [`InDialog::Challenged`]. Judged on exactly what would be
    /// answered, each kind chosen on its own (a proxy merging its branches' answers puts
    /// both kinds in one, §16.7): before, both kinds' lines were read as one list, capped
    /// at 16 challenges, and a WWW-Authenticate padded with junk hid a Proxy-Authenticate
    /// of a realm of the far end's choosing, which was then answered.
    pub fn realms_known(&self, resp: &Response) -> bool {
        let Some(creds) = &self.creds else {
            return false;
        };
        if ChallengeKind::for_status(resp.status()).is_none() {
            return false;
        }
        let mut answered = 0;
        for kind in [ChallengeKind::Www, ChallengeKind::Proxy] {
            let lines = resp.header_lines(&header(kind.challenge_header()));
            for ch in choose(creds, &lines).unwrap_or_default() {
                if !self.cached.iter().any(|c| c.challenge.realm == ch.realm) {
                    return false;
                }
                answered += 1;
            }
        }
        answered > 0
    }

    /// A 401 or 407 answered `sent` (the request exactly as we sent it). Returns the request
    /// to send instead: a copy of `sent` with `retry`'s CSeq and Via and credentials for this
    /// challenge (and for every other challenge this dialog has seen). The challenge is kept,
    /// so later requests can carry credentials up front through [`AuthSession::authorize`].
    pub fn on_challenge(
        &mut self,
        sent: &Request,
        resp: &Response,
        retry: Retry,
        rng: &mut impl rand::RngCore,
    ) -> Result<Request, AuthFailure> {
        let status_kind = ChallengeKind::for_status(resp.status())
            .ok_or(AuthFailure::NotAChallenge(resp.status()))?;
        let creds = self.creds.clone().ok_or(AuthFailure::NoCredentials)?;
        // The challenges of the status's own kind, and those of the other kind a proxy that
        // forked merged in beside them (RFC 3261 §16.7 step 6: a 407 carrying a branch's
        // WWW-Authenticate too): all answered in one round, as §22.3 asks. Before, only the
        // status's kind was, and the other took a round of its own. What of the other
        // kind cannot be answered is left out; the status's own kind decides the failure.
        let mut challenges: Vec<(ChallengeKind, Challenge)> = Vec::new();
        for kind in [ChallengeKind::Www, ChallengeKind::Proxy] {
            let lines = resp.header_lines(&header(kind.challenge_header()));
            match choose(&creds, &lines) {
                Ok(chosen) => challenges.extend(chosen.into_iter().map(|c| (kind, c))),
                Err(e) if kind == status_kind => return Err(e),
                Err(_) => {}
            }
        }

        let to_tag = sent.to_tag().map(String::into_boxed_str);
        let prior = (self.answered.iter())
            .find(|a| Some(a.cseq) == sent.cseq().map(|c| c.0) && a.to_tag == to_tag);
        for (kind, challenge) in &challenges {
            let kind = *kind;
            if let Some(nonce) = sent_nonce(sent, kind, &challenge.realm) {
                if nonce == challenge.nonce {
                    return Err(AuthFailure::SameNonce);
                }
                // A new nonce for the credentials that answered this realm's challenge just
                // given is a refusal, unless the server says only the nonce was stale. For
                // credentials sent up front (in a first request, or beside an answer to
                // another realm) it is just a newer nonce.
                let fresh =
                    prior.is_some_and(|a| a.fresh.contains(&(kind, challenge.realm.clone())));
                if fresh && !challenge.stale {
                    return Err(AuthFailure::Rejected);
                }
            }
        }
        let round = prior.map_or(0, |a| a.round) + 1;
        if round > MAX_ROUNDS {
            return Err(AuthFailure::TooManyRounds(MAX_ROUNDS));
        }

        let fresh = (challenges.iter())
            .map(|(kind, c)| (*kind, c.realm.clone()))
            .collect();
        for (kind, challenge) in challenges {
            self.remember(kind, challenge);
        }
        let mut req = sent.clone();
        let method = req.method();
        req.set_header(&Hdr::CSEQ, format!("{} {}", retry.cseq, method))?;
        req.set_header(&Hdr::VIA, retry.via)?;
        self.authorize(&mut req, rng)?;
        if self.answered.len() >= MAX_ANSWERED {
            self.answered.pop_front();
        }
        self.answered.push_back(Answered {
            cseq: retry.cseq,
            to_tag,
            round,
            fresh,
        });
        Ok(req)
    }

    /// Adds credentials for every challenge this session has seen to a new request (and
    /// removes any it carried), each with the next nonce count of its nonce and a fresh
    /// cnonce (for a `-sess` algorithm, the session's first one, used for all).
    /// A request with no cached challenge is left without credentials.
    pub fn authorize(
        &mut self,
        req: &mut Request,
        rng: &mut impl rand::RngCore,
    ) -> Result<(), AuthFailure> {
        req.remove_header(&Hdr::AUTHORIZATION);
        req.remove_header(&Hdr::PROXY_AUTHORIZATION);
        let Some(creds) = self.creds.clone() else {
            return Ok(());
        };
        let method = req.method();
        let uri = req.uri();
        for c in &mut self.cached {
            c.nc = c.nc.saturating_add(1);
            let cnonce = if c.challenge.algorithm.is_sess() {
                c.session_cnonce
                    .get_or_insert_with(|| digest::cnonce(rng))
                    .clone()
            } else {
                digest::cnonce(rng)
            };
            let value = digest::credentials_value(
                &c.challenge,
                &DigestInput {
                    username: &creds.username,
                    password: creds.password.expose(),
                    method: method.as_str(),
                    uri: &uri,
                    body: req.body(),
                    nc: c.nc,
                    cnonce: &cnonce,
                },
            );
            req.insert_header_before_length(&header(c.kind.credentials_header()), value)?;
        }
        Ok(())
    }

    fn remember(&mut self, kind: ChallengeKind, challenge: Challenge) {
        // The same nonce again (a request sent without credentials while another was
        // challenged, and the server keeps its nonce a while): its count goes on, and a
        // `-sess` session keeps its cnonce. Counted from 1 again, the next answer would be
        // a replay to a server that checks nc.
        let (nc, session_cnonce) = self
            .cached
            .iter()
            .find(|c| {
                c.kind == kind
                    && c.challenge.realm == challenge.realm
                    && c.challenge.nonce == challenge.nonce
                    && c.challenge.algorithm == challenge.algorithm
            })
            .map_or((0, None), |c| (c.nc, c.session_cnonce.clone()));
        self.cached
            .retain(|c| !(c.kind == kind && c.challenge.realm == challenge.realm));
        if self.cached.len() >= MAX_CACHED {
            // The oldest of the same kind makes room: a 401 that names many realms must not
            // push out the proxy's 407 credentials (or the reverse).
            let at = self.cached.iter().position(|c| c.kind == kind).unwrap_or(0);
            self.cached.remove(at);
        }
        self.cached.push(Cached {
            kind,
            challenge,
            nc,
            session_cnonce,
        });
    }
}

fn header(name: &'static str) -> Hdr {
    Hdr::named(name)
}

/// The best challenge of each realm of a response for these credentials (a forking proxy
/// merges its branches' challenges into one 401/407, and each is to be answered: RFC 3261
/// §22.3), at most [`MAX_CACHED`] realms in the order they came, or why there is none.
fn choose(creds: &Credentials, lines: &[String]) -> Result<Vec<Challenge>, AuthFailure> {
    let parsed = parse_header_lines(lines);
    let mut best: Vec<(usize, Challenge)> = Vec::new();
    let mut other_realm = None;
    let mut algs = Vec::new();
    let mut why: Option<ChallengeError> = None;
    for p in parsed {
        match p {
            Ok(ch) => match creds.rank(&ch) {
                Some(rank) => {
                    if let Some(slot) = best.iter_mut().find(|(_, b)| b.realm == ch.realm) {
                        if rank < slot.0 {
                            *slot = (rank, ch);
                        }
                    } else if best.len() < MAX_CACHED {
                        best.push((rank, ch));
                    }
                }
                None if creds.realm.as_ref().is_some_and(|r| r != &ch.realm) => {
                    other_realm = Some(ch.realm);
                }
                None => algs.push(ch.algorithm.as_str()),
            },
            Err(e) => why = Some(e),
        }
    }
    if !best.is_empty() {
        return Ok(best.into_iter().map(|(_, ch)| ch).collect());
    }
    if !algs.is_empty() {
        return Err(AuthFailure::AlgorithmNotAllowed(algs.join(", ")));
    }
    if let (Some(offered), Some(configured)) = (other_realm, creds.realm.clone()) {
        return Err(AuthFailure::RealmMismatch {
            offered,
            configured,
        });
    }
    Err(AuthFailure::NoUsableChallenge(
        why.map(|e| e.to_string())
            .unwrap_or_else(|| "no challenge header".into()),
    ))
}

/// The nonce of the credentials `sent` carried for this kind and realm, if any.
fn sent_nonce(sent: &Request, kind: ChallengeKind, realm: &str) -> Option<String> {
    sent.header_lines(&header(kind.credentials_header()))
        .iter()
        .flat_map(|l| split_challenges(l))
        .find(|c| c.param("realm") == Some(realm))
        .and_then(|c| c.param("nonce").map(str::to_string))
}

#[cfg(test)]
mod tests;
