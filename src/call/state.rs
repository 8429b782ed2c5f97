//! The state of one bridged call.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Side;
use super::leg::Leg;
use crate::cdr::{CallTag, CauseSource};
use crate::config::{Config, PeerName, Profile};
use crate::sip::{Method, Request, Response};
use crate::txn::TxnId;

/// Where the call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// INVITE sent toward the callee, no final answer yet.
    Proceeding,
    /// The callee's 2xx is relayed to the caller; waiting for the caller's ACK.
    Answered,
    /// Both dialogs confirmed.
    Confirmed,
    /// Released: the CDR is written; BYE/CANCEL transactions may still be finishing.
    Ending,
}

/// The current INVITE attempt toward one peer of the route.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub peer: Arc<Profile>,
    pub txn: TxnId,
    pub invite: Request,
    pub got_provisional: bool,
    /// The callee alerted (180/183): decides Q.850 18 vs 19 on ring timeout.
    pub alerted: bool,
    /// We want this attempt gone (caller CANCEL, ring timeout) and will CANCEL it as soon as a
    /// provisional makes that legal (RFC 3261 §9.1).
    pub cancel_wanted: bool,
    pub cancel_sent: bool,
    pub final_received: bool,
}

/// A request relayed from one leg to the other, waiting for the far side's response.
#[derive(Debug, Clone)]
pub struct Relayed {
    pub origin: Side,
    pub origin_txn: TxnId,
    pub origin_req: Request,
    pub method: Method,
}

/// Our 2xx to an INVITE on `side`, retransmitted until the ACK (RFC 3261 §13.3.1.4).
#[derive(Debug, Clone)]
pub struct Pending2xx {
    pub resp: Response,
    /// CSeq of the INVITE on that side, which the ACK will carry.
    pub cseq: u32,
    /// CSeq of the matching INVITE on the other side, which we ACK once this side ACKs.
    pub other_cseq: u32,
    pub interval: Duration,
    /// The server transaction the 2xx answered; retransmissions go through it.
    pub txn: TxnId,
}

/// 100rel toward the callee, where the gateway is the UAC (RFC 3262 §4).
#[derive(Debug, Clone, Default)]
pub struct UacRel {
    /// The peer refused our PRACK (or let it time out) and its profile says carry on:
    /// no more PRACKs toward it in this call.
    pub given_up: bool,
    /// The highest RSeq acknowledged in this attempt; repeats are retransmissions.
    pub last_rseq: Option<u32>,
}

/// 100rel toward the caller, where the gateway is the UAS (RFC 3262 §3).
#[derive(Debug, Clone, Default)]
pub struct UasRel {
    /// This call's provisionals to the caller go reliably.
    pub reliable: bool,
    pub next_rseq: u32,
    /// The reliable provisional waiting for its PRACK.
    pub pending: Option<PendingRel>,
    /// Provisionals that arrived while one was unacknowledged (only one at a time, §3).
    pub queue: VecDeque<Response>,
    /// A 2xx held back because the unacknowledged provisional carried SDP.
    pub held_2xx: Option<(Response, u32)>,
}

/// A reliable provisional we retransmit until PRACKed.
#[derive(Debug, Clone)]
pub struct PendingRel {
    pub resp: Response,
    pub rseq: u32,
    pub interval: Duration,
    pub since: Instant,
    pub has_sdp: bool,
}

/// The call's anchored media: the gateway's RTP port facing each leg, per m= line, and
/// where each leg wants its RTP (from its SDP).
#[derive(Debug, Clone, Default)]
pub struct MediaState {
    pub a_ports: Vec<u16>,
    pub b_ports: Vec<u16>,
    pub a_remote: Vec<Option<std::net::SocketAddr>>,
    pub b_remote: Vec<Option<std::net::SocketAddr>>,
    /// Where the call is recorded, when it is.
    pub recording: Option<crate::media::RecordSpec>,
}

/// How the call was released, fixed at the moment of release.
#[derive(Debug, Clone)]
pub struct EndInfo {
    pub tag: CallTag,
    pub status: u16,
    pub cause: u16,
    pub cause_source: CauseSource,
    pub reason_sip: Option<String>,
    pub at: Instant,
}

impl EndInfo {
    /// A release the gateway itself decided (timers, refusals, shutdown).
    pub fn internal(tag: CallTag, status: u16, cause: u16, at: Instant) -> EndInfo {
        EndInfo {
            tag,
            status,
            cause,
            cause_source: CauseSource::Internal,
            reason_sip: None,
            at,
        }
    }
}

/// One call: two legs and everything needed to bridge them.
#[derive(Debug)]
pub struct Call {
    /// The configuration the call started with; a reload does not change it.
    pub cfg: Arc<Config>,
    pub state: CallState,
    pub ingress: Arc<Profile>,
    pub a: Leg,
    pub a_invite_txn: TxnId,
    pub a_invite: Request,
    pub b: Option<Leg>,
    pub attempt: Option<Attempt>,
    pub targets: Vec<PeerName>,
    pub next_target: usize,
    /// Dialled number.
    pub number: String,
    /// Calling number.
    pub caller: String,
    pub started: Instant,
    pub answered: Option<Instant>,
    /// In-dialog requests relayed and waiting, by the client transaction on the far leg.
    pub relayed: HashMap<TxnId, Relayed>,
    /// An INVITE transaction is in progress within the dialog (glare guard, RFC 3261 §14.1).
    pub reinvite_in_progress: bool,
    pub pending_2xx: [Option<Pending2xx>; 2],
    /// ACKs we sent for 2xx responses, by (leg, INVITE CSeq), resent on 2xx retransmission.
    pub acks_sent: HashMap<(Side, u32), Request>,
    pub end: Option<EndInfo>,
    /// Client transactions of this call still waiting for a final response.
    pub open_client: usize,
    /// The last failure status seen from a callee attempt (used if every attempt fails).
    pub last_failure: Option<(u16, Response)>,
    pub events: Vec<String>,
    pub b_rel: UacRel,
    pub a_rel: UasRel,
    /// Some when the call's media is relayed through the gateway.
    pub media: Option<MediaState>,
}

impl Call {
    pub fn leg(&self, side: Side) -> Option<&Leg> {
        match side {
            Side::A => Some(&self.a),
            Side::B => self.b.as_ref(),
        }
    }

    pub fn leg_mut(&mut self, side: Side) -> Option<&mut Leg> {
        match side {
            Side::A => Some(&mut self.a),
            Side::B => self.b.as_mut(),
        }
    }

    pub fn slot(side: Side) -> usize {
        match side {
            Side::A => 0,
            Side::B => 1,
        }
    }

    /// The profile of the peer on `side`: the caller's, or the current attempt's.
    pub fn profile(&self, side: Side) -> Option<&Arc<Profile>> {
        match side {
            Side::A => Some(&self.ingress),
            Side::B => self.attempt.as_ref().map(|a| &a.peer),
        }
    }

    pub fn egress_name(&self) -> Option<String> {
        self.attempt.as_ref().map(|a| a.peer.name.0.clone())
    }
}
