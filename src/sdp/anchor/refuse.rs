//! SDP the gateway cannot anchor, or answers itself: every stream refused, every address
//! the gateway's, whatever of it could be read.

use std::net::IpAddr;

use bytes::Bytes;

use super::super::{Origin, lines, locate, origin};
use super::{MAX_SECTIONS, addr_type, refused_m_line, rewrite, typed};

/// Every stream of the SDP in `body` (its SDP part when it is multipart) refused (port 0)
/// and every address in it replaced by `ip`, even where [`read`] refuses the SDP: what a
/// relayed answer that cannot be anchored becomes, so it never leaks the peer's address (an
/// answer cannot be refused with 488). Returns the body and its Content-Type: a body whose
/// SDP cannot be found (no Content-Type, a multipart body that cannot be taken apart or
/// encodes its SDP part) becomes the SDP-looking lines of it alone, as `application/sdp`,
/// or no body when it has none; a body without SDP stays as it is.
pub fn refuse_all(content_type: Option<&str>, body: &[u8], ip: IpAddr) -> (Bytes, Option<String>) {
    refuse_all_shaped(content_type, body, ip, None)
}

/// [`refuse_all`] for an answer to an offer of the sections `offered` (as
/// [`super::super::MediaBody::read_answer`] takes them): as many m= lines as the offer had
/// (RFC 3264 §6), the answer's extra ones left out, the missing ones the offer's, refused.
pub fn refuse_all_answering(
    content_type: Option<&str>,
    body: &[u8],
    ip: IpAddr,
    offered: &[Box<[u8]>],
) -> (Bytes, Option<String>) {
    refuse_all_shaped(content_type, body, ip, Some(offered))
}

fn refuse_all_shaped(
    content_type: Option<&str>,
    body: &[u8],
    ip: IpAddr,
    offered: Option<&[Box<[u8]>]>,
) -> (Bytes, Option<String>) {
    let refused = |sdp: &[u8]| match offered {
        None => rewrite(sdp, ip, &[], None, MAX_SECTIONS),
        Some(o) => {
            let all = rewrite(sdp, ip, &[], None, MAX_SECTIONS);
            super::super::sections::fit_sdp(&all, o, ip).unwrap_or(all)
        }
    };
    match locate(content_type, body) {
        Ok(Some(part)) => (
            part.splice(body, &refused(part.of(body))),
            content_type.map(str::to_string),
        ),
        Ok(None) => (
            Bytes::copy_from_slice(body),
            content_type.map(str::to_string),
        ),
        Err(_) => match sdp_lines(body) {
            // Nothing of SDP left to answer with (a base64 or gzip body): no body at all,
            // rather than an empty one called SDP, or bytes that may carry the address.
            lines if lines.is_empty() => (Bytes::new(), None),
            lines => (refused(&lines), Some("application/sdp".to_string())),
        },
    }
}

/// The answer the gateway itself gives to an offer it must answer but cannot take (an offer
/// in a 2xx is answered in the ACK even to refuse it, RFC 3261 §13.2.2.4): the offer's SDP
/// with every stream refused, sent as `application/sdp` (of a multipart offer, only its SDP
/// part answers; of a body whose SDP cannot be found, its SDP-looking lines). Its origin is
/// the gateway's own (RFC 3264 §5: `o=` names the answerer's session, not the offerer's),
/// numbered from the offer's bytes so that the same offer (a retransmitted 2xx) gets the
/// same answer. A peer already shown a session of the call's (`shown`, an anchored call's
/// existing dialog) sees that session go on instead, at the next version ([`Origin`]).
/// `None`: the body carries no SDP, so it is no offer ([`carries_sdp`]), or none that can be
/// found.
pub fn refusing_answer(
    content_type: Option<&str>,
    offer: &[u8],
    ip: IpAddr,
    shown: Option<&mut Option<Origin>>,
) -> Option<Bytes> {
    let sdp = match locate(content_type, offer) {
        Ok(Some(part)) => part.of(offer).to_vec(),
        Ok(None) => return None,
        Err(_) => sdp_lines(offer),
    };
    if !sdp.contains(&b'=') {
        // Not one SDP line: nothing to answer with.
        return None;
    }
    // FNV-1a: any fixed function of the offer will do, it names a session, not a secret.
    let session = sdp.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    Some(origin::shown_as(
        rewrite(&sdp, ip, &[], Some(session), MAX_SECTIONS),
        shown,
    ))
}

/// Whether a body (of Content-Type `content_type`) may hold an offer or answer: it has an
/// SDP, or may have one the gateway cannot find. An empty body, or one of another type (an
/// ISUP-only SIP-I body), has none.
pub fn carries_sdp(content_type: Option<&str>, body: &[u8]) -> bool {
    !matches!(locate(content_type, body), Ok(None))
}

/// The lines of `body` that have the form of SDP (`<letter>=…`), with their line ends:
/// what is left of a body whose SDP part cannot be found once boundaries, part headers and
/// other parts (an ISUP part, a base64 text) are dropped.
fn sdp_lines(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for l in lines(body) {
        if let [k, b'=', ..] = l.text
            && k.is_ascii_lowercase()
            && typed(&l, 0).is_ok()
        {
            out.extend_from_slice(l.text);
            out.extend_from_slice(l.eol);
        }
    }
    out
}

/// Real tokens are a few characters (`audio`, `UDP/TLS/RTP/SAVPF`, `101`); a line kept for
/// the call's life is cut at this, whatever a peer put in its tokens (without it, every
/// unanswered offer could add a section of one message's size).
const MAX_REFUSED_LINE: usize = 64;

/// Each media section of `sdp` as an answer refuses it, with its first format (`audio 0
/// RTP/AVP 0`; RFC 3264 §6 wants one, and a call keeps these for its life, so no peer's
/// hundred formats) and its `a=mid` (an offerer that bundles, RFC 8843, finds each answered
/// section by it), one line after the other (`\n` between): what an answer that left the
/// section out gets in its place ([`padded`]).
pub fn refused_sections(sdp: &[u8]) -> Vec<Box<[u8]>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut has_mid = false;
    for l in lines(sdp) {
        if let Some(m) = l.value(b"m=") {
            if out.len() >= MAX_SECTIONS {
                // (No offer the gateway takes has more: kept for a call's life, a peer's
                // 64 KiB of `m=` lines would be a megabyte of them.)
                break;
            }
            let line = refused_m_line(m);
            // media, port 0, transport, the first format.
            let end = (line.iter().enumerate())
                .filter(|(_, b)| **b == b' ')
                .nth(3)
                .map_or(line.len(), |(i, _)| i)
                .min(MAX_REFUSED_LINE);
            out.push(line[..end].to_vec());
            has_mid = false;
        } else if let Some(mid) = l.value(b"a=mid:")
            && let Some(section) = out.last_mut()
            && !has_mid
            && is_mid(mid)
        {
            section.extend_from_slice(b"\na=mid:");
            section.extend_from_slice(mid);
            has_mid = true;
        }
    }
    out.into_iter().map(Vec::into_boxed_slice).collect()
}

/// An `a=mid` value kept for a refused section: a token (RFC 5888 §4, SDP's token-char
/// of RFC 4566 §9) of at most 32 characters; another is left out rather than copied into
/// what we send.
fn is_mid(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b))
}

/// `sdp` with the sections `pad` appended, each refused (port 0) and at `ip`: an answer
/// has as many m= lines as its offer (RFC 3264 §6), and an offerer may refuse one that
/// has fewer, so the sections a peer's answer left out are added back as refused.
pub(in crate::sdp) fn padded(sdp: Bytes, ip: IpAddr, pad: &[Box<[u8]>]) -> Bytes {
    if pad.is_empty() {
        return sdp;
    }
    let eol: &[u8] = if sdp.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let family = addr_type(ip);
    let mut out = sdp.to_vec();
    if !out.ends_with(b"\n") {
        out.extend_from_slice(eol);
    }
    for section in pad {
        let mut lines = section.split(|&b| b == b'\n');
        out.extend_from_slice(b"m=");
        out.extend_from_slice(lines.next().unwrap_or_default());
        out.extend_from_slice(eol);
        out.extend_from_slice(format!("c=IN {family} {ip}").as_bytes());
        out.extend_from_slice(eol);
        for l in lines {
            out.extend_from_slice(l);
            out.extend_from_slice(eol);
        }
    }
    Bytes::from(out)
}
