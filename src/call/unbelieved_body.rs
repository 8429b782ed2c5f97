//! Bodies from a peer whose word is not believed (`[headers] trust_asserted = false`): the
//! SDP of a SIP-I/SIP-T body (a multipart one with an ISUP or QSIG part) goes on alone, and
//! an ISUP or QSIG body (RFC 3204), or such a multipart body without SDP, or one encoded so
//! that it cannot be looked into, not at all. Other multipart bodies (a location, RFC 6442)
//! go on as they came.
//! An encapsulated IAM carries what the gateway withholds from such a peer in headers (the
//! calling number with its screening as "network provided", the forwarding numbers carriers
//! bill by, the calling party's category): an interworking unit builds its ISUP from it, so
//! passed on, it asserted on the gateway's word what the peer cannot assert in a header.
//! Before, every part went on byte for byte. A peer that is believed (a trunk, a PBX that
//! asserts its users) keeps its bodies as they came.

use tracing::warn;

use crate::interop::isdn;
use crate::sip::{Body, Message, Target};

use super::router::B2bua;

impl B2bua {
    /// `msg` from `source`, its body trimmed when its sender is a peer not believed. `None`:
    /// an INVITE, UPDATE or PRACK whose multipart body cannot be taken apart
    /// ([`isdn::Inseparable`]), refused `415`; any other such message goes on without its
    /// body (an ACK so ends the call as an ACK without the answer it owes does).
    pub(super) fn unbelieved_body(&mut self, mut msg: Message, source: Target) -> Option<Message> {
        // The body first: most messages carry none, or plain SDP, and cost no lookup.
        let ct = match &msg {
            Message::Request(r) if !r.body().is_empty() => r.content_type(),
            Message::Response(r) if !r.body().is_empty() => r.content_type(),
            _ => return Some(msg),
        };
        if !isdn::may_carry(ct.as_deref()) {
            return Some(msg);
        }
        // A request in a call's dialog is judged by that call's peer for its side: a reload
        // that put the sender's address in another profile's `match` does not change whose
        // call it is (before, a believed PBX's INFO lost its ISUP once its address fell in
        // a profile not believed). Else, through the front, the peer it names (a response
        // too: its stamp).
        let in_call = match &msg {
            Message::Request(r) if r.to_tag().is_some() => {
                self.dialog_named_by(r).and_then(|(call, side)| {
                    Some(self.calls.get(&call)?.profile(side)?.headers.trust_asserted)
                })
            }
            _ => None,
        };
        let believed = match in_call {
            Some(believed) => believed,
            None => {
                let ip = match &msg {
                    Message::Request(r) => Some(self.env.origin_ip(r, source)),
                    Message::Response(r) => self.env.response_origin_ip(r, source),
                };
                (ip.and_then(|ip| self.env.cfg.peer_at(ip)))
                    .and_then(|name| self.env.cfg.profile(name))
                    .is_none_or(|p| p.headers.trust_asserted)
            }
        };
        if believed {
            return Some(msg);
        }
        let kept = match &mut msg {
            Message::Request(r) => isdn::withhold(r),
            Message::Response(r) => isdn::withhold(r),
        };
        // Refused only where it may carry the session: anything else goes on without its
        // body (a BYE or CANCEL must end what it ends; a response is its transaction's,
        // maybe a call's, final word: a 2xx without its answer is judged as one).
        let session = match &msg {
            Message::Request(r) => isdn::may_carry_session(&r.method(), None),
            Message::Response(_) => false,
        };
        if let Err(e) = &kept
            && session
        {
            warn!(%source, "{e}: refused");
            match &msg {
                Message::Request(r) => {
                    let accept = [(crate::sip::Hdr::named("Accept"), "application/sdp")];
                    // A tag of no check, as every stateless answer's.
                    let tag = (r.to_tag().is_none()).then(|| self.env.ids.stateless_tag(r));
                    let refusal = crate::sip::ingress::response_to(
                        r,
                        415,
                        "Unsupported Media Type",
                        tag.as_deref(),
                        &accept,
                    );
                    if let Ok(resp) = refusal {
                        self.env.send(source, &Message::Response(resp));
                    }
                }
                Message::Response(_) => {}
            }
            self.refused("inseparable_body");
            return None;
        }
        if kept.is_err() {
            warn!(%source, "a multipart body that may hold ISUP or QSIG cannot be taken apart: it goes on without its body");
        }
        Some(msg)
    }
}
