//! What each leg's peer takes and is told: the methods it accepts (its `Allow`, or its
//! profile's `[sip] allow`), and a connected identity the other leg sent in an UPDATE the
//! gateway answered itself.

use super::Side;
use super::state::Call;
use crate::sip::{Hdr, Method};

impl Call {
    /// Our `Allow` toward the peer on `side` (`interop::egress::allow_for` its profile and
    /// the other leg).
    pub(super) fn allow_toward(&self, side: Side) -> &'static str {
        self.profile(side)
            .map_or(crate::interop::egress::ALLOW, |p| {
                crate::interop::egress::allow_for(p, self.other_is_trunk(side))
            })
    }

    /// Whether the other leg's peer is a trunk, or not known yet.
    pub(super) fn other_is_trunk(&self, side: Side) -> bool {
        self.profile(side.other())
            .is_none_or(|p| p.role == crate::config::Role::Trunk)
    }

    /// Whether the peer on `side` may be sent `method`: its profile's `[sip] allow` when
    /// set, else the `Allow` it sent (unknown counts as yes, RFC 3261 §20.5); either way not
    /// once it answered one `405` or `501` in this call (before, a profile's `allow` listing
    /// INFO had every DTMF digit relayed and refused there, one round trip each).
    pub fn peer_takes(&self, side: Side, method: &Method) -> bool {
        match self.profile(side).and_then(|p| p.allow.as_ref()) {
            Some(list) => {
                list.iter().any(|m| m == method.as_str())
                    && self
                        .dialog(side)
                        .is_none_or(|d| !d.peer_refused.contains(method.as_str()))
            }
            None => self.dialog(side).is_none_or(|d| d.peer_allows(method)),
        }
    }

    /// Whether the peer on `side` is a trunk: trusted with the number parameters that route
    /// or bill a call (`sip::NumberUri::trusted_params`).
    pub fn is_trunk(&self, side: Side) -> bool {
        self.sender(side).trunk
    }

    /// What the gateway believes of the peer on `side` ([`crate::interop::egress::Sender`]).
    pub fn sender(&self, side: Side) -> crate::interop::egress::Sender {
        crate::interop::egress::Sender {
            private: self.marks.id_private(side),
            ..crate::interop::egress::Sender::of(self.profile(side).map(|p| &**p))
        }
    }

    /// A message from `side`'s peer, not believed (`trust_asserted = false`), carries no ISDN
    /// signalling on: judged by the call's own peer for that side. The check as messages
    /// come in goes by source address, which leaves some senders unknown (a front's
    /// unstamped response, a peer a reload moved) and judged believed. False when its body
    /// could not be taken apart ([`crate::interop::isdn::Inseparable`]: its body is gone).
    pub(super) fn unbelieved_isdn<M: crate::sip::Body>(&self, side: Side, msg: &mut M) -> bool {
        // (Most messages carry no body, or come from a believed peer: nothing to look at.)
        !msg.body().is_empty()
            && !self.profile(side).is_some_and(|p| p.headers.trust_asserted)
            && crate::interop::isdn::withhold(msg).is_err()
    }

    /// A message from `side` said (with its `Privacy`) whether its party's identity is
    /// withheld: the dialog's later messages from that side that say nothing (a re-INVITE,
    /// an UPDATE, the 200 after a private 180) are judged by it (RFC 3323 §4.2 asks it for
    /// the whole dialog), and one that says `none` lifts it.
    /// (`tag`: the callee's own tag on the message, To of a response or From of a request;
    /// unused for the caller, whose dialog is one.) A callee's branch speaks for itself: a
    /// message from a branch, before the answer, that says nothing is judged by what that
    /// branch last said (nothing: not private), not by the branch heard from in between
    /// (`Forks::privacy`); after the answer only the answering branch counts (a losing
    /// branch's late 2xx is hung up). Before, one flag followed the branch heard last: a
    /// branch's `Privacy: id` was lost once another spoke, and its 200 showed its identity.
    pub(super) fn note_privacy(&mut self, side: Side, tag: Option<&str>, lines: &[String]) {
        let followed = self.b.as_ref().and_then(|d| d.remote_tag.as_deref());
        let branch = tag.filter(|_| side == Side::B);
        let same = branch.is_none() || branch == followed;
        if !same && self.phase.is_up() {
            return;
        }
        // The followed branch's word is kept for when it speaks again.
        if let (Some(_), false, Some(followed)) = (branch, same, followed) {
            let (followed, private) = (followed.to_owned(), self.marks.id_private(side));
            let forks = self.forks.get_or_insert_with(Default::default);
            forks.note_private(&followed, private);
        }
        let said = branch.and_then(|t| self.forks.as_deref()?.said_private(t));
        let private = match (lines.is_empty(), said) {
            (false, _) => crate::interop::headers::asks_id_privacy(lines),
            (true, Some(said)) => said,
            (true, None) if same => return,
            (true, None) => false,
        };
        self.marks.set_id_private(side, private);
        if let (Some(t), Some(forks)) = (branch, self.forks.as_deref_mut()) {
            forks.note_private(t, private);
        }
    }

    /// Whether the peer on `side` said (or its profile says) it takes `method`: unknown
    /// counts as no.
    pub fn peer_lists(&self, side: Side, method: &Method) -> bool {
        let listed = |l: &Vec<String>| l.iter().any(|m| m == method.as_str());
        match self.profile(side).and_then(|p| p.allow.as_ref()) {
            Some(list) => listed(list),
            None => self
                .dialog(side)
                .and_then(|d| d.peer_allows)
                .is_some_and(|a| a.contains(method.as_str())),
        }
    }

    /// The connected identity (P-Asserted-Identity) of `req`, answered here, is kept for the
    /// next message toward `side`: unless its sender is outside the trust domain (RFC 3325
    /// §5), or its owner asked for privacy (`Privacy: id`) and that side's peer is outside
    /// it (§7).
    pub(super) fn keep_identity_for(&mut self, side: Side, req: &crate::sip::Request) {
        // Only as many as go on (two): the rest of a long list would sit with the call.
        let pai: Vec<String> = (req.header_lines(&Hdr::P_ASSERTED_IDENTITY).iter())
            .flat_map(|l| crate::sip::split_header_list(l))
            .take(crate::interop::egress::max_identities(
                &Hdr::P_ASSERTED_IDENTITY,
            ))
            .collect();
        let privacy = (self.sender(side.other())).privacy(req.header_lines(&Hdr::named("Privacy")));
        let keeps = (self.profile(side)).is_some_and(|p| {
            p.headers
                .keeps_identity(&Hdr::P_ASSERTED_IDENTITY, &privacy)
        });
        // An identity the other side's peer may not assert is not believed: it neither
        // reaches this side nor replaces one that did.
        if pai.is_empty() || !self.sender(side.other()).asserts {
            return;
        }
        // One withheld replaces the one kept before too: that older one is no longer who
        // the party is.
        let private = crate::interop::headers::asks_id_privacy(&privacy);
        self.identity = keeps.then(|| Box::new((side, pai, private)));
    }

    /// A message toward `side` carries the identity an UPDATE answered here brought, if one
    /// is waiting for that side (in that side's form), instead of its own.
    pub(super) fn carry_identity<M: crate::sip::Body>(
        &mut self,
        local: &crate::sip::LocalAddrs,
        side: Side,
        msg: &mut M,
    ) {
        if self.identity.as_ref().is_none_or(|i| i.0 != side) {
            return;
        }
        // It came from the other side's peer.
        let sender = self.sender(side.other());
        let (Some(pending), Some(peer)) = (self.identity.take(), self.profile(side)) else {
            return;
        };
        // (Its `Privacy` was judged when it was kept: `keep_identity_for`.)
        if !peer.headers.keeps_identity(&Hdr::P_ASSERTED_IDENTITY, &[]) {
            return;
        }
        // A message with an identity of its own carries the newer one: the stored one is
        // dropped. So does one whose own is withheld from this peer (`Privacy: id`, its own
        // or its sender's standing one): the older one is no more to be shown than the newer.
        let asked = (msg.header_value(&Hdr::named("Privacy")))
            .is_some_and(|v| crate::interop::headers::asks_id_privacy(std::slice::from_ref(&v)));
        let withheld = (asked || sender.private) && !peer.headers.keeps_private_identity();
        if msg.has_identity() || withheld {
            return;
        }
        let pai = Hdr::P_ASSERTED_IDENTITY;
        let rewritten =
            crate::interop::egress::rewritten_identities(&pai, &pending.1, local, peer, sender);
        for v in rewritten {
            if let Err(e) = msg.insert_header_before_length(&pai, v) {
                tracing::warn!(error = %e, "cannot carry the updated identity");
            }
        }
        // Kept for a trusted peer though its owner asked for privacy: the request goes with
        // it (RFC 3325 §7), or that peer would show it on.
        let privacy = Hdr::named("Privacy");
        let asked = msg
            .header_value(&privacy)
            .is_some_and(|v| crate::interop::headers::asks_id_privacy(std::slice::from_ref(&v)));
        if pending.2
            && !asked
            && let Err(e) = msg.insert_header_before_length(&privacy, "id".to_string())
        {
            tracing::warn!(error = %e, "cannot carry the updated identity's privacy");
        }
    }
}
