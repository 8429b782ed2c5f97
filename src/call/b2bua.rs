//! The dispatcher: messages and timers in, actions out. Finds the call a message belongs to
//! and answers what belongs to no call (OPTIONS keepalives, strays, malformed requests).

use foldhash::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tracing::{debug, warn};

use super::ids::IdGen;
use super::state::Call;
use super::{Action, CallRef, CallTimer, Side, TimerId};
use crate::config::Config;
use crate::sip::{Hdr, Message, Method, Request, Response, Target, Transport};
use crate::txn::{TimerConfig, TxnId, TxnLayer, TxnOutput};

/// Methods the gateway handles; sent in Allow.
pub(super) const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK";

/// The gateway's own addresses, for Via and Contact.
#[derive(Debug, Clone)]
pub struct LocalAddrs {
    pub host: String,
    pub udp_port: Option<u16>,
    pub tcp_port: Option<u16>,
}

impl LocalAddrs {
    pub fn from_config(cfg: &Config) -> Self {
        let port = |t: Transport| {
            cfg.listen
                .iter()
                .find(|l| l.transport == t)
                .map(|l| l.addr.port())
        };
        LocalAddrs {
            host: cfg.advertise.clone(),
            udp_port: port(Transport::Udp),
            tcp_port: port(Transport::Tcp),
        }
    }

    fn port(&self, t: Transport) -> u16 {
        match t {
            Transport::Udp => self.udp_port.or(self.tcp_port),
            Transport::Tcp => self.tcp_port.or(self.udp_port),
        }
        .unwrap_or(5060)
    }

    fn hostport(&self, t: Transport) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{host}:{}", self.port(t))
    }

    /// Whether a Via names us (the advertised host, on one of our ports when it has one).
    pub fn is_ours(&self, via: &crate::sip::ViaInfo) -> bool {
        let host = via.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case(self.host.trim_start_matches('[').trim_end_matches(']'))
            && via
                .port
                .is_none_or(|p| Some(p) == self.udp_port || Some(p) == self.tcp_port)
    }

    /// Our Via for a request sent over `t`. `rport` asks the peer to answer where we sent from.
    pub fn via(&self, t: Transport, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            t.via_token(),
            self.hostport(t)
        )
    }

    /// Our Contact for dialogs over `t`.
    pub fn contact(&self, t: Transport) -> String {
        match t {
            Transport::Udp => format!("<sip:{}>", self.hostport(t)),
            Transport::Tcp => format!("<sip:{};transport=tcp>", self.hostport(t)),
        }
    }
}

/// What a client transaction of ours was for.
#[derive(Debug, Clone)]
pub(super) enum ClientPurpose {
    /// The INVITE of the current attempt toward the callee.
    Invite,
    /// A CANCEL of the attempt's INVITE.
    Cancel,
    /// A BYE we sent on this leg.
    Bye(Side),
    /// A request relayed from the other leg (re-INVITE, UPDATE, INFO, …).
    Relay,
    /// Our PRACK for a reliable provisional from the callee.
    Prack,
}

/// Counters for tests and health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub calls: usize,
    pub dialogs: usize,
    pub client_txns: usize,
    pub server_txns: usize,
    pub txn_map_client: usize,
    pub txn_map_server: usize,
    pub txn_map_calls: usize,
}

/// The sans-IO B2BUA core.
#[derive(Debug)]
pub struct B2bua {
    pub(super) cfg: Arc<Config>,
    pub(super) local: LocalAddrs,
    pub(super) timers: TimerConfig,
    pub(super) txn: TxnLayer,
    pub(super) txn_out: Vec<TxnOutput>,
    pub(super) calls: HashMap<CallRef, Call>,
    next_ref: CallRef,
    /// (Call-ID, our tag) → call and leg.
    pub(super) dialogs: HashMap<(String, String), (CallRef, Side)>,
    /// Server transactions that belong to a call (for CANCEL and cleanup).
    pub(super) server_txns: HashMap<TxnId, (CallRef, Side)>,
    pub(super) client_txns: HashMap<TxnId, (CallRef, ClientPurpose)>,
    /// Every transaction id a call registered above, so releasing a call costs its own
    /// size and not a scan of every transaction in flight.
    pub(super) call_txns: HashMap<CallRef, Vec<TxnId>>,
    pub(super) ids: IdGen,
    wall_base: (Instant, SystemTime),
    pub(super) actions: Vec<Action>,
    /// Shutting down: new calls are refused with 503.
    pub(super) draining: bool,
    /// RTP/RTCP ports for anchored calls.
    pub(super) pool: crate::media::PortPool,
}

impl B2bua {
    /// `now`/`wall_now` anchor CDR timestamps; `seed` drives tag and Call-ID generation.
    pub fn new(
        cfg: Arc<Config>,
        timers: TimerConfig,
        seed: u64,
        now: Instant,
        wall_now: SystemTime,
    ) -> Self {
        let pool = crate::media::PortPool::new(cfg.media_ports.0, cfg.media_ports.1);
        B2bua {
            local: LocalAddrs::from_config(&cfg),
            cfg,
            timers,
            txn: TxnLayer::new(timers),
            txn_out: Vec::new(),
            calls: HashMap::default(),
            next_ref: 1,
            dialogs: HashMap::default(),
            server_txns: HashMap::default(),
            client_txns: HashMap::default(),
            call_txns: HashMap::default(),
            ids: IdGen::new(seed),
            wall_base: (now, wall_now),
            actions: Vec::new(),
            draining: false,
            pool,
        }
    }

    /// Swap in a reloaded configuration. Calls in progress keep the snapshot they started with.
    pub fn set_config(&mut self, cfg: Arc<Config>) {
        self.local = LocalAddrs::from_config(&cfg);
        self.cfg = cfg;
    }

    /// The configuration new calls will use.
    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// Take the actions produced so far.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Move the actions produced so far into `out` (keeps both allocations alive).
    pub fn drain_actions_into(&mut self, out: &mut Vec<Action>) {
        out.append(&mut self.actions);
    }

    pub fn stats(&self) -> Stats {
        let (c, s) = self.txn.len();
        Stats {
            calls: self.calls.len(),
            dialogs: self.dialogs.len(),
            client_txns: c,
            server_txns: s,
            txn_map_client: self.client_txns.len(),
            txn_map_server: self.server_txns.len(),
            txn_map_calls: self.call_txns.len(),
        }
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    pub(super) fn wall(&self, at: Instant) -> SystemTime {
        self.wall_base.1 + at.saturating_duration_since(self.wall_base.0)
    }

    /// A message arrived from `source`.
    pub fn on_message(&mut self, now: Instant, msg: Message, source: Target) {
        let msg = match msg {
            Message::Request(mut req) => {
                if let Err(why) = validate_request(&req) {
                    let status = if req.version_supported() { 400 } else { 505 };
                    self.reject_malformed(&req, source, status, why);
                    return;
                }
                req.stamp_received(source.addr);
                Message::Request(req)
            }
            Message::Response(resp) => {
                let Some(via) = resp.top_via().filter(|_| resp.cseq().is_some()) else {
                    debug!(%source, "dropping response without usable Via/CSeq");
                    return;
                };
                // RFC 3261 §18.1.2: a response whose top Via is not ours is not for us.
                if !self.local.is_ours(&via) {
                    debug!(%source, via = %via.host, "dropping response whose top Via is not ours");
                    return;
                }
                Message::Response(resp)
            }
        };
        if let Some(unmatched) = self.txn.receive(msg, source, now, &mut self.txn_out) {
            match unmatched {
                Message::Request(req) => self.on_unmatched_ack(now, req),
                Message::Response(resp) => self.on_stray_response(now, resp, source),
            }
        }
        self.pump(now);
    }

    /// A timer the engine armed has fired.
    pub fn on_timer(&mut self, now: Instant, id: TimerId) {
        match id {
            TimerId::Txn(tid, timer) => self.txn.on_timer(&tid, timer, now, &mut self.txn_out),
            TimerId::Call(r, t) => self.on_call_timer(now, r, t),
        }
        self.pump(now);
    }

    /// The engine could not deliver a message of transaction `id` (TCP connect refused, …).
    pub fn on_send_failed(&mut self, now: Instant, id: TxnId) {
        self.txn.on_transport_error(&id, now, &mut self.txn_out);
        self.pump(now);
    }

    /// Stop taking new calls (SIGTERM). Returns how many calls are still up.
    pub fn start_drain(&mut self) -> usize {
        self.draining = true;
        self.calls.len()
    }

    /// Process transaction outputs until there are none; handlers may create more.
    pub(super) fn pump(&mut self, now: Instant) {
        while !self.txn_out.is_empty() {
            let batch = std::mem::take(&mut self.txn_out);
            for o in batch {
                self.on_txn_output(now, o);
            }
        }
    }

    fn on_txn_output(&mut self, now: Instant, o: TxnOutput) {
        match o {
            TxnOutput::Send { id, target, wire } => self.actions.push(Action::Send {
                target,
                wire,
                txn: Some(id),
            }),
            TxnOutput::SetTimer { id, timer, at } => self.actions.push(Action::SetTimer {
                id: TimerId::Txn(id, timer),
                at,
            }),
            TxnOutput::ClearTimer { id, timer } => self
                .actions
                .push(Action::ClearTimer(TimerId::Txn(id, timer))),
            TxnOutput::Request { id, req } => self.on_new_request(now, id, req),
            TxnOutput::Response { id, resp } => self.on_client_response(now, id, resp),
            TxnOutput::Ack { id: _, ack } => self.on_unmatched_ack(now, ack),
            TxnOutput::Timeout { id } => self.on_client_failure(now, id, true),
            TxnOutput::TransportError { id } => self.on_client_failure(now, id, false),
            TxnOutput::Terminated { id } => {
                self.server_txns.remove(&id);
                self.client_txns.remove(&id);
            }
        }
    }

    /// A request no transaction has seen before.
    fn on_new_request(&mut self, now: Instant, id: TxnId, req: Request) {
        let method = req.method();
        let in_dialog = req.to_tag().is_some();
        match method {
            Method::Cancel => self.on_cancel(now, id, req),
            Method::Invite if !in_dialog => self.on_initial_invite(now, id, req),
            _ if in_dialog => self.on_in_dialog_request(now, id, req),
            Method::Options => {
                // Keepalive / capability query outside any dialog.
                let extra = [(Hdr::ALLOW, ALLOW), (Hdr::ACCEPT, "application/sdp")];
                self.respond(now, &id, &req, 200, "OK", &extra);
            }
            Method::Bye | Method::Update | Method::Info | Method::Prack => {
                self.respond(now, &id, &req, 481, "Call/Transaction Does Not Exist", &[]);
            }
            _ => {
                let extra = [(Hdr::ALLOW, ALLOW)];
                self.respond(now, &id, &req, 405, "Method Not Allowed", &extra);
            }
        }
    }

    /// Answer a server transaction with a locally built response.
    pub(super) fn respond(
        &mut self,
        now: Instant,
        id: &TxnId,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(Hdr, &str)],
    ) {
        // A response to an out-of-dialog request needs a To tag (RFC 3261 §8.2.6.2) except 100.
        let tag = (status > 100 && req.to_tag().is_none()).then(|| self.ids.tag());
        match build_response(req, status, reason, tag.as_deref(), extra) {
            Ok(resp) => self.txn.send_response(id, resp, now, &mut self.txn_out),
            Err(e) => warn!(error = %e, "cannot build {status} response"),
        }
    }

    /// A request too broken for a transaction: answer 400 (505 for another SIP version)
    /// statelessly when possible.
    fn reject_malformed(&mut self, req: &Request, source: Target, status: u16, why: &'static str) {
        warn!(%source, "malformed {}: {why}", req.method());
        if req.method() == Method::Ack || req.top_via().is_none() {
            return;
        }
        let tag = self.ids.tag();
        let reason = if status == 505 {
            "Version Not Supported".to_string()
        } else {
            format!("Bad Request ({why})")
        };
        if let Ok(resp) = build_response(req, status, &reason, Some(&tag), &[]) {
            self.send(source, Message::Response(resp));
        }
    }

    /// A response no client transaction claims. A 2xx to an INVITE is the one that matters:
    /// the callee's dialog is up and nobody will ever use it, so ACK and BYE it (RFC 3261
    /// §13.2.2.4 obliges the ACK; the BYE stops a phone ringing into silence).
    fn on_stray_response(&mut self, _now: Instant, resp: Response, source: Target) {
        let invite_2xx = resp.is_success() && resp.cseq().is_some_and(|c| c.1 == Method::Invite);
        if !invite_2xx {
            debug!(%source, status = resp.status(), "stray response dropped");
            return;
        }
        self.on_stray_2xx(resp, source);
    }

    /// A 2xx to an INVITE that no live transaction or call step expects.
    pub(super) fn on_stray_2xx(&mut self, resp: Response, source: Target) {
        let Some((cseq, _)) = resp.cseq() else {
            return;
        };
        // A retransmitted 2xx of a call we still know: repeat our ACK.
        let known = resp
            .call_id()
            .zip(resp.from_tag())
            .and_then(|k| self.dialogs.get(&k).copied());
        if let Some((r, side)) = known
            && let Some(call) = self.calls.get(&r)
            && let Some(ack) = call.acks_sent.get(&(side, cseq))
        {
            self.send(
                call.leg(side).map(|l| l.target).unwrap_or(source),
                Message::Request(ack.clone()),
            );
            return;
        }
        if known.is_some() {
            return;
        }
        warn!(%source, "2xx for an unknown INVITE: sending ACK and BYE");
        for method in [Method::Ack, Method::Bye] {
            match orphan_request(&resp, method, cseq, &self.local, source, &mut self.ids) {
                Ok(req) => self.send(source, Message::Request(req)),
                Err(e) => warn!(error = %e, "cannot build request for orphan 2xx"),
            }
        }
    }

    pub(super) fn set_call_timer(&mut self, r: CallRef, t: CallTimer, at: Instant) {
        self.actions.push(Action::SetTimer {
            id: TimerId::Call(r, t),
            at,
        });
    }

    pub(super) fn clear_call_timer(&mut self, r: CallRef, t: CallTimer) {
        self.actions.push(Action::ClearTimer(TimerId::Call(r, t)));
    }

    /// Send a message outside any transaction (ACKs for 2xx, our 2xx retransmissions,
    /// stateless answers).
    pub(super) fn send(&mut self, target: Target, msg: Message) {
        self.actions.push(Action::Send {
            target,
            wire: msg.to_bytes(),
            txn: None,
        });
    }

    /// Start a client transaction that belongs to call `r`.
    pub(super) fn send_client(
        &mut self,
        now: Instant,
        r: CallRef,
        req: Request,
        target: Target,
        purpose: ClientPurpose,
    ) -> Option<TxnId> {
        let id = self.txn.send_request(req, target, now, &mut self.txn_out)?;
        self.client_txns.insert(id.clone(), (r, purpose));
        self.call_txns.entry(r).or_default().push(id.clone());
        Some(id)
    }

    /// Note that server transaction `id` belongs to leg `side` of call `r`.
    pub(super) fn register_server_txn(&mut self, id: &TxnId, r: CallRef, side: Side) {
        self.server_txns.insert(id.clone(), (r, side));
        self.call_txns.entry(r).or_default().push(id.clone());
    }

    pub(super) fn new_call_ref(&mut self) -> CallRef {
        let r = self.next_ref;
        self.next_ref += 1;
        r
    }
}

/// Checks RFC 3261 §8.2 asks of every request before anything else looks at it.
fn validate_request(req: &Request) -> Result<(), &'static str> {
    if !req.version_supported() {
        return Err("SIP version not supported");
    }
    let via = req.top_via().ok_or("missing or malformed Via")?;
    if req.uri_has_headers() {
        return Err("Request-URI must not carry headers");
    }
    if let Some(date) = req.header(&Hdr::named("Date"))
        && !crate::sip::is_sip_date(&date)
    {
        return Err("Date must be an RFC 1123 date in GMT");
    }
    for contact in req.header_lines(&Hdr::CONTACT) {
        for c in crate::sip::split_header_list(&contact) {
            // RFC 3261 §20: a URI with ',', '?' or ';' must be in <> (else it is misread).
            if !c.contains('<') && c.trim() != "*" && c.contains('?') {
                return Err("Contact URI with headers must be enclosed in <>");
            }
        }
    }
    if via.branch.is_none() && req.cseq().is_none() {
        return Err("missing or malformed CSeq");
    }
    let (_, cseq_method) = req.cseq().ok_or("missing or malformed CSeq")?;
    if cseq_method != req.method() {
        return Err("CSeq method does not match the request method");
    }
    if req.call_id().is_none_or(|c| c.is_empty()) {
        return Err("missing Call-ID");
    }
    if req.from_uri().is_none() {
        return Err("missing or malformed From");
    }
    if req.to_uri().is_none() {
        return Err("missing or malformed To");
    }
    if let Some(Err(_)) = req.max_forwards() {
        return Err("malformed Max-Forwards");
    }
    Ok(())
}

/// A response to `req` with optional To tag and extra headers.
pub(super) fn build_response(
    req: &Request,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(Hdr, &str)],
) -> Result<Response, crate::sip::SipError> {
    let mut resp = Response::to_request(req, status, reason, to_tag)?;
    // Content-Length must stay last for readability; insert extras before it.
    let cl = resp.remove_header(&Hdr::CONTENT_LENGTH);
    for (h, v) in extra {
        resp.push_header(h, v.to_string())?;
    }
    if cl > 0 {
        resp.push_header(&Hdr::CONTENT_LENGTH, "0")?;
    }
    Ok(resp)
}

/// ACK or BYE for a 2xx that belongs to no call we know, built from the response alone.
fn orphan_request(
    resp: &Response,
    method: Method,
    cseq: u32,
    local: &LocalAddrs,
    source: Target,
    ids: &mut IdGen,
) -> Result<Request, crate::sip::SipError> {
    use crate::sip::SipError;
    let target_uri = resp
        .contact_uri()
        .unwrap_or_else(|| format!("sip:{}", source.addr));
    let mut r = Request::new(method.clone(), &target_uri)?;
    r.push_header(&Hdr::VIA, local.via(source.transport, &ids.branch()))?;
    r.push_header(&Hdr::MAX_FORWARDS, "70")?;
    let mut routes = resp.record_route();
    routes.reverse();
    for route in routes {
        r.push_header(&Hdr::ROUTE, route)?;
    }
    r.push_header(
        &Hdr::FROM,
        resp.header(&Hdr::FROM)
            .ok_or(SipError::MissingHeader("From"))?,
    )?;
    r.push_header(
        &Hdr::TO,
        resp.header(&Hdr::TO).ok_or(SipError::MissingHeader("To"))?,
    )?;
    r.push_header(
        &Hdr::CALL_ID,
        resp.call_id().ok_or(SipError::MissingHeader("Call-ID"))?,
    )?;
    let n = if method == Method::Ack {
        cseq
    } else {
        cseq.wrapping_add(1)
    };
    r.push_header(&Hdr::CSEQ, format!("{n} {method}"))?;
    r.push_header(&Hdr::CONTENT_LENGTH, "0")?;
    Ok(r)
}
