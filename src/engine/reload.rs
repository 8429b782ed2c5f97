//! Reloading the configuration (SIGHUP): the shell's side of it, and what a reload may
//! change in a running process and what it changed (pure comparisons of two
//! configurations, for the log and `trunkgate reload`).

use std::sync::Arc;
use std::time::Instant;

use tracing::{error, info, warn};

use super::Shell;
use crate::call::Input;
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

/// Read and check the configuration at `path` for a reload, and try its recording folder:
/// a folder the gateway cannot write refuses the reload when the reload names it or turns
/// recording on; the folder the running gateway already records into, gone bad meanwhile
/// (a file system remounted read-only), is a warning only, or no reload could go through
/// (an urgent one, a peer removed after fraud) until the disk is mended.
fn load(path: &std::path::Path, running: &Recording) -> Result<Config, ConfigErrors> {
    let mut cfg = Config::load(path)?;
    if let Err(e) = super::wav::check_recording_dir(&cfg) {
        let e = crate::config::ConfigError::file(path, e);
        if cfg.recording_dir != running.dir || !running.any {
            return Err(ConfigErrors(vec![e]));
        }
        cfg.warnings.push(e);
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
                    &format!("{} error(s); first: {first}", errs.0.len()),
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
        metrics::reload("applied");
        // What `check` and start-up warn of (anyone may place call-backs, a scraper that
        // will be closed) is said on a reload too.
        for w in &cfg.warnings {
            warn!("{w}");
        }
        let mut changes = describe_changes(self.core.config(), &cfg);
        if let Some(w) = cfg.warnings.first() {
            changes.push_str(&format!("; {} warning(s), first: {w}", cfg.warnings.len()));
        }
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
        share_unchanged_profiles(self.core.config(), &mut cfg);
        let cfg = Arc::new(cfg);
        // The addresses of peers this reload removes or moves stay known to the TCP accept
        // gate while calls up now last (the core hears only their own dialogs' requests);
        // remembered before the new configuration is in place, so no connection falls
        // between the two.
        let moved = cfg.moved_sources_from(self.core.config());
        if !moved.is_empty() && self.core.calls_held() > 0 {
            self.inbox
                .remember_departed(self.core.next_call_ref(), moved);
        }
        self.inbox.configure(cfg.clone(), now);
        if let Some(cb) = self.callback.as_mut() {
            cb.reconfigure(cfg.clone());
        }
        self.core.handle_input(now, Input::Reload(cfg));
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

/// The settings that a reload cannot apply to a running process (sockets are bound, relays
/// listen and calls in progress carry these addresses) that changed, all of them: an
/// operator told of one at a time would be refused again for the next.
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
    if (a.max_tcp_total, a.max_tcp_per_source, a.tcp_message_timeout)
        != (b.max_tcp_total, b.max_tcp_per_source, b.tcp_message_timeout)
    {
        changed.push("[protect] max_tcp_total, max_tcp_per_source or tcp_message_timeout_s");
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
            (old.cdr_fail_closed, old.cdr_refused_rate)
                != (new.cdr_fail_closed, new.cdr_refused_rate),
        ),
        (
            "[recording]",
            (
                &old.recording_dir,
                old.recording_stereo,
                old.recording_jitter,
            ) != (
                &new.recording_dir,
                new.recording_stereo,
                new.recording_jitter,
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
mod tests {
    use super::*;

    /// A gateway with one peer and one route, and `extra` sections.
    fn config(extra: &str) -> Config {
        let gateway = format!(
            "profiles = \"profiles\"\n[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\nadvertise = \"127.0.0.1\"\n\
             [cdr]\npath = \"cdr.jsonl\"\n{extra}\n[[route]]\nfrom = \"*\"\nto = \"pbx\"\n"
        );
        let pbx = "name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:127.0.0.2:5060\"\nmatch = [\"127.0.0.2/32\"]\n";
        Config::from_texts(
            std::path::Path::new("/etc/trunkgate/gateway.toml"),
            &gateway,
            &[("/etc/trunkgate/profiles/pbx.toml".into(), pbx.to_string())],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A reload that changes one profile shares every other with the running configuration:
    /// a call that began before holds the same copy. Before, each reload made a copy of
    /// every profile, which the calls up then kept alive with their configuration.
    #[test]
    fn a_reload_shares_the_profiles_it_leaves_as_they_were() {
        let load = |carrier_ip: &str| {
            let gateway = "profiles = \"profiles\"\n[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                           advertise = \"127.0.0.1\"\n[cdr]\npath = \"cdr.jsonl\"\n\
                           [[route]]\nfrom = \"*\"\nto = \"pbx\"\n";
            let pbx = "name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:127.0.0.2:5060\"\nmatch = [\"127.0.0.2/32\"]\n";
            let carrier = format!(
                "name = \"carrier\"\nrole = \"trunk\"\naddress = \"udp:{carrier_ip}:5060\"\nmatch = [\"{carrier_ip}/32\"]\n"
            );
            Config::from_texts(
                std::path::Path::new("/etc/trunkgate/gateway.toml"),
                gateway,
                &[
                    ("/etc/trunkgate/profiles/pbx.toml".into(), pbx.to_string()),
                    ("/etc/trunkgate/profiles/carrier.toml".into(), carrier),
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let old = load("127.0.0.3");
        let mut new = load("127.0.0.4");
        share_unchanged_profiles(&old, &mut new);
        let shared = |name: &str| {
            let n = crate::config::PeerName(name.into());
            Arc::ptr_eq(&old.profiles[&n], &new.profiles[&n])
        };
        assert!(shared("pbx"), "left as it was: the running copy");
        assert!(!shared("carrier"), "changed: the new one");
        assert_eq!(
            new.profiles[&crate::config::PeerName("carrier".into())]
                .address
                .addr
                .ip()
                .to_string(),
            "127.0.0.4"
        );
    }

    /// "One relay thread per core" is a setting: the count it gave at start-up may differ
    /// at a reload (a CPU quota or affinity changed under the process) without the setting
    /// changing, and every reload was refused until a restart.
    #[test]
    fn one_thread_per_core_stays_the_setting_when_the_cores_change() {
        let old = config("");
        let mut new = config("");
        new.media_threads = old.media_threads + 1;
        assert_eq!(restart_only_changes(&old, &new), Vec::<&str>::new());
        let same = config(&format!("[media]\nthreads = {}\n", old.media_threads));
        assert_eq!(restart_only_changes(&old, &same), Vec::<&str>::new());
        let more = config(&format!("[media]\nthreads = {}\n", old.media_threads + 1));
        assert_eq!(restart_only_changes(&old, &more), ["[media] threads"]);
        // The recount is not what runs: applied, the running configuration keeps the
        // start's count, and an explicit number is held to that. Before, the recount
        // became the running value, so `threads = <recount>` was applied and ignored.
        keep_running_counts(&old, &mut new);
        assert_eq!(new.media_threads, old.media_threads);
        let recount = config(&format!("[media]\nthreads = {}\n", old.media_threads + 1));
        assert_eq!(restart_only_changes(&new, &recount), ["[media] threads"]);
        let mut explicit = config(&format!("[media]\nthreads = {}\n", old.media_threads + 1));
        keep_running_counts(&new, &mut explicit);
        assert_eq!(
            explicit.media_threads,
            old.media_threads + 1,
            "a number is kept"
        );
    }

    /// A recording folder gone bad under a running gateway does not block reloads (a
    /// warning); one a reload names, or recording turned on into it, refuses the reload.
    #[test]
    fn a_bad_recording_folder_refuses_only_the_reload_that_brings_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blocker"), b"x").unwrap();
        let rec = dir.path().join("blocker").join("rec");
        std::fs::create_dir(dir.path().join("profiles")).unwrap();
        std::fs::write(
            dir.path().join("gateway.toml"),
            format!(
                "profiles = \"profiles\"\n[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                 advertise = \"127.0.0.1\"\n[cdr]\npath = \"cdr.jsonl\"\n\
                 [recording]\ndir = \"{}\"\n[[route]]\nfrom = \"*\"\nto = \"pbx\"\n",
                rec.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("profiles/pbx.toml"),
            "name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:127.0.0.2:5060\"\n\
             match = [\"127.0.0.2/32\"]\n[media]\nrecord = true\n",
        )
        .unwrap();
        let path = dir.path().join("gateway.toml");
        let same = Recording {
            dir: rec.clone(),
            any: true,
        };
        let cfg = load(&path, &same).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.message.contains("[recording] dir")),
            "{:?}",
            cfg.warnings
        );
        for running in [
            Recording {
                dir: rec.clone(),
                any: false,
            },
            Recording {
                dir: dir.path().join("elsewhere"),
                any: true,
            },
        ] {
            let err = load(&path, &running).unwrap_err();
            assert!(err.to_string().contains("[recording] dir"), "{err}");
        }
    }

    #[test]
    fn a_larger_message_limit_needs_a_restart() {
        let old = config("");
        let new = config("[protect]\nmax_message_bytes = 32768\n");
        assert_eq!(
            restart_only_changes(&old, &new),
            ["[protect] max_message_bytes"]
        );
        // Every such change is named at once, not the first alone.
        // (Right after the base's [cdr] table: max_pending is one of its keys.)
        let both = config("max_pending = 77\n[protect]\nmax_message_bytes = 32768\n");
        assert_eq!(
            restart_only_changes(&old, &both),
            ["[protect] max_message_bytes", "[cdr] max_pending"]
        );
    }

    #[test]
    fn changes_outside_profiles_and_routes_are_named() {
        let old = config("");
        for (extra, said) in [
            (
                "[metrics]\nallow = [\"10.0.0.1\"]\n",
                "[metrics] allow changed",
            ),
            // Right after the base's [cdr] table: one of its keys.
            ("refused_rate = 7\n", "[cdr] changed"),
            ("[shutdown]\ndrain_s = 5\n", "[shutdown] changed"),
        ] {
            let new = config(extra);
            assert_eq!(
                restart_only_changes(&old, &new),
                Vec::<&str>::new(),
                "{extra}"
            );
            assert_eq!(describe_changes(&old, &new), said, "{extra}");
        }
        assert_eq!(describe_changes(&old, &config("")), "nothing changed");
    }

    /// A profile added with a country no other names gives every profile that country's
    /// dialling plan; only the new one is said. Before, every profile was listed changed.
    #[test]
    fn a_new_country_changes_no_other_profile() {
        let old = config("");
        let pbx = "name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:127.0.0.2:5060\"\nmatch = [\"127.0.0.2/32\"]\n";
        let carrier = "name = \"carrier\"\nrole = \"trunk\"\naddress = \"udp:127.0.0.3:5060\"\n\
                       match = [\"127.0.0.3/32\"]\n[uri]\ncountry_code = \"86\"\n";
        let gateway = "profiles = \"profiles\"\n[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                       advertise = \"127.0.0.1\"\n[cdr]\npath = \"cdr.jsonl\"\n\
                       [[route]]\nfrom = \"*\"\nto = \"pbx\"\n";
        let new = Config::from_texts(
            std::path::Path::new("/etc/trunkgate/gateway.toml"),
            gateway,
            &[
                ("/etc/trunkgate/profiles/pbx.toml".into(), pbx.to_string()),
                (
                    "/etc/trunkgate/profiles/carrier.toml".into(),
                    carrier.to_string(),
                ),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let name = crate::config::PeerName("pbx".into());
        assert!(new.profiles[&name].uri.place_plan("86").is_some());
        assert_eq!(describe_changes(&old, &new), "profiles added: carrier");
    }
}
