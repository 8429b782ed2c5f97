use super::*;
use webrtc_util::marshal::Unmarshal;

/// RTP header with the given first byte, sequence 0x0102, timestamp 0x03040506,
/// SSRC 0x0708090a, then `rest`.
fn rtp(b0: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![b0, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    p.extend_from_slice(rest);
    p
}

/// The audit's packet: X=1, one-byte profile, one word, an element claiming 16 bytes.
const AUDIT: [u8; 20] = [
    0x90, 0x00, 0x00, 0x01, 0, 0, 0, 160, 0, 0, 0, 1, 0xBE, 0xDE, 0x00, 0x01, 0x1F, 0x00, 0x00,
    0x00,
];

#[test]
fn malformed_headers_are_refused_with_their_reason() {
    use PacketError::*;
    let mut big = rtp(0x80, &[0u8; MAX_PACKET]);
    big.truncate(MAX_PACKET + 1);
    let table: Vec<(&str, Vec<u8>, PacketError)> = vec![
        (
            "audit: element past the extension",
            AUDIT.to_vec(),
            ExtensionElement,
        ),
        ("empty", vec![], Short),
        ("11 bytes", rtp(0x80, &[])[..11].to_vec(), Short),
        ("version 1", rtp(0x40, &[1]), Version),
        ("version 0 (STUN-like)", rtp(0x00, &[1]), Version),
        ("15 CSRCs, none present", rtp(0x8f, &[0; 8]), Csrc),
        ("1 CSRC, 3 bytes of it", rtp(0x81, &[0; 3]), Csrc),
        ("X bit, no extension header", rtp(0x90, &[]), Extension),
        (
            "X bit, 2 bytes of header",
            rtp(0x90, &[0xBE, 0xDE]),
            Extension,
        ),
        (
            "extension of 2 words, 1 present",
            rtp(0x90, &[0xBE, 0xDE, 0, 2, 0x10, 0, 0, 0]),
            Extension,
        ),
        (
            "extension of 0xffff words",
            rtp(0x90, &[0x12, 0x34, 0xff, 0xff, 0, 0, 0, 0]),
            Extension,
        ),
        (
            "CSRC then extension past the end",
            rtp(0x91, &[0, 0, 0, 1, 0xBE, 0xDE, 0, 1]),
            Extension,
        ),
        (
            "one-byte ID 15",
            rtp(0x90, &[0xBE, 0xDE, 0, 1, 0xF0, 0, 0, 0]),
            ExtensionElement,
        ),
        (
            "one-byte element of 4 after padding",
            rtp(0x90, &[0xBE, 0xDE, 0, 1, 0, 0x13, 0, 0, 0xAA]),
            ExtensionElement,
        ),
        (
            "two-byte element without its length",
            rtp(0x90, &[0x10, 0x00, 0, 1, 0, 0, 0, 5]),
            ExtensionElement,
        ),
        (
            "two-byte element of 255",
            rtp(0x90, &[0x10, 0x00, 0, 1, 5, 255, 0, 0, 1, 2, 3]),
            ExtensionElement,
        ),
        (
            "two-byte profile 0x100f",
            rtp(0x90, &[0x10, 0x0f, 0, 1, 5, 3, 0, 0]),
            ExtensionElement,
        ),
        ("padding count 0", rtp(0xa0, &[1, 2, 0]), Padding),
        ("padding past the header", rtp(0xa0, &[1, 2, 4]), Padding),
        ("padding bit, no payload", rtp(0xa0, &[]), Padding),
        ("over the size cap", big, TooLarge),
        // RTCP on the RTP port without rtcp-mux: before, read as RTP of payload type
        // 72-76, its NTP seconds taken for the stream's SSRC, relayed as media.
        (
            "a sender report",
            [&[0x80, 200, 0, 6][..], &[0; 24]].concat(),
            RtcpType,
        ),
        (
            "a receiver report",
            [&[0x81, 201, 0, 7][..], &[0; 28]].concat(),
            RtcpType,
        ),
        (
            "payload type 72, no marker",
            [&[0x80, 72][..], &[0; 10]].concat(),
            RtcpType,
        ),
        (
            "payload type 76",
            [&[0x80, 76][..], &[0; 10]].concat(),
            RtcpType,
        ),
    ];
    for (what, p, want) in table {
        assert_eq!(check_rtp(&p).map(|_| ()), Err(want), "{what}");
    }
    // Their neighbours are RTP's (71, 77: dynamic or unassigned, not reserved).
    for pt in [71u8, 77, 0xC7, 0xCD] {
        let p = [&[0x80, pt][..], &[0; 10]].concat();
        assert!(check_rtp(&p).is_ok(), "{pt}");
    }
    let sr = [&[0x80, 200, 0, 6][..], &[0; 24]].concat();
    assert_eq!(check_srtp(&sr).map(|_| ()), Err(RtcpType));
}

#[test]
fn valid_packets_give_header_fields_and_the_payload_without_padding() {
    let plain = rtp(0x80, &[0xd5, 0xd5]);
    let v = check_rtp(&plain).unwrap();
    assert_eq!(
        v,
        RtpView {
            marker: true,
            payload_type: 0,
            sequence: 0x0102,
            timestamp: 0x0304_0506,
            ssrc: 0x0708_090a,
            payload: &[0xd5, 0xd5],
        }
    );
    // Two CSRCs, a one-byte extension (an element of 2 bytes, one of 1, padding), 2 bytes
    // of audio and 3 of padding.
    let p = rtp(
        0xb2,
        &[
            0, 0, 0, 1, 0, 0, 0, 2, 0xBE, 0xDE, 0, 2, 0x11, 0xaa, 0xbb, 0x20, 0xcc, 0, 0, 0, 0x55,
            0x56, 0, 0, 3,
        ],
    );
    assert_eq!(check_rtp(&p).unwrap().payload, &[0x55, 0x56]);
    // Two-byte elements, and an extension of a profile we do not walk.
    let p = rtp(0x90, &[0x10, 0x00, 0, 2, 1, 2, 9, 9, 0, 3, 1, 2, 0x7f]);
    assert_eq!(check_rtp(&p).unwrap().payload, &[0x7f]);
    let p = rtp(0x90, &[0x12, 0x34, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(check_rtp(&p).unwrap().payload, &[0x7f]);
    // A packet that is only padding is empty, not malformed.
    assert_eq!(
        check_rtp(&rtp(0xa0, &[0, 2])).unwrap().payload,
        &[] as &[u8]
    );
    // Exactly the size cap is fine.
    assert!(check_rtp(&rtp(0x80, &[0u8; MAX_PACKET - 12])).is_ok());
}

#[test]
fn rtcp_compounds_are_walked_packet_by_packet() {
    // SR with no report blocks (7 words + 1) followed by an SDES with one chunk.
    let mut sr = vec![0x80, 200, 0, 6];
    sr.extend_from_slice(&[0; 24]);
    let sdes = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 1, b'a', 0];
    let compound: Vec<u8> = sr.iter().chain(sdes.iter()).copied().collect();
    assert_eq!(check_rtcp(&sr), Ok(1));
    assert_eq!(check_rtcp(&compound), Ok(2));
    use PacketError::*;
    let mut long = compound.clone();
    long[compound.len() - 10] = 3; // SDES claims 4 words + 1
    let mut bad_version = compound.clone();
    bad_version[sr.len()] = 0x41;
    let mut trailing = compound.clone();
    trailing.extend_from_slice(&[0x80, 201]);
    let mut padded_first = compound.clone();
    padded_first[0] |= 0x20;
    let mut padded_last = sr.clone();
    padded_last[0] |= 0x20;
    padded_last[27] = 4;
    let mut padded_zero = padded_last.clone();
    padded_zero[27] = 0;
    assert_eq!(check_rtcp(&padded_last), Ok(1));
    let table: Vec<(&str, Vec<u8>, PacketError)> = vec![
        ("empty", vec![], Short),
        ("3 bytes", vec![0x80, 200, 0], Short),
        ("second packet's length past the end", long, RtcpLength),
        ("second packet version 1", bad_version, Version),
        ("2 stray bytes after the compound", trailing, RtcpLength),
        ("padding on the first packet", padded_first, Padding),
        ("padding count 0", padded_zero, Padding),
        (
            "length 0xffff",
            vec![0x80, 200, 0xff, 0xff, 0, 0, 0, 0],
            RtcpLength,
        ),
        ("over the size cap", vec![0x80; MAX_PACKET + 1], TooLarge),
    ];
    for (what, p, want) in table {
        assert_eq!(check_rtcp(&p), Err(want), "{what}");
    }
}

/// A small seeded generator (xorshift): the same mutations on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Whatever bytes arrive, the checks never panic, and a packet they accept is one the `rtp`
/// crate parses without panicking and reads as we do (same fields, same payload).
#[test]
fn mutated_and_truncated_packets_never_reach_a_parser_that_panics() {
    let seeds: Vec<Vec<u8>> = vec![
        rtp(0x80, &[0xd5; 160]),
        rtp(0x90, &[0xBE, 0xDE, 0, 1, 0x10, 0xaa, 0, 0, 0xd5, 0xd5]),
        rtp(0x90, &[0x10, 0x00, 0, 2, 1, 2, 9, 9, 0, 3, 1, 2, 0x7f]),
        rtp(
            0xb1,
            &[0, 0, 0, 9, 0xBE, 0xDE, 0, 1, 0x21, 1, 2, 0, 0x55, 0, 2],
        ),
        AUDIT.to_vec(),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0u32, 0u32);
    for _ in 0..50_000 {
        let mut p = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 => p.truncate(rng.below(p.len() + 1)),
                1 if !p.is_empty() => {
                    let i = rng.below(p.len());
                    p[i] = rng.next() as u8;
                }
                2 if !p.is_empty() => {
                    // Flip header bits where the lengths live.
                    let i = rng.below(p.len().min(20));
                    p[i] ^= 1 << rng.below(8);
                }
                _ => p.push(rng.next() as u8),
            }
        }
        let _ = check_rtcp(&p);
        match check_rtp(&p) {
            Ok(v) => {
                accepted += 1;
                let parsed = rtp::packet::Packet::unmarshal(&mut &p[..])
                    .expect("the crate reads what we accept");
                assert_eq!(parsed.header.ssrc, v.ssrc);
                assert_eq!(parsed.header.timestamp, v.timestamp);
                assert_eq!(parsed.header.sequence_number, v.sequence);
                assert_eq!(parsed.header.payload_type, v.payload_type);
                assert_eq!(&parsed.payload[..], v.payload, "{p:02x?}");
            }
            Err(_) => refused += 1,
        }
    }
    // Both outcomes were exercised, so the loop tested something.
    assert!(
        accepted > 5_000 && refused > 5_000,
        "{accepted} / {refused}"
    );
}
