//! The call-back service through the real binary: an application server's REQUEST
//! connects two SIPp parties (user1 a PBX extension, user2 a carrier number), strangers get
//! nothing, `port = 0` opens no socket, and what `trunkgate check` says about `[callback]`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Extensions starting with 1 are the PBX's: user1 = 1001 rings the phone SIPp.
const EXTENSIONS: &str = "[[route]]\nfrom = \"pbx\"\nprefix = \"1\"\nto = \"pbx\"\n\n";

/// The local UDP ports process `pid` has sockets bound to (from /proc: no `ss` needed).
fn udp_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (cols.get(1), cols.get(9)) else {
                continue;
            };
            if inodes.contains(*inode)
                && let Some(port) = local.rsplit(':').next()
            {
                ports.insert(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A gateway with the call-back service on a port of its own, legs routed from the PBX.
fn gateway_with_callbacks() -> (Gateway, Ports, u16) {
    let ports = Ports::new();
    let cb_port = free_port("127.0.0.1");
    let gw = Gateway::start(
        ports,
        GwOpts {
            routes_first: EXTENSIONS.into(),
            ..GwOpts::callback_on(cb_port, "")
        },
    );
    (gw, ports, cb_port)
}

/// SIPp as user1 (the phone, 1001) and user2 (carrier-a, +8610123), and the AS's REQUEST
/// `id` for a call-back between them, taken (`ACK: …;result=ok`).
fn request_a_call_back(
    ports: Ports,
    cb_port: u16,
    id: &str,
) -> (tempfile::TempDir, Sipp, Sipp, CallbackClient) {
    let dir = tempfile::tempdir().unwrap();
    let user1 = Sipp::uas("callback/user1.xml", PHONE_IP, ports.phone, dir.path());
    let user2 = Sipp::uas(
        "callback/user2.xml",
        CARRIER_A_IP,
        ports.carrier_a,
        dir.path(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let asrv = CallbackClient::new("127.0.0.1", cb_port);
    assert_eq!(
        asrv.ask(&format!("REQUEST: id={id};user1=1001;user2=+8610123"))
            .as_deref(),
        Some(format!("ACK: id={id};result=ok\n").as_str())
    );
    (dir, user1, user2, asrv)
}

#[test]
fn a_request_connects_user1_and_user2_and_the_as_hears_how_it_ended() {
    let (gw, ports, cb_port) = gateway_with_callbacks();
    assert_eq!(
        udp_ports(gw.child.id()),
        BTreeSet::from([ports.gw, cb_port]),
        "SIP and the call-back port, nothing else"
    );
    let (_dir, user1, user2, asrv) = request_a_call_back(ports, cb_port, "t1");
    user2.expect_success(&gw);
    user1.expect_success(&gw);
    let resp = asrv.recv(Duration::from_secs(10)).expect("a RESPONSE");
    assert!(
        resp.starts_with("RESPONSE: id=t1;result=connected;duration="),
        "{resp}"
    );
    assert!(resp.contains(";call_tag=callee_bye;cause=16"), "{resp}");
    asrv.send("ACK: id=t1");
    // A resend of the RESPONSE may already be on its way (one every 0.5 s, 1 s, …): the
    // answer to STATUS is the first line that is not one.
    asrv.send("STATUS: id=t1");
    let status = wait_for(Duration::from_secs(5), || {
        asrv.recv(Duration::from_secs(2))
            .filter(|l| !l.starts_with("RESPONSE: id=t1;"))
    });
    assert_eq!(
        status.as_deref(),
        Some("ACK: id=t1;result=ok;state=ended\n")
    );
    // Acknowledged: not resent (what was in flight came before the STATUS answer).
    assert_eq!(asrv.recv(Duration::from_millis(1200)), None);
    let cdr = &gw.wait_cdrs(1)[0];
    // The call lasted user2's 1.2 s pause; the RESPONSE says it in whole seconds, as the
    // CDR measures it (within the second either side may round to).
    let said: u64 = resp
        .split(";duration=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {resp}"));
    let cdr_s = cdr["duration_ms"].as_u64().unwrap() / 1000;
    assert!(said >= 1 && said.abs_diff(cdr_s) <= 1, "{resp} vs {cdr}");
    assert_eq!(cdr["callback_id"], "t1", "{cdr}");
    assert_eq!(
        (&cdr["from"], &cdr["to"]),
        (&"1001".into(), &"+8610123".into())
    );
    assert_eq!(cdr["call_tag"], "callee_bye");
    assert_eq!(cdr["ingress_peer"], "pbx");
    assert_eq!(cdr["egress_peer"], "carrier-a");
    let page = gw.metrics();
    let metric = |s: &str| Gateway::metric_value(&page, s);
    assert_eq!(
        metric("trunkgate_callback_requests_total{verb=\"request\",result=\"ok\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        metric("trunkgate_callback_results_total{result=\"connected\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric("trunkgate_callback_responses_total{outcome=\"acked\"}"),
        Some(1.0)
    );
}

#[test]
fn a_stranger_gets_no_answer_and_places_no_call() {
    let (gw, ports, cb_port) = gateway_with_callbacks();
    // Where user1 would be rung.
    let phone = std::net::UdpSocket::bind((PHONE_IP, ports.phone)).unwrap();
    phone
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let stranger = CallbackClient::new(STRANGER_IP, cb_port);
    assert_eq!(
        stranger.ask("REQUEST: id=x1;user1=1001;user2=+8610123"),
        None
    );
    let mut buf = [0u8; 2048];
    assert!(phone.recv_from(&mut buf).is_err(), "an INVITE went out");
    assert!(gw.cdrs().is_empty());
    let dropped = wait_for(Duration::from_secs(5), || {
        let page = gw.metrics();
        Gateway::metric_value(
            &page,
            "trunkgate_callback_dropped_total{reason=\"not_allowed\"}",
        )
    });
    assert_eq!(dropped, Some(1.0));
    // The allowed source is served all the same.
    let friend = CallbackClient::new("127.0.0.1", cb_port);
    assert_eq!(
        friend.ask("STATUS: id=x1").as_deref(),
        Some("ACK: id=x1;result=error;reason=unknown_id\n")
    );
}

#[test]
fn with_a_secret_file_only_signed_datagrams_are_answered_and_answers_are_signed() {
    use trunkgate::callback::signature::{Keys, Signer, sign, verify};
    let keydir = tempfile::tempdir().unwrap();
    let keyfile = keydir.path().join("callback.key");
    std::fs::write(&keyfile, "shared-key-for-the-test\n").unwrap();
    let keys = Keys::parse("shared-key-for-the-test").unwrap();
    let ports = Ports::new();
    let cb_port = free_port("127.0.0.1");
    let extra = format!("secret_file = \"{}\"\n", keyfile.display());
    let gw = Gateway::start(ports, GwOpts::callback_on(cb_port, &extra));
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let asrv = CallbackClient::new("127.0.0.1", cb_port);
    // From the allowed address, but unsigned: as silent as toward a stranger.
    assert_eq!(asrv.ask("STATUS: id=s1"), None);
    let signed = sign(b"STATUS: id=s1", Signer::As, &keys, unix());
    asrv.send(std::str::from_utf8(&signed).unwrap());
    let answer = asrv.recv(Duration::from_secs(2)).expect("an answer");
    let v = verify(answer.as_bytes(), Signer::Gateway, &keys, unix()).expect("a signed answer");
    assert_eq!(v.message, b"ACK: id=s1;result=error;reason=unknown_id");
    let dropped = wait_for(Duration::from_secs(5), || {
        let page = gw.metrics();
        Gateway::metric_value(
            &page,
            "trunkgate_callback_dropped_total{reason=\"unsigned\"}",
        )
    });
    assert_eq!(dropped, Some(1.0));
}

/// A signed datagram dated ahead of the clock (an AS whose clock runs 20 s fast) is kept
/// beside the CDR file, and the process started after a `kill -9` refuses it replayed,
/// though it is within the skew and after the new start; the AS's next one is answered.
/// Before, the new process's empty replay table took the replay (a REQUEST: a second call).
#[test]
fn a_signed_datagram_dated_ahead_is_refused_replayed_after_a_restart() {
    use trunkgate::callback::signature::{Keys, Signer, sign};
    let keydir = tempfile::tempdir().unwrap();
    let keyfile = keydir.path().join("callback.key");
    std::fs::write(&keyfile, "shared-key-for-the-test\n").unwrap();
    let keys = Keys::parse("shared-key-for-the-test").unwrap();
    let cb_port = free_port("127.0.0.1");
    let extra = format!("secret_file = \"{}\"\n", keyfile.display());
    let mut gw = Gateway::start(Ports::new(), GwOpts::callback_on(cb_port, &extra));
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let asrv = CallbackClient::new("127.0.0.1", cb_port);
    let ahead = unix() + 20;
    let captured = sign(b"STATUS: id=s1", Signer::As, &keys, ahead);
    let captured = std::str::from_utf8(&captured).unwrap().to_string();
    asrv.send(&captured);
    assert!(asrv.recv(Duration::from_secs(2)).is_some(), "answered");
    let kept = gw.path("cdr.jsonl.callback-ts");
    let read = || {
        std::fs::read_to_string(&kept)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    assert_eq!(wait_for(Duration::from_secs(5), read), Some(ahead));
    gw.kill9();
    gw.restart();
    asrv.send(&captured);
    assert_eq!(
        asrv.recv(Duration::from_secs(1)),
        None,
        "the replay is refused"
    );
    let next = sign(b"STATUS: id=s2", Signer::As, &keys, ahead + 1);
    asrv.send(std::str::from_utf8(&next).unwrap());
    assert!(
        asrv.recv(Duration::from_secs(2)).is_some(),
        "the AS's next one is answered"
    );
}

#[test]
fn port_zero_opens_no_socket() {
    let ports = Ports::new();
    let gw = Gateway::start(ports, GwOpts::default());
    assert!(gw.log().contains("trunkgate running"), "{}", gw.log());
    assert_eq!(udp_ports(gw.child.id()), BTreeSet::from([ports.gw]));
}

/// Run `trunkgate check` on `gateway` (with a `pbx` profile beside it): (success, stdout).
fn check(gateway: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), gateway).unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/pbx.toml"),
        "name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:127.0.0.2:5060\"\nmatch = [\"127.0.0.2/32\"]\n",
    )
    .unwrap();
    check_file(&dir.path().join("gateway.toml"))
}

fn check_file(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trunkgate"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const GATEWAY: &str = "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\nadvertise = \"127.0.0.1\"\n\n[[route]]\nto = \"pbx\"\n\n[callback]\nport = 5080\n";

#[test]
fn an_empty_allow_list_fails_check_with_its_position() {
    let (ok, out) = check(&format!("{GATEWAY}allow = []\n"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("gateway.toml:10:9: [callback] allow is empty"),
        "{out}"
    );
}

#[test]
fn an_allow_list_or_allow_any_passes_check() {
    let (ok, out) = check(&format!("{GATEWAY}allow = [\"192.0.2.0/24\"]\n"));
    assert!(ok, "{out}");
    let (ok, out) = check(&format!("{GATEWAY}allow = []\nallow_any = true\n"));
    assert!(ok, "{out}");
}

#[test]
fn the_shipped_configuration_passes_check() {
    let (ok, out) = check_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml"));
    assert!(ok, "{out}");
}

/// A request from the phone's address to the gateway, and the status of its answer.
fn phone_asks(gw: &Gateway, method: &str, extra: &str) -> u16 {
    let sock = std::net::UdpSocket::bind((PHONE_IP, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = sock.local_addr().unwrap();
    let id = format!("cdr-gate-{method}-{}", me.port());
    let msg = format!(
        "{method} sip:+8610999@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{}\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: <sip:+8610999@{gw}>\r\nCall-ID: {id}\r\nCSeq: 1 {method}\r\nContact: <sip:1000@{me}>\r\n{extra}Content-Length: 0\r\n\r\n",
        me.port(),
        gw = gw.addr(),
    );
    sock.send_to(msg.as_bytes(), gw.addr()).unwrap();
    loop {
        let status = status_for(&sock, method).expect("an answer");
        if status >= 200 {
            return status;
        }
    }
}

/// Wait until `/health` answers `want` (its status line's start).
fn health_becomes(gw: &Gateway, want: &str, limit: Duration) {
    let until = Instant::now() + limit;
    while !gw.http_get("/health").starts_with(want) {
        assert!(Instant::now() < until, "health never {want}:\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With `[cdr] fail_closed` (the default) call-backs are refused while CDRs cannot be
/// written, and placed again once they can: the call layer's view of the CDR writer follows
/// it every second, not only when SIP comes in. Before, a gateway that heard no SIP after a
/// CDR outage went on refusing every call-back (`user1_failed`, `gateway_error`).
#[test]
fn call_backs_are_placed_again_once_cdrs_are_written_with_no_sip_meanwhile() {
    let (gw, ports, cb_port) = gateway_with_callbacks();
    // The CDR file's path names a folder: the writer cannot reopen it, and the CDR of a
    // refused INVITE cannot be written.
    let cdr = gw.path("cdr.jsonl");
    let _ = std::fs::remove_file(&cdr);
    std::fs::create_dir(&cdr).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(phone_asks(&gw, "INVITE", "Require: x-nothing\r\n"), 420);
    health_becomes(&gw, "HTTP/1.1 503", Duration::from_secs(5));
    // SIP while it fails: the call layer hears of it, and an OPTIONS is told so (a front's
    // probe sends calls elsewhere).
    assert_eq!(phone_asks(&gw, "OPTIONS", ""), 503);
    // The disk is back; no SIP from here on until the call-back's own.
    std::fs::remove_dir(&cdr).unwrap();
    health_becomes(&gw, "HTTP/1.1 200", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    let (_dir, user1, user2, asrv) = request_a_call_back(ports, cb_port, "after");
    let resp = asrv.recv(Duration::from_secs(10)).expect("a RESPONSE");
    assert!(
        resp.starts_with("RESPONSE: id=after;result=connected;"),
        "{resp}\n{}",
        gw.log()
    );
    user2.expect_success(&gw);
    user1.expect_success(&gw);
}
