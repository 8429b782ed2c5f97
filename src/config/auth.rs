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
use crate::auth::{Algorithm, Credentials, InDialog, RegisterPolicy, Secret};
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
        let named = self.peers.get(&self.profiles).registered_as(user);
        let mut owners = (named.iter())
            .filter_map(|n| self.profiles.get(n))
            .filter(|p| p.matches.iter().any(|n| n.contains(&source)));
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
pub fn local_port(listen: &[Listen], transport: Transport, advertise: &str) -> Option<u16> {
    // The listener on the advertised address; else one of its family (an advertised
    // address that is not this host's, a NAT's or a load balancer's, reaches the listener
    // of its family); else a dual-stack `[::]` for an IPv4 one; else the transport's
    // first. A port taken from a listener of the other family names a port nothing
    // listens on at that address.
    let ours = || listen.iter().filter(|l| l.transport == transport);
    let ip = super::sip::advertise_ip(advertise);
    let same_family = |l: &&Listen| ip.is_some_and(|ip| l.addr.is_ipv4() == ip.is_ipv4());
    let dual = |l: &&Listen| ip.is_some_and(|ip| ip.is_ipv4() && l.addr.ip().is_unspecified());
    (ours().find(|l| Some(l.addr.ip()) == ip))
        .or_else(|| ours().find(same_family))
        .or_else(|| ours().find(dual))
        .or_else(|| ours().next())
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
    let enabled = r.enabled.unwrap_or(false);
    if r.enabled.is_none() {
        warns.push(ConfigError::file(
            path,
            "warning: [register] without `enabled = true`: nothing is registered",
        ));
    }
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
            if !is_contact_user(u.get_ref()) {
                errs.push(at(
                    u.span(),
                    format!(
                        "[register] contact_user {:?} must be a SIP URI user part without ';' (letters, digits, -_.!~*'()&=+$,?/)",
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
            .filter(|u| is_contact_user(u))
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
    // The user part of the address of record: `user`, else the username.
    let user = r.user.as_ref();
    if let Some(u) = user.filter(|u| !is_uri_user(u.get_ref())) {
        errs.push(at(
            u.span(),
            format!(
                "[register] user {:?} must be a SIP URI user part",
                u.get_ref()
            ),
        ));
    }
    if enabled
        && user.is_none()
        && let Some(a) = &file.auth
        && !is_uri_user(a.username.get_ref())
    {
        errs.push(at(
            a.username.span(),
            "[auth] username must be a SIP URI user part to be registered with [register] (or set [register] user)".into(),
        ));
    }
    let register = enabled.then_some(RegisterPolicy {
        expires,
        user: user.map(|u| u.get_ref().clone()),
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
        (None, Some(f)) if f.get_ref().as_str().is_none() => {
            errs.push(at(
                f.span(),
                "[auth] password_file must be a file name, quoted (a password goes in `password`)",
            ));
            None
        }
        (None, Some(f)) => {
            let name = f.get_ref().as_str().unwrap_or_default();
            let file = path.parent().unwrap_or(Path::new(".")).join(name);
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
                // A value that names nothing may be the password itself, written in the
                // wrong key: the error gives its line, never the value (it would land in a
                // terminal's history, a CI log, a ticket).
                Err(_) if super::read::names_nothing(&file) => {
                    errs.push(at(
                        f.span(),
                        "[auth] password_file names no file (relative to the profile's folder); \
                         its value is not shown, in case it is a password: that goes in `password`",
                    ));
                    None
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
    let in_dialog = match a
        .in_dialog
        .as_ref()
        .map(|v| (v.get_ref().as_str(), v.span()))
    {
        None | Some(("challenged", _)) => InDialog::Challenged,
        Some(("always", _)) => InDialog::Always,
        Some((other, span)) => {
            errs.push(at(
                span,
                &format!("[auth] in_dialog {other:?} must be \"challenged\" or \"always\""),
            ));
            InDialog::Challenged
        }
    };
    let password = password?;
    (errs.len() == before).then(|| Credentials {
        username: username.clone(),
        password,
        realm,
        algorithms,
        in_dialog,
    })
}

fn valid_password(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
}

/// The password in a file: its first line, without the line end. The error never quotes
/// the file's contents.
fn read_password_file(file: &Path) -> Result<Secret, String> {
    let Some(buf) = super::read::read_settled(file, MAX_PASSWORD_FILE_BYTES)? else {
        return Err(format!(
            "is larger than {MAX_PASSWORD_FILE_BYTES} bytes: not a password file"
        ));
    };
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

/// Whether every user of the machine may read `file` (a secret in it is then everyone's).
#[cfg(unix)]
pub(super) fn world_readable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
pub(super) fn world_readable(_file: &Path) -> bool {
    false
}

/// RFC 3261 §25.1 `user`: unreserved and user-unreserved characters (no escapes: we write
/// these into URIs as they are).
fn is_uri_user(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c))
}

/// A user part we can register as our contact: inbound requests find their peer by it, and
/// that lookup reads the user part up to a `;` (what follows is a parameter to a peer), so a
/// contact user with one would never match.
fn is_contact_user(s: &str) -> bool {
    is_uri_user(s) && !s.contains(';')
}

#[cfg(test)]
mod tests;
