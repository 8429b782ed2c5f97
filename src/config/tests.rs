use super::*;

const GATEWAY: &str = r#"profiles = "profiles"

[sip]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
advertise = "127.0.0.1"

[cdr]
path = "var/cdr.jsonl"

[[route]]
from = "pbx"
prefix = "+86"
to = ["carrier-a", "carrier-b"]
ring_timeout_s = 30

[[route]]
from = "*"
to = "pbx"
"#;

fn profile(name: &str, role: &str, ip: &str) -> String {
    format!(
        "name = \"{name}\"\nrole = \"{role}\"\naddress = \"udp:{ip}:5060\"\nmatch = [\"{ip}/32\"]\n"
    )
}

fn write_tree(gateway: &str, profiles: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), gateway).unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    for (name, text) in profiles {
        std::fs::write(
            dir.path().join("profiles").join(format!("{name}.toml")),
            text,
        )
        .unwrap();
    }
    dir
}

fn standard_profiles() -> Vec<(&'static str, String)> {
    vec![
        ("pbx", profile("pbx", "internal", "127.0.0.2")),
        ("carrier-a", profile("carrier-a", "trunk", "127.0.0.3")),
        ("carrier-b", profile("carrier-b", "trunk", "127.0.0.4")),
    ]
}

#[test]
fn loads_a_valid_tree() {
    let dir = write_tree(GATEWAY, &standard_profiles());
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert_eq!(cfg.listen.len(), 2);
    assert_eq!(cfg.listen[1].transport, Transport::Tcp);
    assert_eq!(cfg.cdr_path, dir.path().join("var/cdr.jsonl"));
    assert_eq!(cfg.routes[0].to.len(), 2);
    assert_eq!(cfg.routes[0].ring_timeout, Some(Duration::from_secs(30)));
    let pbx = cfg.peer_for_source("127.0.0.2".parse().unwrap()).unwrap();
    assert_eq!(pbx.name.as_str(), "pbx");
    assert_eq!(pbx.domain, "127.0.0.2");
    assert!(cfg.peer_for_source("127.0.0.9".parse().unwrap()).is_none());
    let r = cfg
        .route_from(Some(&PeerName("pbx".into())), "+8610")
        .unwrap();
    assert_eq!(r.to[0].as_str(), "carrier-a");
    let r = cfg
        .route_from(Some(&PeerName("carrier-a".into())), "1000")
        .unwrap();
    assert_eq!(r.to[0].as_str(), "pbx");
}

/// A peer on an IPv6 address without a domain gets URIs with the address in brackets
/// (RFC 3261 §19.1.1); one the operator writes bare is bracketed too.
#[test]
fn an_ipv6_domain_is_written_in_brackets() {
    let mut profiles = standard_profiles();
    profiles[1].1 = "name = \"carrier-a\"\nrole = \"trunk\"\naddress = \"udp:[2001:db8::5]:5060\"\nmatch = [\"2001:db8::5/128\"]\n".into();
    profiles[2].1 = format!(
        "{}domain = \"2001:db8::6\"\n",
        profile("carrier-b", "trunk", "127.0.0.4")
    );
    let dir = write_tree(GATEWAY, &profiles);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let a = cfg.peer_for_source("2001:db8::5".parse().unwrap()).unwrap();
    assert_eq!(a.domain, "[2001:db8::5]");
    let b = cfg.peer_for_source("127.0.0.4".parse().unwrap()).unwrap();
    assert_eq!(b.domain, "[2001:db8::6]");
    let uri = crate::interop::uri::request_uri("+8610", false, &a.uri, &a.domain);
    assert_eq!(uri, "sip:+8610@[2001:db8::5]");
}

/// A tel: scheme writes a local number with a phone-context; with no country_code the
/// context is the domain, which an IP address cannot be (RFC 3966 §5.1.5).
#[test]
fn a_tel_scheme_needs_a_country_code_or_a_domain_name() {
    let mut profiles = standard_profiles();
    profiles[1].1.push_str("[uri]\nscheme = \"tel\"\n");
    let dir = write_tree(GATEWAY, &profiles);
    let text = Config::load(&dir.path().join("gateway.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("needs country_code or a domain name"),
        "{text}"
    );
    // "keep" writes tel: only for a caller that used it: such a profile still loads.
    let mut profiles = standard_profiles();
    profiles[1].1.push_str("[uri]\nscheme = \"keep\"\n");
    let dir = write_tree(GATEWAY, &profiles);
    assert!(Config::load(&dir.path().join("gateway.toml")).is_ok());
    // A domain with a port is a hostport a URI takes.
    let mut profiles = standard_profiles();
    profiles[1]
        .1
        .push_str("domain = \"sip.carrier.example:5080\"\n");
    let dir = write_tree(GATEWAY, &profiles);
    assert!(Config::load(&dir.path().join("gateway.toml")).is_ok());
    for fix in ["country_code = \"86\"\n", ""] {
        let mut profiles = standard_profiles();
        let domain = if fix.is_empty() {
            "domain = \"ims.example\"\n"
        } else {
            ""
        };
        profiles[1]
            .1
            .push_str(&format!("{domain}[uri]\nscheme = \"tel\"\n{fix}"));
        let dir = write_tree(GATEWAY, &profiles);
        assert!(Config::load(&dir.path().join("gateway.toml")).is_ok());
    }
    // An IP address with a port is still an IP address (before, it passed the check, and
    // local numbers went out with phone-context=10.0.0.1:5060).
    let mut profiles = standard_profiles();
    profiles[1]
        .1
        .push_str("domain = \"10.0.0.1:5060\"\n[uri]\nscheme = \"tel\"\n");
    let dir = write_tree(GATEWAY, &profiles);
    let text = Config::load(&dir.path().join("gateway.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("needs country_code or a domain name"),
        "{text}"
    );
}

/// What a URI cannot take is refused at its line: a broken escape, a parameter twice,
/// a domain that is no host.
#[test]
fn uri_params_and_domain_a_uri_cannot_take_are_refused() {
    for (extra, why) in [
        (
            "[uri]\nrequest_uri_params = \"tgrp=a%\"\n",
            "two hex digits",
        ),
        (
            "[uri]\nuser_phone = true\nrequest_uri_params = \"user=ip\"\n",
            "user_phone",
        ),
        (
            "[uri]\nrequest_uri_params = \"maddr=10.0.0.9\"\n",
            "elsewhere",
        ),
        ("[uri]\ntgrp_in_user = true\n", "needs user_phone = true"),
        ("domain = \"a>b\"\n", "host name"),
    ] {
        let mut profiles = standard_profiles();
        profiles[1].1.push_str(extra);
        let dir = write_tree(GATEWAY, &profiles);
        let text = Config::load(&dir.path().join("gateway.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("carrier-a.toml:") && text.contains(why),
            "{extra}: {text}"
        );
    }
}

#[test]
fn misspelt_key_is_reported_with_its_line() {
    let bad = GATEWAY.replace("advertise =", "advertize =");
    let dir = write_tree(&bad, &standard_profiles());
    let errs = Config::load(&dir.path().join("gateway.toml")).unwrap_err();
    let text = errs.to_string();
    assert!(text.contains("gateway.toml:5:1:"), "{text}");
    assert!(text.contains("advertize"), "{text}");
}

#[test]
fn misspelt_profile_key_names_the_profile_file() {
    let mut ps = standard_profiles();
    ps[1].1.push_str("domian = \"x\"\n");
    let dir = write_tree(GATEWAY, &ps);
    let text = Config::load(&dir.path().join("gateway.toml"))
        .unwrap_err()
        .to_string();
    assert!(text.contains("carrier-a.toml:5:1:"), "{text}");
    assert!(text.contains("domian"), "{text}");
}

/// A profiles folder that is not there is one error, where `profiles` names it (it was
/// reported at the folder's own 1:1, with every route and the call-back's peer reported
/// unknown after it); left unset, the default folder's absence is reported on gateway.toml.
#[test]
fn a_missing_profiles_folder_is_one_error_where_it_is_named() {
    let dir = write_tree(
        &GATEWAY.replace("\"profiles\"", "\"profilez\""),
        &standard_profiles(),
    );
    let errs = Config::load(&dir.path().join("gateway.toml")).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    let text = errs.to_string();
    assert!(
        text.contains("gateway.toml:1:12: cannot read the profiles folder"),
        "{text}"
    );
    assert!(text.contains("profilez"), "{text}");
    let unset = GATEWAY.replace("profiles = \"profiles\"\n", "");
    let dir = write_tree(&unset, &[]);
    std::fs::remove_dir(dir.path().join("profiles")).unwrap();
    let errs = Config::load(&dir.path().join("gateway.toml")).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert!(
        errs.to_string()
            .contains("gateway.toml:1:1: cannot read the profiles folder")
    );
    assert!(errs.to_string().contains("(set `profiles`)"));
}

/// A path that names nothing is refused where it is written: an empty `[cdr] path` or one
/// naming a folder (the gateway then failed at start: "Is a directory"), an empty
/// `[recording] dir` (recordings in gateway.toml's folder), an empty `profiles` (gateway.toml
/// itself read as a profile, with errors that said nothing of the cause, and one error only).
/// Before, `check` said ok to each.
#[test]
fn paths_that_name_nothing_are_refused_where_written() {
    let refused = |from: &str, to: &str| {
        let dir = write_tree(&GATEWAY.replace(from, to), &standard_profiles());
        Config::load(&dir.path().join("gateway.toml")).unwrap_err()
    };
    for (path, why) in [
        ("", "is empty"),
        ("  ", "is empty"),
        ("var/", "names a folder"),
        ("var/..", "names a folder"),
        (".", "names a folder"),
    ] {
        let errs = refused("\"var/cdr.jsonl\"", &format!("{path:?}"));
        let text = errs.to_string();
        assert!(
            text.contains(&format!("gateway.toml:8:8: [cdr] path {why}")),
            "{path:?}: {text}"
        );
    }
    let errs = refused("profiles = \"profiles\"", "profiles = \"\"");
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert!(
        errs.to_string()
            .contains("gateway.toml:1:12: profiles is empty"),
        "{errs}"
    );
    let errs = refused("[cdr]", "[recording]\ndir = \"\"\n[cdr]");
    assert!(
        errs.to_string()
            .contains("gateway.toml:8:7: [recording] dir is empty"),
        "{errs}"
    );
}

/// A gateway.toml that does not read into its sections (a misspelt key, or TOML that does
/// not parse) still has the profiles checked: the operator sees every file's problems in one
/// `check`. Before, only gateway.toml's error was reported, and the profiles' came one run
/// later.
#[test]
fn a_gateway_file_that_does_not_read_still_has_its_profiles_checked() {
    let mut ps = standard_profiles();
    ps[2].1 = ps[2].1.replace("role = \"trunk\"", "role = \"trunck\"");
    let misspelt = GATEWAY.replace("advertise =", "advertize =");
    let text = load_errors(&misspelt, &ps);
    assert!(text.contains("gateway.toml:5:1:"), "{text}");
    assert!(text.contains("carrier-b.toml:2:"), "{text}");
    // Not TOML at all: the default folder is read, unless a `profiles =` line may name
    // another (the shipped file's names the default; without it, it is read).
    let broken = GATEWAY.replace("[cdr]", "[cdr");
    let text = load_errors(&broken, &ps);
    assert!(text.contains("gateway.toml:7:"), "{text}");
    assert!(!text.contains("carrier-b.toml"), "{text}");
    let text = load_errors(&broken.replace("profiles = \"profiles\"\n", ""), &ps);
    assert!(text.contains("carrier-b.toml:2:"), "{text}");
}

#[test]
fn semantic_errors_are_all_reported_with_positions() {
    let bad = GATEWAY.replace("\"carrier-b\"]", "\"carrier-c\"]");
    let mut ps = standard_profiles();
    ps[0].1 = ps[0].1.replace("name = \"pbx\"", "name = \"pbx2\"");
    ps[2].1 = ps[2].1.replace("udp:127.0.0.4:5060", "udp:nowhere");
    let dir = write_tree(&bad, &ps);
    let errs = Config::load(&dir.path().join("gateway.toml")).unwrap_err();
    let text = errs.to_string();
    assert!(
        text.contains("gateway.toml:13:6: route to unknown peer \"carrier-c\""),
        "{text}"
    );
    assert!(
        text.contains("pbx.toml:1:8: name \"pbx2\" must equal"),
        "{text}"
    );
    assert!(text.contains("carrier-b.toml:3:11:"), "{text}");
    // The route "from pbx" is also unknown now that pbx.toml is invalid.
    assert!(errs.0.len() >= 3);
}

/// Every misspelt key of a file is reported in one run, each at its place, beside the
/// profiles' own problems. Before, only the first: the operator fixed one typo per run.
#[test]
fn every_misspelt_key_is_reported_in_one_run() {
    let bad = GATEWAY
        .replacen("profiles", "profile", 1)
        .replace("ring_timeout_s", "ring_timeout");
    let mut ps = standard_profiles();
    ps[1].1.push_str("[sdp]\nptyme = 20\nptim = 20\n");
    let text = load_errors(&bad, &ps);
    for key in ["`profile`", "`ring_timeout`", "`ptyme`", "`ptim`"] {
        assert!(
            text.contains(&format!("unknown field {key}")),
            "{key}: {text}"
        );
    }
}

/// `gateway` and `profiles` written out and loaded.
fn load_tree(gateway: &str, profiles: &[(&str, String)]) -> Result<Config, ConfigErrors> {
    let dir = write_tree(gateway, profiles);
    Config::load(&dir.path().join("gateway.toml"))
}

/// What loading `gateway` and `profiles` reports (they must be refused).
/// What `cfg` warns of, each as `check` prints it.
fn warnings(cfg: &Config) -> Vec<String> {
    cfg.warnings.iter().map(ToString::to_string).collect()
}

fn load_errors(gateway: &str, profiles: &[(&str, String)]) -> String {
    load_tree(gateway, profiles).unwrap_err().to_string()
}

#[test]
fn timeouts_that_would_overflow_the_clock_are_refused() {
    let bad = GATEWAY.replace(
        "ring_timeout_s = 30",
        "ring_timeout_s = 18446744073709551615",
    );
    let mut ps = standard_profiles();
    ps[1].1.push_str("ring_timeout_s = 0\n");
    let text = load_errors(&bad, &ps);
    assert!(
        text.contains("gateway.toml:14:18: ring_timeout_s must be 1..=86400"),
        "{text}"
    );
    assert!(
        text.contains("carrier-a.toml:5:18: ring_timeout_s must be 1..=86400"),
        "{text}"
    );
    let bad = format!("{GATEWAY}\n[shutdown]\ndrain_s = 18446744073709551615\n");
    let text = load_errors(&bad, &standard_profiles());
    assert!(text.contains("drain_s must be 0..=86400"), "{text}");
    let ok = GATEWAY.replace("ring_timeout_s = 30", "ring_timeout_s = 86400")
        + "\n[shutdown]\ndrain_s = 0\n";
    let cfg = load_tree(&ok, &standard_profiles()).unwrap();
    assert_eq!(cfg.drain, Duration::ZERO);
}

#[test]
fn anchoring_with_a_host_name_advertised_needs_a_media_address() {
    let named = GATEWAY.replace(
        "advertise = \"127.0.0.1\"",
        "advertise = \"gw.example.com\"",
    );
    let mut ps = standard_profiles();
    ps[1].1.push_str("\n[media]\nanchor = true\n");
    let text = load_errors(&named, &ps);
    assert!(
        text.contains("[media] advertise must be set") && text.contains("\"carrier-a\""),
        "{text}"
    );
    // Named, it is used; and without anchoring no media address is needed.
    let with_media = format!("{named}\n[media]\nadvertise = \"192.0.2.1\"\n");
    let cfg = load_tree(&with_media, &ps).unwrap();
    assert_eq!(cfg.media_ip, IpAddr::from([192, 0, 2, 1]));
    assert!(load_tree(&named, &standard_profiles()).is_ok());
}

#[test]
fn behind_a_front_no_profile_may_match_the_fronts_address() {
    let behind = GATEWAY.replace(
        "advertise = \"127.0.0.1\"",
        "advertise = \"127.0.0.1\"\nfront = \"udp:127.0.0.10:5060\"",
    );
    assert!(load_tree(&behind, &standard_profiles()).is_ok());
    let mut ps = standard_profiles();
    ps[0].1 = ps[0].1.replace("127.0.0.2/32", "127.0.0.0/24");
    let text = load_errors(&behind, &ps);
    // At the `match` entry that covers it (line 4, its string's opening quote).
    assert!(
        text.contains("pbx.toml:4:10: 127.0.0.10 is the address of [sip] front"),
        "{text}"
    );
    // Without a front the same range is fine.
    assert!(load_tree(GATEWAY, &ps).is_ok());
    // An overload drop later than the shipped front's wait for an instance: warned of.
    let late = behind.replace("[cdr]", "[protect]\noverload_drop_ms = 2500\n\n[cdr]");
    let cfg = load_tree(&late, &standard_profiles()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cfg.warnings.iter().any(|w| w
            .to_string()
            .contains("overload_drop_ms = 2500: behind the shipped front")),
        "{:?}",
        cfg.warnings
    );
    let quiet = load_tree(&behind, &standard_profiles()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !quiet
            .warnings
            .iter()
            .any(|w| w.to_string().contains("overload_drop_ms"))
    );
    // A peer over TCP, which the shipped front does not relay: warned of.
    let mut ps = standard_profiles();
    ps[1].1 = ps[1].1.replace("udp:127.0.0.3:5060", "tcp:127.0.0.3:5060");
    let cfg = load_tree(&behind, &ps).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cfg.warnings.iter().any(|w| w
            .to_string()
            .contains("carrier-a.toml:3:11: warning: a tcp: address behind [sip] front")),
        "{:?}",
        cfg.warnings
    );
    // A profile whose `address` is the front's, outside its `match`: refused too, at its
    // `address` (before, taken; every call to it failed at the front). So is a `match`
    // the front's address falls in written IPv4-mapped.
    let mut ps = standard_profiles();
    ps[1].1 = ps[1].1.replace(
        "address = \"udp:127.0.0.3:5060\"",
        "address = \"udp:127.0.0.10:5060\"",
    );
    let text = load_errors(&behind, &ps);
    assert!(
        text.contains("carrier-a.toml:3:11: 127.0.0.10 is the address of [sip] front"),
        "{text}"
    );
    let mapped = behind.replace("udp:127.0.0.10:5060", "udp:[::ffff:127.0.0.10]:5060");
    let mut ps = standard_profiles();
    ps[0].1 = ps[0].1.replace("127.0.0.2/32", "127.0.0.0/24");
    let text = load_errors(&mapped, &ps);
    assert!(text.contains("is the address of [sip] front"), "{text}");
    // A front over TCP is refused, not taken and used untried.
    let tcp = behind.replace("udp:127.0.0.10", "tcp:127.0.0.10");
    let text = load_errors(&tcp, &standard_profiles());
    assert!(
        text.contains("[sip] front must be \"udp:IP:PORT\""),
        "{text}"
    );
}

#[test]
fn refused_rate_defaults_to_100_and_0_writes_every_refusal() {
    let rate = |v: Option<&str>| {
        let gateway = match v {
            None => GATEWAY.to_string(),
            Some(v) => GATEWAY.replace(
                "[cdr]\npath = \"var/cdr.jsonl\"\n",
                &format!("[cdr]\npath = \"var/cdr.jsonl\"\nrefused_rate = {v}\n"),
            ),
        };
        load_tree(&gateway, &standard_profiles()).map(|c| c.cdr_refused_rate)
    };
    assert_eq!(rate(None).unwrap().map(|r| r.get()), Some(100));
    assert_eq!(rate(Some("0")).unwrap(), None);
    assert_eq!(rate(Some("7")).unwrap().map(|r| r.get()), Some(7));
    let e = rate(Some("100001")).unwrap_err().to_string();
    assert!(e.contains("[cdr] refused_rate must be 0..=100000"), "{e}");
}

#[test]
fn refused_rate_total_defaults_to_1000_and_0_sets_no_cap() {
    let total = |v: Option<&str>| {
        let gateway = match v {
            None => GATEWAY.to_string(),
            Some(v) => GATEWAY.replace(
                "[cdr]\npath = \"var/cdr.jsonl\"\n",
                &format!("[cdr]\npath = \"var/cdr.jsonl\"\nrefused_rate_total = {v}\n"),
            ),
        };
        load_tree(&gateway, &standard_profiles()).map(|c| c.cdr_refused_rate_total)
    };
    assert_eq!(total(None).unwrap().map(|r| r.get()), Some(1000));
    assert_eq!(total(Some("0")).unwrap(), None);
    assert_eq!(total(Some("50")).unwrap().map(|r| r.get()), Some(50));
    let e = total(Some("1000001")).unwrap_err().to_string();
    assert!(
        e.contains("[cdr] refused_rate_total must be 0..=1000000"),
        "{e}"
    );
}

#[test]
fn overlapping_matches_are_refused() {
    let mut ps = standard_profiles();
    ps[2].1 = ps[2]
        .1
        .replace("[\"127.0.0.4/32\"]", "[\"127.0.0.4/32\", \"127.0.0.3/32\"]");
    let dir = write_tree(GATEWAY, &ps);
    let text = Config::load(&dir.path().join("gateway.toml"))
        .unwrap_err()
        .to_string();
    // The files are read in name order: carrier-b's second entry is the one to edit.
    assert!(
        text.contains("carrier-b.toml:4:26: match 127.0.0.3/32 is also claimed by peer carrier-a"),
        "{text}"
    );
    // One network written twice in one profile is no other peer's: a warning. Before, the
    // load was refused, blaming the peer itself as "another".
    let mut ps = standard_profiles();
    ps[2].1 = ps[2]
        .1
        .replace("[\"127.0.0.4/32\"]", "[\"127.0.0.4/32\", \"127.0.0.4\"]");
    let cfg = load_tree(GATEWAY, &ps).unwrap_or_else(|e| panic!("{e}"));
    let said = warnings(&cfg);
    assert!(
        said.iter()
            .any(|w| w.contains("warning: match 127.0.0.4/32 is listed twice in peer carrier-b")),
        "{said:?}"
    );
    // A route's `to` of the wrong type says what it takes, not serde's enum name.
    let text = load_errors(
        &GATEWAY.replace("to = \"pbx\"", "to = 5"),
        &standard_profiles(),
    );
    assert!(text.contains("a name, or a list of names"), "{text}");
}

/// An address written in the IPv4-mapped form (`[::ffff:127.0.0.4]`) is that IPv4 address,
/// as every reader takes a source: kept mapped, the peer's answers (from 127.0.0.4) matched
/// none of our requests to it, and `advertise` showed IPv4 peers an IPv6 address.
#[test]
fn addresses_in_the_mapped_form_are_ipv4() {
    let mut ps = standard_profiles();
    ps[2].1 = ps[2]
        .1
        .replace("udp:127.0.0.4:5060", "udp:[::ffff:127.0.0.4]:5060");
    let gw = GATEWAY.replace(
        "advertise = \"127.0.0.1\"",
        "advertise = \"[::ffff:127.0.0.1]\"",
    );
    let dir = write_tree(&gw, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let b = cfg.profile(&PeerName("carrier-b".into())).unwrap();
    assert_eq!(b.address.addr, "127.0.0.4:5060".parse().unwrap());
    assert_eq!(
        cfg.advertise, "127.0.0.1",
        "Via and Contact name it as IPv4"
    );
    assert_eq!(
        cfg.media_ip,
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
}

#[test]
fn longest_prefix_wins_for_source_matching() {
    let mut ps = standard_profiles();
    ps[2].1 = ps[2].1.replace("127.0.0.4/32", "127.0.0.0/8");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert_eq!(
        cfg.peer_for_source("127.0.0.3".parse().unwrap())
            .unwrap()
            .name
            .as_str(),
        "carrier-a"
    );
    assert_eq!(
        cfg.peer_for_source("127.9.9.9".parse().unwrap())
            .unwrap()
            .name
            .as_str(),
        "carrier-b"
    );
    // Heard on a dual-stack socket, an IPv4 peer is matched as its IPv4 address, and a
    // `match` written in the mapped form is that IPv4 network.
    let mapped: std::net::IpAddr = "::ffff:127.0.0.3".parse().unwrap();
    assert_eq!(
        cfg.peer_for_source(mapped).unwrap().name.as_str(),
        "carrier-a"
    );
    assert!(cfg.is_peer_source(mapped));
    assert!(
        cfg.is_peer_address(mapped),
        "carrier-a's address, as such a socket reports it"
    );
    ps[2].1 = ps[2].1.replace("127.0.0.0/8", "::ffff:127.0.0.0/104");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert_eq!(
        cfg.peer_for_source("127.9.9.9".parse().unwrap())
            .unwrap()
            .name
            .as_str(),
        "carrier-b"
    );
}

#[test]
fn transport_addresses() {
    assert_eq!(
        parse_transport_addr("tcp:[::1]:5061").unwrap(),
        (Transport::Tcp, "[::1]:5061".parse().unwrap())
    );
    assert_eq!(
        parse_transport_addr("127.0.0.1:5060").unwrap().0,
        Transport::Udp
    );
    assert!(
        parse_transport_addr("tls:127.0.0.1:5061")
            .unwrap_err()
            .contains("TLS")
    );
    assert!(parse_transport_addr("udp:example.com:5060").is_err());
}

/// The advertised address as our requests leave from it: an IPv6 one in brackets too
/// (before, only one written bare was taken, and a bracketed one left from the kernel's
/// pick); a host name is none.
#[test]
fn the_advertised_ip_is_read_bare_or_in_brackets() {
    let mut cfg = crate::call::tests::config();
    for (written, ip) in [
        ("192.0.2.7", Some("192.0.2.7")),
        ("[2001:db8::7]", Some("2001:db8::7")),
        ("2001:db8::7", Some("2001:db8::7")),
        ("sbc.example.com", None),
    ] {
        cfg.advertise = written.into();
        assert_eq!(
            cfg.advertise_ip(),
            ip.map(|i| i.parse().unwrap()),
            "{written}"
        );
    }
}

/// `request_uri_params = "…;user=phone"` is `user_phone = true`: the number's parameters go
/// into the user part with it. Before, `;user=phone` followed the host while the number's
/// parameters (`;rn=`, `;phone-context=`) stayed out of the user part, unread as a number's.
#[test]
fn user_phone_in_request_uri_params_is_user_phone() {
    let mut profiles = standard_profiles();
    profiles[1]
        .1
        .push_str("[uri]\nrequest_uri_params = \"tgrp=tg1;User=Phone\"\n");
    let dir = write_tree(GATEWAY, &profiles);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let uri = &cfg.profile(&PeerName("carrier-a".into())).unwrap().uri;
    assert!(uri.user_phone);
    assert_eq!(uri.request_uri_params, "tgrp=tg1");
}

/// `[uri] number_params` is on unless a profile turns it off; a value that is no boolean is
/// an error at its place.
#[test]
fn number_params_are_kept_unless_turned_off() {
    let dir = write_tree(GATEWAY, &standard_profiles());
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert!(
        cfg.profile(&PeerName("carrier-a".into()))
            .unwrap()
            .uri
            .number_params
    );
    let mut profiles = standard_profiles();
    profiles[1].1.push_str("[uri]\nnumber_params = false\n");
    let dir = write_tree(GATEWAY, &profiles);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert!(
        !cfg.profile(&PeerName("carrier-a".into()))
            .unwrap()
            .uri
            .number_params
    );
    let mut profiles = standard_profiles();
    profiles[1].1.push_str("[uri]\nnumber_params = \"no\"\n");
    let dir = write_tree(GATEWAY, &profiles);
    let text = Config::load(&dir.path().join("gateway.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("carrier-a.toml:6:17") && text.contains("expected a boolean"),
        "{text}"
    );
}

#[test]
fn the_shipped_configuration_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let a = cfg.profile(&PeerName("carrier-a".into())).unwrap();
    assert!(a.uri.user_phone);
    assert_eq!(a.ptime, Some(20));
    assert_eq!(a.causes.map.get(&503).map(|c| c.0), Some(34));
}

#[test]
fn interop_keys_are_validated_with_positions() {
    let mut ps = standard_profiles();
    ps[1].1.push_str("[uri]\nscheme = \"sips\"\nnumber = \"e164\"\nrequest_uri_params = \"a b\"\n[prack]\nmode = \"sometimes\"\n[sdp]\nptime = 999\n[causes.map]\n\"abc\" = 1\n\"486\" = 300\n");
    let dir = write_tree(GATEWAY, &ps);
    let text = Config::load(&dir.path().join("gateway.toml"))
        .unwrap_err()
        .to_string();
    for want in [
        "carrier-a.toml:6:10: [uri] scheme \"sips\"",
        "carrier-a.toml:7:10: [uri] number = \"e164\" needs country_code",
        "carrier-a.toml:8:22: [uri] request_uri_params",
        "carrier-a.toml:10:8: [prack] mode \"sometimes\"",
        "carrier-a.toml:12:9: [sdp] ptime",
        "[causes.map] key \"abc\"",
        "[causes.map] values are Q.850 causes",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn repacketising_needs_a_ptime_whose_packets_fit_1500_bytes() {
    // 186 ms of G.711 and its header fit 1,500 bytes; 200 ms (a valid [sdp] ptime) does not.
    let with = |ptime: u32| {
        let mut ps = standard_profiles();
        ps[1].1.push_str(&format!(
            "[sdp]\nptime = {ptime}\n[media]\nrepacketize = true\n"
        ));
        load_tree(GATEWAY, &ps)
    };
    assert!(with(186).is_ok());
    assert!(with(187).is_err());
    let text = with(200).unwrap_err().to_string();
    assert!(
        text.contains(
            "carrier-a.toml:6:9: [media] repacketize sends packets of [sdp] ptime: at most 186 ms"
        ),
        "{text}"
    );
    // Without a ptime, at the key that asks for it.
    let mut ps = standard_profiles();
    ps[1].1.push_str("[media]\nrepacketize = true\n");
    let text = load_errors(GATEWAY, &ps);
    assert!(
        text.contains("carrier-a.toml:6:15: [media] repacketize needs [sdp] ptime"),
        "{text}"
    );
    // Without repacketising, 200 ms is only what the SDP says.
    let mut ps = standard_profiles();
    ps[1].1.push_str("[sdp]\nptime = 200\n");
    assert!(load_tree(GATEWAY, &ps).is_ok());
}

#[test]
fn protect_guard_and_overload_keys() {
    let dir = write_tree(
        &format!(
            "{GATEWAY}\n[protect]\nsource_rate = 0\nsource_cooldown_s = 30\noverload_delay_ms = 50\noverload_drop_ms = 400\n"
        ),
        &standard_profiles(),
    );
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert_eq!(cfg.protect.source_rate, None, "0 switches the guard off");
    assert_eq!(cfg.protect.source_cooldown, Duration::from_secs(30));
    assert_eq!(cfg.protect.overload_delay, Duration::from_millis(50));
    assert_eq!(cfg.protect.overload_drop, Duration::from_millis(400));

    let dir = write_tree(GATEWAY, &standard_profiles());
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert_eq!(cfg.protect.source_rate, Some(2000));

    let bad = format!("{GATEWAY}\n[protect]\noverload_delay_ms = 300\noverload_drop_ms = 200\n");
    let dir = write_tree(&bad, &standard_profiles());
    let errs = Config::load(&dir.path().join("gateway.toml")).unwrap_err();
    let text = errs.to_string();
    assert!(
        text.contains("overload_drop_ms must not be below overload_delay_ms")
            && text.contains("gateway.toml:"),
        "{text}"
    );
}

/// `max_tcp_per_source` is never above `max_tcp_total`: written so, an error; left unset, its
/// default gives way to a smaller total (it stayed 16 above a total of 8).
#[test]
fn the_tcp_cap_per_source_never_exceeds_the_total() {
    let small = format!("{GATEWAY}\n[protect]\nmax_tcp_total = 8\n");
    let cfg = load_tree(&small, &standard_profiles()).unwrap();
    assert_eq!(
        (cfg.protect.max_tcp_total, cfg.protect.max_tcp_per_source),
        (8, 8)
    );
    let cfg = load_tree(GATEWAY, &standard_profiles()).unwrap();
    assert_eq!(cfg.protect.max_tcp_per_source, 16);
    let text = load_errors(
        &format!("{small}max_tcp_per_source = 9\n"),
        &standard_profiles(),
    );
    assert!(text.contains("must not exceed max_tcp_total"), "{text}");
}

/// `max_tcp_per_peer`: unset, three quarters of the peers' part (the total but its
/// sixteenth) but never under a source's share; written, at most the total.
#[test]
fn the_tcp_cap_per_peer_is_three_quarters_of_the_peers_part_unless_written() {
    let cfg = load_tree(GATEWAY, &standard_profiles()).unwrap();
    assert_eq!(cfg.protect.max_tcp_per_peer, 720);
    assert_eq!(crate::config::Protect::default().max_tcp_per_peer, 720);
    let small = format!("{GATEWAY}\n[protect]\nmax_tcp_total = 20\n");
    let cfg = load_tree(&small, &standard_profiles()).unwrap();
    assert_eq!(cfg.protect.max_tcp_per_peer, 16, "a source's 16");
    let cfg = load_tree(
        &format!("{small}max_tcp_per_peer = 3\n"),
        &standard_profiles(),
    )
    .unwrap();
    assert_eq!(cfg.protect.max_tcp_per_peer, 3);
    let text = load_errors(
        &format!("{small}max_tcp_per_peer = 21\n"),
        &standard_profiles(),
    );
    assert!(
        text.contains("max_tcp_per_peer must not exceed max_tcp_total"),
        "{text}"
    );
}

#[test]
fn media_threads_default_to_one_per_core_and_are_bounded() {
    let load = |extra: &str| {
        let dir = write_tree(&format!("{GATEWAY}{extra}"), &standard_profiles());
        Config::load(&dir.path().join("gateway.toml"))
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let auto = cores.clamp(1, 64);
    assert_eq!(load("").unwrap().media_threads, auto);
    assert_eq!(
        load("\n[media]\nthreads = 0\n").unwrap().media_threads,
        auto
    );
    assert_eq!(load("\n[media]\nthreads = 3\n").unwrap().media_threads, 3);
    let text = load("\n[media]\nthreads = 65\n").unwrap_err().to_string();
    assert!(
        text.contains("[media] threads must be 0") && text.contains("gateway.toml:"),
        "{text}"
    );
}

#[test]
fn trunks_latch_to_their_sdp_ip_unless_told_otherwise() {
    let mut ps = standard_profiles();
    ps[2].1.push_str("\n[media]\nlatch = \"any\"\n");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let latch = |n: &str| cfg.profiles[&PeerName(n.into())].latch;
    assert_eq!(latch("carrier-a"), Latch::SdpIp, "a trunk's default");
    assert_eq!(latch("carrier-b"), Latch::Any, "set explicitly");
    assert_eq!(latch("pbx"), Latch::Any, "an internal peer's default");
}

#[test]
fn the_silence_before_a_latch_moves_is_per_profile_and_bounded() {
    let mut ps = standard_profiles();
    ps[2]
        .1
        .push_str("\n[media]\nrebind_after_silence_ms = 500\n");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let rebind = |n: &str| cfg.profiles[&PeerName(n.into())].rebind_after_silence;
    assert_eq!(rebind("carrier-b"), Duration::from_millis(500));
    assert_eq!(rebind("pbx"), crate::media::MOVE_AFTER_SILENCE);
    let mut ps = standard_profiles();
    ps[2]
        .1
        .push_str("\n[media]\nrebind_after_silence_ms = 50\n");
    let dir = write_tree(GATEWAY, &ps);
    let text = Config::load(&dir.path().join("gateway.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("carrier-b.toml:")
            && text.contains("rebind_after_silence_ms must be 200..=60000"),
        "{text}"
    );
}

#[test]
fn a_profiles_max_streams_is_its_own_and_bounded_as_the_gateways() {
    let cfg = with_carrier_b_media("max_streams = 1").unwrap();
    let max = |n: &str| cfg.profiles[&PeerName(n.into())].max_streams;
    assert_eq!(max("carrier-b"), Some(1));
    assert_eq!(max("pbx"), None, "the gateway's applies");
    for bad in ["0", "17"] {
        let text = with_carrier_b_media(&format!("max_streams = {bad}")).unwrap_err();
        assert!(
            text.contains("carrier-b.toml:") && text.contains("max_streams must be 1..=16"),
            "{text}"
        );
    }
}

/// The standard tree with `media` as carrier-b's `[media]`, loaded (or why not).
fn with_carrier_b_media(media: &str) -> Result<Config, String> {
    let mut ps = standard_profiles();
    ps[2].1.push_str(&format!("\n[media]\n{media}"));
    let dir = write_tree(GATEWAY, &ps);
    Config::load(&dir.path().join("gateway.toml")).map_err(|e| e.to_string())
}

/// `[media] networks`: a peer's media networks as CIDR or single addresses; an entry that is
/// neither, or an empty list (which would refuse all media), is an error with its place.
/// Setting them anchors the peer's calls: only the relay can keep media to them.
#[test]
fn a_peers_media_networks_are_read_and_checked() {
    let load = with_carrier_b_media;
    let cfg = load("networks = [\"198.51.100.0/24\", \"2001:db8::7\"]\n").unwrap();
    let nets = cfg.profiles[&PeerName("carrier-b".into())]
        .media_networks
        .clone()
        .unwrap();
    let want: Vec<ipnet::IpNet> = vec![
        "198.51.100.0/24".parse().unwrap(),
        "2001:db8::7/128".parse().unwrap(),
    ];
    assert_eq!(&nets[..], &want[..]);
    assert!(cfg.profiles[&PeerName("carrier-b".into())].anchor);
    assert!(
        cfg.profiles[&PeerName("pbx".into())]
            .media_networks
            .is_none()
    );
    let text = load("networks = [\"10.0.0.0/33\"]\n").unwrap_err();
    assert!(
        text.contains("carrier-b.toml:") && text.contains("[media] networks \"10.0.0.0/33\""),
        "{text}"
    );
    let text = load("networks = []\n").unwrap_err();
    assert!(text.contains("[media] networks is empty"), "{text}");
    // A host written with its network's prefix: read as the whole network, and said so.
    let cfg = load("networks = [\"198.51.100.7/24\"]\n").unwrap();
    let nets = cfg.profiles[&PeerName("carrier-b".into())]
        .media_networks
        .clone()
        .unwrap();
    assert_eq!(nets[0], "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap());
    let warned = cfg
        .warnings
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>();
    assert!(
        warned.iter().any(|w| w.contains("carrier-b.toml:")
            && w.contains("\"198.51.100.7/24\" has host bits under its prefix")),
        "{warned:?}"
    );
}

/// The media timeouts: a week at most, a hold timeout no shorter than the active one (it is
/// for calls that may send nothing), and a warning under 5 s. Before, any number was taken:
/// a hold timeout of 10 s under an active one of 60 s ended every held call in 10 s.
#[test]
fn the_media_timeouts_are_bounded_and_ordered() {
    let load = |media: &str| with_carrier_b_media(&format!("anchor = true\n{media}"));
    let cfg = load("rtp_timeout_s = 60\nrtp_hold_timeout_s = 600\n").unwrap();
    let p = &cfg.profiles[&PeerName("carrier-b".into())];
    assert_eq!(p.rtp_timeout, Some(Duration::from_secs(60)));
    assert_eq!(p.rtp_hold_timeout, Some(Duration::from_secs(600)));
    let cfg = load("").unwrap();
    let p = &cfg.profiles[&PeerName("carrier-b".into())];
    assert_eq!(
        (p.rtp_timeout, p.rtp_hold_timeout),
        (None, Some(Duration::from_secs(3600)))
    );
    let err = load("rtp_timeout_s = 60\nrtp_hold_timeout_s = 10\n").unwrap_err();
    assert!(
        err.contains("carrier-b.toml:") && err.contains("must not be shorter"),
        "{err}"
    );
    let err = load("rtp_timeout_s = 99999999999\n").unwrap_err();
    assert!(
        err.contains("rtp_timeout_s must be 0 (off) to 604800"),
        "{err}"
    );
    // 0 turns the hold timeout off whatever the active one; unset, it is an hour, or the
    // active one when that is longer.
    load("rtp_timeout_s = 60\nrtp_hold_timeout_s = 0\n").unwrap();
    let cfg = load("rtp_timeout_s = 7200\n").unwrap();
    let p = &cfg.profiles[&PeerName("carrier-b".into())];
    assert_eq!(p.rtp_hold_timeout, Some(Duration::from_secs(7200)));
    let cfg = load("rtp_timeout_s = 2\n").unwrap();
    let said = warnings(&cfg);
    assert!(
        said.iter()
            .any(|w| w.contains("silence suppression") && w.contains(": warning: ")),
        "a warning, said so: {said:?}"
    );
}

/// The relay's settings on a profile that does not anchor act only on calls the other peer
/// anchors: said, each at its line. Before, `rtp_timeout_s = 60` there loaded silently and
/// never ended a call whose BYE was lost.
#[test]
fn relay_settings_on_a_profile_that_does_not_anchor_are_warned_about() {
    let said = |media: &str| -> Vec<String> {
        let cfg = with_carrier_b_media(media).unwrap();
        (cfg.warnings.iter())
            .map(|w| w.to_string())
            .filter(|w| w.contains("acts on calls the relay carries only"))
            .collect()
    };
    let warned = said("rtp_timeout_s = 60\nlatch = \"sdp-ip\"\n");
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(warned[0].contains("carrier-b.toml:"), "{warned:?}");
    assert!(said("anchor = true\nrtp_timeout_s = 60\n").is_empty());
    assert!(said("record = true\nmax_streams = 2\n").is_empty());
}

/// A profile without `match`, and a `match` inside another peer's, load, with a warning
/// each at its line: traffic from there is not (or is not all) what the operator may think.
/// Before, both were silent.
#[test]
fn a_missing_or_nested_match_is_warned_about() {
    let mut ps = standard_profiles();
    ps[1].1 = ps[1].1.replace("match = [\"127.0.0.3/32\"]\n", "");
    ps[2].1 = ps[2].1.replace("\"127.0.0.4/32\"", "\"127.0.0.0/24\"");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert!(
        said.iter()
            .any(|w| w.contains("carrier-a.toml:1:") && w.contains("no `match`")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|w| w.contains("pbx.toml:4:")
            && w.contains("127.0.0.2/32 lies within peer carrier-b's 127.0.0.0/24")),
        "{said:?}"
    );
    // When the wider peer registers, requests to its contact from the nested network are
    // its own whatever the prefix says (`peer_for_contact`): said too.
    ps[2]
        .1
        .push_str("\n[register]\nenabled = true\ncontact_user = \"4420001\"\n");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert!(
        said.iter().any(|w| w.contains("pbx.toml:4:")
            && w.contains("requests from there to \"4420001\", carrier-b's registered contact user, are carrier-b's")),
        "{said:?}"
    );
    // The standard tree says neither.
    let dir = write_tree(GATEWAY, &standard_profiles());
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // A profile file named `*.TOML` is no profile, and said so.
    let dir = write_tree(GATEWAY, &standard_profiles());
    std::fs::write(dir.path().join("profiles/extra.TOML"), "name = \"extra\"\n").unwrap();
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert!(
        said.iter()
            .any(|w| w.contains("extra.TOML") && w.contains("not read as a profile")),
        "{said:?}"
    );
    // A match of most of the internet is said too (every stranger is that peer's).
    let mut ps = standard_profiles();
    ps[2].1 = ps[2].1.replace("\"127.0.0.4/32\"", "\"0.0.0.0/0\"");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert!(
        said.iter().any(
            |w| w.contains("match 0.0.0.0/0 covers a large part of the internet")
                && w.contains("every source in it is")
        ),
        "{said:?}"
    );
}

/// Via and Contact name the port of the listener on the advertised address: with IPv4 on
/// 5060 and IPv6 on 5070, an IPv6 advertise names 5070 (it named the first listener's
/// 5060, where nothing listens on that address). Else a wildcard's that hears it.
#[test]
fn the_advertised_port_is_the_advertised_addresss_listeners() {
    let gw = GATEWAY
        .replace(
            "listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]",
            "listen = [\"udp:127.0.0.1:5060\", \"udp:[::1]:5070\", \"tcp:0.0.0.0:5062\", \"tcp:[::]:5064\"]",
        )
        .replace("advertise = \"127.0.0.1\"", "advertise = \"::1\"");
    let dir = write_tree(&gw, &standard_profiles());
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let local = cfg.local_addrs();
    assert_eq!(local.udp_port, Some(5070));
    assert_eq!(
        local.tcp_port,
        Some(5064),
        "[::] hears IPv6, 0.0.0.0 does not"
    );
    // An advertised address that is not this host's (a NAT's, a load balancer's) reaches
    // the listener of its family, not a wildcard of the other.
    let gw = GATEWAY
        .replace(
            "listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]",
            "listen = [\"udp:[::]:5070\", \"udp:127.0.0.1:5060\"]",
        )
        .replace("advertise = \"127.0.0.1\"", "advertise = \"203.0.113.5\"");
    let dir = write_tree(&gw, &standard_profiles());
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert_eq!(cfg.local_addrs().udp_port, Some(5060));
}

/// `[uri] international_prefix` and `national_prefix`: digits (the national one may be
/// none); one that the national prefix begins with would leave it unreachable.
#[test]
fn the_dialling_prefixes_are_digits_that_leave_each_other_reachable() {
    let with = |uri: &str| {
        let mut ps = standard_profiles();
        ps[1]
            .1
            .push_str(&format!("\n[uri]\ncountry_code = \"1\"\n{uri}"));
        ps
    };
    let dir = write_tree(
        GATEWAY,
        &with("international_prefix = \"011\"\nnational_prefix = \"1\"\n"),
    );
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let a = &cfg.profile(&PeerName("carrier-a".into())).unwrap().uri;
    assert_eq!(
        (&*a.international_prefix, &*a.national_prefix),
        ("011", "1")
    );
    let dir = write_tree(GATEWAY, &with("national_prefix = \"\"\n"));
    assert!(
        Config::load(&dir.path().join("gateway.toml")).is_ok(),
        "no national prefix"
    );
    let dir = write_tree(GATEWAY, &with("short_code_digits = 5\n"));
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let a = &cfg.profile(&PeerName("carrier-a".into())).unwrap().uri;
    assert_eq!(a.short_code_digits, 5);
    for (bad, why) in [
        ("international_prefix = \"+\"\n", "must be 1 to 4 digits"),
        ("international_prefix = \"\"\n", "must be 1 to 4 digits"),
        ("national_prefix = \"00000\"\n", "must be 0 to 4 digits"),
        ("short_code_digits = 2\n", "must be 3 to 8"),
        ("short_code_digits = 9\n", "must be 3 to 8"),
        (
            "international_prefix = \"0\"\nnational_prefix = \"00\"\n",
            "overlap",
        ),
    ] {
        let text = load_errors(GATEWAY, &with(bad));
        assert!(text.contains(why), "{bad}: {text}");
    }
}

/// A peer reached over IPv6 while the gateway advertises IPv4 (and relays media on IPv4):
/// it would be told an address it cannot reach, and an anchored call with it would have no
/// audio, and no UDP listener of its family could send to it. Each loads with a warning at
/// its `address`; before, the first call found out.
#[test]
fn a_peer_of_the_other_address_family_is_warned_about() {
    let mut ps = standard_profiles();
    ps[2].1 = ps[2].1.replace("udp:127.0.0.4:5060", "udp:[::1]:5060");
    ps[2].1.push_str("\n[media]\nanchor = true\n");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(
        said.iter()
            .all(|w| w.contains("carrier-b.toml:") && w.contains("IPv6")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|w| w.contains("[sip] advertise 127.0.0.1 is IPv4")),
        "{said:?}"
    );
    assert!(said.iter().any(|w| w.contains("no audio")), "{said:?}");
}

/// The example's loopback addresses kept when a peer moved to a real one: it would be told
/// to send its requests within calls to 127.0.0.1, and its anchored calls would be silent
/// (the relay on loopback). Both load with a warning at its `address`.
#[test]
fn loopback_advertised_to_a_peer_elsewhere_is_warned_about() {
    let mut ps = standard_profiles();
    ps[1].1 = ps[1].1.replace("127.0.0.3", "192.0.2.3");
    ps[1].1.push_str("\n[media]\nanchor = true\n");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert!(
        said.iter().any(|w| w.contains("carrier-a.toml:")
            && w.contains("[sip] advertise 127.0.0.1 is loopback")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|w| w.contains("carrier-a.toml:")
            && w.contains("relay's address 127.0.0.1 is loopback")),
        "{said:?}"
    );
    // Behind a front the peers are told its address: a loopback `[sip] advertise` (the
    // instance on the front's host) is said nothing of; the relay's still is.
    let behind = GATEWAY.replace(
        "advertise = \"127.0.0.1\"",
        "advertise = \"127.0.0.1\"\nfront = \"udp:127.0.0.10:5060\"",
    );
    let dir = write_tree(&behind, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert!(
        !said.iter().any(|w| w.contains("[sip] advertise")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|w| w.contains("relay's address 127.0.0.1 is loopback")),
        "{said:?}"
    );
    // A loopback Contact behind a front elsewhere: the front cannot reach it.
    let elsewhere = GATEWAY.replace(
        "advertise = \"127.0.0.1\"",
        "advertise = \"127.0.0.1\"\nfront = \"udp:192.0.2.10:5060\"",
    );
    let dir = write_tree(&elsewhere, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert!(
        said.iter().any(|w| w.contains("gateway.toml:")
            && w.contains("cannot be reached from [sip] front 192.0.2.10")),
        "{said:?}"
    );
    // A relay address this host does not have: said too (its sockets cannot be bound).
    let gateway = GATEWAY.replace(
        "advertise = \"127.0.0.1\"",
        "advertise = \"127.0.0.1\"\n\n[media]\nadvertise = \"192.0.2.1\"",
    );
    let gateway = gateway.replacen("\n[cdr]", "[cdr]", 1);
    let dir = write_tree(&gateway, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert!(
        said.iter()
            .any(|w| w.contains("192.0.2.1") && w.contains("no address of this host")),
        "{said:?}"
    );
    // The shipped layout, everything on loopback: nothing to say.
    let mut ps = standard_profiles();
    ps[1].1.push_str("\n[media]\nanchor = true\n");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

/// `[sdp] ptime = 25` loads (G.711 can be cut anywhere), with a warning at its line: most
/// codecs and many phones cannot packetise it. Before, it was silent.
#[test]
fn a_ptime_off_the_10_ms_grid_is_warned_about() {
    let mut ps = standard_profiles();
    ps[1].1.push_str("\n[sdp]\nptime = 25\n");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let said = warnings(&cfg);
    assert!(
        said.iter()
            .any(|w| w.contains("carrier-a.toml:") && w.contains("ptime 25 is no multiple of 10")),
        "{said:?}"
    );
    let mut ps = standard_profiles();
    ps[1].1.push_str("\n[sdp]\nptime = 30\n");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn from_texts_validates_exactly_as_load_does() {
    let dir = write_tree(GATEWAY, &standard_profiles());
    let path = dir.path().join("gateway.toml");
    let texts: Vec<(std::path::PathBuf, String)> = standard_profiles()
        .into_iter()
        .map(|(name, text)| (dir.path().join(format!("profiles/{name}.toml")), text))
        .collect();
    let loaded = Config::load(&path).unwrap();
    let given = Config::from_texts(&path, GATEWAY, &texts).unwrap();
    assert_eq!(loaded.profiles, given.profiles);
    assert_eq!(loaded.routes, given.routes);
    assert_eq!(loaded.listen, given.listen);
    assert_eq!(loaded.callback, given.callback);
    assert_eq!(loaded.cdr_path, given.cdr_path);
    assert_eq!(loaded.warnings.len(), given.warnings.len());
    // And its errors name the paths given, with line and column.
    let mut broken = texts.clone();
    broken[0].1.push_str("\n[media]\nlatch = \"sometimes\"\n");
    let text = Config::from_texts(&path, GATEWAY, &broken)
        .unwrap_err()
        .to_string();
    let want = format!("{}:", broken[0].0.display());
    assert!(
        text.contains(&want) && text.contains("latch \"sometimes\""),
        "{text}"
    );
}

#[test]
fn call_policy_keys_are_validated_with_positions() {
    let mut ps = standard_profiles();
    ps[1].1.push_str(
        "[session_timer]\nmode = \"sometimes\"\nexpires_s = 30\n\
         [transfer]\nmode = \"always\"\n\
         [sip]\nallow = [\"INVITE\", \"BY E\", \"UDPATE\"]\ninvite_timeout_s = 33\nprobe_s = 59\n\
         [headers]\npass = [\"Via\", \"X Bad\"]\nstrip = [\"content-encoding\"]\nuser_agent = \"bad\\u0007\"\n",
    );
    let dir = write_tree(GATEWAY, &ps);
    let text = Config::load(&dir.path().join("gateway.toml"))
        .unwrap_err()
        .to_string();
    for want in [
        "carrier-a.toml:6:8: [session_timer] mode \"sometimes\"",
        "carrier-a.toml:7:13: [session_timer] expires_s must be 90..=86400 seconds",
        "carrier-a.toml:9:8: [transfer] mode \"always\" must be \"refuse\" or \"relay\"",
        "[sip] allow: \"BY E\" is not a SIP method",
        // A misspelt method was left out silently: UPDATE off for the peer.
        "[sip] allow: \"UDPATE\" is no method the gateway knows",
        "carrier-a.toml:12:20: [sip] invite_timeout_s must be 1..=32",
        "carrier-a.toml:13:11: [sip] probe_s must be 0 (off) or 60..=86400",
        "[headers] pass: Via cannot be passed",
        "[headers] pass: \"X Bad\" is not a header name",
        "[headers] strip: content-encoding cannot be stripped",
        "[headers] user_agent must be 1..=128 printable characters",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // And a good set loads into the profile.
    let mut ps = standard_profiles();
    ps[1].1.push_str(
        "[session_timer]\nmode = \"require\"\nexpires_s = 600\nmin_se_s = 120\n\
         [transfer]\nmode = \"relay\"\nto_trunks = true\n[sip]\nallow = [\"invite\", \"ACK\", \"BYE\"]\ninvite_timeout_s = 4\nprobe_s = 0\n\
         [headers]\npass = [\"X-Billing\"]\nstrip = [\"Subject\"]\nuser_agent = \"tg\"\n",
    );
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let p = cfg.profile(&PeerName("carrier-a".into())).unwrap();
    assert_eq!(
        p.session_timer.mode,
        crate::interop::session_timer::TimerMode::Require
    );
    assert_eq!(p.session_timer.expires, Duration::from_secs(600));
    assert_eq!(p.session_timer.min_se, Duration::from_secs(120));
    assert_eq!(p.transfer, crate::interop::transfer::TransferMode::Relay);
    assert!(p.transfer_to_trunks);
    assert_eq!(p.invite_timeout, Some(Duration::from_secs(4)));
    assert_eq!(p.probe, None, "probe_s = 0 is off");
    let pbx = cfg.profile(&PeerName("pbx".into())).unwrap();
    assert!(!pbx.transfer_to_trunks);
    // Probed by default: trunks only.
    assert_eq!(pbx.probe, None);
    let carrier_b = cfg.profile(&PeerName("carrier-b".into())).unwrap();
    assert_eq!(carrier_b.probe, Some(crate::config::DEFAULT_PROBE));
    assert_eq!(
        p.allow.as_deref(),
        Some(&["INVITE".to_string(), "ACK".into(), "BYE".into()][..])
    );
    assert!(p.headers.copies(&crate::sip::Hdr::named("X-Billing")));
    assert!(!p.headers.copies(&crate::sip::Hdr::named("Subject")));
    assert_eq!(p.headers.user_agent.as_deref(), Some("tg"));
}

/// `trust_asserted` follows `trust_identity` unless set: a trunk is believed, an internal
/// peer is not; a PBX may be believed without being told private identities.
#[test]
fn believed_assertions_follow_the_trust_domain_unless_set() {
    let believed = |peer: usize, headers: &str| {
        let mut ps = standard_profiles();
        ps[peer].1.push_str(headers);
        let cfg = load_tree(GATEWAY, &ps).unwrap();
        let p = cfg.profile(&PeerName(ps[peer].0.into())).unwrap();
        (p.headers.trust_identity, p.headers.trust_asserted)
    };
    assert_eq!(believed(0, ""), (false, false));
    assert_eq!(believed(1, ""), (true, true));
    assert_eq!(
        believed(0, "[headers]\ntrust_identity = true\n"),
        (true, true)
    );
    assert_eq!(
        believed(0, "[headers]\ntrust_asserted = true\n"),
        (false, true)
    );
    assert_eq!(
        believed(1, "[headers]\ntrust_asserted = false\n"),
        (true, false)
    );
}

#[test]
fn metrics_scrapers_default_to_loopback_and_are_bounded() {
    let load = |extra: &str| load_tree(&format!("{GATEWAY}{extra}"), &standard_profiles());
    let m = load("").unwrap().metrics;
    assert_eq!(m.listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(m.max_connections, 4);
    assert!(m.allows("127.0.0.1".parse().unwrap()));
    assert!(m.allows("::1".parse().unwrap()));
    assert!(m.allows("::ffff:127.0.0.1".parse().unwrap()));
    assert!(!m.allows("127.0.0.2".parse().unwrap()));
    assert!(!m.allows("10.0.0.9".parse().unwrap()));

    let m =
        load("\n[metrics]\nallow = [\"10.0.0.0/8\", \"::ffff:192.0.2.7\"]\nmax_connections = 9\n")
            .unwrap()
            .metrics;
    assert!(m.allows("10.1.2.3".parse().unwrap()));
    assert!(m.allows("192.0.2.7".parse().unwrap()));
    assert!(!m.allows("127.0.0.1".parse().unwrap()));
    assert_eq!(m.max_connections, 9);

    // A scraper on another host needs `allow`: said at load, not found out at 3 a.m.
    let c = load("\n[metrics]\nlisten = \"0.0.0.0:9464\"\n").unwrap();
    let said = warnings(&c);
    assert!(
        said.iter()
            .any(|w| w.contains("[metrics] listen 0.0.0.0:9464 is not loopback")),
        "{said:?}"
    );
    // The same with loopback written out, as the shipped gateway.toml does.
    let c =
        load("\n[metrics]\nlisten = \"0.0.0.0:9464\"\nallow = [\"127.0.0.1\", \"::1\"]\n").unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.to_string().contains("[metrics] listen 0.0.0.0:9464")),
        "{:?}",
        c.warnings
    );
    let c = load("\n[metrics]\nlisten = \"0.0.0.0:9464\"\nallow = [\"10.0.0.5\"]\n").unwrap();
    assert!(
        c.warnings
            .iter()
            .all(|w| !w.to_string().contains("[metrics]"))
    );

    for (extra, says) in [
        (
            "allow = [\"scraper\"]",
            "[metrics] allow \"scraper\" is not an IP",
        ),
        ("allow = []", "[metrics] allow is empty"),
        (
            "max_connections = 0",
            "[metrics] max_connections must be 1..=64",
        ),
        (
            "max_connections = 65",
            "[metrics] max_connections must be 1..=64",
        ),
    ] {
        let text = load(&format!("\n[metrics]\n{extra}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(says) && text.contains("gateway.toml:"),
            "{text}"
        );
    }
    // Off needs no scrapers.
    let m = load("\n[metrics]\nlisten = \"\"\nallow = []\n")
        .unwrap()
        .metrics;
    assert_eq!(m.listen, None);
}

#[test]
fn a_drain_longer_than_the_shipped_stop_timeouts_is_a_warning() {
    let load = |extra: &str| load_tree(&format!("{GATEWAY}{extra}"), &standard_profiles());
    let said = warnings;
    let c = load("\n[shutdown]\ndrain_s = 33\n").unwrap();
    assert!(
        said(&c).iter().all(|w| !w.contains("drain_s")),
        "{:?}",
        said(&c)
    );
    let c = load("\n[shutdown]\ndrain_s = 60\n").unwrap();
    assert_eq!(c.drain, Duration::from_secs(60));
    assert!(
        said(&c)
            .iter()
            .any(|w| w.contains("drain_s = 60: stopping can take 82 s")
                && w.contains("TimeoutStopSec=55")),
        "{:?}",
        said(&c)
    );
}

/// Hidden files in the profiles folder are not profiles: an editor's lock (`.#pbx.toml`, a
/// dangling link) or a copy's resource fork stopped every reload and restart with an error
/// about a file `ls` does not show.
#[test]
fn hidden_files_in_the_profiles_folder_are_left_alone() {
    let dir = write_tree(GATEWAY, &standard_profiles());
    let profiles = dir.path().join("profiles");
    std::os::unix::fs::symlink("user@host.1234:1700000000", profiles.join(".#pbx.toml")).unwrap();
    std::fs::write(profiles.join("._carrier-a.toml"), b"\x00\x05\x16\x07\xff").unwrap();
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.profiles.len(), 3);
}

/// What peers are told to reach us at must reach us: a port (the `listen` form, an easy
/// slip) made every Via and Contact unreachable, and `0.0.0.0` told peers to put the call
/// on hold. Both loaded before.
#[test]
fn an_advertised_address_must_reach_this_host() {
    for (bad, why) in [
        ("203.0.113.5:5060", "without a port"),
        ("0.0.0.0", "reaches no one in particular"),
        ("224.0.0.1", "reaches no one in particular"),
        ("sip.example.com:5060", "without a port"),
        ("[192.0.2.7]", "without a port"),
        ("::ffff:0.0.0.0", "reaches no one in particular"),
    ] {
        let text = load_errors(
            &GATEWAY.replace(
                "advertise = \"127.0.0.1\"",
                &format!("advertise = \"{bad}\""),
            ),
            &standard_profiles(),
        );
        assert!(text.contains(why), "{bad}: {text}");
    }
    let text = load_errors(
        &format!("{GATEWAY}\n[media]\nadvertise = \"0.0.0.0\"\n"),
        &standard_profiles(),
    );
    assert!(
        text.contains("[media] advertise 0.0.0.0 reaches no one"),
        "{text}"
    );
    // Nor `::`: relay sockets are bound to one address, never the wildcard (an IPv4-mapped
    // sender on one is then an IPv6 packet posing as IPv4, which the relay drops).
    let text = load_errors(
        &format!("{GATEWAY}\n[media]\nadvertise = \"::\"\n"),
        &standard_profiles(),
    );
    assert!(
        text.contains("[media] advertise :: reaches no one"),
        "{text}"
    );
    for good in [
        "sbc.example.com",
        "2001:db8::5",
        "[2001:db8::5]",
        "192.0.2.7",
    ] {
        let gw = GATEWAY.replace(
            "advertise = \"127.0.0.1\"",
            &format!("advertise = \"{good}\""),
        );
        assert!(load_tree(&gw, &standard_profiles()).is_ok(), "{good}");
    }
    // The relay's and the call-back service's address is the bracketed IPv6 one (not the
    // 127.0.0.1 fallback, nor a service turned off), and an anchoring profile loads.
    let gw = GATEWAY.replace("advertise = \"127.0.0.1\"", "advertise = \"[2001:db8::5]\"");
    let mut ps = standard_profiles();
    ps[1].1.push_str("[media]\nanchor = true\n");
    let cfg = load_tree(&gw, &ps).unwrap_or_else(|e| panic!("{e}"));
    let v6: std::net::IpAddr = "2001:db8::5".parse().unwrap();
    assert_eq!(cfg.media_ip, v6);
    assert_eq!(cfg.callback.listen.map(|a| a.ip()), Some(v6));
}

/// Two even/odd pairs are the smallest range (a stream takes one per leg); port 0 is no port
/// anywhere an address is given; `user_agent = ""` is none, as the design's CONFIG.md says.
#[test]
fn small_ranges_port_zero_and_an_empty_user_agent() {
    let two = load_tree(
        &format!("{GATEWAY}\n[media]\nports = \"20000-20003\"\n"),
        &standard_profiles(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(two.media_ports, (20000, 20003));
    for one in ["20000-20001", "20001-20004"] {
        let text = load_errors(
            &format!("{GATEWAY}\n[media]\nports = \"{one}\"\n"),
            &standard_profiles(),
        );
        assert!(
            text.contains("at least two even/odd pairs"),
            "{one}: {text}"
        );
    }
    let text = load_errors(
        &format!("{GATEWAY}\n[metrics]\nlisten = \"127.0.0.1:0\"\n"),
        &standard_profiles(),
    );
    assert!(text.contains("port 0 is no port"), "{text}");
    let text = load_errors(
        &GATEWAY.replace("udp:127.0.0.1:5060", "udp:127.0.0.1:0"),
        &standard_profiles(),
    );
    assert!(text.contains("port 0 is no port"), "{text}");
    let mut ps = standard_profiles();
    ps[1].1.push_str("[headers]\nuser_agent = \"\"\n");
    let cfg = load_tree(GATEWAY, &ps).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cfg.profile(&PeerName("carrier-a".into()))
            .unwrap()
            .headers
            .user_agent
            .is_none()
    );
}

/// An empty `listen` is reported at the list itself, not at 1:1.
#[test]
fn an_empty_listen_is_located() {
    let text = load_errors(
        &GATEWAY.replace(
            "listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]",
            "listen = []",
        ),
        &standard_profiles(),
    );
    assert!(
        text.contains("gateway.toml:4:10: [sip] listen must name at least one address"),
        "{text}"
    );
}

/// The host's addresses the relay refuses are read at load: no loopback (judged by where
/// the gateway is), none twice, IPv4 as IPv4; none from texts, whose loads are replayed.
#[test]
fn the_hosts_addresses_are_read_at_load_without_loopback() {
    let dir = write_tree(GATEWAY, &standard_profiles());
    let path = dir.path().join("gateway.toml");
    let cfg = Config::load(&path).unwrap();
    // (Read once: an interface's addresses may change between two reads.)
    let ips = &cfg.host_ips;
    assert!(
        ips.iter()
            .all(|ip| !ip.is_loopback() && ip.to_canonical() == *ip)
    );
    assert!(ips.windows(2).all(|w| w[0] < w[1]), "each once: {ips:?}");
    // A host whose addresses cannot be listed says so.
    let unlisted = cfg
        .warnings
        .iter()
        .any(|w| w.to_string().contains("cannot list"));
    assert_eq!(unlisted, super::net::host_ips().is_err());
    let texts: Vec<_> = standard_profiles()
        .into_iter()
        .map(|(n, t)| (dir.path().join(format!("profiles/{n}.toml")), t))
        .collect();
    let replayed = Config::from_texts(&path, GATEWAY, &texts).unwrap();
    assert!(replayed.host_ips.is_empty());
}

/// The peer index answers what a scan of every profile's `match` does: the longest
/// prefix, IPv4 and IPv6 apart, a profile's `address`
/// outside its `match` an address but no source.
#[test]
fn the_peer_index_finds_what_a_scan_finds() {
    let peer = |name: &str, addr: &str, nets: &[&str]| {
        let nets: Vec<String> = nets.iter().map(|n| format!("\"{n}\"")).collect();
        format!(
            "name = \"{name}\"\nrole = \"trunk\"\naddress = \"udp:{addr}:5060\"\nmatch = [{}]\n",
            nets.join(", ")
        )
    };
    let mut ps = standard_profiles();
    ps.push(("wide", peer("wide", "10.0.0.1", &["10.0.0.0/8"])));
    ps.push(("mid-a", peer("mid-a", "10.1.0.2", &["10.1.0.0/16"])));
    ps.push(("host", peer("host", "10.1.2.3", &["10.1.2.3/32"])));
    ps.push((
        "v6",
        peer("v6", "[2001:db8::1]", &["2001:db8::/32", "192.0.2.0/24"]),
    ));
    ps.push(("sbc", peer("sbc", "198.51.100.7", &["203.0.113.0/24"])));
    let cfg = load_tree(GATEWAY, &ps).unwrap();
    let scan = |ip: IpAddr| {
        cfg.profiles
            .values()
            .flat_map(|p| p.matches.iter().map(move |n| (n, p)))
            .filter(|(n, _)| n.contains(&ip))
            .max_by_key(|(n, p)| (n.prefix_len(), std::cmp::Reverse(p.name.clone())))
            .map(|(_, p)| p.name.as_str().to_owned())
    };
    for ip in [
        "10.1.2.3",
        "10.1.2.4",
        "10.1.9.9",
        "10.2.0.1",
        "11.0.0.1",
        "2001:db8::9",
        "2001:db9::1",
        "192.0.2.77",
        "127.0.0.3",
        "203.0.113.5",
        "198.51.100.7",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        let found = cfg.peer_for_source(ip).map(|p| p.name.as_str().to_owned());
        assert_eq!(found, scan(ip), "{ip}");
        assert_eq!(cfg.is_peer_source(ip), found.is_some(), "{ip}");
    }
    let at = |ip: &str| {
        cfg.peer_for_source(ip.parse().unwrap())
            .map(|p| p.name.as_str())
    };
    assert_eq!(at("10.1.2.3"), Some("host"));
    assert_eq!(at("10.1.7.7"), Some("mid-a"));
    assert_eq!(at("10.9.9.9"), Some("wide"));
    assert_eq!(at("::ffff:192.0.2.1"), Some("v6"));
    assert!(cfg.is_peer_address("198.51.100.7".parse().unwrap()));
    assert!(!cfg.is_peer_source("198.51.100.7".parse().unwrap()));
    assert!(!cfg.is_peer_address("203.0.113.5".parse().unwrap()));
    // A clone's index is its own, built from what it holds.
    let mut fewer = cfg.clone();
    fewer.profiles.retain(|n, _| n.as_str() != "host");
    assert_eq!(
        fewer
            .peer_for_source("10.1.2.3".parse().unwrap())
            .map(|p| p.name.as_str()),
        Some("mid-a")
    );
}

/// A peer's `address` and `[sip] front` must name one host: sent to, 0.0.0.0 is this host
/// (the gateway itself at the shipped ports) and a multicast or broadcast address no one
/// peer. Before, they were accepted and failed at call time.
#[test]
fn a_peer_or_front_address_must_name_one_host() {
    for bad in [
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "[::]",
        "[ff02::1]",
    ] {
        let mut ps = standard_profiles();
        ps[2].1 = ps[2].1.replace(
            "address = \"udp:127.0.0.4:5060\"",
            &format!("address = \"udp:{bad}:5060\""),
        );
        let text = load_errors(GATEWAY, &ps);
        assert!(
            text.contains("carrier-b.toml:3:11: address") && text.contains("no one host"),
            "{bad}: {text}"
        );
        let front = GATEWAY.replace(
            "advertise = \"127.0.0.1\"",
            &format!("advertise = \"127.0.0.1\"\nfront = \"udp:{bad}:5060\""),
        );
        let text = load_errors(&front, &standard_profiles());
        assert!(
            text.contains("[sip] front") && text.contains("no one host"),
            "{bad}: {text}"
        );
    }
}

/// A route prefix takes `+` only first: `86+` (for `+86`) matches no number, and the calls
/// meant for the route would quietly take a later one.
#[test]
fn a_route_prefix_takes_plus_only_first() {
    let gw = |prefix: &str| GATEWAY.replace("prefix = \"+86\"", &format!("prefix = \"{prefix}\""));
    for good in ["+86", "86", "*21#", "+"] {
        assert!(load_tree(&gw(good), &standard_profiles()).is_ok(), "{good}");
    }
    for bad in ["86+", "+8+6", "++86", "8a"] {
        let text = load_errors(&gw(bad), &standard_profiles());
        assert!(
            text.contains("must be digits, * or #, optionally after +"),
            "{bad}: {text}"
        );
    }
}

/// A load refused for its errors says its warnings too, after them: the one that explains
/// an error (a profile named `.TOML`, not read, is the unknown peer a route names) is not
/// lost. Before, only the errors were said.
#[test]
fn a_refused_load_says_its_warnings_after_its_errors() {
    let dir = write_tree(GATEWAY, &standard_profiles());
    let profiles = dir.path().join("profiles");
    std::fs::rename(
        profiles.join("carrier-b.toml"),
        profiles.join("carrier-b.TOML"),
    )
    .unwrap();
    let errs = Config::load(&dir.path().join("gateway.toml")).unwrap_err();
    let said: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
    assert!(said[0].contains("unknown peer \"carrier-b\""), "{said:?}");
    assert!(
        said.iter()
            .any(|w| w.contains("carrier-b.TOML") && w.contains("warning: not read")),
        "{said:?}"
    );
    assert_eq!(errs.errors(), said.len() - 1, "{said:?}");
}

/// An unknown peer's missing profile is named in the folder `profiles` names. Before, the
/// message said `profiles/NAME.toml` whatever the folder.
#[test]
fn an_unknown_peer_is_looked_for_in_the_configured_folder() {
    let dir = tempfile::tempdir().unwrap();
    let gw = (GATEWAY.replace("to = \"pbx\"", "to = \"nobody\""))
        .replace("profiles = \"profiles\"", "profiles = \"peers\"");
    std::fs::write(dir.path().join("gateway.toml"), gw).unwrap();
    std::fs::create_dir(dir.path().join("peers")).unwrap();
    for (name, text) in standard_profiles() {
        std::fs::write(dir.path().join("peers").join(format!("{name}.toml")), text).unwrap();
    }
    let text = Config::load(&dir.path().join("gateway.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("route to unknown peer \"nobody\" (no peers/nobody.toml)"),
        "{text}"
    );
}

/// A profile's own key appended after its last section is said to have been read as that
/// section's, where it went; a key misspelt in a section is not.
#[test]
fn a_profile_key_after_a_section_says_where_it_was_read() {
    let mut ps = standard_profiles();
    ps[1]
        .1
        .push_str("[headers]\npass = [\"X-Billing\"]\nring_timeout_s = 60\nstirp = []\n");
    let text = load_errors(GATEWAY, &ps);
    assert!(
        text.contains("unknown field `ring_timeout_s`")
            && text.contains("(read as a key of [headers]: a key of the file's own goes above"),
        "{text}"
    );
    assert_eq!(
        text.matches("read as a key of").count(),
        1,
        "not the misspelt one: {text}"
    );
}

/// `allow = []` says the peer takes no method within a call, which turns off its UPDATE,
/// INFO and probes: warned of, as a list left empty by mistake.
#[test]
fn an_empty_allow_list_is_warned_of() {
    let mut ps = standard_profiles();
    ps[1].1.push_str("[sip]\nallow = []\n");
    let cfg = load_tree(GATEWAY, &ps).unwrap_or_else(|e| panic!("{e}"));
    let said = warnings(&cfg);
    assert!(
        said.iter()
            .any(|w| w.contains("carrier-a.toml") && w.contains("allow = []")),
        "{said:?}"
    );
}

/// A route after one that takes every call it would (the same callers or all of them, a
/// prefix its own starts with) is never taken: said, with which route takes its calls.
/// Before, `check` said ok and the calls went to the earlier route's peers.
#[test]
fn a_route_an_earlier_one_shadows_is_said_to_be_dead() {
    let with = |extra: &str| {
        let cfg = load_tree(&format!("{GATEWAY}{extra}"), &standard_profiles())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut said = warnings(&cfg);
        said.retain(|w| w.contains("never taken"));
        said
    };
    // Behind `from = "*"` with no prefix, and behind the pbx's +86 for a longer prefix.
    for dead in [
        "[[route]]\nfrom = \"pbx\"\nprefix = \"+44\"\nto = \"carrier-b\"\n",
        "[[route]]\nfrom = \"carrier-a\"\nto = \"carrier-b\"\n",
    ] {
        let said = with(dead);
        assert_eq!(said.len(), 1, "{dead}: {said:?}");
        assert!(said[0].contains("number 2 above"), "{}", said[0]);
    }
    let gw = GATEWAY.replacen(
        "[[route]]\nfrom = \"*\"",
        "[[route]]\nfrom = \"carrier-a\"",
        1,
    );
    let load = |text: &str| {
        let cfg = load_tree(text, &standard_profiles()).unwrap_or_else(|e| panic!("{e}"));
        (cfg.warnings.iter())
            .filter(|w| w.to_string().contains("never taken"))
            .count()
    };
    // The pbx's +861 behind its +86: dead; carrier-b's, or the pbx's +44: taken.
    assert_eq!(
        load(&format!(
            "{gw}[[route]]\nfrom = \"pbx\"\nprefix = \"+861\"\nto = \"carrier-b\"\n"
        )),
        1
    );
    assert_eq!(
        load(&format!(
            "{gw}[[route]]\nfrom = \"carrier-b\"\nprefix = \"+861\"\nto = \"carrier-b\"\n"
        )),
        0
    );
    assert_eq!(
        load(&format!(
            "{gw}[[route]]\nfrom = \"pbx\"\nprefix = \"+44\"\nto = \"carrier-b\"\n"
        )),
        0
    );
}

/// A reload's departed sources are only those the new configuration no longer hears: a
/// network added to a peer, a peer renamed, or one whose network another's `match` still
/// holds leave nothing behind; a network removed is listed, once. Before, any change to a
/// peer's `match` listed all its old networks and its address, each datagram from a
/// stranger was checked against them, and they stayed while calls were up.
#[test]
fn only_sources_a_reload_no_longer_hears_are_departed() {
    let old = crate::call::tests::config();
    let name = |n: &str| PeerName(n.into());
    let edited = |edit: &dyn Fn(&mut Profile)| {
        let mut c = old.clone();
        let mut p = (*c.profiles[&name("carrier-a")]).clone();
        edit(&mut p);
        c.profiles.insert(p.name.clone(), Arc::new(p));
        c
    };
    let wider = edited(&|p| p.matches.push("192.0.2.0/24".parse().unwrap()));
    assert!(wider.moved_sources_from(&old).is_empty());
    assert!(!wider.peers_moved_from(&old));
    // Renamed: the same sources under another name.
    let mut renamed = old.clone();
    let mut p = (*renamed.profiles.remove(&name("carrier-a")).unwrap()).clone();
    p.name = name("carrier-x");
    renamed.profiles.insert(p.name.clone(), Arc::new(p));
    assert!(renamed.moved_sources_from(&old).is_empty());
    // One network taken away, the address still another's source: that network only.
    let extra: ipnet::IpNet = "198.51.100.0/24".parse().unwrap();
    let with_extra = edited(&|p| p.matches.push(extra));
    let moved = old.moved_sources_from(&with_extra);
    assert_eq!(moved, vec![extra]);
    assert!(old.peers_moved_from(&with_extra));
    // Removed outright: its networks and address, each once.
    let mut gone = old.clone();
    gone.profiles.remove(&name("carrier-a"));
    let moved = gone.moved_sources_from(&old);
    let carrier: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    assert_eq!(
        moved.iter().filter(|n| n.contains(&carrier)).count(),
        1,
        "{moved:?}"
    );
}

#[test]
fn recordings_keep_512_mib_free_by_default_and_the_floor_is_bounded() {
    let load = |extra: &str| load_tree(&format!("{GATEWAY}{extra}"), &standard_profiles());
    assert_eq!(load("").unwrap().recording_min_free, 512 << 20);
    let c = load("\n[recording]\nmin_free_mb = 0\n").unwrap();
    assert_eq!(c.recording_min_free, 0);
    let text = load("\n[recording]\nmin_free_mb = 1048577\n")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("[recording] min_free_mb must be 0..=1048576"),
        "{text}"
    );
}

const LISTEN: &str = "listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]";

/// IPv6 as operators write it: an advertised address in any spelling is written in its
/// one printed form (peers echo our Via host so; `2001:0db8::10` dropped every answer to
/// our requests as someone else's), and a link-local address, whose zone nothing carries,
/// is refused with the reason, a zone written `%eth0` too.
#[test]
fn ipv6_addresses_are_written_in_one_form_and_link_local_ones_refused() {
    let load = |from: &str, to: &str| load_tree(&GATEWAY.replace(from, to), &standard_profiles());
    let c = load(
        "advertise = \"127.0.0.1\"",
        "advertise = \"2001:0db8:0:0::10\"",
    )
    .unwrap();
    assert_eq!(c.advertise, "2001:db8::10");
    let c = load(
        "advertise = \"127.0.0.1\"",
        "advertise = \"[2001:0db8::10]\"",
    )
    .unwrap();
    assert_eq!(c.advertise, "[2001:db8::10]");
    for (from, to) in [
        ("advertise = \"127.0.0.1\"", "advertise = \"fe80::1\""),
        (LISTEN, "listen = [\"udp:[fe80::1%2]:5060\"]"),
    ] {
        let text = load(from, to).unwrap_err().to_string();
        assert!(text.contains("link-local"), "{text}");
    }
    let text = load(LISTEN, "listen = [\"udp:[fe80::1%eth0]:5060\"]")
        .unwrap_err()
        .to_string();
    assert!(text.contains("zone"), "{text}");
}

/// A UDP peer of the family no UDP listener has is said at load: every request to it would
/// leave by a socket of the other family and fail, said only in the send failures'
/// summary. A listener on `[::]` takes both families.
#[test]
fn a_udp_peer_no_udp_listener_can_reach_is_a_warning() {
    let v6 = "name = \"carrier-a\"\nrole = \"trunk\"\naddress = \"udp:[2001:db8::7]:5060\"\n";
    let mut profiles = standard_profiles();
    profiles[1].1 = v6.to_string();
    let said = |gateway: &str| -> Vec<String> { warnings(&load_tree(gateway, &profiles).unwrap()) };
    let warned = |w: &Vec<String>| {
        w.iter()
            .any(|w| w.contains("no UDP address in [sip] listen"))
    };
    assert!(warned(&said(GATEWAY)), "{:?}", said(GATEWAY));
    let dual = GATEWAY.replace(LISTEN, "listen = [\"udp:[::]:5060\"]");
    assert!(!warned(&said(&dual)), "{:?}", said(&dual));
    // Behind a front every request goes to the front: no peer's family is ours to judge.
    let fronted = GATEWAY.replace(
        "advertise = \"127.0.0.1\"",
        "advertise = \"127.0.0.1\"\nfront = \"udp:127.0.0.10:5060\"",
    );
    assert!(!warned(&said(&fronted)), "{:?}", said(&fronted));
}

/// `[sip] ping_s` and `ping_failures`: read into the profile, off by default, each out of
/// range refused at its place, and a ping the peer's `allow` forbids (OPTIONS left out)
/// refused: the peer would be taken for dead.
#[test]
fn pings_are_validated_and_read() {
    let mut ps = standard_profiles();
    ps[1].1.push_str("[sip]\nping_s = 4\nping_failures = 11\n");
    ps[2]
        .1
        .push_str("[sip]\nallow = [\"INVITE\", \"ACK\", \"BYE\"]\nping_s = 30\n");
    let errs = load_errors(GATEWAY, &ps);
    for want in [
        "carrier-a.toml:6:10: [sip] ping_s must be 0 (off) or 5..=3600",
        "carrier-a.toml:7:17: [sip] ping_failures must be 1..=10",
        "[sip] ping_s: the peer is pinged with OPTIONS, which `allow` leaves out",
    ] {
        assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
    }
    let mut ps = standard_profiles();
    ps[1].1.push_str("[sip]\nping_s = 30\nping_failures = 3\n");
    ps[2].1.push_str("[sip]\nping_failures = 2\n");
    let dir = write_tree(GATEWAY, &ps);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let p = |n: &str| cfg.profile(&PeerName(n.into())).unwrap().ping;
    assert_eq!(
        p("carrier-a"),
        Some(crate::config::Ping {
            every: Duration::from_secs(30),
            failures: 3
        })
    );
    assert_eq!(p("pbx"), None, "not pinged unless asked");
    assert_eq!(p("carrier-b"), None, "ping_failures alone pings nothing");
    let w = warnings(&cfg);
    assert!(
        (w.iter()).any(|w| w.contains("ping_failures without ping_s: the peer is not pinged")),
        "{w:?}"
    );
}

/// Profiles that share an `address` outside every `match` (trunk-group variants on one
/// SBC): the peer at that address is the first name in order, in every configuration
/// alike. Before, it was whichever the profiles' map (its order random per map) gave first:
/// a response's ISUP judged by one profile's trust or another's, changing at each reload.
#[test]
fn profiles_sharing_an_address_outside_every_match_name_the_first_in_order() {
    for _ in 0..16 {
        let mut cfg = crate::call::tests::config();
        let base = cfg.profiles[&PeerName("carrier-a".into())].clone();
        for name in ["tg-b", "tg-a", "tg-c"] {
            let mut p = (*base).clone();
            p.name = PeerName(name.into());
            p.matches.clear();
            p.address = crate::sip::Target::udp("127.0.0.50:5060".parse().unwrap());
            cfg.profiles.insert(p.name.clone(), Arc::new(p));
        }
        let at = cfg.peer_at("127.0.0.50".parse().unwrap());
        assert_eq!(at.map(|p| &*p.0), Some("tg-a"));
    }
}

/// Behind a front, a call that may ring longer than the shipped front lets an INVITE ring
/// (300 s) is warned of: the front would cut it, recorded as the caller's CANCEL. Without
/// a front, or ringing no longer, no warning. A review found `check` silent on it.
#[test]
fn behind_a_front_a_ring_longer_than_the_fronts_is_warned_of() {
    let behind = GATEWAY.replace(
        "advertise = \"127.0.0.1\"",
        "advertise = \"127.0.0.1\"\nfront = \"udp:127.0.0.10:5060\"",
    );
    let warned = |gateway: &str| {
        let cfg = load_tree(gateway, &standard_profiles()).unwrap_or_else(|e| panic!("{e}"));
        (cfg.warnings.iter()).any(|w| w.to_string().contains("ring_timeout_s of 400 s behind"))
    };
    let long = |g: &str| g.replace("ring_timeout_s = 30", "ring_timeout_s = 400");
    assert!(warned(&long(&behind)));
    assert!(!warned(&behind));
    assert!(!warned(&long(GATEWAY)));
}

/// More trunks reached over TCP than `[protect] max_tcp_total` keeps for the gateway's own
/// connections (a sixteenth) is warned of: peers' connections filling the rest would leave
/// some trunks unreachable. A review found `check` silent on it.
#[test]
fn more_tcp_trunks_than_the_own_reserve_is_warned_of() {
    let warned = |total: u32| {
        let gateway = GATEWAY.replace(
            "[cdr]",
            &format!("[protect]\nmax_tcp_total = {total}\n\n[cdr]"),
        );
        let mut ps = standard_profiles();
        for p in &mut ps[1..] {
            p.1 = p.1.replace("udp:", "tcp:");
        }
        let cfg = load_tree(&gateway, &ps).unwrap_or_else(|e| panic!("{e}"));
        (cfg.warnings.iter()).any(|w| w.to_string().contains("2 peers are reached over tcp:"))
    };
    // 16 keeps 1 for our own: two tcp: trunks are too many; 32 keeps 2.
    assert!(warned(16));
    assert!(!warned(32));
}
