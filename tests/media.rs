//! Media anchoring with the real binary: SIP and RTP from raw sockets on the phone's and the
//! carrier's addresses. Each side's SDP must name only the gateway, and RTP must flow both
//! ways through it.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use trunkgate::sip::{Hdr, Message, Response, parse_datagram};

fn recv_sip(sock: &UdpSocket, want: impl Fn(&Message) -> bool) -> Message {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("SIP message in time");
        let m = parse_datagram(Bytes::copy_from_slice(&buf[..n]), 65535).unwrap();
        if want(&m) {
            return m;
        }
    }
}

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// The port of the first m= line and the c= address.
fn media_of(body: &[u8]) -> (String, u16) {
    let t = String::from_utf8_lossy(body);
    let ip = t
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap()
        .trim()
        .to_string();
    let port = t
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    (ip, port)
}

#[test]
fn anchored_call_relays_rtp_both_ways_and_hides_both_sides() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    let t = Some(Duration::from_secs(5));
    let phone = UdpSocket::bind((PHONE_IP, gw.ports.phone)).unwrap();
    let carrier = UdpSocket::bind((CARRIER_A_IP, gw.ports.carrier_a)).unwrap();
    let phone_rtp = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    let carrier_rtp = UdpSocket::bind((CARRIER_A_IP, 0)).unwrap();
    for s in [&phone, &carrier, &phone_rtp, &carrier_rtp] {
        s.set_read_timeout(t).unwrap();
    }
    let body = sdp(PHONE_IP, phone_rtp.local_addr().unwrap().port());
    let invite = format!(
        "INVITE sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{};branch=z9hG4bKmedia1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: media-1\r\nCSeq: 1 INVITE\r\nContact: <sip:1000@{PHONE_IP}:{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        gw.ports.phone,
        gw.ports.phone,
        body.len()
    );
    phone.send_to(invite.as_bytes(), gw.addr()).unwrap();

    // The carrier's offer names the gateway only.
    let Message::Request(inv) = recv_sip(&carrier, |m| matches!(m, Message::Request(_))) else {
        unreachable!()
    };
    let (ip_b, port_b) = media_of(inv.body());
    assert_eq!(ip_b, "127.0.0.1");
    assert!(
        !String::from_utf8_lossy(inv.body()).contains(PHONE_IP),
        "{}",
        String::from_utf8_lossy(inv.body())
    );
    let answer = sdp(CARRIER_A_IP, carrier_rtp.local_addr().unwrap().port());
    let mut ok = Response::to_request(&inv, 200, "OK", Some("c1")).unwrap();
    ok.remove_header(&Hdr::CONTENT_LENGTH);
    ok.push_header(
        &Hdr::CONTACT,
        format!("<sip:c@{CARRIER_A_IP}:{}>", gw.ports.carrier_a),
    )
    .unwrap();
    ok.push_header(&Hdr::CONTENT_LENGTH, "0").unwrap();
    ok.set_body(Bytes::from(answer), Some("application/sdp"))
        .unwrap();
    carrier.send_to(&ok.to_bytes(), gw.addr()).unwrap();

    // The phone's answer names the gateway only.
    let Message::Response(ok_a) = recv_sip(
        &phone,
        |m| matches!(m, Message::Response(r) if r.status() == 200),
    ) else {
        unreachable!()
    };
    let (ip_a, port_a) = media_of(ok_a.body());
    assert_eq!(ip_a, "127.0.0.1");
    assert!(!String::from_utf8_lossy(ok_a.body()).contains(CARRIER_A_IP));
    assert_ne!(port_a, port_b);
    let to = ok_a.header(&Hdr::TO).unwrap();
    let ack = format!(
        "ACK sip:127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{};branch=z9hG4bKmedia2;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: {to}\r\nCall-ID: media-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        gw.ports.gw, gw.ports.phone
    );
    phone.send_to(ack.as_bytes(), gw.addr()).unwrap();

    // RTP both ways, each side seeing only the gateway's port for the other.
    let mut buf = [0u8; 2048];
    let gw_a: SocketAddr = format!("127.0.0.1:{port_a}").parse().unwrap();
    let gw_b: SocketAddr = format!("127.0.0.1:{port_b}").parse().unwrap();
    for i in 0..5u8 {
        let pkt = [0x80, 0x00, 0, i, 0, 0, 0, 160, 1, 2, 3, 4, 0xff, 0xfe];
        phone_rtp.send_to(&pkt, gw_a).unwrap();
        let (n, from) = carrier_rtp
            .recv_from(&mut buf)
            .expect("phone's RTP reaches the carrier");
        assert_eq!(&buf[..n], &pkt);
        assert_eq!(from, gw_b);
        let back = [0x80, 0x00, 1, i, 0, 0, 1, 64, 5, 6, 7, 8, 0x7f];
        carrier_rtp.send_to(&back, gw_b).unwrap();
        let (n, from) = phone_rtp
            .recv_from(&mut buf)
            .expect("carrier's RTP reaches the phone");
        assert_eq!(&buf[..n], &back);
        assert_eq!(from, gw_a);
    }

    // Hang up; the relay closes (the ports refuse to relay afterwards).
    let bye = format!(
        "BYE sip:127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{};branch=z9hG4bKmedia3;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: {to}\r\nCall-ID: media-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        gw.ports.gw, gw.ports.phone
    );
    phone.send_to(bye.as_bytes(), gw.addr()).unwrap();
    let Message::Request(b) = recv_sip(
        &carrier,
        |m| matches!(m, Message::Request(r) if r.method() == trunkgate::sip::Method::Bye),
    ) else {
        unreachable!()
    };
    let ok = Response::to_request(&b, 200, "OK", None).unwrap();
    carrier.send_to(&ok.to_bytes(), gw.addr()).unwrap();
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
    std::thread::sleep(Duration::from_millis(200));
    carrier_rtp
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    phone_rtp.send_to(&[0x80, 0, 0, 9], gw_a).unwrap();
    assert!(
        carrier_rtp.recv_from(&mut buf).is_err(),
        "relay closed with the call"
    );
}
