//! Reloading the configuration (SIGHUP): the shell's side of it, and what a reload may
//! change in a running process and what it changed (pure comparisons of two
//! configurations, for the log and `trunkgate reload`).

use std::sync::Arc;
use std::time::Instant;

use tracing::{error, info};

use super::Shell;
use crate::call::Input;
use crate::config::Config;
use crate::ops::metrics;

impl Shell {
    /// SIGHUP: reopen the CDR file, then load, check and apply the configuration, or keep
    /// the running one and say why.
    pub(super) fn reload(&mut self, now: Instant) {
        // Whatever becomes of the configuration, SIGHUP reopens the CDR file (logrotate).
        self.cdr.reopen();
        let cfg = match Config::load(&self.config_path) {
            Ok(cfg) => cfg,
            Err(errs) => {
                for e in &errs.0 {
                    error!("{e}");
                }
                error!("reload refused: the running configuration stays");
                metrics::reload("invalid");
                let first = errs.0.first().map(ToString::to_string).unwrap_or_default();
                self.reloaded(
                    "invalid",
                    &format!("{} error(s); first: {first}", errs.0.len()),
                );
                return;
            }
        };
        if let Some(key) = restart_only_change(self.core.config(), &cfg) {
            error!(
                "reload refused: {key} changed, which needs a restart; the running configuration stays"
            );
            metrics::reload("restart_required");
            self.reloaded(
                "restart_required",
                &format!("{key} changed, which needs a restart"),
            );
            return;
        }
        metrics::reload("applied");
        let changes = describe_changes(self.core.config(), &cfg);
        info!(
            profiles = cfg.profiles.len(),
            routes = cfg.routes.len(),
            %changes,
            "configuration reloaded"
        );
        let applied = format!(
            "{} profiles, {} routes; {changes}",
            cfg.profiles.len(),
            cfg.routes.len()
        );
        self.cdr.set_fail_closed(cfg.cdr_fail_closed);
        let cfg = Arc::new(cfg);
        // The addresses of peers this reload removes or moves stay known to the TCP accept
        // gate while calls up now last (the core hears only their own dialogs' requests);
        // remembered before the new configuration is in place, so no connection falls
        // between the two.
        let moved = cfg.moved_matches_from(self.core.config());
        if !moved.is_empty() && self.core.active_calls() > 0 {
            self.inbox.remember_departed(moved);
        }
        self.inbox.configure(cfg.clone(), now);
        if let Some(cb) = self.callback.as_mut() {
            cb.reconfigure(cfg.clone());
        }
        self.core.handle_input(now, Input::Reload(cfg));
        self.close_unknown_connections();
        self.reloaded("applied", &applied);
    }

    /// Close the TCP connections opened from addresses the running configuration no longer
    /// knows.
    pub(super) fn close_unknown_connections(&mut self) {
        let inbox = &self.inbox;
        let closed = self.tcp.close_unknown(|ip| inbox.knows_source(ip));
        if closed > 0 {
            info!(
                connections = closed,
                "TCP connections from addresses no profile matches any more: closed"
            );
        }
    }

    fn reloaded(&mut self, result: &str, detail: &str) {
        if let Some(c) = self.control.as_mut() {
            c.reloaded(result, detail);
        }
    }
}

/// The first setting that a reload cannot apply to a running process (sockets are bound,
/// relays listen and calls in progress carry these addresses), if one changed.
pub(super) fn restart_only_change(old: &Config, new: &Config) -> Option<&'static str> {
    if old.listen != new.listen {
        return Some("[sip] listen");
    }
    if old.advertise != new.advertise {
        return Some("[sip] advertise");
    }
    if old.front != new.front {
        return Some("[sip] front");
    }
    if old.media_ip != new.media_ip {
        return Some("[media] advertise");
    }
    if old.media_ports != new.media_ports {
        return Some("[media] ports");
    }
    if old.media_threads != new.media_threads {
        return Some("[media] threads");
    }
    if old.callback.listen != new.callback.listen {
        return Some("[callback] port or listen");
    }
    if (old.metrics.listen, old.metrics.max_connections)
        != (new.metrics.listen, new.metrics.max_connections)
    {
        return Some("[metrics] listen or max_connections");
    }
    if old.cdr_path != new.cdr_path {
        return Some("[cdr] path");
    }
    if old.cdr_max_pending != new.cdr_max_pending {
        return Some("[cdr] max_pending");
    }
    let (a, b) = (&old.protect, &new.protect);
    if (a.max_tcp_total, a.max_tcp_per_source, a.tcp_message_timeout)
        != (b.max_tcp_total, b.max_tcp_per_source, b.tcp_message_timeout)
    {
        return Some("[protect] max_tcp_total, max_tcp_per_source or tcp_message_timeout_s");
    }
    None
}

/// What a reload changes, for the log and `trunkgate reload`: profiles added, removed and
/// changed by name, and whether the routes changed.
pub(super) fn describe_changes(old: &Config, new: &Config) -> String {
    let mut added: Vec<&str> = Vec::new();
    let mut changed: Vec<&str> = Vec::new();
    for (name, p) in &new.profiles {
        match old.profiles.get(name) {
            None => added.push(&name.0),
            Some(o) if **o != **p => changed.push(&name.0),
            Some(_) => {}
        }
    }
    let mut removed: Vec<&str> = old
        .profiles
        .keys()
        .filter(|n| !new.profiles.contains_key(*n))
        .map(crate::config::PeerName::as_str)
        .collect();
    for v in [&mut added, &mut changed, &mut removed] {
        v.sort_unstable();
    }
    let mut parts = Vec::new();
    for (what, names) in [("added", added), ("changed", changed), ("removed", removed)] {
        if !names.is_empty() {
            parts.push(format!("profiles {what}: {}", names.join(", ")));
        }
    }
    if old.routes != new.routes {
        parts.push("routes changed".into());
    }
    if old.limits != new.limits || old.protect != new.protect {
        parts.push("[limits]/[protect] changed".into());
    }
    if parts.is_empty() {
        "nothing changed".into()
    } else {
        parts.join("; ")
    }
}
