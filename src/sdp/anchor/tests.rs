use super::*;

const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:4001\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 192.0.2.11\r\n";

/// A BUNDLE group is not offered or answered through the relay, which gives each section
/// ports of its own: without it the far end sends each stream to its section's port
/// (RFC 8843 §7.3.3). Before, the group went on over distinct ports, which RFC 8843 §7.3.1
/// forbids, and a bundling endpoint sent its video to the audio stream's relay.
#[test]
fn anchored_sdp_offers_no_bundle_over_its_distinct_ports() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=group:LS 0 1\r\nm=audio 6000 RTP/AVP 0\r\na=mid:0\r\nm=video 6000 RTP/AVP 96\r\na=mid:1\r\nm=audio 0 RTP/AVP 0\r\na=bundle-only\r\na=mid:2\r\n";
    let ip = "198.51.100.1".parse().unwrap();
    let out = anchor_streams(sdp.as_bytes(), ip, &[Some(30000), Some(30002), None]).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        !text.contains("BUNDLE") && !text.contains("bundle-only"),
        "{text}"
    );
    assert!(
        text.contains("a=group:LS 0 1\r\n"),
        "other groups stay: {text}"
    );
    assert!(
        text.contains("m=audio 30000 ") && text.contains("m=video 30002 "),
        "{text}"
    );
    assert!(
        text.contains("m=audio 0 ") && text.contains("a=mid:2\r\n"),
        "{text}"
    );
}

#[test]
fn anchored_sdp_names_no_source_of_the_endpoint() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\na=msid-semantic: WMS s1\r\nm=audio 4000 RTP/AVP 0\r\na=ssrc:1234 cname:sip:1001@10.0.0.5\r\na=ssrc:1234 msid:s1 a1\r\na=ssrc-group:FID 1234 5678\r\na=msid:s1 a1\r\na=sendrecv\r\n";
    let out = anchor_streams(
        sdp.as_bytes(),
        "198.51.100.1".parse().unwrap(),
        &[Some(30000)],
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("ssrc") && !text.contains("msid"), "{text}");
    assert!(!text.contains("10.0.0.5"), "{text}");
    assert!(text.contains("a=sendrecv\r\n"), "{text}");
}

#[test]
fn anchored_sdp_names_no_other_address_or_login_of_the_endpoint() {
    let sdp = "v=0\r\no=alice-yealink 7 8 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        a=source-filter: incl IN IP4 * 10.0.0.5\r\n\
        m=audio 4000 RTP/AVP 0\r\na=altc:1 IP6 2001:db8::5 4000 4001\r\na=altc:2 IP4 10.0.0.5 4000\r\n\
        a=source-filter: excl IN IP4 * 10.0.0.6\r\na=ccap:1 IN IP6 2001:db8::5\r\n\
        m=message 7000 TCP/MSRP *\r\na=path:msrp://10.0.0.5:7000/s1;tcp\r\na=accept-types:text/plain\r\n";
    let out = anchor_streams(
        sdp.as_bytes(),
        "198.51.100.1".parse().unwrap(),
        &[Some(30000), None],
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text,
        "v=0\r\no=- 7 8 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
        m=audio 30000 RTP/AVP 0\r\nm=message 0 TCP/MSRP *\r\na=accept-types:text/plain\r\n"
    );
}

/// An SDP without a connection line, at the session level or in some section, is sent
/// on with the gateway's at the session level (RFC 4566 §5.7), in its place before `t=`;
/// one whose every section has its own gets none added. Before, the far end got streams
/// at the gateway's ports and no address to send them to.
#[test]
fn anchored_sdp_without_a_connection_line_gets_the_gateways() {
    let ip: IpAddr = "198.51.100.1".parse().unwrap();
    let bare = b"v=0\r\no=x 1 1 IN IP4 10.0.0.5\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(read(bare).unwrap()[0].ip, None);
    let out = anchor_streams(bare, ip, &[Some(30000)]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n"
    );
    // One section with its own, the other without: the session gets one.
    let half = b"v=0\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4002 RTP/AVP 0\r\n";
    let out = anchor_streams(half, ip, &[Some(30000), Some(30002)]).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("c=IN IP4 198.51.100.1").count(), 2, "{text}");
    assert!(
        text.contains("s=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0"),
        "{text}"
    );
    // Every section with its own: nothing added.
    let each = b"v=0\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.5\r\n";
    let out = anchor_streams(each, ip, &[Some(30000)]).unwrap();
    assert_eq!(String::from_utf8_lossy(&out).matches("c=").count(), 1);
}

#[test]
fn reads_endpoints_with_media_level_connection() {
    let e = read(OFFER.as_bytes()).unwrap();
    assert_eq!(
        e[0],
        Endpoint {
            ip: Some("192.0.2.10".parse().unwrap()),
            port: 4000,
            held: false,
            sends: true,
            receives: true,
            transport: Transport::Rtp,
            rtcp_mux: false,
            rtcp_port: Some(4001),
            g711: true,
            maxptime: None,
        }
    );
    assert_eq!(
        e[1],
        Endpoint {
            ip: Some("192.0.2.11".parse().unwrap()),
            port: 0,
            held: false,
            sends: false,
            receives: false,
            transport: Transport::Rtp,
            rtcp_mux: false,
            rtcp_port: None,
            g711: false,
            maxptime: None,
        }
    );
}

#[test]
fn hold_is_read_from_direction_attributes_and_the_null_address() {
    // One flag of each stream of `sdp` (written with bare LFs).
    let each = |sdp: &str, flag: fn(&Endpoint) -> bool| -> Vec<bool> {
        let streams = read(sdp.replace('\n', "\r\n").as_bytes()).unwrap();
        streams.iter().map(flag).collect()
    };
    let held = |sdp: &str| each(sdp, |e| e.held);
    let head = "v=0\no=a 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n";
    assert_eq!(held(&format!("{head}m=audio 4000 RTP/AVP 0\n")), [false]);
    assert_eq!(
        held(&format!("{head}m=audio 4000 RTP/AVP 0\na=sendonly\n")),
        [true]
    );
    assert_eq!(
        held(&format!("{head}m=audio 4000 RTP/AVP 0\na=inactive\n")),
        [true]
    );
    // Session level applies to streams without their own; their own wins.
    assert_eq!(
        held(&format!(
            "{head}a=recvonly\nm=audio 4000 RTP/AVP 0\nm=audio 4002 RTP/AVP 0\na=sendrecv\n"
        )),
        [true, false]
    );
    let old_style =
        "v=0\no=a 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 4000 RTP/AVP 0\n";
    assert_eq!(held(old_style), [true]);
    // Whether the SDP's sender sends: not when it only receives, is inactive or refuses.
    let sends = |sdp: &str| each(sdp, |e| e.sends);
    assert_eq!(
        sends(&format!(
            "{head}a=recvonly\nm=audio 4000 RTP/AVP 0\nm=audio 4002 RTP/AVP 0\na=sendonly\nm=video 0 RTP/AVP 96\nm=audio 4004 RTP/AVP 0\na=inactive\n"
        )),
        [false, true, false, false]
    );
    assert_eq!(sends(old_style), [true]);
    let receives = |sdp: &str| each(sdp, |e| e.receives);
    assert_eq!(
        receives(&format!(
            "{head}a=recvonly\nm=audio 4000 RTP/AVP 0\nm=audio 4002 RTP/AVP 0\na=sendonly\nm=video 0 RTP/AVP 96\nm=audio 4004 RTP/AVP 0\na=sendrecv\n"
        )),
        [true, false, false, true]
    );
    assert_eq!(receives(old_style), [false]);
}

#[test]
fn anchoring_names_only_the_gateway_and_keeps_other_lines() {
    let out = anchor_streams(
        OFFER.as_bytes(),
        "203.0.113.5".parse().unwrap(),
        &[Some(20000), Some(20002)],
    )
    .unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    assert_eq!(
        text,
        "v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp:20001 IN IP4 203.0.113.5\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 203.0.113.5\r\n"
    );
    assert!(!text.contains("192.0.2."));
}

#[test]
fn mixed_line_ends_are_read_and_rewritten_alike() {
    // The audio section ends its lines in bare LF: its c= and a=rtcp are rewritten too.
    let offer = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=\xe9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\nc=IN IP4 192.0.2.11\na=rtcp:4001 IN IP4 192.0.2.11\n";
    let eps = read(offer).unwrap();
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].ip, Some("192.0.2.11".parse().unwrap()));
    let out = anchor_streams(offer, "203.0.113.5".parse().unwrap(), &[Some(20000)]).unwrap();
    assert_eq!(
            &out[..],
            &b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\nc=IN IP4 203.0.113.5\na=rtcp:20001 IN IP4 203.0.113.5\n"[..]
        );
}

/// Fuzz finding F6: an `m=` line with runs of spaces was read one way (fields between
/// the runs) and rewritten another (split at each space), so the anchored line no
/// longer parsed and the gateway's port stood where the media type belongs.
#[test]
fn an_m_line_with_runs_of_spaces_is_rewritten_as_it_is_read() {
    let offer = b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=  audio   4000  RTP/AVP 0 8\r\n";
    assert_eq!(read(offer).unwrap()[0].port, 4000);
    let gw = "203.0.113.5".parse().unwrap();
    let out = anchor_streams(offer, gw, &[Some(20000)]).unwrap();
    assert!(
        String::from_utf8_lossy(&out).contains("\r\nm=audio 20000 RTP/AVP 0 8\r\n"),
        "{out:?}"
    );
    assert_eq!(read(&out).unwrap()[0].port, 20000);
}

#[test]
fn port_zero_sections_are_identified_get_no_ports_and_stay_at_zero() {
    let mut offer =
        String::from("v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n");
    for _ in 0..50 {
        offer.push_str("m=audio 0 RTP/AVP 0\r\na=rtcp:9 IN IP4 192.0.2.10\r\n");
    }
    offer.push_str("m=audio 4000 RTP/AVP 0\r\n");
    let eps = read(offer.as_bytes()).unwrap();
    assert_eq!(eps.len(), 51);
    assert_eq!(eps.iter().filter(|e| e.is_rejected()).count(), 50);
    // One active stream: within the limit, whatever the number of port-0 sections.
    assert_eq!(limit_streams(&eps, DEFAULT_MAX_STREAMS), Ok(1));
    // Ports only where a stream is active; a port given to a port-0 section is ignored.
    let mut ports = vec![None; 50];
    ports[0] = Some(30000);
    ports.push(Some(20000));
    let out = anchor_streams(offer.as_bytes(), "203.0.113.5".parse().unwrap(), &ports).unwrap();
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert_eq!(text.matches("m=audio 0 RTP/AVP 0\r\n").count(), 50);
    assert!(text.ends_with("m=audio 20000 RTP/AVP 0\r\n"), "{text}");
    assert!(
        !text.contains("a=rtcp"),
        "refused streams keep no RTCP address"
    );
    assert!(!text.contains("192.0.2."));
}

#[test]
fn more_active_streams_than_max_streams_is_an_error() {
    let mut offer = String::from("v=0\r\nc=IN IP4 192.0.2.10\r\n");
    for i in 0..5 {
        offer.push_str(&format!("m=audio {} RTP/AVP 0\r\n", 4000 + 2 * i));
    }
    let eps = read(offer.as_bytes()).unwrap();
    assert_eq!(
        limit_streams(&eps, DEFAULT_MAX_STREAMS),
        Err(SdpError::TooManyStreams { found: 5, max: 4 })
    );
    assert_eq!(limit_streams(&eps, 5), Ok(5));
}

#[test]
fn unreadable_sdp_is_a_typed_error() {
    let cases: Vec<(&[u8], SdpError)> = vec![
        (b"", SdpError::NoVersion),
        (b"\r\n", SdpError::NoVersion),
        (b"o=- 1 1 IN IP4 h\r\nv=0\r\n", SdpError::NoVersion),
        (b"v=1\r\nm=audio 1 RTP/AVP 0\r\n", SdpError::NoVersion),
        (b"v=0\r\ns=-\r\n", SdpError::NoMedia),
        (
            b"v=0\r\nm=audio x RTP/AVP 0\r\n",
            SdpError::Syntax {
                line: 2,
                what: "m= has no numeric port",
            },
        ),
        (
            b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
            SdpError::Syntax {
                line: 2,
                what: "m= has no numeric port",
            },
        ),
        (
            b"v=0\r\nm=audio 4000\r\n",
            SdpError::Syntax {
                line: 2,
                what: "m= has no transport",
            },
        ),
        (
            b"v=0\r\nc=IN IP4\r\nm=audio 1 RTP/AVP 0\r\n",
            SdpError::Syntax {
                line: 2,
                what: "c= is not \"IN <family> <address>\"",
            },
        ),
        (
            b"v=0\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 \xff\r\n",
            SdpError::Syntax {
                line: 3,
                what: "c= address is not ASCII",
            },
        ),
        (
            b"v=0\r\nhello\r\nm=audio 1 RTP/AVP 0\r\n",
            SdpError::Syntax {
                line: 2,
                what: "not a <type>=<value> line",
            },
        ),
        (
            b"\xff\xfe",
            SdpError::Syntax {
                line: 1,
                what: "not a <type>=<value> line",
            },
        ),
    ];
    let ip = "203.0.113.5".parse().unwrap();
    for (body, want) in cases {
        assert_eq!(
            read(body),
            Err(want.clone()),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(anchor_streams(body, ip, &[Some(20000)]), Err(want));
    }
    // A host name in c= is valid SDP: the address is just unknown.
    let eps = read(b"v=0\r\nc=IN IP4 media.example.com\r\nm=audio 1 RTP/AVP 0\r\n").unwrap();
    assert_eq!(eps[0].ip, None);
}

/// What the gateway makes of an SDP it refuses whole, and what a call keeps of an offer's
/// sections, hold at most [`MAX_SECTIONS`] sections: a peer's 64 KiB of `m=\nc=\n` lines
/// became some 450 KiB of refused sections toward the other leg (each `m=` 20 bytes, each
/// `c=` the gateway's address), and a megabyte kept per held reliable provisional.
#[test]
fn sdp_refused_whole_holds_at_most_the_sections_any_offer_may_have() {
    let mut body = b"v=0\n".to_vec();
    for _ in 0..10_000 {
        body.extend_from_slice(b"m=\nc=\n");
    }
    let ip: IpAddr = "2001:db8::5".parse().unwrap();
    let count = |b: &[u8]| lines(b).filter(|l| l.text.starts_with(b"m=")).count();
    let (out, _) = refuse_all(Some("application/sdp"), &body, ip);
    assert_eq!(count(&out), MAX_SECTIONS);
    assert!(
        out.len() < body.len(),
        "{} bytes from {}",
        out.len(),
        body.len()
    );
    let answer = refusing_answer(Some("application/sdp"), &body, ip, None).unwrap();
    assert_eq!(count(&answer), MAX_SECTIONS);
    assert_eq!(refused_sections(&body).len(), MAX_SECTIONS);
    let (fitted, _) =
        refuse_all_answering(Some("application/sdp"), &body, ip, &refused_sections(&body));
    assert_eq!(count(&fitted), MAX_SECTIONS);
}

#[test]
fn refuse_all_refuses_every_stream_of_sdp_it_cannot_read() {
    // What the call layer does with an answer it cannot read: refuse every stream.
    let body = b"v=0\r\nc=IN IP4 192.0.2.10\r\nbogus line\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4 192.0.2.10\r\n";
    assert!(read(body).is_err());
    let (out, ct) = refuse_all(
        Some("application/sdp"),
        body,
        "203.0.113.5".parse().unwrap(),
    );
    assert_eq!(ct.as_deref(), Some("application/sdp"));
    // What `read` refused is left out; the session lines it lacked are added.
    assert_eq!(
        &out[..],
        &b"v=0\r\no=- 0 0 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"[..]
    );
    // A line with CRs inside it: a far end that splits at a bare CR would read the peer's
    // live stream and address in it. Before, it went on as it came.
    let hidden =
        b"v=0\r\ns=-\rm=audio 5000 RTP/AVP 0\rc=IN IP4 198.51.100.66\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert!(read(hidden).is_err());
    let (out, _) = refuse_all(
        Some("application/sdp"),
        hidden,
        "203.0.113.5".parse().unwrap(),
    );
    assert_eq!(
        &out[..],
        &b"v=0\r\no=- 0 0 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"[..]
    );
    // An m= line `read` cannot part (tabs, or no transport): port 0 in fields any reader
    // parts alike. Before, `m=audio\t4000\t… 0 ` went out, a live stream at our address
    // and the peer's port to a reader that splits at tabs.
    for (m, refused) in [
        (
            &b"m=audio\t4000\tRTP/AVP\t0"[..],
            &b"m=audio 0 RTP/AVP 0"[..],
        ),
        (b"m=video 4000", b"m=video 0 RTP/AVP 0"),
        (b"m=audio\t4000 RTP/SAVP 0 8", b"m=audio 0 RTP/SAVP 0 8"),
    ] {
        let mut body = b"v=0\r\nc=IN IP4 192.0.2.7\r\n".to_vec();
        body.extend_from_slice(m);
        body.extend_from_slice(b"\r\n");
        assert!(read(&body).is_err());
        let (out, _) = refuse_all(
            Some("application/sdp"),
            &body,
            "203.0.113.5".parse().unwrap(),
        );
        let mut want =
            b"v=0\r\no=- 0 0 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
                .to_vec();
        want.extend_from_slice(refused);
        want.extend_from_slice(b"\r\n");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want)
        );
    }
}

/// An old-style hold whose line ends in `\r\r\n` stays a hold: the CRs are its line end,
/// not part of the address. Before, `0.0.0.0\r` read as no address and became ours, a live
/// offer toward the other leg.
#[test]
fn a_hold_address_before_extra_crs_stays_a_hold() {
    let held = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let out = anchor_streams(held, "203.0.113.5".parse().unwrap(), &[Some(20000)]).unwrap();
    let out = String::from_utf8(out.to_vec()).unwrap();
    assert!(out.contains("c=IN IP4 0.0.0.0\r\r\n"), "{out:?}");
}

/// A SIP-I body: the SDP part, then an ISUP part whose bytes happen to hold SDP-like lines.
fn sip_i(sdp: &str) -> String {
    format!(
        "--b1\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b1\r\nContent-Type: application/isup\r\n\r\n\x01c=IN IP4 192.0.2.10\r\nm=audio 1\r\n--b1--\r\n"
    )
}

#[test]
fn refuse_all_refuses_only_the_sdp_part_of_a_multipart_body() {
    let ip: IpAddr = "203.0.113.5".parse().unwrap();
    let body = sip_i(OFFER);
    let ct = "multipart/mixed;boundary=b1";
    let (out, out_ct) = refuse_all(Some(ct), body.as_bytes(), ip);
    let refused =
        String::from_utf8(rewrite(OFFER.as_bytes(), ip, &[], None, usize::MAX).to_vec()).unwrap();
    assert!(refused.contains("m=audio 0 ") && !refused.contains("192.0.2."));
    assert_eq!(std::str::from_utf8(&out).unwrap(), sip_i(&refused));
    assert_eq!(out_ct.as_deref(), Some(ct));
    // A multipart body whose SDP part cannot be taken (base64, which would carry the
    // peer's address past any rewrite): its SDP-looking lines alone, as plain SDP.
    let encoded = format!(
        "--b1\r\nContent-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n\r\ndj0wDQpjPUlOIElQNCAxOTIuMC4yLjEwDQo=\r\n{}",
        &sip_i(OFFER)["--b1\r\n".len()..]
    );
    let (out, out_ct) = refuse_all(Some(ct), encoded.as_bytes(), ip);
    assert_eq!(out_ct.as_deref(), Some("application/sdp"));
    let out = std::str::from_utf8(&out).unwrap();
    assert!(
        out.starts_with("v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\n"),
        "{out}"
    );
    assert!(
        !out.contains("192.0.2.") && !out.contains("--b1") && !out.contains("dj0w"),
        "{out}"
    );
    // Nothing SDP-like in it at all (a base64 part alone): no body, not an empty "SDP".
    let only_encoded = "--b1\r\nContent-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n\r\ndj0wDQpjPUlOIElQNCAxOTIuMC4yLjEwDQo=\r\n--b1--\r\n";
    let (out, out_ct) = refuse_all(Some(ct), only_encoded.as_bytes(), ip);
    assert!(out.is_empty() && out_ct.is_none());
    assert_eq!(
        refusing_answer(Some(ct), only_encoded.as_bytes(), ip, None),
        None
    );
    // A body with no SDP stays as it is.
    let (out, out_ct) = refuse_all(Some("application/isup"), b"\x01c=IN IP4 1.2.3.4", ip);
    assert_eq!(
        (&out[..], out_ct.as_deref()),
        (&b"\x01c=IN IP4 1.2.3.4"[..], Some("application/isup"))
    );
}

#[test]
fn a_body_carries_sdp_unless_it_is_empty_or_of_another_type() {
    assert!(carries_sdp(Some("application/sdp"), OFFER.as_bytes()));
    assert!(carries_sdp(
        Some("multipart/mixed; boundary=b1"),
        sip_i(OFFER).as_bytes()
    ));
    // Untyped or unreadable: it may hold SDP, so it counts as an offer.
    assert!(carries_sdp(None, OFFER.as_bytes()));
    assert!(!carries_sdp(None, b""));
    assert!(!carries_sdp(Some("application/sdp"), b""));
    assert!(!carries_sdp(Some("application/isup"), b"\x01\x02"));
}

#[test]
fn a_refusing_answer_is_the_gateways_own_sdp_refusing_every_stream() {
    let ip: IpAddr = "203.0.113.5".parse().unwrap();
    let want = "v=0\r\no=- S S IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 203.0.113.5\r\n";
    // The origin is the answerer's (ours), not the offerer's `alice 1 1` (RFC 3264 §5).
    let plain = refusing_answer(Some("application/sdp"), OFFER.as_bytes(), ip, None).unwrap();
    let plain = std::str::from_utf8(&plain).unwrap();
    let session = plain.split(' ').nth(1).unwrap();
    assert_ne!(session, "1");
    let want = want.replace(" S S ", &format!(" {session} {session} "));
    assert_eq!(plain, want);
    // The same offer again (a retransmitted 2xx) gets the same answer; another offer, its
    // own session.
    let again = refusing_answer(Some("application/sdp"), OFFER.as_bytes(), ip, None).unwrap();
    assert_eq!(&again[..], want.as_bytes());
    let other = OFFER.replace("m=audio 4000", "m=audio 4002");
    let other = refusing_answer(Some("application/sdp"), other.as_bytes(), ip, None).unwrap();
    assert!(!std::str::from_utf8(&other).unwrap().contains(session));
    // Of a SIP-I offer only the SDP part answers (sent as application/sdp).
    let body = sip_i(OFFER);
    let multi = refusing_answer(
        Some("multipart/mixed; boundary=b1"),
        body.as_bytes(),
        ip,
        None,
    );
    assert_eq!(multi.as_deref(), Some(want.as_bytes()));
    // No SDP in the body: no offer, nothing to answer.
    assert_eq!(
        refusing_answer(Some("application/isup"), b"\x01\x02", ip, None),
        None
    );
    assert_eq!(refusing_answer(None, b"", ip, None), None);
    // SDP that cannot be found (no Content-Type) is refused as SDP all the same.
    let untyped = refusing_answer(None, OFFER.as_bytes(), ip, None).unwrap();
    assert_eq!(std::str::from_utf8(&untyped).unwrap(), want);
}

#[test]
fn ice_attributes_are_removed_when_anchoring() {
    let offer = b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\na=ice-lite\r\nm=audio 4000 RTP/AVP 0\r\na=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecretsecret\r\na=candidate:1 1 UDP 2130706431 10.0.0.5 4000 typ host\r\na=candidate:2 1 UDP 1694498815 198.51.100.9 4000 typ srflx raddr 10.0.0.5 rport 4000\r\na=end-of-candidates\r\na=sendrecv\r\n";
    let out = anchor_streams(offer, "203.0.113.5".parse().unwrap(), &[Some(20000)]).unwrap();
    assert_eq!(
            &out[..],
            &b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\na=sendrecv\r\n"[..]
        );
}

/// Seeded mutations of real-world SDP: reading and anchoring never panic, and what is
/// anchored never names the peer's addresses.
#[test]
fn mutated_sdp_never_panics_and_anchored_output_hides_the_peer() {
    let seeds: [&[u8]; 3] = [
            OFFER.as_bytes(),
            b"v=0\r\no=root 8 8 IN IP4 192.0.2.10\r\ns=Asterisk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 17000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
            b"v=0\no=- 2 2 IN IP6 2001:db8::7\ns=-\nc=IN IP6 2001:db8::7\nt=0 0\nm=audio 9000 RTP/AVP 0\na=rtcp:9001 IN IP6 2001:db8::7\nm=video 0 RTP/AVP 96\n",
        ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n.max(1) as u64) as usize
    };
    let ip: IpAddr = "203.0.113.5".parse().unwrap();
    let mut anchored = 0;
    for round in 0..20_000 {
        let mut b = seeds[round % seeds.len()].to_vec();
        for _ in 0..=next(3) {
            match next(4) {
                0 => b.truncate(next(b.len() + 1)),
                1 if !b.is_empty() => {
                    let i = next(b.len());
                    b[i] = b" =\r\n0/:\xffmcvoa."[next(14)];
                }
                2 if !b.is_empty() => {
                    let i = next(b.len());
                    b.remove(i);
                }
                _ => {
                    let i = next(b.len() + 1);
                    b.insert(i, b"\r\n m=0"[next(6)]);
                }
            }
        }
        if let Ok(eps) = read(&b) {
            let ports: Vec<Option<u16>> = eps.iter().map(|_| Some(20000)).collect();
            let out = anchor_streams(&b, ip, &ports).unwrap();
            anchored += 1;
            let out = String::from_utf8_lossy(&out);
            for l in out.lines() {
                if l.starts_with("c=") || l.starts_with("o=") {
                    assert!(!l.contains("192.0.2.") && !l.contains("2001:db8"), "{l}");
                }
            }
        }
        let _ = refuse_all(Some("application/sdp"), &b, ip);
        let _ = refuse_all(Some("multipart/mixed;boundary=b1"), &b, ip);
        let _ = crate::sdp::set_ptime(&b, 20);
    }
    assert!(anchored > 1000, "{anchored}");
}

#[test]
fn each_stream_is_read_with_what_its_transport_means_to_the_relay() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\nm=audio 4002 rtp/avpf 0\r\nm=audio 4004 RTP/SAVP 0\r\n\
        m=image 4006 udptl t38\r\nm=image 4008 UDPTL t38\r\nm=audio 4010 UDP/TLS/RTP/SAVPF 111\r\n\
        m=message 4012 TCP/MSRP *\r\nm=audio 4014 TCP/RTP/AVP 0\r\nm=audio 4016 X-ODD 0\r\n\
        m=image 0 TCP/MSRP *\r\n";
    let e = read(sdp.as_bytes()).unwrap();
    let got: Vec<(Transport, bool)> = e.iter().map(|e| (e.transport, e.is_relayed())).collect();
    use Transport::*;
    assert_eq!(
        got,
        [
            (Rtp, true),
            (Rtp, true),
            (Srtp, true),
            (Datagram, true),
            (Datagram, true),
            (Datagram, true),
            (Unrelayable, false),
            (Unrelayable, false),
            (Unrelayable, false),
            (Unrelayable, false),
        ]
    );
    // Only the streams that get ports count against max_streams.
    assert_eq!(limit_streams(&e, 6), Ok(6));
    assert!(limit_streams(&e, 5).is_err());
    // Attributes of a section say more: keys on RTP/AVP (best-effort SRTP), RTCP
    // multiplexing; each in its own section only. A ZRTP hash changes nothing.
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=rtcp-mux\r\n\
        m=audio 4000 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\na=rtcp-mux\r\n\
        m=audio 4002 RTP/AVP 0\r\na=zrtp-hash:1.10 abc\r\nm=audio 4004 RTP/AVP 0\r\n\
        m=image 4006 udptl t38\r\na=crypto:1 x\r\n";
    let e = read(sdp.as_bytes()).unwrap();
    let got: Vec<(Transport, bool)> = e.iter().map(|e| (e.transport, e.rtcp_mux)).collect();
    assert_eq!(
        got,
        [(Srtp, true), (Rtp, false), (Rtp, false), (Datagram, false)]
    );
    // DTLS-SRTP written `RTP/SAVPF` (Asterisk's `force_avp`): a fingerprint, at its level or
    // the session's, makes its stream opaque datagrams (its DTLS records are no RTP).
    // Before, they were checked as SRTP and all dropped: no audio.
    let sdp = "v=0\r\nc=IN IP4 192.0.2.1\r\n\
        m=audio 4000 RTP/SAVPF 0\r\na=setup:actpass\r\na=fingerprint:sha-256 AB:CD\r\n\
        m=audio 4002 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n\
        m=audio 4004 RTP/AVP 0\r\na=fingerprint:sha-256 AB:CD\r\n";
    let e = read(sdp.as_bytes()).unwrap();
    let got: Vec<Transport> = e.iter().map(|e| e.transport).collect();
    assert_eq!(got, [Datagram, Srtp, Rtp]);
    let sdp = "v=0\r\nc=IN IP4 192.0.2.1\r\na=fingerprint:sha-256 AB:CD\r\n\
        m=audio 4000 RTP/SAVPF 0\r\nm=audio 4002 RTP/AVP 0\r\n";
    let e = read(sdp.as_bytes()).unwrap();
    let got: Vec<Transport> = e.iter().map(|e| e.transport).collect();
    assert_eq!(got, [Datagram, Rtp]);
}

/// Port-0 sections take no ports, but there are at most [`MAX_SECTIONS`] of them in all:
/// each one is state the call keeps, and an INVITE could carry thousands.
#[test]
fn more_sections_than_the_cap_is_an_error_port_zero_ones_included() {
    let mut offer = String::from("v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 4000 RTP/AVP 0\r\n");
    for _ in 0..MAX_SECTIONS {
        offer.push_str("m=audio 0 RTP/AVP 0\r\n");
    }
    let eps = read(offer.as_bytes()).unwrap();
    assert_eq!(
        limit_streams(&eps, DEFAULT_MAX_STREAMS),
        Err(SdpError::TooManySections {
            found: MAX_SECTIONS + 1,
            max: MAX_SECTIONS
        })
    );
    assert_eq!(
        limit_streams(&eps[..MAX_SECTIONS], DEFAULT_MAX_STREAMS),
        Ok(1)
    );
}

/// A CR inside a line (a far end may take it for a line end) would carry a `c=` past the
/// rewrite: such SDP is unreadable, so an offer gets 488 and an answer its streams refused.
#[test]
fn a_cr_or_nul_inside_a_line_is_unreadable() {
    for smuggled in [
        "a=rtpmap:0 PCMU/8000\rc=IN IP4 198.51.100.66",
        "s=x\0c=IN IP4 198.51.100.66",
    ] {
        let offer =
            format!("v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 4000 RTP/AVP 0\r\n{smuggled}\r\n");
        assert!(read(offer.as_bytes()).is_err(), "{smuggled:?}");
        let anchored = anchor_streams(
            offer.as_bytes(),
            "203.0.113.5".parse().unwrap(),
            &[Some(20000)],
        );
        assert!(anchored.is_err(), "{smuggled:?}");
    }
    // CRs that end a line are its line end: a last line cut before its LF, or `\r\r\n`.
    for ends in [
        "v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 4000 RTP/AVP 0\r",
        "v=0\r\nc=IN IP4 192.0.2.10\r\r\nm=audio 4000 RTP/AVP 0\r\n",
    ] {
        assert!(read(ends.as_bytes()).is_ok(), "{ends:?}");
    }
}

/// An old-style hold stays one toward the other leg: its `c=` names no address there either.
#[test]
fn an_old_style_hold_is_passed_on_as_a_hold() {
    let held = "v=0\r\no=a 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let out = anchor_streams(
        held.as_bytes(),
        "203.0.113.5".parse().unwrap(),
        &[Some(20000)],
    )
    .unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.contains("c=IN IP4 0.0.0.0\r\n"), "{text}");
    assert!(text.contains("m=audio 20000 "), "{text}");
    assert!(!text.contains("192.0.2.1"), "{text}");
}

#[test]
fn an_rtcp_port_is_read_where_it_names_the_streams_own_address_or_none() {
    let port = |attr: &str| {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\n{attr}m=video 4002 RTP/AVP 96\r\n"
        );
        let streams = read(sdp.as_bytes()).unwrap();
        assert_eq!(streams[1].rtcp_port, None, "only its own stream's: {attr}");
        streams[0].rtcp_port
    };
    assert_eq!(port(""), None);
    assert_eq!(port("a=rtcp:4009\r\n"), Some(4009));
    assert_eq!(port("a=rtcp:4009 IN IP4 192.0.2.10\r\n"), Some(4009));
    // Another host, a host name, port 0 or no number: the RTP port + 1 stands.
    assert_eq!(port("a=rtcp:4009 IN IP4 192.0.2.11\r\n"), None);
    assert_eq!(port("a=rtcp:4009 IN IP4 media.example.net\r\n"), None);
    assert_eq!(port("a=rtcp:0\r\n"), None);
    assert_eq!(port("a=rtcp:x\r\n"), None);
    assert_eq!(port("a=rtcp:70000\r\n"), None);
    // `a=rtcp-mux` and `a=rtcp-fb` are other attributes.
    assert_eq!(port("a=rtcp-fb:0 nack\r\na=rtcp-mux\r\n"), None);
}

/// A refused section keeps its offer's `a=mid` (the first, a token of at most 32
/// characters): an offerer that bundles finds the section by it. A session-level `mid`, one
/// with characters a token has not, or a second one are not taken.
#[test]
fn a_refused_section_keeps_its_mid_and_nothing_else() {
    let sdp = b"v=0\r\na=mid:session\r\nm=audio 4000 RTP/AVP 0 8\r\na=mid:a0\r\na=mid:a1\r\n\
m=video 4002 RTP/AVP 96\r\na=mid:bad mid\r\nm=text 4004 RTP/AVP 98\r\na=mid:t_1.x{#}\r\n";
    let got = refused_sections(sdp);
    let got: Vec<&[u8]> = got.iter().map(|s| &s[..]).collect();
    assert_eq!(
        got,
        vec![
            &b"audio 0 RTP/AVP 0\na=mid:a0"[..],
            &b"video 0 RTP/AVP 96"[..],
            &b"text 0 RTP/AVP 98\na=mid:t_1.x{#}"[..],
        ]
    );
    let out = padded(
        Bytes::from_static(b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n"),
        "192.0.2.1".parse().unwrap(),
        &refused_sections(sdp)[1..],
    );
    assert_eq!(
        &out[..],
        &b"v=0\r\nm=audio 5000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 192.0.2.1\r\n\
m=text 0 RTP/AVP 98\r\nc=IN IP4 192.0.2.1\r\na=mid:t_1.x{#}\r\n"[..]
    );
}

/// What names the SDP's creator, its software or its contacts does not reach the other
/// leg: the session name becomes `-`; information, URI, e-mail, phone and `a=tool` lines go.
/// Before, `s=Asterisk` or `a=tool:` with a PBX's version went to the carrier byte for byte,
/// though `User-Agent` and `Server` are withheld for that reason.
#[test]
fn the_creators_name_software_and_contacts_are_left_out() {
    let sdp = b"v=0\r\no=asterisk 1 1 IN IP4 192.0.2.7\r\ns=Asterisk PBX 18.2.1\r\n\
i=call from ext 1000\r\nu=http://pbx.example/\r\ne=admin@pbx.example\r\np=+1 555 0100\r\n\
c=IN IP4 192.0.2.7\r\nt=0 0\r\na=tool:Asterisk 18.2.1\r\nm=audio 4000 RTP/AVP 0\r\n\
i=main audio\r\na=rtpmap:0 PCMU/8000\r\n";
    let out = anchor_streams(sdp, "203.0.113.5".parse().unwrap(), &[Some(30000)]).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
}

/// An SDP without the session lines RFC 4566 requires (o=, s=, t=; some phones leave them
/// out) goes on with them added in their places: a strict far end would refuse it. One
/// that has them keeps its own.
#[test]
fn the_session_lines_a_peer_left_out_are_added() {
    let ip = "203.0.113.5".parse().unwrap();
    let sdp = b"v=0\r\nc=IN IP4 192.0.2.7\r\na=sendrecv\r\nm=audio 4000 RTP/AVP 0\r\n";
    let out = anchor_streams(sdp, ip, &[Some(30000)]).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "v=0\r\no=- 0 0 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
a=sendrecv\r\nm=audio 30000 RTP/AVP 0\r\n"
    );
    // Only t= missing, and before the first m= (no session attribute).
    let sdp = b"v=0\no=a 5 6 IN IP4 192.0.2.7\ns=x\nc=IN IP4 192.0.2.7\nm=audio 4000 RTP/AVP 0\n";
    let out = anchor_streams(sdp, ip, &[Some(30000)]).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "v=0\no=- 5 6 IN IP4 203.0.113.5\ns=-\nc=IN IP4 203.0.113.5\nt=0 0\nm=audio 30000 RTP/AVP 0\n"
    );
    // A last line without its line end: the added t= still ends in the SDP's own.
    let sdp = b"v=0\no=a 5 6 IN IP4 192.0.2.7\ns=x\nc=IN IP4 192.0.2.7\nm=audio 4000 RTP/AVP 0";
    let out = anchor_streams(sdp, ip, &[Some(30000)]).unwrap();
    assert!(
        out.ends_with(b"\nt=0 0\nm=audio 30000 RTP/AVP 0"),
        "{out:?}"
    );
    assert_eq!(read(&out).map(|e| e.len()).ok(), Some(1));
    // Only s= missing: it follows the peer's o= (before, it went between v= and o=).
    let sdp = b"v=0\r\no=a 5 6 IN IP4 192.0.2.7\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let out = anchor_streams(sdp, ip, &[Some(30000)]).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "v=0\r\no=- 5 6 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n"
    );
    // A t= misplaced in a media section: one t=, in the session section (before, the
    // misplaced one went on beside the one added).
    let sdp = b"v=0\r\no=a 5 6 IN IP4 192.0.2.7\r\ns=x\r\nm=audio 4000 RTP/AVP 0\r\nt=0 0\r\nc=IN IP4 192.0.2.7\r\n";
    let out = anchor_streams(sdp, ip, &[Some(30000)]).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "v=0\r\no=- 5 6 IN IP4 203.0.113.5\r\ns=-\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\nc=IN IP4 203.0.113.5\r\n"
    );
    // No line after which t= belongs (no media at all, refused whole): it ends the SDP.
    let (out, _) = refuse_all(
        Some("application/sdp"),
        b"v=0\r\no=a 5 6 IN IP4 192.0.2.7\r\ns=x\r\nc=IN IP4 192.0.2.7",
        ip,
    );
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "v=0\r\no=- 5 6 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
    );
    // Complete: unchanged but for the addresses.
    let out = anchor_streams(OFFER.as_bytes(), ip, &[Some(30000), None]).unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    assert_eq!(text.matches("t=").count(), 1);
    assert_eq!(text.matches("s=").count(), 1);
    assert_eq!(text.matches("o=").count(), 1);
}

#[test]
fn a_refused_section_kept_for_the_call_is_small_whatever_its_tokens() {
    let huge = "x".repeat(60_000);
    let sdp = format!("v=0\r\nm={huge} 4000 RTP/AVP 0\r\nm=audio 4002 {huge} 8 0\r\n");
    let kept = refused_sections(sdp.as_bytes());
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter().all(|s| s.len() <= 64),
        "{:?}",
        kept.iter().map(|s| s.len()).collect::<Vec<_>>()
    );
    // An ordinary line is kept whole.
    let kept = refused_sections(b"m=audio 4000 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\n");
    assert_eq!(&*kept[0], b"audio 0 UDP/TLS/RTP/SAVPF 111\na=mid:0");
}

/// A level has one `c=` and a stream one `a=rtcp` (RFC 4566 §5.7, RFC 3605): the first
/// counts and is rewritten, repeats are dropped. Before, each repeat (9 bytes as
/// `c=IN IP4 1`-style lines) was rewritten to a whole address: an offer of them grew
/// several times over on its way to the far end, and the last one was the one read.
#[test]
fn repeated_connection_and_rtcp_lines_are_dropped_not_multiplied() {
    let repeats = "c=IN IP4 0.0.0.0\r\n".repeat(200) + &"a=rtcp:9\r\n".repeat(200);
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n{repeats}t=0 0\r\n\
         m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.11\r\na=rtcp:4001\r\n{repeats}"
    );
    let read_back = read(sdp.as_bytes()).unwrap();
    assert_eq!(read_back[0].ip, Some("192.0.2.11".parse().unwrap()));
    assert_eq!(read_back[0].rtcp_port, Some(4001));
    let out = anchor_streams(
        sdp.as_bytes(),
        "198.51.100.1".parse().unwrap(),
        &[Some(30000)],
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
         m=audio 30000 RTP/AVP 0\r\nc=IN IP4 198.51.100.1\r\na=rtcp:30001 IN IP4 198.51.100.1\r\n"
    );
    assert!(out.len() < sdp.len() / 10);
}

/// A level has one direction attribute (RFC 4566 §6): the first counts, is read, and is
/// the one sent on; repeats are dropped. Before, the last was read and all were sent, so a
/// far end taking the first (`a=inactive` before `a=sendrecv`) held the stream while the
/// gateway expected media, and released the call for its silence. Trailing blanks, which a
/// trimming reader takes as nothing, are taken as nothing here, and not sent.
#[test]
fn repeated_direction_lines_count_once_the_first() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               a=recvonly\r\na=sendrecv\r\n\
               m=audio 4000 RTP/AVP 0\r\na=inactive\r\na=sendrecv\r\na=sendonly\r\n\
               m=audio 4002 RTP/AVP 0\r\na=sendonly \r\na=rtcp-mux\t\r\n\
               m=audio 4004 RTP/AVP 0\r\n";
    let e = read(sdp.as_bytes()).unwrap();
    assert!(
        e[0].held && !e[0].sends && !e[0].receives,
        "inactive: {:?}",
        e[0]
    );
    assert!(
        e[1].held && e[1].sends && !e[1].receives,
        "sendonly: {:?}",
        e[1]
    );
    assert!(e[1].rtcp_mux);
    assert!(
        e[2].held && !e[2].sends && e[2].receives,
        "the session's recvonly: {:?}",
        e[2]
    );
    let out = anchor_streams(
        sdp.as_bytes(),
        "198.51.100.1".parse().unwrap(),
        &[Some(30000), Some(30002), Some(30004)],
    )
    .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains("t=0 0\r\na=recvonly\r\nm=audio 30000"),
        "{out}"
    );
    assert!(
        out.contains("RTP/AVP 0\r\na=inactive\r\nm=audio 30002"),
        "{out}"
    );
    assert!(
        out.contains("RTP/AVP 0\r\na=sendonly\r\na=rtcp-mux"),
        "{out}"
    );
    assert_eq!(out.matches("a=sendrecv").count(), 0, "{out}");
}

/// An offer of RFC 8840's trickle ICE with no candidates yet (`c=` 0.0.0.0, port 9) is
/// refused, saying why: anchored, it read as an old-style hold, the relay waited for media
/// only ICE could bring, and the call had no audio. An old-style hold from an ICE endpoint
/// (its own port kept), and ICE with a default candidate, still read.
#[test]
fn trickle_ice_without_candidates_is_refused_not_taken_for_a_hold() {
    let head = "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
    let trickle = format!(
        "{head}a=ice-options:trickle\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
    );
    assert_eq!(
        read(trickle.as_bytes()),
        Err(SdpError::IceWithoutCandidates { stream: 1 })
    );
    let media_level = format!(
        "{head}m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nm=audio 9 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\na=ice-options:trickle\r\n"
    );
    let refused = read(media_level.as_bytes());
    assert_eq!(refused, Err(SdpError::IceWithoutCandidates { stream: 2 }));
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("ICE without candidates")
    );
    let hold = format!("{head}c=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\na=ice-ufrag:abcd\r\n");
    assert!(read(hold.as_bytes()).is_ok_and(|s| s[0].held));
    let with_candidate = format!(
        "{head}c=IN IP4 192.0.2.1\r\nm=audio 9 RTP/AVP 0\r\na=ice-ufrag:abcd\r\na=candidate:1 1 UDP 1 192.0.2.1 9 typ host\r\n"
    );
    assert!(read(with_candidate.as_bytes()).is_ok());
    // Port 9 with 0.0.0.0 and no ICE at all: the old-style hold it says it is.
    let no_ice = format!("{head}c=IN IP4 0.0.0.0\r\nm=audio 9 RTP/AVP 0\r\n");
    assert!(read(no_ice.as_bytes()).is_ok());
}
