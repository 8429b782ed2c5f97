//! An anchored call through the real binary, driven from raw sockets on the phone's and the
//! carrier's addresses: set up, answered and hung up, with each side's RTP socket.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::Bytes;
use trunkgate::sip::{Hdr, Message, Response, parse_datagram};

use super::*;

pub fn recv_sip(sock: &UdpSocket, want: impl Fn(&Message) -> bool) -> Message {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("SIP message in time");
        let m = parse_datagram(Bytes::copy_from_slice(&buf[..n]), 65535).unwrap();
        if want(&m) {
            return m;
        }
    }
}

pub fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// The port of the first m= line and the c= address.
pub fn media_of(body: &[u8]) -> (String, u16) {
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

/// A call through the gateway, answered, with its media sockets.
pub struct Established {
    pub phone: UdpSocket,
    pub carrier: UdpSocket,
    pub phone_rtp: UdpSocket,
    pub carrier_rtp: UdpSocket,
    /// The gateway's RTP address facing the phone, and facing the carrier.
    pub gw_a: SocketAddr,
    pub gw_b: SocketAddr,
    pub to: String,
    /// The SDP the carrier received in the INVITE.
    pub b_offer: Bytes,
}

pub fn establish(gw: &Gateway, call_id: &str) -> Established {
    establish_with(gw, call_id, Duration::ZERO, |ip, port| {
        sdp(ip, port).into_bytes()
    })
}

/// `establish` with the phone's SDP written by `offer(ip, rtp_port)`, the carrier answering
/// after `ring` (no early media meanwhile).
pub fn establish_with(
    gw: &Gateway,
    call_id: &str,
    ring: Duration,
    offer: impl Fn(&str, u16) -> Vec<u8>,
) -> Established {
    establish_offer_answer(gw, call_id, ring, offer, |ip, port| {
        sdp(ip, port).into_bytes()
    })
}

/// `establish_with`, the carrier's SDP written by `answer(ip, rtp_port)`.
pub fn establish_offer_answer(
    gw: &Gateway,
    call_id: &str,
    ring: Duration,
    offer: impl Fn(&str, u16) -> Vec<u8>,
    answer: impl Fn(&str, u16) -> Vec<u8>,
) -> Established {
    let t = Some(Duration::from_secs(5));
    let phone = UdpSocket::bind((PHONE_IP, gw.ports.phone)).unwrap();
    let carrier = UdpSocket::bind((CARRIER_A_IP, gw.ports.carrier_a)).unwrap();
    let phone_rtp = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    let carrier_rtp = UdpSocket::bind((CARRIER_A_IP, 0)).unwrap();
    for s in [&phone, &carrier, &phone_rtp, &carrier_rtp] {
        s.set_read_timeout(t).unwrap();
    }
    let body = offer(PHONE_IP, phone_rtp.local_addr().unwrap().port());
    let mut invite = format!(
        "INVITE sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{p};branch=z9hG4bK{call_id}1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:1000@{PHONE_IP}:{p}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
        body.len(),
        p = gw.ports.phone
    )
    .into_bytes();
    invite.extend_from_slice(&body);
    phone.send_to(&invite, gw.addr()).unwrap();
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
    std::thread::sleep(ring);
    let answer = answer(CARRIER_A_IP, carrier_rtp.local_addr().unwrap().port());
    let ok = carrier_ok(gw, &inv, Some("c1"), answer);
    carrier.send_to(&ok.to_bytes(), gw.addr()).unwrap();
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
        "ACK sip:127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{};branch=z9hG4bK{call_id}2;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        gw.ports.gw, gw.ports.phone
    );
    phone.send_to(ack.as_bytes(), gw.addr()).unwrap();
    Established {
        phone,
        carrier,
        phone_rtp,
        carrier_rtp,
        gw_a: format!("127.0.0.1:{port_a}").parse().unwrap(),
        gw_b: format!("127.0.0.1:{port_b}").parse().unwrap(),
        to,
        b_offer: inv.body().clone(),
    }
}

pub fn hang_up(gw: &Gateway, e: &Established, call_id: &str) {
    let bye = format!(
        "BYE sip:127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{};branch=z9hG4bK{call_id}3;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        gw.ports.gw, gw.ports.phone, e.to
    );
    e.phone.send_to(bye.as_bytes(), gw.addr()).unwrap();
    let Message::Request(b) = recv_sip(
        &e.carrier,
        |m| matches!(m, Message::Request(r) if r.method() == trunkgate::sip::Method::Bye),
    ) else {
        unreachable!()
    };
    let ok = Response::to_request(&b, 200, "OK", None).unwrap();
    e.carrier.send_to(&ok.to_bytes(), gw.addr()).unwrap();
}

/// An RTCP compound as a phone sends it: a receiver report, then a source description naming
/// the phone (CNAME `sip:1000@127.0.0.2`, TOOL `Linphonec/5.1.65`).
pub fn rtcp_naming_the_phone() -> Vec<u8> {
    let mut sdes = vec![0x81, 202, 0, 0, 0, 0, 0x12, 0x34];
    for (t, text) in [(1u8, "sip:1000@127.0.0.2"), (6, "Linphonec/5.1.65")] {
        sdes.push(t);
        sdes.push(text.len() as u8);
        sdes.extend_from_slice(text.as_bytes());
    }
    sdes.push(0);
    while !sdes.len().is_multiple_of(4) {
        sdes.push(0);
    }
    let words = (sdes.len() / 4 - 1) as u16;
    sdes[2..4].copy_from_slice(&words.to_be_bytes());
    let mut compound = vec![0x80, 201, 0, 1, 0, 0, 0x12, 0x34];
    compound.extend(&sdes);
    compound
}

/// The carrier's 200 to `req` (an INVITE the gateway sent it), with its Contact and `sdp`;
/// `tag`: its To tag when the request had none.
pub fn carrier_ok(
    gw: &Gateway,
    req: &trunkgate::sip::Request,
    tag: Option<&str>,
    sdp: impl Into<Bytes>,
) -> Response {
    let mut ok = Response::to_request(req, 200, "OK", tag).unwrap();
    ok.remove_header(&Hdr::CONTENT_LENGTH);
    ok.push_header(
        &Hdr::CONTACT,
        format!("<sip:c@{CARRIER_A_IP}:{}>", gw.ports.carrier_a),
    )
    .unwrap();
    ok.push_header(&Hdr::CONTENT_LENGTH, "0").unwrap();
    ok.set_body(sdp.into(), Some("application/sdp")).unwrap();
    ok
}
