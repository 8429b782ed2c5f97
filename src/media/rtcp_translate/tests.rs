use super::*;
use crate::media::check_rtcp;

/// A report block about `ssrc`: lost 0x010203 of fraction 0x10, highest 0x00010064,
/// jitter, LSR and DLSR recognisable.
fn block(ssrc: u32) -> Vec<u8> {
    let mut b = ssrc.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x10, 0x01, 0x02, 0x03]);
    b.extend_from_slice(&0x0001_0064u32.to_be_bytes());
    b.extend_from_slice(&[0x21; 4]); // jitter
    b.extend_from_slice(&[0x22; 4]); // LSR
    b.extend_from_slice(&[0x23; 4]); // DLSR
    b
}

/// An SR from `ssrc` with `packets`/`octets` and report blocks about `about`.
fn sr(ssrc: u32, packets: u32, octets: u32, about: &[u32]) -> Vec<u8> {
    let mut p = vec![0x80 | about.len() as u8, SR, 0, 0];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xaa; 8]); // NTP
    p.extend_from_slice(&1234u32.to_be_bytes()); // RTP timestamp
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&octets.to_be_bytes());
    for s in about {
        p.extend(block(*s));
    }
    fix_length(p)
}

fn rr(ssrc: u32, about: &[u32]) -> Vec<u8> {
    let mut p = vec![0x80 | about.len() as u8, RR, 0, 0];
    p.extend_from_slice(&ssrc.to_be_bytes());
    for s in about {
        p.extend(block(*s));
    }
    fix_length(p)
}

fn fix_length(mut p: Vec<u8>) -> Vec<u8> {
    let words = (p.len() / 4 - 1) as u16;
    p[2..4].copy_from_slice(&words.to_be_bytes());
    p
}

/// SDES with one empty chunk for `ssrc`.
fn sdes(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x81, 202, 0, 0];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    fix_length(p)
}

/// A generic NACK (or another RTPFB format `fmt`) from `from` on `media`.
fn rtpfb(fmt: u8, from: u32, media: u32) -> Vec<u8> {
    let mut p = vec![0x80 | fmt, RTPFB, 0, 0];
    p.extend_from_slice(&from.to_be_bytes());
    p.extend_from_slice(&media.to_be_bytes());
    p.extend_from_slice(&[0, 5, 0, 0]);
    fix_length(p)
}

/// An XR from `from` with blocks `(type, source)`, each header, SSRC and 4 bytes.
fn xr(from: u32, blocks: &[(u8, u32)]) -> Vec<u8> {
    let mut p = vec![0x80, XR, 0, 0];
    p.extend_from_slice(&from.to_be_bytes());
    for (bt, s) in blocks {
        p.extend_from_slice(&[*bt, 0, 0, 2]);
        p.extend_from_slice(&s.to_be_bytes());
        p.extend_from_slice(&[0x33; 4]);
    }
    fix_length(p)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

const SENT: Sent = Sent {
    ssrc: 7,
    packets: 300,
    octets: 24_000,
};

/// The phone's stream (SSRC 7) reaches the carrier renumbered; the phone's own highest
/// sequence number is 0x0002_0010.
const BACK: Came = Came {
    ssrc: 7,
    highest: 0x0002_0010,
};

#[test]
fn a_sender_report_gives_the_counts_of_what_the_leg_got() {
    let compound = [sr(7, 150, 24_005, &[9]), sdes(7)].concat();
    let t = Translation {
        sent: Some(SENT),
        back: None,
    };
    let out = translate(&compound, t).expect("changed");
    assert_eq!(check_rtcp(&out), Ok(2));
    assert_eq!((u32_at(&out, 20), u32_at(&out, 24)), (300, 24_000));
    // The rest as it came: timestamps, the report block about the other stream, SDES.
    assert_eq!(&out[..20], &compound[..20]);
    assert_eq!(&out[28..], &compound[28..]);
}

#[test]
fn a_sender_report_of_another_ssrc_keeps_its_counts() {
    let compound = sr(8, 150, 1_000, &[]);
    let t = Translation {
        sent: Some(SENT),
        back: None,
    };
    assert_eq!(translate(&compound, t), None);
    assert_eq!(translate(&compound, Translation::default()), None);
}

/// The carrier's report on the phone's renumbered stream reaches the phone with the
/// phone's highest sequence number; loss, jitter, LSR and DLSR (its round-trip time) as
/// the carrier said. A block on another stream is left alone.
#[test]
fn a_report_on_a_renumbered_stream_gives_the_senders_highest_number() {
    let t = Translation {
        sent: None,
        back: Some(BACK),
    };
    for (compound, head) in [
        (rr(9, &[7, 8]), RR_HEAD),
        (sr(9, 10, 800, &[7, 8]), SR_HEAD),
    ] {
        let out = translate(&compound, t).expect("changed");
        assert_eq!(check_rtcp(&out), Ok(1));
        assert_eq!(out.len(), compound.len());
        assert_eq!(u32_at(&out, head + 8), 0x0002_0010);
        assert_eq!(&out[..head + 8], &compound[..head + 8], "loss kept");
        assert_eq!(
            &out[head + 12..],
            &compound[head + 12..],
            "jitter, LSR, DLSR, block 2"
        );
    }
    assert_eq!(translate(&rr(9, &[8]), t), None, "no block on the stream");
}

#[test]
fn feedback_naming_our_sequence_numbers_is_not_passed() {
    let t = Translation {
        sent: None,
        back: Some(BACK),
    };
    let compound = [
        rr(9, &[]),
        sdes(9),
        rtpfb(GENERIC_NACK, 9, 7),
        rtpfb(3, 9, 7), // TMMBR: no sequence numbers
        rtpfb(GENERIC_NACK, 9, 8),
        xr(9, &[(1, 7), (4, 0), (7, 7), (6, 7), (2, 8)]),
    ]
    .concat();
    let out = translate(&compound, t).expect("changed");
    assert_eq!(check_rtcp(&out), Ok(5), "{out:?}");
    let want = [
        rr(9, &[]),
        sdes(9),
        rtpfb(3, 9, 7),
        rtpfb(GENERIC_NACK, 9, 8),
        xr(9, &[(4, 0), (7, 7), (2, 8)]),
    ]
    .concat();
    assert_eq!(out, want);
    // An XR with nothing left goes, and a lone NACK leaves nothing to send.
    assert_eq!(translate(&xr(9, &[(1, 7)]), t), Some(Vec::new()));
    assert_eq!(translate(&rtpfb(GENERIC_NACK, 9, 7), t), Some(Vec::new()));
    // Without a renumbered stream back, all of it passes.
    let t = Translation {
        sent: Some(SENT),
        back: None,
    };
    assert_eq!(translate(&compound, t), None);
}

#[test]
fn a_padded_xr_loses_its_padding_with_a_block() {
    let mut p = xr(9, &[(1, 7), (4, 0)]);
    p[0] |= 0x20;
    p.extend_from_slice(&[0, 0, 0, 4]);
    let p = fix_length(p);
    assert!(check_rtcp(&p).is_ok());
    let t = Translation {
        sent: None,
        back: Some(BACK),
    };
    assert_eq!(translate(&p, t), Some(xr(9, &[(4, 0)])));
    // Nothing on the stream: as it came, padding and all.
    let mut q = xr(9, &[(4, 0)]);
    q[0] |= 0x20;
    q.extend_from_slice(&[0, 0, 0, 4]);
    let q = fix_length(q);
    assert_eq!(translate(&q, t), None);
}

#[test]
fn short_or_odd_packets_pass_unharmed() {
    let t = Translation {
        sent: Some(SENT),
        back: Some(BACK),
    };
    for pt in [SR, RR, RTPFB, XR] {
        let short = vec![0x81, pt, 0, 0];
        assert!(check_rtcp(&short).is_ok());
        assert_eq!(translate(&short, t), None, "{pt}");
    }
    // Padding that covers an SR's sender information or an RR's block: nothing written
    // there (the padding's count, in its last octet, would change).
    let mut p = sr(7, 1, 1, &[]);
    p[0] |= 0x20;
    p[27] = 20;
    assert!(check_rtcp(&p).is_ok());
    assert_eq!(translate(&p, t), None);
    let mut p = rr(9, &[7]);
    p[0] |= 0x21;
    p[31] = 12;
    assert!(check_rtcp(&p).is_ok());
    assert_eq!(translate(&p, t), None);
    // A count of blocks larger than the packet holds: the blocks there are read, no more.
    let mut p = rr(9, &[7]);
    p[0] = 0x80 | 5;
    let out = translate(&p, t).expect("changed");
    assert_eq!(u32_at(&out, RR_HEAD + 8), 0x0002_0010);
}
