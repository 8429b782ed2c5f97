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

/// A multipart body that may hold ISDN signalling and cannot be taken apart (unterminated,
/// nested, encoded, past 32 parts): its SDP, if it has one, cannot be kept alone. Withheld
/// whole, an offer would become none (the far peer offering in its 2xx, taken for an
/// answer) and a 2xx would lose its answer: the message is refused instead.
#[derive(Debug, thiserror::Error)]
#[error("a multipart body that may hold ISUP or QSIG cannot be taken apart to keep its SDP alone")]
pub struct Inseparable;

/// Whether a message of `method` (with `status` for a response) may carry an offer or an
/// answer: only those are refused for an [`Inseparable`] body (an INVITE, UPDATE or PRACK,
/// and their provisional and 2xx answers). Any other goes on without its body, as before:
/// a BYE or CANCEL must end what it ends, a failure or an INFO's 200 carries no session.
pub fn may_carry_session(method: &crate::sip::Method, status: Option<u16>) -> bool {
    use crate::sip::Method;
    matches!(method, Method::Invite | Method::Update | Method::Prack)
        && status.is_none_or(|s| s < 300)
}

impl From<Inseparable> for crate::sip::SipError {
    fn from(e: Inseparable) -> Self {
        crate::sip::SipError::Build(e.to_string())
    }
}

/// `m`'s body without ISDN signalling: an ISUP or QSIG body goes, and so does a multipart
/// one holding such a part, but for its SDP part, which goes on alone. A multipart body
/// that may hold such a part and cannot be taken apart (or is encoded: it cannot be looked
/// into) is [`Inseparable`], its body gone. Other multipart bodies (a location, RFC 6442)
/// stay as they are.
pub fn withhold(m: &mut impl Body) -> Result<(), Inseparable> {
    if m.body().is_empty() {
        return Ok(());
    }
    let ct = m.content_type();
    let isdn = is_isdn_signalling(ct.as_deref());
    if !isdn && !crate::sdp::is_multipart(ct.as_deref()) {
        return Ok(());
    }
    // An ISUP or QSIG body alone holds no SDP.
    if isdn {
        drop_body(m);
        return Ok(());
    }
    if m.encoded() {
        drop_body(m);
        return Err(Inseparable);
    }
    if !may_hold_isdn_signalling(m.body()) {
        return Ok(());
    }
    match crate::sdp::locate(ct.as_deref(), m.body()) {
        Ok(Some(part)) => {
            let sdp = bytes::Bytes::copy_from_slice(part.of(m.body()));
            if m.set_body(sdp, Some("application/sdp")).is_ok() {
                m.remove_header(&Hdr::named("Content-Disposition"));
                m.remove_header(&Hdr::named("MIME-Version"));
            }
            Ok(())
        }
        // No SDP to keep (a late offer's IAM alone).
        Ok(None) => {
            drop_body(m);
            Ok(())
        }
        Err(_) => {
            drop_body(m);
            Err(Inseparable)
        }
    }
}

/// Whether a multipart body may hold an ISUP or QSIG part: the subtype's name anywhere in
/// it, case aside. Not the whole `application/isup`: a part's Content-Type may be written
/// `application / ISUP`, folded after the `/`, or with a comment (RFC 2045 §5.1), and a far
/// end reads it as ISUP all the same; the subtype itself is one token, written whole. A
/// false alarm only costs the parts beside the SDP of a multipart body that had none.
fn may_hold_isdn_signalling(body: &[u8]) -> bool {
    [&b"isup"[..], b"qsig"]
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
pub fn for_peer(peer: &crate::config::Profile, m: &mut impl Body) -> Result<(), Inseparable> {
    if peer.headers.trust_identity {
        return Ok(());
    }
    withhold(m)
}
