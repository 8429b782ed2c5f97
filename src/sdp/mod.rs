//! SDP, edited line by line: the gateway changes only the lines a profile asks it to and
//! forwards every other byte as it came. `sdp-rs` reads the description (to find audio
//! sections, codecs and the current ptime); edits never re-serialise it.

use bytes::Bytes;

/// Whether a Content-Type names an SDP body (`application/sdp`, any case, any parameters).
pub fn is_sdp(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("application/sdp"))
}

/// What a ptime rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtimeEdit {
    pub body: Bytes,
    /// The ptime values found before the edit (per audio section; None where absent).
    pub before: Vec<Option<String>>,
    pub changed: bool,
}

/// Set `a=ptime:N` in every audio media section: replace an existing `a=ptime` line, or add
/// one at the end of the section. Session-level `a=ptime` lines are rewritten too. Returns
/// `None` when the body has no audio section (nothing to do).
pub fn set_ptime(body: &[u8], ptime: u16) -> Option<PtimeEdit> {
    let text = std::str::from_utf8(body).ok()?;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let new_line = format!("a=ptime:{ptime}");
    let mut out: Vec<String> = Vec::new();
    let mut before = Vec::new();
    let mut in_audio = false;
    let mut seen_in_section = false;
    let mut any_audio = false;
    let close_section =
        |out: &mut Vec<String>, in_audio: bool, seen: bool, before: &mut Vec<Option<String>>| {
            if in_audio && !seen {
                // Insert before trailing empty lines so the body keeps its final line break.
                let at = out
                    .iter()
                    .rposition(|l| !l.is_empty())
                    .map(|i| i + 1)
                    .unwrap_or(out.len());
                out.insert(at, new_line.clone());
                before.push(None);
            }
        };
    for line in text.split(eol) {
        if line.starts_with("m=") {
            close_section(&mut out, in_audio, seen_in_section, &mut before);
            in_audio = line.starts_with("m=audio ");
            any_audio |= in_audio;
            seen_in_section = false;
            out.push(line.to_string());
            continue;
        }
        if let Some(v) = line.strip_prefix("a=ptime:") {
            if in_audio {
                before.push(Some(v.trim().to_string()));
                seen_in_section = true;
            }
            out.push(new_line.clone());
            continue;
        }
        out.push(line.to_string());
    }
    close_section(&mut out, in_audio, seen_in_section, &mut before);
    if !any_audio {
        return None;
    }
    let joined = out.join(eol);
    let changed = joined.as_bytes() != body;
    Some(PtimeEdit {
        body: Bytes::from(joined),
        before,
        changed,
    })
}

/// Audio codecs (rtpmap encoding names, or static payload numbers) and ptime per audio
/// section, read with sdp-rs. `None` when the body is not SDP it can read.
pub fn audio_summary(body: &[u8]) -> Option<Vec<(Vec<String>, Option<f32>)>> {
    use sdp_rs::lines::attribute::Attribute;
    use sdp_rs::lines::media::MediaType;
    let text = std::str::from_utf8(body).ok()?;
    let sd: sdp_rs::SessionDescription = text.parse().ok()?;
    let session_ptime = sd.attributes.iter().find_map(|a| match a {
        Attribute::Ptime(p) => Some(*p),
        _ => None,
    });
    Some(
        sd.media_descriptions
            .iter()
            .filter(|m| m.media.media == MediaType::Audio)
            .map(|m| {
                let mut codecs: Vec<String> = m
                    .attributes
                    .iter()
                    .filter_map(|a| match a {
                        Attribute::Rtpmap(r) => Some(r.encoding_name.clone()),
                        _ => None,
                    })
                    .collect();
                if codecs.is_empty() {
                    codecs = m.media.fmt.split_whitespace().map(String::from).collect();
                }
                let ptime = m
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        Attribute::Ptime(p) => Some(*p),
                        _ => None,
                    })
                    .or(session_ptime);
                (codecs, ptime)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=ptime:30\r\na=sendrecv\r\nm=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

    #[test]
    fn replaces_existing_ptime_and_touches_nothing_else() {
        let e = set_ptime(OFFER.as_bytes(), 20).unwrap();
        let want = OFFER.replace("a=ptime:30", "a=ptime:20");
        assert_eq!(std::str::from_utf8(&e.body).unwrap(), want);
        assert_eq!(e.before, vec![Some("30".to_string())]);
        assert!(e.changed);
    }

    #[test]
    fn inserts_at_the_end_of_each_audio_section() {
        let offer = OFFER.replace("a=ptime:30\r\n", "");
        let e = set_ptime(offer.as_bytes(), 20).unwrap();
        let body = std::str::from_utf8(&e.body).unwrap();
        assert!(
            body.contains("a=rtpmap:8 PCMA/8000\r\na=sendrecv\r\na=ptime:20\r\nm=video"),
            "{body}"
        );
        assert!(!body["m=video".len()..].contains("a=ptime:20\r\na=rtpmap:96"));
        // Last section audio: insertion keeps the final CRLF.
        let audio_last = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n";
        let e = set_ptime(audio_last.as_bytes(), 40).unwrap();
        assert_eq!(
            std::str::from_utf8(&e.body).unwrap(),
            format!("{audio_last}a=ptime:40\r\n")
        );
    }

    #[test]
    fn same_ptime_is_no_change_and_no_audio_is_none() {
        let offer = OFFER.replace("a=ptime:30", "a=ptime:20");
        assert!(!set_ptime(offer.as_bytes(), 20).unwrap().changed);
        assert!(set_ptime(b"v=0\r\nm=video 1 RTP/AVP 96\r\n", 20).is_none());
        assert!(set_ptime(&[0xff, 0xfe], 20).is_none());
    }

    #[test]
    fn reads_codecs_and_ptime_with_sdp_rs() {
        let s = audio_summary(OFFER.as_bytes()).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0, vec!["PCMU".to_string(), "PCMA".to_string()]);
        assert_eq!(s[0].1, Some(30.0));
    }
}

/// Where one media stream of an SDP wants its RTP: the connection address in force for its
/// m= line (media-level c= over session-level c=) and its port. Port 0 is a rejected stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Option<std::net::IpAddr>,
    pub port: u16,
}

/// Every m= line's endpoint, in order.
pub fn endpoints(body: &[u8]) -> Option<Vec<Endpoint>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut session_ip = None;
    let mut out: Vec<Endpoint> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let port = m
                .split_whitespace()
                .nth(1)?
                .split('/')
                .next()?
                .parse()
                .ok()?;
            out.push(Endpoint {
                ip: session_ip,
                port,
            });
        } else if let Some(c) = line.strip_prefix("c=") {
            let ip = c
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next()?.parse().ok());
            match out.last_mut() {
                Some(e) => e.ip = ip,
                None => session_ip = ip,
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Point every stream of an SDP at the gateway: c= lines (session and media level) get `ip`,
/// the n-th m= line gets `ports[n]` (streams with port 0 stay rejected), `a=rtcp:` gets port+1
/// and `ip`. Every other line is kept byte for byte.
pub fn anchor(body: &[u8], ip: std::net::IpAddr, ports: &[u16]) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut index: Option<usize> = None;
    let mut out: Vec<String> = Vec::new();
    for line in text.split(eol) {
        if let Some(m) = line.strip_prefix("m=") {
            let i = index.map_or(0, |i| i + 1);
            index = Some(i);
            let fields: Vec<&str> = m.splitn(3, ' ').collect();
            let media = fields.first().copied().unwrap_or("");
            let old = fields.get(1).copied().unwrap_or("0");
            // A stream the gateway has no port for is refused (port 0) rather than leaking
            // the peer's address.
            let new_port = match ports.get(i) {
                _ if old.split('/').next() == Some("0") => old.to_string(),
                Some(p) => p.to_string(),
                None => "0".to_string(),
            };
            out.push(match fields.get(2) {
                Some(rest) => format!("m={media} {new_port} {rest}"),
                None => format!("m={media} {new_port}"),
            });
        } else if line.starts_with("c=") {
            out.push(format!("c=IN {family} {ip}"));
        } else if let Some(r) = line.strip_prefix("a=rtcp:") {
            let port = index.and_then(|i| ports.get(i)).map(|p| p + 1);
            match port {
                Some(p) => out.push(format!("a=rtcp:{p} IN {family} {ip}")),
                None => out.push(format!("a=rtcp:{r}")),
            }
        } else if let Some(o) = line.strip_prefix("o=") {
            // The origin names the creator's host too: replace its address field only.
            let mut f: Vec<String> = o.split(' ').map(String::from).collect();
            if f.len() == 6 {
                f[4] = family.to_string();
                f[5] = ip.to_string();
            }
            out.push(format!("o={}", f.join(" ")));
        } else {
            out.push(line.to_string());
        }
    }
    Some(Bytes::from(out.join(eol)))
}

#[cfg(test)]
mod anchor_tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:4001\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 192.0.2.11\r\n";

    #[test]
    fn reads_endpoints_with_media_level_connection() {
        let e = endpoints(OFFER.as_bytes()).unwrap();
        assert_eq!(
            e[0],
            Endpoint {
                ip: Some("192.0.2.10".parse().unwrap()),
                port: 4000
            }
        );
        assert_eq!(
            e[1],
            Endpoint {
                ip: Some("192.0.2.11".parse().unwrap()),
                port: 0
            }
        );
    }

    #[test]
    fn anchoring_names_only_the_gateway_and_keeps_other_lines() {
        let out = anchor(
            OFFER.as_bytes(),
            "203.0.113.5".parse().unwrap(),
            &[20000, 20002],
        )
        .unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            "v=0\r\no=alice 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:20001 IN IP4 203.0.113.5\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 203.0.113.5\r\n"
        );
        assert!(!text.contains("192.0.2."));
    }
}
