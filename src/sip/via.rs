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
}

/// Rewrite the first hop of a Via header value with `received` and (when asked for) `rport`.
/// Returns `None` when nothing needs to change.
pub(crate) fn stamp(value: &str, src: SocketAddr) -> Option<String> {
    let end = sipx_sip::headers::via::first_hop_end(value.as_bytes()).min(value.len());
    let (first, rest) = value.split_at(end);
    // A quoted parameter value may hold `;`: split outside quotes, or the parameter
    // would be cut in two and the Via no longer parse.
    let mut parts = super::split_params(first).into_iter();
    let sent = parts.next()?.trim_end().to_string();
    let params: Vec<&str> = parts.collect();
    let wants_rport = params
        .iter()
        .any(|p| p.trim().eq_ignore_ascii_case("rport"));
    let host = sent
        .rsplit(' ')
        .next()
        .map(|hp| {
            if let Some(stripped) = hp.strip_prefix('[') {
                stripped.split(']').next().unwrap_or("").to_string()
            } else {
                hp.split(':').next().unwrap_or("").to_string()
            }
        })
        .unwrap_or_default();
    let src_ip = src.ip().to_string();
    if !wants_rport && host == src_ip {
        return None;
    }
    let mut out = sent;
    for p in params {
        let name = p.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("rport") || name.eq_ignore_ascii_case("received") {
            continue;
        }
        out.push(';');
        out.push_str(p);
    }
    out.push_str(";received=");
    out.push_str(&src_ip);
    if wants_rport {
        out.push_str(&format!(";rport={}", src.port()));
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
