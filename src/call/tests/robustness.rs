//! Hostile input never panics the core.

use super::*;

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
            h.input(Input::Message {
                msg,
                source: Target::udp(addr(from)),
            });
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

/// A caller whose To is at the parser's size limit and holds an escaped NUL (a To our tag
/// can only be spliced into) still gets its 200 to CANCEL and its 487, and nothing of the
/// call is left. Before, both answers failed to build (the tagged To was over the limit),
/// were only logged, and the two server transactions stayed for ever.
#[test]
fn a_caller_whose_to_is_at_the_size_limit_is_still_answered() {
    let to_line = |pad: usize| format!("To: \"\\\0{}\" <sip:+8610123@127.0.0.1>", "x".repeat(pad));
    let invite = |pad: usize| {
        invite_text("big-to", "z9hG4bKbig", "+8610123", "")
            .replace("To: <sip:+8610123@127.0.0.1>", &to_line(pad))
    };
    let pad = (7000..9000)
        .rev()
        .find(|&pad| crate::sip::parse_datagram(invite(pad).into(), 65535).is_ok())
        .expect("some padding parses");
    let mut h = H::new();
    // Our answers carry the To, tagged: just over the limit the gateway parses with.
    h.lenient = true;
    h.recv(PHONE, &invite(pad));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t2", &[], None));
    h.take(PHONE);
    let cancel =
        cancel_text("big-to", "z9hG4bKbig").replace("To: <sip:+8610123@127.0.0.1>", &to_line(pad));
    h.recv(PHONE, &cancel);
    let st: Vec<(u16, Method)> = h
        .take_responses(PHONE)
        .iter()
        .map(|r| (r.status(), r.cseq().unwrap().1))
        .collect();
    assert!(
        st.contains(&(200, Method::Cancel)) && st.contains(&(487, Method::Invite)),
        "{st:?}"
    );
    let c = h.one_request(CARRIER_A, Method::Cancel);
    h.recv_msg(CARRIER_A, reply(&c, 200, "t2", &[], None));
    h.recv_msg(CARRIER_A, reply(&inv, 487, "t2", &[], None));
    // The phone's ACK, To tag and all, is over the limit: our 487 ends with Timer H.
    assert_idle(&mut h);
}

/// A BYE whose Via has a quoted parameter holding `;` (and a sent-by that is not its
/// address, so the Via gets `received`) is a BYE: before, stamping split that parameter,
/// the Via no longer read, no transaction was keyed on it, and it was handled as an ACK.
#[test]
fn a_bye_whose_via_quotes_a_semicolon_is_answered() {
    let mut h = H::new();
    let (_inv, ok) = answered_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let bye = phone_bye(&tag, 2, "z9hG4bKq1").replace(
        "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKq1",
        "Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKq1;x=\"a;received=b\"",
    );
    assert!(bye.contains("x=\"a;received=b\""), "{bye}");
    h.recv(PHONE, &bye);
    h.one_request(CARRIER_A, Method::Bye);
}
