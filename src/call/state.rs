//! The state of one bridged call and the records it keeps on the way. The call's life is in
//! [`Phase`]; its current INVITE attempt's in [`AttemptState`](super::phase::AttemptState); everything here is data the
//! handlers (`attempt`, `cancel`, `midcall`, `ack`, `reliable`, `release`) read and change.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::challenge::InviteCredentials;
use super::cx::Cx;
use super::dialog::Dialog;
use super::earlier_peer::EarlierPeers;
use super::events::Events;
use super::phase::Phase;
use super::timers::TimerTable;
use super::{CoreEvent, Direction, Output, PerSide, Side, Stage};
use crate::config::{Config, PeerName, Profile};
use crate::sip::{Method, Request};
use crate::txn::TxnId;

mod acks;
mod attempt;
mod marks;
mod media;
mod refers;
mod relayed;
mod reliable;
mod route;
pub use acks::{GivenUp, GivenUpInvite, Pending2xx, SentAck};
pub use attempt::{Attempt, Failure, PeerResponse};
pub use marks::Marks;
pub use media::{MediaState, OfferShape, Remote, StreamUse, flows};
pub use refers::{MAX_REFERS, MAX_REFERS_PER_CALL, RelayedRefer, RelayedRefers};
pub use relayed::{Deferred2xx, Relayed, Standing};
pub use reliable::{EarlyAnswer, HeldPrack, MAX_QUEUED_1XX, PendingRel, RseqIs, UacRel, UasRel};
pub use route::RoutePlan;

/// What one of a call's transactions is for (the router keeps this per transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnRole {
    /// The caller's INVITE (a server transaction; CANCEL finds the call through it).
    CallerInvite,
    /// INVITE attempt `n` (`route.attempt()` then: see [`RoutePlan::attempt`]).
    Invite(u32),
    /// A BYE we sent on this side.
    Bye(Side),
    /// A request relayed from the other leg (re-INVITE, UPDATE, INFO, …).
    Relay,
    /// Our PRACK for a reliable provisional from the callee of attempt `n` (the call's
    /// `route.attempt()` then): a failed callee's answer to it says nothing of the next one.
    Prack(u32),
    /// Our session refresh (RFC 4028) on this side.
    Refresh(Side),
    /// Our in-dialog OPTIONS asking this side's peer whether it still has the call
    /// (`challenged`: sent again with credentials after a challenge).
    Probe { side: Side, challenged: bool },
}

/// What a settled call's template is: a request with nothing in it (shared, built once: a
/// settled call holds a reference to it, not a copy).
static SETTLED: std::sync::LazyLock<Option<Arc<Request>>> = std::sync::LazyLock::new(|| {
    Request::new(Method::Invite, "sip:settled.invalid")
        .ok()
        .map(Arc::new)
});

/// At most this many relayed requests wait for an answer at once; more get 500 (RFC 3261
/// §14.1 allows one INVITE at a time anyway): a peer cannot grow a call without bound.
pub const MAX_RELAYED: usize = 8;

/// Of those, the last this many are for what changes or refreshes the session (re-INVITE,
/// UPDATE, a PRACK's offer): a burst of INFOs or NOTIFYs cannot have a hold or a session
/// refresh refused.
pub const RELAYED_FOR_SESSIONS: usize = 2;

/// The caller's INVITE and its server transaction.
#[derive(Debug)]
pub struct CallerInvite {
    pub txn: TxnId,
    /// Shared so that settling swaps it for [`SETTLED`] without a copy.
    pub req: Arc<Request>,
}

/// Where a call came from.
// The caller's INVITE is the common case and the large one; boxing it would cost every call
// an allocation, so the rare call-back is the boxed variant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Origin {
    /// A caller's INVITE: the gateway is its UAS on side A.
    Caller(CallerInvite),
    /// A call-back the gateway placed itself (RFC 3725): it is the UAC on both sides.
    Callback(Box<super::third_party::ThirdParty>),
}

/// An SDP body sent to a leg, its Content-Type, and whether it was an answer.
pub type SentSdp = (Bytes, Option<String>, bool);

/// One call: two legs and everything needed to bridge them.
#[derive(Debug)]
pub struct Call {
    /// The configuration the call started with; a reload does not change it.
    pub cfg: Arc<Config>,
    pub phase: Phase,
    pub ingress: Arc<Profile>,
    /// The caller's dialog.
    pub a: Dialog,
    /// The callee's dialog, once an attempt was sent.
    pub b: Option<Dialog>,
    pub origin: Origin,
    pub attempt: Option<Attempt>,
    pub route: RoutePlan,
    /// The ingress peer this call counts against in `[limits]` (a call-back counts against
    /// its `from_peer`, or against the gateway's limits alone).
    pub counted_ingress: Option<PeerName>,
    /// The egress peer this call counts against in `[limits]`.
    pub counted_egress: Option<PeerName>,
    /// Dialled number.
    pub number: String,
    /// Calling number.
    pub caller: String,
    pub started: Instant,
    /// The system clock when the call started, and when it was answered (CDR timestamps).
    pub started_wall: std::time::SystemTime,
    pub answered_wall: Option<std::time::SystemTime>,
    /// Client transactions still waiting for their final answer: the call is not forgotten
    /// while any is open.
    pub open: Vec<TxnId>,
    /// In-dialog requests relayed and waiting, by the client transaction on the far leg.
    pub relayed: Vec<(TxnId, Relayed)>,
    /// Boxed, as the other rarely present parts below: an established call does not carry
    /// their room.
    pub pending_2xx: PerSide<Option<Box<Pending2xx>>>,
    pub acks: PerSide<Option<SentAck>>,
    /// Boxed, and only where a re-INVITE was given up: see [`GivenUp`].
    pub given_up: PerSide<Option<Box<GivenUp>>>,
    /// Callees' INVITEs given up unheard (`[sip] invite_timeout_s`), until each says
    /// something: then it is CANCELled (`call/silent_peer.rs`).
    pub abandoned: Option<Box<super::silent_peer::Abandons>>,
    /// Why the last callee attempt failed: what the caller gets if no later one answers
    /// (boxed, as the other rarely present parts).
    pub last_failure: Option<Box<Failure>>,
    pub events: Events,
    pub uac_rel: UacRel,
    pub uas_rel: UasRel,
    /// Some when the call's media is relayed through the gateway.
    pub media: Option<Box<MediaState>>,
    pub timers: TimerTable,
    /// Digest state toward each side's peer, once that peer challenged us (`challenge`).
    pub auth: PerSide<Option<Box<crate::auth::AuthSession>>>,
    /// The credentials the side's initial INVITE carried: its 2xx's ACK carries them too.
    /// Boxed: only calls toward a peer that challenges have them, and every call pays for
    /// the slot (`call/tests/size.rs`).
    pub invite_auth: PerSide<Option<Box<InviteCredentials>>>,
    /// Earlier attempts' peers that challenged their INVITEs (the last 8; boxed: most calls
    /// have none), with what each INVITE carried and each peer's challenges: a late 2xx
    /// from such a peer is ACKed with its own credentials (RFC 3261 §13.2.2.4) and hung up
    /// with a BYE signed with them. Never sent elsewhere: only on its INVITE's Call-ID.
    pub earlier_peers: Option<Box<EarlierPeers>>,
    /// Our BYEs waiting for their final answer (answered again if challenged).
    pub byes: Vec<(TxnId, Request)>,
    /// Each leg's session timer (RFC 4028), once negotiated.
    pub session: PerSide<Option<crate::sip::session::Session>>,
    /// The SDP each leg last sent and was sent, on legs that run session timers: a refresh
    /// re-INVITE offers it again; a peer's refresh that changes nothing is answered with it.
    pub sdp: PerSide<Option<Box<SdpSeen>>>,
    /// Our session refresh waiting for its answer.
    pub refresh: Option<Box<Refreshing>>,
    /// How each leg's refreshes of ours go once its peer refused one by UPDATE
    /// (`session/refresh.rs`).
    pub refresh_by: PerSide<super::session::RefreshBy>,
    /// Our refreshes of each leg refused in a row: each retry waits twice as long.
    pub refresh_refusals: PerSide<u8>,
    /// Things done once (one byte: `Call` stays in its allocation size class).
    pub marks: Marks,
    /// Probes of each leg in a row whose outcome was doubtful (`probe.rs`).
    pub probe_doubts: PerSide<u8>,
    /// Each leg's probe out, as sent: a challenge to it is answered against it (`probe.rs`).
    pub probe_sent: PerSide<Option<Box<crate::sip::Request>>>,
    /// A connected identity a peer sent in an UPDATE the gateway answered itself (the other
    /// peer takes no UPDATE): the side it is for, its P-Asserted-Identity lines, and whether
    /// its owner asked for it withheld (`Privacy: id`, which goes with it to a trusted peer).
    /// The next message toward that side carries it.
    pub identity: Option<Box<(Side, Vec<String>, bool)>>,
    /// The callee's other branches: early dialogs, and 2xx dialogs hung up (`forks.rs`).
    pub forks: Option<Box<super::forks::Forks>>,
    /// REFERs relayed, the last [`MAX_REFERS`]: the side it went to, its CSeq there, and the
    /// referrer's own REFER's CSeq. The transferee's NOTIFYs name the REFER they report on by
    /// its CSeq (`Event: refer;id=`, RFC 3515 §2.4.6), which the referrer knows by its own.
    pub refers: Option<Box<RelayedRefers>>,
}

/// What one leg's SDP exchange left, for session refreshes.
#[derive(Debug, Clone, Default)]
pub struct SdpSeen {
    /// The body we last sent this leg, its Content-Type, and whether it was an answer.
    pub sent: Option<SentSdp>,
    /// The `o=` line of the SDP this leg's peer last sent, with a digest of that SDP
    /// (both unchanged: no new offer).
    pub received_origin: Option<String>,
    /// Our offer as sent, when `sent` is it cut to the peer's answer (`Call::agree`): what a
    /// refresh offers again after the peer refused the cut one.
    pub uncut: Option<Bytes>,
}

/// A session refresh the gateway sent on `side`.
#[derive(Debug, Clone)]
pub struct Refreshing {
    pub txn: TxnId,
    pub side: Side,
    pub sent: Request,
    /// The interval it asked for.
    pub asked: std::time::Duration,
    /// Already sent again after a 422 or a refused UPDATE.
    pub retried: bool,
    /// Not a refresh but the gateway's own offer of the session the leg was last shown
    /// (`reoffer.rs`): its failure changes no timer.
    pub reoffer: bool,
    /// Cancelled after only provisionals for too long (`own_invite.rs`).
    pub cancelled: bool,
}

/// What a new call is made of; [`Call::start`] gives everything else its starting state.
pub struct CallStart {
    pub cfg: Arc<Config>,
    pub ingress: Arc<Profile>,
    pub a: Dialog,
    pub origin: Origin,
    pub route: Vec<PeerName>,
    /// See [`RoutePlan::ring_per_peer`].
    pub ring_per_peer: bool,
    pub counted_ingress: Option<PeerName>,
    pub number: String,
    pub caller: String,
    pub started: Instant,
    pub started_wall: std::time::SystemTime,
    pub uas_rel: UasRel,
    pub media: Option<Box<MediaState>>,
}

impl Call {
    /// A call that has only just begun: routing, nothing sent, nothing answered.
    pub fn start(s: CallStart) -> Call {
        Call {
            cfg: s.cfg,
            phase: Phase::Routing,
            ingress: s.ingress,
            a: s.a,
            b: None,
            origin: s.origin,
            attempt: None,
            route: RoutePlan {
                targets: s.route,
                ring_per_peer: s.ring_per_peer,
                ..RoutePlan::default()
            },
            counted_ingress: s.counted_ingress,
            counted_egress: None,
            number: s.number,
            caller: s.caller,
            started: s.started,
            started_wall: s.started_wall,
            answered_wall: None,
            open: Vec::new(),
            relayed: Vec::new(),
            pending_2xx: Default::default(),
            acks: Default::default(),
            given_up: Default::default(),
            abandoned: None,
            last_failure: None,
            events: Default::default(),
            uac_rel: Default::default(),
            uas_rel: s.uas_rel,
            media: s.media,
            timers: TimerTable::new(s.started),
            auth: Default::default(),
            invite_auth: Default::default(),
            earlier_peers: None,
            byes: Vec::new(),
            session: Default::default(),
            sdp: Default::default(),
            refresh: None,
            refresh_by: Default::default(),
            refresh_refusals: Default::default(),
            marks: Marks::default(),
            probe_doubts: Default::default(),
            probe_sent: Default::default(),
            identity: None,
            forks: None,
            refers: None,
        }
    }

    pub fn dialog(&self, side: Side) -> Option<&Dialog> {
        match side {
            Side::A => Some(&self.a),
            Side::B => self.b.as_ref(),
        }
    }

    pub fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => Some(&mut self.a),
            Side::B => self.b.as_mut(),
        }
    }

    /// The profile of the peer on `side`: the caller's, or the current attempt's.
    pub fn profile(&self, side: Side) -> Option<&Arc<Profile>> {
        match side {
            Side::A => Some(&self.ingress),
            Side::B => self.attempt.as_ref().map(|a| &a.peer),
        }
    }

    /// The request the callee's INVITE is built from: the caller's INVITE, or the one a
    /// call-back stands in for it. Once the call settled ([`Call::settle`]) nothing reads it,
    /// and it is an empty stand-in.
    pub fn template(&self) -> &Request {
        match &self.origin {
            Origin::Caller(ci) => &ci.req,
            Origin::Callback(tp) => &tp.template,
        }
    }

    /// 64·T1 after the answer: nothing of the setup can come again, so what only the setup
    /// needed goes (the caller's INVITE with its datagram and parsed headers, the bytes of a
    /// body-less ACK, the peers the route had left). An established call keeps its
    /// dialogs, media, CDR facts and which INVITE each leg's last ACK was for (a peer with a
    /// longer T1 may still retransmit its 2xx: the ACK is rebuilt from the dialog then; an
    /// ACK that carried SDP is kept whole).
    pub(super) fn settle(&mut self, t1: std::time::Duration, now: std::time::Instant) {
        if matches!(self.phase, Phase::Answered { .. }) {
            // Not confirmed yet (a 2xx held for a PRACK, a late ACK): later.
            self.timers
                .set(super::timers::CallTimer::Settle, now + t1 * 64);
            return;
        }
        if !matches!(self.phase, Phase::Confirmed { .. }) {
            return;
        }
        if let Some(settled) = SETTLED.as_ref() {
            match &mut self.origin {
                Origin::Caller(ci) => ci.req = settled.clone(),
                Origin::Callback(tp) => tp.template = Request::clone(settled),
            }
        }
        self.last_failure = None;
        self.uas_rel = UasRel::default();
        // Answered: no other peer of the route will be tried.
        self.route = RoutePlan::default();
        self.events.shrink();
        for side in [Side::A, Side::B] {
            if let Some(ack) = self.acks[side].as_mut()
                && !ack.has_body
            {
                ack.wire = None;
            }
        }
    }

    /// The caller's INVITE server transaction (none for a call-back).
    /// The caller's INVITE as merged-request detection knows it, while the call keeps it
    /// (until it settles).
    pub fn setup_key(&self) -> Option<super::dialog_index::SetupKey> {
        match &self.origin {
            Origin::Caller(ci) => super::dialog_index::SetupKey::of(&ci.req),
            Origin::Callback(_) => None,
        }
    }

    pub fn caller_txn(&self) -> Option<TxnId> {
        match &self.origin {
            Origin::Caller(ci) => Some(ci.txn),
            Origin::Callback(_) => None,
        }
    }

    pub fn third_party(&self) -> Option<&super::third_party::ThirdParty> {
        match &self.origin {
            Origin::Callback(tp) => Some(tp),
            Origin::Caller(_) => None,
        }
    }

    /// The peers this call counts against in `[limits]`, taken (each released once).
    pub fn counted_peers(&mut self) -> Vec<PeerName> {
        let user1 = match &mut self.origin {
            Origin::Callback(tp) => tp.user1_counted.take(),
            Origin::Caller(_) => None,
        };
        [
            self.counted_ingress.take(),
            self.counted_egress.take(),
            user1,
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    pub fn egress_name(&self) -> Option<&PeerName> {
        self.attempt.as_ref().map(|a| &a.peer.name)
    }

    /// The callee peer's name for a log line ("" before any attempt).
    pub fn egress_str(&self) -> &str {
        self.egress_name().map_or("", PeerName::as_str)
    }

    pub fn call_id(&self) -> &str {
        &self.a.call_id
    }

    /// Tell the metrics that the call reached `stage` with `peer` (a call-back's user2, from
    /// when its INVITE went: user1's ringing is not its peer's).
    pub(super) fn progress(&self, cx: &mut Cx, peer: PeerName, direction: Direction, stage: Stage) {
        let since = (self.third_party())
            .and_then(|tp| tp.user2_since)
            .unwrap_or(self.started);
        cx.emit(Output::Event(CoreEvent::Progress {
            peer,
            direction,
            stage,
            after: cx.now.saturating_duration_since(since),
        }));
    }

    /// Whether `ip` may speak for the peer on `side`: the address its dialog sends to, one
    /// of its profile's `match` networks, or its profile's `address` (a trunk's SBC outside
    /// `match` may end a call its other hosts placed, as profiles/README.md says). In-dialog
    /// requests and CANCELs from anyone else are refused, whatever identifiers they carry.
    pub fn is_peer_of(&self, side: Side, ip: std::net::IpAddr) -> bool {
        self.dialog(side).is_some_and(|d| d.target.addr.ip() == ip)
            || self.profile(side).is_some_and(|p| p.holds(ip))
    }

    /// A re-INVITE is in progress within the dialog (glare guard, RFC 3261 §14.1).
    /// Where in `relayed` the INVITE relayed to a far leg is (at most one: a dialog takes one
    /// INVITE at a time, RFC 3261 §14.1).
    pub fn relayed_invite(&self) -> Option<usize> {
        self.relayed
            .iter()
            .position(|(_, r)| r.sent.method() == Method::Invite)
    }

    pub fn reinvite_in_progress(&self) -> bool {
        self.relayed_invite().is_some()
            || self
                .refresh
                .as_ref()
                .is_some_and(|r| r.sent.method() == Method::Invite)
    }

    /// Released, and nothing of it is still in flight: the router may forget it.
    pub fn is_drained(&self) -> bool {
        // (A 2xx of ours still waiting for its ACK keeps the call: it is sent again, and a
        // BYE may wait for that ACK.)
        self.phase.is_ending()
            && self.open.is_empty()
            && self.pending_2xx[Side::A].is_none()
            && self.pending_2xx[Side::B].is_none()
    }

    /// A client transaction of this call got its final answer (idempotent).
    pub fn close_txn(&mut self, id: TxnId) {
        self.open.retain(|t| *t != id);
    }

    pub fn take_relayed(&mut self, id: TxnId) -> Option<Relayed> {
        let i = self.relayed.iter().position(|(t, _)| *t == id)?;
        Some(self.relayed.swap_remove(i).1)
    }
}
