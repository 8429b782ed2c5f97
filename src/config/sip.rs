//! `[sip]`: the addresses the gateway listens on and writes into its messages, and the SIP
//! front it may run behind.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;

use super::file::SipSection;
use super::{ConfigError, Listen};
use crate::sip::{Target, Transport};

pub(super) struct Sip {
    pub listen: Vec<Listen>,
    pub front: Option<Target>,
    pub advertise: String,
}

pub(super) fn sip(
    s: &SipSection,
    path: &Path,
    at: &dyn Fn(Range<usize>, String) -> ConfigError,
    errs: &mut Vec<ConfigError>,
) -> Sip {
    let mut listen = Vec::new();
    for l in &s.listen {
        match parse_transport_addr(l.get_ref()) {
            Ok((transport, addr)) => listen.push(Listen { transport, addr }),
            Err(m) => errs.push(at(l.span(), m)),
        }
    }
    if s.listen.is_empty() {
        errs.push(ConfigError::file(
            path,
            "[sip] listen must name at least one address",
        ));
    }
    let front = match &s.front {
        Some(f) => match parse_transport_addr(f.get_ref()) {
            Ok((transport, addr)) => Some(Target {
                transport,
                addr,
                conn: None,
                listener: None,
            }),
            Err(m) => {
                errs.push(at(f.span(), format!("[sip] front: {m}")));
                None
            }
        },
        None => None,
    };
    let advertise = s.advertise.get_ref().trim().to_string();
    if advertise.is_empty() || advertise.contains(char::is_whitespace) {
        errs.push(at(
            s.advertise.span(),
            "[sip] advertise must be a host name or IP address".into(),
        ));
    }
    Sip {
        listen,
        front,
        advertise,
    }
}

/// `udp:127.0.0.1:5060`, `tcp:[::1]:5060`. A bare `ip:port` means UDP.
pub fn parse_transport_addr(s: &str) -> Result<(Transport, SocketAddr), String> {
    let (transport, rest) = match s.split_once(':') {
        Some((t, rest)) if t.eq_ignore_ascii_case("udp") => (Transport::Udp, rest),
        Some((t, rest)) if t.eq_ignore_ascii_case("tcp") => (Transport::Tcp, rest),
        Some((t, _)) if t.eq_ignore_ascii_case("tls") => {
            return Err(format!("{s:?}: TLS is not supported yet; use udp: or tcp:"));
        }
        _ => (Transport::Udp, s),
    };
    rest.parse::<SocketAddr>()
        .map(|a| (transport, a))
        .map_err(|_| {
            format!(
                "{s:?} must be transport:ip:port, e.g. \"udp:127.0.0.1:5060\" (IP addresses only)"
            )
        })
}
