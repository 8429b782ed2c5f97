//! Learning where one leg's RTP really comes from (symmetric RTP behind NAT).
//!
//! The first accepted packet fixes the source. After that, packets from any other source
//! are dropped, so a stray or injected stream cannot steal the call ("RTP bleed"), unless
//! that source proves it is the peer's new stream: [`RELATCH_AFTER`] consecutive packets
//! from the same new address, all with one SSRC that differs from the latched one (a phone
//! that restarted its media, a call moved to another device behind the same peer).

use std::net::SocketAddr;

/// Consecutive packets a new source must send, with one new SSRC, before it is latched.
pub const RELATCH_AFTER: u8 = 3;

/// The latched source of one leg's RTP.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SourceLatch {
    current: Option<(SocketAddr, u32)>,
    candidate: Option<(SocketAddr, u32, u8)>,
}

impl SourceLatch {
    /// Where this leg's RTP is latched, once a packet has arrived.
    pub fn source(&self) -> Option<SocketAddr> {
        self.current.map(|(a, _)| a)
    }

    /// Whether a packet from `src` carrying `ssrc` belongs to this leg; latches the first
    /// source and re-latches on a verified SSRC change. `ssrc` is `None` for a datagram
    /// too short to be RTP, which never moves the latch.
    pub fn accept(&mut self, src: SocketAddr, ssrc: Option<u32>) -> bool {
        let Some(ssrc) = ssrc else {
            return self.current.is_some_and(|(a, _)| a == src);
        };
        match self.current {
            None => {
                self.current = Some((src, ssrc));
                true
            }
            Some((a, _)) if a == src => {
                // Same address: a restarted stream keeps the latch and adopts its SSRC.
                self.current = Some((src, ssrc));
                self.candidate = None;
                true
            }
            Some((_, latched)) if ssrc == latched => false,
            Some(_) => {
                let seen = match self.candidate {
                    Some((a, s, n)) if a == src && s == ssrc => n.saturating_add(1),
                    _ => 1,
                };
                if seen >= RELATCH_AFTER {
                    self.current = Some((src, ssrc));
                    self.candidate = None;
                    true
                } else {
                    self.candidate = Some((src, ssrc, seen));
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], port))
    }

    #[test]
    fn first_packet_latches_and_other_sources_are_dropped() {
        let mut l = SourceLatch::default();
        assert!(l.accept(addr(4000), Some(7)));
        assert_eq!(l.source(), Some(addr(4000)));
        // Same SSRC from elsewhere (a reflected or spoofed copy) never takes over.
        for _ in 0..10 {
            assert!(!l.accept(addr(5000), Some(7)));
        }
        assert_eq!(l.source(), Some(addr(4000)));
        assert!(l.accept(addr(4000), Some(7)));
    }

    #[test]
    fn new_ssrc_from_new_source_relatches_after_consecutive_packets() {
        let mut l = SourceLatch::default();
        assert!(l.accept(addr(4000), Some(7)));
        for _ in 1..RELATCH_AFTER {
            assert!(!l.accept(addr(6000), Some(9)));
        }
        assert!(l.accept(addr(6000), Some(9)));
        assert_eq!(l.source(), Some(addr(6000)));
        // The old source is now the stranger.
        assert!(!l.accept(addr(4000), Some(7)));
    }

    #[test]
    fn interleaved_packets_from_the_latched_source_reset_the_candidate() {
        let mut l = SourceLatch::default();
        assert!(l.accept(addr(4000), Some(7)));
        for _ in 0..5 {
            assert!(!l.accept(addr(6000), Some(9)));
            assert!(l.accept(addr(4000), Some(7)));
        }
        assert_eq!(l.source(), Some(addr(4000)));
        // A candidate switching SSRC starts its count again.
        assert!(!l.accept(addr(6000), Some(9)));
        assert!(!l.accept(addr(6000), Some(10)));
        assert!(!l.accept(addr(6000), Some(10)));
        assert!(l.accept(addr(6000), Some(10)));
    }

    #[test]
    fn same_source_with_new_ssrc_stays_latched_and_short_datagrams_never_latch() {
        let mut l = SourceLatch::default();
        assert!(!l.accept(addr(4000), None));
        assert_eq!(l.source(), None);
        assert!(l.accept(addr(4000), Some(7)));
        assert!(l.accept(addr(4000), Some(8)));
        assert!(l.accept(addr(4000), None));
        assert!(!l.accept(addr(5000), None));
    }
}
