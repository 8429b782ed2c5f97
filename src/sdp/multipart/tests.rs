use super::*;

const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";

/// A SIP-I body: SDP, then a binary ISUP IAM that contains CRLFs, 0xff and the boundary
/// text (not at a line start).
fn sip_i() -> Vec<u8> {
    let mut b =
        b"preamble\r\n--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n".to_vec();
    b.extend_from_slice(SDP);
    b.extend_from_slice(b"\r\n--unique-boundary-1\r\nContent-Type: application/ISUP;version=itu-t92+\r\nContent-Disposition: signal;handling=optional\r\n\r\n");
    b.extend_from_slice(
        b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\r\n\xff--unique-boundary-1\x00",
    );
    b.extend_from_slice(b"\r\n--unique-boundary-1--\r\nepilogue");
    b
}

/// What a MIME reader takes for an SDP part is found as one: a folded Content-Type. What
/// cannot be read as headers is an error (an anchored call refuses it), never "no SDP";
/// so is a line that only starts like the delimiter (`--b1X`, `--b1-x`), which RFC 2046's
/// note to implementors takes for a delimiter and strict readers for content: before, it
/// was read as content, and a part after it that such readers took for SDP went on
/// unanchored. So is a boundary with a quoted `\"` (unescaped by some readers and not by
/// others).
#[test]
fn parts_are_read_as_a_mime_reader_reads_them() {
    let ct = "multipart/mixed;boundary=b1";
    let body = |first_part: &[u8]| {
        let mut b = b"--b1\r\n".to_vec();
        b.extend_from_slice(first_part);
        b.extend_from_slice(
            b"\r\n--b1\r\nContent-Type: application/ISUP\r\n\r\n\x01\x02\r\n--b1--\r\n",
        );
        b
    };
    let mut folded = b"Content-Type:\r\n application/sdp\r\n\r\n".to_vec();
    folded.extend_from_slice(SDP);
    let b = body(&folded);
    let part = locate(Some(ct), &b).unwrap().expect("the folded SDP part");
    assert_eq!(part.of(&b), SDP);
    for line in [&b"--b1X\r\n"[..], b"--b1-x\r\n", b"--b1--x\r\n"] {
        let mut longer = b"Content-Type: application/sdp\r\n\r\n".to_vec();
        longer.extend_from_slice(SDP);
        longer.extend_from_slice(line);
        longer.extend_from_slice(b"a=x\r\n");
        assert!(
            locate(Some(ct), &body(&longer)).is_err(),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    // The delimiter with padding after it, and the close with padding, are delimiters.
    let mut padded = b"Content-Type: application/sdp\r\n\r\n".to_vec();
    padded.extend_from_slice(SDP);
    let mut b = b"--b1\t\r\n".to_vec();
    b.extend_from_slice(&padded);
    b.extend_from_slice(b"\r\n--b1 \r\nContent-Type: application/ISUP\r\n\r\n\x01\r\n--b1-- \r\n");
    assert_eq!(locate(Some(ct), &b).unwrap().unwrap().of(&b), SDP);
    // A quoted `\"` in the boundary: the body delimited as written is refused, as another
    // reader would look for `--b"1`. A boundary outside RFC 2046's characters but read
    // alike by every reader (`*`, `{`) is taken.
    let delimited = |boundary: &str| {
        let mut b = format!("--{boundary}\r\n").into_bytes();
        b.extend_from_slice(&padded);
        b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        b
    };
    let quoted = r#"multipart/mixed;boundary="b\"1""#;
    assert!(locate(Some(quoted), &delimited(r#"b\"1"#)).is_err());
    // A quoted `;`: a reader cutting parameters at every `;` reads the boundary `b`.
    let cut = r#"multipart/mixed;boundary="b;1""#;
    assert!(locate(Some(cut), &delimited("b;1")).is_err());
    let starred = "multipart/mixed;boundary=\"{b*1}\"";
    let b = delimited("{b*1}");
    assert_eq!(locate(Some(starred), &b).unwrap().unwrap().of(&b), SDP);
    let bad = b"Content-Type application/sdp\r\n\r\nv=0\r\n";
    assert!(locate(Some(ct), &body(bad)).is_err());
}

#[test]
fn finds_the_sdp_part_and_rebuilds_every_other_byte() {
    let body = sip_i();
    let ct = "multipart/mixed; boundary=\"unique-boundary-1\"";
    let part = locate(Some(ct), &body).unwrap().unwrap();
    assert!(part.multipart);
    assert_eq!(part.of(&body), SDP);
    let new = b"v=0\r\nc=IN IP4 203.0.113.1\r\nm=audio 20000 RTP/AVP 8\r\n";
    let out = part.splice(&body, new);
    let r = part.range();
    assert_eq!(&out[..r.start], &body[..r.start]);
    assert_eq!(&out[r.start..r.start + new.len()], new);
    assert_eq!(&out[r.start + new.len()..], &body[r.end..]);
    // Unquoted boundary, other parameters, any case.
    let ct = "Multipart/Mixed;boundary=unique-boundary-1;foo=bar";
    assert_eq!(locate(Some(ct), &body).unwrap(), Some(part));
}

#[test]
fn an_sdp_part_put_beside_an_isup_body_is_found_and_leaves_the_isup_as_it_was() {
    // The ISUP holds CRLFs, 0xff and the first boundary the builder would pick.
    let isup = b"\x01\x00\r\n--trunkgate-aaa\xff\x00";
    let (body, ct) = with_sdp_part(
        SDP,
        isup,
        "application/ISUP;version=itu-t92+",
        &[("Content-Disposition", "signal;handling=optional")],
    )
    .unwrap();
    assert_eq!(ct, "multipart/mixed;boundary=trunkgate-aab");
    let part = locate(Some(&ct), &body).unwrap().unwrap();
    assert!(part.multipart);
    assert_eq!(part.of(&body), SDP);
    let isup_part = b"Content-Type: application/ISUP;version=itu-t92+\r\nContent-Disposition: signal;handling=optional\r\n\r\n\x01\x00\r\n--trunkgate-aaa\xff\x00\r\n--trunkgate-aab--\r\n";
    assert!(body.ends_with(isup_part));
}

#[test]
fn a_free_boundary_is_found_in_one_pass_whatever_the_parts_hold() {
    // Parts that take the first 500 boundaries, a stem at the very end, and one followed
    // by too few letters: the next one is free.
    let mut crafted = Vec::new();
    for n in 0..500usize {
        let l = |k: usize| char::from(b'a' + (k % 26) as u8);
        crafted
            .extend_from_slice(format!("trunkgate-{}{}{}", l(n / 676), l(n / 26), l(n)).as_bytes());
    }
    crafted.extend_from_slice(b"trunkgate-zz");
    assert_eq!(
        fresh_boundary(&[&crafted, b"trunkgate-"]).as_deref(),
        Some("trunkgate-atg")
    );
    // Every one taken: none.
    let mut all = Vec::new();
    for n in 0..26 * 26 * 26 {
        let l = |k: usize| char::from(b'a' + (k % 26) as u8);
        all.extend_from_slice(format!("trunkgate-{}{}{}", l(n / 676), l(n / 26), l(n)).as_bytes());
    }
    assert_eq!(fresh_boundary(&[&all]), None);
}

#[test]
fn bare_lf_bodies_and_plain_sdp() {
    let body = b"--b\nContent-Type: application/isup\n\n\x01\x02\n--b\ncontent-type: Application/SDP\n\nv=0\nm=audio 1 RTP/AVP 0\n\n--b--\n";
    let part = locate(Some("multipart/mixed;boundary=b"), body)
        .unwrap()
        .unwrap();
    assert_eq!(part.of(body), b"v=0\nm=audio 1 RTP/AVP 0\n");
    // A plain SDP body is all SDP; other types and empty bodies carry none.
    let plain = locate(Some("application/sdp"), SDP).unwrap().unwrap();
    assert!(!plain.multipart);
    assert_eq!(plain.of(SDP), SDP);
    assert_eq!(locate(Some("application/isup"), b"\x01").unwrap(), None);
    assert_eq!(locate(Some("application/sdp"), b"").unwrap(), None);
    // A body without a type may be SDP: not forwarded unanchored.
    assert_eq!(locate(None, SDP), Err(SdpError::Untyped));
    // A multipart body without SDP: nothing to anchor.
    let no_sdp = b"--b\r\nContent-Type: application/isup\r\n\r\n\x01\r\n--b--";
    assert_eq!(
        locate(Some("multipart/mixed;boundary=b"), no_sdp).unwrap(),
        None
    );
}

#[test]
fn bodies_whose_sdp_cannot_be_anchored_are_errors() {
    let body = sip_i();
    let two = [
        &b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b\r\n"[..],
        b"Content-Type: application/sdp\r\n\r\nv=0\r\n--b--",
    ]
    .concat();
    let cases: Vec<(&str, &[u8])> = vec![
        ("multipart/mixed", &body),
        ("multipart/mixed; boundary=\"unique-boundary-1", &body),
        ("multipart/mixed; boundary=\"\"", &body),
        ("multipart/mixed; boundary=other", &body),
        ("multipart/mixed; boundary=b", &two),
        (
            "multipart/mixed; boundary=b",
            b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n",
        ),
        (
            "multipart/mixed; boundary=b",
            b"--b\r\nContent-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n\r\ndj0w\r\n--b--",
        ),
        (
            "multipart/mixed; boundary=b",
            b"--b\r\nContent-Type: multipart/alternative;boundary=c\r\n\r\n--c--\r\n--b--",
        ),
        ("multipart/mixed; boundary=b", b"--b"),
    ];
    for (ct, body) in cases {
        assert!(
            matches!(locate(Some(ct), body), Err(SdpError::Multipart(_))),
            "{ct}: {:?}",
            locate(Some(ct), body)
        );
    }
    let long = format!("multipart/mixed; boundary={}", "x".repeat(71));
    assert!(locate(Some(&long), &body).is_err());
    // Many empty parts: bounded.
    let many = "--b\r\n\r\n".repeat(40) + "--b--";
    assert!(locate(Some("multipart/mixed;boundary=b"), many.as_bytes()).is_err());
}

/// Seeded mutations of a SIP-I body: never a panic, and whatever is found lies inside
/// the body and splices back to a body of the right length.
#[test]
fn mutated_multipart_bodies_never_panic() {
    let seed = sip_i();
    let ct = "multipart/mixed;boundary=unique-boundary-1";
    let mut x: u64 = 0x853c_49e6_748f_ea9b;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n.max(1) as u64) as usize
    };
    let mut found = 0;
    for _ in 0..5_000 {
        let mut b = seed.clone();
        for _ in 0..=next(3) {
            match next(3) {
                0 => b.truncate(next(b.len() + 1)),
                1 if !b.is_empty() => {
                    let i = next(b.len());
                    b[i] = b"-\r\n:;ux1"[next(8)];
                }
                _ => {
                    let i = next(b.len() + 1);
                    let cut = next(40);
                    let piece = seed[cut..cut + 20].to_vec();
                    b.splice(i..i, piece);
                }
            }
        }
        if let Ok(Some(part)) = locate(Some(ct), &b) {
            found += 1;
            let r = part.range();
            assert!(r.start <= r.end && r.end <= b.len());
            let out = part.splice(&b, b"v=0\r\n");
            assert_eq!(out.len(), b.len() - r.len() + 5);
        }
    }
    assert!(found > 500, "{found}");
}

/// A Content-Type or part header a MIME reader could take another way than ours is an
/// error (an offer refused, an answer's streams refused), never "no SDP": a `;` inside a
/// quoted parameter, two boundaries, a part's Content-Type given twice or as `c`. Before,
/// `x="a;boundary=zz"` made `zz"` our boundary: the real SDP part went through unanchored.
#[test]
fn a_body_read_two_ways_is_refused() {
    let sdp_part = |headers: &str| {
        let mut b = format!("--b1\r\n{headers}\r\n").into_bytes();
        b.extend_from_slice(SDP);
        b.extend_from_slice(b"\r\n--b1--\r\n");
        b
    };
    let plain = sdp_part("Content-Type: application/sdp\r\n");
    // A quoted parameter holding `;boundary=`: the boundary is still b1, and the SDP found.
    let part = locate(
        Some("multipart/mixed;x=\"a;boundary=zz\";boundary=b1"),
        &plain,
    )
    .unwrap()
    .expect("the SDP part");
    assert_eq!(part.of(&plain), SDP);
    for ct in [
        "multipart/mixed;boundary=b1;boundary=b2",
        "multipart/mixed;x=\"a;boundary=b1",
    ] {
        assert!(locate(Some(ct), &plain).is_err(), "{ct}");
    }
    let ct = Some("multipart/mixed;boundary=b1");
    for headers in [
        "Content-Type: text/plain\r\nContent-Type: application/sdp\r\n",
        "c: application/sdp\r\n",
        "Content-Type: application/sdp\r\nContent-Transfer-Encoding: 8bit\r\nContent-Transfer-Encoding: base64\r\n",
    ] {
        assert!(locate(ct, &sdp_part(headers)).is_err(), "{headers}");
    }
    // A boundary after a bare CR inside a part: a reader that ends lines at a CR finds a
    // second SDP part there, which we would not anchor. Before, it passed.
    let mut hidden = b"--b1\r\nContent-Type: application/isup\r\n\r\nisup\r--b1\rContent-Type: application/sdp\r\rc=IN IP4 10.0.0.5\r\n".to_vec();
    hidden.extend_from_slice(&sdp_part("Content-Type: application/sdp\r\n")[..]);
    assert!(locate(ct, &hidden).is_err());
}

/// A Content-Type is read as a SIP parser reads it: spaces around the `/` (RFC 3261 §25.1
/// SLASH), a fold, any case. One that cannot be read at all is an error, never "not SDP".
/// Before, `application / sdp` passed as another type: the SDP went on to the other leg
/// unanchored, its addresses and candidates with it.
#[test]
fn a_content_type_is_read_as_the_far_end_reads_it() {
    for ct in [
        "application / sdp",
        "application/ sdp",
        "Application /SDP ; charset=utf-8",
        "application/\r\n sdp",
        "\tapplication/sdp",
    ] {
        assert!(is_sdp(Some(ct)), "{ct:?}");
        let part = locate(Some(ct), SDP).unwrap().unwrap();
        assert_eq!(part.range(), 0..SDP.len(), "{ct:?}");
    }
    for ct in [
        "",
        "  ",
        "application",
        "application/",
        "/sdp",
        "app lication/sdp",
    ] {
        assert!(
            matches!(locate(Some(ct), SDP), Err(SdpError::Untyped)),
            "{ct:?}"
        );
    }
    assert!(!is_sdp(Some("application/sdpx")));
    assert_eq!(locate(Some("text/plain"), SDP).unwrap(), None);
    // A multipart body named with spaces, its SDP part too.
    let mut body = b"--b\r\nContent-Type: application / sdp\r\n\r\n".to_vec();
    body.extend_from_slice(SDP);
    body.extend_from_slice(b"\r\n--b--\r\n");
    let part = locate(Some("multipart / mixed ; boundary=b"), &body)
        .unwrap()
        .expect("its SDP part");
    assert_eq!(&body[part.range()], SDP);
    // A part whose Content-Type cannot be read may be SDP to the far end.
    let odd = b"--b\r\nContent-Type: sdp\r\n\r\nv=0\r\n--b--\r\n";
    assert!(locate(Some("multipart/mixed;boundary=b"), odd).is_err());
}

/// What a reader splitting as RFC 2045 and 2046 say would take for an SDP part is never
/// passed over as "no SDP": an unquoted boundary is a token (`b1 x` is `b1` there), and no
/// delimiter may follow the closing one.
#[test]
fn no_sdp_part_hides_from_us_that_a_reader_finds() {
    let mut hidden = b"--b1 x\r\nContent-Type: application/ISUP\r\n\r\n\x01\x02\r\n--b1\r\nContent-Type: application/sdp\r\n\r\n".to_vec();
    hidden.extend_from_slice(SDP);
    hidden.extend_from_slice(b"\r\n--b1 x--\r\n");
    assert!(locate(Some("multipart/mixed;boundary=b1 x"), &hidden).is_err());
    for unquoted in ["b1/x", "b1@x", "b1:x", "b1(x)", "b1?x"] {
        let ct = format!("multipart/mixed;boundary={unquoted}");
        assert!(locate(Some(&ct), b"--x\r\n\r\n--x--\r\n").is_err(), "{ct}");
    }
    // Quoted, the same characters are the boundary's own.
    let mut quoted = b"--b1 x\r\nContent-Type: application/sdp\r\n\r\n".to_vec();
    quoted.extend_from_slice(SDP);
    quoted.extend_from_slice(b"\r\n--b1 x--\r\n");
    let part = locate(Some("multipart/mixed;boundary=\"b1 x\""), &quoted)
        .unwrap()
        .expect("the SDP part");
    assert!(quoted[part.range].starts_with(b"v=0"));

    let mut after_close = b"--b1\r\nContent-Type: application/ISUP\r\n\r\n\x01\r\n--b1--\r\n--b1\r\nContent-Type: application/sdp\r\n\r\n".to_vec();
    after_close.extend_from_slice(SDP);
    after_close.extend_from_slice(b"\r\n--b1--\r\n");
    assert!(locate(Some("multipart/mixed;boundary=b1"), &after_close).is_err());
}

/// Up to 32 parts are read; one more is refused.
#[test]
fn thirty_two_parts_are_read() {
    let body = |parts: usize| {
        let mut b = Vec::new();
        for _ in 0..parts - 1 {
            b.extend_from_slice(b"--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n");
        }
        b.extend_from_slice(b"--b1\r\nContent-Type: application/sdp\r\n\r\n");
        b.extend_from_slice(SDP);
        b.extend_from_slice(b"\r\n--b1--\r\n");
        b
    };
    let ct = Some("multipart/mixed;boundary=b1");
    assert!(locate(ct, &body(32)).unwrap().is_some());
    assert!(locate(ct, &body(33)).is_err());
}
