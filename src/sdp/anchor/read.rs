//! Reading an SDP's media streams: where each wants its RTP, in which direction, over
//! what, before anything is rewritten.

use super::endpoint::{self, Direction, Repeats, direction, media_attribute, rtcp_attribute};
use super::{Endpoint, SdpError, Transport, c_address, field, lines, m_port, spaced, typed};

/// Every m= line's endpoint, in order, port-0 streams included (so indexes match the SDP's
/// sections). Refuses what it cannot read: no `v=0` first, a line that is not `x=...`, an
/// `m=` without a numeric port, a `c=` without an address, or no `m=` line at all.
pub fn read(sdp: &[u8]) -> Result<Vec<Endpoint>, SdpError> {
    let mut session_ip = None;
    let mut out: Vec<Endpoint> = Vec::new();
    // Direction attributes: the session's, and each stream's own.
    let mut session_held = None;
    // A session-level `a=fingerprint` keys every SRTP stream by DTLS.
    let mut session_dtls = false;
    let mut session_maxptime = None;
    let mut held: Vec<Option<Direction>> = Vec::new();
    // ICE said at the session's level, and per stream; and whether a candidate came.
    let mut session_ice = false;
    let mut ice: Vec<bool> = Vec::new();
    let mut candidates = false;
    // Each stream's `a=rtcp`, judged once its address is known.
    let mut rtcp = Vec::new();
    let mut repeats = Repeats::default();
    let mut first = true;
    for (i, l) in lines(sdp).enumerate() {
        let n = i + 1;
        typed(&l, n)?;
        if l.text.is_empty() {
            continue;
        }
        if first {
            if l.text != b"v=0" {
                return Err(SdpError::NoVersion);
            }
            first = false;
        }
        // A repeated `c=` is still checked, and then tells nothing.
        let repeated = repeats.repeated(l.text);
        candidates |= l.text.starts_with(b"a=candidate:");
        if l.text.starts_with(b"a=ice-ufrag:") || l.text.starts_with(b"a=ice-options:") {
            match ice.last_mut() {
                Some(i) => *i = true,
                None => session_ice = true,
            }
        }
        if let Some(m) = l.value(b"m=") {
            if !spaced(m) {
                return Err(SdpError::Syntax {
                    line: n,
                    what: "m= fields are parted by other than spaces",
                });
            }
            let port = m_port(m).ok_or(SdpError::Syntax {
                line: n,
                what: "m= has no numeric port",
            })?;
            let Some(proto) = field(m, 2) else {
                return Err(SdpError::Syntax {
                    line: n,
                    what: "m= has no transport",
                });
            };
            let g711 = field(m, 0) == Some(b"audio".as_slice())
                && m.split(|&b| b == b' ')
                    .filter(|f| !f.is_empty())
                    .skip(3)
                    .any(|f| f == b"0" || f == b"8");
            out.push(Endpoint {
                ip: session_ip,
                port,
                held: false,
                sends: false,
                receives: false,
                transport: Transport::of(proto),
                rtcp_mux: false,
                rtcp_port: None,
                g711,
                maxptime: None,
            });
            held.push(None);
            ice.push(false);
            rtcp.push(None);
        } else if let Some(dir) = direction(l.text) {
            if repeated {
                continue;
            }
            match held.last_mut() {
                Some(h) => *h = Some(dir),
                None => session_held = Some(dir),
            }
        } else if let Some(c) = l.value(b"c=") {
            let ip = c_address(c, n)?;
            if repeated {
                continue;
            }
            match out.last_mut() {
                Some(e) => e.ip = ip,
                None => session_ip = ip,
            }
        } else if let Some(a) = l.value(b"a=rtcp:") {
            if let Some(r) = rtcp.last_mut().filter(|_| !repeated) {
                *r = rtcp_attribute(a);
            }
        } else if let Some(e) = out.last_mut() {
            media_attribute(e, l.text);
        } else if l.text.starts_with(b"a=fingerprint:") {
            session_dtls = true;
        } else if let Some(v) = l.value(b"a=maxptime:") {
            session_maxptime = endpoint::maxptime(v);
        }
    }
    if first {
        return Err(SdpError::NoVersion);
    }
    if out.is_empty() {
        return Err(SdpError::NoMedia);
    }
    for (e, r) in out.iter_mut().zip(rtcp) {
        e.rtcp_port = r
            .filter(|(_, ip)| ip.is_none_or(|ip| ip.is_some() && ip == e.ip))
            .map(|(port, _)| port);
    }
    // (Not an old-style hold, which keeps its port: RFC 8840's placeholder is port 9. And
    // none with a candidate anywhere, whose default address would be named in c=.)
    let waits_for_ice = |e: &Endpoint, ice: bool| {
        !candidates
            && (ice || session_ice)
            && e.port == 9
            && e.ip.is_some_and(|ip| ip.is_unspecified())
    };
    if let Some(i) = (out.iter().zip(&ice)).position(|(e, i)| waits_for_ice(e, *i)) {
        return Err(SdpError::IceWithoutCandidates { stream: i + 1 });
    }
    for (e, h) in out.iter_mut().zip(held) {
        if session_dtls {
            endpoint::dtls_keyed(e);
        }
        e.maxptime = e.maxptime.or(session_maxptime);
        let dir = h.or(session_held).unwrap_or(Direction::SendRecv);
        e.held = dir != Direction::SendRecv || e.ip.is_some_and(|ip| ip.is_unspecified());
        e.sends = matches!(dir, Direction::SendRecv | Direction::SendOnly) && e.port != 0;
        e.receives = matches!(dir, Direction::SendRecv | Direction::RecvOnly)
            && e.port != 0
            && !e.ip.is_some_and(|ip| ip.is_unspecified());
    }
    Ok(out)
}
