//! The application servers' fair shares of `[callback] max_active` and `rate`. One AS that
//! wants more than it gets (a runaway dialler, a campaign) must not starve another: while
//! another AS has been refused lately, an AS already holding its fair share is refused the
//! room the other is owed. With one AS, or none refused lately, any AS may take all of it,
//! so nothing is left idle that someone asks for.
//!
//! An AS is its source IP (its port may change from one socket to the next).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a refused AS stays owed its share of `max_active`: long enough for the calls it
/// was refused for to be asked again (an AS retries a refused call-back within seconds).
const WANTING: Duration = Duration::from_secs(60);
/// How long a refused AS stays owed its share of `rate`: rate shares are settled second by
/// second, so a claim older than that holds nobody back.
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
    /// When it was last refused room (`too_many_active`), and rate (`over_rate`).
    refused_room_at: Option<Instant>,
    refused_rate_at: Option<Instant>,
    /// When it last placed one.
    placed_at: Option<Instant>,
}

impl Share {
    /// Refused room within the last [`WANTING`].
    fn wants_room(&self, now: Instant) -> bool {
        (self.refused_room_at).is_some_and(|t| now.saturating_duration_since(t) < WANTING)
    }

    /// Refused rate within the last [`RATE_WANTING`].
    fn wants_rate(&self, now: Instant) -> bool {
        (self.refused_rate_at).is_some_and(|t| now.saturating_duration_since(t) < RATE_WANTING)
    }
}

impl Shares {
    /// Whether AS `ip` may place one more call-back, `total` being active of `max_active`
    /// at most and `rate` a second: the reason to refuse it when its share is used up while
    /// another AS waits (checked before the shared rate limiter, which it then spares).
    pub fn check(
        &self,
        now: Instant,
        ip: IpAddr,
        total: usize,
        max_active: usize,
        rate: u32,
    ) -> Result<(), &'static str> {
        // Alone (or nobody known): nothing to share.
        if self.by_ip.keys().all(|k| *k == ip) {
            return Ok(());
        }
        let mine = self.by_ip.get(&ip).copied().unwrap_or_default();
        let others = || self.by_ip.iter().filter(|(k, _)| **k != ip).map(|(_, s)| s);
        // Each share rounded down (at least one): rounded up, the shares of the others
        // could add up to all of it, and the one refused would never get in.
        // Shared between every AS that holds room or wants it.
        let wanting = others().filter(|s| s.wants_room(now)).count();
        if wanting > 0 {
            let sharing = others()
                .filter(|s| s.active > 0 || s.wants_room(now))
                .count();
            let fair = (max_active / (sharing + 1)).max(1);
            let owed: usize = (others().filter(|s| s.wants_room(now)))
                .map(|s| fair.saturating_sub(s.active))
                .sum();
            if mine.active >= fair && max_active.saturating_sub(total) <= owed {
                return Err("too_many_active");
            }
        }
        // The rate by turns: an AS places one at most every `n / rate` seconds while n
        // want it, so one that asks first each time a token comes does not take them all.
        let wanting = others().filter(|s| s.wants_rate(now)).count();
        if wanting > 0
            && let Some(at) = mine.placed_at
        {
            let n = u32::try_from(wanting + 1).unwrap_or(u32::MAX);
            let turn = Duration::from_secs(1).saturating_mul(n) / rate.max(1);
            if now.saturating_duration_since(at) < turn {
                return Err("over_rate");
            }
        }
        Ok(())
    }

    /// AS `ip` placed a call-back.
    pub fn took(&mut self, now: Instant, ip: IpAddr) {
        self.sweep(now);
        let s = self.by_ip.entry(ip).or_default();
        s.active += 1;
        s.placed_at = Some(now);
    }

    /// AS `ip` was refused (`reason`: `too_many_active` or `over_rate`): it is owed its
    /// share of that for a while. `total`: the call-backs active, which bounds the ASes
    /// holding any.
    pub fn refused(&mut self, now: Instant, ip: IpAddr, reason: &str, total: usize) {
        self.sweep(now);
        let room = self.by_ip.len() < MAX_IDLE.saturating_add(total);
        let s = match self.by_ip.get_mut(&ip) {
            Some(s) => s,
            None if room => self.by_ip.entry(ip).or_default(),
            None => return,
        };
        match reason {
            "too_many_active" => s.refused_room_at = Some(now),
            _ => s.refused_rate_at = Some(now),
        }
    }

    /// One of AS `ip`'s call-backs ended.
    pub fn ended(&mut self, ip: IpAddr) {
        if let Some(s) = self.by_ip.get_mut(&ip) {
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
