//! The application servers' fair shares of `[callback] max_active` and `rate`. One AS that
//! wants more than it gets (a runaway dialler, a campaign) must not starve another. While
//! another AS was refused room in the last 15 s and what is free is no more than the ASes
//! waiting are owed, room that frees goes first to the AS that holds the least (the one
//! refused first among equals), and an AS at its share waits; while another AS was refused
//! rate in the last 2 s, no AS takes more than its share of the rate a window. With one AS,
//! or none refused lately, any AS may take all of it, so nothing is left idle that someone
//! asks for.
//!
//! An AS is its source IP (its port may change from one socket to the next), an IPv6 one its
//! /64: a host picks its addresses from one, and would take a share per address.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::net::source_key;
use std::time::{Duration, Instant};

/// How long a refused AS stays owed its share of `max_active`, and keeps its place in the
/// queue for room: long enough for the call it was refused to be asked again (an AS
/// retries within seconds), short enough that one that stopped asking keeps no room idle
/// for long.
const WANTING: Duration = Duration::from_secs(15);
/// How long an AS refused rate stays owed its share of it: rate shares are settled window
/// by window, so a claim older than that holds nobody back.
const RATE_WANTING: Duration = Duration::from_secs(2);
/// ASes remembered at most beyond those with call-backs active (at most `max_active` of
/// them): with `allow_any` every source is a possible AS.
const MAX_IDLE: usize = 1024;

#[derive(Debug, Default)]
pub(super) struct Shares {
    by_ip: HashMap<IpAddr, Share>,
    /// When idle entries were last swept (at most once a second: a sweep walks them all).
    swept: Option<Instant>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Share {
    /// Call-backs active for this AS.
    active: usize,
    /// Its claim on room (`too_many_active`): when it was first refused in this claim (its
    /// place in the queue), and last (the claim lapses [`WANTING`] after).
    room_since: Option<Instant>,
    room_last: Option<Instant>,
    /// When it was last refused rate (`over_rate`).
    rate_last: Option<Instant>,
    /// Its rate window: when it began, and the call-backs placed in it.
    window: Option<Instant>,
    used: u32,
}

impl Share {
    fn wants_room(&self, now: Instant) -> bool {
        (self.room_last).is_some_and(|t| now.saturating_duration_since(t) < WANTING)
    }

    fn wants_rate(&self, now: Instant) -> bool {
        (self.rate_last).is_some_and(|t| now.saturating_duration_since(t) < RATE_WANTING)
    }

    /// Its place in the queue for room: fewest held first, then the longest waiting (one
    /// not waiting comes after every AS that is).
    fn place(&self, now: Instant) -> (usize, Instant) {
        let since = self.room_since.filter(|_| self.wants_room(now));
        (self.active, since.unwrap_or(now))
    }
}

/// The rate shared by `n` ASes: `share` call-backs each per `window`. The share is rounded
/// down (at least one: rounded up, the others' shares could add up to all of it), and the
/// window is what `n` shares take of the rate: at most a second, longer when the rate is
/// too low to give each AS one a second (rate 1, two ASes: one each every two seconds), and
/// shorter by what the rounding left (rate 3, two ASes: one each every 2/3 s, all of it).
fn rate_share(rate: u32, n: u32) -> (u32, Duration) {
    let rate = rate.max(1);
    let share = (rate / n).max(1);
    let window = Duration::from_secs(1).saturating_mul(n.saturating_mul(share)) / rate;
    (share, window)
}

impl Shares {
    /// Whether AS `ip` may place one more call-back, `total` being active of `max_active`
    /// at most and `rate` a second: the reason to refuse it when another AS waits for what
    /// it would take (checked before the shared rate limiter, which it then spares).
    pub fn check(
        &self,
        now: Instant,
        ip: IpAddr,
        total: usize,
        max_active: usize,
        rate: u32,
    ) -> Result<(), &'static str> {
        let ip = source_key(ip);
        // Alone (or nobody known): nothing to share.
        if self.by_ip.keys().all(|k| *k == ip) {
            return Ok(());
        }
        let mine = self.by_ip.get(&ip).copied().unwrap_or_default();
        let others = || self.by_ip.iter().filter(|(k, _)| **k != ip).map(|(_, s)| s);
        // Room, shared between every AS that holds some or wants some. Contended when what
        // is free is no more than the ASes waiting are owed: then an AS at its share waits,
        // and below it, one that waits ahead of it goes first.
        if others().any(|s| s.wants_room(now)) {
            let sharing = others()
                .filter(|s| s.active > 0 || s.wants_room(now))
                .count();
            let fair = (max_active / (sharing + 1)).max(1);
            let owed: usize = (others().filter(|s| s.wants_room(now)))
                .map(|s| fair.saturating_sub(s.active))
                .sum();
            let contended = max_active.saturating_sub(total) <= owed;
            // Behind any AS waiting with no more than it holds (one not waiting: behind any
            // waiting AS that holds as little, whenever that one was refused).
            let me = mine.place(now);
            let waiting = mine.wants_room(now);
            let behind = others().any(|s| {
                s.wants_room(now)
                    && if waiting {
                        s.place(now) < me
                    } else {
                        s.place(now) <= me
                    }
            });
            if contended && (mine.active >= fair || behind) {
                return Err("too_many_active");
            }
        }
        if let Some((share, window)) = self.rate_share_of(now, ip, rate)
            && mine
                .window
                .is_some_and(|w| now.saturating_duration_since(w) < window)
            && mine.used >= share
        {
            return Err("over_rate");
        }
        Ok(())
    }

    /// The share of the rate AS `ip` may take a window, while another AS wants rate.
    fn rate_share_of(&self, now: Instant, ip: IpAddr, rate: u32) -> Option<(u32, Duration)> {
        let wanting = (self.by_ip.iter())
            .filter(|(k, s)| **k != ip && s.wants_rate(now))
            .count();
        (wanting > 0).then(|| rate_share(rate, u32::try_from(wanting + 1).unwrap_or(u32::MAX)))
    }

    /// AS `ip` placed a call-back (`rate` a second allowed in all).
    pub fn took(&mut self, now: Instant, ip: IpAddr, rate: u32) {
        let ip = source_key(ip);
        self.sweep(now);
        let window = self.rate_share_of(now, ip, rate).map(|(_, w)| w);
        let s = self.by_ip.entry(ip).or_default();
        s.active += 1;
        // Served: if it waits again, it queues from then.
        s.room_since = None;
        let fresh = match (s.window, window) {
            (Some(start), Some(w)) => now.saturating_duration_since(start) >= w,
            _ => true,
        };
        if fresh {
            s.window = Some(now);
            s.used = 0;
        }
        s.used = s.used.saturating_add(1);
    }

    /// AS `ip` was refused (`reason`: `too_many_active` or `over_rate`): it is owed its
    /// share of that for a while. `total`: the call-backs active, which bounds the ASes
    /// holding any.
    pub fn refused(&mut self, now: Instant, ip: IpAddr, reason: &str, total: usize) {
        let ip = source_key(ip);
        self.sweep(now);
        let room = self.by_ip.len() < MAX_IDLE.saturating_add(total);
        let s = match self.by_ip.get_mut(&ip) {
            Some(s) => s,
            None if room => self.by_ip.entry(ip).or_default(),
            None => return,
        };
        if reason == "too_many_active" {
            if !s.wants_room(now) || s.room_since.is_none() {
                s.room_since = Some(now);
            }
            s.room_last = Some(now);
        } else {
            s.rate_last = Some(now);
        }
    }

    /// One of AS `ip`'s call-backs ended.
    pub fn ended(&mut self, ip: IpAddr) {
        if let Some(s) = self.by_ip.get_mut(&source_key(ip)) {
            s.active = s.active.saturating_sub(1);
        }
    }

    /// Forget ASes with nothing active and no claim left.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.swept = Some(now);
        self.by_ip
            .retain(|_, s| s.active > 0 || s.wants_room(now) || s.wants_rate(now));
    }

    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.by_ip.len()
    }
}
