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

    /// Whether anyone may send: `allow_any`, or an `allow` network of every address of a
    /// family (`0.0.0.0/0`, `::/0`), which is the same thing written otherwise.
    pub fn open_to_anyone(&self) -> bool {
        self.allow_any || self.allow.iter().any(|n| n.prefix_len() == 0)
    }

    /// Whether `ip` may send only because anyone may: [`Self::open_to_anyone`], and no
    /// narrower `allow` network holds it (an AS allowed by name is one, whatever else the
    /// list lets in). A RESPONSE goes to it once: its address may be forged.
    pub fn open_only_to(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.open_to_anyone()
            && !self
                .allow
                .iter()
                .any(|n| n.prefix_len() > 0 && n.contains(&ip))
    }

    /// [`Self::open_only_to`], or a wide `allow` network holds `ip` (wider than an IPv4 /24
    /// or an IPv6 /64: anyone in it may forge the others' addresses) and no narrower one
    /// does (an AS within a small network of servers is one, whatever else the list lets
    /// in). Its answers are held to a rate: a forged STATUS or bad datagram is not
    /// reflected at will. (Its RESPONSEs are still resent: only a call placed, which
    /// `rate` holds, has one.)
    pub fn let_in_widely(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let narrow = |n: &IpNet| n.prefix_len() >= if n.addr().is_ipv4() { 24 } else { 64 };
        let held = |narrow_ones: bool| {
            (self.allow.iter())
                .any(|n| n.prefix_len() > 0 && narrow(n) == narrow_ones && n.contains(&ip))
        };
        (self.open_to_anyone() || held(false)) && !held(true)
    }
}

/// Where problems are reported, and what they are checked against.
pub(super) struct Ctx<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    pub missing_peer: &'a dyn Fn(&PeerName) -> Option<String>,
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
    // Both are UDP sockets: one address and port cannot be bound twice, and `run` would
    // fail where `check` said ok.
    // A `[::]` socket is dual-stack, and holds its port on every IPv4 address too: the
    // call-back's always, a SIP one unless a SIP IPv4 listener shares its port
    // (`engine::bind::stack_among`).
    if let Some(at) = c.listen {
        let sip_udp: Vec<SocketAddr> = (sip.listen.get_ref().iter())
            .filter_map(|l| super::parse_transport_addr(l.get_ref()).ok())
            .filter(|(t, _)| *t == crate::sip::Transport::Udp)
            .map(|(_, a)| a)
            .collect();
        let v6_any = |a: SocketAddr| a.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        let sip_dual = |a: SocketAddr| {
            v6_any(a) && !sip_udp.iter().any(|o| o.is_ipv4() && o.port() == a.port())
        };
        let clashes = sip_udp.iter().any(|&a| {
            let any = a.ip().is_unspecified() || at.ip().is_unspecified();
            let family = a.is_ipv4() == at.is_ipv4();
            a.port() == at.port()
                && if family {
                    any || a.ip() == at.ip()
                } else {
                    sip_dual(a) || v6_any(at)
                }
        });
        if clashes {
            let msg = format!(
                "[callback] {at} is also a [sip] listen UDP address: set another [callback] port"
            );
            match &sec.port {
                Some(p) => errs.push(cx.at(p, msg)),
                None => errs.push(cx.at(&sip.listen, msg)),
            }
        }
    }
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
    if let Some(f) = &sec.secret_file
        && f.get_ref().as_str().is_none()
    {
        errs.push(
            cx.at(
                f,
                "[callback] secret_file must be a file name, quoted; its value is not shown, in \
             case it is a key"
                    .to_string(),
            ),
        );
    } else if let Some(f) = &sec.secret_file {
        let name = f.get_ref().as_str().unwrap_or_default();
        let file = cx.path.parent().unwrap_or(Path::new(".")).join(name);
        let keys = super::read::read_text(&file)
            .and_then(|text| Keys::parse(&text).map_err(str::to_string));
        match keys {
            Ok(k) => {
                // Whoever reads the keys signs REQUESTs: places calls, from anywhere.
                if super::auth::world_readable(&file) {
                    warnings.push(cx.at(
                        f,
                        format!(
                            "warning: [callback] secret_file {} is readable by every user: \
                             chmod 600 it",
                            file.display()
                        ),
                    ));
                }
                c.keys = Some(k);
            }
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
    } else if c.open_to_anyone()
        && c.keys.is_none()
        && c.listen.is_some()
        && let Some(a) = &sec.allow
    {
        warnings.push(cx.at(
            a,
            "warning: [callback] allow holds a /0, every address: anyone who can reach the \
             call-back port can place calls at your cost, as with allow_any = true (set \
             secret_file to require signed requests)",
        ));
    }
    // Over UDP a source address can be forged: beyond loopback (which the kernel keeps
    // from the outside), only signatures tell an AS from someone posing as it.
    if !c.open_to_anyone()
        && c.keys.is_none()
        && c.listen.is_some()
        && c.allow.iter().any(|n| !n.addr().is_loopback())
        && let Some(a) = &sec.allow
    {
        warnings.push(cx.at(
            a,
            "warning: [callback] allow names addresses beyond loopback without secret_file: \
             UDP sources can be forged, so anyone who can forge one may place calls at your \
             cost (set secret_file to require signed requests)",
        ));
    }
    if let Some(p) = &sec.from_peer {
        let name = PeerName(p.get_ref().as_str().into());
        if let Some(file) = (cx.missing_peer)(&name) {
            errs.push(cx.at(
                p,
                format!(
                    "[callback] from_peer {:?} is not a peer (no {file})",
                    name.0
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
mod tests;
