use std::net::SocketAddr;

use sipx_sip::headers::Via;

/// What the call layer needs from a Via.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaInfo {
    /// Transport token, upper case (`UDP`, `TCP`).
    pub transport: String,
    /// sent-by host.
    pub host: String,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// The branch parameter.
    pub branch: Option<String>,
    /// `Some(None)` for a bare `rport` flag, `Some(Some(p))` once filled in.
    pub rport: Option<Option<u16>>,
    /// The `received` parameter.
    pub received: Option<String>,
}

impl ViaInfo {
    pub(crate) fn from_sipx(v: &Via) -> Self {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        ViaInfo {
            transport: s(&v.transport).to_ascii_uppercase(),
            host: s(&v.host.to_bytes()),
            port: v.port,
            branch: v.branch().map(s),
            rport: v
                .rport()
                .map(|p| p.and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())),
            received: v.received().map(s),
        }
    }

    /// Whether its sent-by is an IP address other than `source` (the address the message
    /// came from): its sender is behind NAT. A host name says nothing: false.
    pub fn names_other_ip_than(&self, source: std::net::IpAddr) -> bool {
        (self
            .host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>())
        .is_ok_and(|ip| ip.to_canonical() != source.to_canonical())
    }
}

/// The most a stamp adds to a Via: `;received=` with a full IPv6 address and `;rport=`
/// with a five-digit port (an existing `received` or `rport` is replaced, never doubled).
pub(crate) const STAMP_GROWTH: usize = ";received=".len() + 39 + ";rport=".len() + 5;

/// Rewrite the first hop of a Via header value with `received` and (when asked for) `rport`.
/// Returns `None` when nothing needs to change. Bytes are bytes: a peer's non-UTF-8 byte
/// goes back as it came (read as text, each would come back three bytes long, and its
/// branch or a proxy's hop below it no longer match).
pub(crate) fn stamp(value: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
    let end = sipx_sip::headers::via::first_hop_end(value).min(value.len());
    let (first, rest) = value.split_at(end);
    // A quoted parameter value may hold `;`: split outside quotes, or the parameter
    // would be cut in two and the Via no longer parse.
    let mut parts = super::split::split_params_bytes(first).into_iter();
    let sent = parts.next()?.trim_ascii_end();
    let params: Vec<&[u8]> = parts.collect();
    // `rport` asked for (RFC 3581 §4), or answered already: a Via this function stamped is
    // stamped again alike (a transaction looked up by the stamped Via must find it).
    let wants_rport = params.iter().any(|p| {
        let p = p.trim_ascii();
        let name = p.split(|&b| b == b'=').next().unwrap_or_default();
        name.trim_ascii().eq_ignore_ascii_case(b"rport")
    });
    let host_port = sent.rsplit(|&b| b == b' ').next().unwrap_or_default();
    let host = match host_port.strip_prefix(b"[") {
        Some(v6) => v6.split(|&b| b == b']').next(),
        None => host_port.split(|&b| b == b':').next(),
    }
    .unwrap_or_default();
    let src_ip = src.ip().to_string();
    if !wants_rport && host == src_ip.as_bytes() {
        return None;
    }
    let mut out = sent.to_vec();
    for p in params {
        let name = p
            .split(|&b| b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if name.eq_ignore_ascii_case(b"rport") || name.eq_ignore_ascii_case(b"received") {
            continue;
        }
        out.push(b';');
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b";received=");
    out.extend_from_slice(src_ip.as_bytes());
    if wants_rport {
        out.extend_from_slice(format!(";rport={}", src.port()).as_bytes());
    }
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamp of `v` as text (`None` when nothing changes).
    fn stamp(v: &str, src: SocketAddr) -> Option<String> {
        super::stamp(v.as_bytes(), src).map(|b| String::from_utf8(b).expect("text in, text out"))
    }

    /// A Via stamped once is stamped again to the same bytes. Before, `rport=P` read as no
    /// `rport` asked for and was dropped: an RFC 2543 request's transaction (keyed on its
    /// stamped Via) was not found by `TxnLayer::knows`, and its retransmission was answered
    /// statelessly instead of from the transaction.
    #[test]
    fn a_stamped_via_stamps_again_to_itself() {
        let src: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        for v in [
            "SIP/2.0/UDP 192.168.1.5:5060;branch=1234;rport",
            "SIP/2.0/UDP 192.168.1.5:5060;rport;branch=z9hG4bKx",
            "SIP/2.0/UDP 192.168.1.5",
        ] {
            let once = stamp(v, src).expect("a NATed Via is stamped");
            let twice = stamp(&once, src).unwrap_or_else(|| once.clone());
            assert_eq!(once, twice, "{v}");
        }
    }

    #[test]
    fn a_quoted_parameter_holding_a_semicolon_is_kept_whole() {
        let src: SocketAddr = "10.1.1.1:5099".parse().unwrap();
        let v = r#"SIP/2.0/UDP h;branch=z9hG4bK1;x="a;received=b""#;
        assert_eq!(
            stamp(v, src).as_deref(),
            Some(r#"SIP/2.0/UDP h;branch=z9hG4bK1;x="a;received=b";received=10.1.1.1"#)
        );
    }

    #[test]
    fn stamps_rport_and_received() {
        let src: SocketAddr = "10.1.1.1:5099".parse().unwrap();
        let v = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport";
        assert_eq!(
            stamp(v, src).unwrap(),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;received=10.1.1.1;rport=5099"
        );
    }

    #[test]
    fn leaves_matching_host_alone() {
        let src: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        assert!(stamp("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa", src).is_none());
    }

    #[test]
    fn keeps_later_hops() {
        let src: SocketAddr = "10.1.1.1:5060".parse().unwrap();
        let v = "SIP/2.0/UDP host.example;branch=z9hG4bKa, SIP/2.0/UDP other;branch=z9hG4bKb";
        let out = stamp(v, src).unwrap();
        assert!(out.starts_with("SIP/2.0/UDP host.example;branch=z9hG4bKa;received=10.1.1.1,"));
        assert!(out.ends_with("SIP/2.0/UDP other;branch=z9hG4bKb"));
    }

    /// A peer's byte that is not UTF-8 goes back as it came: taken as text, each became
    /// three bytes (U+FFFD), the branch no longer matched the peer's and a Via at the
    /// parser's limit went over it.
    #[test]
    fn bytes_that_are_not_utf8_go_back_as_they_came() {
        let src: SocketAddr = "10.1.1.1:5099".parse().unwrap();
        let v = b"SIP/2.0/UDP h;branch=z9hG4bK\x9e\x85;rport, SIP/2.0/UDP p;branch=z9hG4bK\xff";
        assert_eq!(
            super::stamp(v, src).as_deref(),
            Some(
                &b"SIP/2.0/UDP h;branch=z9hG4bK\x9e\x85;received=10.1.1.1;rport=5099, SIP/2.0/UDP p;branch=z9hG4bK\xff"[..]
            )
        );
    }
}
