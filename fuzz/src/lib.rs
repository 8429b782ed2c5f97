//! The bodies of the fuzz targets. Each takes the raw input, drives the gateway's own entry
//! points the way the engine does, and checks a few properties a peer could otherwise break
//! (a panic, a 400 we could not parse ourselves, an anchored SDP that still names the peer).
//!
//! This file is compiled twice: as the `trunkgate-fuzz` library the libFuzzer binaries call,
//! and, through `#[path]`, inside tests/fuzz_corpus.rs, which replays every corpus file on
//! stable Rust. So it may use only `trunkgate`, `bytes` and `std`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use bytes::Bytes;
use trunkgate::sdp;
use trunkgate::sip::{
    Framed, Hdr, Message, Request, Response, StreamFramer, Unreadable, dialled_number, is_sip_date,
    parse_datagram, parse_sent, reject_unparseable,
};

/// The engine's default `[protect] max_message_bytes`.
const MAX_MESSAGE: usize = 65535;

/// Headers the call layer reads.
fn headers() -> [Hdr; 20] {
    [
        Hdr::VIA,
        Hdr::FROM,
        Hdr::TO,
        Hdr::CALL_ID,
        Hdr::CSEQ,
        Hdr::CONTACT,
        Hdr::MAX_FORWARDS,
        Hdr::ROUTE,
        Hdr::RECORD_ROUTE,
        Hdr::CONTENT_TYPE,
        Hdr::CONTENT_LENGTH,
        Hdr::REASON,
        Hdr::REQUIRE,
        Hdr::PROXY_REQUIRE,
        Hdr::SUPPORTED,
        Hdr::RSEQ,
        Hdr::RACK,
        Hdr::P_ASSERTED_IDENTITY,
        Hdr::named("Diversion"),
        Hdr::named("Date"),
    ]
}

/// One UDP datagram, as `engine/udp.rs` handles it: parse; on failure, the stateless 400.
pub fn sip_datagram(data: &[u8]) {
    let parsed = parse_datagram(Bytes::copy_from_slice(data), MAX_MESSAGE);
    fast_path(data, parsed.as_ref().ok());
    match parsed {
        Ok(msg) => exercise(&msg),
        Err(e) => stateless_reject(Unreadable::Malformed, data, &e.to_string()),
    }
}

/// What the edge reads of a datagram before any parser (`sip::fast`): where the core takes
/// the request (it parses and passes `ingress::validate_request`; anything else is its 400
/// or nothing), both must read it alike (a message the edge takes for a new INVITE, a
/// CANCEL or an ACK is one to the core; an identifier the edge trusts for admission is the
/// one the core reads); the stateless 503 must be that response.
fn fast_path(data: &[u8], parsed: Option<&Message>) {
    use trunkgate::sip::Method;
    use trunkgate::sip::fast::{self, Peek};
    let _ = fast::top_via_port(data);
    let request = match parsed {
        Some(Message::Request(r)) if trunkgate::sip::ingress::validate_request(r).is_ok() => {
            Some(r)
        }
        _ => None,
    };
    let ids = fast::ids(data);
    if let Some(r) = request {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if let Some(c) = ids.call_id {
            assert_eq!(r.call_id(), Some(text(c)), "Call-ID read two ways");
        }
        if let Some(t) = ids.to_tag {
            assert_eq!(r.to_tag(), Some(text(t)), "To tag read two ways");
        }
    }
    let (head, method) = match fast::peek(data) {
        Peek::NewInvite { head, branch } => ((head, branch), Method::Invite),
        Peek::Cancel { head, branch } => ((head, branch), Method::Cancel),
        Peek::Ack { .. } => {
            if let Some(r) = request {
                assert_eq!(r.method(), Method::Ack, "an ACK to the edge only");
            }
            return;
        }
        Peek::Other => return,
    };
    let (head, branch) = head;
    if let Some(r) = request {
        assert_eq!(r.method(), method, "the method read two ways");
        assert_eq!(r.to_tag(), None, "outside a dialog to the edge only");
        let top = r.top_via().and_then(|v| v.branch);
        assert_eq!(
            top.as_deref().map(str::as_bytes),
            Some(branch),
            "the branch read two ways"
        );
    }
    let _ = head.cancelled_cseq();
    if let Some(reply) = fast::refuse(&head, data.len(), "fz", 5) {
        match parse_datagram(Bytes::from(reply.clone()), MAX_MESSAGE) {
            Ok(Message::Response(r)) => assert_eq!(r.status(), 503),
            other => panic!("stateless 503 is not a response: {other:?}\n{reply:?}"),
        }
    }
}

/// The stateless 400 (or 513) for bytes that did not parse (`why`): when there is one, the
/// gateway sends it to the source, so it must be that response.
fn stateless_reject(status: Unreadable, data: &[u8], why: &str) {
    if let Some(resp) = reject_unparseable(status, data, why) {
        let code = match status {
            Unreadable::Malformed => 400,
            Unreadable::TooLarge => 513,
        };
        match parse_datagram(resp.clone(), MAX_MESSAGE) {
            Ok(Message::Response(r)) => assert_eq!(r.status(), code),
            other => panic!("stateless {code} is not a response: {other:?}\n{resp:?}"),
        }
    }
}

/// A TCP byte stream, as `engine/tcp.rs` handles it: the input is cut into chunks and pushed
/// into one framer until it reports lost framing. The first byte picks the chunk size (its
/// low six bits) and the framer's size limit (its top two: the default, or one small enough
/// for inputs to reach it).
pub fn sip_stream(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let max = [MAX_MESSAGE, 300, 800, 2000][usize::from(first / 64)];
    let mut framer = StreamFramer::new(max);
    let mut framed = Vec::new();
    let mut failed = false;
    for piece in rest.chunks(chunk) {
        match framer.push(piece) {
            Ok(messages) => {
                for m in &messages {
                    match m {
                        Framed::Message(msg) => exercise(msg),
                        // The core answers it as an unparseable datagram.
                        Framed::Unparseable { wire, error } => {
                            assert!(parse_datagram(wire.clone(), max).is_err());
                            stateless_reject(Unreadable::Malformed, wire, &error.why());
                        }
                        // Its header section alone, within the limit.
                        Framed::TooLarge { head } => {
                            assert!(head.len() <= max && head.ends_with(b"\r\n\r\n"));
                            stateless_reject(Unreadable::TooLarge, head, "too large");
                        }
                    }
                }
                framed.extend(messages.iter().map(framed_bytes));
            }
            // The engine closes the connection here.
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    // How the reads split the stream changes nothing: the same bytes in one read give the
    // same messages, and fail only where the pieces failed (then the messages before the
    // fault, framed by earlier pieces, are not compared: a failed read is dropped whole).
    let mut whole = StreamFramer::new(max);
    match whole.push(rest) {
        Ok(messages) => {
            assert!(!failed, "the stream failed only in pieces of {chunk}");
            let at_once: Vec<_> = messages.iter().map(framed_bytes).collect();
            assert_eq!(at_once, framed, "pieces of {chunk} framed other messages");
        }
        Err(_) => assert!(failed, "the stream failed only in one read"),
    }
}

/// A framed message's bytes: as parsed and serialised, or as it came when it did not parse.
fn framed_bytes(m: &Framed) -> Bytes {
    match m {
        Framed::Message(msg) => msg.to_bytes(),
        Framed::Unparseable { wire, .. } => wire.clone(),
        Framed::TooLarge { head } => head.clone(),
    }
}

/// What the core does with a parsed message: read every header it uses, stamp the Via,
/// build the responses it may send, and serialise. Whatever parsed must serialise into
/// bytes that parse again (the gateway forwards what it accepted).
fn exercise(msg: &Message) {
    let _ = msg.call_id();
    let _ = msg.summary();
    match msg {
        Message::Request(req) => exercise_request(req),
        Message::Response(resp) => exercise_response(resp),
    }
    reparse(&msg.to_bytes(), "a parsed message");
}

fn exercise_request(req: &Request) {
    let _ = req.method();
    let uri = req.uri();
    let _ = dialled_number(&uri);
    let _ = req.version_supported();
    let _ = req.uri_has_headers();
    let _ = req.uri_scheme();
    let _ = req.max_forwards();
    let _ = req.from_tag();
    let _ = req.to_tag();
    let _ = req.from_uri().map(|u| dialled_number(&u));
    let _ = req.to_uri().map(|u| dialled_number(&u));
    let _ = req.from_display();
    let _ = req.cseq();
    let _ = req.top_via();
    let _ = req.contact_uri();
    let _ = req.record_route();
    let _ = req.body();
    for h in headers() {
        let _ = req.header(&h);
        let _ = req.header_lines(&h);
        let _ = req.has_header(&h);
    }
    let _ = req.header_has_token(&Hdr::SUPPORTED, "100rel");
    let _ = req.header_has_token(&Hdr::REQUIRE, "100rel");
    if let Some(date) = req.header(&Hdr::named("Date")) {
        let _ = is_sip_date(&date);
    }
    let _ = sdp::is_sdp(req.header(&Hdr::CONTENT_TYPE).as_deref());
    // Every request is stamped with its source before the core sees it (RFC 3261 §18.2.1).
    let mut stamped = req.clone();
    stamped.stamp_received(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        5099,
    ));
    let _ = stamped.top_via();
    reparse_sent(&stamped.to_bytes(), "a Via-stamped request");
    // The responses the gateway builds from a request (400, 481, 200 to OPTIONS, …).
    for (status, tag) in [(400, Some("fz1")), (100, None), (481, Some("fz2"))] {
        if let Ok(resp) = Response::to_request(&stamped, status, "Fuzz", tag) {
            reparse_sent(&resp.to_bytes(), "a response built from a request");
        }
    }
}

fn exercise_response(resp: &Response) {
    let _ = resp.status();
    let _ = resp.reason();
    let _ = resp.is_provisional();
    let _ = resp.is_success();
    let _ = resp.cseq();
    let _ = resp.top_via();
    let _ = resp.to_tag();
    let _ = resp.contact_uri();
    let _ = resp.record_route();
    for h in headers() {
        let _ = resp.header(&h);
    }
}

fn reparse(wire: &Bytes, what: &str) {
    if let Err(e) = parse_datagram(wire.clone(), usize::MAX / 2) {
        panic!("{what} does not parse back: {e}\n{wire:?}");
    }
}

/// As [`reparse`], for what the gateway built from a message it accepted: a header the
/// parser took at its limit may carry our Via stamp or To tag (`sip::SENT_HEADER_ROOM`).
fn reparse_sent(wire: &Bytes, what: &str) {
    if let Err(e) = parse_sent(wire.clone(), usize::MAX / 2) {
        panic!("{what} does not parse back: {e}\n{wire:?}");
    }
}

/// An SDP body through every reader and editor in `trunkgate::sdp`. The first two bytes pick
/// the ptime and the number of anchor ports; the rest is the body.
pub fn sdp(data: &[u8]) {
    let (ptime, ports, body) = match data {
        [a, b, body @ ..] => (u16::from(*a) + 1, usize::from(*b % 8), body),
        _ => return,
    };
    let before = sdp::read(body).ok();
    let _ = sdp::MediaBody::read(Some("application/sdp"), body, sdp::DEFAULT_MAX_STREAMS);
    let _ = sdp::MediaBody::read(Some("multipart/mixed; boundary=b"), body, 4);
    // The body as the SDP beside an ISUP of its own first half (SIP-I's early offer after a
    // failover): the SDP part is found again, byte for byte.
    if !body.is_empty() {
        let isup = body.get(..body.len() / 2).unwrap_or_default();
        let (built, ct) = sdp::with_sdp_part(body, isup, "application/isup", &[])
            .expect("a free boundary for parts under 200 KB");
        let part = sdp::locate(Some(&ct), &built)
            .unwrap_or_else(|e| panic!("the built body does not read: {e}"))
            .expect("the built body has its SDP part");
        assert_eq!(part.of(&built), body, "the SDP part is not what went in");
    }
    if let Some(edit) = sdp::set_ptime(body, ptime) {
        // Setting the same ptime again changes nothing.
        let again = sdp::set_ptime(&edit.body, ptime).map(|e| e.body);
        assert_eq!(
            again.as_ref(),
            Some(&edit.body),
            "set_ptime is not idempotent"
        );
        let _ = sdp::read(&edit.body);
    }
    let gw = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    let hides = |out: &[u8]| {
        // Topology hiding: an anchored SDP names no address but the gateway's (and the
        // unspecified one of an old-style hold, `c=IN IP4 0.0.0.0`, which names nobody).
        if let Ok(eps) = sdp::read(out) {
            for e in &eps {
                assert!(
                    e.ip.is_none_or(|ip| ip == gw || ip.is_unspecified()),
                    "anchored SDP still names {:?}\nin:  {:?}\nout: {:?}",
                    e.ip,
                    String::from_utf8_lossy(body),
                    String::from_utf8_lossy(out)
                );
            }
            eps.len()
        } else {
            0
        }
    };
    let port_list: Vec<Option<u16>> = (0..ports).map(|i| Some(40000 + 2 * i as u16)).collect();
    if let Ok(out) = sdp::anchor_streams(body, gw, &port_list) {
        let n = hides(&out);
        if let Some(b) = &before {
            assert_eq!(b.len(), n, "anchoring changed the number of streams");
        }
        let _ = sdp::set_ptime(&out, ptime);
        // The session an anchored offer and an answer agreed on (our refresh offers it):
        // as many streams, still no address but the gateway's, and cut once for good.
        const SDP: Option<&str> = Some("application/sdp");
        let half = body.get(body.len() / 2..).unwrap_or_default();
        for answer in [body, half] {
            if let Some(cut) = sdp::agreed(SDP, &out, SDP, answer) {
                let streams = |b: &[u8]| sdp::read(b).map(|e| e.len()).ok();
                assert_eq!(streams(&cut), streams(&out), "cutting changed the streams");
                hides(&cut);
                assert_eq!(sdp::agreed(SDP, &cut, SDP, answer), None, "cut twice");
            }
        }
    }
    // Numbered for a peer already shown a session of the call: the same SDP sent again keeps
    // its o= line, and the gateway's own refusal goes on with that session.
    if let Ok(Some(m)) = sdp::MediaBody::read(Some("application/sdp"), body, usize::MAX) {
        let mut shown = None;
        let first = m.anchored(body, gw, &port_list, Some(&mut shown));
        let again = m.anchored(body, gw, &port_list, Some(&mut shown));
        if let (Ok(first), Ok(again)) = (first, again) {
            assert_eq!(first, again, "the same SDP sent again got another o= line");
            hides(&first);
        }
        if let Some(answer) =
            sdp::refusing_answer(Some("application/sdp"), body, gw, Some(&mut shown))
        {
            hides(&answer);
        }
    }
    hides(&sdp::refuse_all(Some("application/sdp"), body, gw).0);
    // An answer fitted to an offer (a forked branch's, `half` here) has as many media
    // sections as it, and fits it from then on; so has the refusal of every stream answering
    // it.
    const ONE_SDP: Option<&str> = Some("application/sdp");
    let half = body.get(body.len() / 2..).unwrap_or_default();
    if let Some(offered) = sdp::offered_sections(ONE_SDP, half) {
        // (An answer cut to an offer without media may be cut to nothing: no SDP then.)
        let count = |b: &[u8]| sdp::offered_sections(ONE_SDP, b).map_or(0, |s| s.len());
        if let Some(fit) = sdp::fit_sections(ONE_SDP, body, &offered, gw) {
            assert_eq!(count(&fit), offered.len(), "fitted to another count");
            assert_eq!(
                sdp::fit_sections(ONE_SDP, &fit, &offered, gw),
                None,
                "fitted twice"
            );
        }
        let (refused, _) = sdp::refuse_all_answering(ONE_SDP, body, gw, &offered);
        if !offered.is_empty() && count(&refused) > 0 {
            assert_eq!(count(&refused), offered.len(), "refused to another count");
        }
    }
    if let Some(answer) = sdp::refusing_answer(Some("application/sdp"), body, gw, None) {
        hides(&answer);
    }
    // The same SDP as the first part of a SIP-I body, and the body as a multipart one that
    // may not parse: the SDP part refused in place, or the SDP-looking lines alone.
    const CT: &str = "multipart/mixed;boundary=b1";
    let mut sip_i = b"--b1\r\nContent-Type: application/sdp\r\n\r\n".to_vec();
    sip_i.extend_from_slice(body);
    sip_i.extend_from_slice(b"\r\n--b1\r\nContent-Type: application/isup\r\n\r\nI\r\n--b1--\r\n");
    for multi in [&sip_i[..], body] {
        let (out, ct) = sdp::refuse_all(Some(CT), multi, gw);
        if let Ok(Some(m)) = sdp::MediaBody::read(ct.as_deref(), &out, usize::MAX) {
            hides(m.part.of(&out));
        }
        if let Some(answer) = sdp::refusing_answer(Some(CT), multi, gw, None) {
            hides(&answer);
        }
    }
}

/// `gateway.toml` and one profile through `Config::load`, which only reads files: the input
/// is split at the first NUL byte into the gateway file and the profile, both written into a
/// scratch folder of this process. See fuzz/README.md for the pure entry point this lacks.
pub fn config_toml(data: &[u8]) {
    let (gateway, profile) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // Config::load's validation on texts in memory: nothing is read from or written to disk
    // (but a `password_file`, which is skipped here for that reason).
    let (Ok(gateway), Ok(profile)) = (std::str::from_utf8(gateway), std::str::from_utf8(profile))
    else {
        return;
    };
    if profile.contains("password_file") {
        return;
    }
    let profiles = [(
        PathBuf::from("/fuzz/profiles/peer.toml"),
        profile.to_string(),
    )];
    if let Err(errs) = trunkgate::config::Config::from_texts(
        std::path::Path::new("/fuzz/gateway.toml"),
        gateway,
        &profiles,
    ) {
        // Every error renders (file:line:col: message), as `trunkgate check` prints it.
        let _ = errs.to_string();
    }
}

/// The shipped gateway.toml (the service on, legs routed as calls from `pbx`), loaded once.
/// Both crates that compile this file run from a directory where it is `gateway.toml` or
/// `../gateway.toml`.
fn shipped_config() -> std::sync::Arc<trunkgate::config::Config> {
    static CFG: std::sync::OnceLock<std::sync::Arc<trunkgate::config::Config>> =
        std::sync::OnceLock::new();
    CFG.get_or_init(|| {
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = [here.join("gateway.toml"), here.join("../gateway.toml")]
            .into_iter()
            .find(|p| p.exists())
            .expect("gateway.toml");
        let cfg = trunkgate::config::Config::load(&path).expect("the shipped gateway.toml loads");
        std::sync::Arc::new(cfg)
    })
    .clone()
}

/// The shipped configuration as an operator might reload it on a bad day: carrier-a and the
/// desk phone gone (calls on them go on with the configuration they started with), the PBX
/// routed to carrier-b alone, at most two calls at once. Loaded once.
fn reloaded_config() -> std::sync::Arc<trunkgate::config::Config> {
    static CFG: std::sync::OnceLock<std::sync::Arc<trunkgate::config::Config>> =
        std::sync::OnceLock::new();
    CFG.get_or_init(|| {
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = [here.to_path_buf(), here.join("..")]
            .into_iter()
            .find(|p| p.join("gateway.toml").exists())
            .expect("gateway.toml");
        let gateway = std::fs::read_to_string(root.join("gateway.toml")).expect("gateway.toml");
        let gateway: String = gateway
            .lines()
            .filter(|l| !l.starts_with("profiles"))
            .map(|l| match l {
                l if l.starts_with("to     = [\"carrier-a\", \"carrier-b\"]") => {
                    "to = [\"carrier-b\"]"
                }
                l if l.starts_with("max_calls = 10000") => "max_calls = 2",
                l => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let profiles: Vec<(PathBuf, String)> = ["pbx.toml", "carrier-b.toml"]
            .iter()
            .map(|f| {
                let path = root.join("profiles").join(f);
                let text = std::fs::read_to_string(&path).expect("shipped profile");
                (path, text)
            })
            .collect();
        let cfg =
            trunkgate::config::Config::from_texts(&root.join("gateway.toml"), &gateway, &profiles)
                .expect("the reloaded configuration loads");
        assert_eq!(cfg.profiles.len(), 2, "carrier-a and the phone are gone");
        std::sync::Arc::new(cfg)
    })
    .clone()
}

/// One call-back datagram, as the engine handles it: `callback::protocol::parse`, the
/// service (allow-list, limits, answers), and whatever it asks of the call layer, run on a
/// fresh core. Checks: at most one answer, never to an `ACK`, never over the datagram limit,
/// nothing at all to a stranger; every SIP message a placed call-back sends parses again.
pub fn callback(data: &[u8]) {
    use std::time::{Instant, SystemTime};
    use trunkgate::call::{B2bua, Input, Output as CoreOutput};
    use trunkgate::callback::protocol::{MAX_DATAGRAM, Verb, parse};
    use trunkgate::callback::{Output, Service};

    let parsed = parse(data);
    let is_ack = match &parsed {
        Ok(trunkgate::callback::protocol::Inbound::Ack(_)) => true,
        Ok(_) => false,
        Err(r) => r.verb == Some(Verb::Ack),
    };
    let cfg = shipped_config();
    let now = Instant::now();
    let mut svc = Service::new(cfg.clone(), now, SystemTime::now());
    let stranger = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 4000);
    svc.handle_datagram(now, std::time::SystemTime::now(), stranger, data);
    assert!(
        svc.poll_output().is_none(),
        "a stranger got an answer or placed a call"
    );
    let allowed = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000);
    svc.handle_datagram(now, std::time::SystemTime::now(), allowed, data);
    let mut core = B2bua::new(
        cfg,
        trunkgate::txn::TimerConfig::default(),
        trunkgate::sip::IdGen::new(1),
        now,
        SystemTime::UNIX_EPOCH,
    );
    let mut answers = 0;
    while let Some(o) = svc.poll_output() {
        match o {
            Output::Transmit { to, bytes } => {
                answers += 1;
                assert_eq!(to, allowed);
                assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
                assert!(bytes.starts_with(b"ACK: "), "{bytes:?}");
            }
            Output::Command(c) => core.handle_input(now, Input::Callback(c)),
        }
    }
    assert!(answers <= 1, "{answers} answers to one datagram");
    assert!(!is_ack || answers == 0, "an ACK was answered");
    while let Some(o) = core.poll_output() {
        if let CoreOutput::Transmit { wire, .. } = o {
            let back = parse_datagram(wire.clone(), MAX_MESSAGE);
            assert!(back.is_ok(), "unparseable INVITE: {wire:?}");
        }
    }
    signed_callback(data);
}

/// The same bytes as a signed datagram (`[callback] secret_file`): checking the signature
/// never panics and never takes an unsigned datagram; what we sign always checks.
fn signed_callback(data: &[u8]) {
    use trunkgate::callback::signature::{Keys, Signer, sign, verify};
    let Ok(keys) = Keys::parse("fuzzing-key-0123456789") else {
        return;
    };
    let now = 1_764_500_000;
    if let Ok(v) = verify(data, Signer::As, &keys, now) {
        // Only by guessing a MAC: libFuzzer cannot, so anything taken was signed by us.
        panic!("a datagram no one signed was taken: {v:?}");
    }
    let signed = sign(data, Signer::Gateway, &keys, now);
    assert!(
        verify(&signed, Signer::As, &keys, now).is_err(),
        "taken as the other side's"
    );
    let v = verify(&signed, Signer::Gateway, &keys, now).expect("what we sign checks");
    assert_eq!(v.message, data.strip_suffix(b"\n").unwrap_or(data));
}

/// One datagram into a fresh call core (the shipped configuration), as the engine hands it
/// over, from the source the first byte picks (the PBX, a carrier, or a stranger); then the
/// core's timers run for a minute, so the call paths behind an INVITE (routing, rewrites,
/// anchoring, retransmissions, ring timeout) all run. Checks: every SIP message the core
/// sends parses again; a stranger gets nothing back; one datagram never makes the core send
/// more than a handful of messages at once (no amplification).
pub fn core_message(data: &[u8]) {
    use std::time::{Duration, Instant, SystemTime};
    use trunkgate::call::{B2bua, Input, Output as CoreOutput};
    use trunkgate::sip::Target;

    let Some((&pick, raw)) = data.split_first() else {
        return;
    };
    let ip = match pick % 4 {
        0 => Ipv4Addr::new(127, 0, 0, 2),
        1 => Ipv4Addr::new(127, 0, 0, 3),
        2 => Ipv4Addr::new(127, 0, 0, 4),
        _ => Ipv4Addr::new(192, 0, 2, 66),
    };
    let stranger = pick % 4 == 3;
    let source = Target::udp(SocketAddr::new(IpAddr::V4(ip), 5060));
    let now = Instant::now();
    let mut core = B2bua::new(
        shipped_config(),
        trunkgate::txn::TimerConfig::default(),
        trunkgate::sip::IdGen::new(u64::from(pick)),
        now,
        SystemTime::UNIX_EPOCH,
    );
    let input = match parse_datagram(Bytes::copy_from_slice(raw), MAX_MESSAGE) {
        Ok(msg) => Input::Message { msg, source },
        Err(e) => Input::Unparseable {
            raw: Bytes::copy_from_slice(raw),
            why: e.to_string(),
            status: Unreadable::Malformed,
            source,
        },
    };
    core.handle_input(now, input);
    let drain = |core: &mut B2bua| {
        let mut sent = 0usize;
        while let Some(o) = core.poll_output() {
            if let CoreOutput::Transmit { wire, target, .. } = o {
                sent += 1;
                if let Err(e) = parse_datagram(wire.clone(), MAX_MESSAGE) {
                    panic!("the core sent what it cannot parse ({e}) to {target:?}: {wire:?}");
                }
            }
        }
        sent
    };
    let first = drain(&mut core);
    assert!(
        !stranger || first == 0,
        "a stranger got {first} messages back"
    );
    assert!(
        first <= 4,
        "one datagram made the core send {first} messages"
    );
    // A minute of timers, each step to the core's next deadline (bounded).
    let end = now + Duration::from_secs(60);
    for _ in 0..200 {
        let Some(at) = core.poll_timeout().filter(|t| *t <= end) else {
            break;
        };
        core.handle_timeout(at);
        drain(&mut core);
    }
}

/// Media packets as the relay handles them, from a stream of records `[len, flags, bytes…]`
/// (`flags`: bit 0 the direction, bit 1 RTCP, bit 2 a source other than the SDP's, bits 3–7
/// milliseconds to wait first): the header checks (`media::rtp_check`), the relay's routing
/// and latching (`media::relay::StreamRoute`), RTCP SDES scrubbing (`media::sdes`), the
/// recorder's jitter buffers and the G.711 repacketiser; the same packets on an SRTP and a
/// T.38 stream, and on one whose kind changes at each empty record. Checks: what the checks refuse is routed as malformed; an accepted RTP
/// payload lies inside the packet; the recorder stays within its capacity; everything the
/// repacketiser sends passes the same RTP check.
pub fn rtp(data: &[u8]) {
    use std::time::{Duration, Instant};
    use trunkgate::media::record::Recorder;
    use trunkgate::media::relay::{Dir, Route, StreamRoute};
    use trunkgate::media::repacketize::Repacketizer;
    use trunkgate::media::rtp_check::{
        check_datagram, check_rtcp, check_rtp, check_srtcp, check_srtp,
    };
    use trunkgate::media::{Latch, RelayPair, StreamKind};

    let a_sdp = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 4000);
    let b_sdp = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20)), 6000);
    let pair = RelayPair {
        kind: StreamKind::Rtp,
        rtcp_mux: true,
        a_port: 30000,
        b_port: 30002,
        a_remote: Some(a_sdp),
        b_remote: Some(b_sdp),
        // A's RTCP on a port of its own (RFC 3605).
        a_rtcp_port: Some(4009),
        b_rtcp_port: None,
        // B's SDP is not sent to before B's source latches (an endpoint behind NAT).
        a_wait_for_source: false,
        b_wait_for_source: true,
        a_signalling: Some(a_sdp.ip()),
        b_signalling: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
        a_latch: Latch::SdpIp,
        b_latch: Latch::Any,
        a_ptime: Some(20),
        b_ptime: Some(30),
        a_rebind_after: Duration::from_millis(500),
        b_rebind_after: trunkgate::media::MOVE_AFTER_SILENCE,
        callee: 0,
        a_heard: true,
        b_heard: true,
        flowing: true,
        active: true,
        // B's SDP names an address of this host (an SBC beside the gateway). Its sources
        // here are IPv4, which the relay leaves to the kernel: nothing changes for them
        // (the IPv6 rule has its unit tests, `media::relay::tests`).
        host_ips: [b_sdp.ip()].into(),
        // Media networks have their unit tests (`media::relay::tests`).
        a_networks: None,
        b_networks: None,
        g711: true,
    };
    let mut now = Instant::now();
    let mut route = StreamRoute::new(&pair, now);
    // The same packets on an SRTP and on a T.38 stream: forwarded unread, never recorded.
    let mut opaque = [StreamKind::Srtp, StreamKind::Datagram].map(|kind| {
        StreamRoute::new(
            &RelayPair {
                kind,
                ..pair.clone()
            },
            now,
        )
    });
    // A stream whose kind changes with each empty record (a re-INVITE to T.38 and back).
    const KINDS: [StreamKind; 3] = [StreamKind::Rtp, StreamKind::Srtp, StreamKind::Datagram];
    let mut switched = 0;
    let mut switching = StreamRoute::new(&pair, now);
    let mut recorder = Recorder::new(Duration::from_millis(60));
    let mut repack = [Repacketizer::new(20), Repacketizer::new(30)];
    let mut rest = data;
    while let [len, flags, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (packet, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_millis(u64::from(flags >> 3));
        let dir = if flags & 1 == 0 { Dir::AtoB } else { Dir::BtoA };
        let rtcp = flags & 2 != 0;
        let sdp = if dir == Dir::AtoB { a_sdp } else { b_sdp };
        let src = if flags & 4 == 0 {
            sdp
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)), 7000)
        };
        // RTCP multiplexed on the RTP port (RFC 5761) is checked and routed as RTCP.
        let as_rtcp = rtcp || matches!(packet.get(1), Some(192..=223));
        let valid = if as_rtcp {
            let ok = check_rtcp(packet).is_ok();
            if ok && let Some(out) = trunkgate::media::sdes::scrub_sdes(packet, b"trunkgate@gw") {
                // What the relay forwards instead must still be RTCP (or nothing at all).
                assert!(
                    out.is_empty() || check_rtcp(&out).is_ok(),
                    "scrubbed SDES is not RTCP"
                );
            }
            if ok {
                // Put in a repacketised leg's terms (what the repacketisers sent and got so
                // far): still RTCP, or nothing, and never longer.
                use trunkgate::media::rtcp_translate::{Came, Translation, translate};
                let t = Translation {
                    sent: repack[0].sent(),
                    back: repack[1]
                        .came()
                        .map(|(ssrc, highest)| Came { ssrc, highest }),
                };
                if let Some(out) = translate(packet, t) {
                    assert!(out.len() <= packet.len(), "translated RTCP grew");
                    assert!(
                        out.is_empty() || check_rtcp(&out).is_ok(),
                        "translated RTCP is not RTCP"
                    );
                }
            }
            ok
        } else {
            match check_rtp(packet) {
                Ok(view) => {
                    let inside = view.payload.as_ptr() as usize >= packet.as_ptr() as usize
                        && view.payload.len() <= packet.len();
                    assert!(inside, "RTP payload outside the packet");
                    true
                }
                Err(_) => false,
            }
        };
        if packet.is_empty() {
            switched = (switched + 1) % KINDS.len();
            switching.update(
                &RelayPair {
                    kind: KINDS[switched],
                    ..pair.clone()
                },
                now,
            );
            route.update(&pair, now);
            // A failover to a peer of another profile: both repacketisers restart, at a
            // ptime the record's flags pick (out-of-range ones are clamped).
            for r in &mut repack {
                r.restart(u16::from(*flags));
            }
        }
        let srtp_valid = if as_rtcp {
            check_srtcp(packet).is_ok()
        } else {
            check_srtp(packet).is_ok()
        };
        let datagram_valid = check_datagram(packet).is_ok();
        let routed = switching.route(now, dir, rtcp, src, packet);
        assert_eq!(
            matches!(routed, Route::Malformed),
            ![valid, srtp_valid, datagram_valid][switched],
            "{routed:?} on a stream that is now {:?}",
            KINDS[switched]
        );
        for (r, valid) in opaque.iter_mut().zip([srtp_valid, datagram_valid]) {
            let routed = r.route(now, dir, rtcp, src, packet);
            assert!(
                !matches!(routed, Route::Accept(_) | Route::Control(_)),
                "{routed:?} on a stream the relay does not read"
            );
            assert_eq!(
                matches!(routed, Route::Malformed),
                !valid,
                "{routed:?} against the check"
            );
        }
        let routed = route.route(now, dir, rtcp, src, packet);
        if !valid {
            assert!(
                matches!(routed, Route::Malformed),
                "{routed:?} for a refused packet"
            );
        }
        if !valid {
            continue;
        }
        if as_rtcp {
            assert!(
                matches!(routed, Route::Control(_) | Route::Drop | Route::OverRate),
                "{routed:?} for RTCP"
            );
            continue;
        }
        let ch = usize::from(dir == Dir::BtoA);
        recorder.push(now, ch, packet);
        let _ = recorder.drain(now);
        assert!(
            recorder.buffered() <= recorder.capacity(),
            "recorder over capacity"
        );
        for out in repack[ch].push(now, packet) {
            assert!(check_rtp(&out).is_ok(), "the repacketiser sent invalid RTP");
        }
    }
    let _ = recorder.finish();
}

/// The four peers a `core_dialog` record can come from: the PBX, carrier-a and carrier-b of
/// the shipped profiles, and a stranger.
const DIALOG_PEERS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
    Ipv4Addr::new(127, 0, 0, 4),
    Ipv4Addr::new(192, 0, 2, 66),
];

/// Where a `core_dialog` peer's messages come from: carrier-b's over a TCP connection it
/// opened (so the core's reliable-transport paths run too), the others' over UDP.
fn peer_source(peer: usize) -> trunkgate::sip::Target {
    use trunkgate::sip::{ConnId, Target, Transport};
    let addr = SocketAddr::new(IpAddr::V4(DIALOG_PEERS[peer]), 5060);
    match peer {
        2 => Target {
            transport: Transport::Tcp,
            addr,
            conn: Some(ConnId(2)),
            listener: None,
        },
        _ => Target::udp(addr),
    }
}

/// What one peer of `core_dialog` has seen and sent, so that a record can ask for "an
/// answer to what the gateway sent me" or "a request in my dialog" without the fuzzer
/// having to guess the gateway's tags and branches.
#[derive(Default)]
struct PeerView {
    /// The latest requests the gateway sent this peer (not ACKs), newest last, at most 4.
    got_requests: Vec<Request>,
    /// The latest reliable provisional response (with RSeq) the gateway sent this peer.
    got_reliable: Option<Response>,
    /// The latest 2xx to an INVITE the gateway sent this peer.
    got_2xx: Option<Response>,
    /// The peer's dialog with the gateway: (Call-ID, the peer's From, the peer's To, the
    /// Request-URI to use). Learnt from the gateway's 2xx to the peer's INVITE, or from
    /// the gateway's INVITE the peer answered.
    dialog: Option<(String, String, String, String)>,
    /// The latest INVITE the peer sent (for a CANCEL) and the latest message it sent.
    sent_invite: Option<Request>,
    sent_last: Option<Bytes>,
    cseq: u32,
    branches: u32,
}

impl PeerView {
    fn branch(&mut self, peer: usize) -> String {
        self.branches += 1;
        format!("z9hG4bKfz{peer}x{}", self.branches)
    }
}

/// A record's extra header lines and body: `Name: value` lines, a blank line, the body;
/// without a blank line it is all body.
fn lines_and_body(payload: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let Some(i) = payload.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (Vec::new(), payload);
    };
    let lines = String::from_utf8_lossy(&payload[..i])
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    (lines, &payload[i + 4..])
}

/// The dialog a peer that sent an INVITE has with the gateway, from the gateway's 1xx/2xx:
/// (Call-ID, the peer's From, the peer's To, the Request-URI to use).
fn callers_dialog(r: &Response) -> Option<(String, String, String, String)> {
    Some((
        r.call_id()?,
        r.header(&Hdr::FROM)?,
        r.header(&Hdr::TO)?,
        r.contact_uri()?,
    ))
}

/// What `core_dialog` saw of the core's asks to the shell: the latest call whose media it
/// relays and the latest client transaction it sent in, for the shell's inputs about them.
#[derive(Default)]
struct ShellView {
    media_call: Option<u64>,
    txn: Option<trunkgate::txn::TxnId>,
}

/// A response from the peer to `req`: its To tag is `fz<peer>`; a 1xx/2xx carries a
/// Contact; `payload` adds header lines and an SDP body ([`lines_and_body`]).
fn peer_answer(req: &Request, status: u16, peer: usize, payload: &[u8]) -> Option<Response> {
    let mut resp = Response::to_request(req, status, "Fuzz", Some(&format!("fz{peer}"))).ok()?;
    let ip = DIALOG_PEERS[peer];
    if status < 300 {
        let _ = resp.insert_header_before_length(&Hdr::CONTACT, format!("<sip:fz@{ip}:5060>"));
    }
    let (lines, body) = lines_and_body(payload);
    let mut ct = "application/sdp".to_string();
    for (n, v) in lines {
        if n.eq_ignore_ascii_case("Content-Type") {
            ct = v;
        } else {
            resp.insert_header_before_length(&Hdr::from_config(&n)?, v)
                .ok()?;
        }
    }
    if !body.is_empty() {
        resp.set_body(Bytes::copy_from_slice(body), Some(&ct))
            .ok()?;
    }
    Some(resp)
}

/// A request from the peer within its dialog (`method` as given; CANCEL cancels the peer's
/// latest INVITE, ACK acknowledges the gateway's latest 2xx to it).
fn peer_request(view: &mut PeerView, peer: usize, method: &str, body: &[u8]) -> Option<Bytes> {
    let ip = DIALOG_PEERS[peer];
    if method == "CANCEL" {
        let inv = view.sent_invite.as_ref()?;
        let via = inv.header(&Hdr::VIA)?;
        let text = format!(
            "CANCEL {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {}\r\nCSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n",
            inv.uri(),
            inv.header(&Hdr::FROM)?,
            inv.header(&Hdr::TO)?,
            inv.call_id()?,
            inv.seq(),
        );
        return Some(Bytes::from(text));
    }
    let (call_id, from, to, uri) = view.dialog.clone()?;
    let cseq = if method == "ACK" {
        view.got_2xx.as_ref()?.seq()
    } else {
        view.cseq += 1;
        view.cseq
    };
    let branch = view.branch(peer);
    let (lines, body) = lines_and_body(body);
    let mut extra: String = lines.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    if method == "PRACK" && !lines.iter().any(|(n, _)| n.eq_ignore_ascii_case("RAck")) {
        // Acknowledge the gateway's latest reliable provisional response.
        let rel = view.got_reliable.as_ref()?;
        let rseq = rel.header(&Hdr::RSEQ)?;
        extra.push_str(&format!("RAck: {} {} INVITE\r\n", rseq.trim(), rel.seq()));
    }
    if !body.is_empty()
        && !lines
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
    {
        extra.push_str("Content-Type: application/sdp\r\n");
    }
    let mut text = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{} {ip}:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:fz@{ip}:5060>\r\n{extra}Content-Length: {}\r\n\r\n",
        peer_source(peer).transport.via_token(),
        body.len()
    )
    .into_bytes();
    text.extend_from_slice(body);
    Some(Bytes::from(text))
}

/// A whole call, or several, driven by the fuzzer through one core: a stream of records
/// `[op, len_hi, len_lo, payload…]` (at most 48). `op` bits 0–1 pick the peer (the PBX,
/// carrier-a, carrier-b over TCP, a stranger); bits 4–7 wait that number squared in seconds first
/// (timers run: retransmissions, Timer C, session timers, ring timeouts); bits 2–3 say what
/// the payload is:
/// - 0: a datagram, as is;
/// - 1: the peer answers the gateway's latest request to it: status (two bytes), then
///   header lines and an SDP body ([`lines_and_body`]);
/// - 2: a request in the peer's dialog: the method, a newline, then header lines and an SDP
///   body (`ACK` acknowledges the gateway's latest 2xx, `CANCEL` cancels the peer's latest
///   INVITE);
/// - 3: the peer's last message again (a retransmission).
///
/// From the stranger, modes 1–3 are the shell's inputs instead (the payload's first byte
/// picks): the latest relayed call's media timed out or failed, the latest transaction's
/// message could not be sent, CDRs became unwritable or writable again, a reload (of the
/// shipped configuration, or with the second byte odd of one without carrier-a), the drain,
/// the hang-up of every call.
///
/// So the mid-call paths (re-INVITE and UPDATE relaying, their CANCEL and Timer C, PRACK,
/// session refreshes, glare, BYE crossing BYE) run with identifiers that match.
/// Checks: every SIP message the core sends parses again; a stranger gets nothing; one
/// record makes the core send a bounded number of messages; and after the records the
/// gateway's own hang-up of every call leaves nothing behind once the timers have run: no
/// call, dialog, setup, transaction or armed timer.
pub fn core_dialog(data: &[u8]) {
    use std::time::{Duration, Instant, SystemTime};
    use trunkgate::call::{B2bua, Input, Output as CoreOutput};
    use trunkgate::sip::Target;

    let start = Instant::now();
    let mut now = start;
    let mut core = B2bua::new(
        shipped_config(),
        trunkgate::txn::TimerConfig::default(),
        trunkgate::sip::IdGen::new(1),
        now,
        SystemTime::UNIX_EPOCH,
    );
    let mut views: [PeerView; 4] = Default::default();
    let mut shell = ShellView::default();
    // FZ_TRACE=1 prints the flow (what each peer sent, what the gateway sent whom): for
    // reading a crash input or checking that a seed reaches the state it is named for.
    let trace = std::env::var_os("FZ_TRACE").is_some();
    let first_line = |b: &[u8]| {
        let end = b
            .iter()
            .position(|c| *c == b'\r')
            .unwrap_or(b.len().min(80));
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let peer_of = |t: &Target| {
        DIALOG_PEERS
            .iter()
            .position(|ip| t.addr.ip() == IpAddr::V4(*ip))
    };
    // Take what the core sent: learn the peers' dialogs; return how many messages.
    let drain = |core: &mut B2bua, views: &mut [PeerView; 4], shell: &mut ShellView| -> usize {
        let mut sent = 0;
        while let Some(o) = core.poll_output() {
            let (wire, target) = match o {
                CoreOutput::Transmit { wire, target, txn } => {
                    // A request's transaction: a failed send there is what the shell reports.
                    if !wire.starts_with(b"SIP/2.0 ") {
                        shell.txn = txn.or(shell.txn);
                    }
                    (wire, target)
                }
                CoreOutput::Media(trunkgate::media::MediaAction::Relay { call, .. }) => {
                    shell.media_call = Some(call);
                    continue;
                }
                _ => continue,
            };
            sent += 1;
            if trace {
                eprintln!("  -> {}: {}", target.addr.ip(), first_line(&wire));
            }
            let msg = match parse_datagram(wire.clone(), MAX_MESSAGE) {
                Ok(m) => m,
                Err(e) => {
                    panic!("the core sent what it cannot parse ({e}) to {target:?}: {wire:?}")
                }
            };
            let Some(p) = peer_of(&target) else {
                continue;
            };
            assert!(p != 3, "a stranger was sent {wire:?}");
            let v = &mut views[p];
            match msg {
                Message::Request(r) if r.method() != trunkgate::sip::Method::Ack => {
                    if v.got_requests.len() == 4 {
                        v.got_requests.remove(0);
                    }
                    v.got_requests.push(r);
                }
                Message::Request(_) => {}
                Message::Response(r) => {
                    let to_invite = r
                        .cseq()
                        .is_some_and(|(_, m)| m == trunkgate::sip::Method::Invite);
                    if r.is_provisional() && to_invite && r.header(&Hdr::RSEQ).is_some() {
                        v.got_reliable = Some(r.clone());
                    }
                    let early = r.is_provisional() && r.status() > 100 && r.to_tag().is_some();
                    if to_invite && early && v.dialog.is_none() {
                        v.dialog = callers_dialog(&r);
                    }
                    if r.is_success() && to_invite {
                        if let Some(d) = callers_dialog(&r) {
                            v.dialog = Some(d);
                        }
                        v.cseq = v.cseq.max(r.seq());
                        v.got_2xx = Some(r);
                    }
                }
            }
        }
        sent
    };
    let deliver = |core: &mut B2bua, now: Instant, raw: Bytes, source: Target| {
        let input = match parse_datagram(raw.clone(), MAX_MESSAGE) {
            Ok(msg) => Input::Message { msg, source },
            Err(e) => Input::Unparseable {
                raw,
                why: e.to_string(),
                status: Unreadable::Malformed,
                source,
            },
        };
        core.handle_input(now, input);
    };
    let run_timers = |core: &mut B2bua,
                      views: &mut [PeerView; 4],
                      shell: &mut ShellView,
                      until: Instant,
                      steps: usize| {
        for _ in 0..steps {
            let Some(at) = core.poll_timeout().filter(|t| *t <= until) else {
                break;
            };
            core.handle_timeout(at);
            drain(core, views, shell);
        }
    };

    let mut rest = data;
    for _ in 0..48 {
        let [op, hi, lo, tail @ ..] = rest else {
            break;
        };
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let peer = usize::from(op & 3);
        let wait = u64::from(op >> 4).pow(2);
        if wait > 0 {
            let until = now + Duration::from_secs(wait);
            run_timers(&mut core, &mut views, &mut shell, until, 400);
            now = until;
        }
        let source = peer_source(peer);
        // The stranger's other modes are the shell's own inputs instead.
        if peer == 3 && op & 12 != 0 {
            let input = match payload.first().copied().unwrap_or(0) % 8 {
                0 => shell.media_call.map(|c| Ok(Input::MediaTimeout(c))),
                1 => shell.media_call.map(|c| Ok(Input::MediaFailed(c))),
                2 => shell.txn.map(|t| Ok(Input::SendFailed(t))),
                3 => Some(Ok(Input::CdrWritable(false))),
                4 => Some(Ok(Input::CdrWritable(true))),
                // The shipped configuration again, or the one without carrier-a.
                5 if payload.get(1).is_some_and(|b| b & 1 == 1) => Some(Err(reloaded_config())),
                5 => Some(Err(shipped_config())),
                6 => Some(Ok(Input::Drain)),
                _ => Some(Ok(Input::HangUpAll)),
            };
            if let Some(input) = input {
                if trace {
                    let what = match &input {
                        Ok(input) => format!("{input:?}"),
                        Err(_) => "Reload".to_string(),
                    };
                    let what = what.split_once('(').map_or(what.as_str(), |(w, _)| w);
                    eprintln!("{} shell: {what}", now.duration_since(start).as_secs());
                }
                let calls = core.stats().calls;
                match input {
                    Ok(input) => core.handle_input(now, input),
                    // (A reload is the core's own call: whether it applied.)
                    Err(cfg) => {
                        core.reload(now, cfg);
                    }
                }
                let sent = drain(&mut core, &mut views, &mut shell);
                // Each call: an answer, an ACK, a BYE or CANCEL per leg, at most.
                assert!(
                    sent <= 8 + 4 * calls,
                    "one shell input made the core send {sent} messages for {calls} calls"
                );
            }
            continue;
        }
        let v = &mut views[peer];
        let raw = match (op >> 2) & 3 {
            0 => Some(Bytes::copy_from_slice(payload)),
            1 => match payload {
                // Bits 12-13 of the two status bytes pick an older request (1: the one
                // before the latest, …), the rest is the status.
                [a, b, body @ ..] => {
                    let n = u16::from_be_bytes([*a, *b]);
                    let back = usize::from(n >> 12 & 3);
                    let req = v.got_requests.iter().rev().nth(back);
                    req.cloned().and_then(|req| {
                        let req = &req;
                        let status = n & 0x0fff;
                        let status = if (100..700).contains(&status) {
                            status
                        } else {
                            100 + status % 600
                        };
                        let resp = peer_answer(req, status, peer, body)?;
                        if (200..300).contains(&status)
                            && req.method() == trunkgate::sip::Method::Invite
                            && let (Some(c), Some(f), Some(t), Some(u)) = (
                                resp.call_id(),
                                resp.header(&Hdr::TO),
                                resp.header(&Hdr::FROM),
                                req.contact_uri(),
                            )
                        {
                            // The peer is the callee: its From is the gateway's To, tagged.
                            v.dialog = Some((c, f, t, u));
                            v.cseq = v.cseq.max(1000);
                        }
                        Some(Message::Response(resp).to_bytes())
                    })
                }
                _ => None,
            },
            2 => {
                let (method, body) = match payload.iter().position(|b| *b == b'\n') {
                    Some(i) => (&payload[..i], &payload[i + 1..]),
                    None => (payload, &[][..]),
                };
                std::str::from_utf8(method)
                    .ok()
                    .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()))
                    .and_then(|m| peer_request(v, peer, m, body))
            }
            _ => v.sent_last.clone(),
        };
        let Some(raw) = raw else {
            continue;
        };
        if let Ok(Message::Request(r)) = parse_datagram(raw.clone(), MAX_MESSAGE)
            && r.method() == trunkgate::sip::Method::Invite
        {
            v.sent_invite = Some(r);
        }
        v.sent_last = Some(raw.clone());
        if trace {
            eprintln!(
                "{} <- {}: {}",
                now.duration_since(start).as_secs(),
                source.addr.ip(),
                first_line(&raw)
            );
        }
        deliver(&mut core, now, raw, source);
        let sent = drain(&mut core, &mut views, &mut shell);
        // A BYE answers the requests still relayed in its call (at most 8, 487 each) besides
        // its own answer and the BYE it causes.
        assert!(sent <= 16, "one message made the core send {sent} messages");
    }
    // The gateway hangs up whatever is left; an hour of timers later nothing may remain.
    core.handle_input(now, Input::HangUpAll);
    drain(&mut core, &mut views, &mut shell);
    run_timers(
        &mut core,
        &mut views,
        &mut shell,
        now + Duration::from_secs(3600),
        20_000,
    );
    let s = core.stats();
    assert!(
        s.calls == 0
            && s.dialogs == 0
            && s.setups == 0
            && s.txn_owners == 0
            && s.client_txns == 0
            && s.server_txns == 0
            && core.timers_armed() == 0,
        "state left after hanging up every call: {s:?}, {} timers",
        core.timers_armed()
    );
}
