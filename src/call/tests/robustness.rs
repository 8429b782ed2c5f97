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
