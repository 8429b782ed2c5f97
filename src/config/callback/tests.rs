use std::path::PathBuf;

use super::*;
use crate::config::Config;

const BASE: &str = "profiles = \"profiles\"\n\n[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\nadvertise = \"127.0.0.1\"\n\n[[route]]\nto = \"pbx\"\n";

/// A gateway.toml of `BASE` plus `extra` (line 10 on), with one profile, `pbx`.
fn load(
    extra: &str,
) -> (
    tempfile::TempDir,
    Result<Config, crate::config::ConfigErrors>,
) {
    load_with(BASE, extra)
}

fn load_with(
    base: &str,
    extra: &str,
) -> (
    tempfile::TempDir,
    Result<Config, crate::config::ConfigErrors>,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), format!("{base}\n{extra}")).unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/pbx.toml"),
        "name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:127.0.0.2:5060\"\nmatch = [\"127.0.0.2/32\"]\n",
    )
    .unwrap();
    let cfg = Config::load(&dir.path().join("gateway.toml"));
    (dir, cfg)
}

fn errors(extra: &str) -> String {
    let (_dir, cfg) = load(extra);
    cfg.unwrap_err().to_string()
}

fn gateway_toml(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("gateway.toml")
}

#[test]
fn without_a_section_the_safe_defaults_apply() {
    let (_dir, cfg) = load("");
    let cfg = cfg.unwrap();
    let c = &cfg.callback;
    assert_eq!(
        c.listen,
        Some("127.0.0.1:5080".parse().unwrap()),
        "on by default, at the advertise address"
    );
    assert_eq!(c.allow, vec!["127.0.0.1/32".parse::<IpNet>().unwrap()]);
    assert!(!c.allow_any);
    assert!(c.allows("127.0.0.1".parse().unwrap()));
    assert!(
        c.allows("::ffff:127.0.0.1".parse().unwrap()),
        "as a dual-stack socket sees it"
    );
    assert!(!c.allows("127.0.0.2".parse().unwrap()));
    assert_eq!(c.from_peer, None);
    assert_eq!(c.caller, None);
    assert_eq!(c.max_duration, Duration::from_secs(3600));
    assert_eq!(c.rate.get(), 10);
    assert_eq!(c.max_active, 100);
    assert!(cfg.warnings.is_empty());
}

/// A key pasted unquoted into `secret_file` is refused without being shown: toml's own
/// type error would quote it (in the log, and the reload status file).
#[test]
fn a_secret_file_that_is_no_string_is_refused_without_its_value() {
    for value in ["12345678901234567", "true", "[\"k\"]"] {
        let (_dir, cfg) = load(&format!("[callback]\nsecret_file = {value}\n"));
        let e = cfg.unwrap_err().to_string();
        assert!(e.contains("secret_file must be a file name, quoted"), "{e}");
        assert!(!e.contains("1234567890"), "{e}");
    }
}

#[test]
fn secret_file_is_read_beside_the_config_and_checked() {
    let (dir, cfg) = load("[callback]\nsecret_file = \"callback.key\"\n");
    let e = cfg.unwrap_err().to_string();
    // Named nothing: its line, not its value (it may be a key in the wrong place).
    assert!(
        e.contains("secret_file names no file") && !e.contains("callback.key"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("callback.key"),
        "a-key-of-16-chars\nan-older-key-to-accept\n",
    )
    .unwrap();
    // Readable by every user, it is warned of (anyone who reads it places calls): failed
    // before; as `[auth] password_file` is.
    let key = dir.path().join("callback.key");
    let readable = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let cfg = Config::load(&gateway_toml(&dir)).unwrap();
        (cfg.warnings.iter()).any(|w| w.to_string().contains("is readable by every user"))
    };
    assert!(readable(0o644));
    assert!(!readable(0o600));
    let c = Config::load(&gateway_toml(&dir)).unwrap().callback;
    assert!(c.keys.is_some_and(|k| format!("{k:?}") == "Keys(2 hidden)"));
    std::fs::write(dir.path().join("callback.key"), "short\n").unwrap();
    let e = Config::load(&gateway_toml(&dir)).unwrap_err().to_string();
    assert!(e.contains("shorter than 16"), "{e}");
}

#[test]
fn every_key_is_read() {
    let (_dir, cfg) = load(
        "[callback]\nport = 6080\nlisten = \"127.0.0.7\"\nallow = [\"10.0.0.0/8\", \"192.0.2.1\"]\nfrom_peer = \"pbx\"\ncaller = \"+861000\"\nmax_duration_s = 60\nrate = 3\nmax_active = 7\n",
    );
    let c = cfg.unwrap().callback;
    assert_eq!(c.listen, Some("127.0.0.7:6080".parse().unwrap()));
    assert!(c.allows("10.9.8.7".parse().unwrap()));
    assert!(c.allows("192.0.2.1".parse().unwrap()));
    assert!(!c.allows("127.0.0.1".parse().unwrap()));
    assert_eq!(c.from_peer, Some(PeerName("pbx".into())));
    assert_eq!(c.caller, Number::parse("+861000"));
    assert_eq!(c.max_duration, Duration::from_secs(60));
    assert_eq!(c.rate.get(), 3);
    assert_eq!(c.max_active, 7);
}

#[test]
fn port_zero_disables_the_service() {
    let (_dir, cfg) = load("[callback]\nport = 0\n");
    assert_eq!(cfg.unwrap().callback.listen, None);
    // Even with a host name as advertise address, which could not be bound.
    let base = BASE.replace("advertise = \"127.0.0.1\"", "advertise = \"gw.example\"");
    let (_dir, cfg) = load_with(&base, "[callback]\nport = 0\n");
    assert_eq!(cfg.unwrap().callback.listen, None);
}

#[test]
fn an_empty_allow_list_is_an_error_with_its_position() {
    let (dir, cfg) = load("[callback]\nport = 5080\nallow = []\n");
    let text = cfg.unwrap_err().to_string();
    let want = format!(
        "{}:12:9: [callback] allow is empty",
        gateway_toml(&dir).display()
    );
    assert!(text.contains(&want), "{text}");
}

#[test]
fn allow_any_is_accepted_with_a_warning() {
    let (dir, cfg) = load("[callback]\nallow = []\nallow_any = true\nport = 5080\n");
    let cfg = cfg.unwrap();
    assert!(cfg.callback.allow_any);
    assert!(cfg.callback.allows("192.0.2.55".parse().unwrap()));
    let w: Vec<String> = cfg
        .warnings
        .iter()
        .map(|w| w.to_string())
        .filter(|w| w.contains("allow_any"))
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    let want = format!(
        "{}:12:13: warning: [callback] allow_any = true",
        gateway_toml(&dir).display()
    );
    assert!(w[0].starts_with(&want), "{w:?}");
    // With the port closed there is nothing to warn about.
    let (_dir, cfg) = load("[callback]\nport = 0\nallow = []\nallow_any = true\n");
    assert!(cfg.unwrap().warnings.is_empty());
    // An allow of every address is said to be the same, once.
    let (_dir, cfg) = load("[callback]\nallow = [\"::/0\", \"10.0.0.0/8\"]\nport = 5080\n");
    let cfg = cfg.unwrap();
    assert!(cfg.callback.open_to_anyone());
    let w: Vec<String> = (cfg.warnings.iter())
        .map(|w| w.to_string())
        .filter(|w| w.contains("[callback]"))
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("allow holds a /0"), "{w:?}");
}

#[test]
fn bad_values_are_reported_where_they_are() {
    let text = errors(
        "[callback]\nport = 70000\nlisten = \"localhost\"\nallow = [\"10.0.0.0/33\", \"x\"]\nfrom_peer = \"carrier-z\"\ncaller = \"bob\"\nmax_duration_s = 0\nrate = 0\nmax_active = 10001\n",
    );
    for want in [
        ":11:8: [callback] port must be",
        ":12:10: [callback] listen \"localhost\" must be an IP address",
        ":13:10: [callback] allow \"10.0.0.0/33\" is not",
        ":13:25: [callback] allow \"x\" is not",
        ":14:13: [callback] from_peer \"carrier-z\" is not a peer",
        ":15:10: [callback] caller \"bob\" must be",
        ":16:18: [callback] max_duration_s must be 1..=86400",
        ":17:8: [callback] rate must be 1..=1000",
        ":18:14: [callback] max_active must be 1..=10000",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    assert!(errors("[callback]\nrate = 1001\n").contains(":11:8: [callback] rate must be"));
    assert!(errors("[callback]\nmax_duration_s = 86401\n").contains(":11:18:"));
    assert!(errors("[callback]\nmax_active = 0\n").contains(":11:14:"));
    assert!(errors("[callback]\nport = -1\n").contains(":11:8:"));
}

#[test]
fn a_misspelt_key_is_an_error() {
    let text = errors("[callback]\nallow_all = true\n");
    assert!(
        text.contains(":11:1:") && text.contains("allow_all"),
        "{text}"
    );
}

#[test]
fn a_host_name_advertise_needs_an_explicit_listen() {
    let base = BASE.replace("advertise = \"127.0.0.1\"", "advertise = \"gw.example\"");
    let (_dir, cfg) = load_with(&base, "[callback]\nport = 5080\n");
    let text = cfg.unwrap_err().to_string();
    assert!(
        text.contains(":11:8: [callback] listen must be set"),
        "{text}"
    );
    // Only the default port: the service stays off, with a warning saying why.
    let (dir, cfg) = load_with(&base, "");
    let cfg = cfg.unwrap();
    assert_eq!(cfg.callback.listen, None);
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
    let want = format!(
        "{}:5:13: warning: the call-back service is off",
        gateway_toml(&dir).display()
    );
    assert!(w.len() == 1 && w[0].starts_with(&want), "{w:?}");
    let (_dir, cfg) = load_with(&base, "[callback]\nport = 5080\nlisten = \"127.0.0.1\"\n");
    assert_eq!(
        cfg.unwrap().callback.listen,
        Some("127.0.0.1:5080".parse().unwrap())
    );
}

#[test]
fn an_empty_caller_means_none() {
    let (_dir, cfg) = load("[callback]\ncaller = \"\"\n");
    assert_eq!(cfg.unwrap().callback.caller, None);
}

#[test]
fn the_shipped_configuration_listens_on_loopback_for_loopback_only() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let c = &cfg.callback;
    let listen: SocketAddr = "127.0.0.1:5080".parse().unwrap();
    assert_eq!(c.listen, Some(listen));
    assert_eq!(c.allow, vec!["127.0.0.1/32".parse::<IpNet>().unwrap()]);
    assert!(!c.allow_any);
    assert!(cfg.warnings.is_empty());
    // No shipped peer lives where the service will listen.
    for p in cfg.profiles.values() {
        assert_ne!(p.address.addr, listen, "{}", p.name);
        assert!(
            !p.matches.iter().any(|n| n.contains(&listen.ip())),
            "{}",
            p.name
        );
    }
    assert!(cfg.listen.iter().all(|l| l.addr != listen));
}

#[test]
fn an_allow_list_beyond_loopback_without_keys_is_warned_about() {
    let warned = |extra: &str| {
        let (_dir, cfg) = load(extra);
        cfg.unwrap()
            .warnings
            .iter()
            .any(|w| w.to_string().contains("beyond loopback"))
    };
    assert!(warned("[callback]\nallow = [\"10.0.0.5\"]\n"));
    assert!(!warned("[callback]\nallow = [\"127.0.0.1\", \"::1\"]\n"));
    assert!(!warned("[callback]\nport = 0\nallow = [\"10.0.0.5\"]\n"));
}

/// The call-back service on the address and port of a SIP UDP listener cannot be bound:
/// refused by `check`, where before `check` said ok and `run` failed to bind. Another
/// port, or another address of the same port, is fine.
#[test]
fn a_callback_port_on_a_sip_udp_listener_is_refused() {
    let text = errors("[callback]\nport = 5060\n");
    assert!(
        text.contains("[callback] 127.0.0.1:5060 is also a [sip] listen UDP address"),
        "{text}"
    );
    let (_d, ok) = load("[callback]\nport = 5061\n");
    assert!(ok.is_ok());
    let (_d, ok) = load("[callback]\nport = 5060\nlisten = \"127.0.0.9\"\n");
    assert!(ok.is_ok());
    let any = BASE.replace("udp:127.0.0.1:5060", "udp:0.0.0.0:5060");
    let (_d, clash) = load_with(&any, "[callback]\nport = 5060\n");
    assert!(clash.is_err(), "every IPv4 address holds it");
    // A dual-stack `[::]` holds the port on every IPv4 address too (failed before: `check`
    // said ok and `run` failed to bind)...
    let dual = BASE.replace("udp:127.0.0.1:5060", "udp:[::]:5060");
    let (_d, clash) = load_with(&dual, "[callback]\nport = 5060\nlisten = \"127.0.0.1\"\n");
    assert!(clash.is_err(), "a SIP [::] holds IPv4 too");
    let (_d, clash) = load_with(BASE, "[callback]\nport = 5060\nlisten = \"::\"\n");
    assert!(clash.is_err(), "a call-back [::] holds IPv4 too");
    // ...but a SIP `[::]` beside a SIP IPv4 listener of its port is IPv6 only.
    let split = BASE.replace(
        "\"udp:127.0.0.1:5060\"",
        "\"udp:[::]:5060\", \"udp:127.0.0.1:5060\"",
    );
    let (_d, ok) = load_with(&split, "[callback]\nport = 5060\nlisten = \"127.0.0.9\"\n");
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
    let (_d, ok) = load_with(&dual, "[callback]\nport = 5061\nlisten = \"127.0.0.1\"\n");
    assert!(ok.is_ok());
}

/// A source let in only by a wide `allow` network (wider than an IPv4 /24 or an IPv6 /64)
/// has its answers held to the rate, as one let in by `allow_any`: anyone in that network
/// may forge the others' addresses. One a narrower network also holds does not. Before, only
/// `allow_any` (or a /0) held answers back.
#[test]
fn a_source_let_in_only_by_a_wide_network_is_held_to_the_answer_rate() {
    let (_dir, cfg) = load(
        "[callback]\nallow = [\"10.0.0.0/8\", \"10.1.2.0/24\", \"127.0.0.1\", \"2001:db8::/48\", \"2001:db8:0:1::/64\"]\nport = 5080\n",
    );
    let cb = cfg.unwrap().callback;
    let capped = |ip: &str| cb.let_in_widely(ip.parse().unwrap());
    assert!(capped("10.9.9.9"));
    assert!(!capped("10.1.2.3"));
    assert!(!capped("127.0.0.1"));
    assert!(capped("2001:db8:0:2::5"));
    assert!(!capped("2001:db8:0:1::5"));
    assert!(!capped("::ffff:127.0.0.1"));
    // Its RESPONSEs are still resent: only anyone's are sent once.
    assert!(!cb.open_only_to("10.9.9.9".parse().unwrap()));
}
