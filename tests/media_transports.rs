//! What the relay does with each kind of stream, through the real binary: T.38 fax (UDPTL)
//! after a re-INVITE and SRTP with its RTCP pass unread, RTCP multiplexed on the RTP port is
//! treated as RTCP, and a TCP stream no UDP relay can carry is refused.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::anchored::*;
use common::*;
use trunkgate::sip::{Message, Method};

/// A T.38 offer or answer (RFC 3362 `image/t38` over UDPTL), session version `version`.
fn t38(ip: &str, port: u16, version: u32) -> String {
    format!(
        "v=0\r\no=- 1 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=image {port} udptl t38\r\na=T38FaxVersion:0\r\na=T38FaxRateManagement:transferredTCF\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n"
    )
}

/// An SDES-keyed SRTP offer or answer.
fn srtp(ip: &str, port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r\n"
    )
    .into_bytes()
}

/// The port of the first `m=<media>` line of an SDP.
fn port_of(body: &[u8], media: &str) -> u16 {
    let text = String::from_utf8_lossy(body);
    let prefix = format!("m={media} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m={media} in {text}"))
}

/// `n` bytes of `seed`, then `seed + 1`, … from each side: forwarded byte for byte?
fn exchanged(e: &Established, n: usize, packet: impl Fn(u8) -> Vec<u8>) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    for i in 0..n as u8 {
        let p = packet(i);
        e.phone_rtp.send_to(&p, e.gw_a).unwrap();
        let (len, from) = e
            .carrier_rtp
            .recv_from(&mut buf)
            .expect("reaches the carrier");
        assert_eq!(from, e.gw_b);
        got.push(buf[..len].to_vec());
        e.carrier_rtp.send_to(&p, e.gw_b).unwrap();
        let (len, from) = e.phone_rtp.recv_from(&mut buf).expect("reaches the phone");
        assert_eq!(from, e.gw_a);
        got.push(buf[..len].to_vec());
    }
    got
}

#[test]
fn a_t38_reinvite_turns_the_stream_into_fax_and_its_udptl_passes_as_sent() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    let e = establish(&gw, "t38-1");
    // Voice first: RTP both ways.
    let voice = exchanged(&e, 2, |i| {
        vec![0x80, 0, 0, i, 0, 0, 0, 160, 1, 2, 3, 4, 0xff]
    });
    assert_eq!(voice.len(), 4);
    // The fax machine's side detects the CNG tone and re-INVITEs to T.38 (same ports).
    let phone_port = e.phone_rtp.local_addr().unwrap().port();
    let offer = t38(PHONE_IP, phone_port, 2);
    let reinvite = format!(
        "INVITE sip:127.0.0.1:{gw_port} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{p};branch=z9hG4bKt38re;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: {to}\r\nCall-ID: t38-1\r\nCSeq: 2 INVITE\r\nContact: <sip:1000@{PHONE_IP}:{p}>\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
        gw_port = gw.ports.gw,
        p = gw.ports.phone,
        to = e.to,
        len = offer.len(),
    );
    e.phone.send_to(reinvite.as_bytes(), gw.addr()).unwrap();
    let Message::Request(inv) = recv_sip(
        &e.carrier,
        |m| matches!(m, Message::Request(r) if r.method() == Method::Invite),
    ) else {
        unreachable!()
    };
    let toward_carrier = String::from_utf8_lossy(inv.body()).to_string();
    assert_eq!(
        port_of(inv.body(), "image"),
        e.gw_b.port(),
        "{toward_carrier}"
    );
    assert!(toward_carrier.contains("udptl t38"), "{toward_carrier}");
    assert!(!toward_carrier.contains(PHONE_IP), "{toward_carrier}");
    let carrier_port = e.carrier_rtp.local_addr().unwrap().port();
    let ok = carrier_ok(&gw, &inv, None, t38(CARRIER_A_IP, carrier_port, 2));
    e.carrier.send_to(&ok.to_bytes(), gw.addr()).unwrap();
    let Message::Response(ok_a) = recv_sip(
        &e.phone,
        |m| matches!(m, Message::Response(r) if r.status() == 200),
    ) else {
        unreachable!()
    };
    assert_eq!(port_of(ok_a.body(), "image"), e.gw_a.port());
    let ack = format!(
        "ACK sip:127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{};branch=z9hG4bKt38ack;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: {}\r\nCall-ID: t38-1\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n",
        gw.ports.gw, gw.ports.phone, e.to
    );
    e.phone.send_to(ack.as_bytes(), gw.addr()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // UDPTL (RFC 3362/ITU-T T.38 §9): a 16-bit sequence number, then the IFP packet and its
    // redundancy; no RTP version bits, so an RTP check refuses most of them.
    let udptl = |i: u8| vec![0x00, i, 0x06, 0xd0, 0x02, 0x00, 0x00, 0x01, i];
    let sent: Vec<Vec<u8>> = (0..5u8).flat_map(|i| [udptl(i), udptl(i)]).collect();
    assert_eq!(exchanged(&e, 5, udptl), sent, "every UDPTL packet, as sent");
    hang_up(&gw, &e, "t38-1");
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
}

#[test]
fn srtp_and_srtcp_pass_exactly_as_sent_and_are_neither_recorded_nor_repacketised() {
    // The carrier's profile records and repacketises to 20 ms: neither can apply to SRTP.
    let gw = Gateway::start(
        Ports::new(),
        GwOpts::carrier_a(
            "[sdp]\nptime = 20\n\n[media]\nanchor = true\nrecord = true\nrepacketize = true\n",
        ),
    );
    let e = establish_offer_answer(&gw, "srtp-1", Duration::ZERO, srtp, srtp);
    let toward_carrier = String::from_utf8_lossy(&e.b_offer).to_string();
    assert!(toward_carrier.contains(" RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 "));
    // 30 ms of ciphertext (240 bytes) and a 10-byte tag. Every other packet has the P bit:
    // its last byte is then the tag's, no padding count a plain RTP check could accept. The
    // others look like plain 30 ms PCMU to anything that does not know better.
    let packet = |i: u8| {
        let b0 = if i.is_multiple_of(2) { 0xa0 } else { 0x80 };
        let mut p = vec![b0, 0, 0, i, 0, 0, 0, 240, 9, 9, 9, 9];
        p.extend(std::iter::repeat_n(0x5a ^ i, 240));
        p.extend_from_slice(&[0xff; 10]);
        p
    };
    let sent: Vec<Vec<u8>> = (0..5u8).flat_map(|i| [packet(i), packet(i)]).collect();
    assert_eq!(exchanged(&e, 5, packet), sent, "every SRTP packet, as sent");
    // SRTCP: a sender report's header and SSRC in the clear, the rest encrypted, then the E
    // flag and index and the tag; its length field covers only the first packet.
    let phone_rtcp = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    let carrier_rtcp = UdpSocket::bind((CARRIER_A_IP, 0)).unwrap();
    for s in [&phone_rtcp, &carrier_rtcp] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    }
    let srtcp = {
        let mut p = vec![0x80, 200, 0, 6, 9, 9, 9, 9];
        p.extend_from_slice(&[0x33; 40]);
        p.extend_from_slice(&[0x80, 0, 0, 1]);
        p.extend_from_slice(&[0xee; 10]);
        p
    };
    let rtcp_port = |a: SocketAddr| SocketAddr::new(a.ip(), a.port() + 1);
    // The carrier's report latches its RTCP address; the phone's then reaches it, though
    // the carrier's leg is repacketised (plain RTCP toward it would not be relayed).
    carrier_rtcp.send_to(&srtcp, rtcp_port(e.gw_b)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    phone_rtcp.send_to(&srtcp, rtcp_port(e.gw_a)).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = carrier_rtcp
        .recv_from(&mut buf)
        .expect("SRTCP reaches the carrier");
    assert_eq!((&buf[..n], from), (&srtcp[..], rtcp_port(e.gw_b)));
    hang_up(&gw, &e, "srtp-1");
    let cdr = gw.wait_cdrs(1).remove(0);
    let events = cdr["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events.iter().any(|e| e == "recording_encrypted"),
        "the CDR says why the recording holds nothing: {cdr:#}"
    );
    let path = cdr["recording"]
        .as_str()
        .expect("the call was recorded")
        .to_string();
    // Once the recording is closed (none active), it holds nothing: ciphertext is no audio.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while Gateway::metric_value(&gw.metrics(), "trunkgate_recordings_active") != Some(0.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "recording never closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The writer thread finalises the file after the recording left the gauge: it is read
    // once its data chunk's size is what the file holds after it (before, a header not yet
    // rewritten says 0 whatever was written after it).
    let data_size = loop {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let chunk = bytes.windows(4).position(|w| w == b"data");
        let whole = chunk.and_then(|at| {
            let size = u32::from_le_bytes(bytes.get(at + 4..at + 8)?.try_into().ok()?);
            (at + 8 + size as usize == bytes.len()).then_some(size)
        });
        match whole {
            Some(size) => break size,
            None => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no finalised WAV ({} bytes)",
                    bytes.len()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(data_size, 0, "encrypted payload recorded as audio");
    let wav = hound::WavReader::open(&path).expect("a WAV");
    assert_eq!(wav.duration(), 0);
}

#[test]
fn a_stream_over_tcp_is_refused_and_gets_no_relay_ports() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    let with_msrp = |ip: &str, port: u16| {
        let mut body = sdp(ip, port).into_bytes();
        body.extend_from_slice(
            format!("m=message 7000 TCP/MSRP *\r\na=path:msrp://{ip}:7000/s1;tcp\r\na=accept-types:text/plain\r\n")
                .as_bytes(),
        );
        body
    };
    let e = establish_with(&gw, "msrp-1", Duration::ZERO, with_msrp);
    let toward_carrier = String::from_utf8_lossy(&e.b_offer).to_string();
    assert!(
        toward_carrier.contains("\r\nm=message 0 TCP/MSRP *\r\n"),
        "{toward_carrier}"
    );
    assert!(!toward_carrier.contains("a=path"), "{toward_carrier}");
    // The audio still flows, and it is the call's one relayed stream.
    assert_eq!(
        exchanged(&e, 1, |i| vec![
            0x80, 0, 0, i, 0, 0, 0, 160, 1, 2, 3, 4, 0xff
        ])
        .len(),
        2
    );
    // (The gauge is refreshed once a second.)
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut streams = None;
    while std::time::Instant::now() < deadline && streams != Some(1.0) {
        std::thread::sleep(Duration::from_millis(100));
        streams = Gateway::metric_value(&gw.metrics(), "trunkgate_rtp_streams");
    }
    assert_eq!(streams, Some(1.0), "relayed streams");
    hang_up(&gw, &e, "msrp-1");
    gw.wait_cdrs(1);
}

#[test]
fn rtcp_multiplexed_on_the_rtp_port_is_rtcp_with_the_gateways_source_description() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    let muxed = |ip: &str, port: u16| {
        let mut body = sdp(ip, port).into_bytes();
        body.extend_from_slice(b"a=rtcp-mux\r\n");
        body
    };
    let e = establish_offer_answer(&gw, "rtcp-mux-1", Duration::ZERO, muxed, muxed);
    assert!(String::from_utf8_lossy(&e.b_offer).contains("a=rtcp-mux"));
    let mut buf = [0u8; 2048];
    let voice = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0x12, 0x34, 0xff];
    e.phone_rtp.send_to(&voice, e.gw_a).unwrap();
    let (n, _) = e.carrier_rtp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &voice);
    let compound = rtcp_naming_the_phone();
    e.phone_rtp.send_to(&compound, e.gw_a).unwrap();
    let (n, from) = e
        .carrier_rtp
        .recv_from(&mut buf)
        .expect("the phone's RTCP reaches the carrier's RTP port");
    assert_eq!(from, e.gw_b);
    let got = &buf[..n];
    assert_eq!(&got[..8], &compound[..8], "the report passes as it was");
    let text = String::from_utf8_lossy(got);
    assert!(text.contains("trunkgate@127.0.0.1"), "{text:?}");
    assert!(
        !text.contains("Linphonec") && !text.contains("1000@"),
        "{text:?}"
    );
    hang_up(&gw, &e, "rtcp-mux-1");
    gw.wait_cdrs(1);
}
