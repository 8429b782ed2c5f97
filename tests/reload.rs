//! `trunkgate reload` against the real binary: it validates first, signals the running
//! process found through its pid file, and prints what the process did.

mod common;

use std::process::Command;

use common::*;

/// Run `trunkgate reload` on the gateway's configuration: (success, stdout + stderr).
fn reload(gw: &Gateway) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trunkgate"))
        .args(["reload", "--config"])
        .arg(gw.path("gateway.toml"))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn reload_reports_what_changed_what_needs_a_restart_and_what_is_broken() {
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    let tmp = tempfile::tempdir().unwrap();

    // Nothing changed.
    let (ok, out) = reload(&gw);
    assert!(ok, "{out}");
    assert!(out.contains("reloaded: 3 profiles"), "{out}");
    assert!(out.contains("nothing changed"), "{out}");

    // A profile edit: applied, named.
    let profile = gw.path("profiles/carrier-a.toml");
    let original = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(&profile, format!("{original}\n[sdp]\nptime = 20\n")).unwrap();
    let (ok, out) = reload(&gw);
    assert!(ok, "{out}");
    assert!(out.contains("profiles changed: carrier-a"), "{out}");
    call_succeeds(
        &gw,
        tmp.path(),
        "ptime/carrier.xml",
        "ptime/phone.xml",
        Transport::Udp,
    );

    // A broken profile: refused by the command itself, with the position; the process is
    // not even signalled.
    std::fs::write(&profile, format!("{original}\nptmie = 30\n")).unwrap();
    let (ok, out) = reload(&gw);
    assert!(!ok, "{out}");
    assert!(out.contains("carrier-a.toml:"), "{out}");
    assert!(out.contains("unknown field `ptmie`"), "{out}");
    assert!(out.contains("not reloaded"), "{out}");
    std::fs::write(&profile, &original).unwrap();

    // What needs a restart: the process refuses it and says which key.
    let gateway = gw.path("gateway.toml");
    let text = std::fs::read_to_string(&gateway).unwrap();
    std::fs::write(
        &gateway,
        text.replace("advertise = \"127.0.0.1\"", "advertise = \"127.0.0.5\""),
    )
    .unwrap();
    let (ok, out) = reload(&gw);
    assert!(!ok, "{out}");
    assert!(
        out.contains("reload refused (restart_required): [sip] advertise changed"),
        "{out}"
    );
    // The running configuration stayed: calls go on as before.
    call_succeeds(
        &gw,
        tmp.path(),
        "basic-call/carrier.xml",
        "basic-call/phone.xml",
        Transport::Udp,
    );
    let metrics = gw.metrics();
    for (result, n) in [("applied", 2), ("restart_required", 1)] {
        let series = format!("trunkgate_config_reloads_total{{result=\"{result}\"}} {n}");
        assert!(metrics.contains(&series), "{series}: {metrics}");
    }
}
