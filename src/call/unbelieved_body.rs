//! Bodies from a peer whose word is not believed (`[headers] trust_asserted = false`): the
//! SDP of a SIP-I/SIP-T body goes on alone, and an ISUP or QSIG body (RFC 3204) not at all.
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
        if !is_isdn_signalling(ct.as_deref()) && !crate::sdp::is_multipart(ct.as_deref()) {
            return msg;
        }
        let ip = match &msg {
            Message::Request(r) => self.env.origin_ip(r, source),
            Message::Response(_) => source.addr.ip(),
        };
        let believed = (self.env.cfg.peer_at(ip))
            .and_then(|name| self.env.cfg.profile(name))
            .is_none_or(|p| p.headers.trust_asserted);
        if believed {
            return msg;
        }
        match &mut msg {
            Message::Request(r) => trim(r),
            Message::Response(r) => trim(r),
        }
        msg
    }
}

/// A multipart body becomes its SDP part alone; an ISUP or QSIG body goes.
fn trim(m: &mut impl Body) {
    if m.body().is_empty() || m.encoded() {
        return;
    }
    let ct = m.content_type();
    if is_isdn_signalling(ct.as_deref()) {
        let _ = m.set_body(bytes::Bytes::new(), None);
        m.remove_header(&Hdr::named("Content-Disposition"));
        return;
    }
    if !crate::sdp::is_multipart(ct.as_deref()) {
        return;
    }
    if let Ok(Some(part)) = crate::sdp::locate(ct.as_deref(), m.body()) {
        let sdp = bytes::Bytes::copy_from_slice(part.of(m.body()));
        if m.set_body(sdp, Some("application/sdp")).is_ok() {
            m.remove_header(&Hdr::named("Content-Disposition"));
            m.remove_header(&Hdr::named("MIME-Version"));
        }
    }
}
