//! What a source no profile knows (a stranger) may send, judged on a datagram's first
//! bytes before any copy or parse: a response to a request we sent it lately, or, with
//! `[protect] unknown_sources = "reject"`, a request for its one 403.

use std::net::IpAddr;
use std::time::Instant;

use super::{Gate, Inbox};

/// A stranger's message longer than this is not parsed: a request's 403 needs its request
/// line and a few headers, and a response from a stranger (a carrier's second SBC
/// answering from outside every `match`) carries an SDP at most; a 64 KiB one would cost
/// a copy and a parse for nothing.
pub(super) const STRANGER_MAX_BYTES: usize = 16 * 1024;

impl Inbox {
    /// Whether a datagram from `ip`, a source no profile knows, is worth parsing, from its
    /// first bytes alone: the core has nothing for a stranger but a response to a request
    /// we sent it (to a peer's old address after a reload re-addressed it, say; the
    /// transaction layer takes a response only from where its request went), or, with
    /// `[protect] unknown_sources = "reject"`, one 403 to a request that is not an ACK.
    /// Anything else is dropped here, unparsed and uncopied, and counted.
    pub(crate) fn hears_stranger(&self, ip: IpAddr, data: &[u8], now: Instant) -> bool {
        // A request line starts with its method: an upper-case token, then a space (looked
        // for in the first 17 bytes only: a stranger's 64 KiB datagram is not scanned).
        let request = data
            .iter()
            .take(17)
            .position(|&b| b == b' ')
            .is_some_and(|n| (1..=16).contains(&n) && data[..n].iter().all(u8::is_ascii_uppercase));
        let heard = if data.starts_with(b"SIP/2.0 ") {
            if !self.stranger_may_send(ip, StrangerSends::Response, now) {
                crate::ops::metrics::refused("unasked_response");
                return false;
            }
            if !self.strangers_response_goes(data, now) {
                return false;
            }
            // A provisional keeps the window open: it restarts a relayed INVITE's Timer C,
            // and the final answer may come that long after it. Only one to a request of
            // ours (our branch): any other would keep the window open for ever.
            if data.starts_with(b"SIP/2.0 1") && self.carries_our_check(data) {
                self.asked.asked(ip, now);
            }
            true
        } else if request {
            let ack = data.starts_with(b"ACK ");
            if self.stranger_may_send(ip, StrangerSends::Request { ack }, now) {
                // (Counted there when it has no room: not as an unknown source too.)
                return self.room_for_strangers_request(data.len());
            }
            false
        } else {
            false
        };
        if !heard {
            self.tally.count_stranger(ip);
        }
        heard
    }

    /// Whether a stranger's response (from an address we sent a request to lately, or one
    /// sharing its cell of that table) goes on to be parsed and served with accepted work:
    /// no larger than [`STRANGER_MAX_BYTES`], naming our branch as we write it (checked on
    /// its bytes, before a parse: a peer's response is checked after, where it may be
    /// spaced or capitalised), and within one rate for all strangers' responses together
    /// (`[protect] source_rate`). Before, one of our branches (a host that saw our Via)
    /// sent from spoofed addresses went to the accepted work's queue at each address's own
    /// rate, without bound, ahead of the peers' own answers. The price: such a flood now
    /// takes that one rate from a stranger's real answers (a carrier's second SBC outside
    /// every `match`, which belongs in its `match`), and a stranger's answer written oddly
    /// (bare LF line ends, a folded or spaced top Via) is dropped as naming no branch.
    fn strangers_response_goes(&self, data: &[u8], now: Instant) -> bool {
        if data.len() > STRANGER_MAX_BYTES {
            self.count_oversize();
            return false;
        }
        if self.tags.is_some() && !self.carries_our_check(data) {
            crate::ops::metrics::refused("unknown_branch");
            return false;
        }
        let paced = self.strangers_answers.load();
        if let Some(g) = paced.as_ref()
            && g.check(IpAddr::from([0, 0, 0, 0]), now, false) != Gate::Pass
        {
            crate::ops::metrics::refused("strangers_rate");
            return false;
        }
        true
    }

    /// Whether a stranger's request of `len` bytes, which `reject` mode answers with one
    /// 403, has room: decided before it is copied and parsed, so that spoofed strangers
    /// (each source its own rate) cost a look at their first bytes, not a parse on the
    /// signalling thread, once their queue is full; and no larger than a 403 needs to read
    /// (what overflows it is counted as `too_large`).
    fn room_for_strangers_request(&self, len: usize) -> bool {
        if len > STRANGER_MAX_BYTES {
            self.count_oversize();
            return false;
        }
        if self.strangers.capacity() == 0 {
            self.count_queue_full();
            return false;
        }
        true
    }

    /// Whether a source no profile knows may be heard with what it sends: a response to a
    /// request we sent it lately, or, with `[protect] unknown_sources = "reject"`, a request
    /// that is not an ACK (for its 403). The one rule for its datagrams' first bytes
    /// ([`Inbox::hears_stranger`]) and for each message on its TCP connection.
    pub(crate) fn stranger_may_send(&self, ip: IpAddr, sends: StrangerSends, now: Instant) -> bool {
        match sends {
            StrangerSends::Response => self.asked.may_answer(ip, now),
            StrangerSends::Request { ack } => {
                !ack && self.config.load().protect.unknown_sources
                    == crate::config::UnknownSources::Reject
            }
        }
    }
}

/// What a stranger sends, as [`Inbox::stranger_may_send`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrangerSends {
    Response,
    Request { ack: bool },
}
