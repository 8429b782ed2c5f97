//! `trunkgate reload` against the real binary: it validates first, signals the running
//! process found through its pid file, and prints what the process did.

mod common;

use std::process::Command;

use common::*;

/// Run `trunkgate reload` on the gateway's configuration: (success, stdout + stderr).
fn reload(gw: &Gateway) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trunkgate"))
        .args(["reload", "--config"])
        .arg(gw.path("gateway.toml"))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn reload_reports_what_changed_what_needs_a_restart_and_what_is_broken() {
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    let tmp = tempfile::tempdir().unwrap();

    // Nothing changed.
    let (ok, out) = reload(&gw);
    assert!(ok, "{out}");
    assert!(out.contains("reloaded: 3 profiles"), "{out}");
    assert!(out.contains("nothing changed"), "{out}");

    // A profile edit: applied, named.
    let profile = gw.path("profiles/carrier-a.toml");
    let original = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(&profile, format!("{original}\n[sdp]\nptime = 20\n")).unwrap();
    let (ok, out) = reload(&gw);
    assert!(ok, "{out}");
    assert!(out.contains("profiles changed: carrier-a"), "{out}");
    call_succeeds(
        &gw,
        tmp.path(),
        "ptime/carrier.xml",
        "ptime/phone.xml",
        Transport::Udp,
    );

    // A broken profile: refused by the command itself, with the position; the process is
    // not even signalled.
    std::fs::write(&profile, format!("{original}\nptmie = 30\n")).unwrap();
    let (ok, out) = reload(&gw);
    assert!(!ok, "{out}");
    assert!(out.contains("carrier-a.toml:"), "{out}");
    assert!(out.contains("unknown field `ptmie`"), "{out}");
    assert!(out.contains("not reloaded"), "{out}");
    std::fs::write(&profile, &original).unwrap();

    // What needs a restart: the process refuses it and says which key.
    let gateway = gw.path("gateway.toml");
    let text = std::fs::read_to_string(&gateway).unwrap();
    std::fs::write(
        &gateway,
        text.replace("advertise = \"127.0.0.1\"", "advertise = \"127.0.0.5\""),
    )
    .unwrap();
    let (ok, out) = reload(&gw);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "reload refused (restart_required): [sip] advertise, [media] advertise changed"
        ),
        "{out}"
    );
    // The running configuration stayed: calls go on as before.
    call_succeeds(
        &gw,
        tmp.path(),
        "basic-call/carrier.xml",
        "basic-call/phone.xml",
        Transport::Udp,
    );
    let metrics = gw.metrics();
    for (result, n) in [("applied", 2), ("restart_required", 1)] {
        let series = format!("trunkgate_config_reloads_total{{result=\"{result}\"}} {n}");
        assert!(metrics.contains(&series), "{series}: {metrics}");
    }
}

/// Reads from `s` until `want` appears in what came; all of it.
fn read_until(s: &mut std::net::TcpStream, want: &str) -> String {
    use std::io::Read;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {want:?} in {:?}",
            String::from_utf8_lossy(&got)
        );
        match s.read(&mut buf) {
            Ok(0) => panic!(
                "closed before {want:?}: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The PBX has moved to another address (127.0.0.9): its profile matches it, and calls to
/// the PBX go there, from now on (a connection from its `address` is a peer's too, as it
/// connects back with its answers): reloaded.
fn move_pbx_away(gw: &Gateway) {
    let profile = gw.path("profiles/pbx.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    let moved = text
        .replace("match = [\"127.0.0.2/32\"]", "match = [\"127.0.0.9/32\"]")
        .replace("address = \"udp:127.0.0.2:", "address = \"udp:127.0.0.9:");
    assert_ne!(moved, text);
    std::fs::write(&profile, moved).unwrap();
    let (ok, out) = reload(gw);
    assert!(ok && out.contains("profiles changed: pbx"), "{out}");
}

/// `s` is closed by the gateway within 10 s (whatever it sent before is read and ignored).
fn assert_closed(mut s: std::net::TcpStream, what: &str) {
    use std::io::Read;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = s.read_to_end(&mut rest);
    assert!(
        closed.is_ok()
            || closed
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{what} is still open: {closed:?}"
    );
}

#[test]
fn an_idle_connection_from_an_address_a_reload_stops_matching_is_closed() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            single_carrier: true,
            ..GwOpts::default()
        },
    );
    let mut idle = tcp_from(PHONE_IP, &gw);
    // A known peer's idle connection (one keep-alive, then nothing: a connection that never
    // carried a byte would close after `tcp_message_timeout_s` anyway) stays open: a read
    // waits, and ends in a timeout, not in the end of the stream.
    {
        use std::io::{Read, Write};
        idle.write_all(b"\r\n\r\n").unwrap();
        idle.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut pong = [0u8; 2];
        idle.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"\r\n");
        idle.set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        let read = idle.read(&mut byte);
        assert!(
            read.as_ref().is_err_and(|e| matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )),
            "the known peer's idle connection is open before the reload: {read:?}"
        );
    }
    move_pbx_away(&gw);
    // No call of it is up: its address is a stranger's at once.
    assert_closed(idle, "the moved peer's idle connection");
}

/// A request from the PBX over TCP (from 127.0.0.2, port `port` of its connection).
fn pbx_request(method: &str, port: u16, to_tag: &str, cseq: u32, body: &str) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} sip:+8610123@127.0.0.1;transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/TCP {PHONE_IP}:{port};branch=z9hG4bKmoved{cseq}{method}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1000@{PHONE_IP}>;tag=moved\r\n\
         To: <sip:+8610123@127.0.0.1>{to_tag}\r\n\
         Call-ID: moved-peer\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:1000@{PHONE_IP}:{port};transport=tcp>\r\n\
         X-Phone-Trace: end-to-end\r\n\
         {ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_peer_a_reload_moved_ends_its_call_over_a_new_tcp_connection_then_is_a_stranger() {
    use std::io::{Read, Write};
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            single_carrier: true,
            ..GwOpts::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let carrier = Sipp::uas(
        "basic-call/carrier.xml",
        CARRIER_A_IP,
        gw.ports.carrier_a,
        tmp.path(),
    );

    // The PBX places a call over TCP, and the carrier answers it.
    let mut first = tcp_from(PHONE_IP, &gw);
    first
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let port = first.local_addr().unwrap().port();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    first
        .write_all(pbx_request("INVITE", port, "", 1, sdp).as_bytes())
        .unwrap();
    let answer = read_until(&mut first, "SIP/2.0 200");
    let ok = &answer[answer.find("SIP/2.0 200").unwrap()..];
    let to = ok
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap();
    let tag = to[to.find(";tag=").expect("a To tag")..].to_string();
    let tag = tag.as_str();
    first
        .write_all(pbx_request("ACK", port, tag, 1, "").as_bytes())
        .unwrap();

    // The PBX's profile moves to another address: calls in progress keep theirs.
    move_pbx_away(&gw);

    // Its connection is gone; it hangs up over a new one, which the gateway accepts
    // (before, a moved peer was a stranger there and its connection closed at once).
    drop(first);
    let mut second = tcp_from(PHONE_IP, &gw);
    second
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let port = second.local_addr().unwrap().port();
    // A request in no dialog of its own is a stranger's, dropped unanswered; the connection
    // stays open while its calls last (before, any message on it closed it).
    second
        .write_all(pbx_request("BYE", port, ";tag=nobody", 5, "").as_bytes())
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    second
        .write_all(pbx_request("BYE", port, tag, 2, "").as_bytes())
        .unwrap();
    read_until(&mut second, "SIP/2.0 200");
    assert!(carrier.passed_within(std::time::Duration::from_secs(10)));
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["call_tag"], "caller_bye", "{cdrs:?}");

    // With its calls over, the connection it ended them on is closed too, rather than
    // left open from an address no profile matches until it idles out.
    assert_closed(second, "the moved peer's connection");

    // With its calls over, the address is a stranger's: its connections are closed at once
    // (within the gateway's once-a-second housekeeping; polled, for a loaded machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut probe = tcp_from(PHONE_IP, &gw);
        probe
            .set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 16];
        let r = probe.read(&mut buf);
        if matches!(r, Ok(0))
            || r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connections from the moved address are still accepted: {r:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A carrier whose `address` lies outside its `match` answers from there; a reload that
/// moves its `address` leaves the old one unknown to every profile, while a call to it is
/// up. The BYE that ends that call goes to the old address, and its 200 comes from there:
/// it is read because the gateway sent that address a request (a stranger's response is
/// read only then), so the BYE is not sent again and the call's CDR is written.
#[test]
fn a_carriers_old_address_still_answers_the_bye_of_its_call_after_a_reload() {
    use common::anchored::*;
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            single_carrier: true,
            ..GwOpts::carrier_a("[media]\nanchor = true\n")
        },
    );
    let profile = gw.path("profiles/carrier-a.toml");
    let original = std::fs::read_to_string(&profile).unwrap();
    let answering_elsewhere = original.replace(
        &format!("match = [\"{CARRIER_A_IP}/32\"]"),
        "match = [\"127.0.0.5/32\"]",
    );
    assert_ne!(answering_elsewhere, original);
    std::fs::write(&profile, &answering_elsewhere).unwrap();
    let (ok, out) = reload(&gw);
    assert!(ok, "{out}");
    let e = establish(&gw, "old-address");
    let moved = answering_elsewhere.replace(
        &format!("address = \"udp:{CARRIER_A_IP}:"),
        "address = \"udp:127.0.0.6:",
    );
    assert_ne!(moved, answering_elsewhere);
    std::fs::write(&profile, &moved).unwrap();
    let (ok, out) = reload(&gw);
    assert!(ok, "{out}");
    hang_up(&gw, &e, "old-address");
    // Read: Timer E would send the BYE again after 0.5 s.
    e.carrier
        .set_read_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 65536];
    while let Ok((n, _)) = e.carrier.recv_from(&mut buf) {
        assert!(
            !buf[..n].starts_with(b"BYE "),
            "the old address's 200 was not read: the BYE was sent again"
        );
    }
    let cdrs = gw.wait_cdrs(1);
    assert_eq!(cdrs[0]["call_tag"], "caller_bye", "{cdrs:?}");
}

/// Whether process `pid` has a handler of its own for SIGHUP (`SigCgt` in its status).
fn catches_sighup(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & 1 != 0)
}

/// A SIGHUP that comes while a starting gateway reads its configuration (a slow disk, a
/// file being saved) is a reload once it runs, not the end of the process. The start is
/// held in its configuration load by rewriting gateway.toml (a file still changing is
/// waited for, up to 1 s); the signal goes while it is held.
#[test]
fn a_sighup_during_start_up_is_a_reload_once_running_not_the_end() {
    let mut gw = Gateway::start(Ports::new(), GwOpts::default());
    gw.kill9();
    let path = gw.path("gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let rewriting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (path, text, rewriting) = (path.clone(), text.clone(), rewriting.clone());
        std::thread::spawn(move || {
            while rewriting.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::write(&path, &text).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    gw.respawn();
    let pid = gw.child.id();
    // The handler is up within milliseconds of the start; the file stays young for 400 ms,
    // so the load is still waiting when the signal goes (sent regardless: a build that
    // watches signals only after the load must fail here, not wait).
    let until = std::time::Instant::now() + std::time::Duration::from_millis(400);
    while !catches_sighup(pid) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    gw.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(100));
    rewriting.store(false, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the SIGHUP during start-up ended the gateway; log:\n{}",
        gw.log()
    );
    gw.ready();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let series = "trunkgate_config_reloads_total{result=\"applied\"} 1";
    let mut metrics = gw.metrics();
    while !metrics.contains(series) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        metrics = gw.metrics();
    }
    assert!(metrics.contains(series), "{series}: {metrics}");
}
