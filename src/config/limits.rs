//! `[limits]` (whole gateway and per profile) and `[protect]`: how much the gateway takes
//! before it refuses, and what it does with strangers. Checked with file:line:col like the
//! rest, with bounds that keep every value usable (no zero rates, no durations that overflow
//! a deadline).

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

/// `[limits]` of gateway.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalLimitsSection {
    pub max_calls: Option<Spanned<u64>>,
    pub cps: Option<Spanned<u64>>,
}

/// `[limits]` of a profile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerLimitsSection {
    pub max_calls: Option<Spanned<u64>>,
    pub cps: Option<Spanned<u64>>,
    pub max_call_duration_s: Option<Spanned<u64>>,
}

/// `[protect]` of gateway.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectSection {
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: Spanned<u64>,
    pub unknown_sources: Option<Spanned<String>>,
    pub max_tcp_total: Option<Spanned<u64>>,
    pub max_tcp_per_source: Option<Spanned<u64>>,
    pub max_tcp_per_peer: Option<Spanned<u64>>,
    pub tcp_message_timeout_s: Option<Spanned<u64>>,
    pub source_rate: Option<Spanned<u64>>,
    pub source_cooldown_s: Option<Spanned<u64>>,
    pub overload_delay_ms: Option<Spanned<u64>>,
    pub overload_drop_ms: Option<Spanned<u64>>,
}

impl Default for ProtectSection {
    fn default() -> Self {
        ProtectSection {
            max_message_bytes: default_max_message_bytes(),
            unknown_sources: None,
            max_tcp_total: None,
            max_tcp_per_source: None,
            max_tcp_per_peer: None,
            tcp_message_timeout_s: None,
            source_rate: None,
            source_cooldown_s: None,
            overload_delay_ms: None,
            overload_drop_ms: None,
        }
    }
}

fn default_max_message_bytes() -> Spanned<u64> {
    Spanned::new(0..0, 65535)
}

/// Limits on calls: concurrent and new per second. `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallLimits {
    pub max_calls: Option<u32>,
    pub cps: Option<u32>,
}

/// A profile's `[limits]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerLimits {
    pub calls: CallLimits,
    /// Release answered calls with this peer after this long (`None`: never).
    pub max_call_duration: Option<Duration>,
}

/// How long the shipped front (`contrib/kamailio`, `fr_timer`) gives an instance to answer
/// a new request before it tries the next instance.
pub const FRONT_INSTANCE_WAIT: Duration = Duration::from_secs(2);

/// Behind a front: a warning when `[protect] overload_drop_ms` lets an instance serve a
/// new request later than the front waits for it, so a call the front already gave the
/// next instance is placed here too (its callee rings twice).
pub(super) fn outlasts_front(p: &Protect) -> Option<String> {
    (p.overload_drop >= FRONT_INSTANCE_WAIT).then(|| {
        format!(
            "warning: [protect] overload_drop_ms = {}: behind the shipped front, which tries \
             the next instance after {} s without an answer, a new call served that late is \
             placed twice (its callee rings twice); keep it under {}",
            p.overload_drop.as_millis(),
            FRONT_INSTANCE_WAIT.as_secs(),
            FRONT_INSTANCE_WAIT.as_millis()
        )
    })
}

/// Connections of `max_tcp_total` kept for the gateway's own: a sixteenth, rounded up, so a
/// small total (under 16) keeps one too (a total of 1 has nothing to spare).
pub fn own_tcp_reserve(max_tcp_total: usize) -> usize {
    if max_tcp_total < 2 {
        0
    } else {
        max_tcp_total.div_ceil(16)
    }
}

/// A warning when more trunks are reached over TCP (distinct `tcp:` ones among the
/// profiles' `addresses`) than `[protect] max_tcp_total` keeps for the gateway's own connections once
/// peers' connections fill the rest (a sixteenth, rounded up): past that, a flood of
/// phones' connections leaves some trunks unreachable (their calls fail over, their
/// registrations and pings fail), and `max_tcp_total` takes a restart to raise.
pub(super) fn tcp_trunks_past_reserve(
    p: &Protect,
    addresses: impl Iterator<Item = crate::sip::Target>,
) -> Option<String> {
    let tcp: std::collections::HashSet<_> = addresses
        .filter(|a| a.transport == crate::sip::Transport::Tcp)
        .map(|a| a.addr)
        .collect();
    let tcp_peers = tcp.len();
    let kept = own_tcp_reserve(p.max_tcp_total);
    (tcp_peers > kept).then(|| {
        format!(
            "warning: {tcp_peers} peers are reached over tcp: but [protect] max_tcp_total = {} \
             keeps only {kept} connections for the gateway's own when peers' connections fill \
             the rest; raise max_tcp_total to at least {} (it needs a restart)",
            p.max_tcp_total,
            tcp_peers * 16
        )
    })
}

/// What happens to requests from sources no profile matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownSources {
    /// Silence: the stranger learns nothing and costs one lookup.
    #[default]
    Drop,
    /// One stateless 403, never retransmitted.
    Reject,
}

/// `[protect]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protect {
    pub max_message_bytes: usize,
    pub unknown_sources: UnknownSources,
    /// TCP connections at once, in all (accepted and opened by us).
    pub max_tcp_total: usize,
    /// TCP connections at once from one address.
    pub max_tcp_per_source: usize,
    /// TCP connections at once from the addresses of one peer (profile), all together.
    pub max_tcp_per_peer: usize,
    /// A message begun on a TCP connection must be complete within this long (slowloris).
    pub tcp_message_timeout: Duration,
    /// SIP messages per second one source address may send (`None`: no guard).
    pub source_rate: Option<u32>,
    /// How long a source over `source_rate` is ignored.
    pub source_cooldown: Duration,
    /// Queue delay past which new requests are refused with a stateless 503.
    pub overload_delay: Duration,
    /// Queue delay past which new requests are dropped unanswered.
    pub overload_drop: Duration,
}

impl Default for Protect {
    fn default() -> Self {
        Protect {
            max_message_bytes: 65535,
            unknown_sources: UnknownSources::Drop,
            max_tcp_total: 1024,
            max_tcp_per_source: 16,
            max_tcp_per_peer: 720,
            tcp_message_timeout: Duration::from_secs(10),
            source_rate: Some(2000),
            source_cooldown: Duration::from_secs(5),
            overload_delay: Duration::from_millis(50),
            overload_drop: Duration::from_millis(500),
        }
    }
}

/// Reads one bounded number, reporting a value out of `range` at its position.
struct Reader<'a, F: Fn(usize, String) -> ConfigError> {
    at: F,
    errs: &'a mut Vec<ConfigError>,
}

impl<F: Fn(usize, String) -> ConfigError> Reader<'_, F> {
    fn num(
        &mut self,
        v: &Option<Spanned<u64>>,
        key: &str,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        let v = v.as_ref()?;
        if range.contains(v.get_ref()) {
            return Some(*v.get_ref());
        }
        self.errs.push((self.at)(
            v.span().start,
            format!(
                "{key} = {} must be {}..={}",
                v.get_ref(),
                range.start(),
                range.end()
            ),
        ));
        None
    }
}

fn call_limits<F: Fn(usize, String) -> ConfigError>(
    r: &mut Reader<'_, F>,
    max_calls: &Option<Spanned<u64>>,
    cps: &Option<Spanned<u64>>,
) -> CallLimits {
    CallLimits {
        max_calls: r
            .num(max_calls, "[limits] max_calls", 1..=10_000_000)
            .map(|n| n as u32),
        cps: r.num(cps, "[limits] cps", 1..=100_000).map(|n| n as u32),
    }
}

/// `[limits]` of gateway.toml. `at(offset, message)` builds an error at a position.
pub fn global_limits(
    s: &GlobalLimitsSection,
    at: impl Fn(usize, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> CallLimits {
    let mut r = Reader { at, errs };
    call_limits(&mut r, &s.max_calls, &s.cps)
}

/// `[limits]` of a profile.
pub fn peer_limits(
    s: &PeerLimitsSection,
    at: impl Fn(usize, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> PeerLimits {
    let mut r = Reader { at, errs };
    let calls = call_limits(&mut r, &s.max_calls, &s.cps);
    // 0 is "off", as the contract documents; a week bounds the deadline arithmetic.
    let max_call_duration = r
        .num(
            &s.max_call_duration_s,
            "[limits] max_call_duration_s",
            0..=604_800,
        )
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    PeerLimits {
        calls,
        max_call_duration,
    }
}

/// `[protect]`.
pub fn protect(
    s: &ProtectSection,
    at: impl Fn(usize, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> Protect {
    let d = Protect::default();
    let unknown_sources = match &s.unknown_sources {
        None => d.unknown_sources,
        Some(v) => match v.get_ref().as_str() {
            "drop" => UnknownSources::Drop,
            "reject" => UnknownSources::Reject,
            other => {
                errs.push(at(
                    v.span().start,
                    format!("[protect] unknown_sources {other:?} must be \"drop\" or \"reject\""),
                ));
                d.unknown_sources
            }
        },
    };
    let mut r = Reader { at, errs };
    let max_message_bytes = r
        .num(
            &Some(s.max_message_bytes.clone()),
            "[protect] max_message_bytes",
            1024..=65535,
        )
        .map_or(d.max_message_bytes, |n| n as usize);
    let max_tcp_total = r
        .num(&s.max_tcp_total, "[protect] max_tcp_total", 1..=1_000_000)
        .map_or(d.max_tcp_total, |n| n as usize);
    let max_tcp_per_source = r
        .num(
            &s.max_tcp_per_source,
            "[protect] max_tcp_per_source",
            1..=1_000_000,
        )
        .map_or(d.max_tcp_per_source, |n| n as usize);
    // Unset, the default gives way to a smaller total (the rule holds either way).
    let max_tcp_per_source = match &s.max_tcp_per_source {
        Some(v) if max_tcp_per_source > max_tcp_total => {
            r.errs.push((r.at)(
                v.span().start,
                "[protect] max_tcp_per_source must not exceed max_tcp_total".into(),
            ));
            max_tcp_per_source
        }
        Some(_) => max_tcp_per_source,
        None => max_tcp_per_source.min(max_tcp_total),
    };
    // Unset: three quarters of what peers may hold (the total but the gateway's own
    // sixteenth), so one peer's wide `match` cannot hold every slot while a profile of many
    // TCP phones keeps most of them; never under one source's share.
    let max_tcp_per_peer = match r.num(
        &s.max_tcp_per_peer,
        "[protect] max_tcp_per_peer",
        1..=1_000_000,
    ) {
        Some(n) if n as usize > max_tcp_total => {
            if let Some(v) = &s.max_tcp_per_peer {
                r.errs.push((r.at)(
                    v.span().start,
                    "[protect] max_tcp_per_peer must not exceed max_tcp_total".into(),
                ));
            }
            n as usize
        }
        Some(n) => n as usize,
        None => {
            let peers = max_tcp_total - max_tcp_total.div_ceil(16);
            (peers * 3 / 4).max(max_tcp_per_source).min(max_tcp_total)
        }
    };
    let tcp_message_timeout = r
        .num(
            &s.tcp_message_timeout_s,
            "[protect] tcp_message_timeout_s",
            1..=300,
        )
        .map_or(d.tcp_message_timeout, Duration::from_secs);
    // 0 switches the guard off (a gateway behind its own SBC, a benchmark).
    let source_rate = match r.num(&s.source_rate, "[protect] source_rate", 0..=10_000_000) {
        Some(0) => None,
        Some(n) => Some(n as u32),
        None => d.source_rate,
    };
    let source_cooldown = r
        .num(
            &s.source_cooldown_s,
            "[protect] source_cooldown_s",
            1..=3600,
        )
        .map_or(d.source_cooldown, Duration::from_secs);
    let overload_delay = r
        .num(
            &s.overload_delay_ms,
            "[protect] overload_delay_ms",
            10..=10_000,
        )
        .map_or(d.overload_delay, Duration::from_millis);
    let overload_drop = r
        .num(
            &s.overload_drop_ms,
            "[protect] overload_drop_ms",
            10..=60_000,
        )
        .map_or(d.overload_drop, Duration::from_millis);
    if overload_drop < overload_delay {
        let at_key = s.overload_drop_ms.as_ref().or(s.overload_delay_ms.as_ref());
        if let Some(v) = at_key {
            r.errs.push((r.at)(
                v.span().start,
                "[protect] overload_drop_ms must not be below overload_delay_ms".into(),
            ));
        }
    }
    Protect {
        max_message_bytes,
        unknown_sources,
        max_tcp_total,
        max_tcp_per_source,
        max_tcp_per_peer,
        tcp_message_timeout,
        source_rate,
        source_cooldown,
        overload_delay,
        overload_drop,
    }
}
