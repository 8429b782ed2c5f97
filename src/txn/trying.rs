//! The 100 Trying a server transaction sends for an INVITE.

use crate::sip::{Hdr, Request, Response, SipError};

/// The 100 Trying for INVITE `req`, carrying its Timestamp (RFC 3261 §8.2.6.1: a peer
/// measures its round trip with it).
pub(super) fn trying_for(req: &Request) -> Result<Response, SipError> {
    let mut t = Response::to_request(req, 100, "Trying", None)?;
    let stamp = Hdr::named("Timestamp");
    if let Some(v) = req.header(&stamp) {
        t.insert_header_before_length(&stamp, v)?;
    }
    Ok(t)
}
