//! A relayed offer that ended without a 2xx: the session stays what it was (RFC 3264 §8),
//! or, for an early offer refused once the call was answered, what the answer made it.

use super::Side;
use super::cx::Cx;
use super::state::{Call, Relayed};
use crate::sip::Method;

impl Call {
    /// A relayed offer ended without a 2xx: the session is what it was: the SDP a refresh
    /// of the far leg offers again, the origin's last `o=`, the anchored streams.
    pub(super) fn offer_not_taken(&mut self, cx: &mut Cx, rel: &Relayed) {
        if let Some(standing) = rel.standing.as_deref().filter(|s| s.early)
            && !self.phase.is_routing()
        {
            // An early offer refused once the call was answered: the answer (the callee's
            // 2xx, another branch's) stands, its media and what it showed the origin, and
            // only the offer itself is dropped: the far leg was last offered, and the origin
            // last offered, what they were before it. Before, the whole session before the
            // offer came back: the relay went to the 183's address, or to a losing branch,
            // for the rest of the call.
            if let Some(seen) = self.sdp[rel.origin.other()].as_mut() {
                seen.sent.clone_from(&standing.far_sent);
                seen.uncut.clone_from(&standing.far_uncut);
            }
            if let Some(seen) = self.sdp[rel.origin].as_mut() {
                seen.received_origin.clone_from(&standing.origin_received);
            }
            self.drop_offer_of(cx, rel.origin);
            self.shown_refused(rel.origin.other());
            return;
        }
        let Some(standing) = rel.standing.as_deref() else {
            // A re-INVITE without SDP asked for an offer: one the far leg made in a
            // provisional is not taken either, and what it changed goes back (before, only
            // its addresses did: a resume offered in a 183 left a held call timed as a live
            // one, and SRTP named there stopped its recording). (Only an INVITE's answers
            // carry one: an INFO's failure says nothing of an offer pending meanwhile.)
            let far = rel.origin.other();
            let offered = (self.media.as_ref().and_then(|m| m.proposed.as_ref()))
                .is_some_and(|(s, _)| *s == far);
            match &rel.media_before {
                Some(before) if offered => self.media_as_before(cx, before),
                _ if rel.method == Method::Invite => self.drop_offer_of(cx, far),
                _ => {}
            }
            return;
        };
        if let Some(seen) = self.sdp[rel.origin.other()].as_mut() {
            seen.sent.clone_from(&standing.far_sent);
            seen.uncut.clone_from(&standing.far_uncut);
            seen.received_origin.clone_from(&standing.far_received);
        }
        self.origin_sdp_as_before(rel);
        if let Some(before) = &standing.media {
            self.media_as_before(cx, before);
        }
        self.shown_refused(rel.origin.other());
    }

    /// `side`'s peer refused the offer it was last shown: what it is sent next goes past
    /// that version ([`crate::sdp::Origin::refused`]; an anchored call).
    pub(super) fn shown_refused(&mut self, side: Side) {
        if let Some(o) = self.media.as_mut().and_then(|m| m.shown[side].as_mut()) {
            o.refused();
        }
    }
}
