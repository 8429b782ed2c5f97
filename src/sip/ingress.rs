//! The checks every message passes once, before any transaction or call sees it: RFC 3261
//! §8.2 for requests (with the `received`/`rport` stamp of §18.2.1 and RFC 3581), §18.1.2 for
//! responses. What fails is answered statelessly (never retransmitted) or dropped.

use super::{Hdr, LocalAddrs, Message, Request, Response, Target};

/// What happens to a message off the wire.
// `Accept` is the common case: boxing it would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Verdict {
    /// Hand it to the transaction layer.
    Accept(Message),
    /// Answer with one stateless response (400, or 505 for another SIP version), then drop.
    Reject {
        req: Box<Request>,
        status: u16,
        why: &'static str,
    },
    /// Drop silently: `reason` for counting (a metric label), `why` for the log.
    Drop {
        reason: &'static str,
        why: &'static str,
    },
}

/// Check a message that arrived from `source`.
pub fn check(msg: Message, source: Target, local: &LocalAddrs) -> Verdict {
    match msg {
        Message::Request(mut req) => match validate_request(&req) {
            Ok(()) => {
                req.stamp_received(source.addr);
                Verdict::Accept(Message::Request(req))
            }
            // No response to an ACK, and none without a Via to send it along.
            Err(why) if req.method() == super::Method::Ack || req.top_via().is_none() => {
                Verdict::Drop {
                    reason: "malformed_request",
                    why,
                }
            }
            Err(why) => {
                // Its one answer goes where it came from, and says so (RFC 3581 §4).
                req.stamp_received(source.addr);
                Verdict::Reject {
                    status: if req.version_supported() { 400 } else { 505 },
                    req: Box::new(req),
                    why,
                }
            }
        },
        Message::Response(resp) => match check_response(&resp, local) {
            Ok(()) => Verdict::Accept(Message::Response(resp)),
            Err((reason, why)) => Verdict::Drop { reason, why },
        },
    }
}

/// RFC 3261 §18.1.2: a response whose top Via is not ours is not for us. The error: the
/// metric's reason and the log's.
fn check_response(resp: &Response, local: &LocalAddrs) -> Result<(), (&'static str, &'static str)> {
    let via = resp
        .top_via()
        .filter(|_| resp.cseq().is_some())
        .ok_or(("malformed_response", "response without usable Via or CSeq"))?;
    if !local.is_ours(&via) {
        return Err(("foreign_response", "response whose top Via is not ours"));
    }
    // RFC 3261 §8.1.3.3: we sent one Via; a response with more was changed on its way (or
    // is meant for someone else through us) and is discarded.
    if resp.count_values(&Hdr::VIA) > 1 {
        return Err(("foreign_response", "response with more than one Via"));
    }
    // Its route set is kept for the whole call (see `MAX_HOPS`).
    if resp.count_values(&Hdr::RECORD_ROUTE) > MAX_HOPS {
        return Err((
            "malformed_response",
            "response with more Record-Route entries than hops",
        ));
    }
    Ok(())
}

/// Vias or Record-Route entries a message may carry at most: the hops a request makes
/// with RFC 3261's initial Max-Forwards (§8.1.1.6). A route set is kept for the call's
/// life and each response repeats the Vias: thousands of tiny entries in one message made
/// a call hold several times the message's size, one allocation an entry.
pub const MAX_HOPS: usize = 70;

/// Checks RFC 3261 §8.2 asks of every request before anything else looks at it.
pub fn validate_request(req: &Request) -> Result<(), &'static str> {
    if !req.version_supported() {
        return Err("SIP version not supported");
    }
    let via = req.top_via().ok_or("missing or malformed Via")?;
    if req.count_values(&Hdr::VIA) > MAX_HOPS || req.count_values(&Hdr::RECORD_ROUTE) > MAX_HOPS {
        return Err("more Via or Record-Route entries than a request makes hops (70)");
    }
    if req.uri_has_headers() {
        return Err("Request-URI must not carry headers");
    }
    // A request in a dialog is not refused for its Date (RFC 4475 §3.1.2.12: only a Date
    // that matters may be): nothing here reads it, and a BYE refused would leave the other
    // leg up, an ACK dropped would end the call. It is not copied on
    // (`Request::copy_headers_where`).
    if let Some(date) = req.header(&Hdr::named("Date"))
        && !super::is_sip_date(&date)
        && req.to_tag().is_none()
    {
        return Err("Date must be an RFC 1123 date in GMT");
    }
    for contact in req.header_lines(&Hdr::CONTACT) {
        for c in super::split_header_list(&contact) {
            // RFC 3261 §20: a URI with ',', '?' or ';' must be in <> (else it is misread).
            if !c.contains('<') && c.trim() != "*" && c.contains('?') {
                return Err("Contact URI with headers must be enclosed in <>");
            }
        }
    }
    // A header that takes one value, given twice (two lines, a compact form beside the long
    // one, or a list): every reader here takes the first, a peer behind may take the other,
    // and our answer would copy both (RFC 4475's multi01 torture message wants a 400).
    for h in [&Hdr::CALL_ID, &Hdr::CSEQ, &Hdr::MAX_FORWARDS] {
        if req.count_values(h) > 1 {
            return Err("a single-valued header is given more than once");
        }
    }
    for h in [&Hdr::FROM, &Hdr::TO] {
        if req.header_lines(h).len() > 1 {
            return Err("From or To is given more than once");
        }
    }
    if via.branch.is_none() && req.cseq().is_none() {
        return Err("missing or malformed CSeq");
    }
    let (_, cseq_method) = req.cseq().ok_or("missing or malformed CSeq")?;
    if cseq_method != req.method() {
        return Err("CSeq method does not match the request method");
    }
    if req.call_id().is_none_or(|c| c.is_empty()) {
        return Err("missing Call-ID");
    }
    if req.from_uri().is_none() {
        return Err("missing or malformed From");
    }
    if req.to_uri().is_none() {
        return Err("missing or malformed To");
    }
    if let Some(Err(_)) = req.max_forwards() {
        return Err("malformed Max-Forwards");
    }
    Ok(())
}

/// A response to `req` with an optional To tag and extra headers (before Content-Length).
pub fn response_to(
    req: &Request,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(Hdr, &str)],
) -> Result<Response, super::SipError> {
    let mut resp = Response::to_request(req, status, reason, to_tag)?;
    for (h, v) in extra {
        resp.insert_header_before_length(h, v.to_string())?;
    }
    Ok(resp)
}
