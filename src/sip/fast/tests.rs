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

/// The magic cookie is case-sensitive (RFC 3261 §8.1.1.7), as the parser reads it: an
/// INVITE branched `Z9HG4BK…` is a legacy transaction, keyed on more than its branch, so
/// the fast path must not take it for one it can match by Via, Call-ID and CSeq alone.
#[test]
fn a_branch_whose_cookie_differs_in_case_is_left_to_the_parser() {
    let legacy = INVITE.replace("branch=z9hG4bKabc", "branch=Z9HG4BKabc");
    assert!(matches!(peek(legacy.as_bytes()), Peek::Other));
    let Message::Request(r) = parse_datagram(Bytes::from(legacy), 65535).unwrap() else {
        panic!("not a request")
    };
    let branch = r.top_via().and_then(|v| v.branch).unwrap();
    assert!(
        !branch.starts_with("z9hG4bK"),
        "the parser's reading: {branch}"
    );
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
        let _ = super::next_hop_port_for(&base[..cut], ip);
        let _ = top_via_port(&base[..cut]);
    }
    for i in 0..base.len() {
        for b in [0u8, b'\r', b'\n', b':', b';', b'>', 0xff] {
            let mut v = base.to_vec();
            v[i] = b;
            let _ = request_uri_port_for(&v, ip);
            let _ = super::next_hop_port_for(&v, ip);
            if let Peek::NewInvite { head, .. } = peek(&v) {
                let _ = refuse(&head, v.len(), "t", 5);
            }
        }
    }
}

/// The identifiers a plain reading finds (compact names too); a header present twice, or
/// a folded line, gives none of them rather than a guess.
#[test]
fn ids_reads_the_top_branch_the_to_tag_and_the_call_id_or_nothing() {
    let m =
        b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h;branch=z9hG4bKa, SIP/2.0/UDP g;branch=z9hG4bKb\r\n\
Via: SIP/2.0/UDP k;branch=z9hG4bKc\r\nt: <sip:b@h;tag=no>;tag=yes\r\ni: c1\r\n\r\n";
    let got = ids(m);
    assert_eq!(got.branch, Some(&b"z9hG4bKa"[..]));
    assert_eq!(got.to_tag, Some(&b"yes"[..]));
    assert_eq!(got.call_id, Some(&b"c1"[..]));
    let twice = b"BYE sip:a@h SIP/2.0\r\nTo: <sip:a@h>;tag=1\r\nTo: <sip:a@h>;tag=2\r\nCall-ID: c\r\nCall-ID: d\r\n\r\n";
    let got = ids(twice);
    assert_eq!((got.to_tag, got.call_id), (None, None));
    let folded = b"BYE sip:a@h SIP/2.0\r\nTo: <sip:a@h>\r\n ;tag=1\r\nCall-ID: c\r\n\r\n";
    assert_eq!(ids(folded), Ids::default());
    assert_eq!(ids(b"no head end"), Ids::default());
    // What the parser reads otherwise: a tag inside a quoted parameter (the parser sees
    // none), a Call-ID with a form feed (the parser keeps it). Before, both were read.
    let quoted =
        b"INVITE sip:a@h SIP/2.0\r\nTo: <sip:a@h>;x=\"a;tag=T;b\"\r\nCall-ID: c\x0c\r\n\r\n";
    assert_eq!((ids(quoted).to_tag, ids(quoted).call_id), (None, None));
    let named = b"BYE sip:a@h SIP/2.0\r\nTo: \"B; tag=no\" <sip:b@h>;tag=yes\r\nCall-ID: c\r\n\r\n";
    assert_eq!(
        ids(named).to_tag,
        Some(&b"yes"[..]),
        "a quoted display name is read past"
    );
}

#[test]
fn the_next_hop_is_the_top_route_when_it_names_the_address_else_the_contact() {
    use super::next_hop_port_for;
    let ip: std::net::IpAddr = "203.0.113.10".parse().unwrap();
    let req = |uri: &str, routes: &str| {
        format!(
            "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n{routes}Record-Route: <sip:203.0.113.10:7000;lr>\r\nCSeq: 2 BYE\r\n\r\n"
        )
    };
    for (uri, routes, port) in [
        // A proxy that record-routed the dialog: its port, not the Contact's host behind it.
        (
            "sip:1000@10.1.1.5:5062",
            "Route: <sip:203.0.113.10;transport=tcp;lr>\r\n",
            Some(5060),
        ),
        (
            "sip:1000@10.1.1.5",
            "route: <sip:203.0.113.10:5080;lr>, <sip:198.51.100.1;lr>\r\nRoute: <sip:198.51.100.2;lr>\r\n",
            Some(5080),
        ),
        (
            "sip:1000@10.1.1.5",
            "Route: <sips:203.0.113.10;lr>\r\n",
            Some(5061),
        ),
        // A top Route naming another host: the Contact decides, as without one.
        (
            "sip:1000@203.0.113.10:5070",
            "Route: <sip:198.51.100.1;lr>\r\n",
            Some(5070),
        ),
        (
            "sip:1000@10.1.1.5",
            "Route: <sip:198.51.100.1;lr>\r\n",
            None,
        ),
        // No Route (a Record-Route is not one): the Contact's.
        ("sip:1000@203.0.113.10:5070", "", Some(5070)),
        ("sip:1000@10.1.1.5", "", None),
        ("sip:1000@10.1.1.5", "Route: sip:203.0.113.10\r\n", None),
        (
            "sip:1000@10.1.1.5",
            "Route: <sip:203.0.113.10:99999;lr>\r\n",
            None,
        ),
        // A strict router's entry is the Request-URI; the top Route (no `;lr`) is the next
        // entry, not the next hop.
        (
            "sip:203.0.113.10:5090",
            "Route: <sip:203.0.113.10:5070>\r\n",
            Some(5090),
        ),
        (
            "sip:1000@10.1.1.5",
            "Route: <sip:203.0.113.10:5070;transport=tcp>\r\n",
            None,
        ),
        (
            "sip:1000@10.1.1.5",
            "Route: <sip:203.0.113.10:5070;LR=on;transport=tcp>\r\n",
            Some(5070),
        ),
    ] {
        assert_eq!(
            next_hop_port_for(req(uri, routes).as_bytes(), ip),
            port,
            "{uri} {routes}"
        );
    }
    assert_eq!(next_hop_port_for(b"BYE", ip), None);
    assert_eq!(next_hop_port_for(b"Route: <sip:203.0.113.10>", ip), None);
}

/// A CANCEL outside a dialog is read as plainly as a new INVITE, and names its INVITE's
/// CSeq line for the table of INVITEs let in; one with a To tag, or whose CSeq does not
/// end in its method, is not.
#[test]
fn a_cancel_names_the_invite_it_cancels() {
    let cancel = INVITE
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 7 INVITE", "CSeq: 7 CANCEL")
        .replace(";tag=uri-param-not-a-tag>", ">");
    let Peek::Cancel { head, branch } = peek(cancel.as_bytes()) else {
        panic!("{:?}", peek(cancel.as_bytes()))
    };
    assert_eq!(branch, b"z9hG4bKabc");
    assert_eq!(
        head.cancelled_cseq().as_deref(),
        Some(&b"CSeq: 7 INVITE"[..])
    );
    let tagged = cancel.replace(
        "<sip:+8610123@127.0.0.1>\r\n",
        "<sip:+8610123@127.0.0.1>;tag=x\r\n",
    );
    assert!(matches!(peek(tagged.as_bytes()), Peek::Other));
    let odd = cancel.replace("CSeq: 7 CANCEL", "CSeq: 7 INVITE");
    assert!(matches!(peek(odd.as_bytes()), Peek::Other));
}

/// A To whose `>` has no `<` before it (or whose `<` is left open) is not read here: the
/// parser reads no tag in `To: b@x>;tag=1`, and the edge must not trust one the core does
/// not see (found by the fuzzer's check that both readings agree).
#[test]
fn a_to_with_unbalanced_brackets_is_not_read_for_a_tag() {
    let bye = "BYE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bKb\r\n\
               From: <sip:b@h>;tag=x\r\nTo: a@h>;tag=332\r\nCall-ID: c9@h\r\nCSeq: 2 BYE\r\n\r\n";
    assert_eq!(ids(bye.as_bytes()).to_tag, None);
    let open = bye.replace("To: a@h>;tag=332", "To: <sip:a@h;tag=332");
    assert_eq!(ids(open.as_bytes()).to_tag, None);
    let fine = bye.replace("To: a@h>;tag=332", "To: <sip:a@h>;tag=332");
    assert_eq!(ids(fine.as_bytes()).to_tag, Some(&b"332"[..]));
    let bare = bye.replace("To: a@h>;tag=332", "To: sip:a@h;tag=332");
    assert_eq!(ids(bare.as_bytes()).to_tag, Some(&b"332"[..]));
    let invite = INVITE.replace(
        "t: <sip:+8610123@127.0.0.1;tag=uri-param-not-a-tag>",
        "t: sip:+8610123@127.0.0.1>",
    );
    assert!(matches!(peek(invite.as_bytes()), Peek::Other));
}

/// A tag or branch written twice, or with spaces about its `;` or `=`, is not read here:
/// the parser takes the first (`; tag=A;tag=B` is `A` to it), and a first textual match of
/// `;tag=` read `B` (found by review; the fuzzer's check that both readings agree had not).
#[test]
fn a_parameter_written_twice_or_spaced_is_not_read() {
    let bye = "BYE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bKb\r\n\
               From: <sip:b@h>;tag=x\r\nTo: <sip:a@h>;tag=332\r\nCall-ID: c9@h\r\nCSeq: 2 BYE\r\n\r\n";
    for odd in [
        "; tag=A;tag=B",
        ";tag =A;tag=B",
        ";tag=A;tag=B",
        ";TAG=A;tag=B",
        ";tag;tag=B",
        ";tag ;tag=B",
    ] {
        let m = bye.replace(";tag=332", odd);
        assert_eq!(ids(m.as_bytes()).to_tag, None, "{odd}");
    }
    let m = bye.replace(";tag=332", ";tagged=1;TAG=332");
    assert_eq!(ids(m.as_bytes()).to_tag, Some(&b"332"[..]));
    let m = bye.replace(";branch=z9hG4bKb", "; branch=z9hG4bKA;branch=z9hG4bKB");
    assert_eq!(ids(m.as_bytes()).branch, None);
}

/// A CANCEL names its INVITE by the INVITE's top Via value, however the INVITE's line was
/// written (several values on it) and whatever name the CANCEL gives the header (`v:`):
/// before, the whole line was compared, and such a CANCEL was not known for its INVITE's
/// (nor spared the rate under a spoofed flood).
#[test]
fn a_cancel_repeating_the_top_via_value_names_its_invite() {
    let invite = INVITE.replace(
        "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKabc;rport\r\n\
    v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlower\r\n",
        "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKabc;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlower\r\n",
    );
    let cancel = INVITE
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 7 INVITE", "CSeq: 7 CANCEL")
        .replace(";tag=uri-param-not-a-tag>", ">")
        .replace("Via: SIP/2.0/UDP 127.0.0.2", "v:  SIP/2.0/UDP 127.0.0.2");
    let (Peek::NewInvite { head: i, .. }, Peek::Cancel { head: c, .. }) =
        (peek(invite.as_bytes()), peek(cancel.as_bytes()))
    else {
        panic!("an INVITE and its CANCEL")
    };
    assert_eq!(i.request_id().0, c.request_id().0);
    assert_eq!(
        i.request_id().0,
        b"SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKabc;rport"
    );
}

/// The sent-by's host as written (an IPv6 one without brackets) beside its port.
#[test]
fn the_top_via_sent_by_host_is_read_with_its_port() {
    let msg = |via: &str| format!("SIP/2.0 200 OK\r\nVia: {via}\r\nCSeq: 1 BYE\r\n\r\n");
    let cases = [
        (
            "SIP/2.0/TCP 192.168.1.10:5062;branch=z9hG4bKx",
            Some(("192.168.1.10", 5062)),
        ),
        (
            "SIP/2.0/TCP [2001:db8::1];received=2001:db8::2",
            Some(("2001:db8::1", 5060)),
        ),
        (
            "SIP/2.0/TCP pbx.example ;branch=z9hG4bKy",
            Some(("pbx.example", 5060)),
        ),
        ("SIP/2.0/TCP :5060", None),
    ];
    for (via, want) in cases {
        let m = msg(via);
        let got = super::top_via_sent_by(m.as_bytes())
            .map(|(h, p)| (String::from_utf8_lossy(&h).into_owned(), p));
        assert_eq!(got, want.map(|(h, p)| (h.to_string(), p)), "{via}");
    }
}
