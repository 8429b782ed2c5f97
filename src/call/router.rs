//! The router (quinn's Endpoint to our calls' Connection): the core's one API, what belongs
//! to no call (OPTIONS keepalives, strays, malformed requests, refused INVITEs), and (in
//! `dispatch`) which call everything else goes to. It keeps the calls and the deadline
//! index; each call handles its own events.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use foldhash::HashMap;

use super::anchor::release_media;
use super::cx::{Cx, Env};
use super::peer_health::PeerHealth;
use super::state::Call;
use super::{CallRef, Input, Output};
use crate::config::Config;
use crate::sip::IdGen;
use crate::txn::{TimerConfig, TxnLayer, TxnOutput};

mod dispatch;
pub(in crate::call) mod fault;
mod ports;
mod reload;

pub use fault::FaultPlace;
pub(in crate::call) use fault::guarded;
#[cfg(test)]
pub(crate) use fault::test_fault;

/// Counters for tests and health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub calls: usize,
    pub dialogs: usize,
    /// Calls still known by their caller's INVITE (merged-request detection).
    pub setups: usize,
    pub client_txns: usize,
    pub server_txns: usize,
    /// What the server transactions hold in bytes (their bound counts these too).
    pub server_txn_bytes: usize,
    /// Transactions the router still maps to a call.
    pub txn_owners: usize,
}

/// The sans-IO B2BUA core.
#[derive(Debug)]
pub struct B2bua {
    pub(super) env: Env,
    /// Boxed: the table holds a pointer per call, not a whole call per slot (a table is
    /// sized for its load, and calls are large).
    pub(super) calls: HashMap<CallRef, Box<Call>>,
    /// Each call's earliest deadline (a call is filed under one entry at most).
    deadlines: BTreeSet<(Instant, CallRef)>,
    /// The deadline each call is filed under.
    filed: HashMap<CallRef, Instant>,
    pub(super) next_ref: CallRef,
    /// The gateway's registrations with its peers.
    registrations: super::registrations::Registrations,
    /// Call-backs in progress, by the call-back service's id.
    pub(super) callbacks: HashMap<crate::callback::CallbackId, CallRef>,
    /// Reused between dispatch rounds.
    batch: Vec<TxnOutput>,
    /// Each call's share of the transaction table's room for the calls up.
    pub(super) headroom: super::headroom::Headroom,
    /// Each call's share of the transaction table, whatever room it has.
    pub(super) call_share: super::headroom::Headroom,
    /// INVITEs refused for overload lately, answered so again.
    pub(super) overload_refusals: super::overloaded::Refusals,
    /// Panics caught in the core since it started (see `router/fault.rs`).
    faults: u64,
    /// Shutdown: the calls it has still to hang up (`shutdown.rs`).
    pub(super) to_hang_up: Option<Vec<CallRef>>,
    /// Turns of that hang-up that panicked in a row (`shutdown.rs`).
    pub(super) hang_up_faults: u8,
}

impl B2bua {
    /// `now`/`wall_now` anchor CDR timestamps; `ids` makes tags, branches and Call-IDs.
    pub fn new(
        cfg: Arc<Config>,
        timers: TimerConfig,
        ids: IdGen,
        now: Instant,
        wall_now: SystemTime,
    ) -> Self {
        let mut pool = crate::media::PortPool::new(cfg.media_ports.0, cfg.media_ports.1);
        pool.exclude(&cfg.own_udp_ports());
        let limits = super::limits::Limits::new(&cfg);
        let mut b = B2bua {
            env: Env {
                local: cfg.local_addrs(),
                cfg,
                timers,
                txn: TxnLayer::new(timers),
                txn_out: Vec::new(),
                ids,
                out: VecDeque::new(),
                pool,
                dialogs: Default::default(),
                owners: HashMap::default(),
                clock: (now, wall_now),
                draining: false,
                moved: Default::default(),
                service_routes: Default::default(),
                ended_calls: 0,
                limits,
                health: Default::default(),
                cdr_writable: true,
                retransmissions: Default::default(),
                rewrites: [0; 4],
                orphans: Default::default(),
                relay_pace: Default::default(),
                session_pace: Default::default(),
                overload_tag: None,
                max_server_txns: super::incoming::MAX_SERVER_TRANSACTIONS,
            },
            calls: HashMap::default(),
            deadlines: BTreeSet::new(),
            filed: HashMap::default(),
            next_ref: 1,
            callbacks: HashMap::default(),
            registrations: Default::default(),
            batch: Vec::new(),
            headroom: Default::default(),
            call_share: super::headroom::Headroom::with(super::headroom::PER_CALL_ALWAYS),
            overload_refusals: Default::default(),
            faults: 0,
            to_hang_up: None,
            hang_up_faults: 0,
        };
        let cfg = b.env.cfg.clone();
        b.registrations.configure(&mut b.env, &cfg, now);
        PeerHealth::configure(&mut b.env, &cfg, now);
        b.pump(now);
        b
    }

    /// The To tag the shell's stateless 503s carry (`engine::overload`): the core's own
    /// carry it too.
    pub fn set_overload_tag(&mut self, tag: &str) {
        self.env.overload_tag = Some(tag.into());
    }

    /// Retransmissions sent and absorbed since start, by the transaction layer and by the
    /// calls themselves.
    pub fn retransmissions(&self) -> crate::txn::Retransmissions {
        let (t, c) = (self.env.txn.retransmissions(), self.env.retransmissions);
        crate::txn::Retransmissions {
            sent: t.sent + c.sent,
            absorbed: t.absorbed + c.absorbed,
        }
    }

    /// Rewrites applied since start, by kind.
    pub fn rewrites(&self) -> Vec<(&'static str, u64)> {
        super::cx::Rewrite::ALL
            .iter()
            .map(|k| (k.as_str(), self.env.rewrites[*k as usize]))
            .collect()
    }

    /// Each registering peer and whether the registrar holds our binding.
    pub fn registrations(&self) -> Vec<(crate::config::PeerName, bool)> {
        self.registrations.states()
    }

    /// Each pinged peer and whether it takes calls (`[sip] ping_s`).
    pub fn peer_health(&self) -> Vec<(crate::config::PeerName, bool)> {
        self.env.health.states()
    }

    /// Whether something must still be answered before the process may stop: a call in
    /// progress, or an unregistration in flight.
    pub fn busy(&self) -> bool {
        !self.calls.is_empty() || self.registrations.pending()
    }

    /// The system clock's reading at `now`, given by the shell before it hands in events:
    /// CDR timestamps are the system clock at each event (a clock step shows from then on);
    /// durations come from the monotonic `now`.
    pub fn set_clock(&mut self, now: Instant, wall: SystemTime) {
        self.env.clock = (now, wall);
    }

    /// The configuration new calls will use.
    pub fn config(&self) -> &Arc<Config> {
        &self.env.cfg
    }

    /// Whether calls that began before the last reload which removed or re-addressed a peer
    /// are still up: they may hear from sources the running configuration does not match.
    pub fn peers_moved(&self) -> bool {
        self.env.peers_moved()
    }

    /// Whether transaction `id` is still going (a request of ours on a TCP connection that
    /// dies is failed while it is).
    pub fn has_transaction(&self, id: crate::txn::TxnId) -> bool {
        self.env.txn.target(id).is_some()
    }

    /// Calls in progress: not those released and finishing their last transactions.
    pub fn active_calls(&self) -> usize {
        self.calls.len().saturating_sub(self.env.ended_calls)
    }

    /// Where the calls' dialogs, and the registrations, send over TCP: their connections are
    /// kept open however quiet (`engine::tcp`'s idle timeout).
    pub fn tcp_targets(&self) -> impl Iterator<Item = crate::sip::Target> + '_ {
        self.calls
            .values()
            .flat_map(|c| std::iter::once(&c.a).chain(c.b.as_ref()))
            .map(|d| d.target)
            .filter(|t| t.transport == crate::sip::Transport::Tcp)
            .chain(self.registrations.tcp_targets())
    }

    /// Every call the core still holds, those released and finishing their last
    /// transactions included (a BYE held for the caller's ACK, answers to our BYEs): what
    /// shutdown hangs up and a reload keeps the peers' addresses known for.
    pub fn calls_held(&self) -> usize {
        self.calls.len()
    }

    /// The oldest reload that moved peers and still has calls up, by the number below which
    /// its calls began (see [`super::cx::Env::moved`]); `None`: none has.
    pub fn moved_since(&self) -> Option<CallRef> {
        self.env.moved.front().map(|m| m.first)
    }

    /// The number the next call gets: a reload now counts the calls numbered below it.
    pub fn next_call_ref(&self) -> CallRef {
        self.next_ref
    }

    /// Calls up under the name `peer` (the per-peer gauge; see [`super::limits::Limits::calls_named`]).
    pub fn peer_calls(&self, peer: &crate::config::PeerName) -> u32 {
        self.env.limits.calls_named(peer)
    }

    pub fn stats(&self) -> Stats {
        let (c, s) = self.env.txn.len();
        Stats {
            calls: self.calls.len(),
            dialogs: self.env.dialogs.len(),
            setups: self.env.dialogs.setups(),
            client_txns: c,
            server_txns: s,
            server_txn_bytes: self.env.txn.server_retained(),
            txn_owners: self.env.owners.len(),
        }
    }

    /// Armed timers: transaction timers plus calls filed under a deadline. Walks every
    /// transaction (some 300,000 at 3,000 calls a second): for tests and debug logs, not
    /// asked on every housekeeping pass.
    pub fn timers_armed(&self) -> usize {
        self.env.txn.timers_armed() + self.deadlines.len()
    }

    /// Something happened.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        fault::guarded(self, FaultPlace::Core, |b| b.on_input(now, input));
    }

    fn on_input(&mut self, now: Instant, input: Input) {
        #[cfg(test)]
        fault::test_fault::strike(FaultPlace::Core);
        // What the call layer allocates has a call's lifetime (src/zone.rs); the
        // transaction layer marks its own work as shorter.
        let _zone = crate::zone::enter(crate::zone::Zone::Calls);
        match input {
            Input::Message { msg, source } => {
                self.on_message(now, msg, source);
                // The user has seen the request: an INVITE it did not answer gets 100 now.
                self.pump(now);
                self.env.txn.flush_trying(now, &mut self.env.txn_out);
            }
            Input::Overloaded { msg, source } => {
                self.on_overloaded(now, msg, source);
                self.pump(now);
            }
            Input::Unparseable {
                raw,
                why,
                status,
                source,
            } => self.on_unparseable(&raw, &why, status, source),
            Input::SendFailed(id) => {
                self.env
                    .txn
                    .on_transport_error(id, now, &mut self.env.txn_out)
            }
            Input::ConnectionLost(id) => {
                self.registrations.connection_lost(id);
                if self
                    .env
                    .txn
                    .on_connection_lost(id, now, &mut self.env.txn_out)
                {
                    tracing::debug!(?id, "request sent again: its connection closed unanswered");
                }
            }
            Input::TcpClosed(addr) => self.registrations.connection_closed(addr, now),
            Input::MediaTimeout(r) => self.with_call(r, now, |c, cx| c.on_media_timeout(cx)),
            Input::MediaFailed(r) => self.with_call(r, now, |c, cx| c.on_media_failure(cx)),
            Input::MediaPortHeld(port) => self.port_held(port),
            Input::MediaPortFree(port) => self.port_free(port),
            Input::Recording { call, news } => {
                self.with_call(call, now, |c, _| c.on_recording_news(news))
            }
            Input::Drain => {
                self.env.draining = true;
                self.registrations.shutdown(&mut self.env, now);
            }
            Input::CdrWritable(ok) => self.env.cdr_writable = ok,
            Input::Callback(cmd) => self.on_callback(now, cmd),
            Input::HangUpAll => {
                // (Every call left, in one turn: none is left for another.)
                self.hang_up_some(now, usize::MAX);
            }
        }
        self.pump(now);
    }

    /// Fire every timer due at `now` (transactions first, then calls).
    pub fn handle_timeout(&mut self, now: Instant) {
        fault::guarded(self, FaultPlace::Core, |b| b.on_timeout(now));
    }

    fn on_timeout(&mut self, now: Instant) {
        let _zone = crate::zone::enter(crate::zone::Zone::Calls);
        self.env.txn.handle_timeout(now, &mut self.env.txn_out);
        self.pump(now);
        if self.registrations.poll_timeout().is_some_and(|t| t <= now) {
            self.registrations.handle_timeout(&mut self.env, now);
            self.pump(now);
        }
        if self.env.health.poll_timeout().is_some_and(|t| t <= now) {
            PeerHealth::handle_timeout(&mut self.env, now);
            self.pump(now);
        }
        while let Some(&(at, r)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, r));
            self.filed.remove(&r);
            self.with_call(r, now, |c, cx| c.on_timers(cx));
            self.pump(now);
        }
    }

    /// When [`B2bua::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.deadlines.first().map(|(at, _)| *at);
        [
            self.env.txn.poll_timeout(),
            calls,
            self.registrations.poll_timeout(),
            self.env.health.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// With no call and no transaction in progress, give back the room the last burst grew
    /// in the core's deadline indexes and queues (made during the burst, in its pages, they
    /// would keep those resident). The shell calls this in its once-a-second round.
    pub fn release_idle(&mut self) {
        if !self.calls.is_empty() {
            return;
        }
        self.env.txn.release_idle();
        // The small tables kept for the next calls were made in the calls' heap, in the
        // last calls' pages: given back, those pages empty (src/zone.rs).
        crate::maps::release_if_empty(&mut self.calls);
        crate::maps::release_if_empty(&mut self.filed);
        crate::maps::release_if_empty(&mut self.env.owners);
        self.env.dialogs.release_if_empty();
        if self.deadlines.is_empty() {
            self.deadlines = BTreeSet::new();
        }
        if self.batch.is_empty() {
            self.batch = Vec::new();
        }
        if self.env.txn_out.is_empty() {
            self.env.txn_out = Vec::new();
        }
        if self.env.out.is_empty() {
            self.env.out = VecDeque::new();
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.env.out.pop_front()
    }

    /// Run `f` on call `r` with this event's context, then file or forget the call.
    pub(super) fn with_call(
        &mut self,
        r: CallRef,
        now: Instant,
        f: impl FnOnce(&mut Call, &mut Cx),
    ) {
        self.run_call(r, now, f);
    }

    /// After an event: forget a call that is over, else file it under its next deadline.
    fn settle(&mut self, r: CallRef) {
        let Some(call) = self.calls.get(&r) else {
            return;
        };
        if call.is_drained() {
            self.forget(r);
            return;
        }
        let next = call.timers.next();
        let filed = self.filed.get(&r).copied();
        if next == filed {
            return;
        }
        if let Some(f) = filed {
            self.deadlines.remove(&(f, r));
            self.filed.remove(&r);
        }
        if let Some(n) = next {
            self.deadlines.insert((n, r));
            self.filed.insert(r, n);
        }
    }

    fn forget(&mut self, r: CallRef) {
        let Some(mut call) = self.calls.remove(&r) else {
            return;
        };
        self.headroom.forget(r);
        self.call_share.forget(r);
        self.env.moved_call_gone(r);
        if call.phase.is_ending() {
            self.env.ended_calls = self.env.ended_calls.saturating_sub(1);
        }
        if let Some(key) = call.setup_key() {
            self.env.dialogs.remove_setup(&key, r);
        }
        if let Some(f) = self.filed.remove(&r) {
            self.deadlines.remove(&(f, r));
        }
        call.timers.clear_all();
        for p in call.counted_peers() {
            self.env.limits.release(&p);
        }
        if let Some(tp) = call.third_party() {
            self.callbacks.remove(&tp.id);
        }
        if let Some(media) = call.media.take() {
            let answered = call.phase.answered_at().is_some();
            release_media(&mut self.env, r, *media, answered);
        }
        self.env.dialogs.remove(&call.a);
        if let Some(b) = &call.b {
            self.env.dialogs.remove(b);
        }
        crate::maps::shrink_if_sparse(&mut self.calls);
        crate::maps::shrink_if_sparse(&mut self.filed);
        self.env.dialogs.shrink_if_sparse();
        // Transactions still absorbing retransmissions outlive the call; their results
        // find no call and are dropped, and their owner entries go when they terminate.
    }

    /// Dispatch what the transaction layer produced until it produces nothing more.
    pub(super) fn pump(&mut self, now: Instant) {
        let mut batch = std::mem::take(&mut self.batch);
        loop {
            std::mem::swap(&mut batch, &mut self.env.txn_out);
            if batch.is_empty() {
                break;
            }
            for o in batch.drain(..) {
                self.on_txn_output(now, o);
            }
        }
        self.batch = batch;
    }
}
