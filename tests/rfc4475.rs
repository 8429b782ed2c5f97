//! RFC 4475 torture messages (tests/data/rfc4475) sent to the running gateway over UDP from
//! the PBX's address: valid requests get a proper (non-400) response, valid responses are
//! absorbed, invalid messages get 400 (505 for the unknown version) or are dropped, and the
//! gateway keeps serving a normal call afterwards.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

struct Case {
    file: String,
    valid: bool,
    kind: String,
}

fn manifest() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475");
    std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Case {
                file: dir.join(f[0]).to_string_lossy().into_owned(),
                valid: f[1] == "valid",
                kind: f[2].to_string(),
            }
        })
        .collect()
}

/// Send one datagram and collect what comes back within `wait`.
fn exchange(
    sock: &UdpSocket,
    gw: std::net::SocketAddr,
    data: &[u8],
    wait: Duration,
) -> Vec<String> {
    sock.send_to(data, gw).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

/// The Call-ID of a raw message (long or compact form), to tell our replies from
/// retransmissions of replies to earlier messages (an INVITE's final response is
/// retransmitted until its ACK, which these one-shot messages never send).
fn call_id(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let n = name.trim().to_ascii_lowercase();
            (n == "call-id" || n == "i").then(|| value.trim().to_string())
        })
        .unwrap_or_default()
}

fn status(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn torture_messages_then_a_normal_call() {
    let cases = manifest();
    assert_eq!(cases.iter().filter(|c| c.valid).count(), 13);
    assert_eq!(cases.iter().filter(|c| !c.valid).count(), 19);
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    // From the PBX's address: the gateway treats it as a known peer.
    let sock = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut report = Vec::new();
    for c in &cases {
        let data = std::fs::read(&c.file).unwrap();
        let id = call_id(&data);
        let replies: Vec<String> = exchange(&sock, gw.addr(), &data, Duration::from_millis(700))
            .into_iter()
            .filter(|r| call_id(r.as_bytes()) == id)
            .collect();
        let statuses: Vec<u16> = replies.iter().map(|r| status(r)).collect();
        let name = Path::new(&c.file)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        report.push(format!("{name}: {statuses:?}"));
        match (c.valid, c.kind.as_str()) {
            (true, "request") => {
                assert!(
                    !statuses.is_empty(),
                    "{name}: a valid request got no response"
                );
                assert!(
                    statuses.iter().all(|s| *s >= 100 && *s != 400),
                    "{name}: {statuses:?}\n{replies:#?}"
                );
                if name.contains("dblreq") {
                    // Only the REGISTER is processed; the INVITE after it in the datagram is noise.
                    assert!(
                        replies.iter().all(|r| r.contains("CSeq: 8 REGISTER")),
                        "{replies:#?}"
                    );
                }
            }
            (true, _) => assert!(
                statuses.is_empty(),
                "{name}: a stray response must be absorbed: {replies:#?}"
            ),
            (false, _) => {
                let allowed: &[u16] = if name.contains("badvers") {
                    &[400, 505]
                } else {
                    &[400]
                };
                assert!(
                    statuses.iter().all(|s| allowed.contains(s)),
                    "{name}: invalid message must get {allowed:?} or nothing, got {statuses:?}\n{replies:#?}"
                );
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    // Still alive and still routing calls.
    let tmp = tempfile::tempdir().unwrap();
    call_succeeds(
        &gw,
        tmp.path(),
        "basic-call/carrier.xml",
        "basic-call/phone.xml",
        Transport::Udp,
    );
    let cdrs = gw.wait_cdrs_at_least(1);
    assert!(
        cdrs.iter().any(|c| c["call_tag"] == "caller_bye"),
        "{cdrs:#?}"
    );
}
