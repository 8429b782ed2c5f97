use super::*;
use crate::auth::RegisterParams;
use crate::config::PeerName;

const SECRET: &str = "pa55-Wörd\"x";

const GATEWAY: &str = r#"
[sip]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5070"]
advertise = "127.0.0.1"

[[route]]
to = "itsp"
"#;

const BASE: &str = "name = \"itsp\"\nrole = \"trunk\"\naddress = \"udp:127.0.0.3:5060\"\nmatch = [\"127.0.0.0/29\"]\ndomain = \"sip.itsp.example\"\n";

fn tree(gateway: &str, profile: &str, mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), gateway).unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    let p = dir.path().join("profiles/itsp.toml");
    std::fs::write(&p, format!("{BASE}{profile}")).unwrap();
    set_mode(&p, mode);
    dir
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

fn load(dir: &tempfile::TempDir) -> Result<Config, String> {
    Config::load(&dir.path().join("gateway.toml")).map_err(|e| e.to_string())
}

fn itsp(cfg: &Config) -> &Profile {
    cfg.profile(&PeerName("itsp".into())).unwrap()
}

fn secret_inline() -> String {
    format!(
        "[auth]\nusername = \"4420001\"\npassword = \"{}\"\n",
        SECRET.replace('"', "\\\"")
    )
}

#[test]
fn profiles_without_the_sections_stay_valid() {
    let dir = tree(GATEWAY, "", 0o600);
    let l = load(&dir).unwrap();
    assert!(itsp(&l).auth.is_none() && itsp(&l).register.is_none());
    assert!(l.warnings.is_empty());
}

#[test]
fn auth_and_register_with_defaults() {
    let dir = tree(
        GATEWAY,
        &format!("{}\n[register]\nenabled = true\n", secret_inline()),
        0o600,
    );
    let l = load(&dir).unwrap();
    let c = itsp(&l).auth.clone().unwrap();
    assert_eq!(c.username, "4420001");
    assert_eq!(c.password, Secret::new(SECRET));
    assert_eq!(c.realm, None);
    assert_eq!(c.algorithms, Algorithm::ALL.to_vec());
    let policy = itsp(&l).register.as_ref().unwrap();
    assert_eq!(
        policy,
        &RegisterPolicy {
            expires: Duration::from_secs(3600),
            user: None,
            contact_user: "4420001".into(),
            transport: Transport::Udp,
        }
    );
    assert!(l.warnings.is_empty(), "mode 600 is private");
    // Nothing that prints the configuration prints the password.
    let debug = format!("{l:?}");
    assert!(!debug.contains("pa55"), "{debug}");

    // What the engine builds from it.
    let port = local_port(&l.listen, policy.transport, &l.advertise).unwrap();
    let p = RegisterParams::for_profile(itsp(&l), policy, Some(&c), &l.advertise, port);
    assert_eq!(p.registrar, "sip:sip.itsp.example");
    assert_eq!(p.aor, "sip:4420001@sip.itsp.example");
    assert_eq!(p.contact, "sip:4420001@127.0.0.1:5060");
    assert_eq!(p.sent_by, "127.0.0.1:5060");
    assert_eq!(p.target.addr, "127.0.0.3:5060".parse().unwrap());
}

/// A carrier whose authentication id is not the number registered (an account name, an
/// address-shaped id): `[register] user` is the address of record's user, the username
/// still answers the challenges. Before, the address of record was always the username,
/// and one with an `@` was refused: such a trunk could not be registered at all.
#[test]
fn the_registered_user_may_differ_from_the_username() {
    let dir = tree(
        GATEWAY,
        "[auth]\nusername = \"acct-7@itsp.example\"\npassword = \"p\"\n\n[register]\nenabled = true\nuser = \"+4420001\"\n",
        0o600,
    );
    let l = load(&dir).unwrap();
    let c = itsp(&l).auth.clone().unwrap();
    assert_eq!(c.username, "acct-7@itsp.example");
    let policy = itsp(&l).register.as_ref().unwrap();
    let p = RegisterParams::for_profile(itsp(&l), policy, Some(&c), "127.0.0.1", 5060);
    assert_eq!(p.aor, "sip:+4420001@sip.itsp.example");
    assert_eq!(
        p.contact, "sip:trunkgate@127.0.0.1:5060",
        "no contact user from the username"
    );
    let bad = tree(
        GATEWAY,
        "[register]\nenabled = true\nuser = \"a b\"\n",
        0o600,
    );
    let e = load(&bad).unwrap_err();
    assert!(
        e.contains("itsp.toml:8:8: [register] user \"a b\" must be a SIP URI user part"),
        "{e}"
    );
}

#[test]
fn every_key_set() {
    let dir = tree(
        GATEWAY,
        "[auth]\nusername = \"u\"\npassword = \"p\"\nrealm = \"itsp.example\"\nalgorithm = [\"SHA-256\", \"md5\"]\nin_dialog = \"always\"\n\n[register]\nenabled = true\nexpires_s = 600\ncontact_user = \"trunk-1\"\ntransport = \"tcp\"\n",
        0o600,
    );
    let l = load(&dir).unwrap();
    let c = itsp(&l).auth.clone().unwrap();
    assert_eq!(c.realm.as_deref(), Some("itsp.example"));
    assert_eq!(c.algorithms, vec![Algorithm::Sha256, Algorithm::Md5]);
    assert_eq!(c.in_dialog, crate::auth::InDialog::Always);
    let policy = itsp(&l).register.as_ref().unwrap();
    assert_eq!(policy.expires, Duration::from_secs(600));
    assert_eq!(policy.contact_user, "trunk-1");
    assert_eq!(policy.transport, Transport::Tcp);
    let p = RegisterParams::for_profile(itsp(&l), policy, Some(&c), "127.0.0.1", 5070);
    assert_eq!(p.registrar, "sip:sip.itsp.example;transport=tcp");
    assert_eq!(p.contact, "sip:trunk-1@127.0.0.1:5070;transport=tcp");
    assert_eq!(p.target.transport, Transport::Tcp);
    // Registration without [auth] (IP-authenticated registrar) and [register] disabled.
    let dir = tree(GATEWAY, "[register]\nenabled = true\n", 0o600);
    let l = load(&dir).unwrap();
    assert!(itsp(&l).auth.is_none());
    assert_eq!(
        itsp(&l).register.as_ref().unwrap().contact_user,
        "trunkgate"
    );
    let dir = tree(
        GATEWAY,
        "[register]\nenabled = false\nexpires_s = 600\n",
        0o600,
    );
    let off = load(&dir).unwrap();
    assert!(itsp(&off).register.is_none());
    assert!(
        !off.warnings
            .iter()
            .any(|w| w.to_string().contains("[register]"))
    );
    // Without `enabled`, the section registers nothing either, and says so. Before, it was
    // taken silently.
    let dir = tree(GATEWAY, "[register]\nexpires_s = 600\n", 0o600);
    let unset = load(&dir).unwrap();
    assert!(itsp(&unset).register.is_none());
    let said: Vec<String> = unset.warnings.iter().map(ToString::to_string).collect();
    assert!(
        said.iter()
            .any(|w| w.contains("warning: [register] without `enabled = true`")),
        "{said:?}"
    );
}

#[test]
fn errors_are_located_and_never_quote_the_password() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[auth]\nusername = \"u\"\npassword = \"pa55secret\"\npassword_file = \"x\"\n",
            "itsp.toml:9:17:",
            "both password and password_file",
        ),
        (
            "[auth]\nusername = \"u\"\n",
            "itsp.toml:7:12:",
            "needs password or password_file",
        ),
        (
            "[auth]\nusername = \"u\"\npassword = 20250101\n",
            "itsp.toml:8:12:",
            "must be a string",
        ),
        (
            "[auth]\nusername = \"u\"\npassword = \"\"\n",
            "itsp.toml:8:12:",
            "non-empty",
        ),
        (
            "[auth]\nusername = \"u\"\npassword = \"pa55secret\"\nalgorithm = \"SHA-512\"\n",
            "itsp.toml:9:13:",
            "\"SHA-512\" must be one of",
        ),
        (
            "[auth]\nusername = \"u\"\npasword = \"pa55secret\"\n",
            "itsp.toml:8:1:",
            "unknown field `pasword`",
        ),
        (
            // A password written in the wrong key names no file: its line is given, never
            // its value.
            "[auth]\nusername = \"u\"\npassword_file = \"pa55-in-the-wrong-key\"\n",
            "itsp.toml:8:17:",
            "[auth] password_file names no file",
        ),
        // Not even as a number (toml's own type error would quote it).
        (
            "[auth]\nusername = \"u\"\npassword_file = 20250101\n",
            "itsp.toml:8:17:",
            "[auth] password_file must be a file name, quoted",
        ),
        (
            "[auth]\nusername = \"u\"\npassword = \"pa55\\qsecret\"\n",
            "itsp.toml:8:",
            "escape",
        ),
        (
            "[auth]\nusername = \"u\"\npassword = \"pa55secret\n",
            "itsp.toml:8:",
            "",
        ),
        (
            "[register]\nenabled = true\nexpires_s = 10\n",
            "itsp.toml:8:13:",
            "expires_s must be 60..=86400",
        ),
        (
            "[register]\nenabled = true\ntransport = \"tls\"\n",
            "itsp.toml:8:13:",
            "transport \"tls\" must be",
        ),
        (
            "[register]\nenabled = true\ncontact_user = \"a b\"\n",
            "itsp.toml:8:16:",
            "contact_user \"a b\" must be a SIP URI user part",
        ),
        // Inbound requests to the contact are matched on the user part up to a `;`.
        (
            "[register]\nenabled = true\ncontact_user = \"a;b\"\n",
            "itsp.toml:8:16:",
            "contact_user \"a;b\" must be a SIP URI user part without ';'",
        ),
        (
            "[auth]\nusername = \"a b\"\npassword = \"pa55secret\"\n[register]\nenabled = true\n",
            "itsp.toml:7:12:",
            "username must be a SIP URI user part",
        ),
        (
            "[auth]\nusername = \"u\"\npassword = \"pa55secret\"\nin_dialog = \"sometimes\"\n",
            "itsp.toml:9:13:",
            "[auth] in_dialog \"sometimes\" must be \"challenged\" or \"always\"",
        ),
    ];
    for (profile, place, what) in cases {
        let dir = tree(GATEWAY, profile, 0o600);
        let e = load(&dir).unwrap_err();
        assert!(e.contains(place) && e.contains(what), "{profile}\n→ {e}");
        assert!(!e.contains("pa55") && !e.contains("20250101"), "{e}");
    }
    let only_udp = GATEWAY.replace(", \"tcp:127.0.0.1:5070\"", "");
    let dir = tree(
        &only_udp,
        "[register]\nenabled = true\ntransport = \"tcp\"\n",
        0o600,
    );
    // Where the transport comes from: `[register] transport`, else the profile's `address`.
    let e = load(&dir).unwrap_err();
    assert!(
        e.contains("itsp.toml:8:13: [register] over tcp needs a tcp address"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("profiles/itsp.toml"),
        format!(
            "{}[register]\nenabled = true\n",
            BASE.replace("udp:127", "tcp:127")
        ),
    )
    .unwrap();
    let e = load(&dir).unwrap_err();
    assert!(
        e.contains("itsp.toml:3:11: [register] over tcp needs a tcp address"),
        "{e}"
    );
    // A TCP peer at all: our Via and Contact toward it would name the UDP port.
    assert!(
        e.contains("itsp.toml:3:11: a tcp: address needs a tcp: address in [sip] listen"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("profiles/itsp.toml"),
        BASE.replace("udp:127", "tcp:127"),
    )
    .unwrap();
    let e = load(&dir).unwrap_err();
    assert!(e.contains("a tcp: address needs a tcp: address"), "{e}");
}

/// A gateway listening on TCP alone: a udp: peer is warned of (nothing can be sent to it;
/// one that only calls in over TCP works), and a front (reached over UDP) is an error.
/// Before, `check` said nothing and every message to them was dropped at run time, each
/// call timing out.
#[test]
fn a_udp_peer_or_front_needs_a_udp_listener() {
    let only_tcp = GATEWAY.replace("\"udp:127.0.0.1:5060\", ", "");
    let dir = tree(&only_tcp, "", 0o600);
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let warned: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        (warned.iter()).any(|w| w.contains(
            "itsp.toml:3:11: warning: a udp: address, and no udp: address in [sip] listen"
        )),
        "{warned:?}"
    );
    let fronted = only_tcp.replace("[sip]\n", "[sip]\nfront = \"udp:127.0.0.9:5060\"\n");
    let dir = tree(&fronted, "", 0o600);
    let e = load(&dir).unwrap_err();
    assert!(
        e.contains("[sip] front needs a udp: address in [sip] listen"),
        "{e}"
    );
    // With one, both load.
    let dir = tree(
        &fronted.replace("listen = [", "listen = [\"udp:127.0.0.1:5060\", "),
        "",
        0o600,
    );
    load(&dir).unwrap();
}

#[test]
fn password_file_is_read_relative_to_the_profile_and_checked() {
    let dir = tree(
        GATEWAY,
        "[auth]\nusername = \"u\"\npassword_file = \"secrets/itsp\"\n",
        0o644,
    );
    let secrets = dir.path().join("profiles/secrets");
    std::fs::create_dir(&secrets).unwrap();
    let f = secrets.join("itsp");
    std::fs::write(&f, "from-a-file\r\n").unwrap();
    set_mode(&f, 0o600);
    let l = load(&dir).unwrap();
    let c = itsp(&l).auth.clone().unwrap();
    assert_eq!(c.password, Secret::new("from-a-file"));
    assert!(
        l.warnings.is_empty(),
        "a readable profile without a password is fine: {:?}",
        l.warnings
    );

    std::fs::write(&f, "first-line\nsecond-line\n").unwrap();
    let e = load(&dir).unwrap_err();
    assert!(e.contains("must hold the password on one line"), "{e}");
    assert!(!e.contains("first-line"), "{e}");
    std::fs::write(&f, vec![b'x'; 5000]).unwrap();
    assert!(load(&dir).unwrap_err().contains("larger than 4096 bytes"));
    std::fs::write(&f, "").unwrap();
    assert!(load(&dir).unwrap_err().contains("one line"));
}

#[cfg(unix)]
#[test]
fn check_warns_about_world_readable_secrets() {
    let dir = tree(GATEWAY, &secret_inline(), 0o644);
    let l = load(&dir).unwrap();
    assert_eq!(l.warnings.len(), 1);
    let w = l.warnings[0].to_string();
    assert!(
        w.contains("itsp.toml:8:12: warning: this profile holds a password"),
        "{w}"
    );
    assert!(!w.contains("pa55"));

    let dir = tree(
        GATEWAY,
        "[auth]\nusername = \"u\"\npassword_file = \"pw\"\n",
        0o600,
    );
    let f = dir.path().join("profiles/pw");
    std::fs::write(&f, "x\n").unwrap();
    set_mode(&f, 0o604);
    let l = load(&dir).unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert!(
        l.warnings[0]
            .to_string()
            .contains("itsp.toml:8:17: warning: password_file")
    );
    set_mode(&f, 0o640);
    assert!(load(&dir).unwrap().warnings.is_empty());
}

#[test]
fn inbound_calls_to_the_registered_contact_belong_to_the_registering_peer() {
    // A second trunk claims a narrower network inside the ITSP's: by source alone it
    // would win.
    let dir = tree(
        &GATEWAY.replace("to = \"itsp\"", "to = [\"itsp\", \"other\"]"),
        "[auth]\nusername = \"4420001\"\npassword = \"p\"\n[register]\nenabled = true\n",
        0o600,
    );
    std::fs::write(
            dir.path().join("profiles/other.toml"),
            "name = \"other\"\nrole = \"trunk\"\naddress = \"udp:127.0.0.5:5060\"\nmatch = [\"127.0.0.5/32\"]\n",
        )
        .unwrap();
    let l = load(&dir).unwrap();
    let ip: IpAddr = "127.0.0.5".parse().unwrap();
    assert_eq!(l.peer_for_source(ip).unwrap().name.as_str(), "other");
    let by_contact = l
        .peer_for_contact(ip, "sip:4420001@127.0.0.1:5060;transport=udp")
        .unwrap();
    assert_eq!(by_contact.name.as_str(), "itsp");
    for other in [
        "sip:someone@127.0.0.1",
        "tel:+4420001",
        "sip:127.0.0.1",
        "4420001",
    ] {
        assert!(l.peer_for_contact(ip, other).is_none(), "{other}");
    }
    let outside: IpAddr = "127.0.0.9".parse().unwrap();
    assert!(
        l.peer_for_contact(outside, "sip:4420001@127.0.0.1")
            .is_none(),
        "only from inside the peer's own match networks"
    );
}
