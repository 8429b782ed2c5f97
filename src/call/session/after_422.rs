//! A request relayed to the far leg that its peer refused with 422 (RFC 4028 §6): the
//! interval was the gateway's (timers are per leg), so the gateway sends it again, once, at
//! the peer's minimum, rather than ask the sender for a change that changes nothing there.

use crate::call::Side;
use crate::call::cx::Cx;
use crate::call::state::{Call, Relayed, TxnRole};
use crate::sip::{Hdr, Response};
use crate::txn::TxnId;

impl Call {
    /// Relayed request `rel`, refused by the `far` peer with 422, sent again once with the
    /// interval it asks for, under a new CSeq and branch; None when that cannot be.
    pub(in crate::call) fn again_after_422(
        &mut self,
        cx: &mut Cx,
        far: Side,
        rel: &Relayed,
        resp: &Response,
    ) -> Option<(TxnId, crate::sip::Request)> {
        if rel.retried_422 {
            return None;
        }
        let asked = (rel.sent.header(&Hdr::SESSION_EXPIRES))
            .and_then(|v| crate::sip::leading_number(&v))
            .map(std::time::Duration::from_secs)?;
        let min = self.timer_policy(far).after_422(resp, Some(asked))?;
        let leg = self.dialog_mut(far)?;
        leg.local_cseq = leg.local_cseq.wrapping_add(1);
        let (cseq, target) = (leg.local_cseq, leg.target);
        let via = cx.env.local.via(target.transport, &cx.env.ids.branch());
        let mut req = rel.sent.clone();
        let built = req
            .set_header(&Hdr::CSEQ, format!("{cseq} {}", rel.sent.method()))
            .and_then(|()| req.set_header(&Hdr::VIA, via))
            .and_then(|()| {
                (super::terms_after_422(min).into_iter())
                    .try_for_each(|(h, v)| req.set_header(&h, v))
            });
        if let Err(e) = built {
            tracing::warn!(error = %e, "cannot build the request again after 422");
            return None;
        }
        // Fresh credentials (the next nonce count): the old ones again under a new CSeq are
        // a replay to a server that checks.
        self.sign(cx, far, &mut req);
        self.keep_for_ack(far, &req);
        let txn = self.start_client(cx, req.clone(), target, TxnRole::Relay)?;
        tracing::info!(call_id = %self.call_id(), interval = min.as_secs(), "far peer wants a longer session interval (422): sent again");
        Some((txn, req))
    }
}
