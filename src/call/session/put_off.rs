//! A peer's re-INVITE or UPDATE the gateway puts off (491, or 500 with Retry-After) because
//! of what else is under way on the call, the other leg's exchanges among it. Such a request
//! that carries `Session-Expires` is the peer's refresh: it shows the peer alive and holding
//! the dialog, so its leg's expiry runs anew as for one relayed. Before, only relayed
//! refreshes counted: a peer whose every refresh met a slow exchange on the other leg (a
//! far peer taking its 32 s over our re-INVITE) had a live call released as expired.

use crate::call::Side;
use crate::call::cx::Cx;
use crate::call::state::Call;
use crate::sip::Request;
use crate::txn::TxnId;

/// How a request is put off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::call) enum PutOff {
    /// 491 Request Pending (RFC 3261 §14.1, RFC 3311 §5.2).
    Glare,
    /// 500 with Retry-After: the sender's own earlier request is still open (§14.2).
    RetryLater,
}

impl Call {
    /// Answer `req` (transaction `id`, from `side`) as `how` says, its refresh noted.
    pub(in crate::call) fn put_off(
        &mut self,
        cx: &mut Cx,
        side: Side,
        id: TxnId,
        req: &Request,
        how: PutOff,
    ) {
        match how {
            PutOff::Glare => cx.respond(id, req, 491, "Request Pending", &[]),
            PutOff::RetryLater => cx.respond_retry_later(id, req),
        }
        self.refresh_heard(cx, side, req);
    }
}
