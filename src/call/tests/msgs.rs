//! Messages the tests' phones and carriers send.

use super::*;

/// [`invite_text`] without SDP (a late offer).
pub(super) fn offerless_text(call_id: &str, branch: &str, extra: &str) -> String {
    invite_text(call_id, branch, "+8610123", extra)
        .replace("Content-Type: application/sdp\r\n", "")
        .replace(
            &format!("Content-Length: {}\r\n\r\n{SDP}", SDP.len()),
            "Content-Length: 0\r\n\r\n",
        )
}

pub(super) fn invite_text(call_id: &str, branch: &str, number: &str, extra: &str) -> String {
    format!(
        "INVITE sip:{number}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\n\
         To: <sip:{number}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:1000@127.0.0.2:5060>\r\n\
         X-Custom: keep me\r\n\
         P-Asserted-Identity: \"Alice\" <sip:1000@127.0.0.2>\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// The phone's CANCEL of its INVITE `invite_text(call_id, branch, "+8610123", …)`.
pub(super) fn cancel_text(call_id: &str, branch: &str) -> String {
    format!(
        "CANCEL sip:+8610123@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:1000@127.0.0.2>;tag=alice1\r\n\
         To: <sip:+8610123@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 CANCEL\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A 2xx to `req` without a To tag (an RFC 2543 peer's), with `contact` and `sdp`.
pub(super) fn tagless_2xx(req: &Request, contact: &str, sdp: &str) -> Message {
    let mut ok = Response::to_request(req, 200, "OK", None).unwrap();
    ok.push_header(&Hdr::CONTACT, contact.to_string()).unwrap();
    ok.set_body(Bytes::from(sdp.to_string()), Some("application/sdp"))
        .unwrap();
    Message::Response(ok)
}

/// A response from a peer to a request the gateway sent it.
pub(super) fn reply(
    req: &Request,
    status: u16,
    tag: &str,
    extra: &[(Hdr, &str)],
    body: Option<&str>,
) -> Message {
    let reason = match status {
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        486 => "Busy Here",
        487 => "Request Terminated",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let mut r = Response::to_request(req, status, reason, Some(tag)).unwrap();
    r.remove_header(&Hdr::CONTENT_LENGTH);
    for (h, v) in extra {
        r.push_header(h, v.to_string()).unwrap();
    }
    r.push_header(&Hdr::CONTENT_LENGTH, "0").unwrap();
    if let Some(b) = body {
        r.set_body(Bytes::from(b.to_string()), Some("application/sdp"))
            .unwrap();
    }
    Message::Response(r)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn in_dialog(
    method: &str,
    ruri: &str,
    from: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    branch: &str,
    via_host: &str,
    body: &str,
) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via_host};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:{via_host}>\r\n\
         {ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}
