//! Building the callee-side INVITE: a new dialog of the gateway's own that carries the
//! caller's end-to-end headers and body (shaped by `interop::egress`) but none of its
//! addresses. Shared by the live call path and `trunkgate explain`, so what `explain` prints
//! is what the wire gets.

use super::dialog::Dialog;
use crate::config::Profile;
use crate::interop::egress::{
    Sender, allow_for, copy_end_to_end, identity_uri_of, is_tel, local_to_domain, shaped_body,
};
use crate::interop::prack::PrackMode;
use crate::interop::uri::{kept_context, peer_uri_in, request_uri_in};
use crate::sip::{Hdr, IdGen, LocalAddrs, Method, NewRequest, Request, SipError, session};

/// The B-leg dialog and its initial INVITE toward `peer`. `number` and `caller` are the
/// called and calling numbers in global form (a tel: phone-context already applied); the
/// peer's `[uri]` policy decides how they are written. `caller_peer`: the caller's peer; a
/// trunk is trusted with the number parameters that route or bill a call (`rn`, `npdi`,
/// `cic`, `cpc`, `oli`): from anyone else only a subaddress and extension are carried.
pub fn outbound_invite(
    local: &LocalAddrs,
    ids: &mut IdGen,
    a_req: &Request,
    number: &str,
    caller: &str,
    peer: &Profile,
    caller_peer: Sender,
) -> Result<(Dialog, Request), SipError> {
    let from_trunk = caller_peer.trunk;
    let host = local.host.as_str();
    let call_id = ids.call_id(host);
    let tag = ids.tag(&call_id);
    let policy = &peer.uri;
    let inbound_tel = a_req.uri_scheme() == "tel";
    // A number private to a domain (`tel:1234;phone-context=pbx.example.com`) is not
    // completed into E.164: its context comes from the URI it was dialled with.
    let dialled = local_to_domain(number, Some(&a_req.uri()));
    // Read as the caller's peer dials (its prefixes), written as this peer takes it.
    let called = policy.written_from(&dialled, caller_peer.plan);
    let private = kept_context(&dialled, &called);
    let params = dialled.trusted_params(from_trunk);
    let params = params.as_str();
    let ruri = request_uri_in(&called, private, params, inbound_tel, policy, &peer.domain);
    let to_uri = peer_uri_in(&called, private, params, inbound_tel, policy, &peer.domain);
    // A caller who asked to be private is anonymous to a peer outside the trust domain: its
    // From names nobody, as the P-Asserted-Identity that peer does not get. (A carrier may
    // send the number in From too, trusting its own network not to show it.)
    let privacy = caller_peer.privacy(a_req.header_lines(&Hdr::named("Privacy")));
    let hidden = crate::interop::headers::hides_caller(&peer.headers, &privacy);
    // Control characters (a NUL, RFC 4475 §3.1.1.2) may come escaped in a quoted string,
    // but no header we build may carry them: the name loses them, the call goes on.
    let display = a_req
        .from_display()
        .filter(|_| !hidden)
        .map(|d| {
            d.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
        })
        .map(|d| format!("\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\"")))
        .unwrap_or_else(|| {
            if hidden {
                "\"Anonymous\" ".into()
            } else {
                String::new()
            }
        });
    let anonymous = hidden
        || caller == "anonymous"
        || a_req
            .from_uri()
            .is_some_and(|u| u.to_ascii_lowercase().contains("@anonymous.invalid"));
    let from_uri = if anonymous {
        "sip:anonymous@anonymous.invalid".to_string()
    } else {
        let mut calling = local_to_domain(caller, a_req.from_uri().as_deref());
        calling.params = calling.trusted_params(from_trunk);
        identity_uri_of(
            &calling,
            a_req.from_uri().is_some_and(|u| is_tel(&u)),
            local,
            peer,
            caller_peer.plan,
        )
    };
    let from_hdr = format!("{display}<{from_uri}>;tag={tag}");
    let to_hdr = format!("<{to_uri}>");
    let leg = Dialog {
        call_id: call_id.as_str().into(),
        local_tag: tag.into(),
        local_hdr: from_hdr.as_str().into(),
        remote_hdr: to_hdr.as_str().into(),
        remote_tag: None,
        // In-dialog requests before the callee's Contact is known go where the INVITE went.
        remote_target: ruri.as_str().into(),
        route_set: Box::default(),
        local_cseq: 1,
        remote_cseq: None,
        target: peer.address,
        peer_allows: None,
        peer_refused: Default::default(),
        answered: false,
    };
    let mf = match a_req.max_forwards() {
        Some(Ok(n)) => n.saturating_sub(1),
        _ => 70,
    };
    let mut r = NewRequest {
        method: Method::Invite,
        uri: &ruri,
        via: &local.via(peer.address.transport, &ids.branch()),
        max_forwards: u32::from(mf),
        routes: &[],
        from: &from_hdr,
        to: &to_hdr,
        call_id: &call_id,
        cseq: 1,
    }
    .build()?;
    r.push_header(&Hdr::CONTACT, local.contact(peer.address.transport))?;
    r.push_header(&Hdr::ALLOW, allow_for(peer, from_trunk))?;
    copy_end_to_end(&mut r, a_req, local, peer, caller_peer)?;
    // Supported lists what the gateway itself supports as this leg's UAC (RFC 3261
    // §20.37), never the caller's list: the caller's `replaces`, `timer` or `gruu` are
    // extensions the gateway does not implement. 100rel and session timers are the peer's
    // profile's business; 199 (RFC 6228: a forking proxy's word that one branch's early
    // dialog is over) the gateway always takes.
    let supported: Vec<&str> = [
        matches!(peer.prack.mode, PrackMode::Supported | PrackMode::Required).then_some("100rel"),
        peer.session_timer
            .supported()
            .then_some(session::OPTION_TAG),
        Some("199"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !supported.is_empty() {
        r.push_header(&Hdr::SUPPORTED, supported.join(", "))?;
    }
    if peer.prack.mode == PrackMode::Required {
        r.push_header(&Hdr::REQUIRE, "100rel")?;
    }
    for (h, v) in peer.session_timer.request_headers(None) {
        r.push_header(&h, v)?;
    }
    r.push_header(&Hdr::CONTENT_LENGTH, "0")?;
    if !a_req.body().is_empty() {
        let ct = a_req.header(&Hdr::CONTENT_TYPE);
        r.set_body(shaped_body(peer, a_req), ct.as_deref())?;
        crate::interop::isdn::for_peer(peer, &mut r)?;
    }
    Ok((leg, r))
}
