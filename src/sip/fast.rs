//! Reading a datagram without parsing it, for the edge under overload: is it a new INVITE
//! (and which transaction), or the ACK of a refusal we sent without state; and the stateless
//! 503 for such an INVITE, built from the request's own header lines.
//!
//! Everything here is conservative: any doubt (a folded header, a control character, a
//! header present twice, a To that may carry a tag) answers "not sure", and the message
//! takes the full path through the parser and the core. Nothing allocates except the reply
//! (and [`top_via_port`], for a response on a closed TCP connection, its Via's copy).

/// What a datagram is, as far as shedding is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek<'a> {
    /// An INVITE outside any dialog that can be refused here: its head, and the branch of
    /// its top Via (the transaction it starts).
    NewInvite { head: Head<'a>, branch: &'a [u8] },
    /// An ACK whose To header carries `;tag=` followed by these bytes.
    Ack { to_tag: &'a [u8] },
    /// Anything else, or not sure.
    Other,
}

/// Most Via lines a fast reply copies; a request with more takes the full path.
const MAX_VIAS: usize = 8;

/// The header lines a response copies (RFC 3261 §8.2.6.2), each as received, one line each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    vias: [&'a [u8]; MAX_VIAS],
    n_vias: usize,
    from: &'a [u8],
    to: &'a [u8],
    call_id: &'a [u8],
    cseq: &'a [u8],
}

impl Head<'_> {
    /// The top Via line, Call-ID and CSeq as received: with the top Via's branch, what one
    /// INVITE and its retransmissions share (byte for byte) and another INVITE does not,
    /// whatever else of the Via it changes (its sent-by, which the transaction layer keys
    /// on too).
    pub fn request_id(&self) -> (&[u8], &[u8], &[u8]) {
        (self.vias[0], self.call_id, self.cseq)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Other,
}

fn name_of(line: &[u8]) -> Option<(Name, &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line[..colon].trim_ascii();
    let value = line[colon + 1..].trim_ascii();
    let is = |long: &[u8], short: &[u8]| {
        name.eq_ignore_ascii_case(long) || (!short.is_empty() && name.eq_ignore_ascii_case(short))
    };
    let n = if is(b"via", b"v") {
        Name::Via
    } else if is(b"from", b"f") {
        Name::From
    } else if is(b"to", b"t") {
        Name::To
    } else if is(b"call-id", b"i") {
        Name::CallId
    } else if is(b"cseq", b"") {
        Name::CSeq
    } else {
        Name::Other
    };
    Some((n, value))
}

/// The sent-by port of a message's top Via, 5060 when it names none (RFC 3261 §18.2.2); read
/// from the head's lines as written (folded lines and the whitespace the grammar allows
/// around `/` and `:` included), so a message too large to parse again (one we built)
/// still gives it. `None` without a readable Via.
pub fn top_via_port(wire: &[u8]) -> Option<u16> {
    let head_end = memchr::memmem::find(wire, b"\r\n\r\n").unwrap_or(wire.len());
    let folded = |l: &&[u8]| l.first().is_some_and(|b| *b == b' ' || *b == b'\t');
    let mut lines = wire[..head_end]
        .split(|&b| b == b'\n')
        .skip(1)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .peekable();
    let mut value = loop {
        let line = lines.next()?;
        if folded(&line) {
            continue;
        }
        if let Some((Name::Via, v)) = name_of(line) {
            break v.to_vec();
        }
    };
    while let Some(more) = lines.next_if(folded) {
        value.push(b' ');
        value.extend_from_slice(more.trim_ascii());
    }
    // `SIP / 2.0 / TCP host [: port] ;params, next`: the sent-by follows the transport.
    let first = value.split(|&b| b == b';' || b == b',').next()?;
    let after_version = first
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .nth(1)
        .map(|(i, _)| i + 1)?;
    let rest = first[after_version..].trim_ascii_start();
    let transport_end = rest
        .iter()
        .position(|b| !b.is_ascii_alphanumeric() && !b"-.!%*_+`'~".contains(b))
        .unwrap_or(rest.len());
    if transport_end == 0 {
        return None;
    }
    let sent_by = rest[transport_end..].trim_ascii_start();
    let after_host = match sent_by.strip_prefix(b"[") {
        Some(v6) => &v6[v6.iter().position(|&b| b == b']')? + 1..],
        None => {
            let end = sent_by
                .iter()
                .position(|&b| b == b':' || b.is_ascii_whitespace())
                .unwrap_or(sent_by.len());
            if end == 0 {
                return None;
            }
            &sent_by[end..]
        }
    };
    match after_host.trim_ascii_start().strip_prefix(b":") {
        None => Some(5060),
        Some(p) => std::str::from_utf8(p.trim_ascii())
            .ok()?
            .parse()
            .ok()
            .filter(|&p| p > 0),
    }
}

/// The port a request's Request-URI names when its host is the literal address `ip`
/// (5060 when it names none, 5061 for `sips:`); `None` when it names another host or cannot
/// be read. In a dialog the Request-URI is the peer's Contact: where it listens.
pub fn request_uri_port_for(wire: &[u8], ip: std::net::IpAddr) -> Option<u16> {
    let line = &wire[..memchr::memchr(b'\n', wire).unwrap_or(wire.len())];
    let uri = line.split(|&b| b == b' ').nth(1)?;
    let (default, rest) = if uri.len() > 5 && uri[..5].eq_ignore_ascii_case(b"sips:") {
        (5061, &uri[5..])
    } else if uri.len() > 4 && uri[..4].eq_ignore_ascii_case(b"sip:") {
        (5060, &uri[4..])
    } else {
        return None;
    };
    let rest = &rest[..memchr::memchr(b'?', rest).unwrap_or(rest.len())];
    let hostport = match memchr::memrchr(b'@', rest) {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let hostport = &hostport[..memchr::memchr(b';', hostport).unwrap_or(hostport.len())];
    let (host, port) = match hostport.strip_prefix(b"[") {
        Some(v6) => {
            let close = memchr::memchr(b']', v6)?;
            (&v6[..close], &v6[close + 1..])
        }
        None => match memchr::memchr(b':', hostport) {
            Some(c) => (&hostport[..c], &hostport[c..]),
            None => (hostport, &b""[..]),
        },
    };
    let host: std::net::IpAddr = std::str::from_utf8(host).ok()?.parse().ok()?;
    if host.to_canonical() != ip.to_canonical() {
        return None;
    }
    match port.strip_prefix(b":") {
        None if port.is_empty() => Some(default),
        None => None,
        Some(p) => std::str::from_utf8(p).ok()?.parse().ok().filter(|&p| p > 0),
    }
}

/// ASCII case-insensitive search.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The header parameters of a From/To value: after the `>` of a name-addr, else all of it
/// (an addr-spec's `;` parameters are header parameters, RFC 3261 §20).
fn header_params(value: &[u8]) -> &[u8] {
    match value.iter().rposition(|&b| b == b'>') {
        Some(gt) => &value[gt + 1..],
        None => value,
    }
}

/// The value of `;name=` in `params`, up to the next `;`, `,` or space.
fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let at = find(params, name)?;
    let rest = &params[at + name.len()..];
    let end = rest
        .iter()
        .position(|&b| matches!(b, b';' | b',' | b' ' | b'\t'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|v| !v.is_empty())
}

/// Look at a datagram.
pub fn peek(raw: &[u8]) -> Peek<'_> {
    // The head with the CRLF of its last line; a message without the blank line that ends
    // the head is not one to answer here.
    let Some(head_end) = memchr::memmem::find(raw, b"\r\n\r\n") else {
        return Peek::Other;
    };
    let mut lines = raw[..head_end + 2].split_inclusive(|&b| b == b'\n');
    let Some(start) = lines.next() else {
        return Peek::Other;
    };
    let is_invite = start.starts_with(b"INVITE ");
    if !is_invite && !start.starts_with(b"ACK ") {
        return Peek::Other;
    }
    let mut head = Head {
        vias: [&[]; MAX_VIAS],
        n_vias: 0,
        from: &[],
        to: &[],
        call_id: &[],
        cseq: &[],
    };
    let mut to_value: &[u8] = &[];
    let mut cseq_value: &[u8] = &[];
    let mut via_value: &[u8] = &[];
    for line in lines {
        // Lines end in CRLF: a bare LF, a CR elsewhere, any control character or a folded
        // line means "not sure".
        let Some(line) = line.strip_suffix(b"\r\n") else {
            return Peek::Other;
        };
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            || line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Peek::Other;
        }
        let Some((name, value)) = name_of(line) else {
            return Peek::Other;
        };
        let slot = match name {
            Name::Via => {
                if head.n_vias == MAX_VIAS {
                    return Peek::Other;
                }
                if head.n_vias == 0 {
                    via_value = value;
                }
                head.vias[head.n_vias] = line;
                head.n_vias += 1;
                continue;
            }
            Name::From => &mut head.from,
            Name::To => {
                to_value = value;
                &mut head.to
            }
            Name::CallId => &mut head.call_id,
            Name::CSeq => {
                cseq_value = value;
                &mut head.cseq
            }
            Name::Other => continue,
        };
        if !slot.is_empty() {
            return Peek::Other;
        }
        *slot = line;
    }
    if head.n_vias == 0 || head.from.is_empty() || head.to.is_empty() || head.call_id.is_empty() {
        return Peek::Other;
    }
    // A quote after the name-addr's `<` (a quoted parameter value holding `>` or `tag`):
    // where the To's parameters begin is not ours to guess.
    let quoted = to_value
        .iter()
        .position(|&b| b == b'<')
        .is_some_and(|lt| to_value[lt..].contains(&b'"'));
    if quoted {
        return Peek::Other;
    }
    let to_params = header_params(to_value);
    if !is_invite {
        return match param(to_params, b";tag=") {
            Some(to_tag) => Peek::Ack { to_tag },
            None => Peek::Other,
        };
    }
    // Anything that may be a tag makes it "maybe in a dialog".
    if find(to_params, b"tag").is_some() {
        return Peek::Other;
    }
    let cseq_ok = cseq_value
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|f| !f.is_empty())
        .nth(1)
        .is_some_and(|m| m == b"INVITE");
    // A Via value may hold several (comma-separated); only the first is ours to read. Its
    // branch only where no reading could find another: one `branch` in the hop, no quote
    // (a quoted value may hold `;branch=` or a comma), and RFC 3261's (a legacy INVITE is
    // keyed on more than its branch); else the parser's reading decides.
    let top = via_value.split(|&b| b == b',').next().unwrap_or(&[]);
    let plain = !top.contains(&b'"')
        && memchr::memmem::find_iter(&top.to_ascii_lowercase(), b"branch").count() == 1;
    let branch = param(top, b";branch=")
        .filter(|b| plain && b.len() > 7 && b[..7].eq_ignore_ascii_case(b"z9hG4bK"));
    match (cseq_ok, branch) {
        (true, Some(branch)) => Peek::NewInvite { head, branch },
        _ => Peek::Other,
    }
}

/// The stateless `503 Service Unavailable` + `Retry-After` for a new INVITE, with `to_tag`.
/// `None` when it would be larger than the request plus a small margin (no amplification).
pub fn refuse(
    head: &Head<'_>,
    request_len: usize,
    to_tag: &str,
    retry_after_s: u32,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(request_len.min(2048));
    out.extend_from_slice(b"SIP/2.0 503 Service Unavailable\r\n");
    for v in &head.vias[..head.n_vias] {
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(head.from);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(head.to);
    out.extend_from_slice(b";tag=");
    out.extend_from_slice(to_tag.as_bytes());
    out.extend_from_slice(b"\r\n");
    for line in [head.call_id, head.cseq] {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!("Retry-After: {retry_after_s}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    );
    (out.len() <= request_len + 64).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::{request_uri_port_for, top_via_port};

    #[test]
    fn the_request_uris_port_is_read_for_its_own_address_only() {
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::7".parse().unwrap();
        let req = |uri: &str| format!("BYE {uri} SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n\r\n");
        for (uri, addr, port) in [
            ("sip:1000@192.0.2.7:5070;transport=tcp", ip, Some(5070)),
            ("sip:192.0.2.7;transport=tcp", ip, Some(5060)),
            ("SIPS:1000@192.0.2.7", ip, Some(5061)),
            ("sip:+1;npdi@192.0.2.7:5080?X=a@b", ip, Some(5080)),
            ("sip:1000@[2001:db8::7]:5090;transport=tcp", v6, Some(5090)),
            ("sip:1000@[2001:db8::7]", v6, Some(5060)),
            // Another host (a NATed phone's private Contact, a name): not known here.
            ("sip:1000@10.0.0.5:5070", ip, None),
            ("sip:1000@pbx.example.net:5070", ip, None),
            ("sip:1000@192.0.2.7:0", ip, None),
            ("sip:1000@192.0.2.7:99999", ip, None),
            ("sip:1000@192.0.2.7x", ip, None),
            ("tel:+1000", ip, None),
            ("sip:", ip, None),
        ] {
            assert_eq!(
                request_uri_port_for(req(uri).as_bytes(), addr),
                port,
                "{uri}"
            );
        }
        assert_eq!(request_uri_port_for(b"BYE", ip), None);
        assert_eq!(request_uri_port_for(b"", ip), None);
    }

    #[test]
    fn the_top_vias_port_is_read_from_its_line() {
        let msg = |via: &str| format!("SIP/2.0 200 OK\r\n{via}\r\nCSeq: 1 INVITE\r\n\r\n");
        for (via, port) in [
            ("Via: SIP/2.0/TCP 10.0.0.2:5070;branch=z9hG4bKa", Some(5070)),
            ("v: SIP/2.0/TCP pbx.example;branch=z9hG4bKa", Some(5060)),
            (
                "VIA:  SIP/2.0/TCP [2001:db8::1]:5071 ;branch=x, SIP/2.0/UDP h:9",
                Some(5071),
            ),
            ("Via: SIP/2.0/TCP [2001:db8::1];rport", Some(5060)),
            ("Via: SIP/2.0/TCP h:0", None),
            ("Via: SIP/2.0/TCP h:99999", None),
            ("Via: garbage", None),
            ("X-Via: SIP/2.0/TCP h:7", None),
            // Whitespace the grammar allows, and a folded line.
            ("Via: SIP / 2.0 / TCP 10.0.0.2:5070;branch=x", Some(5070)),
            ("Via: SIP/2.0/TCP\r\n 10.0.0.2:5070;branch=x", Some(5070)),
            ("Via: SIP/2.0/TCP host : 5070;branch=x", Some(5070)),
            ("Via: SIP/2.0/TCP 10.0.0.2:5070 ;branch=x", Some(5070)),
            ("Via: SIP/2.0/TCP", None),
        ] {
            assert_eq!(top_via_port(msg(via).as_bytes()), port, "{via}");
        }
        // However large the message (its body past any parse limit).
        let big = format!("{}{}", msg("Via: SIP/2.0/TCP h:5080"), "x".repeat(100_000));
        assert_eq!(top_via_port(big.as_bytes()), Some(5080));
    }

    use super::*;
    use crate::sip::{Hdr, Message, parse_datagram};
    use bytes::Bytes;

    const INVITE: &str = "INVITE sip:+8610123@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKabc;rport\r\n\
        v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlower\r\n\
        Max-Forwards: 70\r\n\
        From: \"Alice\" <sip:1000@127.0.0.2>;tag=a1\r\n\
        t: <sip:+8610123@127.0.0.1;tag=uri-param-not-a-tag>\r\n\
        Call-ID: c1@127.0.0.2\r\n\
        CSeq: 7 INVITE\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn a_new_invite_is_recognised_and_refused_with_a_well_formed_503() {
        let Peek::NewInvite { head, branch } = peek(INVITE.as_bytes()) else {
            panic!("{:?}", peek(INVITE.as_bytes()))
        };
        assert_eq!(branch, b"z9hG4bKabc");
        let resp = refuse(&head, INVITE.len(), "ovtag", 5).unwrap();
        let Message::Response(r) = parse_datagram(Bytes::from(resp), 65535).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(r.status(), 503);
        assert_eq!(r.header(&Hdr::RETRY_AFTER).as_deref(), Some("5"));
        assert_eq!(r.to_tag().as_deref(), Some("ovtag"));
        assert_eq!(r.from_tag().as_deref(), Some("a1"));
        assert_eq!(r.call_id().as_deref(), Some("c1@127.0.0.2"));
        assert_eq!(r.cseq().map(|c| c.0), Some(7));
        // Both Vias, in order.
        let text = String::from_utf8_lossy(&r.to_bytes()).into_owned();
        let top = text.find("branch=z9hG4bKabc").unwrap();
        let lower = text.find("branch=z9hG4bKlower").unwrap();
        assert!(top < lower, "{text}");
    }

    #[test]
    fn in_dialog_or_doubtful_invites_take_the_full_path() {
        let cases = [
            // In a dialog.
            INVITE.replace(";tag=uri-param-not-a-tag>", ">;tag=x"),
            // A bare LF line end, a folded header, a control character.
            INVITE.replace("Call-ID: c1@127.0.0.2\r\n", "Call-ID: c1@127.0.0.2\n"),
            INVITE.replace("CSeq: 7 INVITE\r\n", "CSeq: 7\r\n INVITE\r\n"),
            INVITE.replace("c1@127", "c1\x01@127"),
            // A header twice, one missing, no branch, a CSeq for another method.
            INVITE.replace("CSeq: 7 INVITE\r\n", "CSeq: 7 INVITE\r\nCSeq: 8 INVITE\r\n"),
            INVITE.replace("Call-ID: c1@127.0.0.2\r\n", ""),
            INVITE.replace(";branch=z9hG4bKabc", ""),
            INVITE.replace("CSeq: 7 INVITE", "CSeq: 7 OPTIONS"),
            // Not an INVITE at all.
            INVITE.replace("INVITE sip:", "OPTIONS sip:"),
            // A branch another reading could take otherwise: in a quoted value, twice, not
            // RFC 3261's; and a To whose parameters a quoted `>` hides. Before, each was a
            // new INVITE here with a branch (or no tag) the parser did not agree with.
            INVITE.replace(
                ";branch=z9hG4bKabc",
                ";x=\";branch=z9hG4bKabc,\";branch=z9hG4bKnew",
            ),
            INVITE.replace(";branch=z9hG4bKabc", ";branch=z9hG4bKabc;Branch=z9hG4bKnew"),
            INVITE.replace(";branch=z9hG4bKabc", ";branch=abc"),
            INVITE.replace(
                "t: <sip:+8610123@127.0.0.1;tag=uri-param-not-a-tag>",
                "t: <sip:+8610123@127.0.0.1>;tag=abc;p=\"<x>\"",
            ),
            "SIP/2.0 200 OK\r\n\r\n".to_string(),
            String::new(),
        ];
        for c in cases {
            assert_eq!(peek(c.as_bytes()), Peek::Other, "{c:?}");
        }
    }

    /// Two INVITEs differing only in their top Via's sent-by are two transactions to the
    /// core, and two keys here: a resend with another sent-by is no retransmission.
    #[test]
    fn the_top_via_line_is_part_of_the_request_id() {
        let other = INVITE.replace("127.0.0.2:5060;branch", "127.0.0.9:5060;branch");
        let (Peek::NewInvite { head: a, .. }, Peek::NewInvite { head: b, .. }) =
            (peek(INVITE.as_bytes()), peek(other.as_bytes()))
        else {
            panic!("both are new INVITEs")
        };
        assert_ne!(a.request_id(), b.request_id());
        assert_eq!(a.request_id(), a.request_id());
    }

    #[test]
    fn an_ack_names_its_to_tag() {
        let ack = INVITE
            .replace("INVITE sip:", "ACK sip:")
            .replace("CSeq: 7 INVITE", "CSeq: 7 ACK")
            .replace(";tag=uri-param-not-a-tag>", ">;tag=ov-1234");
        assert_eq!(peek(ack.as_bytes()), Peek::Ack { to_tag: b"ov-1234" });
    }

    #[test]
    fn the_reply_is_never_much_larger_than_the_request() {
        let Peek::NewInvite { head, .. } = peek(INVITE.as_bytes()) else {
            panic!()
        };
        assert!(refuse(&head, 100, "t", 5).is_none());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic fuzz: every prefix and single-byte corruption of a request.
        let base = INVITE.as_bytes();
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        for cut in 0..base.len() {
            let _ = peek(&base[..cut]);
            let _ = request_uri_port_for(&base[..cut], ip);
            let _ = top_via_port(&base[..cut]);
        }
        for i in 0..base.len() {
            for b in [0u8, b'\r', b'\n', b':', b';', b'>', 0xff] {
                let mut v = base.to_vec();
                v[i] = b;
                let _ = request_uri_port_for(&v, ip);
                if let Peek::NewInvite { head, .. } = peek(&v) {
                    let _ = refuse(&head, v.len(), "t", 5);
                }
            }
        }
    }
}
