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
    /// When it was last refused room or rate.
    refused_at: Option<Instant>,
    /// REQUESTs placed in the second that began at `second`.
    second: Option<Instant>,
    granted: u32,
}

impl Share {
    fn wanting(&self, now: Instant, within: Duration) -> bool {
        self.refused_at
            .is_some_and(|t| now.saturating_duration_since(t) < within)
    }

    fn granted_this_second(&self, now: Instant) -> u32 {
        match self.second {
            Some(s) if now.saturating_duration_since(s) < Duration::from_secs(1) => self.granted,
            _ => 0,
        }
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
        let others = |within| {
            self.by_ip
                .iter()
                .filter(move |(k, s)| **k != ip && s.wanting(now, within))
                .map(|(_, s)| s)
        };
        let wanting = others(WANTING).count();
        if wanting > 0 {
            let fair = max_active.div_ceil(wanting + 1);
            let owed: usize = others(WANTING).map(|s| fair.saturating_sub(s.active)).sum();
            if mine.active >= fair && max_active.saturating_sub(total) <= owed {
                return Err("too_many_active");
            }
        }
        let wanting = others(RATE_WANTING).count();
        if wanting > 0 {
            let fair = rate.div_ceil(u32::try_from(wanting + 1).unwrap_or(u32::MAX));
            if mine.granted_this_second(now) >= fair {
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
        if s.granted_this_second(now) == 0 {
            s.second = Some(now);
            s.granted = 0;
        }
        s.granted = s.granted.saturating_add(1);
    }

    /// AS `ip` was refused room or rate: it is owed its share for a while. `total`: the
    /// call-backs active, which bounds the ASes holding any.
    pub fn refused(&mut self, now: Instant, ip: IpAddr, total: usize) {
        self.sweep(now);
        if let Some(s) = self.by_ip.get_mut(&ip) {
            s.refused_at = Some(now);
        } else if self.by_ip.len() < MAX_IDLE.saturating_add(total) {
            self.by_ip.insert(
                ip,
                Share {
                    refused_at: Some(now),
                    ..Share::default()
                },
            );
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
            .retain(|_, s| s.active > 0 || s.wanting(now, WANTING));
    }

    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.by_ip.len()
    }
}
