use std::fmt;
use std::net::SocketAddr;

/// A SIP transport. TLS will join here; everything above picks reliability from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// Whether the transport retransmits for us (RFC 3261 §17 timers differ).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// The URI `transport=` value.
    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.param())
    }
}

/// An accepted TCP connection, named by the engine. Lets a response reuse the connection
/// its request arrived on (RFC 3261 §18.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// One of the engine's UDP listeners (its place in `[sip] listen` among the UDP ones, in the
/// low byte), and on a wildcard one the local address the datagram came to (the high byte,
/// the engine's to read: `engine/udp/local.rs`). A reply leaves by that listener, from that
/// address: a peer behind NAT, or one that checks where answers come from, hears nothing
/// from another address (RFC 3581 §4). The core only carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u16);

/// Where a message goes (or came from): transport, address and, for TCP, the connection;
/// for UDP, the listener it came in on (none: the engine picks one of the address family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub conn: Option<ConnId>,
    pub listener: Option<ListenerId>,
}

impl Target {
    pub fn udp(addr: SocketAddr) -> Self {
        Target {
            transport: Transport::Udp,
            addr,
            conn: None,
            listener: None,
        }
    }

    /// A UDP peer heard on `listener`: what is sent back to it leaves by that listener.
    pub fn udp_on(addr: SocketAddr, listener: ListenerId) -> Self {
        Target {
            listener: Some(listener),
            ..Target::udp(addr)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}
