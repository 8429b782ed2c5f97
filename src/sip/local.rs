//! The gateway's own addresses, as written into Via and Contact, and the §18.1.2 check that a
//! response's top Via is ours.

use super::{Transport, ViaInfo};

/// A host as a SIP URI writes it (RFC 3261 §19.1.1, IPv6reference): an IPv6 address in
/// brackets, anything else as it is.
pub fn uri_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

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
        format!("{}:{}", self.uri_host(), self.port(t))
    }

    /// Our host as a URI writes it: an IPv6 address in brackets.
    pub fn uri_host(&self) -> String {
        uri_host(&self.host)
    }

    /// Where a peer dials us, as a transfer's or a redirect's target names the gateway: the
    /// host with the port we listen on (UDP's, else TCP's), and `;transport=tcp` when we
    /// take TCP only (a SIP URI without it is tried over UDP first, RFC 3263 §4.1, and the
    /// transferee's call went nowhere). Without the port, a gateway on another port than
    /// 5060 sent the transferee to 5060, to nothing or to whatever else listens there.
    pub fn dial_at(&self) -> String {
        match (self.udp_port, self.tcp_port) {
            (None, Some(_)) => format!("{};transport=tcp", self.hostport(Transport::Tcp)),
            _ => self.hostport(Transport::Udp),
        }
    }

    /// [`LocalAddrs::dial_at`] for a peer reached over `transport`: over TCP, where we listen
    /// on it, the URI says so (a peer whose firewall lets TCP alone through, sent our UDP
    /// address, would try it and fail).
    pub fn dial_at_over(&self, transport: Transport) -> String {
        match (transport, self.tcp_port) {
            (Transport::Tcp, Some(_)) => {
                format!("{};transport=tcp", self.hostport(Transport::Tcp))
            }
            _ => self.dial_at(),
        }
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

#[cfg(test)]
mod tests {
    #[test]
    fn an_ipv6_host_is_bracketed_in_uris() {
        assert_eq!(super::uri_host("2001:db8::1"), "[2001:db8::1]");
        assert_eq!(super::uri_host("[2001:db8::1]"), "[2001:db8::1]");
        assert_eq!(super::uri_host("gw.example"), "gw.example");
        let local = super::LocalAddrs {
            host: "::1".into(),
            udp_port: Some(5060),
            tcp_port: None,
        };
        assert_eq!(local.uri_host(), "[::1]");
        assert_eq!(local.dial_at(), "[::1]:5060");
    }

    /// A transfer's target names the port the gateway listens on (before, the host alone:
    /// a gateway on 5070 sent the transferee to 5060), TCP's with the transport when it
    /// takes TCP only (before, the transferee tried UDP).
    #[test]
    fn a_peer_dials_us_at_our_port() {
        let local = |udp_port, tcp_port| super::LocalAddrs {
            host: "192.0.2.1".into(),
            udp_port,
            tcp_port,
        };
        assert_eq!(local(Some(5070), Some(5071)).dial_at(), "192.0.2.1:5070");
        // Toward a peer over TCP, our TCP address, said so.
        assert_eq!(
            local(Some(5070), Some(5071)).dial_at_over(super::Transport::Tcp),
            "192.0.2.1:5071;transport=tcp"
        );
        assert_eq!(
            local(Some(5070), Some(5071)).dial_at_over(super::Transport::Udp),
            "192.0.2.1:5070"
        );
        assert_eq!(
            local(Some(5070), None).dial_at_over(super::Transport::Tcp),
            "192.0.2.1:5070"
        );
        assert_eq!(
            local(None, Some(5071)).dial_at(),
            "192.0.2.1:5071;transport=tcp"
        );
    }
}
