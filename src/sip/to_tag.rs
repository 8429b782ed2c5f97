//! Adding our To tag to a response built from a request. sipx's header builder refuses
//! values it would accept on the wire (a NUL in a quoted-pair, RFC 4475 §3.1.1.2; a folded
//! To), so the tag is spliced into the serialized response and the result parsed back.

use bytes::Bytes;
use sipx_sip as sipx;
use sipx_sip::{Limits, StatusCode};

use super::{Hdr, Message, Request, Response, SipError};

/// Append `;tag=` to the To header of a serialized response and parse it back.
pub(super) fn splice_to_tag(resp: &Response, tag: &str) -> Result<Response, SipError> {
    let wire = resp.to_bytes();
    let head_end = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| SipError::Build("response without header terminator".into()))?;
    let (head, rest) = wire.split_at(head_end);
    let mut lines: Vec<Vec<u8>> = head.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
    let is_to = |l: &[u8]| {
        // A continuation line belongs to the header above it, whatever it holds.
        if matches!(l.first(), Some(b' ' | b'\t')) {
            return false;
        }
        let name: Vec<u8> = l.iter().take_while(|&&b| b != b':').copied().collect();
        let name = String::from_utf8_lossy(&name).trim().to_ascii_lowercase();
        name == "to" || name == "t"
    };
    let start = lines
        .iter()
        .position(|l| is_to(l))
        .ok_or(SipError::MissingHeader("To"))?;
    let mut last = start;
    while lines
        .get(last + 1)
        .is_some_and(|l| matches!(l.first(), Some(b' ' | b'\t')))
    {
        last += 1;
    }
    if let Some(line) = lines.get_mut(last) {
        let cr = line.last() == Some(&b'\r');
        if cr {
            line.pop();
        }
        line.extend_from_slice(format!(";tag={tag}").as_bytes());
        if cr {
            line.push(b'\r');
        }
    }
    let mut out = lines.join(&b'\n');
    out.extend_from_slice(rest);
    // The To was accepted at the parser's limit for one header; with our tag it may be just
    // over it, and so may the Via with our stamp of where the request came from: an answer
    // that cannot be built leaves its transaction unanswered.
    let base = Limits::stream();
    let tagged = tag.len() + ";tag=".len();
    let limits = Limits {
        max_header_bytes: base.max_header_bytes + tagged.max(super::via::STAMP_GROWTH),
        max_message_bytes: base.max_message_bytes + tagged + super::via::STAMP_GROWTH,
        ..base
    };
    match Message::from_sipx(
        sipx::parse_datagram(Bytes::from(out), &limits).map_err(SipError::from_parse)?,
    ) {
        Message::Response(r) => Ok(r),
        Message::Request(_) => Err(SipError::Build(
            "spliced response parsed as a request".into(),
        )),
    }
}

impl Response {
    /// A response to `req` carrying the headers RFC 3261 §8.2.6.2 copies (Via, From, To,
    /// Call-ID, CSeq). `to_tag` is added to To when To has none yet.
    pub fn to_request(
        req: &Request,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Result<Self, SipError> {
        let code = StatusCode::new(status).ok_or_else(|| SipError::Build(status.to_string()))?;
        let b = sipx::ResponseBuilder::to_request(&req.0, code, reason.to_string())
            .map_err(SipError::build)?;
        let mut resp = Response(b.build());
        // Not the request's History-Info back (RFC 7044 §9.4, which sipx's builder
        // follows): the gateway's own answers carry no cache (under `Privacy: history`
        // each entry came back three times its size: a stateless answer to a spoofed
        // source several times what provoked it), and a relayed answer carries the
        // callee's, as the header policy passes it.
        resp.0.headers.remove_all(&sipx::HeaderName::HistoryInfo);
        let Some(tag) = to_tag.filter(|_| resp.to_tag().is_none()) else {
            return Ok(resp);
        };
        // A To that is not UTF-8 (a display name's bytes are any bytes to the parser) is
        // tagged in its wire form: rebuilt from text, each such byte would come back as a
        // three-byte U+FFFD, a stateless answer three times its request's size toward
        // whatever address it claims to come from, and a To no longer the request's.
        let text = resp
            .0
            .headers
            .get(&sipx::HeaderName::To)
            .is_some_and(|h| std::str::from_utf8(&h.value()).is_ok());
        if !text
            || resp.header(&Hdr::TO).is_some_and(|to| {
                resp.set_header(&Hdr::TO, format!("{to};tag={tag}"))
                    .is_err()
            })
        {
            // (Also what sipx's header builder refuses: a NUL byte, which RFC 3261 §25.1
            // allows as a quoted-pair inside a display name, RFC 4475 §3.1.1.2.)
            resp = super::to_tag::splice_to_tag(&resp, tag)?;
        }
        Ok(resp)
    }
}
