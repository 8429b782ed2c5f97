//! A call's current INVITE attempt toward one peer of its route, and how a failed attempt
//! is kept while the next peer is tried.

use std::sync::Arc;

use crate::call::phase::AttemptState;
use crate::config::Profile;
use crate::sip::{Request, Response};
use crate::txn::TxnId;

/// The current INVITE attempt toward one peer of the route.
#[derive(Debug)]
pub struct Attempt {
    pub peer: Arc<Profile>,
    pub txn: TxnId,
    /// Kept until the attempt's final outcome: a CANCEL is built from it. Boxed: an
    /// established call keeps the attempt (its peer, its state), not this room.
    pub invite: Option<Box<Request>>,
    pub state: AttemptState,
    /// The session interval the INVITE asked for (RFC 4028), if any.
    pub asked_se: Option<std::time::Duration>,
    /// The INVITE was sent again after the peer's 422 (RFC 4028 §7.4 retries once).
    pub retried_422: bool,
    /// The INVITE carried SDP (an offer): a 2xx to it then holds the answer, else an offer
    /// (kept when `invite` is gone: a late fork's 2xx must be told apart).
    pub offered: bool,
}

/// How a callee attempt failed, kept while the next peer of the route is tried: if none
/// answers, the caller gets what it would have got had the failed attempt been the last.
#[derive(Debug)]
pub enum Failure {
    /// A final response: relayed (with the cause in the caller's profile's terms).
    Response(Box<PeerResponse>),
    /// A challenge (its status) the gateway could not answer: 403, never the challenge.
    /// `earlier`: the last response an earlier peer failed with, which a later peer's
    /// silence leaves the caller's answer.
    Auth {
        status: u16,
        earlier: Option<Box<PeerResponse>>,
    },
    /// No answer in time (Timer B: 408), or the transport failed (503).
    Unreachable { timeout: bool },
}

/// A callee's final failure and the profile of the peer that sent it: its cause is read
/// with that peer's `[causes.map]`, even once a later peer of the route is being tried.
#[derive(Debug)]
pub struct PeerResponse {
    pub resp: Response,
    pub peer: Option<Arc<Profile>>,
}
