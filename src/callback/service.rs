//! The call-back service, sans-IO: datagrams and call progress in, datagrams and commands
//! for the call layer out, time given by the caller.
//!
//! Order of checks for every datagram: the allow-list first (anything else is dropped
//! unanswered, so a stranger learns nothing and cannot make us reflect traffic), then the
//! syntax, then for a REQUEST (`requests.rs`): duplicate id (a retransmission still gets `ok`
//! while draining), draining, route, `max_active`,
//! the AS's fair share (`shares.rs`), and last the rate (so refused requests do not use up
//! the rate).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::protocol::{self, CallbackId, Inbound, Number, Outbound, Outcome, Request, State, Verb};
use super::signature::{self, Replays, Signer};
use crate::cdr::CallTag;
use crate::config::{Config, PeerName};
use crate::interop::causes::Q850Cause;

/// First RESPONSE retransmission interval; it doubles after each try (RFC 3261's T1).
pub const T1: Duration = Duration::from_millis(500);
/// RESPONSE sends in all (the first and six retransmissions) before giving up.
pub const MAX_TRIES: u8 = 7;
/// How long an ended call-back is remembered: a late duplicate REQUEST is still refused and
/// STATUS still says `ended`. Longer than the whole retransmission schedule (63.5 s).
pub const LINGER: Duration = Duration::from_secs(600);
/// How long after start a clock set back moves the start back with it (see
/// `Service::observe_clock`): a clock wrong at boot is set right by then.
const CLOCK_SETTLES: Duration = Duration::from_secs(600);
/// Ended call-backs remembered at most; the oldest are forgotten first.
pub const MAX_ENDED: usize = 16_384;
/// Datagrams waiting to be sent at most (the shell drains after every call, so this is a
/// backstop); commands for the call layer are never dropped, and are bounded by
/// `max_active` anyway.
pub const MAX_QUEUED: usize = 1024;
/// A RESPONSE that found the send queue full is tried again this soon, that try not
/// counted (the queue drains at the end of every turn).
pub const QUEUE_FULL_WAIT: Duration = Duration::from_millis(50);
/// Slack on top of the longest a call-back can legitimately take (two legs ringing, then
/// `max_duration`) before the service stops waiting for the call layer's `on_ended`: a
/// lost report must not hold a `max_active` slot for ever.
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(600);
/// A peer that says nothing is given up after Timer B (64·T1), whatever its ring timeout.
const TIMER_B: Duration = Duration::from_secs(32);

/// What the service asks of the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `bytes` (at most `protocol::MAX_DATAGRAM`) from the call-back socket to `to`.
    Transmit { to: SocketAddr, bytes: Vec<u8> },
    /// Hand to the call layer.
    Command(Command),
}

/// What the call layer is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start a third-party call. The call layer reports back with
    /// [`Service::on_progress`] and, exactly once, [`Service::on_ended`].
    Originate(Originate),
    /// Release the call-back at whatever stage it is; it still ends with `on_ended`.
    Cancel { id: CallbackId },
}

/// A call-back to place: call `user1`, then `user2`, connect them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originate {
    pub id: CallbackId,
    pub user1: Number,
    pub user2: Number,
    /// Calling number for both legs: the request's, else `[callback] caller`, else None
    /// (the call layer's choice).
    pub caller: Option<Number>,
    /// Release the call this long after user2 answers: the request's `max_duration`,
    /// capped by `[callback] max_duration_s`.
    pub max_duration: Duration,
    /// `[callback] from_peer`: route each leg as a call from this peer (None: only
    /// `from = "*"` routes).
    pub from_peer: Option<PeerName>,
}

/// How a call-back ended, as reported by the call layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub outcome: Outcome,
    /// Connected time (0 if never connected); whole seconds go into the RESPONSE.
    pub duration: Duration,
    /// Who released it (the CDRs' `call_tag`).
    pub call_tag: CallTag,
    pub cause: Q850Cause,
}

/// Counters, also exported as metrics (names in [`super::metrics`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams answered, by (verb, result).
    pub answered: BTreeMap<(&'static str, &'static str), u64>,
    /// Datagrams dropped unanswered, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Call-backs ended, by result.
    pub ended: BTreeMap<&'static str, u64>,
    /// Final RESPONSEs by outcome (`acked`, `given_up`, `evicted`, `not_allowed`).
    pub responses: BTreeMap<&'static str, u64>,
    /// Call-backs the watchdog ended because the call layer never reported their end.
    pub expired: u64,
}

impl Stats {
    pub fn answered(&self, verb: &str, result: &str) -> u64 {
        self.answered.get(&(verb, result)).copied().unwrap_or(0)
    }

    pub fn dropped(&self, reason: &str) -> u64 {
        self.dropped.get(reason).copied().unwrap_or(0)
    }

    pub fn responses(&self, outcome: &str) -> u64 {
        self.responses.get(outcome).copied().unwrap_or(0)
    }
}

/// governor's clock, set from the `now` the service is given: the core reads no clock.
#[derive(Debug, Clone, Default)]
struct GivenClock(Arc<AtomicU64>);

impl Clock for GivenClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.0.load(Ordering::Relaxed))
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, GivenClock, NoOpMiddleware<Nanos>>;

/// A RESPONSE waiting for the AS's `ACK`.
#[derive(Debug)]
struct Resend {
    bytes: Vec<u8>,
    /// Sends so far.
    tries: u8,
    /// Sent once only (to a source anyone may forge): kept here only while the send
    /// queue had no room for that one send.
    once: bool,
    /// When the next send (or, after the last, the giving up) is due.
    next_at: Instant,
    interval: Duration,
}

#[derive(Debug)]
enum Phase {
    Active {
        state: State,
        cancelling: bool,
        connected_at: Option<Instant>,
        /// When the watchdog gives up waiting for `on_ended`.
        deadline: Instant,
    },
    Ended {
        resend: Option<Resend>,
    },
}

#[derive(Debug)]
struct Entry {
    /// Where the REQUEST came from: ACKs of retransmitted REQUESTs and the RESPONSE go here.
    src: SocketAddr,
    /// The key its REQUEST was signed with (None unsigned): its RESPONSE is signed with it.
    key: Option<signature::KeyRef>,
    request: Request,
    /// The Originate's `max_duration`.
    max_duration: Duration,
    phase: Phase,
}

/// What [`Service::admit`] makes of a REQUEST it does not refuse.
enum Admitted {
    New,
    /// The REQUEST of a call-back in progress again, from where it came.
    Again,
}

/// Answers a second besides those placing a call, all sources together, when anyone may
/// send (`Service::open_answers`).
const MAX_OPEN_ANSWERS: std::num::NonZeroU32 = std::num::NonZeroU32::new(100).unwrap();

/// The call-back service.
pub struct Service {
    cfg: Arc<Config>,
    clock: GivenClock,
    epoch: Instant,
    limiter: Limiter,
    /// Answers when anyone may send (`allow_any`, or an `allow` of every address, without
    /// `secret_file`), but those that
    /// place a call (held to `rate`): a flood forging a victim's address (errors, a STATUS
    /// or a REQUEST replayed, each answered with more bytes than it had) is not reflected
    /// at it one for one. (An allowed or signing AS gets every answer: dropped, it would
    /// resend.)
    open_answers: Limiter,
    /// Each AS's call-backs, and which were refused lately: their fair shares.
    shares: shares::Shares,
    /// Every known call-back: at most `max_active` active plus `MAX_ENDED` ended.
    entries: HashMap<CallbackId, Entry>,
    active: usize,
    /// Ended ids in the order they ended, with when to forget them.
    ended: VecDeque<(Instant, CallbackId)>,
    /// RESPONSEs due for a resend, by due time.
    resend: BTreeSet<(Instant, CallbackId)>,
    /// Active call-backs by watchdog deadline (at most `max_active`).
    watchdog: BTreeSet<(Instant, CallbackId)>,
    draining: bool,
    /// The wall clock as the last datagram found it, and the latest `now` given: what the
    /// `ts` of a signed message we send is reckoned from.
    wall: Option<(Instant, SystemTime)>,
    last: Instant,
    /// Signed REQUESTs seen lately, and what became of them (only with `secret_file`).
    replays: Replays,
    /// The wall clock's second when the service started: a datagram signed before it may
    /// have been seen by the process before, whose replay table is gone.
    started_s: u64,
    /// Signed datagrams dated at or before this are refused: the latest `ts` at or ahead of
    /// its clock's second the process before took (`refuse_up_to`), as it may be replayed
    /// within its skew, or within the second a restart took.
    floor_s: u64,
    /// The latest `ts` at or ahead of our clock's second a signed datagram had, and whether
    /// it is new since the shell last took it (to keep for the next process).
    ahead_s: u64,
    ahead_new: bool,
    /// The key the datagram being handled was signed with: its answers are signed with it.
    reply_key: Option<signature::KeyRef>,
    out: VecDeque<Output>,
    /// `Output::Transmit`s in `out`.
    queued: usize,
    stats: Stats,
}

impl Service {
    /// A service started at `now`, `wall` on the wall clock.
    pub fn new(cfg: Arc<Config>, now: Instant, wall: SystemTime) -> Service {
        let clock = GivenClock::default();
        let limiter =
            RateLimiter::direct_with_clock(Quota::per_second(cfg.callback.rate), clock.clone());
        let open_answers =
            RateLimiter::direct_with_clock(Quota::per_second(MAX_OPEN_ANSWERS), clock.clone());
        Service {
            cfg,
            clock,
            epoch: now,
            limiter,
            open_answers,
            shares: shares::Shares::default(),
            entries: HashMap::new(),
            active: 0,
            ended: VecDeque::new(),
            resend: BTreeSet::new(),
            watchdog: BTreeSet::new(),
            draining: false,
            wall: Some((now, wall)),
            last: now,
            replays: Replays::default(),
            started_s: unix_s(wall),
            floor_s: 0,
            ahead_s: 0,
            ahead_new: false,
            reply_key: None,
            out: VecDeque::new(),
            queued: 0,
            stats: Stats::default(),
        }
    }

    /// A reloaded configuration: allow-list, limits, caller and routes apply to what comes
    /// next (call-backs in progress keep going). A changed `rate` starts a fresh limiter.
    pub fn set_config(&mut self, cfg: Arc<Config>) {
        if cfg.callback.rate != self.cfg.callback.rate {
            self.limiter = RateLimiter::direct_with_clock(
                Quota::per_second(cfg.callback.rate),
                self.clock.clone(),
            );
        }
        self.cfg = cfg;
    }

    /// The process before took signed datagrams dated up to `ts`, ahead of its clock:
    /// refuse those (a capture replayed after the restart would be within its skew still,
    /// and this replay table has never seen it).
    pub fn refuse_up_to(&mut self, ts: u64) {
        self.floor_s = self.floor_s.max(ts);
    }

    /// The latest `ts` at or ahead of our clock's second a signed datagram had, once each
    /// time it rises (at most once a second for datagrams dated when they come):
    /// the shell keeps it for the next process ([`Service::refuse_up_to`]).
    pub fn take_ahead(&mut self) -> Option<u64> {
        std::mem::take(&mut self.ahead_new).then_some(self.ahead_s)
    }

    /// Shutting down: new REQUESTs are refused (`reason=disabled`); call-backs in progress,
    /// CANCEL, STATUS and RESPONSEs carry on.
    pub fn start_drain(&mut self) {
        self.draining = true;
    }

    /// Call-backs in progress (not yet ended).
    pub fn active(&self) -> usize {
        self.active
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The next thing for the shell to do, if any. Call until None after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        let o = self.out.pop_front();
        if let Some(Output::Transmit { .. }) = o {
            self.queued = self.queued.saturating_sub(1);
        }
        o
    }

    /// Whether a RESPONSE still waits for the AS's ACK (and will be sent again): a stopping
    /// process gives it the time it has left, so one lost datagram does not lose the result.
    pub fn awaiting_acks(&self) -> bool {
        !self.resend.is_empty()
    }

    /// When [`Service::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let resend = self.resend.first().map(|(at, _)| *at);
        let forget = self.ended.front().map(|(at, _)| *at);
        let watchdog = self.watchdog.first().map(|(at, _)| *at);
        resend.into_iter().chain(forget).chain(watchdog).min()
    }

    /// The wall clock reads `wall` at `now` (the shell says so every second, and with every
    /// datagram). The start as the clock now puts it: a clock that was ahead when the
    /// process started (an RTC read as local time, a VM resumed) and was set right since
    /// (NTP, within minutes of a boot) would otherwise have every datagram refused as signed
    /// "before the start" until it caught up, hours perhaps. Only early on: a clock set back
    /// later would let a REQUEST the last process took be taken again (its replay table is
    /// gone), and nothing tells the two apart.
    pub fn observe_clock(&mut self, now: Instant, wall: SystemTime) {
        self.wall = Some((now, wall));
        self.replays.forget(now, unix_s(wall));
        let up = now.saturating_duration_since(self.epoch);
        if up < CLOCK_SETTLES {
            self.started_s = self
                .started_s
                .min(unix_s(wall).saturating_sub(up.as_secs()));
        }
    }

    /// One datagram from the call-back socket, received at `now` (`wall` on the wall clock,
    /// which signed datagrams' `ts` is checked against).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        wall: SystemTime,
        src: SocketAddr,
        bytes: &[u8],
    ) {
        self.observe_clock(now, wall);
        self.last = self.last.max(now);
        self.set_clock(now); // (the limiters' clock: any answer may be limited)
        if !self.cfg.callback.allows(src.ip()) {
            self.drop_datagram("not_allowed");
            return;
        }
        // Signed: a forged, unsigned or stale datagram is dropped unanswered, like a stranger's.
        self.reply_key = None;
        let (bytes, signed) = match &self.cfg.callback.keys {
            None => (bytes, None),
            Some(keys) => match signature::verify(bytes, Signer::As, keys, unix_s(wall)) {
                Ok(v) if v.ts < self.started_s || v.ts <= self.floor_s => {
                    return self.drop_datagram("stale");
                }
                Ok(v) => {
                    // Dated this second too: a process started within it would take
                    // it again (`started_s` is a second's start).
                    if v.ts >= unix_s(wall) && v.ts > self.ahead_s {
                        (self.ahead_s, self.ahead_new) = (v.ts, true);
                    }
                    self.reply_key = Some(v.key);
                    (v.message, Some((v.mac, v.ts)))
                }
                Err(e) => return self.drop_datagram(e.reason()),
            },
        };
        match protocol::parse(bytes) {
            Err(rejected) => {
                // An ACK is never answered: two gateways (or a gateway and its own echo)
                // must not be able to ping-pong.
                if rejected.verb == Some(Verb::Ack) {
                    self.drop_datagram("bad_ack");
                    return;
                }
                let verb = rejected.verb.map_or("unknown", Verb::as_str);
                let reason = rejected.error.reason();
                self.answer(
                    src,
                    verb,
                    Outbound::Error {
                        id: rejected.id.as_ref(),
                        reason,
                    },
                );
            }
            Ok(Inbound::Request(r)) => self.on_request(now, src, r, signed),
            Ok(Inbound::Cancel(id)) => self.on_cancel(src, id),
            Ok(Inbound::Status(id)) => self.on_status(src, id),
            Ok(Inbound::Ack(id)) => self.on_ack(id),
        }
    }

    /// The state STATUS reports.
    pub fn state(&self, id: &CallbackId) -> Option<State> {
        self.entries.get(id).map(|e| match &e.phase {
            Phase::Active { state, .. } => *state,
            Phase::Ended { .. } => State::Ended,
        })
    }

    /// Longest one leg may take to be answered, given from the REQUEST for user1's and again
    /// from user1's answer for user2's: the longest ring timeout configured (or Timer B's
    /// 32 s, a peer that says nothing), once for each peer of the longest route (each may be
    /// tried in turn, failing over), with the grace. Before, twice the longest ring timeout
    /// for both legs together: two legs failing over through several trunks each outlasted
    /// it, and the watchdog ended a call-back the call layer was still placing.
    fn setup_allowance(&self) -> Duration {
        let tries = (self.cfg.routes.iter().map(|r| r.to.len()))
            .max()
            .unwrap_or(1)
            .max(1);
        (self.cfg.longest_ring().max(TIMER_B))
            .saturating_mul(u32::try_from(tries).unwrap_or(u32::MAX))
            + WATCHDOG_GRACE
    }

    /// Whether some route takes `number` from the call-back's peer.
    fn routable(&self, number: &Number) -> bool {
        let from = self.cfg.callback.from_peer.as_ref();
        self.cfg.route_from(from, number.as_str()).is_some()
    }

    fn set_clock(&self, now: Instant) {
        let ns = now.saturating_duration_since(self.epoch).as_nanos();
        self.clock
            .0
            .fetch_max(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The wall clock now, in whole seconds since 1970, reckoned from the last datagram's.
    fn wall_s(&self) -> u64 {
        self.wall.map_or(0, |(at, wall)| {
            unix_s(wall + self.last.saturating_duration_since(at))
        })
    }
}

fn unix_s(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The CDR's `call_tag` spelling (its serde name), so RESPONSE and CDR always agree.
fn call_tag_token(tag: CallTag) -> String {
    match serde_json::to_value(tag) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".to_string(),
    }
}

mod answers;
mod ending;
mod requests;
mod shares;
#[cfg(test)]
mod tests;
