//! File descriptors: what a configuration can need at once, against the process's limit.
//! Running out mid-call does not fail loudly (a relay socket that cannot bind is a call
//! without audio, a CDR or recording that cannot open is lost), so the budget is checked at
//! start-up: the soft limit is raised when the hard one allows, and the gateway refuses to
//! start, saying what to change, when it does not (audit H4, M10).

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::info;

use crate::config::Config;

/// Listeners, logs, the CDR file and what the runtime keeps open.
const BASE: u64 = 64;

/// Descriptors the configuration may hold at once: every RTP/RTCP port of the pool, a WAV
/// file for every recorded call (one needs at least four ports), every TCP connection, every
/// `/metrics` connection, each relay thread's poll and waker (two; up to 64 threads), each
/// `[sip] listen` socket and the call-back's, and the base.
pub fn needed(cfg: &Config) -> u64 {
    let ports = u64::from(cfg.media_ports.1.saturating_sub(cfg.media_ports.0)) + 1;
    let sockets = cfg.listen.len() as u64 + u64::from(cfg.callback.listen.is_some());
    ports
        + ports / 4
        + cfg.protect.max_tcp_total as u64
        + cfg.metrics.max_connections as u64
        + 2 * cfg.media_threads as u64
        + sockets
        + BASE
}

/// What to do about a soft/hard limit (`None` is unlimited) for `need` descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Enough,
    RaiseTo(u64),
    TooFew { hard: u64 },
}

/// What a soft limit is raised to: twice the need, at least 65,536, within the hard limit.
/// Raised to the need alone, anything the count leaves out (a library's descriptor, a
/// log file, a recording still being written after its call, a connection accepted only to
/// be refused) would make the last relay port or recording fail to open at full load. A
/// soft limit above the need but below that is raised too, as far as the hard one allows.
const RAISE_AT_LEAST: u64 = 65_536;

pub fn plan(need: u64, soft: Option<u64>, hard: Option<u64>) -> Plan {
    let Some(soft) = soft else {
        return Plan::Enough;
    };
    if let Some(h) = hard.filter(|h| *h < need) {
        return Plan::TooFew { hard: h };
    }
    let want = (need.saturating_mul(2).max(RAISE_AT_LEAST)).min(hard.unwrap_or(u64::MAX));
    if soft >= want {
        Plan::Enough
    } else {
        Plan::RaiseTo(want)
    }
}

/// Make sure the process may open what `cfg` can need.
pub fn ensure(cfg: &Config) -> anyhow::Result<()> {
    let need = needed(cfg);
    let now = getrlimit(Resource::Nofile);
    match plan(need, now.current, now.maximum) {
        Plan::Enough => Ok(()),
        Plan::RaiseTo(n) => {
            let raised = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(n),
                    maximum: now.maximum,
                },
            );
            match raised {
                Ok(()) => info!(from = ?now.current, to = n, "raised the open-file limit"),
                // Raised for room only (a sandbox may refuse setrlimit): the need is met.
                Err(e) if now.current.is_some_and(|s| s >= need) => {
                    tracing::warn!(limit = ?now.current, need, error = %e, "cannot raise the open-file limit for room; it holds what the configuration needs")
                }
                Err(e) => anyhow::bail!("cannot raise the open-file limit to {n}: {e}"),
            }
            Ok(())
        }
        Plan::TooFew { hard } => anyhow::bail!(
            "the configuration can need {need} open files ([media] ports: {} ports, \
             [protect] max_tcp_total: {}, recordings, relay threads, listeners and /metrics connections), but the hard limit is \
             {hard}: raise it (systemd LimitNOFILE=, ulimit -Hn) or narrow [media] ports or \
             [protect] max_tcp_total",
            u64::from(cfg.media_ports.1.saturating_sub(cfg.media_ports.0)) + 1,
            cfg.protect.max_tcp_total
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_configuration_needs_about_two_thousand_four_hundred() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        // 1000 ports, 250 recordings, 1024 TCP connections, 4 scrapers, 64 more; two for
        // each relay thread (one per core here), two SIP listeners and the call-back's.
        let threads = cfg.media_threads as u64;
        assert_eq!(needed(&cfg), 2342 + 2 * threads + 3);
        // A 64-core host's relay threads take 128 (before, none were counted).
        let mut big = cfg.clone();
        big.media_threads = 64;
        assert_eq!(needed(&big) - needed(&cfg), 2 * (64 - threads));
    }

    #[test]
    fn the_limit_is_left_raised_or_refused() {
        assert_eq!(plan(2338, Some(4096), Some(4096)), Plan::Enough);
        assert_eq!(plan(2338, None, None), Plan::Enough);
        // Raised with room (twice the need, at least 65,536), within the hard limit.
        assert_eq!(plan(2338, Some(1024), Some(524_288)), Plan::RaiseTo(65_536));
        assert_eq!(plan(2338, Some(1024), None), Plan::RaiseTo(65_536));
        assert_eq!(plan(2338, Some(1024), Some(4096)), Plan::RaiseTo(4096));
        assert_eq!(plan(40_000, Some(1024), None), Plan::RaiseTo(80_000));
        assert_eq!(
            plan(2338, Some(1024), Some(1024)),
            Plan::TooFew { hard: 1024 }
        );
        // A soft limit just above the need is raised for room too, as far as the hard
        // one allows (before, it was left as enough).
        assert_eq!(plan(2338, Some(2400), Some(524_288)), Plan::RaiseTo(65_536));
        assert_eq!(plan(2338, Some(2400), Some(3000)), Plan::RaiseTo(3000));
        assert_eq!(plan(2338, Some(3000), Some(3000)), Plan::Enough);
        assert_eq!(plan(2338, Some(70_000), None), Plan::Enough);
    }
}
