use super::*;
use crate::media::check_rtcp;

/// A report block about `ssrc` (the other fields arbitrary but recognisable).
fn block(ssrc: u32) -> Vec<u8> {
    let mut b = ssrc.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x11; 20]);
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

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

const SENT: Sent = Sent {
    ssrc: 7,
    packets: 300,
    octets: 24_000,
};

#[test]
fn a_sender_report_gives_the_counts_of_what_the_leg_got() {
    let compound = [sr(7, 150, 24_000 + 5, &[9]), sdes(7)].concat();
    let t = Translation {
        sent: Some(SENT),
        reports_renumbered: false,
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
        reports_renumbered: false,
    };
    assert_eq!(translate(&compound, t), None);
    assert_eq!(translate(&compound, Translation::default()), None);
}

#[test]
fn reports_on_a_renumbered_stream_lose_their_blocks_and_feedback() {
    let nack = fix_length(vec![0x81, RTPFB, 0, 0, 0, 0, 0, 9, 0, 0, 0, 7, 0, 5, 0, 0]);
    let xr = fix_length(vec![0x80, XR, 0, 0, 0, 0, 0, 9]);
    let compound = [rr(9, &[7, 8]), sdes(9), nack, xr].concat();
    let t = Translation {
        sent: None,
        reports_renumbered: true,
    };
    let out = translate(&compound, t).expect("changed");
    assert_eq!(check_rtcp(&out), Ok(2), "{out:?}");
    assert_eq!(&out[..8], &[0x80, RR, 0, 1, 0, 0, 0, 9]);
    assert_eq!(&out[8..], &sdes(9)[..]);

    // An SR keeps its sender information (lip sync, the far side's round-trip time).
    let compound = sr(9, 10, 800, &[7]);
    let out = translate(&compound, t).expect("changed");
    assert_eq!(check_rtcp(&out), Ok(1));
    assert_eq!(out.len(), SR_HEAD);
    assert_eq!(out[0], 0x80);
    assert_eq!(&out[4..], &compound[4..SR_HEAD]);

    // A lone NACK (reduced-size RTCP) leaves nothing to send.
    let lone = fix_length(vec![0x81, RTPFB, 0, 0, 0, 0, 0, 9, 0, 0, 0, 7, 0, 5, 0, 0]);
    assert_eq!(translate(&lone, t), Some(Vec::new()));
}

#[test]
fn a_padded_report_cut_short_drops_its_padding() {
    // RR with one block and 4 bytes of padding (P bit, last octet = 4).
    let mut p = rr(9, &[7]);
    p[0] |= 0x20;
    p.extend_from_slice(&[0, 0, 0, 4]);
    let p = fix_length(p);
    assert!(check_rtcp(&p).is_ok());
    let t = Translation {
        sent: None,
        reports_renumbered: true,
    };
    let out = translate(&p, t).expect("changed");
    assert_eq!(out, vec![0x80, RR, 0, 1, 0, 0, 0, 9]);
}

#[test]
fn both_at_once_and_short_packets_pass_unharmed() {
    let compound = [sr(7, 1, 1, &[9]), sdes(7)].concat();
    let t = Translation {
        sent: Some(SENT),
        reports_renumbered: true,
    };
    let out = translate(&compound, t).expect("changed");
    assert_eq!(check_rtcp(&out), Ok(2));
    assert_eq!(out[0] & 0x1f, 0);
    assert_eq!((u32_at(&out, 20), u32_at(&out, 24)), (300, 24_000));

    // An SR or RR too short to be one passes untouched (no panic on a short body).
    for pt in [SR, RR] {
        let short = vec![0x81, pt, 0, 0];
        assert!(check_rtcp(&short).is_ok());
        assert_eq!(translate(&short, t), None);
    }
}
