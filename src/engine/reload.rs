//! Reloading the configuration (SIGHUP): the shell's side of it, and what a reload may
//! change in a running process and what it changed (pure comparisons of two
//! configurations, for the log and `trunkgate reload`).

use std::sync::Arc;
use std::time::Instant;

use tracing::{error, info, warn};

use super::Shell;
use crate::config::{Config, ConfigErrors};
use crate::ops::metrics;

/// What of the running configuration a reload's check of the recording folder needs.
#[derive(Clone)]
struct Recording {
    dir: std::path::PathBuf,
    any: bool,
}

impl Recording {
    fn of(cfg: &Config) -> Recording {
        Recording {
            dir: cfg.recording_dir.clone(),
            any: cfg.records(),
        }
    }
}

/// Read and check the configuration at `path` for a reload, and try its recording folder
/// when the reload names another or turns recording on: a folder the gateway cannot write
/// refuses the reload. The folder the running gateway already records into is not tried:
/// gone bad meanwhile (a file system remounted read-only) its recordings say so as they
/// fail, and a hung one (a hard NFS mount) would hold every reload's load past its limit
/// (the stuck loads then refusing every reload, an urgent one too: a peer removed after
/// fraud) until the disk answers again.
fn load(path: &std::path::Path, running: &Recording) -> Result<Config, ConfigErrors> {
    let cfg = Config::load(path)?;
    let unchanged = cfg.recording_dir == running.dir && running.any;
    if !unchanged && let Err(e) = super::wav::check_recording_dir(&cfg) {
        return Err(ConfigErrors(vec![crate::config::ConfigError::file(
            path, e,
        )]));
    }
    Ok(cfg)
}

mod loading;
pub(super) use loading::{Loaded, Reloading};

impl Shell {
    /// SIGHUP: reopen the CDR file, then load the configuration on a thread of its own,
    /// given up on after [`loading::LOAD_LIMIT`]; one more SIGHUP while it loads loads it
    /// once more after (however many came), so a storm of them costs the signalling thread
    /// one apply each time.
    pub(super) fn reload(&mut self, reloading: &mut Reloading) {
        // Whatever becomes of the configuration, SIGHUP reopens the CDR file (logrotate).
        self.cdr.reopen();
        if reloading.is_loading() {
            reloading.again = true;
            return;
        }
        self.start_load(reloading);
    }

    fn start_load(&self, reloading: &mut Reloading) {
        let path = self.config_path.clone();
        let running = Recording::of(self.core.config());
        reloading.start(move || load(&path, &running));
    }

    /// A reload's configuration is loaded: check and apply it, or keep the running one and
    /// say why; then load again if SIGHUP came meanwhile.
    pub(super) fn reload_loaded(
        &mut self,
        now: Instant,
        loaded: Loaded,
        reloading: &mut Reloading,
    ) {
        let loaded = loaded.unwrap_or_else(|e| {
            Err(ConfigErrors(vec![crate::config::ConfigError::file(
                &self.config_path,
                e.to_string(),
            )]))
        });
        self.apply_reload(now, loaded, reloading.started());
        if std::mem::take(&mut reloading.again) {
            self.start_load(reloading);
        }
    }

    /// `started`: when its loading began (`trunkgate reload` takes only the answer to a
    /// load begun after its SIGHUP).
    fn apply_reload(&mut self, now: Instant, loaded: Result<Config, ConfigErrors>, started: u64) {
        let cfg = match loaded {
            Ok(cfg) => cfg,
            Err(errs) => {
                for e in &errs.0 {
                    error!("{e}");
                }
                error!("reload refused: the running configuration stays");
                metrics::reload("invalid");
                let first = errs.0.first().map(ToString::to_string).unwrap_or_default();
                self.reloaded(
                    started,
                    "invalid",
                    &format!("{} error(s); first: {first}", errs.errors()),
                );
                return;
            }
        };
        let mut cfg = cfg;
        keep_running_counts(self.core.config(), &mut cfg);
        let keys = restart_only_changes(self.core.config(), &cfg);
        if !keys.is_empty() {
            let key = keys.join(", ");
            error!(
                "reload refused: {key} changed, which needs a restart; the running configuration stays"
            );
            metrics::reload("restart_required");
            self.reloaded(
                started,
                "restart_required",
                &format!("{key} changed, which needs a restart"),
            );
            return;
        }
        // What `check` and start-up warn of (anyone may place call-backs, a scraper that
        // will be closed) is said on a reload too.
        for w in &cfg.warnings {
            warn!("{w}");
        }
        let mut changes = describe_changes(self.core.config(), &cfg);
        if let Some(w) = cfg.warnings.first() {
            changes.push_str(&format!("; {} warning(s), first: {w}", cfg.warnings.len()));
        }
        let applied = format!(
            "{} profiles, {} routes; {changes}",
            cfg.profiles.len(),
            cfg.routes.len()
        );
        let cfg = running_or_new(self.core.config(), cfg);
        let moved = cfg.moved_sources_from(self.core.config());
        // The core first: should applying it fail (a defect), nothing of the shell's has
        // changed either, and the operator is told the running configuration stays.
        if !self.core.reload(now, cfg.clone()) {
            error!(
                "reload failed: applying it panicked (a defect); the running configuration stays"
            );
            metrics::reload("failed");
            self.reloaded(
                started,
                "failed",
                "applying it failed (a defect, logged); the running configuration stays",
            );
            return;
        }
        metrics::reload("applied");
        info!(
            profiles = cfg.profiles.len(),
            routes = cfg.routes.len(),
            %changes,
            "configuration reloaded"
        );
        self.cdr.set_fail_closed(cfg.cdr_fail_closed);
        self.media.keep_recordings_free(cfg.recording_min_free);
        // The addresses of peers this reload removes or moves stay known to the TCP accept
        // gate while calls up now last (the core hears only their own dialogs' requests);
        // remembered before the new configuration is in place, so no connection falls
        // between the two.
        if !moved.is_empty() && self.core.calls_held() > 0 {
            self.inbox
                .remember_departed(self.core.next_call_ref(), moved);
        }
        self.inbox.configure(cfg.clone(), now);
        if let Some(cb) = self.callback.as_mut() {
            cb.reconfigure(cfg.clone());
        }
        self.close_unknown_connections();
        self.reloaded(started, "applied", &applied);
    }

    /// Close the TCP connections opened from addresses the running configuration no longer
    /// knows.
    pub(super) fn close_unknown_connections(&mut self) {
        let inbox = &self.inbox;
        let closed = self.tcp.close_unknown(|ip| inbox.answers_from_peer(ip));
        if closed > 0 {
            info!(
                connections = closed,
                "TCP connections from addresses no profile matches any more: closed"
            );
        }
    }

    fn reloaded(&mut self, started: u64, result: &str, detail: &str) {
        if let Some(c) = self.control.as_mut() {
            c.reloaded(started, result, detail);
        }
    }
}

/// A reload that changes nothing runs on the running configuration itself, and one that
/// changes something shares the profiles it left alone: each call keeps the configuration
/// it began with, and a provisioning loop reloading every 5 s while calls last an hour
/// would otherwise keep some 720 copies of the routes and the profile map.
fn running_or_new(running: &Arc<Config>, mut new: Config) -> Arc<Config> {
    if new.same_as(running) {
        return running.clone();
    }
    share_unchanged_profiles(running, &mut new);
    Arc::new(new)
}

/// The profiles a reload leaves as they were (every setting equal) are the running ones,
/// shared: each call keeps the configuration it began with, and a provisioning loop that
/// reloads every few seconds would otherwise have the calls up pin a copy of every profile
/// per reload (a thousand profiles, a reload every 5 s and hour-long calls: gigabytes).
fn share_unchanged_profiles(old: &Config, new: &mut Config) {
    for (name, p) in &mut new.profiles {
        if let Some(o) = old.profiles.get(name)
            && **o == **p
        {
            *p = o.clone();
        }
    }
}

/// What runs and a reload cannot change stays what `new` says runs: "one relay thread per
/// core" keeps the count the relay started with (the cores may have changed since), so an
/// explicit `threads` later is held to the threads that run, not to a recount.
fn keep_running_counts(old: &Config, new: &mut Config) {
    if old.media_threads_auto && new.media_threads_auto {
        new.media_threads = old.media_threads;
    }
}

/// The settings that a reload cannot apply to a running process (sockets are bound, relays
/// listen and calls in progress carry these addresses) that changed, all of them: an
/// operator told of one at a time would be refused again for the next.
pub(super) fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.listen != new.listen {
        changed.push("[sip] listen");
    }
    if old.advertise != new.advertise {
        changed.push("[sip] advertise");
    }
    if old.front != new.front {
        changed.push("[sip] front");
    }
    if old.media_ip != new.media_ip {
        changed.push("[media] advertise");
    }
    if old.media_ports != new.media_ports {
        changed.push("[media] ports");
    }
    // "One per core" stays what it was when the cores the process may use change under
    // it; otherwise the count (an explicit number equal to the cores changes nothing).
    if !(old.media_threads_auto && new.media_threads_auto) && old.media_threads != new.media_threads
    {
        changed.push("[media] threads");
    }
    if old.callback.listen != new.callback.listen {
        changed.push("[callback] port or listen");
    }
    if (old.metrics.listen, old.metrics.max_connections)
        != (new.metrics.listen, new.metrics.max_connections)
    {
        changed.push("[metrics] listen or max_connections");
    }
    if old.cdr_path != new.cdr_path {
        changed.push("[cdr] path");
    }
    // Each UDP reader and TCP connection took it at start-up.
    if old.max_message_bytes != new.max_message_bytes {
        changed.push("[protect] max_message_bytes");
    }
    if old.cdr_max_pending != new.cdr_max_pending {
        changed.push("[cdr] max_pending");
    }
    let (a, b) = (&old.protect, &new.protect);
    let tcp = |p: &crate::config::Protect| {
        let caps = (p.max_tcp_total, p.max_tcp_per_source, p.max_tcp_per_peer);
        (caps, p.tcp_message_timeout)
    };
    if tcp(a) != tcp(b) {
        changed.push(
            "[protect] max_tcp_total, max_tcp_per_source, max_tcp_per_peer or tcp_message_timeout_s",
        );
    }
    changed
}

/// Whether a profile says the same after a reload: what every profile shares of the others
/// (each country's dialling plan, `UriPolicy::places`) is no change of its own, or a profile
/// added with a new country would list every profile as changed.
fn same_settings(old: &crate::config::Profile, new: &crate::config::Profile) -> bool {
    let mut new = new.clone();
    new.uri.places = old.uri.places.clone();
    *old == new
}

/// What a reload changes, for the log and `trunkgate reload`: profiles added, removed and
/// changed by name, and whether the routes changed.
pub(super) fn describe_changes(old: &Config, new: &Config) -> String {
    let mut added: Vec<&str> = Vec::new();
    let mut changed: Vec<&str> = Vec::new();
    for (name, p) in &new.profiles {
        match old.profiles.get(name) {
            None => added.push(&name.0),
            Some(o) if !same_settings(o, p) => changed.push(&name.0),
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
    let sections = [
        ("[limits]", old.limits != new.limits),
        ("[protect]", old.protect != new.protect),
        ("[metrics] allow", old.metrics.allow != new.metrics.allow),
        ("[callback]", old.callback != new.callback),
        (
            "[cdr]",
            (
                old.cdr_fail_closed,
                old.cdr_refused_rate,
                old.cdr_refused_rate_total,
            ) != (
                new.cdr_fail_closed,
                new.cdr_refused_rate,
                new.cdr_refused_rate_total,
            ),
        ),
        (
            "[recording]",
            (
                &old.recording_dir,
                old.recording_stereo,
                old.recording_jitter,
                old.recording_min_free,
            ) != (
                &new.recording_dir,
                new.recording_stereo,
                new.recording_jitter,
                new.recording_min_free,
            ),
        ),
        (
            "[media] max_streams",
            old.media_max_streams != new.media_max_streams,
        ),
        ("[shutdown]", old.drain != new.drain),
    ];
    for (name, changed) in sections {
        if changed {
            parts.push(format!("{name} changed"));
        }
    }
    if parts.is_empty() {
        "nothing changed".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests;
