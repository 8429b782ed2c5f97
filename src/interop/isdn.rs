//! ISDN signalling carried in SIP bodies (RFC 3204: ISUP, QSIG; SIP-I/SIP-T multipart
//! bodies): what is withheld of it from a peer not believed (its bodies, on their way in)
//! and from a peer outside the trust domain (bodies on their way to it). An encapsulated
//! IAM carries the calling number with its presentation and screening, the forwarding
//! numbers carriers bill by, and the calling party's category: what the gateway withholds
//! in headers from such a peer.

use crate::sip::{Body, Hdr};

/// Whether a Content-Type names ISDN signalling carried in SIP (RFC 3204: ISUP, QSIG).
pub fn is_isdn_signalling(content_type: Option<&str>) -> bool {
    content_type
        .and_then(crate::sdp::media_type)
        .is_some_and(|(t, sub)| {
            t.eq_ignore_ascii_case("application")
                && (sub.eq_ignore_ascii_case("isup") || sub.eq_ignore_ascii_case("qsig"))
        })
}

/// Whether a body of type `ct` may be or hold ISDN signalling: cheap, so most messages
/// (none, or plain SDP) cost nothing more.
pub fn may_carry(ct: Option<&str>) -> bool {
    is_isdn_signalling(ct) || crate::sdp::is_multipart(ct)
}

/// `m`'s body without ISDN signalling: an ISUP or QSIG body goes, and so does a multipart
/// one holding such a part, but for its SDP part, which goes on alone; a body of either
/// kind that is encoded (it cannot be looked into) goes whole. Other multipart bodies (a
/// location, RFC 6442) stay as they are.
pub fn withhold(m: &mut impl Body) {
    if m.body().is_empty() {
        return;
    }
    let ct = m.content_type();
    let isdn = is_isdn_signalling(ct.as_deref());
    if !isdn && !crate::sdp::is_multipart(ct.as_deref()) {
        return;
    }
    if m.encoded() || isdn {
        return drop_body(m);
    }
    if !may_hold_isdn_signalling(m.body()) {
        return;
    }
    match crate::sdp::locate(ct.as_deref(), m.body()) {
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

/// Whether a multipart body may hold an ISUP or QSIG part: a part's Content-Type names one
/// (looked for anywhere in the body, case aside: a false alarm only costs the SIP-I parts
/// of a multipart body that had none).
fn may_hold_isdn_signalling(body: &[u8]) -> bool {
    [&b"application/isup"[..], b"application/qsig"]
        .iter()
        .any(|t| body.windows(t.len()).any(|w| w.eq_ignore_ascii_case(t)))
}

/// No body, and nothing that described it.
fn drop_body(m: &mut impl Body) {
    let _ = m.set_body(bytes::Bytes::new(), None);
    for h in ["Content-Disposition", "Content-Encoding", "MIME-Version"] {
        m.remove_header(&Hdr::named(h));
    }
}

/// `m`, about to go to `peer`, without ISDN signalling when `peer` is outside the trust
/// domain (`trust_identity = false`): an IAM's calling number reaches it whatever the
/// caller's presentation (ISUP's own, or `Privacy: id` in the headers), and so would the
/// forwarding numbers History-Info withholds.
pub fn for_peer(peer: &crate::config::Profile, m: &mut impl Body) {
    if !peer.headers.trust_identity {
        withhold(m);
    }
}
