//! The one choke point every message toward a peer passes: its profile shapes what leaves
//! (numbers and URIs in the peer's form, hosts hidden, SDP ptime, whether it hears a Reason).
//! Shared by the live call path and `trunkgate explain`, so what `explain` prints is what
//! the wire gets.

use bytes::Bytes;

pub use super::sender::Sender;
use super::topology::{REHOSTED_HEADERS, filter_map_address_uris};
use super::uri::{DialPlan, is_telephone_number, peer_uri_in};
use crate::config::{Profile, Role};
use crate::sip::{
    Hdr, LocalAddrs, Method, NumberUri, Request, Response, SipError, Transport, dialled_number,
};

pub use super::allow::{ALLOW, allow_for};

/// The bodies the gateway takes (`Accept` in an answer to OPTIONS): SDP, alone or with ISUP
/// or QSIG beside it (SIP-I/SIP-T).
pub const ACCEPT: &str = "application/sdp, multipart/mixed";

/// The body of `msg` as it should reach `peer` ([`body_for`]); an encoded body
/// (`Content-Encoding: gzip`, say) passes untouched: an edit would corrupt it.
pub fn shaped_body<M: crate::sip::Body>(peer: &Profile, msg: &M) -> Bytes {
    if msg.encoded() {
        return msg.body().clone();
    }
    body_for(peer, msg.body(), msg.content_type().as_deref())
}

/// A body as it should reach `peer`: SDP gets the peer's ptime (when its profile sets one),
/// a plain SDP body or the SDP part of a multipart one (SIP-I) alike; everything else
/// passes untouched. Only for a body that is not encoded (see [`shaped_body`]).
pub fn body_for(peer: &Profile, body: &Bytes, content_type: Option<&str>) -> Bytes {
    let Some(ptime) = peer.ptime else {
        return body.clone();
    };
    if crate::sdp::is_sdp(content_type) {
        return crate::sdp::set_ptime(body, ptime).map_or_else(|| body.clone(), |e| e.body);
    }
    match crate::sdp::locate(content_type, body) {
        Ok(Some(part)) if part.multipart => crate::sdp::set_ptime(part.of(body), ptime)
            .map_or_else(|| body.clone(), |e| part.splice(body, &e.body)),
        _ => body.clone(),
    }
}

/// Whether a header value received can go into a message we build: no control character
/// but HTAB. One may come escaped in a quoted string (an escaped NUL, RFC 4475 §3.1.1.2),
/// and our builder refuses it; a header line carrying one is left out rather than failing
/// the whole message (and with it the call, or the BYE toward the other leg).
pub fn buildable(value: &str) -> bool {
    !crate::sip::has_control(value)
}

/// A Reason header value toward `peer`, or none when its profile does not want to hear one.
pub fn reason_for(peer: Option<&Profile>, reason: Option<String>) -> Option<String> {
    reason.filter(|_| peer.is_none_or(|p| p.causes.send_reason))
}

/// Whether a header of the other leg's message is copied to `peer`: its `[headers]`
/// policy, and no Reason of any kind to a peer whose profile sends none
/// (`[causes] send_reason = false`), the far leg's own included.
fn copies(peer: &Profile, h: &Hdr) -> bool {
    peer.headers.copies(h) && (peer.causes.send_reason || *h != Hdr::REASON)
}

/// Whether a header is copied as written: Reason never is. Its values go as we write them
/// ([`reasons_rebuilt`](crate::interop::causes::reasons_rebuilt)): a peer's malformed one (an
/// unterminated quoted text) must not reach the other peer, whichever message carries it.
fn copies_verbatim(peer: &Profile, h: &Hdr) -> bool {
    *h != Hdr::REASON && copies(peer, h)
}

/// Headers passed on only from a peer that is believed (`trust_asserted`), in requests and
/// responses alike: a priority claim (RFC 4412 §11: the requester must be authorised, and a
/// carrier may grant preemption on our word) and an early-media authorisation (RFC 5009 §8:
/// a network takes `P-Early-Media` only from an authorised source; before, a phone's 183
/// could open a carrier's gate for early media nobody is billed for). And a STIR/SHAKEN
/// `Identity` (RFC 8224), which an operator may `pass`: the gateway verifies none, and an
/// attestation from a phone (one replayed from another call) is not ours to vouch for.
fn needs_belief(h: &Hdr) -> bool {
    *h == Hdr::named("Resource-Priority")
        || *h == Hdr::named("P-Early-Media")
        || *h == Hdr::named("Identity")
}

/// Whether header `h` of a message from `sender` goes on to `peer` as it came, the message's
/// `Privacy` as `privacy` (and `user_hidden`: [`hides_user_info`] for them): a copied one
/// ([`copies_verbatim`]), from a believed sender when it must be ([`needs_belief`]), not
/// what the party wrote of itself under `Privacy: user`, and not a STIR/SHAKEN `Identity`
/// under `Privacy: id` toward a peer outside the trust domain (it names the caller as a
/// P-Asserted-Identity does; before, it went on where the P-Asserted-Identity was withheld).
///
/// [`hides_user_info`]: super::headers::hides_user_info
fn passes_as_it_came(
    peer: &Profile,
    sender: Sender,
    (privacy, user_hidden): (&[String], bool),
    h: &Hdr,
) -> bool {
    copies_verbatim(peer, h)
        && (sender.asserts || !needs_belief(h))
        && !(user_hidden && super::headers::is_user_info(h))
        && (*h != Hdr::named("Identity") || peer.headers.keeps_identity(h, privacy))
}

/// The other leg's Reason values for `peer`, as we write them (none when it takes none).
fn copied_reasons(peer: &Profile, lines: &[String]) -> Vec<String> {
    if copies(peer, &Hdr::REASON) {
        crate::interop::causes::reasons_rebuilt(lines)
    } else {
        Vec::new()
    }
}

/// An identity URI (From, P-Asserted-Identity, Diversion) toward `peer` for a number as
/// read from a URI, with its `phone-context` (a number local to a domain is not completed
/// into E.164), as dialled under `plan` (its sender's: [`Sender::plan`]): telephone numbers
/// in the peer's form, at the peer's domain for trunks and at the gateway for internal peers.
pub fn identity_uri_of(
    n: &NumberUri,
    was_tel: bool,
    local: &LocalAddrs,
    peer: &Profile,
    plan: Option<DialPlan>,
) -> String {
    identity_uri_in(n, was_tel, local, peer, &peer.uri, plan)
}

/// [`identity_uri_of`] written by `policy` (the peer's, or a variant of it).
pub fn identity_uri_in(
    n: &NumberUri,
    was_tel: bool,
    local: &LocalAddrs,
    peer: &Profile,
    policy: &crate::interop::uri::UriPolicy,
    plan: Option<DialPlan>,
) -> String {
    let host = match peer.role {
        Role::Trunk => peer.domain.clone(),
        Role::Internal => local.uri_host(),
    };
    let written = policy.written_from(n, plan);
    let private = super::uri::kept_context(n, &written);
    peer_uri_in(&written, private, &n.params, was_tel, policy, &host)
}

/// `number` (in global form) with the domain `phone-context` the URI it was read from gave
/// it, if any (what says a number is private to that domain, RFC 3966 §5.1.5), and that
/// URI's other number parameters.
pub fn local_to_domain(number: &str, uri: Option<&str>) -> NumberUri {
    let read = uri.and_then(dialled_number);
    // A local number with a global context was read into global form by routing, with the
    // place's prefixes (`010-1234-5678;phone-context=+86` is `+861012345678`): the callee
    // gets that number, the one the route was chosen for. One routing left local (a short
    // code, a `*#` service code) keeps its global context: `911;phone-context=+1` is the
    // US emergency number, not the callee's country's or domain's 911.
    let params = read.as_ref().map(|n| n.params.clone()).unwrap_or_default();
    let phone_context = read
        .and_then(|n| n.phone_context)
        .filter(|c| !c.starts_with('+') || !number.starts_with('+'));
    NumberUri {
        number: number.to_string(),
        phone_context,
        params,
    }
}

/// Whether `uri` is a tel: URI (a scheme is case-insensitive, RFC 3986 §3.1: `TEL:` is one).
pub fn is_tel(uri: &str) -> bool {
    uri.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("tel:"))
}

/// Rewrite an identity header value for `peer`: a telephone number keeps its identity in
/// the peer's URI form; any other `sip:`/`sips:` URI keeps only its user, at the gateway's
/// host (no URI parameter or header of the original: a `maddr`, a `?h=`, would name the
/// host again). An element that reads as neither (a broken name-addr, an unknown scheme) is
/// left out: what cannot be read cannot be known to hide the sender's hosts. `None` when no
/// element is left. `sender`: the peer the header came from; a trunk is trusted with the
/// number parameters that route or bill a call (a caller's category and line, `cpc` and
/// `oli`, describe the caller and so ride on its identity); from anyone else only a
/// subaddress and extension are carried, as in From. Its numbers are read as it dials.
pub fn identity_header(
    h: &Hdr,
    value: &str,
    local: &LocalAddrs,
    peer: &Profile,
    sender: Sender,
) -> Option<String> {
    let allowed = super::topology::identity_params(h);
    let keep_param =
        |name: &str| allowed.is_none_or(|a| a.iter().any(|k| k.eq_ignore_ascii_case(name)));
    let host = local.uri_host();
    // Header parameters are `token[=value]`: an `@` outside a quoted string is a URI that
    // did not read as one (`sip:alice;x@10.0.0.5`, unbracketed), host and all.
    let mangled = |params: &str| crate::sip::outside_quotes(params).any(|(_, b)| b == b'@');
    let rewrite = |uri: &str, params: &str| match dialled_number(uri) {
        _ if mangled(params) => None,
        Some(n) if is_telephone_number(&n.number) => {
            let n = NumberUri {
                params: n.trusted_params(sender.trunk),
                ..n
            };
            Some(identity_uri_of(&n, is_tel(uri), local, peer, sender.plan))
        }
        _ => at_our_host(uri, &host),
    };
    filter_map_address_uris(value, rewrite, keep_param)
}

/// A `sip:`/`sips:` URI as an identity that hides its host: its user alone, at `host` (the
/// gateway's); `None` when `uri` is no SIP URI.
pub fn at_our_host(uri: &str, host: &str) -> Option<String> {
    let (secure, user) = crate::sip::sip_uri_user(uri)?;
    let scheme = if secure { "sips" } else { "sip" };
    Some(match user {
        Some(user) => format!("{scheme}:{user}@{host}"),
        None => format!("{scheme}:{host}"),
    })
}

/// Whether a Remote-Party-ID value asks for privacy itself: a `privacy` parameter other
/// than `off` (draft-ietf-sip-privacy-04: `full`, `name`, `uri`).
fn asks_privacy(v: &str) -> bool {
    (crate::sip::outside_quotes(v))
        .filter(|&(_, b)| b == b';')
        .filter_map(|(i, _)| v.get(i + 1..)?.split(';').next()?.split_once('='))
        .any(|(k, val)| {
            k.trim().eq_ignore_ascii_case("privacy")
                && !val.trim().trim_matches('"').eq_ignore_ascii_case("off")
        })
}

/// The elements of identity header `h` carried at most. RFC 3325 §9.1 allows two
/// P-Asserted-Identity values (one sip or sips, one tel), and P-Preferred-Identity likewise;
/// a Diversion chain or a Remote-Party-ID list longer than ten is no real call's. Each
/// element grows when rewritten (the gateway's host, `;user=phone`): a 64 KB INVITE of
/// `tel:1,` elements was relayed as some 400 KB.
pub(crate) fn max_identities(h: &Hdr) -> usize {
    if *h == Hdr::P_ASSERTED_IDENTITY || *h == Hdr::P_PREFERRED_IDENTITY {
        2
    } else {
        10
    }
}

/// An identity header's lines rewritten for `peer` ([`identity_header`]), each URI once
/// and at most [`max_identities`] of them: an IMS core's sip and tel P-Asserted-Identity of
/// one number (a display name on one of them or not) become the same URI in the peer's
/// form, and RFC 3325 §9.1 allows one of each scheme, not two alike. A Remote-Party-ID
/// that asks for privacy itself
/// (`;privacy=full`, `uri` or `name`) reaches a peer outside the trust domain no more than
/// one under `Privacy: id`.
pub fn rewritten_identities(
    h: &Hdr,
    lines: &[String],
    local: &LocalAddrs,
    peer: &Profile,
    sender: Sender,
) -> Vec<String> {
    if *h == Hdr::HISTORY_INFO {
        // Entries may name one target twice (a loop back to it): none is merged.
        return super::history::rewrite(lines, local, peer, sender)
            .into_iter()
            .collect();
    }
    // Remote-Party-ID's and Diversion's own `privacy` (RFC 5806 §4: `full`, `uri`, `name`)
    // withholds that entry from a peer outside the trust domain, as `Privacy: id` does.
    let rpid_private = |v: &str| {
        (*h == Hdr::named("Remote-Party-ID") || *h == Hdr::named("Diversion")) && asks_privacy(v)
    };
    // The URI a rewritten value names: what `<>` hold (outside a quoted display name),
    // else the value.
    let uri_of = |v: &str| -> String {
        super::topology::name_addr_uri(v)
            .and_then(|(open, close)| v.get(open + 1..close))
            .unwrap_or(v)
            .to_string()
    };
    let max = max_identities(h);
    let one_per_kind = *h == Hdr::P_ASSERTED_IDENTITY || *h == Hdr::P_PREFERRED_IDENTITY;
    // (line, element) in order.
    let mut kept: Vec<(usize, String)> = Vec::new();
    let mut uris: Vec<String> = Vec::new();
    for (n, v) in lines.iter().filter(|v| buildable(v)).enumerate() {
        // Element by element: one line may list them all (`tel:1, tel:1, …`).
        for e in crate::sip::split_header_list(v) {
            // As many as the header takes, of a few times that looked at (a list of
            // thousands costs no more than a few).
            if kept.len() == max || uris.len() == 4 * max {
                break;
            }
            // (Each entry's own: one private hop of a Diversion chain withholds that one.)
            if !peer.headers.trust_identity && rpid_private(&e) {
                continue;
            }
            if let Some(e) = identity_header(h, &e, local, peer, sender)
                && !uris.contains(&uri_of(&e))
            {
                uris.push(uri_of(&e));
                if one_per_kind {
                    keep_one_per_scheme(&mut kept, (n, e), uri_of);
                } else {
                    kept.push((n, e));
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut last = None;
    for (n, e) in kept {
        match out.last_mut() {
            Some(line) if last == Some(n) => {
                line.push_str(", ");
                line.push_str(&e);
            }
            _ => out.push(e),
        }
        last = Some(n);
    }
    out
}

/// `e` joins the asserted identities `kept` so far, at most one of each kind, `sip`/`sips`
/// and `tel` (RFC 3325 §9.1: a second of one kind is refused, or one of them taken at
/// random), as rewritten for the peer: a PBX's `<sip:alice@pbx>, <tel:+1555…>` toward a
/// peer that takes `sip` numbers would be two sip URIs. Of two of a kind, the telephone
/// number is kept (what a carrier screens and bills), a global one before a local one, else
/// the first.
fn keep_one_per_scheme(
    kept: &mut Vec<(usize, String)>,
    (n, e): (usize, String),
    uri_of: impl Fn(&str) -> String,
) {
    let tel = |u: &str| u.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("tel:"));
    let rank = |u: &str| {
        let user =
            (u.split_once(':')).map_or("", |(_, rest)| rest.split(['@', ';']).next().unwrap_or(""));
        let digits = user.strip_prefix('+').unwrap_or(user);
        let number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        let phone = tel(u) || u.to_ascii_lowercase().contains(";user=phone");
        match (number || phone, user.starts_with('+')) {
            (true, true) => 2,
            (true, false) => 1,
            (false, _) => 0,
        }
    };
    let u = uri_of(&e);
    match kept.iter().position(|(_, k)| tel(&uri_of(k)) == tel(&u)) {
        None => kept.push((n, e)),
        Some(i) if rank(&u) > rank(&uri_of(&kept[i].1)) => kept[i] = (n, e),
        Some(_) => {}
    }
}

/// Copy end-to-end headers of `src` onto a request for `peer`: those its `[headers]` policy
/// lets through verbatim, identity headers with numbers in the peer's form and hosts hidden
/// (those `sender` may pass on: [`Sender`]), and our `User-Agent` when the profile names
/// one.
pub fn copy_end_to_end(
    out: &mut Request,
    src: &Request,
    local: &LocalAddrs,
    peer: &Profile,
    sender: Sender,
) -> Result<(), SipError> {
    let privacy = sender.privacy(src.header_lines(&Hdr::named("Privacy")));
    let user_hidden = super::headers::hides_user_info(&peer.headers, &privacy);
    out.copy_headers_where(src.headers_raw(), |h| {
        passes_as_it_came(peer, sender, (&privacy, user_hidden), h)
    });
    for v in copied_reasons(peer, &src.header_lines(&Hdr::REASON)) {
        out.push_header(&Hdr::REASON, v)?;
    }
    for h in REHOSTED_HEADERS
        .iter()
        .filter(|h| peer.headers.keeps_identity(h, &privacy) && sender.vouched(h))
    {
        for v in rewritten_identities(h, &src.header_lines(h), local, peer, sender) {
            out.push_header(h, v)?;
        }
    }
    super::sender::standing_privacy(out, &privacy)?;
    if let Some(ua) = &peer.headers.user_agent {
        out.push_header(&Hdr::USER_AGENT, ua.clone())?;
    }
    Ok(())
}

/// Our response to `origin` (a request from `to_peer`) mirroring the far leg's `from`:
/// status, reason, end-to-end headers and body in `to_peer`'s form; our own Contact; nothing
/// that names the far side's hosts. `sender`: the far leg's peer (see [`Sender`]).
pub fn relayed_response(
    origin: &Request,
    from: &Response,
    our_tag: &str,
    to_peer: &Profile,
    local: &LocalAddrs,
    sender: Sender,
) -> Result<Response, SipError> {
    let status = from.status();
    // A control character in the callee's reason phrase (the parser takes a NUL, an ESC
    // there) goes no further: a space in its place, the status still relayed.
    let reason: String = from
        .reason()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = Response::to_request(origin, status, &reason, Some(our_tag))?;
    let method = origin.method();
    let transport = match origin.top_via().map(|v| v.transport) {
        Some(t) if t == "TCP" => Transport::Tcp,
        _ => Transport::Udp,
    };
    if status > 100 && status < 300 && matches!(method, Method::Invite | Method::Update) {
        out.push_header(&Hdr::CONTACT, local.contact(transport))?;
    }
    // A response that creates the dialog carries the request's Record-Route (RFC 3261
    // §12.1.1): the caller's proxies (a SIP front among them) stay on the dialog's path.
    if status > 100 && status < 300 && method == Method::Invite && origin.to_tag().is_none() {
        for rr in origin.header_lines(&Hdr::RECORD_ROUTE) {
            out.push_header(&Hdr::RECORD_ROUTE, rr)?;
        }
    }
    if status == 405 {
        let ours = allow_for(to_peer, sender.trunk);
        let far = from.header_lines(&Hdr::ALLOW);
        let allow = super::allow::in_relayed_405(ours, method.as_str(), &far);
        out.push_header(&Hdr::ALLOW, allow)?;
    } else if matches!(method, Method::Invite) {
        out.push_header(&Hdr::ALLOW, allow_for(to_peer, sender.trunk))?;
    }
    // A 503's Retry-After speaks of the far leg's server (RFC 3261 §21.5.4), and so does a
    // 500's to a call's first INVITE: passed on, it would tell the caller's side the gateway
    // takes nothing for that long (a phone on a call could have a carrier stop sending
    // calls for a day with one answer to a refresh). A 500's to a re-INVITE is glare advice
    // (§14.2), and a 486's or 480's the callee's: they go on.
    let initial_invite = method == Method::Invite && origin.to_tag().is_none();
    let of_server = status == 503 || (status == 500 && initial_invite);
    let privacy = sender.privacy(from.header_lines(&Hdr::named("Privacy")));
    let user_hidden = super::headers::hides_user_info(&to_peer.headers, &privacy);
    out.copy_headers_where(from.headers_raw(), |h| {
        passes_as_it_came(to_peer, sender, (&privacy, user_hidden), h)
            && !(of_server && *h == Hdr::RETRY_AFTER)
    });
    for v in copied_reasons(to_peer, &from.header_lines(&Hdr::REASON)) {
        out.push_header(&Hdr::REASON, v)?;
    }
    // A 422 must say the minimum it asks for (RFC 4028 §6): the far leg's, the interval the
    // request's sender is to ask again with (Min-SE is per leg, else not copied).
    if status == 422
        && let Some(min) = from.header(&Hdr::MIN_SE).filter(|v| buildable(v))
    {
        out.push_header(&Hdr::MIN_SE, min)?;
    }
    for h in REHOSTED_HEADERS
        .iter()
        .filter(|h| to_peer.headers.keeps_identity(h, &privacy) && sender.vouched(h))
    {
        let lines = rewritten_identities(h, &from.header_lines(h), local, to_peer, sender);
        // The far leg's History-Info is the call's history: the request's own, which the
        // response built from it returns (RFC 7044 §9.4), would be a second set with the
        // same indexes.
        if *h == Hdr::HISTORY_INFO && !lines.is_empty() {
            out.remove_header(h);
        }
        for v in lines {
            out.push_header(h, v)?;
        }
    }
    super::sender::standing_privacy(&mut out, &privacy)?;
    if let Some(server) = &to_peer.headers.user_agent {
        out.push_header(&Hdr::SERVER, server.clone())?;
    }
    if from.body().is_empty() {
        out.set_no_body()?;
    } else {
        let ct = from.header(&Hdr::CONTENT_TYPE);
        out.set_body(shaped_body(to_peer, from), ct.as_deref())?;
        // (Refused only where it may carry the session: `isdn::may_carry_session`.)
        let method = from.cseq().map(|(_, m)| m);
        if super::isdn::for_peer(to_peer, &mut out).is_err()
            && method.is_some_and(|m| super::isdn::may_carry_session(&m, Some(from.status())))
        {
            return Err(super::isdn::Inseparable.into());
        }
    }
    Ok(out)
}
