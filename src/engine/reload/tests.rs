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

/// A recording folder gone bad under a running gateway does not block reloads: it is not
/// even tried (hung, as a hard NFS mount hangs, it would hold every reload's load past its
/// limit); one a reload names, or recording turned on into it, refuses the reload.
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
        !cfg.warnings
            .iter()
            .any(|w| w.message.contains("[recording] dir")),
        "not tried: {:?}",
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
        // (Said "nothing changed", though applied.)
        ("refused_rate_total = 7\n", "[cdr] changed"),
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

/// A reload that changes nothing runs on the running configuration itself: the calls up
/// keep one copy between them however often a provisioning loop reloads. Before, each
/// reload built a new one (its routes and profile map) that the calls begun after it kept.
#[test]
fn a_reload_that_changes_nothing_keeps_the_running_configuration() {
    let running = Arc::new(config(""));
    assert!(Arc::ptr_eq(&running, &running_or_new(&running, config(""))));
    let changed = |extra: &str| !Arc::ptr_eq(&running, &running_or_new(&running, config(extra)));
    for extra in [
        "[metrics]\nallow = [\"10.0.0.1\"]\n",
        "refused_rate = 7\n",
        "[shutdown]\ndrain_s = 5\n",
        "[recording]\nmin_free_mb = 100\n",
        "[limits]\nmax_calls = 10\n",
    ] {
        assert!(changed(extra), "{extra}");
    }
    // What no table of gateway.toml says changes it too: the host's addresses, a route,
    // a profile.
    let mut other_host = config("");
    other_host.host_ips = vec!["192.0.2.1".parse().expect("address")].into();
    let mut no_routes = config("");
    no_routes.routes.clear();
    let mut other_pbx = config("");
    let pbx = crate::config::PeerName("pbx".into());
    let mut p = (*other_pbx.profiles[&pbx]).clone();
    p.matches.clear();
    other_pbx.profiles.insert(pbx, Arc::new(p));
    for (what, new) in [
        ("host", other_host),
        ("routes", no_routes),
        ("profile", other_pbx),
    ] {
        assert!(
            !Arc::ptr_eq(&running, &running_or_new(&running, new)),
            "{what}"
        );
    }
}

/// Warnings come in the files' order, whatever order the profile map gives: the same files
/// loaded twice are the same configuration. Before, warnings from several profiles came
/// in the map's order, which differs from one load to the next, and a reload that changed
/// nothing was taken for a change (a new configuration kept by the calls begun after it).
#[test]
fn the_same_files_with_warnings_are_the_same_configuration() {
    let load = || {
        let gateway = "profiles = \"profiles\"\n[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                       advertise = \"127.0.0.1\"\n[cdr]\npath = \"cdr.jsonl\"\n\
                       [[route]]\nfrom = \"*\"\nto = \"p1\"\n";
        // IPv6 peers of an IPv4-only gateway, without `match`: each is warned of, twice.
        let profiles: Vec<(std::path::PathBuf, String)> = (1..=8)
            .map(|i| {
                (
                    format!("/etc/trunkgate/profiles/p{i}.toml").into(),
                    format!("name = \"p{i}\"\nrole = \"trunk\"\naddress = \"udp:[2001:db8::{i}]:5060\"\n"),
                )
            })
            .collect();
        Config::from_texts(
            std::path::Path::new("/etc/trunkgate/gateway.toml"),
            gateway,
            &profiles,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let first = load();
    assert!(first.warnings.len() >= 8, "{:?}", first.warnings);
    for _ in 0..4 {
        assert!(load().same_as(&first));
    }
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
