//! RTCP across a stream whose RTP the gateway renumbers (the repacketiser, or what it
//! numbers on after repacketising stopped): each leg sees our packets, not the sender's, so
//! what RTCP says of packets is put in terms of those each side knows (RFC 3550 §7.2, a
//! translator that changes the packets):
//! - a sender report toward the renumbered leg gives the packet and octet counts of what
//!   the gateway sent that leg of the SSRC ([`Sent`]);
//! - that leg's reception reports on the stream count our sequence numbers: on their way
//!   to the sender, a report block's extended highest sequence number becomes the highest
//!   the gateway got from the sender ([`Came`]); its loss, jitter and the round-trip fields
//!   (LSR, DLSR) stay, as they hold for the hop they describe, so both sides keep their
//!   round-trip time;
//! - feedback that names our sequence numbers cannot be put in the sender's: a generic NACK
//!   (RFC 4585) on the stream, and the extended report blocks that list or range over
//!   sequence numbers (RFC 3611: loss and duplicate run lengths, receipt times, statistics
//!   summary), are not passed.
//!
//! Everything else of the compound passes as it came.

use super::repacketize::Sent;
use super::sdes::split;

const SR: u8 = 200;
const RR: u8 = 201;
/// Transport-layer feedback (RFC 4585); format 1 is the generic NACK.
const RTPFB: u8 = 205;
const GENERIC_NACK: u8 = 1;
/// Extended reports (RFC 3611).
const XR: u8 = 207;
/// XR block types that name sequence numbers: loss RLE, duplicate RLE, packet receipt
/// times, statistics summary. Each has the SSRC of its source right after its header.
const XR_BY_SEQUENCE: [u8; 4] = [1, 2, 3, 6];
/// Header and sender SSRC.
const RR_HEAD: usize = 8;
/// Header, sender SSRC and sender information.
const SR_HEAD: usize = 28;
/// A reception report block; its source's SSRC first, the extended highest sequence
/// number at 8.
const BLOCK: usize = 24;

/// The stream a compound's sender gets renumbered by the gateway: its SSRC, and the highest
/// sequence number the gateway got of it, extended, in its own sender's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Came {
    pub ssrc: u32,
    pub highest: u32,
}

/// How a compound is put to its leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Translation {
    /// What went toward the leg this compound goes to, of its sender's stream: `None`
    /// when the gateway does not renumber that stream.
    pub sent: Option<Sent>,
    /// The stream the compound's sender gets renumbered, if any: its reports on it count
    /// our numbers.
    pub back: Option<Came>,
}

/// `datagram` (a compound `check_rtcp` accepted) as `t` says; `None` when it goes as it
/// came. The result may be empty (a lone NACK on a renumbered stream): nothing is sent then.
pub fn translate(datagram: &[u8], t: Translation) -> Option<Vec<u8>> {
    if t == Translation::default() {
        return None;
    }
    let packets = split(datagram)?;
    let mut out = Vec::with_capacity(datagram.len());
    let mut changed = false;
    for p in packets {
        let at = out.len();
        match p.get(1).copied() {
            Some(RTPFB) if t.back.is_some_and(|b| is_nack_on(p, b.ssrc)) => changed = true,
            Some(XR) => match t.back {
                Some(b) => changed |= push_xr(&mut out, p, b.ssrc),
                None => out.extend_from_slice(p),
            },
            Some(kind @ (SR | RR)) if unpadded(p) >= head_of(kind) => {
                let body = unpadded(p);
                out.extend_from_slice(p);
                if kind == SR
                    && let Some(s) = t.sent
                    && p.get(4..8) == Some(&s.ssrc.to_be_bytes()[..])
                {
                    out[at + 20..at + 24].copy_from_slice(&s.packets.to_be_bytes());
                    out[at + 24..at + 28].copy_from_slice(&s.octets.to_be_bytes());
                    changed = true;
                }
                changed |= (t.back)
                    .is_some_and(|b| renumber_blocks(&mut out[at..at + body], head_of(kind), b));
            }
            _ => out.extend_from_slice(p),
        }
    }
    changed.then_some(out)
}

/// The bytes before an SR's or RR's report blocks.
fn head_of(kind: u8) -> usize {
    if kind == SR { SR_HEAD } else { RR_HEAD }
}

/// The length of packet `p` without its padding (RFC 3550 §6.4.1: the P bit, the count in
/// its last octet; `check_rtcp` keeps it within the packet). Nothing is written there.
fn unpadded(p: &[u8]) -> usize {
    match p.last() {
        Some(&n) if p[0] & 0x20 != 0 => p.len().saturating_sub(usize::from(n)),
        _ => p.len(),
    }
}

/// In an SR or RR `p` (`head` bytes before its blocks), each block on `b`'s stream given
/// its highest sequence number in the sender's numbers; true if any was.
fn renumber_blocks(p: &mut [u8], head: usize, b: Came) -> bool {
    let count = usize::from(p[0] & 0x1f);
    let mut changed = false;
    for i in 0..count {
        let at = head + i * BLOCK;
        let Some(block) = p.get_mut(at..at + BLOCK) else {
            break;
        };
        if block[..4] == b.ssrc.to_be_bytes() {
            block[8..12].copy_from_slice(&b.highest.to_be_bytes());
            changed = true;
        }
    }
    changed
}

/// Whether RTPFB packet `p` is a generic NACK on `ssrc` (its media source at 8).
fn is_nack_on(p: &[u8], ssrc: u32) -> bool {
    p[0] & 0x1f == GENERIC_NACK && p.get(8..12) == Some(&ssrc.to_be_bytes()[..])
}

/// XR packet `p` onto `out` without its blocks on `ssrc` that name sequence numbers (none
/// left: not at all); true when any was left out. Blocks that do not add up end the packet
/// there.
fn push_xr(out: &mut Vec<u8>, p: &[u8], ssrc: u32) -> bool {
    let start = out.len();
    let Some(head) = p.get(..8) else {
        out.extend_from_slice(p);
        return false;
    };
    out.extend_from_slice(head);
    // Padding (only on a compound's last packet) follows the blocks.
    let body = &p[..unpadded(p).max(8)];
    let (mut at, mut kept, mut cut) = (8, 0, false);
    while let Some(h) = body.get(at..at + 4) {
        let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        let Some(block) = body.get(at..at + len) else {
            cut = true;
            break;
        };
        if XR_BY_SEQUENCE.contains(&h[0]) && block.get(4..8) == Some(&ssrc.to_be_bytes()[..]) {
            cut = true;
        } else {
            out.extend_from_slice(block);
            kept += 1;
        }
        at += len;
    }
    if !cut {
        out.truncate(start);
        out.extend_from_slice(p);
        return false;
    }
    if kept == 0 {
        out.truncate(start);
        return true;
    }
    // Version 2, no padding (it sat at the end, now gone), the new length.
    out[start] = 0x80;
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    true
}

#[cfg(test)]
mod tests;
