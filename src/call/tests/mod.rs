//! Call flows against the sans-IO core with a fake clock: every test runs in microseconds.
//! This file is the harness (the core driven exactly as the shell drives it, and message
//! builders); the flows are in the files beside it, one theme each.

mod anchor;
mod auth;
mod callback;
mod calls;
mod carried_terms;
mod crossing;
mod edge;
mod faults;
mod forks;
mod front;
mod history_info;
mod limits;
mod loops;
mod midcall;
mod msgs;
mod peer_health;
mod prack;
mod prack_offer;
mod probe;
mod profiles;
mod relayed_invite;
mod reoffer;
mod robustness;
mod session_timer;
mod size;
mod strays;
mod unusual;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::*;
use crate::cdr::{CallTag, CauseSource, CdrRecord};
use crate::config::{Config, Listen, PeerName, Profile, Role, Route, RouteFrom};
use crate::sip::{
    Hdr, IdGen, Message, Method, Request, Response, Target, Transport, parse_datagram,
};
use crate::txn::TimerConfig;
use msgs::{cancel_text, in_dialog, invite_text, offerless_text, reply, tagless_2xx};

pub(super) const PHONE: &str = "127.0.0.2:5060";
pub(super) const CARRIER_A: &str = "127.0.0.3:5060";
pub(super) const CARRIER_B: &str = "127.0.0.4:5060";
pub(super) const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// The session version of the SDP in `body` (its `o=` line's third field).
pub(super) fn origin_version(body: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(body);
    let o = text
        .lines()
        .find(|l| l.starts_with("o="))
        .expect("an o= line");
    o.split(' ')
        .nth(2)
        .and_then(|v| v.parse().ok())
        .expect("a version")
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) fn profile(name: &str, role: Role, ip: &str) -> (PeerName, Arc<Profile>) {
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
        rtp_hold_timeout: None,
        repacketize: false,
        rebind_after_silence: crate::media::MOVE_AFTER_SILENCE,
        max_streams: None,
        media_networks: None,
        limits: Default::default(),
        auth: None,
        register: None,
        session_timer: Default::default(),
        allow: None,
        transfer: Default::default(),
        transfer_to_trunks: false,
        invite_timeout: None,
        probe: (role == Role::Trunk).then_some(crate::config::DEFAULT_PROBE),
        ping: None,
        // As the loader has it: a trunk is in the trust domain, an internal peer is not;
        // the PBX's own assertions are believed, as profiles/pbx.toml has it.
        headers: crate::interop::headers::HeaderPolicy {
            trust_identity: role == Role::Trunk,
            trust_asserted: role == Role::Trunk || name == "pbx",
            ..Default::default()
        },
    };
    (p.name.clone(), Arc::new(p))
}

/// A call from the phone that carrier-a refuses with `503` and `Retry-After: 300`: carrier-a
/// rests (RFC 3261 §21.5.4); the call goes on to carrier-b, whose INVITE is taken.
pub(super) fn carrier_a_resting(h: &mut H, id: &str) {
    h.recv(
        PHONE,
        &invite_text(id, &format!("z9hG4bK{id}"), "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(&inv, 503, "o1", &[(Hdr::RETRY_AFTER, "300")], None),
    );
    h.take(CARRIER_B);
}

/// The standard test configuration with some profiles adjusted.
pub(super) fn config_with(edit: impl Fn(&str, &mut Profile)) -> Config {
    let mut cfg = config();
    edit_profiles(&mut cfg, edit);
    cfg
}

/// Each profile of `cfg` edited by `edit` (given its name).
pub(super) fn edit_profiles(cfg: &mut Config, edit: impl Fn(&str, &mut Profile)) {
    for (name, p) in cfg.profiles.iter_mut() {
        let mut q = (**p).clone();
        edit(&name.0, &mut q);
        *p = Arc::new(q);
    }
}

/// The PBX dials as in North America (`country_code` 1, `011` abroad, `1` before a national
/// number); carrier-a takes numbers in E.164, its own country `carrier_cc`.
pub(super) fn nanp_pbx_and_e164_carrier(name: &str, p: &mut Profile, carrier_cc: &str) {
    match name {
        "pbx" => {
            p.uri.country_code = Some("1".into());
            p.uri.international_prefix = "011".into();
            p.uri.national_prefix = "1".into();
        }
        "carrier-a" => {
            p.uri.number = crate::interop::uri::NumberFormat::E164;
            p.uri.country_code = Some(carrier_cc.into());
        }
        _ => {}
    }
}

/// The test gateway with carrier-a's calls anchored.
pub(super) fn anchored() -> H {
    H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.anchor = true;
        }
    }))
}

pub(crate) fn config() -> Config {
    Config {
        listen: vec![Listen {
            transport: Transport::Udp,
            addr: addr("127.0.0.1:5060"),
        }],
        advertise: "127.0.0.1".into(),
        front: None,
        cdr_path: "/dev/null".into(),
        max_message_bytes: 65535,
        protect: Default::default(),
        cdr_fail_closed: true,
        cdr_max_pending: 10_000,
        cdr_refused_rate: None,
        cdr_refused_rate_total: None,
        callback: Default::default(),
        warnings: Vec::new(),
        limits: Default::default(),
        drain: Duration::from_secs(1),
        metrics: crate::config::MetricsConfig {
            listen: None,
            allow: Vec::new(),
            max_connections: 1,
        },
        media_ip: "127.0.0.1".parse().unwrap(),
        media_ports: (30000, 30009),
        media_max_streams: 4,
        media_threads: 1,
        media_threads_auto: false,
        host_ips: Default::default(),
        recording_dir: "/tmp/trunkgate-test-recordings".into(),
        recording_stereo: true,
        recording_jitter: Duration::from_millis(60),
        recording_min_free: 0,
        profiles: [
            profile("pbx", Role::Internal, "127.0.0.2"),
            profile("carrier-a", Role::Trunk, "127.0.0.3"),
            profile("carrier-b", Role::Trunk, "127.0.0.4"),
        ]
        .into_iter()
        .collect(),
        peers: Default::default(),
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
    }
}

/// The core driven exactly as the shell drives it, on a fake clock.
pub(super) struct H {
    pub(super) core: B2bua,
    pub(super) now: Instant,
    pub(super) sent: Vec<(Target, Message)>,
    pub(super) cdrs: Vec<CdrRecord>,
    pub(super) media: Vec<crate::media::MediaAction>,
    pub(super) events: Vec<CoreEvent>,
    /// What the call-back service was told.
    pub(super) reports: Vec<CallbackReport>,
    /// The transaction of each message sent within one, by destination.
    pub(super) txns: Vec<(SocketAddr, crate::txn::TxnId)>,
    /// The UDP listener every datagram comes in on (`None`: the engine's choice).
    pub(super) on: Option<crate::sip::ListenerId>,
    /// Parse what the gateway sends with room in a header for our To tag (a test of a To
    /// at the parser's limit); otherwise with the limits it receives with.
    pub(super) lenient: bool,
}

impl H {
    pub(super) fn new() -> Self {
        Self::with(config())
    }

    /// The peers of the late answers counted so far (`CoreEvent::LateAnswer`), in order.
    pub(super) fn late_answers(&self) -> Vec<&str> {
        let peers = self.events.iter().filter_map(|e| match e {
            CoreEvent::LateAnswer { peer } => Some(&*peer.0),
            _ => None,
        });
        peers.collect()
    }

    /// The streams the relay was last told of (none when it was told nothing).
    pub(super) fn relay_pairs(&self) -> Vec<crate::media::RelayPair> {
        self.media
            .iter()
            .rev()
            .find_map(|m| match m {
                crate::media::MediaAction::Relay { pairs, .. } => Some(pairs.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    pub(super) fn with(mut cfg: Config) -> Self {
        // (As loading the configuration does.)
        cfg.link_dial_plans();
        let now = Instant::now();
        H {
            core: B2bua::new(
                Arc::new(cfg),
                TimerConfig::default(),
                IdGen::new(7),
                now,
                SystemTime::UNIX_EPOCH,
            ),
            now,
            sent: Vec::new(),
            cdrs: Vec::new(),
            media: Vec::new(),
            events: Vec::new(),
            reports: Vec::new(),
            txns: Vec::new(),
            on: None,
            lenient: false,
        }
    }

    /// Take every output of the core.
    pub(super) fn apply(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Transmit { target, wire, txn } => {
                    if let Some(t) = txn {
                        self.txns.push((target.addr, t));
                    }
                    // Every message we emit must survive a wire round trip.
                    let parsed = if self.lenient {
                        crate::sip::parse_sent(wire.clone(), 65535)
                    } else {
                        parse_datagram(wire.clone(), 65535)
                    };
                    let back = parsed.unwrap_or_else(|e| {
                        panic!("unparseable output {e}: {}", String::from_utf8_lossy(&wire))
                    });
                    self.sent.push((target, back));
                }
                Output::Cdr(c, _) => self.cdrs.push(*c),
                Output::Media(m) => self.media.push(m),
                Output::Event(e) => self.events.push(e),
                Output::Callback(r) => self.reports.push(r),
            }
        }
    }

    /// The transaction of the (first) request sent to `to`.
    pub(super) fn txn_to(&self, to: &str) -> crate::txn::TxnId {
        (self.txns.iter())
            .find(|(a, _)| *a == addr(to))
            .map(|(_, t)| *t)
            .expect("a request went out in a transaction")
    }

    /// The transaction of the last request sent to `to`.
    pub(super) fn last_txn_to(&self, to: &str) -> crate::txn::TxnId {
        (self.txns.iter().rev())
            .find(|(a, _)| *a == addr(to))
            .map(|(_, t)| *t)
            .expect("a request went out in a transaction")
    }

    pub(super) fn input(&mut self, input: Input) {
        self.core.handle_input(self.now, input);
        self.apply();
    }

    /// Reload the core with `cfg`: whether it applied.
    pub(super) fn reload(&mut self, cfg: Arc<Config>) -> bool {
        let applied = self.core.reload(self.now, cfg);
        self.apply();
        applied
    }

    pub(super) fn recv(&mut self, from: &str, text: &str) {
        let msg =
            parse_datagram(Bytes::from(text.to_string()), 65535).expect("test message parses");
        let source = Target {
            listener: self.on,
            ..Target::udp(addr(from))
        };
        self.input(Input::Message { msg, source });
    }

    /// A message over TCP connection `conn`, which the peer opened from `from`.
    pub(super) fn recv_tcp_on(&mut self, from: &str, conn: u64, text: &str) {
        let msg =
            parse_datagram(Bytes::from(text.to_string()), 65535).expect("test message parses");
        let source = Target {
            transport: Transport::Tcp,
            addr: addr(from),
            conn: Some(crate::sip::ConnId(conn)),
            listener: None,
        };
        self.input(Input::Message { msg, source });
    }

    /// A message over TCP (a connection the peer opened).
    pub(super) fn recv_tcp(&mut self, from: &str, text: &str) {
        let msg =
            parse_datagram(Bytes::from(text.to_string()), 65535).expect("test message parses");
        let source = Target {
            transport: Transport::Tcp,
            addr: addr(from),
            conn: Some(crate::sip::ConnId(1)),
            listener: None,
        };
        self.input(Input::Message { msg, source });
    }

    pub(super) fn recv_msg(&mut self, from: &str, msg: Message) {
        let wire = msg.to_bytes();
        let msg = parse_datagram(wire, 65535).unwrap();
        let source = Target {
            listener: self.on,
            ..Target::udp(addr(from))
        };
        self.input(Input::Message { msg, source });
    }

    /// Let `d` pass, firing every deadline the core asks for on the way.
    pub(super) fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.core.poll_timeout() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            self.core.handle_timeout(self.now);
            self.apply();
        }
        self.now = end;
    }

    /// Take everything sent to `to`.
    pub(super) fn take(&mut self, to: &str) -> Vec<Message> {
        let to = addr(to);
        let (mine, rest): (Vec<_>, Vec<_>) = self.sent.drain(..).partition(|(t, _)| t.addr == to);
        self.sent = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }

    pub(super) fn take_requests(&mut self, to: &str, method: Method) -> Vec<Request> {
        self.take(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) if r.method() == method => Some(r),
                _ => None,
            })
            .collect()
    }

    pub(super) fn take_responses(&mut self, to: &str) -> Vec<Response> {
        self.take(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Every request sent to `to`, in order (what was sent to it is taken, responses too).
    pub(super) fn requests_to(&mut self, to: &str) -> Vec<Request> {
        self.take(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r),
                Message::Response(_) => None,
            })
            .collect()
    }

    pub(super) fn one_request(&mut self, to: &str, method: Method) -> Request {
        let mut v = self.take_requests(to, method.clone());
        assert_eq!(v.len(), 1, "expected one {method} to {to}, got {}", v.len());
        v.remove(0)
    }

    /// The response with `status` among those `to` got (taken, with the rest); `what` says
    /// which it is when there is none.
    pub(super) fn response_with(&mut self, to: &str, status: u16, what: &str) -> Response {
        self.take_responses(to)
            .into_iter()
            .find(|r| r.status() == status)
            .unwrap_or_else(|| panic!("{what}"))
    }

    pub(super) fn statuses(&mut self, to: &str) -> Vec<u16> {
        self.take_responses(to).iter().map(|r| r.status()).collect()
    }

    /// The failure statuses (300–699) `to` got: what its INVITE ended with, without the
    /// 200s its PRACKs or CANCELs got meanwhile.
    pub(super) fn failures(&mut self, to: &str) -> Vec<u16> {
        self.statuses(to)
            .into_iter()
            .filter(|s| *s >= 300)
            .collect()
    }

    /// carrier-a answers `inv` with 200 (To-tag `tag`, body `sdp`); returns the 200 the
    /// phone then gets.
    pub(super) fn carrier_answers(&mut self, inv: &Request, tag: &str, sdp: &str) -> Response {
        self.carrier_answers_on(CARRIER_A, inv, tag, sdp)
    }

    /// The carrier at `carrier` answers our INVITE `inv` with 200 and `sdp`: the 200 the
    /// phone gets.
    pub(super) fn carrier_answers_on(
        &mut self,
        carrier: &str,
        inv: &Request,
        tag: &str,
        sdp: &str,
    ) -> Response {
        self.answer_from(carrier, inv, tag, Some(sdp))
    }

    /// carrier-a answers `inv` with a 200 without SDP (its answer came in a reliable 18x):
    /// the 200 the phone gets.
    pub(super) fn carrier_answers_bare(&mut self, inv: &Request, tag: &str) -> Response {
        self.answer_from(CARRIER_A, inv, tag, None)
    }

    fn answer_from(
        &mut self,
        carrier: &str,
        inv: &Request,
        tag: &str,
        sdp: Option<&str>,
    ) -> Response {
        self.recv_msg(
            carrier,
            reply(inv, 200, tag, &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")], sdp),
        );
        self.response_with(PHONE, 200, "the phone gets the 200")
    }
}

/// A second branch of the forked INVITE `inv` answers too (To tag `fork2`), with SDP.
pub(super) fn second_fork_answers(h: &mut H, inv: &Request) {
    h.recv_msg(
        CARRIER_A,
        reply(
            inv,
            200,
            "fork2",
            &[(Hdr::CONTACT, "<sip:fork2@127.0.0.3>")],
            Some(SDP),
        ),
    );
}

/// carrier-a authenticates our INVITE `inv`: its proxy challenges it (407, realm
/// `proxy.carrier.example`), then its server (401, realm `carrier.example`). Returns the
/// INVITE sent with both credentials: a leg on which the gateway answers challenges for
/// those realms inside the dialog.
pub(super) fn authenticate_invite(h: &mut H, inv: &Request) -> Request {
    let digest = |realm: &str, nonce: &str| {
        format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5")
    };
    let proxy = digest("proxy.carrier.example", "ip1");
    let proxy = [(Hdr::named("Proxy-Authenticate"), proxy.as_str())];
    h.recv_msg(CARRIER_A, reply(inv, 407, "proxy1", &proxy, None));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let server = digest("carrier.example", "is1");
    let server = [(Hdr::named("WWW-Authenticate"), server.as_str())];
    h.recv_msg(CARRIER_A, reply(&inv, 401, "server1", &server, None));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.header(&Hdr::AUTHORIZATION).is_some());
    assert!(inv.header(&Hdr::PROXY_AUTHORIZATION).is_some());
    inv
}

/// [`answered_call`] whose INVITE carrier-a authenticated ([`authenticate_invite`]).
/// Returns (the B-leg INVITE sent last, the A-leg 200).
pub(super) fn authenticated_call(h: &mut H) -> (Request, Response) {
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", ""),
    );
    h.take(PHONE);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let inv = authenticate_invite(h, &inv);
    let contact = [(Hdr::CONTACT, "<sip:+8610123@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "carrier1", &contact, Some(SDP)));
    let ok = h.take_responses(PHONE).remove(0);
    assert_eq!(ok.status(), 200);
    let our_tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &our_tag, 1, "z9hG4bKack1", ""));
    h.one_request(CARRIER_A, Method::Ack);
    (inv, ok)
}

/// Set up a call to the answered-and-ACKed state. Returns (B-leg INVITE, A-leg 200).
pub(super) fn answered_call(h: &mut H) -> (Request, Response) {
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

pub(super) fn phone_from() -> &'static str {
    "\"Alice\" <sip:1000@127.0.0.2>;tag=alice1"
}

pub(super) fn phone_to(our_tag: &str) -> String {
    format!("<sip:+8610123@127.0.0.1>;tag={our_tag}")
}

/// A request from the phone in the dialog `answered_call` set up (our To tag `tag`).
pub(super) fn from_phone(method: &str, tag: &str, cseq: u32, branch: &str, body: &str) -> String {
    from_phone_in("call-1@127.0.0.2", method, tag, cseq, branch, body)
}

/// The phone's PRACK (CSeq `cseq`) of reliable provisional `rseq` on dialog `tag`, with
/// `body` as its SDP (or none).
pub(super) fn phone_prack(call_id: &str, tag: &str, cseq: u32, rseq: u32, body: &str) -> String {
    let prack = in_dialog(
        "PRACK",
        "sip:127.0.0.1:5060",
        phone_from(),
        &phone_to(tag),
        call_id,
        cseq,
        &format!("z9hG4bKpr{call_id}{cseq}"),
        "127.0.0.2:5060",
        body,
    );
    let rack = format!("RAck: {rseq} 1 INVITE\r\n");
    prack.replacen("Content-", &format!("{rack}Content-"), 1)
}

/// The phone's request in the dialog of its call `call_id`.
pub(super) fn from_phone_in(
    call_id: &str,
    method: &str,
    tag: &str,
    cseq: u32,
    branch: &str,
    body: &str,
) -> String {
    in_dialog(
        method,
        "sip:127.0.0.1",
        phone_from(),
        &phone_to(tag),
        call_id,
        cseq,
        branch,
        "127.0.0.2:5060",
        body,
    )
}

/// The carrier's NOTIFY of a transfer's progress (CSeq `cseq`, `branch`) in the dialog of
/// our INVITE `inv` to it (its tag `carrier1`), with the `Event` value `event` and a
/// `Subscription-State` of `state`.
pub(super) fn carrier_notify(
    inv: &Request,
    cseq: u32,
    branch: &str,
    event: &str,
    state: &str,
) -> String {
    in_dialog(
        "NOTIFY",
        "sip:127.0.0.1:5060",
        "<sip:+8610123@ims.example.com>;tag=carrier1",
        &inv.header(&Hdr::FROM).unwrap(),
        &inv.call_id().unwrap(),
        cseq,
        branch,
        "127.0.0.3:5060",
        "",
    )
    .replace(
        "Content-Length: 0",
        &format!("Event: {event}\r\nSubscription-State: {state}\r\nContent-Length: 0"),
    )
}

/// The carrier's request in the dialog of our INVITE `inv` to it, where its tag is `tag`.
pub(super) fn from_carrier_in(
    inv: &Request,
    method: &str,
    tag: &str,
    cseq: u32,
    branch: &str,
    body: &str,
) -> String {
    in_dialog(
        method,
        "sip:127.0.0.1:5060",
        &format!("<sip:+8610123@ims.example.com>;tag={tag}"),
        &inv.header(&Hdr::FROM).expect("our INVITE has a From"),
        &inv.call_id().expect("our INVITE has a Call-ID"),
        cseq,
        branch,
        "127.0.0.3:5060",
        body,
    )
}

/// The phone's BYE in that dialog.
pub(super) fn phone_bye(tag: &str, cseq: u32, branch: &str) -> String {
    from_phone("BYE", tag, cseq, branch, "")
}

pub(super) fn assert_idle(h: &mut H) {
    h.advance(Duration::from_secs(60));
    let s = h.core.stats();
    assert_eq!(s.calls, 0, "{s:?}");
    assert_eq!((s.dialogs, s.setups), (0, 0), "{s:?}");
    assert_eq!((s.client_txns, s.server_txns), (0, 0), "{s:?}");
    assert_eq!((s.txn_owners, h.core.timers_armed()), (0, 0), "{s:?}");
}
