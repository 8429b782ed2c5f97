//! `[callback]`: the call-back service's settings, with their defaults and bounds.
//!
//! Safe by default: the service listens on UDP 5080 at the `[sip] advertise` address but
//! accepts only `127.0.0.1`; an empty `allow` is refused unless `allow_any = true` says so
//! explicitly, and that is reported as a warning.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::file::{CallbackSection, SipSection};
use super::{ConfigError, PeerName};
use crate::callback::protocol::Number;
use crate::callback::signature::Keys;

/// `[callback] port` when the section does not set one (`0` turns the service off).
pub const DEFAULT_PORT: u16 = 5080;
const DEFAULT_MAX_DURATION_S: u64 = 3600;
const DEFAULT_RATE: NonZeroU32 = match NonZeroU32::new(10) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};
const DEFAULT_MAX_ACTIVE: u64 = 100;
/// Bounds: a day of call, a thousand requests a second, ten thousand call-backs at once.
const MAX_DURATION_S: u64 = 86_400;
const MAX_RATE: u64 = 1000;
const MAX_ACTIVE: u64 = 10_000;

/// The validated `[callback]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackConfig {
    /// Where the UDP socket binds; None when `port = 0` (no socket, service off).
    pub listen: Option<SocketAddr>,
    /// Sources whose datagrams are read; everything else is dropped unanswered.
    pub allow: Vec<IpNet>,
    /// `allow_any = true`: every source is accepted (`allow` is then not consulted).
    pub allow_any: bool,
    /// Originated legs are routed as calls from this peer; None: only `from = "*"` routes.
    pub from_peer: Option<PeerName>,
    /// Calling number shown to both legs when the request names none.
    pub caller: Option<Number>,
    /// Longest a call-back may last; a request's `max_duration` can only shorten it.
    pub max_duration: Duration,
    /// REQUESTs accepted per second (burst of the same size).
    pub rate: NonZeroU32,
    /// Call-backs in progress at once.
    pub max_active: usize,
    /// `secret_file`: every datagram, both ways, is signed with these keys (None: the
    /// source address is all that is checked).
    pub keys: Option<Keys>,
}

impl Default for CallbackConfig {
    /// The defaults with the service off (no address to bind without a `[sip] advertise`).
    fn default() -> Self {
        CallbackConfig {
            listen: None,
            allow: vec![IpNet::from(IpAddr::from([127, 0, 0, 1]))],
            allow_any: false,
            from_peer: None,
            caller: None,
            max_duration: Duration::from_secs(DEFAULT_MAX_DURATION_S),
            rate: DEFAULT_RATE,
            max_active: DEFAULT_MAX_ACTIVE as usize,
            keys: None,
        }
    }
}

impl CallbackConfig {
    /// Whether datagrams from `ip` are read at all.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_any || super::net::holds(&self.allow, ip)
    }
}

/// Where problems are reported, and what they are checked against.
pub(super) struct Ctx<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    pub known_peer: &'a dyn Fn(&PeerName) -> bool,
}

impl Ctx<'_> {
    fn at<T>(&self, s: &Spanned<T>, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, self.text, s.span().start, msg)
    }
}

/// Validate `[callback]`. Errors go to `errs`; `allow_any = true` on an open port is a warning.
pub(super) fn load(
    sec: &CallbackSection,
    sip: &SipSection,
    cx: &Ctx,
    errs: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> CallbackConfig {
    let mut c = CallbackConfig::default();
    let port = match &sec.port {
        Some(p) => match u16::try_from(*p.get_ref()) {
            Ok(port) => port,
            Err(_) => {
                errs.push(cx.at(p, "[callback] port must be 0 (off) or 1..=65535"));
                0
            }
        },
        None => DEFAULT_PORT,
    };
    let ip = match &sec.listen {
        Some(l) => match l.get_ref().trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                errs.push(cx.at(
                    l,
                    format!("[callback] listen {:?} must be an IP address", l.get_ref()),
                ));
                None
            }
        },
        None => match super::sip::advertise_ip(sip.advertise.get_ref().trim()).ok_or(()) {
            Ok(ip) => Some(ip),
            // Binding needs an address; guessing one could expose the port.
            Err(_) if port == 0 => None,
            Err(_) => {
                let msg = "[callback] listen must be set: [sip] advertise is not an IP address \
                           (or set [callback] port = 0)";
                match &sec.port {
                    Some(p) => errs.push(cx.at(p, msg)),
                    // Only the default port: the service stays off, and `check` says so.
                    None => warnings.push(cx.at(
                        &sip.advertise,
                        format!("warning: the call-back service is off: {msg}"),
                    )),
                }
                None
            }
        },
    };
    c.listen = match (port, ip) {
        (0, _) | (_, None) => None,
        (port, Some(ip)) => Some(SocketAddr::new(ip, port)),
    };
    if let Some(list) = &sec.allow {
        c.allow = super::net::parse_nets(
            list.get_ref(),
            "[callback] allow",
            |a, m| errs.push(cx.at(a, m)),
            |a, m| warnings.push(cx.at(a, m)),
        );
    }
    c.allow_any = sec.allow_any.as_ref().is_some_and(|a| *a.get_ref());
    if let Some(list) = &sec.allow
        && list.get_ref().is_empty()
        && !c.allow_any
    {
        errs.push(cx.at(
            list,
            "[callback] allow is empty: name the application servers' addresses, \
             or set allow_any = true to accept requests from anywhere",
        ));
    }
    if let Some(f) = &sec.secret_file {
        let file = cx.path.parent().unwrap_or(Path::new(".")).join(f.get_ref());
        let keys = super::read::read_text(&file)
            .and_then(|text| Keys::parse(&text).map_err(str::to_string));
        match keys {
            Ok(k) => c.keys = Some(k),
            // A value that names nothing may be a key written in the wrong place: its line
            // is given, never the value.
            Err(_) if super::read::names_nothing(&file) => errs.push(
                cx.at(
                    f,
                    "[callback] secret_file names no file (relative to the configuration's \
                 folder); its value is not shown, in case it is a key"
                        .to_string(),
                ),
            ),
            Err(e) => errs.push(cx.at(
                f,
                format!(
                    "[callback] secret_file {}: {e} (one key per line, 16 characters or more, \
                     at most 4)",
                    file.display()
                ),
            )),
        }
    }
    if c.allow_any
        && c.keys.is_none()
        && c.listen.is_some()
        && let Some(a) = &sec.allow_any
    {
        warnings.push(cx.at(
            a,
            "warning: [callback] allow_any = true: anyone who can reach the call-back port \
             can place calls at your cost (set secret_file to require signed requests)",
        ));
    }
    if let Some(p) = &sec.from_peer {
        let name = PeerName(p.get_ref().as_str().into());
        if !(cx.known_peer)(&name) {
            errs.push(cx.at(
                p,
                format!(
                    "[callback] from_peer {:?} is not a peer (no profiles/{}.toml)",
                    name.0, name.0
                ),
            ));
        }
        c.from_peer = Some(name);
    }
    if let Some(s) = &sec.caller
        && !s.get_ref().is_empty()
    {
        match Number::parse(s.get_ref()) {
            Some(n) => c.caller = Some(n),
            None => errs.push(cx.at(
                s,
                format!(
                    "[callback] caller {:?} must be \"\" or a number: an optional + and 1 to 32 digits, * or #",
                    s.get_ref()
                ),
            )),
        }
    }
    if let Some(m) = &sec.max_duration_s {
        if (1..=MAX_DURATION_S).contains(m.get_ref()) {
            c.max_duration = Duration::from_secs(*m.get_ref());
        } else {
            errs.push(cx.at(
                m,
                format!("[callback] max_duration_s must be 1..={MAX_DURATION_S}"),
            ));
        }
    }
    if let Some(r) = &sec.rate {
        match u32::try_from(*r.get_ref()).ok().and_then(NonZeroU32::new) {
            Some(rate) if u64::from(rate.get()) <= MAX_RATE => c.rate = rate,
            _ => errs.push(cx.at(r, format!("[callback] rate must be 1..={MAX_RATE}"))),
        }
    }
    if let Some(m) = &sec.max_active {
        if (1..=MAX_ACTIVE).contains(m.get_ref()) {
            c.max_active = *m.get_ref() as usize;
        } else {
            errs.push(cx.at(m, format!("[callback] max_active must be 1..={MAX_ACTIVE}")));
        }
    }
    c
}

#[cfg(test)]
mod tests {
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
}
