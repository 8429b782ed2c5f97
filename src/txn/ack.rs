//! The ACK a client INVITE transaction sends for a non-2xx final response (RFC 3261
//! §17.1.1.3): the transaction's own, built from its INVITE and that response.

use crate::sip::{Hdr, Method, NewRequest, Request, Response, SipError};

/// The ACK for a non-2xx final response (§17.1.1.3): the INVITE's Request-URI, top Via (same
/// branch), From, Call-ID, Route set and CSeq number, with the response's To.
pub(super) fn non_2xx_ack(req: &Request, resp: &Response) -> Result<Request, SipError> {
    let via = req.header_lines(&Hdr::VIA);
    let top = via
        .first()
        .and_then(|v| crate::sip::split_header_list(v).into_iter().next())
        .ok_or(SipError::MissingHeader("Via"))?;
    let routes = req.header_lines(&Hdr::ROUTE);
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    let mut ack = NewRequest {
        method: Method::Ack,
        uri: &req.uri(),
        via: &top,
        max_forwards: 70,
        routes: &routes,
        from: &req
            .header(&Hdr::FROM)
            .ok_or(SipError::MissingHeader("From"))?,
        to: &resp.header(&Hdr::TO).ok_or(SipError::MissingHeader("To"))?,
        call_id: &req.call_id().ok_or(SipError::MissingHeader("Call-ID"))?,
        cseq: req.cseq().ok_or(SipError::MissingHeader("CSeq"))?.0,
    }
    .build()?;
    ack.push_header(&Hdr::CONTENT_LENGTH, "0")?;
    Ok(ack)
}
