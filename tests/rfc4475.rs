//! RFC 4475 torture messages (tests/data/rfc4475, the RFC's own archive bytes) sent to the
//! running gateway over UDP from the PBX's address. Each message's answer must be exactly
//! what MANIFEST.tsv says: a status, `absorbed` or `drop`. After every message an OPTIONS
//! "barrier" is sent on the same socket; the gateway handles datagrams from one socket in
//! order, so once the barrier's 200 is back every answer to the message has been sent too,
//! and "no answer" is an observed fact rather than a timeout. Afterwards the gateway must
//! still route a normal call.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

struct Case {
    file: PathBuf,
    name: String,
    valid: String,
    /// A status code, `absorbed` or `drop`.
    expect: String,
    /// What the gateway does today when it misses `expect` (empty when it meets it).
    today: String,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475")
}

fn manifest() -> Vec<Case> {
    let dir = data_dir();
    std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 6, "MANIFEST.tsv row needs 6 columns: {l:?}");
            Case {
                file: dir.join(f[0]),
                name: f[0].to_string(),
                valid: f[2].to_string(),
                expect: f[3].to_string(),
                today: f[4].to_string(),
            }
        })
        .collect()
}

/// The Call-ID of a raw message (long or compact form), to tell our replies from
/// retransmissions of replies to earlier messages (a final response to an INVITE is
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

/// Send `data`, then a barrier OPTIONS, and return every datagram that came back before the
/// barrier's answer (the barrier's answer excluded).
fn exchange(sock: &UdpSocket, gw: SocketAddr, data: &[u8], seq: usize) -> Vec<String> {
    let port = sock.local_addr().unwrap().port();
    let barrier_id = format!("rfc4475-barrier-{seq}");
    let barrier = format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{port};branch=z9hG4bKbarrier{seq}\r\nFrom: <sip:b@{PHONE_IP}>;tag=b{seq}\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {barrier_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(data, gw).unwrap();
    sock.send_to(barrier.as_bytes(), gw).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if call_id(text.as_bytes()) == barrier_id {
                return out;
            }
            out.push(text);
        }
    }
    panic!("the barrier OPTIONS after {seq} got no answer");
}

/// Whether the statuses seen are exactly what `expect` asks for.
fn meets(expect: &str, statuses: &[u16]) -> bool {
    match expect {
        "absorbed" | "drop" => statuses.is_empty(),
        code => {
            let code: u16 = code.parse().expect("status in MANIFEST.tsv");
            !statuses.is_empty() && statuses.iter().all(|s| *s == code)
        }
    }
}

#[test]
fn the_archive_files_are_the_ones_checksummed() {
    // The same check generate.py --check makes, so an edited message fails here too.
    let dir = data_dir();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(listed.len(), 32);
    let cases = manifest();
    for c in cases.iter().filter(|c| c.valid != "erratum") {
        assert!(
            listed.contains(&c.name.as_str()),
            "{} not in SHA256SUMS",
            c.name
        );
    }
    // Bytes the reconstruction from memory got wrong and the archive has: the binary MIME
    // part of 3.1.1.11 and the missing final CRLF of 3.1.2.15.
    let mpart = std::fs::read(dir.join("valid/3.1.1.11-mpart01.sip")).unwrap();
    assert_eq!(mpart.len(), 1290);
    assert!(mpart.contains(&0u8));
    let baddn = std::fs::read(dir.join("invalid/3.1.2.15-baddn.sip")).unwrap();
    assert!(baddn.ends_with(b"l: 0\r\n"));
    let erratum = std::fs::read(dir.join("errata/3.1.2.15-baddn-crlf.sip")).unwrap();
    assert_eq!(erratum, [baddn.as_slice(), b"\r\n"].concat());
}

#[test]
fn torture_messages_then_a_normal_call() {
    let cases = manifest();
    assert_eq!(cases.iter().filter(|c| c.valid == "valid").count(), 13);
    assert_eq!(cases.iter().filter(|c| c.valid == "invalid").count(), 19);
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    // From the PBX's address: the gateway treats it as a known peer.
    let sock = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut report = Vec::new();
    let mut wrong = Vec::new();
    for (seq, c) in cases.iter().enumerate() {
        let data = std::fs::read(&c.file).unwrap();
        let id = call_id(&data);
        let replies: Vec<String> = exchange(&sock, gw.addr(), &data, seq)
            .into_iter()
            .filter(|r| call_id(r.as_bytes()) == id)
            .collect();
        let statuses: Vec<u16> = replies.iter().map(|r| status(r)).collect();
        report.push(format!("{}: {statuses:?}", c.name));
        if c.name.contains("dblreq") {
            // Only the REGISTER is processed; the INVITE after it in the datagram is noise.
            assert!(
                replies.iter().all(|r| r.contains("CSeq: 8 REGISTER")),
                "{replies:#?}"
            );
        }
        // A known gap is pinned to today's behaviour, so it cannot drift unnoticed either way.
        let want = if c.today.is_empty() {
            &c.expect
        } else {
            &c.today
        };
        if !meets(want, &statuses) {
            wrong.push(format!(
                "{}: expected {want}{}, got {statuses:?}\n{replies:#?}",
                c.name,
                if c.today.is_empty() {
                    String::new()
                } else {
                    format!(" (known gap; the RFC's answer is {})", c.expect)
                }
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
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
