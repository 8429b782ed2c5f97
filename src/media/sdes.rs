//! RTCP source descriptions (SDES, RFC 3550 §6.5) toward an anchored leg. An endpoint's SDES
//! names it: CNAME (`sip:1001@<its IP>`), TOOL (`Linphonec/5.1.65`), NAME, EMAIL, PHONE, LOC,
//! NOTE. The relay forwards RTCP, so every SDES chunk is rewritten to a single CNAME of the
//! gateway's choosing; the other packets of the compound (reports, BYE, APP) pass as they
//! are, and every length stays valid.

/// RTCP packet type of SDES.
const SDES: u8 = 202;
/// SDES item type of CNAME; 0 ends a chunk's item list.
const CNAME: u8 = 1;
const END: u8 = 0;

/// `datagram` (a compound RTCP packet `check_rtcp` accepted) with every SDES chunk reduced to
/// the CNAME `cname` (at most 255 bytes, as an SDES item can carry); `None` when it holds no
/// SDES packet (forward it as it is). An SDES packet whose chunks cannot be read is left out
/// of the result rather than forwarded. The result is at most one chunk of ours longer than
/// `datagram`: a compound that would grow more (many empty chunks, each given our CNAME, a
/// few bytes in and several times as many out) goes on without its SDES (its reports still
/// pass; empty when it had nothing else, and nothing is sent).
pub fn scrub_sdes(datagram: &[u8], cname: &[u8]) -> Option<Vec<u8>> {
    let cname = cname.get(..cname.len().min(255))?;
    let packets = split(datagram)?;
    if !packets.iter().any(|p| p.get(1) == Some(&SDES)) {
        return None;
    }
    let mut out = Vec::with_capacity(datagram.len());
    for &p in &packets {
        if p.get(1) != Some(&SDES) {
            out.extend_from_slice(p);
            continue;
        }
        if let Some(ssrcs) = chunk_sources(p) {
            write_sdes(&mut out, &ssrcs, cname);
        }
    }
    // One source's CNAME may be longer than the one it replaces; more than that is no
    // endpoint's report but a relay being used to multiply bytes.
    let one_chunk = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    if out.len() > datagram.len() + one_chunk {
        out.clear();
        for p in packets.iter().filter(|p| p.get(1) != Some(&SDES)) {
            out.extend_from_slice(p);
        }
    }
    Some(out)
}

/// The packets of a compound, each with its header; `None` if the lengths do not add up.
pub(super) fn split(datagram: &[u8]) -> Option<Vec<&[u8]>> {
    let mut packets = Vec::new();
    let mut at = 0usize;
    while at < datagram.len() {
        let words = u16::from_be_bytes([*datagram.get(at + 2)?, *datagram.get(at + 3)?]);
        let end = at.checked_add((usize::from(words) + 1) * 4)?;
        packets.push(datagram.get(at..end)?);
        at = end;
    }
    Some(packets)
}

/// The SSRC/CSRC of each chunk of an SDES packet, or `None` if a chunk runs past the packet.
fn chunk_sources(p: &[u8]) -> Option<Vec<[u8; 4]>> {
    let count = usize::from(p.first()? & 0x1f);
    // Padding (P bit) sits at the end of the packet, after the chunks.
    let padding = if p.first()? & 0x20 != 0 {
        usize::from(*p.last()?)
    } else {
        0
    };
    let body = p.get(4..p.len().checked_sub(padding)?)?;
    let mut ssrcs = Vec::with_capacity(count);
    let mut at = 0usize;
    for _ in 0..count {
        let s = body.get(at..at + 4)?;
        ssrcs.push([s[0], s[1], s[2], s[3]]);
        at += 4;
        // Items until the END item, then padding to the next 32-bit boundary.
        loop {
            match *body.get(at)? {
                END => {
                    at += 1;
                    break;
                }
                _ => at += 2 + usize::from(*body.get(at + 1)?),
            }
        }
        at = at.div_ceil(4) * 4;
    }
    Some(ssrcs)
}

/// One SDES packet: for each source, a CNAME item and the END item, padded to 32 bits.
fn write_sdes(out: &mut Vec<u8>, ssrcs: &[[u8; 4]], cname: &[u8]) {
    let start = out.len();
    // At most 31 sources per packet (the 5-bit count); more come in further packets.
    for group in ssrcs.chunks(31) {
        let head = out.len();
        out.extend_from_slice(&[0x80 | group.len() as u8, SDES, 0, 0]);
        for ssrc in group {
            out.extend_from_slice(ssrc);
            out.push(CNAME);
            out.push(cname.len() as u8);
            out.extend_from_slice(cname);
            out.push(END);
            while !(out.len() - head).is_multiple_of(4) {
                out.push(END);
            }
        }
        let words = ((out.len() - head) / 4 - 1) as u16;
        out[head + 2..head + 4].copy_from_slice(&words.to_be_bytes());
    }
    debug_assert!((out.len() - start).is_multiple_of(4));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::check_rtcp;

    /// A receiver report (no blocks) for SSRC 7.
    const RR: [u8; 8] = [0x80, 201, 0, 1, 0, 0, 0, 7];

    /// An SDES packet: one chunk per (ssrc, items), items as (type, text).
    fn sdes(chunks: &[(u32, &[(u8, &str)])]) -> Vec<u8> {
        let mut p = vec![0x80 | chunks.len() as u8, SDES, 0, 0];
        for (ssrc, items) in chunks {
            let start = p.len();
            p.extend_from_slice(&ssrc.to_be_bytes());
            for (t, text) in *items {
                p.push(*t);
                p.push(text.len() as u8);
                p.extend_from_slice(text.as_bytes());
            }
            p.push(END);
            while !(p.len() - start).is_multiple_of(4) {
                p.push(END);
            }
        }
        let words = (p.len() / 4 - 1) as u16;
        p[2..4].copy_from_slice(&words.to_be_bytes());
        p
    }

    #[test]
    fn every_item_naming_the_endpoint_becomes_our_cname() {
        let mut compound = RR.to_vec();
        compound.extend(sdes(&[(
            7,
            &[
                (1, "sip:1001@10.0.0.5"),
                (6, "Linphonec/5.1.65"),
                (2, "Alice"),
                (3, "alice@example.com"),
                (4, "+15551234"),
                (5, "Room 42"),
                (7, "hello"),
            ],
        )]));
        assert!(check_rtcp(&compound).is_ok());
        let out = scrub_sdes(&compound, b"trunkgate@198.51.100.1").unwrap();
        assert_eq!(check_rtcp(&out), Ok(2), "a valid compound of two packets");
        assert_eq!(&out[..8], &RR, "the report passes as it was");
        let text = String::from_utf8_lossy(&out);
        for gone in [
            "10.0.0.5",
            "Linphonec",
            "Alice",
            "example.com",
            "5551234",
            "Room",
            "hello",
        ] {
            assert!(!text.contains(gone), "{gone} still there");
        }
        assert_eq!(
            &out[8..],
            &sdes(&[(7, &[(1, "trunkgate@198.51.100.1")])])[..]
        );
    }

    #[test]
    fn several_chunks_keep_their_sources_and_no_sdes_means_nothing_to_do() {
        let p = sdes(&[
            (1, &[(1, "a@10.0.0.1")]),
            (2, &[(6, "x"), (1, "b@10.0.0.2")]),
        ]);
        let out = scrub_sdes(&p, b"gw").unwrap();
        assert_eq!(out, sdes(&[(1, &[(1, "gw")]), (2, &[(1, "gw")])]));
        assert_eq!(scrub_sdes(&RR, b"gw"), None);
    }

    /// Empty chunks (a source and END: 8 bytes) each given our CNAME grew a compound 3 to 6
    /// times over toward a destination the sender's SDP may name: such a compound goes on
    /// without its SDES, its report kept. One source's CNAME longer than the one it
    /// replaces still goes.
    #[test]
    fn a_compound_that_would_grow_more_than_one_chunk_loses_its_sdes() {
        let cname = b"trunkgate@2001:db8:ffff:ffff:ffff:ffff:ffff:ffff";
        let empty: Vec<(u32, &[(u8, &str)])> = (0..20).map(|s| (s, &[][..])).collect();
        let mut compound = RR.to_vec();
        compound.extend(sdes(&empty));
        assert!(check_rtcp(&compound).is_ok());
        assert_eq!(scrub_sdes(&compound, cname), Some(RR.to_vec()));
        assert_eq!(scrub_sdes(&sdes(&empty), cname), Some(Vec::new()));
        // One endpoint's report with a short CNAME: ours is longer, and it goes.
        let mut one = RR.to_vec();
        one.extend(sdes(&[(7, &[(1, "a@b")])]));
        let out = scrub_sdes(&one, cname).unwrap();
        assert!(out.len() > one.len());
        assert_eq!(check_rtcp(&out), Ok(2));
    }

    #[test]
    fn an_unreadable_sdes_is_left_out_not_forwarded() {
        let mut broken = sdes(&[(7, &[(1, "sip:1001@10.0.0.5")])]);
        // The item claims more bytes than the chunk has: no END before the packet ends.
        broken[9] = 200;
        let mut compound = RR.to_vec();
        compound.extend(&broken);
        assert!(
            check_rtcp(&compound).is_ok(),
            "the compound's lengths are fine"
        );
        assert_eq!(scrub_sdes(&compound, b"gw").unwrap(), RR.to_vec());
    }
}
