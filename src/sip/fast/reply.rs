//! The stateless 503 for a new INVITE refused at the edge, built from the request's own
//! header lines (RFC 3261 §8.2.6.2), never much larger than the request.

use super::Head;

/// The stateless `503 Service Unavailable` + `Retry-After` for a new INVITE, with `to_tag`.
/// `None` when it would be larger than the request plus a small margin (no amplification).
pub fn refuse(
    head: &Head<'_>,
    request_len: usize,
    to_tag: &str,
    retry_after_s: u32,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(request_len.min(2048));
    out.extend_from_slice(b"SIP/2.0 503 Service Unavailable\r\n");
    for v in &head.vias[..head.n_vias] {
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(head.from);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(head.to);
    out.extend_from_slice(b";tag=");
    out.extend_from_slice(to_tag.as_bytes());
    out.extend_from_slice(b"\r\n");
    for line in [head.call_id, head.cseq] {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!("Retry-After: {retry_after_s}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    );
    (out.len() <= request_len + 64).then_some(out)
}
