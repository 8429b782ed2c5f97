//! Admission limits (`[limits]`): new calls per second and calls at once, for the whole
//! gateway and for each peer. The per-second limits are governor's GCRA token buckets,
//! driven by the `now` the core is given (governor's manually advanced clock), so they are as
//! deterministic in a test as the rest of the core.

use std::num::NonZeroU32;
use std::time::Instant;

use foldhash::HashMap;
use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::{CallLimits, Config, PeerName};

type Bucket = RateLimiter<NotKeyed, InMemoryState, FakeRelativeClock, NoOpMiddleware<Nanos>>;

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Cps,
    MaxCalls,
    /// The gateway's own `[limits]` (gateway.toml), not the peer's: told apart in the
    /// metric, so an operator raises the right one.
    GatewayCps,
    GatewayMaxCalls,
    /// The peer answered a 503 with Retry-After a moment ago (RFC 3261 §21.5.4): no
    /// request goes to it until then.
    Resting,
}

impl Over {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Over::Cps => "cps",
            Over::MaxCalls => "max_calls",
            Over::GatewayCps => "gateway_cps",
            Over::GatewayMaxCalls => "gateway_max_calls",
            Over::Resting => "retry_after",
        }
    }

    /// What the 503's Retry-After asks for, in seconds: a token comes back within a second;
    /// a call slot when some call ends, which is longer.
    pub fn retry_after(self) -> &'static str {
        match self {
            Over::Cps | Over::GatewayCps => "1",
            Over::MaxCalls | Over::GatewayMaxCalls => "10",
            Over::Resting => "5",
        }
    }
}

/// One set of limits and what is counted against it.
#[derive(Debug)]
struct Gate {
    limits: CallLimits,
    bucket: Option<Bucket>,
    active: u32,
    /// Until when the peer asked to be sent nothing (its 503's Retry-After).
    resting_until: Option<Instant>,
}

impl Gate {
    fn new(limits: CallLimits, clock: &FakeRelativeClock) -> Gate {
        // A burst of a fifth of a second's worth (at least one call): smooth, but a handful
        // of simultaneous INVITEs from a PBX are not refused.
        let bucket = limits.cps.and_then(NonZeroU32::new).map(|cps| {
            let burst = NonZeroU32::new((cps.get() / 5).max(1)).unwrap_or(NonZeroU32::MIN);
            RateLimiter::direct_with_clock(Quota::per_second(cps).allow_burst(burst), clock.clone())
        });
        Gate {
            limits,
            bucket,
            active: 0,
            resting_until: None,
        }
    }

    fn full(&self, active: u32) -> bool {
        self.limits.max_calls.is_some_and(|m| active >= m)
    }

    fn take_token(&self) -> bool {
        self.bucket.as_ref().is_none_or(|b| b.check().is_ok())
    }
}

/// The gateway's and every peer's limits.
#[derive(Debug)]
pub struct Limits {
    clock: FakeRelativeClock,
    last: Option<Instant>,
    global: Gate,
    peers: HashMap<PeerName, Gate>,
    /// `[cdr] refused_rate`, and each peer's bucket of CDRs for refused INVITEs (made at the
    /// first refusal; one per profile at most).
    refused_rate: Option<NonZeroU32>,
    refusal_cdrs: HashMap<PeerName, Bucket>,
}

impl Limits {
    pub fn new(cfg: &Config) -> Self {
        let clock = FakeRelativeClock::default();
        let global = Gate::new(cfg.limits, &clock);
        let mut l = Limits {
            clock,
            last: None,
            global,
            peers: HashMap::default(),
            refused_rate: cfg.cdr_refused_rate,
            refusal_cdrs: HashMap::default(),
        };
        l.reconfigure(cfg);
        l
    }

    /// A reloaded configuration: changed limits start afresh, calls in progress stay counted.
    pub fn reconfigure(&mut self, cfg: &Config) {
        if self.refused_rate != cfg.cdr_refused_rate {
            self.refused_rate = cfg.cdr_refused_rate;
            self.refusal_cdrs.clear();
        }
        if self.global.limits != cfg.limits {
            let active = self.global.active;
            self.global = Gate::new(cfg.limits, &self.clock);
            self.global.active = active;
        }
        for (name, p) in &cfg.profiles {
            let same = self
                .peers
                .get(name)
                .is_some_and(|g| g.limits == p.limits.calls);
            if !same {
                let old = self.peers.get(name);
                let (active, resting) = old.map_or((0, None), |g| (g.active, g.resting_until));
                let mut g = Gate::new(p.limits.calls, &self.clock);
                g.active = active;
                g.resting_until = resting;
                self.peers.insert(name.clone(), g);
            }
        }
        // Peers a reload removed are forgotten once they carry no call (a gateway that
        // provisions and removes a profile per customer must not keep each for ever); one
        // with calls up keeps counting them until they end, and is forgotten at a reload
        // after.
        self.peers
            .retain(|name, g| cfg.profiles.contains_key(name) || g.active > 0);
        self.refusal_cdrs
            .retain(|name, _| cfg.profiles.contains_key(name));
    }

    fn tick(&mut self, now: Instant) {
        match self.last {
            Some(last) if now > last => self.clock.advance(now - last),
            Some(_) => return,
            None => {}
        }
        self.last = Some(now);
    }

    /// A new call from `peer`, with `calls` calls already up: checked against the gateway's
    /// limits and the peer's. On success the call counts against both until [`release`].
    pub fn admit_call(&mut self, now: Instant, peer: &PeerName, calls: usize) -> Result<(), Over> {
        self.tick(now);
        if self.global_full(calls) {
            return Err(Over::GatewayMaxCalls);
        }
        self.admit_peer(peer)?;
        if !self.global.take_token() {
            self.release(peer);
            return Err(Over::GatewayCps);
        }
        Ok(())
    }

    /// A new call that comes from no peer (a call-back without `from_peer`): the gateway's
    /// limits only. Nothing to release afterwards.
    pub fn admit_gateway(&mut self, now: Instant, calls: usize) -> Result<(), Over> {
        self.tick(now);
        if self.global_full(calls) {
            return Err(Over::GatewayMaxCalls);
        }
        if !self.global.take_token() {
            return Err(Over::GatewayCps);
        }
        Ok(())
    }

    fn global_full(&self, calls: usize) -> bool {
        self.global.full(u32::try_from(calls).unwrap_or(u32::MAX))
    }

    /// An attempt toward `peer` (the peer's limits only: the gateway's were checked when the
    /// call came in). On success it counts until [`release`].
    pub fn admit_attempt(&mut self, now: Instant, peer: &PeerName) -> Result<(), Over> {
        self.tick(now);
        if let Some(g) = self.peers.get_mut(peer)
            && let Some(until) = g.resting_until
        {
            if now < until {
                return Err(Over::Resting);
            }
            g.resting_until = None;
        }
        self.admit_peer(peer)
    }

    /// `peer` answered a 503 with `Retry-After` (RFC 3261 §21.5.4): no attempt goes to it
    /// before `until` (the route's next peer is tried instead, or the caller gets 503).
    pub fn rest(&mut self, peer: &PeerName, until: Instant) {
        if let Some(g) = self.peers.get_mut(peer) {
            g.resting_until = Some(g.resting_until.map_or(until, |u| u.max(until)));
        }
    }

    fn admit_peer(&mut self, peer: &PeerName) -> Result<(), Over> {
        let Some(g) = self.peers.get_mut(peer) else {
            return Ok(());
        };
        if g.full(g.active) {
            return Err(Over::MaxCalls);
        }
        if !g.take_token() {
            return Err(Over::Cps);
        }
        g.active += 1;
        Ok(())
    }

    /// A call (or attempt) with `peer` is over.
    pub fn release(&mut self, peer: &PeerName) {
        if let Some(g) = self.peers.get_mut(peer) {
            g.active = g.active.saturating_sub(1);
        }
    }

    /// An INVITE from `peer` was refused before it became a call: whether its CDR is written
    /// (`[cdr] refused_rate` a second for each peer, a second's worth at once). A number scan
    /// or a flood in a peer's name (its address is easy to forge over UDP) is refused at the
    /// rate it comes, but fills the CDR file no faster than this.
    pub fn record_refusal(&mut self, now: Instant, peer: &PeerName) -> bool {
        let Some(rate) = self.refused_rate else {
            return true;
        };
        self.tick(now);
        if !self.refusal_cdrs.contains_key(peer) {
            let b = RateLimiter::direct_with_clock(Quota::per_second(rate), self.clock.clone());
            self.refusal_cdrs.insert(peer.clone(), b);
        }
        self.refusal_cdrs
            .get(peer)
            .is_none_or(|b| b.check().is_ok())
    }

    /// Calls counted against `peer` (for tests and health).
    pub fn active(&self, peer: &PeerName) -> u32 {
        self.peers.get(peer).map_or(0, |g| g.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer a reload removed is forgotten once it carries no call; with a call up it keeps
    /// counting it. Before, every removed peer's gate (and its refusal-CDR bucket) stayed
    /// for the life of the process.
    #[test]
    fn a_removed_peer_is_forgotten_once_its_calls_end() {
        let cfg = crate::call::tests::config();
        let mut l = Limits::new(&cfg);
        let gone = PeerName("carrier-b".into());
        let now = Instant::now();
        assert!(l.admit_call(now, &gone, 0).is_ok());
        assert!(l.record_refusal(now, &gone));
        let mut without = cfg.clone();
        without.profiles.retain(|n, _| *n != gone);
        l.reconfigure(&without);
        assert_eq!(l.active(&gone), 1, "its call still counts");
        assert!(!l.refusal_cdrs.contains_key(&gone));
        l.release(&gone);
        l.reconfigure(&without);
        assert!(!l.peers.contains_key(&gone));
        assert!(l.peers.contains_key(&PeerName("carrier-a".into())));
    }
}
