//! Whether a message may be looked at: the source guard's rate per address, and the checks
//! our identifiers carry, which let a peer's accepted work past a flood in its name.

use std::net::IpAddr;
use std::time::Instant;

use super::{Gate, Inbox, Tally};

/// The largest datagram that passes a source's rate for carrying a check of ours: a real
/// answer or in-dialog request (SDP, a SIP-I body) is a few kilobytes; 64 KiB ones replayed
/// by whoever holds a branch of ours would each take that much of the urgent queue.
pub(crate) const SPARED_MAX_BYTES: usize = 16 * 1024;

impl Inbox {
    /// Whether a message from `ip` may be looked at (the source guard); counted when not.
    /// `tcp`: it came on a connection, so its source is not spoofed.
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant, tcp: bool) -> bool {
        self.admit_unless_ours(ip, now, tcp, || false)
    }

    /// A datagram from `ip`: [`Inbox::admit`], and a peer's over its rate that carries a
    /// check of ours ([`Inbox::carries_our_check`]) passes too, if it is no larger than
    /// [`SPARED_MAX_BYTES`] and within a second rate as large as the first.
    pub(crate) fn admit_datagram(&self, ip: IpAddr, now: Instant, raw: &[u8]) -> bool {
        self.admit_unless_ours(ip, now, false, || {
            raw.len() <= SPARED_MAX_BYTES
                && (self.carries_our_check(raw) || self.cancels_an_invite_let_in(ip, now, raw))
        })
    }

    /// Whether `raw` is the CANCEL of an INVITE from `ip` let in lately (its top Via,
    /// Call-ID and CSeq number, which a CANCEL repeats, RFC 3261 §9.1): nobody off the path
    /// knows them, so a flood spoofed in the peer's name does not cost a caller its
    /// CANCEL. A call that rang longer than the table keeps an INVITE (64 s) takes its
    /// chance against the rate, as any other message.
    fn cancels_an_invite_let_in(&self, ip: IpAddr, now: Instant, raw: &[u8]) -> bool {
        let crate::sip::fast::Peek::Cancel { head, branch } = crate::sip::fast::peek(raw) else {
            return false;
        };
        let ov = &self.overload;
        (ov.cancelled_invite_key(ip, branch, &head))
            .is_some_and(|key| ov.refused_here(key, now) == Some(false))
    }

    fn admit_unless_ours(
        &self,
        ip: IpAddr,
        now: Instant,
        tcp: bool,
        ours: impl Fn() -> bool,
    ) -> bool {
        let cfg = self.config.load();
        // The front carries every peer's traffic: its rate is theirs together, not one
        // source's (each peer is held to its own rate at the front: the shipped one's pike).
        if cfg.is_front_ip(ip) {
            return true;
        }
        // A peer: an address a profile matches, one a profile sends to (a carrier may
        // answer from an SBC outside its `match`), or a moved peer's old one while its
        // calls last. A burst in its name costs it the excess, never a cool-down that
        // would drop its answers to our calls.
        let peer = self.knows_source(ip) || cfg.is_peer_address(ip);
        // A peer's own connection is paced instead, by its slot (`tcp::Slot::pace`), apart
        // from this guard: a spoofed UDP flood in its name must not slow its connection.
        if peer && tcp {
            return true;
        }
        let guard = self.guard.load();
        let Some(g) = guard.as_ref() else {
            return true;
        };
        // Nobody off the path makes a check of ours: a flood spoofed in the name of a peer,
        // or of an address the gateway sent a request to lately (a callee's Contact outside
        // every `match`), takes its rate, and its answers and in-dialog requests still pass
        // (a stranger's cool-down included: before, 2,000 spoofed datagrams every 5 s in a
        // Contact's name muted its answers to our BYE and refreshes, and calls ended 408).
        // Whoever holds one (the peer itself, a host on the path) could replay it without
        // end: what passes so is held to a second rate, as large as the first.
        let spared = || (peer || self.asked.may_answer(ip, now)) && ours() && g.spare(ip, !peer);
        match g.check(ip, now, !peer) {
            Gate::Pass => true,
            Gate::Tripped | Gate::Blocked if spared() => true,
            Gate::Tripped => {
                Tally::bump(&self.tally.sources_tripped);
                Tally::bump(&self.tally.source_blocked);
                crate::ops::metrics::refused("source_rate");
                false
            }
            Gate::Blocked => {
                Tally::bump(&self.tally.source_blocked);
                crate::ops::metrics::refused("source_rate");
                false
            }
        }
    }

    /// Whether `raw` carries a check of ours (`sip::TagKey`): a response to a request we
    /// sent (its top Via branch), or a request in one of our dialogs (its To tag, with its
    /// Call-ID). Before, a flood spoofed in a carrier's name (20,000 junk datagrams a
    /// second) cost it nine in ten of its real messages past the guard, and calls ended for
    /// the ACKs lost.
    pub(crate) fn carries_our_check(&self, raw: &[u8]) -> bool {
        let Some(key) = &self.tags else {
            return false;
        };
        let ids = crate::sip::fast::ids(raw);
        if raw.starts_with(b"SIP/2.0 ") {
            return ids.branch.is_some_and(|b| key.our_branch(b));
        }
        let text = |b| std::str::from_utf8(b).ok();
        match (ids.to_tag.and_then(text), ids.call_id.and_then(text)) {
            // The ACK of one of our refusals names its tag: lost to a flood, the refusal
            // is resent and its transaction kept for 32 s (Timer H) rather than 5 (Timer I).
            (Some(tag), Some(call_id)) => {
                key.ours(tag, call_id)
                    || (raw.starts_with(b"ACK ")
                        && key.is(crate::sip::TagKind::Refusal, tag, call_id))
            }
            _ => false,
        }
    }
}
