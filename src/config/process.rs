//! `[metrics]` and `[shutdown]`: how the running process is watched, and how it stops.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use super::ConfigError;
use super::file::{MetricsSection, ShutdownSection};

/// `[shutdown] drain_s` when unset, and its bound (a day).
const DEFAULT_DRAIN_S: u64 = 30;
const MAX_DRAIN_S: u64 = 86_400;

/// `[metrics] listen`: None when disabled (`""`).
pub(super) fn metrics_listen(
    s: &MetricsSection,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> Option<SocketAddr> {
    match s.listen.get_ref().trim() {
        "" => None,
        m => match m.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errs.push(at(
                    s.listen.span(),
                    format!("[metrics] listen {m:?} must be IP:PORT, or \"\" to disable"),
                ));
                None
            }
        },
    }
}

/// `[shutdown] drain_s`.
pub(super) fn drain(
    s: &ShutdownSection,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> Duration {
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
