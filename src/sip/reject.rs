//! A 400 for a request the parser could not read at all (a Content-Length beyond the datagram,
//! a broken request line), or a 513 for one over the size limit whose header section alone
//! was kept (RFC 3261 §21.5.14). The response needs only the headers RFC 3261 §8.2.6.2 copies, so
//! they are picked out of the raw text line by line; if any is missing, nothing is sent.

use bytes::Bytes;

/// Why a request could not be read, and so what it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Not well-formed: 400.
    Malformed,
    /// Over `[protect] max_message_bytes`, its header section alone kept: 513.
    TooLarge,
}

/// The 400 (or `status`) to send back for an unparseable request, or `None` when no
/// well-formed response is possible (a response, an ACK, or a required header missing).
pub fn reject_unparseable(status: Unreadable, raw: &[u8], why: &str) -> Option<Bytes> {
    // Without the blank line that ends the headers the datagram cannot be framed (RFC 3261
    // §7): there is no telling what its header section is, so it gets no answer.
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..head_end)?).ok()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    // A response, whatever the case of its version (the parser takes `sip/2.0` for one),
    // is never answered; nor an ACK.
    if start
        .get(..4)
        .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
        || start.split_whitespace().next()? == "ACK"
    {
        return None;
    }
    // Unfold continuation lines into their header.
    let mut headers: Vec<String> = Vec::new();
    for l in lines {
        if l.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.push(' ');
                last.push_str(l.trim());
            }
        } else {
            headers.push(l.to_string());
        }
    }
    // A line without a colon is no header at all, whatever its first letters.
    let name_of = |h: &str| {
        h.split_once(':')
            .map(|(name, _)| name.trim().to_ascii_lowercase())
            .unwrap_or_default()
    };
    let pick = |long: &str, short: Option<&str>| -> Vec<String> {
        headers
            .iter()
            .filter(|h| {
                let n = name_of(h);
                n == long || short.is_some_and(|s| n == s)
            })
            .cloned()
            .collect()
    };
    let vias = pick("via", Some("v"));
    let from = pick("from", Some("f"));
    let to = pick("to", Some("t"));
    let call_id = pick("call-id", Some("i"));
    // CSeq has no compact form: a colonless line (name "") must not pass for one.
    let cseq = pick("cseq", None);
    if vias.is_empty() || from.len() != 1 || to.len() != 1 || call_id.len() != 1 || cseq.len() != 1
    {
        return None;
    }
    // Only clean lines go back: a bare CR or LF (itself a reason the parser refused the
    // request) or any other control character would let a sender craft the "response" the
    // gateway reflects toward a spoofed victim (audit M6).
    let clean = |h: &String| !h.chars().any(|c| c.is_control() && c != '\t');
    if !vias
        .iter()
        .chain(&from)
        .chain(&to)
        .chain(&call_id)
        .chain(&cseq)
        .all(clean)
    {
        return None;
    }
    let reason: String = why.chars().filter(|c| !c.is_control()).take(100).collect();
    let mut out = match status {
        Unreadable::Malformed => format!("SIP/2.0 400 Bad Request ({reason})\r\n"),
        Unreadable::TooLarge => "SIP/2.0 513 Message Too Large\r\n".to_string(),
    };
    for v in &vias {
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str(&from[0]);
    out.push_str("\r\n");
    out.push_str(&to[0]);
    if !to_has_tag(&to[0]) {
        out.push_str(";tag=unparseable");
    }
    out.push_str("\r\n");
    out.push_str(&call_id[0]);
    out.push_str("\r\n");
    out.push_str(&cseq[0]);
    out.push_str("\r\nContent-Length: 0\r\n\r\n");
    // Never more bytes back than came in (plus the status line's reason): no amplification.
    if out.len() > raw.len() + 128 {
        return None;
    }
    Some(Bytes::from(out))
}

/// Whether a To line carries a `tag` header parameter: among the parameters after the
/// name-addr's `>` (or, for a bare addr-spec, after its first `;`), never a display name's
/// or the URI's text (`"Montag=1" <sip:b@x>`, `<sip:stag=1@x>`).
fn to_has_tag(line: &str) -> bool {
    let value = line.split_once(':').map_or("", |(_, v)| v);
    let params = match value.rfind('>') {
        Some(gt) => &value[gt + 1..],
        None => value.split_once(';').map_or("", |(_, p)| p),
    };
    params.split(';').any(|p| {
        p.split_once('=')
            .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("tag"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the blank line that ends the headers there is no header section to answer
    /// from (RFC 4475's archive copy of 3.1.2.15 is such a datagram).
    #[test]
    fn an_unframed_datagram_gets_no_answer() {
        let raw = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n";
        assert_eq!(
            reject_unparseable(Unreadable::Malformed, raw, "no blank line"),
            None
        );
        let framed = [&raw[..], b"\r\n"].concat();
        assert!(reject_unparseable(Unreadable::Malformed, &framed, "whatever").is_some());
    }

    /// Found by the core_message fuzz target: a line without a colon has the empty name,
    /// which used to equal CSeq's (absent) compact form, so a request without CSeq got a
    /// "400" carrying that line instead, which is no SIP message.
    #[test]
    fn a_colonless_line_is_not_taken_for_the_missing_cseq() {
        let raw = b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nContent-Typez application/sdp\r\nContent-Length: 99\r\n\r\n";
        assert_eq!(reject_unparseable(Unreadable::Malformed, raw, "bad"), None);
    }

    #[test]
    fn answers_a_request_with_a_bad_content_length() {
        let raw = b"INVITE sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nt: <sip:u@example.com>\r\nFrom: <sip:c@example.net>;tag=9\r\nCall-ID: x\r\nCSeq: 8\r\n INVITE\r\nContent-Length: 9999\r\n\r\nv=0\r\n";
        let r = reject_unparseable(
            Unreadable::Malformed,
            raw,
            "Content-Length exceeds the datagram",
        )
        .unwrap();
        let text = String::from_utf8_lossy(&r);
        assert!(
            text.starts_with("SIP/2.0 400 Bad Request (Content-Length exceeds the datagram)\r\n")
        );
        assert!(text.contains("\r\nt: <sip:u@example.com>;tag=unparseable\r\n"));
        // A "tag=" in the display name or the URI is no tag: ours is added all the same;
        // a real one (any case, a bare addr-spec's too) is kept as sent.
        for (to, tagged) in [
            ("t: \"Montag=1\" <sip:u@example.com>", false),
            ("t: <sip:stag=1@example.com>", false),
            ("t: <sip:u@example.com;tag=uri>", false),
            ("t: <sip:u@example.com> ; TAG=x", true),
            ("t: sip:u@example.com;tag=y", true),
        ] {
            let raw = String::from_utf8_lossy(raw).replace("t: <sip:u@example.com>", to);
            let r = reject_unparseable(Unreadable::Malformed, raw.as_bytes(), "bad").unwrap();
            let text = String::from_utf8_lossy(&r);
            let line = text.lines().find(|l| l.starts_with("t:")).unwrap();
            assert_eq!(line.ends_with(";tag=unparseable"), !tagged, "{line}");
            assert!(line.starts_with(to), "{line}");
        }
        assert!(text.contains("\r\nCSeq: 8 INVITE\r\n"));
        assert!(crate::sip::parse_datagram(r.clone(), 65535).is_ok());
    }

    /// A message over the size limit is answered from its header section alone: a 513
    /// with no reason beyond the status's own.
    #[test]
    fn a_header_section_over_the_limit_gets_513() {
        let head = b"INVITE sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:u@example.com>\r\nFrom: <sip:c@example.net>;tag=9\r\nCall-ID: x\r\nCSeq: 8 INVITE\r\nContent-Length: 99999\r\n\r\n";
        let r = reject_unparseable(Unreadable::TooLarge, head, "ignored").unwrap();
        let text = String::from_utf8_lossy(&r);
        assert!(
            text.starts_with("SIP/2.0 513 Message Too Large\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\nContent-Length: 0\r\n\r\n"), "{text}");
        let Ok(crate::sip::Message::Response(resp)) = crate::sip::parse_datagram(r.clone(), 65535)
        else {
            panic!("{text}")
        };
        assert_eq!(resp.status(), 513);
    }

    #[test]
    fn never_answers_acks_responses_or_headerless_junk() {
        assert!(
            reject_unparseable(
                Unreadable::Malformed,
                b"SIP/2.0 4294967301 x\r\nVia: a\r\n\r\n",
                "x"
            )
            .is_none()
        );
        assert!(
            reject_unparseable(
                Unreadable::Malformed,
                b"sip/2.0 200 OK\r\nVia: a\r\nContent-Length: 99\r\n\r\n",
                "x"
            )
            .is_none()
        );
        assert!(reject_unparseable(Unreadable::Malformed, b"ACK sip:x SIP/2.0\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n", "x").is_none());
        assert!(reject_unparseable(Unreadable::Malformed, b"\x00\x01garbage", "x").is_none());
        assert!(
            reject_unparseable(
                Unreadable::Malformed,
                b"INVITE sip:x SIP/2.0\r\nFrom: a\r\n\r\n",
                "x"
            )
            .is_none()
        );
    }
}
