//! The gateway's own addresses, as written into Via and Contact, and the §18.1.2 check that a
//! response's top Via is ours.

use super::{Transport, ViaInfo};

/// The gateway's own addresses, for Via and Contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddrs {
    pub host: String,
    pub udp_port: Option<u16>,
    pub tcp_port: Option<u16>,
}

impl LocalAddrs {
    fn port(&self, t: Transport) -> u16 {
        match t {
            Transport::Udp => self.udp_port.or(self.tcp_port),
            Transport::Tcp => self.tcp_port.or(self.udp_port),
        }
        .unwrap_or(5060)
    }

    fn hostport(&self, t: Transport) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{host}:{}", self.port(t))
    }

    /// Whether a Via names us (the advertised host, on one of our ports when it has one).
    pub fn is_ours(&self, via: &ViaInfo) -> bool {
        let host = via.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case(self.host.trim_start_matches('[').trim_end_matches(']'))
            && via
                .port
                .is_none_or(|p| Some(p) == self.udp_port || Some(p) == self.tcp_port)
    }

    /// Our Via for a request sent over `t`. `rport` asks the peer to answer where we sent from.
    pub fn via(&self, t: Transport, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            t.via_token(),
            self.hostport(t)
        )
    }

    /// Our Contact for dialogs over `t`.
    pub fn contact(&self, t: Transport) -> String {
        match t {
            Transport::Udp => format!("<sip:{}>", self.hostport(t)),
            Transport::Tcp => format!("<sip:{};transport=tcp>", self.hostport(t)),
        }
    }
}
