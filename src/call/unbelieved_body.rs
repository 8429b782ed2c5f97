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

use crate::sip::{Body, Hdr, Message, Target};

use super::router::B2bua;

/// Whether a Content-Type names ISDN signalling carried in SIP (RFC 3204: ISUP, QSIG).
fn is_isdn_signalling(content_type: Option<&str>) -> bool {
    content_type
        .and_then(crate::sdp::media_type)
        .is_some_and(|(t, sub)| {
            t.eq_ignore_ascii_case("application")
                && (sub.eq_ignore_ascii_case("isup") || sub.eq_ignore_ascii_case("qsig"))
        })
}

impl B2bua {
    /// `msg` from `source`, its body trimmed when its sender is a peer not believed.
    pub(super) fn unbelieved_body(&self, mut msg: Message, source: Target) -> Message {
        // The body first: most messages carry none, or plain SDP, and cost no lookup.
        let ct = match &msg {
            Message::Request(r) if !r.body().is_empty() => r.content_type(),
            Message::Response(r) if !r.body().is_empty() => r.content_type(),
            _ => return msg,
        };
        let isdn = is_isdn_signalling(ct.as_deref());
        if !isdn && !crate::sdp::is_multipart(ct.as_deref()) {
            return msg;
        }
        // Through the front, the peer it names (a response too: its stamp).
        let ip = match &msg {
            Message::Request(r) => Some(self.env.origin_ip(r, source)),
            Message::Response(r) => self.env.response_origin_ip(r, source),
        };
        let believed = (ip.and_then(|ip| self.env.cfg.peer_at(ip)))
            .and_then(|name| self.env.cfg.profile(name))
            .is_none_or(|p| p.headers.trust_asserted);
        if believed {
            return msg;
        }
        match &mut msg {
            Message::Request(r) => trim(r, ct.as_deref(), isdn),
            Message::Response(r) => trim(r, ct.as_deref(), isdn),
        }
        msg
    }
}

/// Whether a multipart body may hold an ISUP or QSIG part: a part's Content-Type names one
/// (looked for anywhere in the body, case aside: a false alarm only costs an untrusted
/// peer's non-SDP parts).
fn may_hold_isdn_signalling(body: &[u8]) -> bool {
    [&b"application/isup"[..], b"application/qsig"]
        .iter()
        .any(|t| body.windows(t.len()).any(|w| w.eq_ignore_ascii_case(t)))
}

/// `m`'s body, of type `ct` (ISUP or QSIG when `isdn`, else multipart): an ISUP or QSIG body
/// goes, and so does a multipart one holding such a part, but for its SDP part, which goes
/// on alone; a body of either kind that is encoded goes whole.
fn trim(m: &mut impl Body, ct: Option<&str>, isdn: bool) {
    if m.encoded() || isdn {
        return drop_body(m);
    }
    if !may_hold_isdn_signalling(m.body()) {
        return;
    }
    match crate::sdp::locate(ct, m.body()) {
        Ok(Some(part)) => {
            let sdp = bytes::Bytes::copy_from_slice(part.of(m.body()));
            if m.set_body(sdp, Some("application/sdp")).is_ok() {
                m.remove_header(&Hdr::named("Content-Disposition"));
                m.remove_header(&Hdr::named("MIME-Version"));
            }
        }
        // No SDP to keep (a late offer's IAM alone), or one that cannot be found.
        _ => drop_body(m),
    }
}

/// No body, and nothing that described it.
fn drop_body(m: &mut impl Body) {
    let _ = m.set_body(bytes::Bytes::new(), None);
    for h in ["Content-Disposition", "Content-Encoding", "MIME-Version"] {
        m.remove_header(&Hdr::named(h));
    }
}
