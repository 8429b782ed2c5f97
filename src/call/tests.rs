//! Call flows against the sans-IO core with a fake clock: every test runs in microseconds.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::*;
use crate::cdr::{CallTag, CauseSource, CdrRecord};
use crate::config::{Config, Listen, PeerName, Profile, Role, Route, RouteFrom};
use crate::sip::{Hdr, Message, Method, Request, Response, Transport, parse_datagram};
use crate::txn::TimerConfig;

const PHONE: &str = "127.0.0.2:5060";
const CARRIER_A: &str = "127.0.0.3:5060";
const CARRIER_B: &str = "127.0.0.4:5060";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn profile(name: &str, role: Role, ip: &str) -> (PeerName, Arc<Profile>) {
    let p = Profile {
        name: PeerName(name.into()),
        role,
        address: Target::udp(addr(&format!("{ip}:5060"))),
        matches: vec![format!("{ip}/32").parse().unwrap()],
        domain: if role == Role::Trunk {
            "ims.example.com".into()
        } else {
            ip.into()
        },
        ring_timeout: None,
        uri: Default::default(),
        prack: Default::default(),
        ptime: None,
        causes: Default::default(),
        anchor: false,
        record: false,
        latch: crate::media::Latch::Any,
        rtp_timeout: None,
        repacketize: false,
    };
    (p.name.clone(), Arc::new(p))
}

/// The standard test configuration with some profiles adjusted.
fn config_with(edit: impl Fn(&str, &mut Profile)) -> Config {
    let mut cfg = config();
    for (name, p) in cfg.profiles.iter_mut() {
        let mut q = (**p).clone();
        edit(&name.0, &mut q);
        *p = Arc::new(q);
    }
    cfg
}

fn config() -> Config {
    Config {
        listen: vec![Listen {
            transport: Transport::Udp,
            addr: addr("127.0.0.1:5060"),
        }],
        advertise: "127.0.0.1".into(),
        cdr_path: "/dev/null".into(),
        max_message_bytes: 65535,
        drain: Duration::from_secs(1),
        metrics_listen: None,
        media_ip: "127.0.0.1".parse().unwrap(),
        media_ports: (30000, 30009),
        recording_dir: "/tmp/trunkgate-test-recordings".into(),
        recording_stereo: true,
        recording_jitter: Duration::from_millis(60),
        profiles: [
            profile("pbx", Role::Internal, "127.0.0.2"),
            profile("carrier-a", Role::Trunk, "127.0.0.3"),
            profile("carrier-b", Role::Trunk, "127.0.0.4"),
        ]
        .into_iter()
        .collect(),
        routes: vec![
            Route {
                from: RouteFrom::Peer(PeerName("pbx".into())),
                prefix: "+86".into(),
                to: vec![PeerName("carrier-a".into()), PeerName("carrier-b".into())],
                ring_timeout: Some(Duration::from_secs(60)),
            },
            Route {
                from: RouteFrom::Peer(PeerName("carrier-a".into())),
                prefix: "".into(),
                to: vec![PeerName("pbx".into())],
                ring_timeout: None,
            },
        ],
        callback: Default::default(),
        warnings: Vec::new(),
    }
}

/// The core plus a fake clock and a fake timer wheel.
struct H {
    core: B2bua,
    now: Instant,
    timers: BTreeMap<(Instant, u64), TimerId>,
    armed: HashMap<TimerId, (Instant, u64)>,
    seq: u64,
    sent: Vec<(Target, Message)>,
    cdrs: Vec<CdrRecord>,
    media: Vec<crate::media::MediaAction>,
}

impl H {
    fn new() -> Self {
        Self::with(config())
    }

    fn with(cfg: Config) -> Self {
        let now = Instant::now();
        H {
            core: B2bua::new(
                Arc::new(cfg),
                TimerConfig::default(),
                7,
                now,
                SystemTime::UNIX_EPOCH,
            ),
            now,
            timers: BTreeMap::new(),
            armed: HashMap::new(),
            seq: 0,
            sent: Vec::new(),
            cdrs: Vec::new(),
            media: Vec::new(),
        }
    }

    fn apply(&mut self) {
        for a in self.core.take_actions() {
            match a {
                Action::Send { target, wire, .. } => {
                    // Every message we emit must survive a wire round trip.
                    let back = parse_datagram(wire.clone(), 65535).unwrap_or_else(|e| {
                        panic!("unparseable output {e}: {}", String::from_utf8_lossy(&wire))
                    });
                    self.sent.push((target, back));
                }
                Action::SetTimer { id, at } => {
                    if let Some(old) = self.armed.remove(&id) {
                        self.timers.remove(&old);
                    }
                    self.seq += 1;
                    self.timers.insert((at, self.seq), id.clone());
                    self.armed.insert(id, (at, self.seq));
                }
                Action::ClearTimer(id) => {
                    if let Some(old) = self.armed.remove(&id) {
                        self.timers.remove(&old);
                    }
                }
                Action::Cdr(c) => self.cdrs.push(*c),
                Action::Media(m) => self.media.push(m),
            }
        }
    }

    fn recv(&mut self, from: &str, text: &str) {
        let msg =
            parse_datagram(Bytes::from(text.to_string()), 65535).expect("test message parses");
        self.core.on_message(self.now, msg, Target::udp(addr(from)));
        self.apply();
    }

    fn recv_msg(&mut self, from: &str, msg: Message) {
        let wire = msg.to_bytes();
        let msg = parse_datagram(wire, 65535).unwrap();
        self.core.on_message(self.now, msg, Target::udp(addr(from)));
        self.apply();
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some((&(at, seq), _)) = self.timers.iter().next() {
            if at > end {
                break;
            }
            let id = self.timers.remove(&(at, seq)).unwrap();
            self.armed.remove(&id);
            self.now = at;
            self.core.on_timer(self.now, id);
            self.apply();
        }
        self.now = end;
    }

    /// Take everything sent to `to`.
    fn take(&mut self, to: &str) -> Vec<Message> {
        let to = addr(to);
        let (mine, rest): (Vec<_>, Vec<_>) = self.sent.drain(..).partition(|(t, _)| t.addr == to);
        self.sent = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }

    fn take_requests(&mut self, to: &str, method: Method) -> Vec<Request> {
        self.take(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) if r.method() == method => Some(r),
                _ => None,
            })
            .collect()
    }

    fn take_responses(&mut self, to: &str) -> Vec<Response> {
        self.take(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn one_request(&mut self, to: &str, method: Method) -> Request {
        let mut v = self.take_requests(to, method.clone());
        assert_eq!(v.len(), 1, "expected one {method} to {to}, got {}", v.len());
        v.remove(0)
    }

    fn statuses(&mut self, to: &str) -> Vec<u16> {
        self.take_responses(to).iter().map(|r| r.status()).collect()
    }

    /// carrier-a answers `inv` with 200 (To-tag `tag`, body `sdp`); returns the 200 the
    /// phone then gets.
    fn carrier_answers(&mut self, inv: &Request, tag: &str, sdp: &str) -> Response {
        self.recv_msg(
            CARRIER_A,
            reply(
                inv,
                200,
                tag,
                &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
                Some(sdp),
            ),
        );
        self.take_responses(PHONE)
            .into_iter()
            .find(|r| r.status() == 200)
            .expect("the phone gets the 200")
    }
}

fn invite_text(call_id: &str, branch: &str, number: &str, extra: &str) -> String {
    format!(
        "INVITE sip:{number}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\n\
         To: <sip:{number}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:1000@127.0.0.2:5060>\r\n\
         X-Custom: keep me\r\n\
         P-Asserted-Identity: \"Alice\" <sip:1000@127.0.0.2>\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// A response from a peer to a request the gateway sent it.
fn reply(
    req: &Request,
    status: u16,
    tag: &str,
    extra: &[(Hdr, &str)],
    body: Option<&str>,
) -> Message {
    let reason = match status {
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        486 => "Busy Here",
        487 => "Request Terminated",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let mut r = Response::to_request(req, status, reason, Some(tag)).unwrap();
    r.remove_header(&Hdr::CONTENT_LENGTH);
    for (h, v) in extra {
        r.push_header(h, v.to_string()).unwrap();
    }
    r.push_header(&Hdr::CONTENT_LENGTH, "0").unwrap();
    if let Some(b) = body {
        r.set_body(Bytes::from(b.to_string()), Some("application/sdp"))
            .unwrap();
    }
    Message::Response(r)
}

#[allow(clippy::too_many_arguments)]
fn in_dialog(
    method: &str,
    ruri: &str,
    from: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    branch: &str,
    via_host: &str,
    body: &str,
) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via_host};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:{via_host}>\r\n\
         {ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Set up a call to the answered-and-ACKed state. Returns (B-leg INVITE, A-leg 200).
fn answered_call(h: &mut H) -> (Request, Response) {
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", ""),
    );
    assert_eq!(h.statuses(PHONE), vec![100]);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            None,
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![180]);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let ok = h.take_responses(PHONE).remove(0);
    assert_eq!(ok.status(), 200);
    let our_tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &in_dialog(
            "ACK",
            "sip:127.0.0.1",
            "\"Alice\" <sip:1000@127.0.0.2>;tag=alice1",
            &format!("<sip:+8610123@127.0.0.1>;tag={our_tag}"),
            "call-1@127.0.0.2",
            1,
            "z9hG4bKack1",
            "127.0.0.2:5060",
            "",
        ),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap(), (1, Method::Ack));
    assert_eq!(ack.uri(), "sip:+8610123@127.0.0.3");
    assert_eq!(ack.to_tag().as_deref(), Some("carrier1"));
    (inv, ok)
}

fn phone_from() -> &'static str {
    "\"Alice\" <sip:1000@127.0.0.2>;tag=alice1"
}

fn phone_to(our_tag: &str) -> String {
    format!("<sip:+8610123@127.0.0.1>;tag={our_tag}")
}

fn assert_idle(h: &mut H) {
    h.advance(Duration::from_secs(60));
    let s = h.core.stats();
    assert_eq!(s.calls, 0, "{s:?}");
    assert_eq!(s.dialogs, 0, "{s:?}");
    assert_eq!((s.client_txns, s.server_txns), (0, 0), "{s:?}");
    assert_eq!(
        (s.txn_map_client, s.txn_map_server, s.txn_map_calls),
        (0, 0, 0),
        "{s:?}"
    );
}

#[test]
fn basic_call_bye_from_caller_and_topology_hiding() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);

    // The B leg is the gateway's own dialog: nothing of the phone's side in its headers.
    let head = String::from_utf8_lossy(&inv.to_bytes())
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_string();
    assert!(
        !head.contains("127.0.0.2"),
        "internal address leaked:\n{head}"
    );
    assert!(!head.contains("call-1"), "caller Call-ID leaked:\n{head}");
    assert!(!head.contains("alice1"), "caller tag leaked:\n{head}");
    assert_eq!(inv.uri(), "sip:+8610123@ims.example.com");
    assert_eq!(
        inv.header(&Hdr::named("X-Custom")).as_deref(),
        Some("keep me")
    );
    assert_eq!(
        inv.header(&Hdr::P_ASSERTED_IDENTITY).as_deref(),
        Some("\"Alice\" <sip:1000@ims.example.com>")
    );
    assert_eq!(inv.header(&Hdr::MAX_FORWARDS).as_deref(), Some("69"));
    assert_eq!(inv.body().as_ref(), SDP.as_bytes());
    // And the caller sees only the gateway.
    assert_eq!(ok.contact_uri().as_deref(), Some("sip:127.0.0.1:5060"));
    assert_eq!(ok.body().as_ref(), SDP.as_bytes());

    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &in_dialog(
            "BYE",
            "sip:127.0.0.1",
            phone_from(),
            &phone_to(&tag),
            "call-1@127.0.0.2",
            2,
            "z9hG4bKbye1",
            "127.0.0.2:5060",
            "",
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![200]);
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(bye.call_id(), inv.call_id());
    assert_eq!(bye.cseq().unwrap().0, 2);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));

    assert_eq!(h.cdrs.len(), 1);
    let c = &h.cdrs[0];
    assert_eq!(c.call_tag, CallTag::CallerBye);
    assert_eq!(
        (c.status, c.cause, c.cause_source),
        (200, 16, CauseSource::Rfc3398)
    );
    assert_eq!(c.call_id, "call-1@127.0.0.2");
    assert_eq!(c.from, "1000");
    assert_eq!(c.to, "+8610123");
    assert_eq!(c.ingress_peer, "pbx");
    assert_eq!(c.egress_peer.as_deref(), Some("carrier-a"));
    assert!(c.answer.is_some());
    assert_idle(&mut h);
}

#[test]
fn bye_from_callee_with_reason() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    h.advance(Duration::from_secs(5));
    let from_carrier = "<sip:+8610123@ims.example.com>;tag=carrier1";
    let to_gw = inv.header(&Hdr::FROM).unwrap();
    let mut bye = in_dialog(
        "BYE",
        "sip:127.0.0.1:5060",
        from_carrier,
        &to_gw,
        &inv.call_id().unwrap(),
        1,
        "z9hG4bKcb",
        "127.0.0.3:5060",
        "",
    );
    bye = bye.replace(
        "Content-Length: 0",
        "Reason: Q.850;cause=16;text=\"Normal\"\r\nContent-Length: 0",
    );
    h.recv(CARRIER_A, &bye);
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
    let b = h.one_request(PHONE, Method::Bye);
    assert_eq!(b.uri(), "sip:1000@127.0.0.2:5060");
    assert_eq!(b.to_tag().as_deref(), Some("alice1"));
    assert_eq!(b.from_tag(), ok.to_tag());
    assert_eq!(
        b.header(&Hdr::REASON).as_deref(),
        Some("Q.850;cause=16;text=\"Normal\"")
    );
    h.recv_msg(PHONE, reply(&b, 200, "alice1", &[], None));
    let c = &h.cdrs[0];
    assert_eq!(c.call_tag, CallTag::CalleeBye);
    assert_eq!((c.cause, c.cause_source), (16, CauseSource::ReasonHeader));
    assert_eq!(c.duration_ms, 5000);
    assert_idle(&mut h);
}

#[test]
fn cancel_before_answer() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c2", "z9hG4bKc2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t2", &[], None));
    h.take(PHONE);
    let cancel = "CANCEL sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKc2;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: c2\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n";
    h.recv(PHONE, cancel);
    let rs = h.take_responses(PHONE);
    let st: Vec<(u16, Method)> = rs
        .iter()
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert!(
        st.contains(&(200, Method::Cancel)) && st.contains(&(487, Method::Invite)),
        "{st:?}"
    );
    let c = h.one_request(CARRIER_A, Method::Cancel);
    assert_eq!(c.top_via().unwrap().branch, inv.top_via().unwrap().branch);
    h.recv_msg(CARRIER_A, reply(&c, 200, "t2", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 487, "t2", &[], None));
    // The gateway's INVITE transaction ACKs the 487 itself.
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerCancel);
    assert_eq!(h.cdrs[0].status, 487);
    assert!(h.cdrs[0].answer.is_none());
    // The caller ACKs our 487.
    let our_tag = rs
        .iter()
        .find(|r| r.status() == 487)
        .unwrap()
        .to_tag()
        .unwrap();
    h.recv(PHONE, &format!("ACK sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKc2;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\nTo: <sip:+8610123@127.0.0.1>;tag={our_tag}\r\nCall-ID: c2\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
    assert_idle(&mut h);
}

#[test]
fn cancel_racing_200_gets_ack_and_bye() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c3", "z9hG4bKc3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "t3", &[], Some(SDP)));
    h.take(PHONE);
    h.recv(PHONE, "CANCEL sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKc3;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: c3\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n");
    let cancel = h.one_request(CARRIER_A, Method::Cancel);
    // The carrier answered before it saw our CANCEL.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "t3",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            Some(SDP),
        ),
    );
    h.recv_msg(CARRIER_A, reply(&cancel, 200, "t3", &[], None));
    let sent = h.take(CARRIER_A);
    let acks = sent
        .iter()
        .filter(|m| matches!(m, Message::Request(r) if r.method() == Method::Ack))
        .count();
    let byes: Vec<Request> = sent
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) if r.method() == Method::Bye => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(acks, 1);
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].uri(), "sip:x@127.0.0.3");
    assert_eq!(byes[0].to_tag().as_deref(), Some("t3"));
    // The caller only ever sees the 487: never a 200 for the INVITE it cancelled.
    let to_phone: Vec<(u16, Method)> = h
        .take_responses(PHONE)
        .iter()
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert!(to_phone.contains(&(487, Method::Invite)), "{to_phone:?}");
    assert!(!to_phone.contains(&(200, Method::Invite)), "{to_phone:?}");
    h.recv_msg(CARRIER_A, reply(&byes[0], 200, "t3", &[], None));
    assert_eq!(h.cdrs.len(), 1);
    // One CDR, written when the caller cancelled; the late answer changes nothing in it.
    assert_eq!(h.cdrs[0].call_tag, CallTag::CallerCancel);
    assert!(h.cdrs[0].answer.is_none());
    assert_idle(&mut h);
}

#[test]
fn failover_on_503_then_answer_at_second_peer() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c4", "z9hG4bKc4", "+8610123", ""));
    assert_eq!(h.statuses(PHONE), vec![100]);
    let inv_a = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv_a, 503, "ta", &[], None));
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    assert_ne!(inv_a.call_id(), inv_b.call_id());
    assert_eq!(
        h.statuses(PHONE),
        Vec::<u16>::new(),
        "503 must not reach the caller"
    );
    h.recv_msg(
        CARRIER_B,
        reply(
            &inv_b,
            200,
            "tb",
            &[(Hdr::CONTACT, "<sip:b@127.0.0.4>")],
            Some(SDP),
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![200]);
    h.advance(Duration::from_secs(40));
    // No ACK from the phone: the gateway gives up after 64*T1 and hangs up both sides.
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].egress_peer.as_deref(), Some("carrier-b"));
    assert!(h.cdrs[0].events.contains(&"failover_503".to_string()));
    assert_eq!(h.cdrs[0].call_tag, CallTag::GatewayError);
}

#[test]
fn failover_on_timer_b() {
    let mut cfg = config();
    cfg.routes[0].ring_timeout = None;
    let mut h = H::with(cfg);
    h.recv(PHONE, &invite_text("c5", "z9hG4bKc5", "+8610123", ""));
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 1);
    h.advance(Duration::from_secs(31));
    // Timer A: retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; six by 31 s.
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 5);
    h.advance(Duration::from_secs(2));
    // Timer B fired at 32 s: INVITE to carrier B at 32 s and its first retransmission at 32.5 s.
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 2);
    // Carrier B is silent too: the caller gets 408 after its Timer B.
    h.advance(Duration::from_secs(33));
    assert!(h.statuses(PHONE).contains(&408));
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
    assert_eq!(
        (h.cdrs[0].cause, h.cdrs[0].cause_source),
        (102, CauseSource::Internal)
    );
}

#[test]
fn retransmitted_invite_is_absorbed() {
    let mut h = H::new();
    let text = invite_text("c6", "z9hG4bKc6", "+8610123", "");
    h.recv(PHONE, &text);
    h.advance(Duration::from_millis(500));
    h.recv(PHONE, &text);
    h.recv(PHONE, &text);
    assert_eq!(
        h.take_requests(CARRIER_A, Method::Invite).len(),
        2,
        "original + our own Timer A retransmission"
    );
    // The retransmissions are answered with the last provisional (100).
    assert_eq!(h.statuses(PHONE), vec![100, 100, 100]);
    assert_eq!(h.core.stats().calls, 1);
}

#[test]
fn busy_with_q850_reason_is_relayed_and_recorded() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c7", "z9hG4bKc7", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            486,
            "t7",
            &[(Hdr::REASON, "Q.850;cause=17;text=\"User busy\"")],
            None,
        ),
    );
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 486)
        .unwrap();
    assert_eq!(
        r.header(&Hdr::REASON).as_deref(),
        Some("Q.850;cause=17;text=\"User busy\"")
    );
    let c = &h.cdrs[0];
    assert_eq!(
        (c.call_tag, c.status, c.cause, c.cause_source),
        (CallTag::CalleeReject, 486, 17, CauseSource::ReasonHeader)
    );
}

#[test]
fn failure_without_reason_uses_rfc3398() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c8", "z9hG4bKc8", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 404, "t8", &[], None));
    let c = &h.cdrs[0];
    assert_eq!(
        (c.status, c.cause, c.cause_source),
        (404, 1, CauseSource::Rfc3398)
    );
    assert_idle(&mut h);
}

#[test]
fn unknown_source_unknown_number_and_hops() {
    let mut h = H::new();
    h.recv(
        "127.0.0.9:5060",
        &invite_text("c9", "z9hG4bKc9", "+8610123", "")
            .replace("127.0.0.2:5060;branch", "127.0.0.9:5060;branch"),
    );
    assert_eq!(h.statuses("127.0.0.9:5060"), vec![403]);
    assert!(h.cdrs.is_empty(), "an unknown source is not a call");

    h.recv(PHONE, &invite_text("c10", "z9hG4bKc10", "999", ""));
    assert_eq!(h.statuses(PHONE), vec![404]);
    assert_eq!(h.cdrs[0].call_tag, CallTag::NoRoute);

    h.recv(
        PHONE,
        &invite_text("c11", "z9hG4bKc11", "+8610123", "")
            .replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(h.statuses(PHONE), vec![483]);

    h.recv(
        PHONE,
        &invite_text("c12", "z9hG4bKc12", "+8610123", "Require: foo, timer\r\n"),
    );
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 420);
    assert_eq!(r.header(&Hdr::UNSUPPORTED).as_deref(), Some("foo, timer"));
    assert!(h.take(CARRIER_A).is_empty());
    assert_idle(&mut h);
}

#[test]
fn ring_timeout_sends_408_and_cancels() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c13", "z9hG4bKc13", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t13", &[], None));
    h.take(PHONE);
    h.advance(Duration::from_secs(60));
    assert!(h.statuses(PHONE).contains(&408));
    let c = h.one_request(CARRIER_A, Method::Cancel);
    h.recv_msg(CARRIER_A, reply(&c, 200, "t13", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 487, "t13", &[], None));
    assert_eq!(h.cdrs[0].call_tag, CallTag::NoAnswerTimeout);
    assert_eq!(h.cdrs[0].cause, 19, "alerted callee: no answer from user");
}

#[test]
fn reinvite_hold_is_relayed_with_its_ack() {
    let mut h = H::new();
    let (inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let hold = SDP.replace(
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n",
    );
    h.recv(
        PHONE,
        &in_dialog(
            "INVITE",
            "sip:127.0.0.1:5060",
            phone_from(),
            &phone_to(&tag),
            "call-1@127.0.0.2",
            2,
            "z9hG4bKre1",
            "127.0.0.2:5060",
            &hold,
        ),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(re.cseq().unwrap(), (2, Method::Invite));
    assert_eq!(re.call_id(), inv.call_id());
    assert_eq!(re.uri(), "sip:+8610123@127.0.0.3");
    assert!(String::from_utf8_lossy(re.body()).contains("a=sendonly"));
    h.recv_msg(
        CARRIER_A,
        reply(
            &re,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")],
            Some(&SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=recvonly\r\n")),
        ),
    );
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 200);
    assert_eq!(r.cseq().unwrap(), (2, Method::Invite));
    assert!(String::from_utf8_lossy(r.body()).contains("a=recvonly"));
    h.recv(
        PHONE,
        &in_dialog(
            "ACK",
            "sip:127.0.0.1:5060",
            phone_from(),
            &phone_to(&tag),
            "call-1@127.0.0.2",
            2,
            "z9hG4bKre1ack",
            "127.0.0.2:5060",
            "",
        ),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap(), (2, Method::Ack));
    // And from the carrier side: an UPDATE and an INFO are relayed and answered.
    let to_gw = inv.header(&Hdr::FROM).unwrap();
    h.recv(
        CARRIER_A,
        &in_dialog(
            "INFO",
            "sip:127.0.0.1:5060",
            "<sip:+8610123@ims.example.com>;tag=carrier1",
            &to_gw,
            &inv.call_id().unwrap(),
            1,
            "z9hG4bKinfo",
            "127.0.0.3:5060",
            "",
        ),
    );
    let info = h.one_request(PHONE, Method::Info);
    assert_eq!(info.call_id().as_deref(), Some("call-1@127.0.0.2"));
    h.recv_msg(PHONE, reply(&info, 200, "alice1", &[], None));
    assert_eq!(h.statuses(CARRIER_A), vec![200]);
}

#[test]
fn glare_gets_491() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &in_dialog(
            "INVITE",
            "sip:127.0.0.1",
            phone_from(),
            &phone_to(&tag),
            "call-1@127.0.0.2",
            2,
            "z9hG4bKg1",
            "127.0.0.2:5060",
            SDP,
        ),
    );
    h.take(CARRIER_A);
    h.recv(
        PHONE,
        &in_dialog(
            "INVITE",
            "sip:127.0.0.1",
            phone_from(),
            &phone_to(&tag),
            "call-1@127.0.0.2",
            3,
            "z9hG4bKg2",
            "127.0.0.2:5060",
            SDP,
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![491]);
}

#[test]
fn our_2xx_is_retransmitted_until_ack() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c14", "z9hG4bKc14", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "t14",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![100, 200]);
    h.advance(Duration::from_millis(1600));
    assert_eq!(
        h.statuses(PHONE),
        vec![200, 200],
        "retransmitted at 0.5 s and 1.5 s"
    );
    // No ACK to the carrier until the caller ACKs.
    assert!(h.take_requests(CARRIER_A, Method::Ack).is_empty());
    // The carrier retransmits its 2xx meanwhile; nothing breaks.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "t14",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert!(h.take_requests(CARRIER_A, Method::Ack).is_empty());
}

#[test]
fn no_ack_hangs_up_both_legs() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c15", "z9hG4bKc15", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "t15",
            &[(Hdr::CONTACT, "<sip:x@127.0.0.3>")],
            Some(SDP),
        ),
    );
    h.take(PHONE);
    h.advance(Duration::from_secs(33));
    let to_carrier = h.take(CARRIER_A);
    let methods: Vec<Method> = to_carrier
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.method()),
            _ => None,
        })
        .collect();
    assert!(
        methods.contains(&Method::Ack) && methods.contains(&Method::Bye),
        "{methods:?}"
    );
    assert!(!h.take_requests(PHONE, Method::Bye).is_empty());
    assert_eq!(h.cdrs[0].call_tag, CallTag::GatewayError);
}

#[test]
fn requests_for_unknown_dialogs_get_481_and_options_200() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &in_dialog(
            "BYE",
            "sip:127.0.0.1",
            phone_from(),
            "<sip:x@127.0.0.1>;tag=nope",
            "nocall",
            2,
            "z9hG4bKu1",
            "127.0.0.2:5060",
            "",
        ),
    );
    assert_eq!(h.statuses(PHONE), vec![481]);
    h.recv(
        "127.0.0.9:5060",
        &in_dialog(
            "OPTIONS",
            "sip:127.0.0.1",
            "<sip:ping@127.0.0.9>;tag=p",
            "<sip:127.0.0.1>",
            "ping1",
            1,
            "z9hG4bKo1",
            "127.0.0.9:5060",
            "",
        ),
    );
    let r = h.take_responses("127.0.0.9:5060").remove(0);
    assert_eq!(r.status(), 200);
    assert!(r.header(&Hdr::ALLOW).unwrap().contains("INVITE"));
    assert!(r.to_tag().is_some());
}

#[test]
fn malformed_requests_get_400() {
    let mut h = H::new();
    let bad =
        invite_text("c16", "z9hG4bKc16", "+8610123", "").replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    h.recv(PHONE, &bad);
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 400);
    assert!(r.reason().contains("CSeq"));
    assert_eq!(h.core.stats().calls, 0);
}

#[test]
fn early_media_reaches_the_caller() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c17", "z9hG4bKc17", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 183, "t17", &[], Some(SDP)));
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 183)
        .unwrap();
    assert_eq!(r.body().as_ref(), SDP.as_bytes());
    assert_eq!(
        r.header(&Hdr::CONTENT_TYPE).as_deref(),
        Some("application/sdp")
    );
}

#[test]
fn second_fork_answer_is_released() {
    let mut h = H::new();
    let (inv, _ok) = answered_call(&mut h);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "fork2",
            &[(Hdr::CONTACT, "<sip:fork2@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let sent = h.take(CARRIER_A);
    let byes: Vec<_> = sent
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) if r.method() == Method::Bye => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].to_tag().as_deref(), Some("fork2"));
    // The established call is untouched.
    assert!(h.cdrs.is_empty());
    assert_eq!(h.core.stats().calls, 1);
}

#[test]
fn shutdown_releases_calls_with_cdrs() {
    let mut h = H::new();
    answered_call(&mut h);
    h.recv(PHONE, &invite_text("c18", "z9hG4bKc18", "+8610123", ""));
    h.take(CARRIER_A);
    h.take(PHONE);
    assert_eq!(h.core.start_drain(), 2);
    h.recv(PHONE, &invite_text("c19", "z9hG4bKc19", "+8610123", ""));
    assert_eq!(h.statuses(PHONE), vec![503]);
    h.core.hangup_all(h.now);
    h.apply();
    let tags: Vec<CallTag> = h.cdrs.iter().map(|c| c.call_tag).collect();
    assert_eq!(tags, vec![CallTag::Shutdown; 3]);
    assert_eq!(h.take_requests(PHONE, Method::Bye).len(), 1);
}

#[test]
fn cancel_never_answered_is_given_up_without_leaks() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("c20", "z9hG4bKc20", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t20", &[], None));
    h.recv(PHONE, "CANCEL sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKc20;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: c20\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n");
    // The carrier answers neither the CANCEL nor the INVITE, ever.
    assert_eq!(h.cdrs.len(), 1);
    h.advance(Duration::from_secs(120));
    let s = h.core.stats();
    assert_eq!(s.calls, 0, "{s:?}");
    assert_eq!((s.client_txns, s.server_txns), (0, 0), "{s:?}");
    assert_eq!(
        (s.txn_map_client, s.txn_map_server, s.txn_map_calls),
        (0, 0, 0),
        "{s:?}"
    );
}

// ---------------------------------------------------------------- interop profiles

use crate::interop::causes::Q850Cause;
use crate::interop::prack::{On405, PrackMode, PrackPolicy};

fn prack(mode: PrackMode, on_405: On405) -> PrackPolicy {
    PrackPolicy { mode, on_405 }
}

fn reliable_183(inv: &Request, tag: &str, rseq: u32) -> Message {
    reply(
        inv,
        183,
        tag,
        &[
            (Hdr::REQUIRE, "100rel"),
            (Hdr::RSEQ, &rseq.to_string()),
            (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        ],
        Some(SDP),
    )
}

#[test]
fn outbound_invite_offers_requires_or_hides_100rel_per_profile() {
    for (mode, supported, required) in [
        (PrackMode::Supported, true, false),
        (PrackMode::Required, true, true),
        (PrackMode::Disabled, false, false),
    ] {
        let mut h = H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.prack = prack(mode, On405::Continue);
            }
        }));
        h.recv(
            PHONE,
            &invite_text(
                "p1",
                "z9hG4bKp1",
                "+8610123",
                "Supported: 100rel, timer\r\n",
            ),
        );
        let inv = h.one_request(CARRIER_A, Method::Invite);
        assert_eq!(
            inv.header_has_token(&Hdr::SUPPORTED, "100rel"),
            supported,
            "{mode:?}"
        );
        assert!(
            inv.header_has_token(&Hdr::SUPPORTED, "timer"),
            "other tags pass: {mode:?}"
        );
        assert_eq!(
            inv.header_has_token(&Hdr::REQUIRE, "100rel"),
            required,
            "{mode:?}"
        );
    }
}

#[test]
fn reliable_183_is_pracked_and_405_is_survived_with_continue() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("p2", "z9hG4bKp2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c2", 7));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(pr.header(&Hdr::RACK).as_deref(), Some("7 1 INVITE"));
    assert_eq!(pr.uri(), "sip:c@127.0.0.3");
    assert_eq!(pr.to_tag().as_deref(), Some("c2"));
    // The caller did not offer 100rel: it gets a plain 183 with the early SDP.
    let r183 = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 183)
        .unwrap();
    assert!(!r183.has_header(&Hdr::RSEQ));
    assert_eq!(r183.body().as_ref(), SDP.as_bytes());
    // A retransmitted 183 (same RSeq) is neither PRACKed again nor relayed again.
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c2", 7));
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    assert!(h.take_responses(PHONE).is_empty());
    // The carrier refuses its own PRACK, then answers the call.
    h.recv_msg(CARRIER_A, reply(&pr, 405, "c2", &[], None));
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c2", 8));
    assert!(
        h.take_requests(CARRIER_A, Method::Prack).is_empty(),
        "no more PRACKs to this peer"
    );
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "c2",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert!(h.statuses(PHONE).contains(&200));
    h.advance(Duration::from_secs(40));
    let c = &h.cdrs[0];
    assert!(
        c.events.contains(&"prack_405_ignored".to_string()),
        "{:?}",
        c.events
    );
}

#[test]
fn prack_timeout_with_fail_ends_the_call() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.prack = prack(PrackMode::Supported, On405::Fail);
        }
    }));
    h.recv(PHONE, &invite_text("p3", "z9hG4bKp3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c3", 1));
    h.take(PHONE);
    // Nobody answers the PRACK: Timer F after 32 s.
    h.advance(Duration::from_secs(33));
    assert!(h.statuses(PHONE).contains(&502));
    assert!(!h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    let c = &h.cdrs[0];
    assert_eq!(c.call_tag, CallTag::PrackRejected);
    assert!(
        c.events.contains(&"prack_timeout".to_string()),
        "{:?}",
        c.events
    );
}

fn invite_100rel(call_id: &str, branch: &str) -> String {
    invite_text(call_id, branch, "+8610123", "Supported: 100rel\r\n")
}

#[test]
fn caller_gets_reliable_provisionals_retransmitted_until_its_prack() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("p4", "z9hG4bKp4"));
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c4", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 183, "c4", &[], Some(SDP)));
    let first = h.take_responses(PHONE);
    assert_eq!(first.len(), 1, "one reliable provisional at a time");
    assert_eq!(first[0].status(), 180);
    assert!(first[0].header_has_token(&Hdr::REQUIRE, "100rel"));
    let rseq: u32 = first[0].header(&Hdr::RSEQ).unwrap().parse().unwrap();
    // Retransmitted at T1 and 2*T1 until PRACKed.
    h.advance(Duration::from_millis(1600));
    assert_eq!(h.statuses(PHONE), vec![180, 180]);
    let tag = first[0].to_tag().unwrap();
    let mut prack = in_dialog(
        "PRACK",
        "sip:127.0.0.1:5060",
        phone_from(),
        &phone_to(&tag),
        "p4",
        2,
        "z9hG4bKpr4",
        "127.0.0.2:5060",
        "",
    );
    prack = prack.replace(
        "Content-Length: 0",
        &format!("RAck: {rseq} 1 INVITE\r\nContent-Length: 0"),
    );
    h.recv(PHONE, &prack);
    let rs = h.take_responses(PHONE);
    let st: Vec<(u16, Method)> = rs
        .iter()
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert!(st.contains(&(200, Method::Prack)), "{st:?}");
    // The queued 183 goes out next, reliably, with the next RSeq.
    let r183 = rs
        .iter()
        .find(|r| r.status() == 183)
        .expect("queued 183 sent after PRACK");
    assert_eq!(r183.header(&Hdr::RSEQ).unwrap(), (rseq + 1).to_string());
    assert_eq!(r183.body().as_ref(), SDP.as_bytes());
    // No PRACK ever reaches the carrier: reliability is terminated per leg.
    assert!(h.take_requests(CARRIER_A, Method::Prack).is_empty());
    // The carrier answers while the 183 (with SDP) is unacknowledged: the 2xx waits.
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "c4",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    assert!(
        !h.statuses(PHONE).contains(&200),
        "2xx held until the SDP-carrying 183 is PRACKed"
    );
    let prack2 = in_dialog(
        "PRACK",
        "sip:127.0.0.1:5060",
        phone_from(),
        &phone_to(&tag),
        "p4",
        3,
        "z9hG4bKpr5",
        "127.0.0.2:5060",
        "",
    )
    .replace(
        "Content-Length: 0",
        &format!("RAck: {} 1 INVITE\r\nContent-Length: 0", rseq + 1),
    );
    h.recv(PHONE, &prack2);
    let st = h.statuses(PHONE);
    assert!(
        st.contains(&200) && st.iter().filter(|s| **s == 200).count() == 2,
        "200 PRACK + 200 INVITE: {st:?}"
    );
}

#[test]
fn caller_that_never_pracks_gets_5xx() {
    let mut h = H::new();
    h.recv(PHONE, &invite_100rel("p5", "z9hG4bKp5"));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c5", &[], None));
    h.take(PHONE);
    h.advance(Duration::from_secs(33));
    assert!(h.statuses(PHONE).contains(&500));
    assert_eq!(h.cdrs[0].call_tag, CallTag::PrackRejected);
    assert!(
        h.cdrs[0]
            .events
            .contains(&"caller_prack_timeout".to_string())
    );
}

#[test]
fn ingress_100rel_policy_refusals() {
    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.prack = prack(PrackMode::Required, On405::Continue);
        }
    }));
    h.recv(PHONE, &invite_text("p6", "z9hG4bKp6", "+8610123", ""));
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 421);
    assert_eq!(r.header(&Hdr::REQUIRE).as_deref(), Some("100rel"));

    let mut h = H::with(config_with(|n, p| {
        if n == "pbx" {
            p.prack = prack(PrackMode::Disabled, On405::Continue);
        }
    }));
    h.recv(
        PHONE,
        &invite_text("p7", "z9hG4bKp7", "+8610123", "Require: 100rel\r\n"),
    );
    let r = h.take_responses(PHONE).remove(0);
    assert_eq!(r.status(), 420);
    assert_eq!(r.header(&Hdr::UNSUPPORTED).as_deref(), Some("100rel"));
    // With the default (supported) a caller requiring 100rel is served.
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("p8", "z9hG4bKp8", "+8610123", "Require: 100rel\r\n"),
    );
    assert_eq!(h.statuses(PHONE), vec![100]);
}

#[test]
fn ptime_and_uri_policy_shape_the_outbound_invite_and_the_answer() {
    let mut h = H::with(config_with(|n, p| match n {
        "carrier-a" => {
            p.ptime = Some(20);
            p.uri.user_phone = true;
            p.uri.request_uri_params = "tgrp=abc".into();
        }
        "pbx" => p.ptime = Some(40),
        _ => {}
    }));
    h.recv(PHONE, &invite_text("p9", "z9hG4bKp9", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        inv.uri(),
        "sip:+8610123@ims.example.com;user=phone;tgrp=abc"
    );
    assert_eq!(
        inv.to_uri().as_deref(),
        Some("sip:+8610123@ims.example.com;user=phone")
    );
    let body = String::from_utf8_lossy(inv.body()).into_owned();
    assert_eq!(body, format!("{SDP}a=ptime:20\r\n"));
    let ok = h.carrier_answers(&inv, "c9", SDP);
    assert!(String::from_utf8_lossy(ok.body()).ends_with("a=ptime:40\r\n"));
}

#[test]
fn causes_map_and_send_reason() {
    let mut h = H::with(config_with(|n, p| match n {
        "carrier-a" => {
            p.causes.map.insert(480, Q850Cause(20));
        }
        "pbx" => p.causes.send_reason = false,
        _ => {}
    }));
    h.recv(PHONE, &invite_text("p10", "z9hG4bKp10", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 480, "c10", &[], None));
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 480)
        .unwrap();
    assert!(!r.has_header(&Hdr::REASON), "send_reason = false");
    let c = &h.cdrs[0];
    assert_eq!((c.cause, c.cause_source), (20, CauseSource::PeerMap));

    let mut h = H::new();
    h.recv(PHONE, &invite_text("p11", "z9hG4bKp11", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 480, "c11", &[], None));
    let r = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 480)
        .unwrap();
    assert_eq!(r.header(&Hdr::REASON).as_deref(), Some("Q.850;cause=18"));
    assert_eq!(h.cdrs[0].cause_source, CauseSource::Rfc3398);
}

#[test]
fn prack_481_with_continue_keeps_waiting_for_the_answer() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("p12", "z9hG4bKp12", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c12", 1));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    h.recv_msg(CARRIER_A, reply(&pr, 481, "c12", &[], None));
    assert!(h.cdrs.is_empty(), "the call goes on");
    h.recv_msg(CARRIER_A, reply(&inv, 486, "c12", &[], None));
    assert!(h.statuses(PHONE).contains(&486));
    assert!(
        h.cdrs[0].events.contains(&"prack_481_ignored".to_string()),
        "{:?}",
        h.cdrs[0].events
    );
}

#[test]
fn prack_is_retransmitted_over_udp_until_answered() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("p13", "z9hG4bKp13", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reliable_183(&inv, "c13", 1));
    assert_eq!(h.take_requests(CARRIER_A, Method::Prack).len(), 1);
    h.advance(Duration::from_millis(1600));
    assert_eq!(
        h.take_requests(CARRIER_A, Method::Prack).len(),
        2,
        "Timer E at 0.5 s and 1.5 s"
    );
}

/// Robustness: twenty thousand mutated INVITEs, BYEs and responses (flipped, inserted and
/// deleted bytes, truncations) must never panic the core, and it still serves a call after.
#[test]
fn mutated_messages_never_panic_the_core() {
    let mut h = H::new();
    let seeds = [
        invite_text("m1", "z9hG4bKm1", "+8610123", "Supported: 100rel\r\n"),
        in_dialog(
            "BYE",
            "sip:127.0.0.1",
            phone_from(),
            "<sip:+8610123@127.0.0.1>;tag=x",
            "m1",
            2,
            "z9hG4bKm2",
            "127.0.0.2:5060",
            "",
        ),
        format!(
            "SIP/2.0 183 Session Progress\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;rport\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: m3\r\nCSeq: 1 INVITE\r\nRequire: 100rel\r\nRSeq: 5\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        ),
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut parsed = 0;
    for i in 0..20_000 {
        let mut bytes = seeds[i % seeds.len()].clone().into_bytes();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 4 {
                0 => bytes[at] = (next() & 0xff) as u8,
                1 => {
                    let set = b";,<>\":@ \r\n\t%";
                    bytes.insert(at, set[(next() % set.len() as u64) as usize]);
                }
                2 if bytes.len() > 1 => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at.max(1)),
            }
        }
        if let Ok(msg) = parse_datagram(Bytes::from(bytes), 65535) {
            parsed += 1;
            let from = if i % 2 == 0 { PHONE } else { CARRIER_A };
            h.core.on_message(h.now, msg, Target::udp(addr(from)));
            h.apply();
        }
        if i % 2000 == 0 {
            h.advance(Duration::from_secs(1));
        }
    }
    assert!(
        parsed > 3000,
        "enough mutations must parse to reach the core ({parsed})"
    );
    h.advance(Duration::from_secs(200));
    h.sent.clear();
    answered_call(&mut h);
}

#[test]
fn identity_headers_follow_the_peers_number_form() {
    let mut cfg = config_with(|n, p| {
        if n == "carrier-a" {
            p.uri.number = crate::interop::uri::NumberFormat::E164;
            p.uri.country_code = Some("86".into());
            p.uri.user_phone = true;
        }
    });
    cfg.routes[0].prefix = String::new();
    let mut h = H::with(cfg);
    h.recv(
        PHONE,
        &invite_text(
            "i1",
            "z9hG4bKi1",
            "010-1234-5678",
            "Diversion: <sip:0755-8888@127.0.0.2>;reason=unconditional\r\n",
        ),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(inv.uri(), "sip:+861012345678@ims.example.com;user=phone");
    assert_eq!(
        inv.header(&Hdr::named("Diversion")).as_deref(),
        Some("<sip:+867558888@ims.example.com;user=phone>;reason=unconditional")
    );
    // A non-numeric identity keeps its user and loses its host.
    assert_eq!(
        inv.header(&Hdr::P_ASSERTED_IDENTITY).as_deref(),
        Some("\"Alice\" <sip:+861000@ims.example.com;user=phone>")
    );
}

// ---------------------------------------------------------------- media anchoring

use crate::media::{MediaAction, RelayPair};

fn anchored() -> H {
    H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }))
}

fn relay_pairs(h: &H) -> Vec<RelayPair> {
    h.media
        .iter()
        .rev()
        .find_map(|m| match m {
            MediaAction::Relay { pairs, .. } => Some(pairs.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn anchored_call_shows_each_side_only_the_gateway_and_plans_the_relay() {
    let mut h = anchored();
    h.recv(PHONE, &invite_text("a1", "z9hG4bKa1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let offer = String::from_utf8_lossy(inv.body()).into_owned();
    assert!(
        !offer.contains("192.0.2.10"),
        "phone's media address leaked:\n{offer}"
    );
    assert!(offer.contains("c=IN IP4 127.0.0.1\r\n"));
    let pairs = relay_pairs(&h);
    assert_eq!(pairs.len(), 1);
    assert!(
        offer.contains(&format!("m=audio {} RTP/AVP 0", pairs[0].b_port)),
        "{offer}"
    );
    assert_eq!(pairs[0].a_remote, Some("192.0.2.10:4000".parse().unwrap()));
    assert_eq!(pairs[0].b_remote, None);
    // The carrier answers from its own media address; the phone sees only the gateway.
    let answer = SDP
        .replace("192.0.2.10", "198.51.100.7")
        .replace("4000", "5004");
    let ok = h.carrier_answers(&inv, "m1", &answer);
    let body = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(!body.contains("198.51.100.7"), "{body}");
    let pairs = relay_pairs(&h);
    assert!(
        body.contains(&format!("m=audio {} RTP/AVP 0", pairs[0].a_port)),
        "{body}"
    );
    assert_eq!(
        pairs[0].b_remote,
        Some("198.51.100.7:5004".parse().unwrap())
    );
    assert_ne!(pairs[0].a_port, pairs[0].b_port);
}

#[test]
fn ports_return_to_the_pool_whatever_way_calls_end() {
    let mut h = anchored();
    let total = h.core.free_media_ports();
    assert_eq!(total, 5, "test pool 30000-30009");
    for i in 0..2000 {
        let id = format!("pp{i}");
        h.recv(
            PHONE,
            &invite_text(&id, &format!("z9hG4bKpp{i}"), "+8610123", ""),
        );
        let inv = h.one_request(CARRIER_A, Method::Invite);
        match i % 3 {
            0 => h.recv_msg(CARRIER_A, reply(&inv, 486, "x", &[], None)),
            1 => {
                let ok = h.carrier_answers(&inv, "x", SDP);
                let tag = ok.to_tag().unwrap();
                h.recv(
                    PHONE,
                    &in_dialog(
                        "BYE",
                        "sip:127.0.0.1",
                        phone_from(),
                        &format!("<sip:+8610123@127.0.0.1>;tag={tag}"),
                        &id,
                        2,
                        &format!("z9hG4bKppb{i}"),
                        "127.0.0.2:5060",
                        "",
                    ),
                );
                let bye = h.one_request(CARRIER_A, Method::Bye);
                h.recv_msg(CARRIER_A, reply(&bye, 200, "x", &[], None));
            }
            _ => h.advance(Duration::from_secs(33)),
        }
        h.sent.clear();
    }
    h.advance(Duration::from_secs(100));
    assert_eq!(h.core.free_media_ports(), total, "no port leaked");
    let releases = h
        .media
        .iter()
        .filter(|m| matches!(m, MediaAction::Release { .. }))
        .count();
    assert_eq!(releases, 2000);
}

#[test]
fn an_exhausted_pool_refuses_the_call_with_503() {
    let mut h = anchored();
    // Five pairs: two calls take four, the third needs two more.
    for i in 0..3 {
        h.recv(
            PHONE,
            &invite_text(&format!("ex{i}"), &format!("z9hG4bKex{i}"), "+8610123", ""),
        );
    }
    assert_eq!(h.take_requests(CARRIER_A, Method::Invite).len(), 2);
    let st: Vec<u16> = h.statuses(PHONE);
    assert!(st.contains(&503), "{st:?}");
    let c = h.cdrs.iter().find(|c| c.call_id == "ex2").unwrap();
    assert_eq!(c.call_tag, CallTag::MediaUnavailable);
    assert_eq!(c.cause, 47);
}

#[test]
fn reinvite_moving_media_updates_the_relay_without_new_ports() {
    let mut h = anchored();
    h.recv(PHONE, &invite_text("mv1", "z9hG4bKmv1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let ok = h.carrier_answers(&inv, "c", SDP);
    let tag = ok.to_tag().unwrap();
    h.recv(
        PHONE,
        &in_dialog(
            "ACK",
            "sip:127.0.0.1",
            phone_from(),
            &phone_to(&tag),
            "mv1",
            1,
            "z9hG4bKmv1a",
            "127.0.0.2:5060",
            "",
        ),
    );
    let before = relay_pairs(&h);
    let free = h.core.free_media_ports();
    // Hold, from a new port.
    let moved = SDP
        .replace("4000", "4010")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    h.recv(
        PHONE,
        &in_dialog(
            "INVITE",
            "sip:127.0.0.1",
            phone_from(),
            &phone_to(&tag),
            "mv1",
            2,
            "z9hG4bKmv2",
            "127.0.0.2:5060",
            &moved,
        ),
    );
    let re = h.one_request(CARRIER_A, Method::Invite);
    let body = String::from_utf8_lossy(re.body()).into_owned();
    assert!(
        body.contains(&format!("m=audio {} RTP/AVP 0", before[0].b_port)),
        "{body}"
    );
    assert!(body.contains("a=sendonly"));
    let after = relay_pairs(&h);
    assert_eq!(
        (after[0].a_port, after[0].b_port),
        (before[0].a_port, before[0].b_port)
    );
    assert_eq!(after[0].a_remote, Some("192.0.2.10:4010".parse().unwrap()));
    assert_eq!(
        h.core.free_media_ports(),
        free,
        "no new ports for a moved stream"
    );
}
