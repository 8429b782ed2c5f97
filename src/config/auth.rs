//! `[auth]` and `[register]` of a profile: validation, the password (inline or from
//! `password_file`), and the warnings `check` prints about secrets other users can read.
//! No message here ever quotes a password.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::error::ConfigError;
use super::file::{AuthSection, ProfileFile};
use super::{Config, Listen, Profile};
use crate::auth::{Algorithm, Credentials, RegisterPolicy, Secret};
use crate::sip::Transport;

/// A password file larger than this is not a password file.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;
/// `[register] expires_s` bounds: registrars rarely accept less than a minute, and more than
/// a day leaves a dead gateway registered for too long.
const EXPIRES_RANGE: std::ops::RangeInclusive<u64> = 60..=86_400;
const DEFAULT_EXPIRES_S: u64 = 3600;
const DEFAULT_CONTACT_USER: &str = "trunkgate";

impl Config {
    /// The registering peer an inbound request belongs to when it is addressed to that
    /// peer's registered contact (the user of `request_uri`, a `sip:`/`sips:` URI, is its
    /// `contact_user`) and comes from inside its `match` networks: a registrar's calls arrive
    /// from whichever of its servers it likes, and the contact says which trunk they are for.
    /// `None`: decide by source alone ([`Config::peer_for_source`]).
    pub fn peer_for_contact(&self, source: IpAddr, request_uri: &str) -> Option<&Arc<Profile>> {
        let user = uri_user(request_uri)?;
        let mut owners = self.profiles.values().filter(|p| {
            p.register.as_ref().is_some_and(|r| r.contact_user == user)
                && p.matches.iter().any(|n| n.contains(&source))
        });
        let first = owners.next()?;
        // Two trunks registering the same contact user from overlapping networks: ambiguous,
        // so the source decides.
        if owners.next().is_some() {
            return None;
        }
        Some(first)
    }
}

/// The user part of a `sip:` or `sips:` URI (`sip:USER@host;params`).
fn uri_user(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.trim().split_once(':')?;
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return None;
    }
    let (user, _) = rest.split_once('@')?;
    // `user;password`-style or parameters in the user part are not ours to interpret.
    Some(user.split(';').next().unwrap_or(user))
}

/// The port of the first listener for a transport: where the registered contact points.
pub fn local_port(listen: &[Listen], transport: Transport) -> Option<u16> {
    listen
        .iter()
        .find(|l| l.transport == transport)
        .map(|l| l.addr.port())
}

/// Validates `[auth]` and `[register]` of one profile file: its credentials and the
/// registration to keep.
pub(super) fn peer_auth(
    file: &ProfileFile,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) -> (Option<Arc<Credentials>>, Option<RegisterPolicy>) {
    let at =
        |span: std::ops::Range<usize>, msg: String| ConfigError::at(path, text, span.start, msg);
    let credentials = file
        .auth
        .as_ref()
        .and_then(|a| credentials(a, path, text, errs, warns))
        .map(Arc::new);
    let Some(r) = &file.register else {
        return (credentials, None);
    };
    let expires = match &r.expires_s {
        Some(e) if EXPIRES_RANGE.contains(e.get_ref()) => Duration::from_secs(*e.get_ref()),
        Some(e) => {
            errs.push(at(
                e.span(),
                format!(
                    "[register] expires_s must be {}..={} seconds",
                    EXPIRES_RANGE.start(),
                    EXPIRES_RANGE.end()
                ),
            ));
            Duration::from_secs(DEFAULT_EXPIRES_S)
        }
        None => Duration::from_secs(DEFAULT_EXPIRES_S),
    };
    let contact_user = match &r.contact_user {
        Some(u) => {
            if !is_uri_user(u.get_ref()) {
                errs.push(at(
                    u.span(),
                    format!(
                        "[register] contact_user {:?} must be a SIP URI user part (letters, digits, -_.!~*'()&=+$,;?/)",
                        u.get_ref()
                    ),
                ));
            }
            u.get_ref().clone()
        }
        None => file
            .auth
            .as_ref()
            .map(|a| a.username.get_ref().clone())
            .filter(|u| is_uri_user(u))
            .unwrap_or_else(|| DEFAULT_CONTACT_USER.to_string()),
    };
    let transport = match &r.transport {
        Some(t) => match t.get_ref().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            other => {
                errs.push(at(
                    t.span(),
                    format!("[register] transport {other:?} must be \"udp\" or \"tcp\""),
                ));
                Transport::Udp
            }
        },
        None => super::parse_transport_addr(file.address.get_ref())
            .map(|(t, _)| t)
            .unwrap_or(Transport::Udp),
    };
    // The username is the user part of the address of record we register.
    if r.enabled
        && let Some(a) = &file.auth
        && !is_uri_user(a.username.get_ref())
    {
        errs.push(at(
            a.username.span(),
            "[auth] username must be a SIP URI user part to be registered with [register]".into(),
        ));
    }
    let register = r.enabled.then_some(RegisterPolicy {
        expires,
        contact_user,
        transport,
    });
    (credentials, register)
}

fn credentials(
    a: &AuthSection,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
    warns: &mut Vec<ConfigError>,
) -> Option<Credentials> {
    let at = |span: std::ops::Range<usize>, msg: &str| ConfigError::at(path, text, span.start, msg);
    let before = errs.len();
    let username = a.username.get_ref();
    if username.is_empty() || username.chars().any(char::is_control) {
        errs.push(at(
            a.username.span(),
            "[auth] username must be non-empty text without control characters",
        ));
    }
    let password = match (&a.password, &a.password_file) {
        (Some(_), Some(f)) => {
            errs.push(at(
                f.span(),
                "[auth] sets both password and password_file: keep one",
            ));
            None
        }
        (None, None) => {
            errs.push(at(
                a.username.span(),
                "[auth] needs password or password_file",
            ));
            None
        }
        // The messages below never quote the value: it is a secret.
        (Some(p), None) => match p.get_ref().as_str() {
            Some(s) if valid_password(s) => {
                if world_readable(path) {
                    warns.push(at(
                        p.span(),
                        "warning: this profile holds a password and every user can read it: chmod o-r it, or move the password to a password_file only the gateway can read",
                    ));
                }
                Some(Secret::new(s))
            }
            Some(_) => {
                errs.push(at(
                    p.span(),
                    "[auth] password must be non-empty and without control characters",
                ));
                None
            }
            None => {
                errs.push(at(p.span(), "[auth] password must be a string (quote it)"));
                None
            }
        },
        (None, Some(f)) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(f.get_ref());
            match read_password_file(&file) {
                Ok(s) => {
                    if world_readable(&file) {
                        warns.push(at(
                            f.span(),
                            &format!(
                                "warning: password_file {} is readable by every user: chmod 600 it",
                                file.display()
                            ),
                        ));
                    }
                    Some(s)
                }
                Err(m) => {
                    errs.push(at(
                        f.span(),
                        &format!("[auth] password_file {}: {m}", file.display()),
                    ));
                    None
                }
            }
        }
    };
    let realm = a
        .realm
        .as_ref()
        .map(|r| r.get_ref().clone())
        .filter(|r| !r.is_empty());
    let algorithms = match &a.algorithm {
        None => Algorithm::ALL.to_vec(),
        Some(list) => {
            let mut out = Vec::new();
            let names = match list.get_ref() {
                super::file::OneOrMany::One(s) => vec![s.clone()],
                super::file::OneOrMany::Many(v) => v.clone(),
            };
            for n in &names {
                match Algorithm::parse(n) {
                    Some(alg) if !out.contains(&alg) => out.push(alg),
                    Some(_) => {}
                    None => errs.push(at(
                        list.span(),
                        &format!(
                            "[auth] algorithm {n:?} must be one of \"SHA-256\", \"SHA-256-sess\", \"MD5\", \"MD5-sess\""
                        ),
                    )),
                }
            }
            if names.is_empty() {
                errs.push(at(
                    list.span(),
                    "[auth] algorithm must name at least one algorithm",
                ));
            }
            out
        }
    };
    let password = password?;
    (errs.len() == before).then(|| Credentials {
        username: username.clone(),
        password,
        realm,
        algorithms,
    })
}

fn valid_password(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
}

/// The password in a file: its first line, without the line end. The error never quotes
/// the file's contents.
fn read_password_file(file: &Path) -> Result<Secret, String> {
    use std::io::Read;
    let f = std::fs::File::open(file).map_err(|e| format!("cannot be read: {e}"))?;
    let mut buf = Vec::new();
    f.take(MAX_PASSWORD_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if buf.len() as u64 > MAX_PASSWORD_FILE_BYTES {
        return Err(format!(
            "is larger than {MAX_PASSWORD_FILE_BYTES} bytes: not a password file"
        ));
    }
    let s = String::from_utf8(buf).map_err(|_| "is not UTF-8 text".to_string())?;
    let s = s
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&s);
    if !valid_password(s) {
        return Err(
            "must hold the password on one line (empty, or more than one line, or control characters found)"
                .into(),
        );
    }
    Ok(Secret::new(s))
}

#[cfg(unix)]
fn world_readable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn world_readable(_file: &Path) -> bool {
    false
}

/// RFC 3261 §25.1 `user`: unreserved and user-unreserved characters (no escapes: we write
/// these into URIs as they are).
fn is_uri_user(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c))
}

#[cfg(test)]
mod tests {
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
                contact_user: "4420001".into(),
                transport: Transport::Udp,
            }
        );
        assert!(l.warnings.is_empty(), "mode 600 is private");
        // Nothing that prints the configuration prints the password.
        let debug = format!("{l:?}");
        assert!(!debug.contains("pa55"), "{debug}");

        // What the engine builds from it.
        let port = local_port(&l.listen, policy.transport).unwrap();
        let p = RegisterParams::for_profile(itsp(&l), policy, Some(&c), &l.advertise, port);
        assert_eq!(p.registrar, "sip:sip.itsp.example");
        assert_eq!(p.aor, "sip:4420001@sip.itsp.example");
        assert_eq!(p.contact, "sip:4420001@127.0.0.1:5060");
        assert_eq!(p.sent_by, "127.0.0.1:5060");
        assert_eq!(p.target.addr, "127.0.0.3:5060".parse().unwrap());
    }

    #[test]
    fn every_key_set() {
        let dir = tree(
            GATEWAY,
            "[auth]\nusername = \"u\"\npassword = \"p\"\nrealm = \"itsp.example\"\nalgorithm = [\"SHA-256\", \"md5\"]\n\n[register]\nenabled = true\nexpires_s = 600\ncontact_user = \"trunk-1\"\ntransport = \"tcp\"\n",
            0o600,
        );
        let l = load(&dir).unwrap();
        let c = itsp(&l).auth.clone().unwrap();
        assert_eq!(c.realm.as_deref(), Some("itsp.example"));
        assert_eq!(c.algorithms, vec![Algorithm::Sha256, Algorithm::Md5]);
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
        assert!(itsp(&load(&dir).unwrap()).register.is_none());
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
                "[auth]\nusername = \"u\"\npassword_file = \"missing\"\n",
                "itsp.toml:8:17:",
                "missing: cannot be read",
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
            (
                "[auth]\nusername = \"a b\"\npassword = \"pa55secret\"\n[register]\nenabled = true\n",
                "itsp.toml:7:12:",
                "username must be a SIP URI user part",
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
        let e = load(&dir).unwrap_err();
        assert!(
            e.contains("itsp.toml:1:1: [register] over tcp needs a tcp address"),
            "{e}"
        );
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
}
