//! RTCP on its way to a leg whose RTP the gateway renumbers (the repacketiser, or what it
//! numbers on after repacketising stopped): the leg sees our packets, not the sender's, so
//! what RTCP says of packets is put in terms of ours (RFC 3550 §7.2, a translator that
//! changes the packets):
//! - a sender report's packet and octet counts become what the repacketiser sent of that
//!   SSRC toward the leg ([`Sent`]);
//! - reports by a leg about a stream it gets renumbered (reception report blocks, generic
//!   NACKs naming sequence numbers, extended reports) would name our sequence numbers to
//!   the sender, which never sent them: the blocks are taken out of SR and RR (their
//!   sender information stays, so lip sync and the other side's round-trip time keep
//!   working), and NACK and XR packets are not passed.
//!
//! Everything else of the compound passes as it came.

use super::repacketize::Sent;
use super::sdes::split;

const SR: u8 = 200;
const RR: u8 = 201;
/// Transport-layer feedback (RFC 4585): generic NACK names sequence numbers.
const RTPFB: u8 = 205;
/// Extended reports (RFC 3611): loss and duplicate run lengths by sequence number.
const XR: u8 = 207;
/// Header and sender SSRC.
const RR_HEAD: usize = 8;
/// Header, sender SSRC and sender information.
const SR_HEAD: usize = 28;

/// How a compound is put to its leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Translation {
    /// What went toward the leg this compound goes to, of its sender's stream: `None`
    /// when the gateway does not renumber that stream.
    pub sent: Option<Sent>,
    /// The compound's sender gets its RTP renumbered by the gateway: its reports on it
    /// are in our numbers.
    pub reports_renumbered: bool,
}

impl Translation {
    /// Nothing to put in other terms.
    pub fn is_none(&self) -> bool {
        self.sent.is_none() && !self.reports_renumbered
    }
}

/// `datagram` (a compound `check_rtcp` accepted) as `t` says; `None` when it goes as it
/// came (nothing to change, or lengths that do not add up, which `check_rtcp` rules out).
/// The result may be empty (a lone NACK to a renumbered sender): nothing is sent then.
pub fn translate(datagram: &[u8], t: Translation) -> Option<Vec<u8>> {
    if t.is_none() {
        return None;
    }
    let packets = split(datagram)?;
    let mut out = Vec::with_capacity(datagram.len());
    let mut changed = false;
    for p in packets {
        let pt = p.get(1).copied();
        match pt {
            Some(RTPFB | XR) if t.reports_renumbered => changed = true,
            Some(SR) if p.len() >= SR_HEAD => {
                let at = out.len();
                changed |= push_report(&mut out, p, SR_HEAD, t.reports_renumbered);
                if let Some(s) = t.sent
                    && p.get(4..8) == Some(&s.ssrc.to_be_bytes()[..])
                {
                    out[at + 20..at + 24].copy_from_slice(&s.packets.to_be_bytes());
                    out[at + 24..at + 28].copy_from_slice(&s.octets.to_be_bytes());
                    changed = true;
                }
            }
            Some(RR) if p.len() >= RR_HEAD => {
                changed |= push_report(&mut out, p, RR_HEAD, t.reports_renumbered);
            }
            _ => out.extend_from_slice(p),
        }
    }
    changed.then_some(out)
}

/// An SR or RR (`head` bytes before its report blocks) onto `out`: whole, or, with
/// `strip`, without its report blocks and what follows them (profile extensions, padding).
/// True when it was cut.
fn push_report(out: &mut Vec<u8>, p: &[u8], head: usize, strip: bool) -> bool {
    if !strip || p.len() == head {
        out.extend_from_slice(p);
        return false;
    }
    let at = out.len();
    out.extend_from_slice(&p[..head]);
    // Version 2, no padding, no report blocks; the length in 32-bit words less one.
    out[at] = 0x80;
    let words = (head / 4 - 1) as u16;
    out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
    true
}

#[cfg(test)]
mod tests;
