//! Building the callee-side INVITE: a new dialog of the gateway's own that carries the
//! caller's end-to-end headers and body but none of its addresses. Shared by the live call
//! path and `trunkgate explain`, so what `explain` prints is what the wire gets.

use super::b2bua::{ALLOW, LocalAddrs};
use super::ids::IdGen;
use super::leg::Leg;
use crate::config::Profile;
use crate::interop::topology::{PER_LEG_HEADERS, REHOSTED_HEADERS, rehost_address};
use crate::sip::{Hdr, Method, Request, SipError};

/// The B-leg dialog and its initial INVITE toward `peer`.
pub(super) fn outbound_invite(
    local: &LocalAddrs,
    ids: &mut IdGen,
    a_req: &Request,
    number: &str,
    caller: &str,
    peer: &Profile,
) -> Result<(Leg, Request), SipError> {
    let host = local.host.as_str();
    let call_id = ids.call_id(host);
    let tag = ids.tag();
    let ruri = format!("sip:{}@{}", escape_user(number), peer.domain);
    let display = a_req
        .from_display()
        .map(|d| format!("\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\"")))
        .unwrap_or_default();
    let from_host = match a_req.from_uri() {
        Some(u) if u.to_ascii_lowercase().contains("@anonymous.invalid") => "anonymous.invalid",
        _ => host,
    };
    let from_hdr = format!(
        "{display}<sip:{}@{from_host}>;tag={tag}",
        escape_user(caller)
    );
    let to_hdr = format!("<{ruri}>");
    let leg = Leg {
        call_id: call_id.clone(),
        local_tag: tag,
        local_hdr: from_hdr.clone(),
        remote_hdr: to_hdr.clone(),
        remote_tag: None,
        remote_target: ruri.clone(),
        route_set: Vec::new(),
        local_cseq: 1,
        remote_cseq: None,
        target: peer.address,
    };
    let mf = match a_req.max_forwards() {
        Some(Ok(n)) => n.saturating_sub(1),
        _ => 70,
    };
    let mut r = Request::new(Method::Invite, &ruri)?;
    r.push_header(&Hdr::VIA, local.via(peer.address.transport, &ids.branch()))?;
    r.push_header(&Hdr::MAX_FORWARDS, mf.to_string())?;
    r.push_header(&Hdr::FROM, from_hdr)?;
    r.push_header(&Hdr::TO, to_hdr)?;
    r.push_header(&Hdr::CALL_ID, call_id)?;
    r.push_header(&Hdr::CSEQ, "1 INVITE")?;
    r.push_header(&Hdr::CONTACT, local.contact(peer.address.transport))?;
    r.push_header(&Hdr::ALLOW, ALLOW)?;
    copy_end_to_end(&mut r, a_req, host)?;
    r.push_header(&Hdr::CONTENT_LENGTH, "0")?;
    if !a_req.body().is_empty() {
        r.set_body(
            a_req.body().clone(),
            a_req.header(&Hdr::CONTENT_TYPE).as_deref(),
        )?;
    }
    Ok((leg, r))
}

/// Copy the caller's end-to-end headers onto the B-leg request: unknown headers verbatim,
/// identity headers with their hosts replaced, Supported without options we cannot honour.
pub(super) fn copy_end_to_end(
    out: &mut Request,
    src: &Request,
    host: &str,
) -> Result<(), SipError> {
    out.copy_headers_except(src.headers_raw(), &PER_LEG_HEADERS);
    for h in REHOSTED_HEADERS.iter() {
        for v in src.header_lines(h) {
            out.push_header(h, rehost_address(&v, host))?;
        }
    }
    let supported: Vec<String> = src
        .header_lines(&Hdr::SUPPORTED)
        .iter()
        .flat_map(|l| {
            l.split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("100rel"))
        .collect();
    if !supported.is_empty() {
        out.push_header(&Hdr::SUPPORTED, supported.join(", "))?;
    }
    Ok(())
}

/// Percent-encode what a SIP user part may not carry literally (RFC 3261 §25.1).
fn escape_user(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let ok = b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b);
        if ok {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        "anonymous".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::escape_user;

    #[test]
    fn user_escaping() {
        assert_eq!(escape_user("+8610#1"), "+8610%231");
        assert_eq!(escape_user(""), "anonymous");
    }
}
