//! What a call's handlers may touch besides the call itself: the transaction layer, the
//! identifier generator, the port pool, the output queue and the router's indexes, borrowed
//! for the length of one event. The router owns all of it ([`Env`]); a handler gets it as a
//! [`Cx`] next to `&mut Call`, so a call never needs taking out of its table.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use foldhash::HashMap;
use tracing::warn;

use super::limits::Limits;
use super::state::TxnRole;
use super::{CallRef, Output, Side};
use crate::config::Config;
use crate::media::PortPool;
use crate::sip::{Hdr, IdGen, LocalAddrs, Message, Request, Response, Target, ingress};
use crate::txn::{Heard, TimerConfig, TxnId, TxnLayer, TxnOutput};

/// A rewrite the gateway applies to a message on its way to a peer, counted by kind
/// (`trunkgate_rewrites_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// SDP addresses and ports replaced by the gateway's (`[media] anchor`).
    SdpAnchor,
    /// `a=ptime` set to the peer's `[sdp] ptime`.
    Ptime,
    /// The Request-URI of an INVITE written in the peer's form (`[uri]`: tel:, user=phone,
    /// number format, extra parameters), when that differs from the plain form.
    RequestUri,
    /// 100rel offered to the callee other than the caller offered it (`[prack]`).
    Prack100rel,
}

impl Rewrite {
    pub const ALL: [Rewrite; 4] = [
        Rewrite::SdpAnchor,
        Rewrite::Ptime,
        Rewrite::RequestUri,
        Rewrite::Prack100rel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rewrite::SdpAnchor => "sdp_anchor",
            Rewrite::Ptime => "ptime",
            Rewrite::RequestUri => "request_uri",
            Rewrite::Prack100rel => "100rel",
        }
    }
}

/// Everything the router holds besides the calls.
#[derive(Debug)]
pub struct Env {
    /// The configuration new calls start with.
    pub cfg: Arc<Config>,
    pub local: LocalAddrs,
    pub timers: TimerConfig,
    pub txn: TxnLayer,
    /// What the transaction layer produced and the router has not dispatched yet.
    pub txn_out: Vec<TxnOutput>,
    pub ids: IdGen,
    pub out: VecDeque<Output>,
    pub pool: PortPool,
    /// (Call-ID, our tag) → call and leg.
    pub dialogs: super::dialog_index::DialogIndex,
    /// The call and role of each transaction that belongs to a call, until it terminates.
    pub owners: HashMap<TxnId, (CallRef, TxnRole)>,
    /// The latest reading of both clocks the shell gave (`B2bua::set_clock`): wall-clock
    /// times of events are taken from it, so a step of the system clock (NTP) shows in the
    /// CDRs of events after it, and durations stay monotonic.
    pub clock: (Instant, SystemTime),
    /// Shutting down: new calls are refused with 503.
    pub draining: bool,
    /// The reloads that removed or re-addressed peers while calls were up, oldest first:
    /// the number below which calls began before each, and how many of those are still up
    /// (see [`Env::peers_moved`]), and the configuration it replaced (how those calls'
    /// peers were told apart). A reload's calls up are all up at each later one, so they
    /// end in order; the shell keeps each one's departed addresses as long.
    pub moved: VecDeque<super::moved::Moved>,
    /// Calls released (their CDR written) that are still finishing their last transactions:
    /// no longer in progress, so no `max_calls` counts them (an outage whose BYEs go
    /// unanswered would otherwise hold the slots for 32 s more).
    pub ended_calls: usize,
    /// `[limits]`: calls per second and at once, gateway-wide and per peer.
    pub limits: Limits,
    /// Each registering peer's `Service-Route` from its registrar's last 2xx (RFC 3608).
    pub service_routes: HashMap<crate::config::PeerName, Box<[Box<str>]>>,
    /// `[sip] ping_s`: the pinged peers, and which are down.
    pub health: super::peer_health::PeerHealth,
    /// CDRs can be written (else new calls get 503, without a CDR of their own).
    pub cdr_writable: bool,
    /// Retransmissions the call layer made or absorbed itself (2xx until ACKed, reliable
    /// provisionals until PRACKed, the ACK again for a 2xx again); the transaction layer
    /// counts its own.
    pub retransmissions: crate::txn::Retransmissions,
    /// Rewrites applied so far, indexed like [`Rewrite::ALL`].
    pub rewrites: [u64; 4],
    /// How many 2xx for no call got their ACK and BYE this second ([`super::orphan`]).
    pub orphans: super::orphan::Budget,
    /// Requests other than INVITE, UPDATE and PRACK each call relayed this second.
    pub relay_pace: super::relay_pace::RelayPace,
    /// The same for re-INVITEs and UPDATEs, counted apart: a hold goes whatever INFOs the
    /// call relayed in that second.
    pub session_pace: super::relay_pace::RelayPace,
    /// The To tag of the shell's stateless 503s, which the core's own carry too: the ACKs
    /// they get are then dropped at the edge, unparsed, like the shell's.
    pub overload_tag: Option<Box<str>>,
    /// [`super::incoming::MAX_SERVER_TRANSACTIONS`] (smaller in tests).
    pub max_server_txns: usize,
}

/// The header a SIP front adds to what it passes on: the address the request really came
/// from (`ip:port`). Believed only from the front's own address.
pub const SOURCE_HEADER: &str = "X-Trunkgate-Source";
/// The header the gateway adds to each request it sends through its front toward a peer,
/// within a dialog too: where the front is to send it (`ip:port;transport=udp|tcp`).
pub const PEER_HEADER: &str = "X-Trunkgate-Peer";
/// On an instance's refusal with Retry-After toward its front: `route` when only the call's
/// route is full here (its peers' limits), not the instance. The front tries the next
/// instance, and answers the last one's refusal with a 503 of its own, without the
/// Retry-After a caller would take to hold back every call to the gateway.
pub const SCOPE_HEADER: &str = "X-Trunkgate-Scope";

impl Env {
    /// Give up the transactions of `txns` (a side table of the core's own requests, a
    /// ping's or a REGISTER's) that `gone` says nothing waits for any more, and forget
    /// them: their retransmissions must not go on (a late REGISTER would bind again).
    pub fn abandon_where<V>(
        &mut self,
        txns: &mut HashMap<TxnId, V>,
        now: Instant,
        gone: impl Fn(&TxnId, &V) -> bool,
    ) {
        txns.retain(|id, v| {
            let keep = !gone(id, v);
            if !keep {
                self.txn.abandon(*id, now, &mut self.txn_out);
            }
            keep
        });
    }

    /// Whether `source` is the SIP front this instance runs behind (`[sip] front`).
    pub fn is_front(&self, source: Target) -> bool {
        self.cfg.is_front(source)
    }

    /// The address that tells which peer a request is from: its source, or for a request
    /// through the front, the front's `X-Trunkgate-Source` (the front's own address when
    /// that is missing or unreadable, which no profile matches).
    pub fn origin_ip(&self, req: &Request, source: Target) -> std::net::IpAddr {
        if !self.is_front(source) {
            return source.addr.ip();
        }
        req.header(&Hdr::named(SOURCE_HEADER))
            .and_then(|v| stamped_ip(&v))
            .unwrap_or(source.addr.ip())
    }

    /// The peer a request is from: the profile [`Env::origin_ip`] belongs to, if any.
    pub fn origin_peer(&self, req: &Request, source: Target) -> Option<&crate::config::Profile> {
        (self.cfg.peer_for_source(self.origin_ip(req, source))).map(|p| &**p)
    }

    /// The address of the peer that sent a response: its source, or for a response through
    /// the front, the front's `X-Trunkgate-Source` (the front's own address when that is
    /// unreadable, which no profile matches). `None`: through a front that did not say (the
    /// shipped front stamps responses too; a front of the operator's own may not).
    pub fn response_origin_ip(&self, resp: &Response, source: Target) -> Option<std::net::IpAddr> {
        if !self.is_front(source) {
            return Some(source.addr.ip());
        }
        resp.header(&Hdr::named(SOURCE_HEADER))
            .map(|v| stamped_ip(&v).unwrap_or(source.addr.ip()))
    }

    /// Where `msg` came from, for the transaction layer: through the front, the peer it
    /// names (`None` when it names none: the front's own, as the ACK its transaction sends
    /// for our failure, and its CANCEL, which it builds itself without the stamp; the
    /// front's own address for a name it cannot read).
    pub fn heard(&self, msg: &Message, source: Target) -> Heard {
        match msg {
            Message::Request(r) => self.heard_request(r, source),
            Message::Response(_) if !self.is_front(source) => Heard::direct(source),
            Message::Response(r) => Heard {
                source,
                peer: self.response_origin_ip(r, source),
            },
        }
    }

    /// Whether `req` is the front's own, not a peer's it passes on: from the front's address
    /// without its stamp. Such a CANCEL is the one the front builds for the caller's (its
    /// tm sends a CANCEL of its own, and relays it only from the address the INVITE came
    /// from), so it speaks for the caller.
    pub fn fronts_own(&self, req: &Request, source: Target) -> bool {
        self.is_front(source) && req.header(&Hdr::named(SOURCE_HEADER)).is_none()
    }

    /// Where requests within a dialog `req` starts go: its source, or for a request through
    /// the front, the front's `X-Trunkgate-Source` (the front is then told to send them
    /// there, as an instance alone sends them to the source whatever Contact and Route set
    /// the peer wrote). The source when the stamp is missing or unreadable.
    pub fn peer_of(&self, req: &Request, source: Target) -> Target {
        self.stamped_target(req.header(&Hdr::named(SOURCE_HEADER)), source)
    }

    /// [`Self::peer_of`] for the sender of a response.
    pub fn responder_of(&self, resp: &Response, source: Target) -> Target {
        self.stamped_target(resp.header(&Hdr::named(SOURCE_HEADER)), source)
    }

    fn stamped_target(&self, stamp: Option<String>, source: Target) -> Target {
        let stamp = stamp.filter(|_| self.is_front(source));
        match stamp.and_then(|s| stamped_addr(&s)) {
            Some(addr) => Target {
                addr,
                conn: None,
                listener: None,
                ..source
            },
            None => source,
        }
    }

    /// [`Self::heard`] for a request.
    pub fn heard_request(&self, r: &Request, source: Target) -> Heard {
        let peer = self.is_front(source).then(|| {
            r.header(&Hdr::named(SOURCE_HEADER))
                .map(|v| stamped_ip(&v).unwrap_or(source.addr.ip()))
        });
        Heard {
            source,
            peer: peer.flatten(),
        }
    }

    /// Start a client transaction for `req` toward `target`, through the front when there is
    /// one. One outside a dialog (no Route) takes responses from the front only when they
    /// name `target`; one in a dialog may be answered by a proxy of the peer's along its
    /// Route set, and is not held to it.
    pub fn send_request(&mut self, req: Request, target: Target, now: Instant) -> Option<TxnId> {
        self.send_request_timed(req, target, now, None)
    }

    /// [`Env::send_request`] for a new INVITE to a peer whose `[sip] invite_timeout_s` is
    /// `silence` (see [`Env::toward`]).
    pub fn send_request_timed(
        &mut self,
        mut req: Request,
        target: Target,
        now: Instant,
        silence: Option<Duration>,
    ) -> Option<TxnId> {
        let via = self.toward(&mut req, target, silence);
        let named =
            req.header(&Hdr::named(PEER_HEADER)).is_some() && req.header(&Hdr::ROUTE).is_none();
        let peer = named.then_some(target.addr.ip().to_canonical());
        self.txn
            .send_request_for(req, via, peer, now, &mut self.txn_out)
    }

    /// Where a request toward `target` goes: through the front when there is one. The
    /// request tells the front its destination in `X-Trunkgate-Peer`, one within a dialog
    /// too: the front then drops its own entry of the Route set and sends it there, not
    /// where the peer's Contact or Route set would lead (from the address carriers trust, to
    /// anywhere a peer wrote). A new INVITE also says how long that peer may say nothing at
    /// all (`silence`, its `[sip] invite_timeout_s`): the front's own 100 reaches us at once
    /// and stops our timers, as a proxy's does, so the front times it.
    pub fn toward(&self, req: &mut Request, target: Target, silence: Option<Duration>) -> Target {
        let Some(front) = self.cfg.front else {
            return target;
        };
        req.remove_header(&Hdr::named(PEER_HEADER));
        if front.addr != target.addr {
            let t = match target.transport {
                crate::sip::Transport::Udp => "udp",
                crate::sip::Transport::Tcp => "tcp",
            };
            let fr = silence
                .filter(|_| req.method() == crate::sip::Method::Invite)
                .map(|t| format!(";fr={}", t.as_millis()))
                .unwrap_or_default();
            let _ = req.insert_header_before_length(
                &Hdr::named(PEER_HEADER),
                format!("{};transport={t}{fr}", target.addr),
            );
        }
        front
    }

    pub fn rewrote(&mut self, kind: Rewrite) {
        self.rewrites[kind as usize] += 1;
    }

    /// Whether the CDR of a call refused at `now` for `peer` may be written, under that
    /// peer's `[cdr] refused_rate`; when not, the refusal is counted instead (`tag`, `cause`).
    pub fn refusal_recorded(
        &mut self,
        now: Instant,
        peer: &crate::config::PeerName,
        tag: crate::cdr::CallTag,
        cause: u16,
    ) -> bool {
        let recorded = self.limits.record_refusal(now, peer);
        if !recorded {
            (self.out).push_back(Output::Event(super::CoreEvent::RefusalUnrecorded {
                peer: peer.clone(),
                tag,
                cause,
            }));
        }
        recorded
    }

    /// The wall-clock time at `at`, read from the latest pair of clock readings (for the
    /// event being handled, `at` is `now` and this is the system clock's reading).
    pub fn wall(&self, at: Instant) -> SystemTime {
        let (mono, wall) = self.clock;
        if at >= mono {
            wall + (at - mono)
        } else {
            wall.checked_sub(mono - at).unwrap_or(wall)
        }
    }

    /// Send a message outside any transaction (ACKs for 2xx, stateless answers). Requests
    /// go through the front when there is one; responses follow their Via.
    pub fn send(&mut self, target: Target, msg: &Message) {
        let (target, wire) = match msg {
            Message::Request(r) if self.cfg.front.is_some() => {
                let mut r = r.clone();
                let target = self.toward(&mut r, target, None);
                (target, Message::Request(r).to_bytes())
            }
            _ => (target, msg.to_bytes()),
        };
        self.out.push_back(Output::Transmit {
            target,
            wire,
            txn: None,
        });
    }

    /// Answer a server transaction.
    pub fn send_response(&mut self, now: Instant, txn: TxnId, resp: Response) {
        self.txn.send_response(txn, resp, now, &mut self.txn_out);
    }

    /// Answer a server transaction with a locally built response. A response to an
    /// out-of-dialog request carries a fresh To tag (RFC 3261 §8.2.6.2), except 100.
    pub fn respond(
        &mut self,
        now: Instant,
        txn: TxnId,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(Hdr, &str)],
    ) {
        // No dialog comes of it: a refusal's tag (`IdGen::refusal_tag`).
        let tag = (status > 100 && req.to_tag().is_none())
            .then(|| self.ids.refusal_tag(&req.call_id().unwrap_or_default()));
        self.respond_tagged(now, txn, req, status, reason, tag.as_deref(), extra);
    }

    /// Answer a server transaction with a locally built response carrying `tag` in its To
    /// (when To has none). An extra header that cannot be written (bytes of the peer's
    /// echoed in it) costs that header, not the answer; a response that cannot be built at
    /// all ends the transaction: one left unanswered would stay for ever.
    #[allow(clippy::too_many_arguments)]
    pub fn respond_tagged(
        &mut self,
        now: Instant,
        txn: TxnId,
        req: &Request,
        status: u16,
        reason: &str,
        tag: Option<&str>,
        extra: &[(Hdr, &str)],
    ) {
        let built = ingress::response_to(req, status, reason, tag, extra).or_else(|e| {
            warn!(error = %e, "cannot build {status} response with its headers: sent without them");
            ingress::response_to(req, status, reason, tag, &[])
        });
        match built {
            Ok(resp) => self.send_response(now, txn, resp),
            Err(e) => {
                warn!(error = %e, "cannot build {status} response: its transaction ends unanswered");
                if status >= 200 {
                    self.txn.on_transport_error(txn, now, &mut self.txn_out);
                }
            }
        }
    }
}

/// One event's view of the router for call `r`.
pub struct Cx<'a> {
    pub now: Instant,
    pub r: CallRef,
    pub env: &'a mut Env,
}

impl Cx<'_> {
    /// Start a client transaction that belongs to this call (a new INVITE: to a peer whose
    /// `[sip] invite_timeout_s` is `silence`).
    pub fn send_client(
        &mut self,
        req: Request,
        target: Target,
        role: TxnRole,
        silence: Option<Duration>,
    ) -> Option<TxnId> {
        let id = (self.env).send_request_timed(req, target, self.now, silence)?;
        self.env.owners.insert(id, (self.r, role));
        Some(id)
    }

    /// Start a client transaction nobody waits on (a CANCEL: its answer changes nothing).
    pub fn send_unowned(&mut self, req: Request, target: Target) {
        self.env.send_request(req, target, self.now);
    }

    pub fn send_response(&mut self, txn: TxnId, resp: Response) {
        self.env.send_response(self.now, txn, resp);
    }

    pub fn respond(
        &mut self,
        txn: TxnId,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(Hdr, &str)],
    ) {
        self.env.respond(self.now, txn, req, status, reason, extra);
    }

    /// See [`Env::respond_tagged`].
    pub fn respond_tagged(
        &mut self,
        txn: TxnId,
        req: &Request,
        status: u16,
        reason: &str,
        tag: &str,
        extra: &[(Hdr, &str)],
    ) {
        self.env
            .respond_tagged(self.now, txn, req, status, reason, Some(tag), extra);
    }

    /// 500 with a Retry-After of 0 to 10 seconds, chosen at random so that two peers told to
    /// wait do not come back together: the request crossed one of its sender's own that is
    /// still unanswered (RFC 3261 §14.2, RFC 3311 §5.2).
    pub fn respond_retry_later(&mut self, txn: TxnId, req: &Request) {
        let after = (self.env.ids.number() % 11).to_string();
        let extra = [(Hdr::RETRY_AFTER, after.as_str())];
        self.env
            .respond(self.now, txn, req, 500, "Server Internal Error", &extra);
    }

    pub fn send(&mut self, target: Target, msg: &Message) {
        self.env.send(target, msg);
    }

    pub fn emit(&mut self, o: Output) {
        self.env.out.push_back(o);
    }

    /// Index a dialog of this call so in-dialog requests find it.
    pub fn add_dialog(&mut self, dialog: &super::dialog::Dialog, side: Side) {
        self.env.dialogs.insert(dialog, (self.r, side));
    }

    pub fn remove_dialog(&mut self, dialog: &super::dialog::Dialog) {
        self.env.dialogs.remove(dialog);
    }
}

/// The address in a front's `X-Trunkgate-Source` (`ip:port`, `[ipv6]:port`), if it reads
/// as one; an IPv4 peer a dual-stack front heard as `[::ffff:a.b.c.d]` is `a.b.c.d`, as
/// every reader of our own takes it.
pub(super) fn stamped_addr(stamp: &str) -> Option<std::net::SocketAddr> {
    let a = stamp.trim().parse::<std::net::SocketAddr>().ok()?;
    Some(std::net::SocketAddr::new(a.ip().to_canonical(), a.port()))
}

/// The IP of [`stamped_addr`].
fn stamped_ip(stamp: &str) -> Option<std::net::IpAddr> {
    stamped_addr(stamp).map(|a| a.ip())
}
