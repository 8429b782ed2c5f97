//! `[metrics]` and `[shutdown]`: how the running process is watched, and how it stops.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use ipnet::IpNet;

use super::ConfigError;
use super::file::{MetricsSection, ShutdownSection};

/// `[shutdown] drain_s` when unset, and its bound (a day).
const DEFAULT_DRAIN_S: u64 = 30;
const MAX_DRAIN_S: u64 = 86_400;

/// `[metrics] max_connections` when unset, and its bound.
const DEFAULT_METRICS_CONNECTIONS: usize = 4;
const MAX_METRICS_CONNECTIONS: u64 = 64;

/// `[metrics]`: where `/metrics` is served and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// None when disabled (`listen = ""`).
    pub listen: Option<SocketAddr>,
    /// Sources that may scrape; others are closed unanswered.
    pub allow: Vec<IpNet>,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
}

impl MetricsConfig {
    pub fn allows(&self, ip: IpAddr) -> bool {
        super::net::holds(&self.allow, ip)
    }
}

/// Loopback, both families: a scraper on the same host.
fn loopback() -> Vec<IpNet> {
    vec![
        IpNet::from(IpAddr::from([127, 0, 0, 1])),
        IpNet::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
    ]
}

/// `[metrics]`. A non-loopback `listen` with the default (loopback) `allow` is a warning: the
/// scraper on another host would be closed unanswered.
pub(super) fn metrics(
    s: &MetricsSection,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> MetricsConfig {
    let listen = match s.listen.get_ref().trim() {
        "" => None,
        m => match m.parse::<SocketAddr>() {
            Ok(a) if a.port() == 0 => {
                errs.push(at(
                    s.listen.span(),
                    format!("[metrics] listen {m:?}: port 0 is no port"),
                ));
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                errs.push(at(
                    s.listen.span(),
                    format!("[metrics] listen {m:?} must be IP:PORT, or \"\" to disable"),
                ));
                None
            }
        },
    };
    let allow = match &s.allow {
        None => loopback(),
        Some(list) => {
            let nets = super::net::parse_nets(
                list.get_ref(),
                "[metrics] allow",
                |a, m| errs.push(at(a.span(), m)),
                |a, m| warnings.push(at(a.span(), m)),
            );
            if list.get_ref().is_empty() && listen.is_some() {
                errs.push(at(
                    list.span(),
                    "[metrics] allow is empty: name the scrapers' addresses, or set listen = \"\" \
                     to turn /metrics off"
                        .to_string(),
                ));
            }
            nets
        }
    };
    // Whether the list was left as it is shipped or written out by hand, a scraper on
    // another host would be closed unanswered: said at load, not found out at 3 a.m.
    if let Some(a) = listen
        && !a.ip().is_loopback()
        && !allow.is_empty()
        && allow.iter().all(|n| n.addr().is_loopback())
    {
        warnings.push(at(
            s.listen.span(),
            format!(
                "warning: [metrics] listen {a} is not loopback, but allow has only loopback \
                 addresses: set [metrics] allow to your Prometheus servers' addresses"
            ),
        ));
    }
    let max_connections = match &s.max_connections {
        None => DEFAULT_METRICS_CONNECTIONS,
        Some(n) if (1..=MAX_METRICS_CONNECTIONS).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            errs.push(at(
                n.span(),
                format!("[metrics] max_connections must be 1..={MAX_METRICS_CONNECTIONS}"),
            ));
            DEFAULT_METRICS_CONNECTIONS
        }
    };
    MetricsConfig {
        listen,
        allow,
        max_connections,
    }
}

/// What a stop takes past the drain: the wait for room in the CDR queue while the rest are
/// hung up (at most `engine::lifecycle`'s `ROOM_WAIT`, 2 s), BYEs' answers (4 s), the
/// CDR file's close and its
/// retries (at most `cdr::CLOSE_WAIT`, 6 s), the recordings' close (at most
/// `engine::WAV_CLOSE_WAIT`, 2 s), the relay threads' join (1 s), the pid file's removal
/// (0.5 s), the runtime's own shutdown (1 s), the log's flush (1 s), the TCP connections'
/// last writes (at most `engine::lifecycle`'s `TCP_FLUSH`, 1 s), lost CDRs' lines on their
/// way to standard error (at most `cdr::writer`'s `LOST_DRAIN`, 2 s), the call-back ts's
/// last write (at most `engine::callback::floor`'s `LAST_WRITE_WAIT`, 0.5 s), the last
/// recorded calls' CDRs waiting for their recordings (at most `engine::held_cdrs`'s
/// `WAIT_AT_STOP`, 0.5 s), and half a second to spare.
const STOP_AFTER_DRAIN_S: u64 = 22;
/// The stop timeout of the shipped systemd unit and of the README's `docker run`.
const SHIPPED_STOP_TIMEOUT_S: u64 = 55;

/// `[shutdown] drain_s`. One longer than the shipped stop timeouts allow is a warning: the
/// process would be killed with calls still up, and those calls would get no BYE and no CDR.
pub(super) fn drain(
    s: &ShutdownSection,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> Duration {
    if let Some(d) = &s.drain_s
        && *d.get_ref() <= MAX_DRAIN_S
        && d.get_ref() + STOP_AFTER_DRAIN_S > SHIPPED_STOP_TIMEOUT_S
    {
        let need = d.get_ref() + STOP_AFTER_DRAIN_S;
        warnings.push(at(
            d.span(),
            format!(
                "warning: [shutdown] drain_s = {}: stopping can take {need} s, longer than the \
                 shipped systemd unit's TimeoutStopSec={SHIPPED_STOP_TIMEOUT_S} and `docker run \
                 --stop-timeout {SHIPPED_STOP_TIMEOUT_S}` wait; raise those to {need} or more, or calls still \
                 up when the process is killed get no BYE and no CDR",
                d.get_ref()
            ),
        ));
    }
    match &s.drain_s {
        Some(d) if *d.get_ref() > MAX_DRAIN_S => {
            errs.push(at(
                d.span(),
                format!("[shutdown] drain_s must be 0..={MAX_DRAIN_S}"),
            ));
            Duration::from_secs(DEFAULT_DRAIN_S)
        }
        Some(d) => Duration::from_secs(*d.get_ref()),
        None => Duration::from_secs(DEFAULT_DRAIN_S),
    }
}
