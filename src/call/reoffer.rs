//! The gateway's own offer to the caller once the call is up, when the session the 2xx
//! showed it is not the one it agreed to. A caller that took the answer to its offer in a
//! reliable provisional (RFC 3262) is done with that offer/answer, and a 2xx after it must
//! carry the same SDP (RFC 3261 §13.2.1), so the caller ignores a different one: another
//! branch of a forking callee, or the next callee after a failover, that answered with
//! another codec would be sent the codec of the first answer for the rest of the call. On an
//! anchored call the gateway offers the caller, after its ACK, the session that 2xx showed
//! (RFC 3264 §8; a re-INVITE, which every peer takes), and the relay follows the answer.
//! Its answer goes through the session-refresh path (`session/refresh.rs`), one own
//! re-INVITE at a time. Glare (a 491: the caller's own request crossed ours) is no refusal:
//! the offer is made again after the wait RFC 3261 §14.1 gives, unless the caller's own
//! offer settled the session meanwhile.

use bytes::Bytes;
use tracing::{info, warn};

use super::Side;
use super::cx::Cx;
use super::state::Call;
use super::timers::CallTimer;
use crate::sip::{Hdr, Method, Request};

/// Times an offer met by glare is made again: a caller that answers every one 491 is not
/// offered for ever.
const GLARE_TRIES: u8 = 3;

/// An offer to the caller that met glare, waiting to be made again.
#[derive(Debug, Clone)]
pub struct ReofferAgain {
    body: Bytes,
    ct: Option<String>,
    /// The `o=` version the caller was last shown: any SDP sent to it since (its own
    /// offer answered) moves it, and settles the session.
    version: u64,
}

impl Call {
    /// The caller's ACK confirmed the call; `shown` is our 2xx's body and Content-Type, and
    /// `agreed` the `o=` version of the session the caller took early. When that is another
    /// session than the 2xx showed, it is offered that session now. A caller's own offer
    /// under way settles the session as well.
    pub(super) fn reoffer_if_moved(
        &mut self,
        cx: &mut Cx,
        agreed: u64,
        shown: (Bytes, Option<String>),
    ) {
        let now = self
            .media
            .as_ref()
            .and_then(|m| m.shown.a.map(|o| o.version()));
        if now.is_none_or(|v| v == agreed)
            || self.phase.is_ending()
            || self.refresh.is_some()
            || self.reinvite_in_progress()
            || self.unanswered_offer(Side::A).is_some()
            || !crate::sdp::carries_sdp(shown.1.as_deref(), &shown.0)
        {
            return;
        }
        info!(call_id = %self.call_id(), "the answer differs from the one the caller took early: offering it to the caller");
        // Its SDP alone: an ISUP beside it in a SIP-I 2xx (an ANM) is no part of the offer.
        let (body, ct) = match crate::sdp::sdp_of(shown.1.as_deref(), &shown.0) {
            Some(sdp) if crate::sdp::is_multipart(shown.1.as_deref()) => (
                Bytes::copy_from_slice(sdp),
                Some("application/sdp".to_string()),
            ),
            _ => shown,
        };
        // The same `o=` version as the 2xx: for a caller that ignored that SDP a newer one,
        // for one that took it the same session again.
        if let Some(m) = self.media.as_mut() {
            m.glare_tries = 0;
        }
        self.send_reoffer(cx, body, ct);
    }

    /// Offer the caller `body` (SDP alone) in a re-INVITE.
    fn send_reoffer(&mut self, cx: &mut Cx, body: Bytes, ct: Option<String>) {
        let body = self.shown_again(Side::A, &body, ct.as_deref());
        let Some(leg) = self.dialog_mut(Side::A) else {
            return;
        };
        let built = leg
            .request(Method::Invite, &cx.env.local, &mut cx.env.ids)
            .and_then(|mut r| {
                r.set_body(body, ct.as_deref())?;
                Ok(r)
            })
            .and_then(|mut r| self.restate_session(Side::A, &mut r).map(|()| r));
        match built {
            Ok(req) => {
                let asked = self.session[Side::A]
                    .map(|s| s.interval)
                    .unwrap_or_default();
                self.launch_own_invite(cx, Side::A, req, asked, (false, true));
            }
            Err(e) => warn!(error = %e, "cannot build the offer to the caller"),
        }
    }

    /// Our offer `sent` to the caller met glare (491): made again after the wait of the
    /// party that does not own the dialog's Call-ID (RFC 3261 §14.1), so that the caller's
    /// own retry, which waits longer, comes after it.
    pub(super) fn reoffer_after_glare(&mut self, cx: &mut Cx, sent: &Request) {
        let wait = self.glare_wait(cx, Side::A);
        let call_id = self.call_id().to_string();
        let Some(m) = self.media.as_mut() else {
            return;
        };
        let Some(version) = m.shown.a.map(|o| o.version()) else {
            return;
        };
        if m.glare_tries >= GLARE_TRIES {
            info!(%call_id, "the caller met every offer of the answered session with glare: left");
            return;
        }
        info!(%call_id, ?wait, "glare on the offer of the answered session: made again");
        m.glare_tries += 1;
        m.reoffer_again = Some(Box::new(ReofferAgain {
            body: sent.body().clone(),
            ct: sent.header(&Hdr::CONTENT_TYPE),
            version,
        }));
        self.timers.set(CallTimer::Reoffer, cx.now + wait);
    }

    /// [`CallTimer::Reoffer`]: the offer that met glare, again, unless the caller was shown
    /// another session since (its own offer, answered, settled it) or an offer is under
    /// way; the latter waits another while.
    pub(super) fn on_reoffer_timer(&mut self, cx: &mut Cx) {
        let Some(m) = self.media.as_mut() else {
            return;
        };
        let Some(again) = m.reoffer_again.take() else {
            return;
        };
        if self.phase.is_ending() || m.shown.a.map(|o| o.version()) != Some(again.version) {
            return;
        }
        if self.refresh.is_some()
            || self.reinvite_in_progress()
            || self.unanswered_offer(Side::A).is_some()
            || self.pending_2xx[Side::A].is_some()
        {
            let wait = self.glare_wait(cx, Side::A);
            if let Some(m) = self.media.as_mut() {
                m.reoffer_again = Some(again);
            }
            self.timers.set(CallTimer::Reoffer, cx.now + wait);
            return;
        }
        let ReofferAgain { body, ct, .. } = *again;
        self.send_reoffer(cx, body, ct);
    }
}
