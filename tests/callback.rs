//! The call-back service through the real binary. (The calls themselves are tested once the
//! call layer places them; here: what `trunkgate check` says about `[callback]`.)

mod common;

use std::path::Path;
use std::process::Command;

/// Run `trunkgate check` on `gateway` (with a `pbx` profile beside it): (success, stdout).
fn check(gateway: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), gateway).unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/pbx.toml"),
        "name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:127.0.0.2:5060\"\nmatch = [\"127.0.0.2/32\"]\n",
    )
    .unwrap();
    check_file(&dir.path().join("gateway.toml"))
}

fn check_file(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trunkgate"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const GATEWAY: &str = "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\nadvertise = \"127.0.0.1\"\n\n[[route]]\nto = \"pbx\"\n\n[callback]\nport = 5080\n";

#[test]
fn an_empty_allow_list_fails_check_with_its_position() {
    let (ok, out) = check(&format!("{GATEWAY}allow = []\n"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("gateway.toml:10:9: [callback] allow is empty"),
        "{out}"
    );
}

#[test]
fn an_allow_list_or_allow_any_passes_check() {
    let (ok, out) = check(&format!("{GATEWAY}allow = [\"192.0.2.0/24\"]\n"));
    assert!(ok, "{out}");
    let (ok, out) = check(&format!("{GATEWAY}allow = []\nallow_any = true\n"));
    assert!(ok, "{out}");
}

#[test]
fn the_shipped_configuration_passes_check() {
    let (ok, out) = check_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml"));
    assert!(ok, "{out}");
}
