//! Answers that belong to no call: a 2xx to an INVITE whose call is gone still needs its ACK
//! (RFC 3261 §13.2.2.4), and a BYE stops the phone that answered into silence.

use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::CoreEvent;
use super::Output;
use super::cx::Env;
use crate::sip::{
    Hdr, IdGen, LocalAddrs, Message, Method, NewRequest, Request, Response, SipError, Target,
};

/// ACK and BYE a 2xx (CSeq `cseq`) from `source` that no call wants. Only toward peers we
/// know (through the front: the peer it names, and only when it names one): a forged 2xx
/// from anywhere else must not make the gateway send anything. True when they were sent.
/// `offerless`: our INVITE is known to have gone without SDP, so SDP in the 2xx is an
/// offer, which the ACK answers refusing every stream (RFC 3261 §13.2.2.4); unknown (the
/// INVITE's transaction is gone too), the ACK has no body, as an answer to an answer would
/// be an error. The BYE runs in a transaction of its own, resent until answered (the
/// budget below bounds how many run).
pub(super) fn ack_and_bye(
    env: &mut Env,
    now: Instant,
    resp: &Response,
    cseq: u32,
    source: Target,
    how: Unwanted,
) -> bool {
    let Unwanted { offerless, hang_up } = how;
    // (A peer a reload moved while calls were up is known at its old addresses too.)
    let known = env.response_origin_ip(resp, source).is_none_or(|ip| {
        super::moved::heard_by(&env.cfg, &env.moved)
            .any(|c| c.peer_for_source(ip).is_some() || c.is_peer_address(ip))
    });
    if !known {
        return false;
    }
    // Through the front: to the peer the front says sent the 2xx, named to the front in
    // X-Trunkgate-Peer, with no route set: the front forwards a request by its Route (or,
    // without one, its Request-URI), and a forged 2xx's Record-Route and Contact may name
    // anyone. A 2xx the front did not name a sender for gets nothing.
    let (to, routes) = if env.is_front(source) {
        let stamp = resp.header(&Hdr::named(super::cx::SOURCE_HEADER));
        let Some(addr) = stamp.and_then(|s| super::cx::stamped_addr(&s)) else {
            return false;
        };
        let peer = Target {
            addr,
            conn: None,
            listener: None,
            ..source
        };
        (peer, Vec::new())
    } else {
        // Straight from the peer: it gets them, along the route set its 2xx names.
        let mut routes = resp.record_route();
        routes.reverse();
        (source, routes)
    };
    // Each one costs two requests as large as the 2xx: a forged stream of them (a peer's
    // address spoofed) is answered only up to a budget, and logged once a second.
    match env.orphans.take(now) {
        Some(true) => {
            warn!(%source, "2xx for an unknown INVITE: sending ACK and BYE (more this second are logged at debug)")
        }
        Some(false) => debug!(%source, "2xx for an unknown INVITE: sending ACK and BYE"),
        None => {
            env.out.push_back(Output::Event(CoreEvent::Refused {
                why: "orphan_2xx_rate",
            }));
            return false;
        }
    }
    let ct = resp.header(&Hdr::CONTENT_TYPE);
    let answer = offerless
        .then(|| super::ack::refusal(ct.as_deref(), resp.body(), env.cfg.media_ip, None))
        .flatten();
    let ack = orphan_request(
        resp,
        Method::Ack,
        cseq,
        &env.local,
        to,
        &routes,
        &mut env.ids,
    )
    .and_then(|mut ack| {
        if let Some((body, ct)) = answer {
            ack.set_body(body, ct.as_deref())?;
        }
        Ok(ack)
    });
    match ack {
        Ok(ack) => env.send(to, &Message::Request(ack)),
        Err(e) => warn!(error = %e, "cannot build ACK for orphan 2xx"),
    }
    // The BYE's CSeq must be above the INVITE's and below 2^31 (RFC 3261 §8.1.1.5): a 2xx
    // at the top leaves none (no INVITE of ours has it: a forged one), so the ACK alone.
    // Before, the BYE went with 2^31, whose answers no parser (ours included) would take:
    // resent for 32 s.
    if !hang_up || cseq >= MAX_CSEQ {
        return true;
    }
    match orphan_request(
        resp,
        Method::Bye,
        cseq,
        &env.local,
        to,
        &routes,
        &mut env.ids,
    ) {
        Ok(bye) => {
            env.send_request(bye, to, now);
        }
        Err(e) => warn!(error = %e, "cannot build BYE for orphan 2xx"),
    }
    true
}

/// The highest CSeq number there is (RFC 3261 §8.1.1.5: below 2^31).
const MAX_CSEQ: u32 = (1 << 31) - 1;

/// What [`ack_and_bye`] does with an unwanted 2xx.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unwanted {
    /// Our INVITE went without SDP: an offer in the 2xx is refused in the ACK.
    pub offerless: bool,
    /// A BYE after the ACK (else the ACK alone: a 2xx again of a dialog hung up already).
    pub hang_up: bool,
}

/// How many 2xx for no call are answered (ACK and BYE) in a second. A real burst of them
/// (calls that were being answered when the process restarted, retransmitting their 2xx)
/// is far smaller.
pub const ORPHANS_PER_SECOND: u32 = 50;

/// The orphan 2xx answered in the current second.
#[derive(Debug, Default)]
pub struct Budget {
    since: Option<Instant>,
    used: u32,
}

impl Budget {
    /// Take one at `now`: `Some(first)` when within the budget (`first` for the second's
    /// first), `None` past it.
    pub fn take(&mut self, now: Instant) -> Option<bool> {
        if self
            .since
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.since = Some(now);
            self.used = 0;
        }
        if self.used >= ORPHANS_PER_SECOND {
            return None;
        }
        self.used += 1;
        Some(self.used == 1)
    }
}

/// ACK or BYE for a 2xx that belongs to no call we know, built from the response alone
/// (without a body).
fn orphan_request(
    resp: &Response,
    method: Method,
    cseq: u32,
    local: &LocalAddrs,
    source: Target,
    routes: &[String],
    ids: &mut IdGen,
) -> Result<Request, SipError> {
    let target_uri = resp
        .contact_uri()
        .unwrap_or_else(|| format!("sip:{}", source.addr));
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    let header = |h: &Hdr, name| resp.header(h).ok_or(SipError::MissingHeader(name));
    let mut r = NewRequest {
        method: method.clone(),
        uri: &target_uri,
        via: &local.via(source.transport, &ids.branch()),
        max_forwards: 70,
        routes: &routes,
        from: &header(&Hdr::FROM, "From")?,
        to: &header(&Hdr::TO, "To")?,
        call_id: &header(&Hdr::CALL_ID, "Call-ID")?,
        cseq: if method == Method::Ack {
            cseq
        } else {
            cseq.wrapping_add(1)
        },
    }
    .build()?;
    r.push_header(&Hdr::CONTENT_LENGTH, "0")?;
    Ok(r)
}
