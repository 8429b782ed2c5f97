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

/// A peer's old name, its calls up still counted under its new one.
#[derive(Debug)]
struct Renamed {
    to: PeerName,
    /// Calls under the old name still up.
    calls: u32,
}

/// The gateway's and every peer's limits.
#[derive(Debug)]
pub struct Limits {
    clock: FakeRelativeClock,
    last: Option<Instant>,
    global: Gate,
    peers: HashMap<PeerName, Gate>,
    /// Peers a reload renamed while they had calls up: the old name's calls count against
    /// the new name's gate, until the last of them ends (one entry per renamed peer).
    renamed: HashMap<PeerName, Renamed>,
    /// Peers a reload removed with calls up and that no reload has renamed yet: their last
    /// profile, so a later reload that brings them back under a new name (removed at one
    /// reload, added at the next) is still seen as a rename.
    departed: HashMap<PeerName, std::sync::Arc<crate::config::Profile>>,
    /// `[cdr] refused_rate`, and each peer's bucket of CDRs for refused INVITEs (made at the
    /// first refusal; one per profile at most).
    refused_rate: Option<NonZeroU32>,
    refusal_cdrs: HashMap<PeerName, Bucket>,
    /// `[cdr] refused_rate_total`, and its one bucket for all peers together.
    refused_total: (Option<NonZeroU32>, Option<Bucket>),
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
            renamed: HashMap::default(),
            departed: HashMap::default(),
            refused_rate: cfg.cdr_refused_rate,
            refusal_cdrs: HashMap::default(),
            refused_total: (None, None),
        };
        l.reconfigure(cfg, cfg);
        l
    }

    /// A reloaded configuration (`old` the one it replaces): changed limits start afresh,
    /// calls in progress stay counted, a renamed peer's under its new name.
    pub fn reconfigure(&mut self, old: &Config, cfg: &Config) {
        if self.refused_rate != cfg.cdr_refused_rate {
            self.refused_rate = cfg.cdr_refused_rate;
            self.refusal_cdrs.clear();
        }
        if self.refused_total.0 != cfg.cdr_refused_rate_total {
            let total = cfg.cdr_refused_rate_total;
            let bucket = total
                .map(|r| RateLimiter::direct_with_clock(Quota::per_second(r), self.clock.clone()));
            self.refused_total = (total, bucket);
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
            // A 503's rest was asked by the server at the old address: one the peer now
            // points at (its backup SBC) asked for none.
            let moved = old
                .profiles
                .get(name)
                .is_some_and(|o| o.address != p.address);
            if let Some(g) = self.peers.get_mut(name).filter(|_| moved) {
                g.resting_until = None;
            }
        }
        // An old name back in the configuration: its calls count for it again.
        let back: Vec<PeerName> = (self.renamed.keys())
            .filter(|n| cfg.profiles.contains_key(*n))
            .cloned()
            .collect();
        for name in back {
            if let Some(r) = self.renamed.remove(&name) {
                self.shift(&r.to, &name, r.calls);
            }
        }
        self.rename_from(old, cfg);
        // Peers a reload removed are forgotten once they carry no call (a gateway that
        // provisions and removes a profile per customer must not keep each for ever); one
        // with calls up keeps counting them until they end, and is forgotten at a reload
        // after.
        self.peers
            .retain(|name, g| cfg.profiles.contains_key(name) || g.active > 0);
        for name in self.peers.keys().filter(|n| !cfg.profiles.contains_key(*n)) {
            if let Some(was) = old.profiles.get(name) {
                self.departed.insert(name.clone(), was.clone());
            }
        }
        let peers = &self.peers;
        self.departed
            .retain(|name, _| peers.contains_key(name) && !cfg.profiles.contains_key(name));
        self.refusal_cdrs
            .retain(|name, _| cfg.profiles.contains_key(name));
    }

    /// A profile `cfg` no longer has, with calls up, and exactly one profile new to `cfg`
    /// with its address and its `match` networks: the same peer renamed (customers' profiles
    /// behind one upstream address differ in their networks), or removed at an earlier reload
    /// and back under a new name at this one (`departed`). Its calls count against the new name's
    /// `max_calls` (not from zero, which would let the peer carry twice its limit until
    /// they end), and so does its rest after a 503.
    fn rename_from(&mut self, old: &Config, cfg: &Config) {
        let gone: Vec<PeerName> = (self.peers.iter())
            .filter(|(n, g)| g.active > 0 && !cfg.profiles.contains_key(*n))
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            let Some(was) = old
                .profiles
                .get(&name)
                .or(self.departed.get(&name))
                .cloned()
            else {
                continue;
            };
            let mut new = (cfg.profiles.values())
                .filter(|p| p.address == was.address && p.matches == was.matches)
                .filter(|p| !old.profiles.contains_key(&p.name));
            let (Some(to), None) = (new.next(), new.next()) else {
                continue;
            };
            let Some(g) = self.peers.remove(&name) else {
                continue;
            };
            let to = to.name.clone();
            if let Some(t) = self.peers.get_mut(&to) {
                t.active = t.active.saturating_add(g.active);
                t.resting_until = t.resting_until.max(g.resting_until);
            }
            // Names renamed to this one before follow it; its own calls are the rest.
            let mut calls = g.active;
            for r in self.renamed.values_mut().filter(|r| r.to == name) {
                r.to = to.clone();
                calls = calls.saturating_sub(r.calls);
            }
            if calls > 0 {
                self.renamed.insert(name, Renamed { to, calls });
            }
        }
    }

    /// `calls` counted against `from` count against `to` instead.
    fn shift(&mut self, from: &PeerName, to: &PeerName, calls: u32) {
        if let Some(g) = self.peers.get_mut(from) {
            g.active = g.active.saturating_sub(calls);
        }
        if let Some(g) = self.peers.get_mut(to) {
            g.active = g.active.saturating_add(calls);
        }
    }

    /// The name `peer`'s calls count under: its own, or its new one after a rename.
    fn counted_as<'a>(&'a self, peer: &'a PeerName) -> &'a PeerName {
        self.renamed.get(peer).map_or(peer, |r| &r.to)
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
        // The peer's token before the gateway's: a peer flooding past its own `cps` must not
        // spend the gateway's (every other peer would be refused). The price, a peer token
        // spent on a call the gateway's `cps` then refuses, is paid only while the gateway
        // is over its own rate (governor takes no token back).
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
        let counted = self.counted_as(peer).clone();
        if let Some(g) = self.peers.get_mut(&counted)
            && let Some(until) = g.resting_until
        {
            if now < until {
                return Err(Over::Resting);
            }
            g.resting_until = None;
        }
        self.admit_peer(peer)
    }

    /// The rests under way, by peer: a reload that failed part way puts them back (it may
    /// have cleared one for a trunk it re-addressed).
    pub fn rests(&self) -> Vec<(PeerName, Instant)> {
        (self.peers.iter())
            .filter_map(|(n, g)| Some((n.clone(), g.resting_until?)))
            .collect()
    }

    /// Put back `rests` ([`Limits::rests`]) on the peers still counted.
    pub fn put_back_rests(&mut self, rests: Vec<(PeerName, Instant)>) {
        for (name, until) in rests {
            if let Some(g) = self.peers.get_mut(&name) {
                g.resting_until = Some(until);
            }
        }
    }

    /// `peer` answered a 503 with `Retry-After` (RFC 3261 §21.5.4): no attempt goes to it
    /// before `until` (the route's next peer is tried instead, or the caller gets 503).
    pub fn rest(&mut self, peer: &PeerName, until: Instant) {
        let counted = self.counted_as(peer).clone();
        if let Some(g) = self.peers.get_mut(&counted) {
            g.resting_until = Some(g.resting_until.map_or(until, |u| u.max(until)));
        }
    }

    fn admit_peer(&mut self, peer: &PeerName) -> Result<(), Over> {
        let counted = self.counted_as(peer).clone();
        let Some(g) = self.peers.get_mut(&counted) else {
            return Ok(());
        };
        if g.full(g.active) {
            return Err(Over::MaxCalls);
        }
        if !g.take_token() {
            return Err(Over::Cps);
        }
        g.active += 1;
        if let Some(r) = self.renamed.get_mut(peer) {
            r.calls += 1;
        }
        Ok(())
    }

    /// A call (or attempt) with `peer` is over.
    pub fn release(&mut self, peer: &PeerName) {
        let counted = self.counted_as(peer).clone();
        if let Some(g) = self.peers.get_mut(&counted) {
            g.active = g.active.saturating_sub(1);
        }
        if let Some(r) = self.renamed.get_mut(peer) {
            r.calls = r.calls.saturating_sub(1);
            if r.calls == 0 {
                self.renamed.remove(peer);
            }
        }
    }

    /// An INVITE from `peer` was refused before it became a call: whether its CDR is written
    /// (`[cdr] refused_rate` a second for each peer, and `refused_rate_total` for all of
    /// them together, a second's worth at once). A number scan or a flood in a peer's name
    /// (its address is easy to forge over UDP), or in many peers' names, is refused at the
    /// rate it comes, but fills the CDR file no faster than this.
    pub fn record_refusal(&mut self, now: Instant, peer: &PeerName) -> bool {
        self.tick(now);
        if let Some(rate) = self.refused_rate {
            if !self.refusal_cdrs.contains_key(peer) {
                let b = RateLimiter::direct_with_clock(Quota::per_second(rate), self.clock.clone());
                self.refusal_cdrs.insert(peer.clone(), b);
            }
            if self
                .refusal_cdrs
                .get(peer)
                .is_some_and(|b| b.check().is_err())
            {
                return false;
            }
        }
        self.refused_total
            .1
            .as_ref()
            .is_none_or(|b| b.check().is_ok())
    }

    /// Calls counted against `peer`'s limits: a renamed peer's calls under its old name
    /// count against its new name's gate, and either name gives that gate's count.
    pub fn active(&self, peer: &PeerName) -> u32 {
        self.peers
            .get(self.counted_as(peer))
            .map_or(0, |g| g.active)
    }

    /// Calls up under the name `peer` itself (the per-peer gauge): after a rename, the old
    /// name's calls under the old name only, the new name's without them, so that the
    /// names' counts add up to the calls there are.
    pub fn calls_named(&self, peer: &PeerName) -> u32 {
        if let Some(r) = self.renamed.get(peer) {
            return r.calls;
        }
        let others: u32 = (self.renamed.values())
            .filter(|r| r.to == *peer)
            .map(|r| r.calls)
            .sum();
        self.active(peer).saturating_sub(others)
    }
}

#[cfg(test)]
mod tests;
