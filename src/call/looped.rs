//! Our own INVITE come back (RFC 3261 §16.3 step 4 asks a proxy the same): a routing loop
//! through a proxy that keeps the Call-ID and our From tag, found before it sets up a call
//! per turn until Max-Forwards runs out.

use super::Side;
use super::admission;
use super::router::B2bua;
use crate::sip::Request;

impl B2bua {
    /// The peer `req` loops back from: `req` is an INVITE of ours come back (a proxy keeps
    /// the Call-ID and our From tag, both ours and random), still ringing there, for the
    /// number we sent it (both read as any dialled number is: the peer's `[uri]` wrote
    /// ours). Routed to that peer again it would set up a call per turn until Max-Forwards
    /// runs out (RFC 3261 §16.3 step 4 asks a proxy the same); routed elsewhere (the carrier
    /// hands our own number back for the PBX) it is a spiral, a call like any other, and so
    /// is one whose number changed on the way.
    pub(super) fn loops_back(&self, req: &Request) -> Option<crate::config::PeerName> {
        let (Some(call_id), Some(tag)) = (req.call_id(), req.from_tag()) else {
            return None;
        };
        let Some((r, Side::B)) = self.dialog_of(&call_id, &tag) else {
            return None;
        };
        let attempt = self.calls.get(&r)?.attempt.as_ref()?;
        let sent = attempt.invite.as_deref()?;
        let number = admission::numbers(req).0;
        (number.is_some() && admission::numbers(sent).0 == number)
            .then(|| attempt.peer.name.clone())
    }
}
