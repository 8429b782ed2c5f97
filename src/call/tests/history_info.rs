//! History-Info (RFC 7044) from one leg to the other (`interop::history`).

use super::*;

const HISTORY: &str = "History-Info: <sip:+8610999@10.0.0.5?Reason=SIP%3Bcause%3D302>;index=1,\r\n \
    <sip:+8610123@10.0.0.5;user=phone;cause=302;maddr=10.9.9.9>;index=1.1;mp=1;x-host=pbx.lan\r\n";

fn forwarded(h: &mut H, call_id: &str, extra: &str) -> Option<String> {
    h.recv(
        PHONE,
        &invite_text(call_id, &format!("z9hG4bK{call_id}"), "+8610123", extra),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let lines = inv.header_lines(&Hdr::HISTORY_INFO);
    assert!(lines.len() <= 1, "{lines:?}");
    lines.into_iter().next()
}

/// A call the PBX forwarded reaches the carrier with its history: each entry's number in
/// the carrier's form at the carrier's domain, no PBX host, its diversion cause, Reason and
/// indexes kept, anything else of it left out. Before, History-Info was dropped, and the
/// carrier's voicemail could not tell whose box the call was for.
#[test]
fn a_forwarded_calls_history_reaches_the_callee_without_the_callers_hosts() {
    let mut h = H::new();
    let hi = forwarded(&mut h, "hi1", HISTORY).expect("History-Info passed");
    assert_eq!(
        hi,
        "<sip:+8610999@ims.example.com?Reason=SIP%3Bcause%3D302>;index=1, \
         <sip:+8610123@ims.example.com;cause=302>;index=1.1;mp=1"
    );
    assert!(!hi.contains("10.0.0.5") && !hi.contains("10.9.9.9") && !hi.contains("pbx.lan"));
}

/// Privacy: an entry that asks for it (`?Privacy=history`) is anonymised toward a peer
/// outside the trust domain, its place kept; a request that asks for all of it (`Privacy:
/// history`) carries none there; a peer in the trust domain (a trunk, unless its profile
/// says otherwise) gets it all.
#[test]
fn history_privacy_is_kept_outside_the_trust_domain() {
    let private_entry = "History-Info: <sip:+8610999@10.0.0.5?Privacy=history>;index=1, \
        <sip:+8610123@10.0.0.5>;index=1.1\r\n";
    let untrusted = || {
        H::with(config_with(|n, p| {
            if n == "carrier-a" {
                p.headers.trust_identity = false;
            }
        }))
    };
    let mut h = untrusted();
    let hi = forwarded(&mut h, "hi2", private_entry).unwrap();
    assert_eq!(
        hi,
        "<sip:anonymous@anonymous.invalid?Privacy=history>;index=1, \
         <sip:+8610123@ims.example.com>;index=1.1"
    );
    let mut h = untrusted();
    let all = format!("Privacy: history\r\n{HISTORY}");
    assert_eq!(forwarded(&mut h, "hi3", &all), None);
    let mut h = H::new();
    let hi = forwarded(&mut h, "hi4", private_entry).unwrap();
    assert!(
        hi.starts_with("<sip:+8610999@ims.example.com?Privacy=history>"),
        "{hi}"
    );
    let mut h = H::new();
    assert!(forwarded(&mut h, "hi5", &all).is_some());
    // `[headers] strip` wins, as for every identity header.
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.headers.strip.push(Hdr::HISTORY_INFO);
        }
    }));
    assert_eq!(forwarded(&mut h, "hi6", HISTORY), None);
}

/// An entry that is no name-addr cannot be read to hide its hosts: left out, the others go.
#[test]
fn an_entry_that_cannot_be_read_is_left_out() {
    let mut h = H::new();
    let broken =
        "History-Info: sip:+8610999@10.0.0.5;index=1, <sip:+8610123@10.0.0.5>;index=1.1\r\n";
    assert_eq!(
        forwarded(&mut h, "hi7", broken).as_deref(),
        Some("<sip:+8610123@ims.example.com>;index=1.1")
    );
}

/// Toward a peer that takes tel: URIs an entry with a Reason or a cause goes as a SIP URI
/// (a tel: URI has no room for either); a peer whose profile sends no Reason gets none in
/// the entries either; of a history over 32 entries the last 32 go (the current target and
/// who diverted to it).
#[test]
fn entries_fit_the_peers_uri_form_its_reason_choice_and_the_cap() {
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.uri.scheme = crate::interop::uri::UriScheme::Tel;
            p.causes.send_reason = false;
        }
    }));
    let hi = forwarded(&mut h, "hi8", HISTORY).unwrap();
    assert_eq!(
        hi,
        "<tel:+8610999>;index=1, <sip:+8610123@ims.example.com;cause=302>;index=1.1;mp=1"
    );
    let mut h = H::with(config_with(|n, p| {
        if n == "carrier-a" {
            p.uri.scheme = crate::interop::uri::UriScheme::Tel;
        }
    }));
    let hi = forwarded(&mut h, "hi9", HISTORY).unwrap();
    assert!(
        hi.starts_with("<sip:+8610999@ims.example.com?Reason=SIP%3Bcause%3D302>;index=1, "),
        "{hi}"
    );
    let long: Vec<String> = (1..=40)
        .map(|i| format!("<sip:+86100{i:02}@10.0.0.5>;index=1.{i}"))
        .collect();
    let mut h = H::new();
    let hi = forwarded(
        &mut h,
        "hi10",
        &format!("History-Info: {}\r\n", long.join(", ")),
    )
    .unwrap();
    assert_eq!(hi.matches("<sip:").count(), 32);
    assert!(
        hi.starts_with("<sip:+8610009@") && hi.ends_with(";index=1.40"),
        "{hi}"
    );
}

/// A callee that returns its History-Info cache in its answers (RFC 7044 §9.4) is relayed
/// with that one cache: before, the answer toward the caller also carried the caller's
/// own entries back (the response built from its INVITE returns them), two sets with the
/// same indexes that a voicemail or diversion service could not read.
#[test]
fn an_answer_carries_the_callees_history_once() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("hi9", "z9hG4bKhi9", "+8610123", HISTORY),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    // The carrier's 180 returns the cache it got.
    let cache = inv.header_lines(&Hdr::HISTORY_INFO).join(", ");
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "c9",
            &[(Hdr::HISTORY_INFO, cache.as_str())],
            None,
        ),
    );
    let ringing = h
        .take_responses(PHONE)
        .into_iter()
        .find(|r| r.status() == 180)
        .expect("180 relayed");
    let hi = ringing.header_lines(&Hdr::HISTORY_INFO).join(", ");
    assert_eq!(hi.matches("index=1.1").count(), 1, "{hi}");
    assert_eq!(
        hi.matches("index=1").count(),
        2,
        "one entry 1, one 1.1: {hi}"
    );
    assert!(!hi.contains("10.0.0.5"), "{hi}");
}

/// An entry whose target is a name, not a number (`sip:alice@pbx`), keeps its RFC 4458
/// diversion cause at the gateway's host, as a number's does. Before, it lost it.
#[test]
fn a_named_targets_diversion_cause_is_kept() {
    let mut h = H::new();
    let hi = forwarded(
        &mut h,
        "hi9",
        "History-Info: <sip:alice@10.0.0.5;cause=486;maddr=10.9.9.9>;index=1\r\n",
    )
    .expect("History-Info passed");
    assert!(
        hi.contains("sip:alice@") && hi.contains(";cause=486>"),
        "{hi}"
    );
    assert!(!hi.contains("10.0.0.5") && !hi.contains("10.9.9.9"), "{hi}");
}

/// The gateway's own answers carry no History-Info: before, each took the request's back
/// (RFC 7044 §9.4), and under `Privacy: history` every entry came back as a 43-byte
/// anonymous one, so a stateless answer to a spoofed source was some three times the size
/// of the request that drew it.
#[test]
fn the_gateways_own_answers_return_no_history() {
    let mut h = H::new();
    let entries: Vec<String> = std::iter::once("<sip:a@h>;index=1".to_string())
        .chain((1..50).map(|i| format!("<sip:a@h>;index=1.{i}")))
        .collect();
    let hist = format!(
        "History-Info: {}\r\nPrivacy: history\r\n",
        entries.join(",")
    );
    let opts = format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bKho1\r\n\
Max-Forwards: 70\r\nFrom: <sip:100@127.0.0.2>;tag=o1\r\nTo: <sip:127.0.0.1>\r\n\
Call-ID: ho1@127.0.0.2\r\nCSeq: 1 OPTIONS\r\n{hist}Content-Length: 0\r\n\r\n"
    );
    h.recv(PHONE, &opts);
    let answers = h.take_responses(PHONE);
    assert!(!answers.is_empty());
    for r in answers {
        assert!(r.header(&Hdr::HISTORY_INFO).is_none(), "{r:?}");
    }
}
