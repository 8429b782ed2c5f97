//! What an SDP's media section says of its stream: where its RTP (and RTCP) go, in which
//! direction it flows, over what transport.

use std::net::IpAddr;

/// What an `m=` line's transport (its `<proto>` field, RFC 8866 §5.14) means for a relay
/// that forwards UDP datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `RTP/AVP`, `RTP/AVPF`: RTP and RTCP in the clear.
    Rtp,
    /// `RTP/SAVP`, `RTP/SAVPF` (SRTP keyed in the SDP, RFC 4568): RTP headers in the clear,
    /// payloads and RTCP bodies encrypted and authenticated between the endpoints.
    Srtp,
    /// Other datagrams over UDP, opaque to the relay: `udptl` (T.38 fax, RFC 3362),
    /// `UDP/TLS/RTP/SAVP(F)` (DTLS-SRTP, RFC 5764), `UDP/BFCP`, plain `UDP`.
    Datagram,
    /// Not carried over UDP (`TCP/MSRP`, `TCP/RTP/AVP`, `TCP/BFCP`, SCTP), or a transport
    /// the gateway does not know: no UDP relay can carry it, so it is refused (port 0).
    Unrelayable,
}

impl Transport {
    /// The transport an `m=` line's `<proto>` names; compared without regard to case, as
    /// peers write `udptl` and `UDPTL` alike.
    pub(super) fn of(proto: &[u8]) -> Transport {
        let is = |name: &str| proto.eq_ignore_ascii_case(name.as_bytes());
        let starts = |prefix: &str| {
            proto
                .get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
        };
        if is("RTP/AVP") || is("RTP/AVPF") {
            Transport::Rtp
        } else if is("RTP/SAVP") || is("RTP/SAVPF") {
            Transport::Srtp
        } else if is("udptl") || is("UDP") || starts("UDP/") {
            Transport::Datagram
        } else {
            Transport::Unrelayable
        }
    }
}

/// Where one media stream of an SDP wants its RTP: the connection address in force for its
/// m= line (media-level c= over session-level c=) and its port. Port 0 is a rejected or
/// disabled stream: it gets no relay ports and stays at port 0 when anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `None` when the address is a host name (RFC 8866 allows one) or absent.
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// On hold: `a=sendonly`, `recvonly` or `inactive` (media-level, else session-level), or
    /// the old-style `c=0.0.0.0`. Media may stop for long stretches while held.
    pub held: bool,
    /// The SDP's sender sends on it: not `a=recvonly` or `a=inactive`, and not port 0 (an
    /// old-style hold, `c=0.0.0.0`, is a sender's: RFC 3264 §8.4).
    pub sends: bool,
    /// The SDP's sender receives on it: not `a=sendonly` or `a=inactive`, not port 0, and
    /// not the old-style hold's `c=0.0.0.0`.
    pub receives: bool,
    /// What the stream carries, from its `m=` transport and attributes: SDES keys
    /// (`a=crypto`) on an `RTP/AVP` line make it SRTP (best-effort SRTP, when the answer
    /// keeps them). ZRTP (`a=zrtp-hash`) is not: its packets are no RTP and are dropped, so
    /// its key exchange cannot complete through the relay and the call stays plain RTP
    /// (recorded, repacketised) as both ends fall back to.
    pub transport: Transport,
    /// `a=rtcp-mux` (RFC 5761): RTCP on the RTP port.
    pub rtcp_mux: bool,
    /// `a=rtcp` (RFC 3605): the port its RTCP goes to when not the RTP port + 1. Taken only
    /// when the attribute names no address or the stream's own: the relay takes a leg's
    /// RTCP only from the IP its RTP comes from, and would send to another unchecked.
    pub rtcp_port: Option<u16>,
    /// An `m=audio` line listing G.711 (payload type 0 or 8): the only audio the
    /// repacketiser re-cuts. Any other stream (video, Opus alone) is relayed as sent.
    pub g711: bool,
    /// `a=maxptime` (its own, else the session's; 5 ms or more): the longest packets the
    /// SDP's sender takes, which the repacketiser keeps to toward it.
    pub maxptime: Option<u16>,
}

impl Endpoint {
    /// A port-0 stream: rejected in an answer, disabled in an offer.
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// A stream the relay carries: active, over a transport it can forward. Anchoring gives
    /// the others no ports and refuses them with port 0.
    pub fn is_relayed(&self) -> bool {
        !self.is_rejected() && self.transport != Transport::Unrelayable
    }
}

/// What a media-level attribute tells about its stream's packets.
pub(super) fn media_attribute(e: &mut Endpoint, line: &[u8]) {
    if line.trim_ascii_end() == b"a=rtcp-mux" {
        e.rtcp_mux = true;
    } else if line.starts_with(b"a=crypto:") && e.transport == Transport::Rtp {
        e.transport = Transport::Srtp;
    } else if line.starts_with(b"a=fingerprint:") {
        dtls_keyed(e);
    } else if let Some(v) = line.strip_prefix(b"a=maxptime:") {
        e.maxptime = maxptime(v);
    }
}

/// An `a=maxptime` value: below 5 ms (the shortest ptime the gateway sends) it is nonsense,
/// and ignored.
pub(super) fn maxptime(v: &[u8]) -> Option<u16> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|v| v.trim().parse::<u16>().ok())
        .filter(|&m| m >= 5)
}

/// A DTLS fingerprint (RFC 8122) on an SRTP stream: its keys come from a DTLS handshake on
/// the media ports (RFC 5764), whatever the `m=` line says (Asterisk's `force_avp`, and
/// FreeSWITCH answering in the offer's profile, write `RTP/SAVPF` for DTLS-SRTP). Its DTLS
/// records are no RTP, so the stream is opaque datagrams; checked as SRTP, every record
/// was dropped and the call had no audio.
pub(super) fn dtls_keyed(e: &mut Endpoint) {
    if e.transport == Transport::Srtp {
        e.transport = Transport::Datagram;
    }
}

/// A direction attribute (RFC 4566 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// Its line, as written on.
    pub(super) fn line(self) -> &'static [u8] {
        match self {
            Direction::SendRecv => b"a=sendrecv",
            Direction::SendOnly => b"a=sendonly",
            Direction::RecvOnly => b"a=recvonly",
            Direction::Inactive => b"a=inactive",
        }
    }
}

/// The direction a line sets, if it is a direction attribute (trailing blanks, which a
/// reader that trims takes as nothing, taken as nothing here too).
pub(super) fn direction(line: &[u8]) -> Option<Direction> {
    match line.trim_ascii_end() {
        b"a=sendrecv" => Some(Direction::SendRecv),
        b"a=sendonly" => Some(Direction::SendOnly),
        b"a=recvonly" => Some(Direction::RecvOnly),
        b"a=inactive" => Some(Direction::Inactive),
        _ => None,
    }
}

/// An `a=rtcp:` value (RFC 3605: `<port> [IN <IP4|IP6> <address>]`): its port, and its
/// address when it names one (`Some(None)` for one that is no IP address: a host name).
/// None when unreadable or port 0: the RTP port + 1 stands.
pub(super) fn rtcp_attribute(v: &[u8]) -> Option<(u16, Option<Option<IpAddr>>)> {
    let port: u16 = super::ascii(super::field(v, 0)?)?.parse().ok()?;
    if port == 0 {
        return None;
    }
    let ip = super::field(v, 3).map(|a| super::ascii(a).and_then(|a| a.parse().ok()));
    Some((port, ip))
}

/// Which lines of an SDP repeat their level's `c=`, direction or their stream's `a=rtcp`,
/// read in order: a level (the session, or a media section from its `m=`) has one of each
/// (RFC 4566 §5.7 and §6, RFC 3605), and the first counts. `read` and the rewrite both ask
/// it, so the address and direction read are the ones sent on (a far end that takes the
/// first of `a=inactive` and `a=sendrecv`, where the gateway took the last, had a held call
/// released for the silence it was told to expect), and a peer's repeats (each a few bytes,
/// rewritten to a whole address) do not grow what is sent several times over.
#[derive(Default)]
pub(super) struct Repeats {
    had_c: bool,
    had_rtcp: bool,
    had_direction: bool,
}

impl Repeats {
    /// Whether the line `text`, the next one, repeats its level's `c=` or `a=rtcp`.
    pub(super) fn repeated(&mut self, text: &[u8]) -> bool {
        let had = if text.starts_with(b"m=") {
            *self = Repeats::default();
            return false;
        } else if text.starts_with(b"c=") {
            &mut self.had_c
        } else if text.starts_with(b"a=rtcp:") {
            &mut self.had_rtcp
        } else if direction(text).is_some() {
            &mut self.had_direction
        } else {
            return false;
        };
        std::mem::replace(had, true)
    }
}
