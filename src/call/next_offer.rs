//! The caller's session as its early dialog with a callee changed it, and what the next
//! callee of a route is offered after a failover: a late offer (an INVITE without SDP)
//! carries the answer the caller gave an earlier callee's offer in its PRACK (kept here);
//! an early offer, the session an offer of the caller's own (an UPDATE, or its PRACK) moved
//! it to.

use super::cx::{Cx, Rewrite};
use super::state::Call;
use crate::config::Profile;
use crate::interop::egress::body_for;
use crate::sdp::MediaBody;
use crate::sip::{Body, Hdr, Request, SipError};

impl Call {
    /// Put the caller's session, as its early dialog last left it, into `invite` for the
    /// callee `peer` (shaped for it).
    pub(super) fn offer_callers_session(
        &self,
        cx: &mut Cx,
        peer: &Profile,
        invite: &mut Request,
    ) -> Result<(), SipError> {
        // A late offer whose caller has answered a callee tried before: it answers no other
        // offer, so this callee is offered the caller's session.
        if let Some((body, ct)) = self.uas_rel.early_answer.as_deref() {
            offer_early_answer(cx, peer, invite, body, ct.as_deref())?;
        }
        // An early offer whose session the caller changed (an offer of its own a callee
        // before took): this callee is offered that session.
        if let Some((body, ct)) = self.callers_session_over(invite) {
            invite.set_body(body_for(peer, body, ct.as_deref()), ct.as_deref())?;
        }
        Ok(())
    }

    /// Keep the SDP of the caller's PRACK as its early answer (the first one only).
    pub(super) fn keep_early_answer(&mut self, req: &Request) {
        if self.uas_rel.early_answer.is_none() {
            let ct = req.header(&Hdr::CONTENT_TYPE);
            self.set_early_answer(req.body(), ct);
        }
    }

    /// The caller's session in its early dialog is now `body`, when it is SDP the gateway can
    /// read (one it cannot would make every later callee's offer unreadable).
    pub(super) fn set_early_answer(&mut self, body: &bytes::Bytes, ct: Option<String>) {
        // (`[media] max_streams` bounds what the gateway anchors; an unanchored call's SDP
        // passes whatever its size.)
        let max = match self.media {
            Some(_) => self.cfg.media_max_streams,
            None => usize::MAX,
        };
        if ct.is_some() && matches!(MediaBody::read(ct.as_deref(), body, max), Ok(Some(_))) {
            self.uas_rel.early_answer = Some(Box::new((body.clone(), ct)));
        }
    }

    /// The caller's session as an offer of its own in the early dialog left it
    /// (`caller_session`), when it stands in place of `req`'s body: only over a plain,
    /// unencoded SDP body (a SIP-I INVITE keeps its own). `req` is the caller's INVITE, or
    /// an INVITE built from it.
    pub(super) fn callers_session_over(
        &self,
        req: &Request,
    ) -> Option<&(bytes::Bytes, Option<String>)> {
        self.uas_rel.caller_session.as_deref().filter(|_| {
            crate::sdp::is_sdp(req.header(&Hdr::CONTENT_TYPE).as_deref()) && !req.encoded()
        })
    }
}

/// Whether a late offer `invite` can carry the caller's early answer: it has no body, or one
/// part that is not SDP (SIP-I's ISUP), typed and not encoded, beside which an SDP part goes.
/// (A multipart body without SDP, or an encoded one, is passed as it came.)
pub(super) fn takes_early_answer(invite: &Request) -> bool {
    if invite.body().is_empty() {
        return true;
    }
    let ct = invite.header(&Hdr::CONTENT_TYPE);
    ct.is_some()
        && !super::anchor::carries_sdp(invite)
        && !crate::sdp::is_multipart(ct.as_deref())
        && invite.header(&Hdr::named("Content-Encoding")).is_none()
}

/// Put the caller's early answer (`body`, `ct`) into a late offer's `invite` for the next
/// callee, shaped for its `peer`: as the body of an INVITE without one, or beside the ISUP of
/// a SIP-I INVITE (a `multipart/mixed` body: ISUP and SDP is SIP-I's early offer). An INVITE
/// that cannot take it ([`takes_early_answer`]), or an answer that is not plain SDP beside
/// an ISUP, leaves the INVITE as it is.
fn offer_early_answer(
    cx: &mut Cx,
    peer: &Profile,
    invite: &mut Request,
    body: &bytes::Bytes,
    ct: Option<&str>,
) -> Result<(), crate::sip::SipError> {
    if !takes_early_answer(invite) {
        return Ok(());
    }
    // The ISUP's type, when there is one; beside it only plain SDP goes.
    let other_ct = (!invite.body().is_empty())
        .then(|| invite.header(&Hdr::CONTENT_TYPE))
        .flatten();
    if other_ct.is_some() && !crate::sdp::is_sdp(ct) {
        return Ok(());
    }
    let shaped = body_for(peer, body, ct);
    let changed = shaped != *body;
    match other_ct {
        None => invite.set_body(shaped, ct)?,
        Some(other_ct) => {
            if !sdp_beside(invite, &shaped, &other_ct)? {
                return Ok(());
            }
        }
    }
    if changed {
        cx.env.rewrote(Rewrite::Ptime);
    }
    Ok(())
}

/// Put plain SDP `sdp` beside the one part of `msg`'s body that is not SDP (SIP-I's ISUP,
/// typed `other_ct`): a `multipart/mixed` body of the two. A body that cannot be so
/// joined is left as it is (`false`).
pub(super) fn sdp_beside<M: crate::sip::Body>(
    msg: &mut M,
    sdp: &bytes::Bytes,
    other_ct: &str,
) -> Result<bool, crate::sip::SipError> {
    // What described the ISUP as the whole body now describes its part.
    let part_headers: Vec<(Hdr, String)> = [
        Hdr::named("Content-Disposition"),
        Hdr::named("Content-Language"),
    ]
    .into_iter()
    .filter_map(|h| msg.header_value(&h).map(|v| (h, v)))
    .collect();
    let Some((multipart, mct)) = crate::sdp::with_sdp_part(
        sdp,
        msg.body(),
        other_ct,
        &part_headers
            .iter()
            .map(|(h, v)| (h.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    ) else {
        return Ok(false);
    };
    for (h, _) in &part_headers {
        msg.remove_header(h);
    }
    msg.set_body(multipart, Some(&mct))?;
    Ok(true)
}
