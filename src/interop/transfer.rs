//! Call transfer (REFER, RFC 3515) between the legs, per the referring peer's `[transfer]`.
//!
//! Relaying a REFER lets one party make the other party's side place a call. The `Refer-To`
//! the transferee gets names the gateway (`sip:NUMBER@<advertise>`), so the new call comes
//! here and is routed, limited and recorded as a call from the transferee's profile, like
//! any other, when the transferee follows it. A trunk that transfers in its own network
//! dials the number itself instead, around the gateway: a REFER goes to a trunk only when
//! the referrer's `[transfer] to_trunks` allows it (`call/midcall.rs`).

use std::sync::Arc;

use crate::interop::uri::{DialPlan, UriPolicy, escape_user, normalise_number, peer_uri_in};
use crate::sip::{dialled_number, split_header_list};

/// `[transfer] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransferMode {
    /// REFER from this peer gets 403 (RFC 3515 lets the recipient refuse).
    #[default]
    Refuse,
    /// REFER from this peer goes to the other leg, its target rewritten to the gateway;
    /// the transferee's progress reports (NOTIFY, `Event: refer`) come back.
    Relay,
}

/// A callee's redirect (its 3xx's Contacts, `contacts`: header lines) as the caller may
/// follow it: each target that names a telephone number, at the gateway (written as a
/// transfer's target is, [`refer_to_via_gateway`]), most preferred first (RFC 3261
/// §8.1.3.4: by `q`, 1 when unstated; as listed when equal), each once, at most four, a
/// stated `q` kept. The rest are dropped: the gateway follows no redirect to a host a peer
/// names, nor sends a caller there; a caller that follows one of these calls the number
/// through the gateway's routes and limits. Before, they kept header order and repeats: a
/// preferred fifth target was cut, and the caller dialled one number several times.
pub fn redirect_targets(
    contacts: &[String],
    at: &str,
    from_trunk: bool,
    places: &Arc<[DialPlan]>,
) -> Vec<String> {
    let mut found: Vec<(u16, String, Option<String>)> = contacts
        .iter()
        .flat_map(|line| split_header_list(line))
        .take(MAX_REDIRECT_CONTACTS)
        .filter_map(|c| {
            let (q, stated) = contact_q(&c);
            Some((q, refer_target(&c, at, from_trunk, places).ok()?, stated))
        })
        .collect();
    // (Stable: equal preferences stay as listed.)
    found.sort_by_key(|(q, _, _)| std::cmp::Reverse(*q));
    let mut out: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (_, target, stated) in found {
        if out.len() == 4 {
            break;
        }
        if seen.contains(&target) {
            continue;
        }
        seen.push(target.clone());
        out.push(match stated {
            Some(q) => format!("{target};q={q}"),
            None => target,
        });
    }
    out
}

/// Contacts of one redirect read at most: a peer's 3xx listing thousands costs no more.
const MAX_REDIRECT_CONTACTS: usize = 32;

/// A Contact entry's `q` (RFC 3261 §20.10), in thousandths (1000 when unstated or past
/// reading), and its text when stated and well-formed.
fn contact_q(entry: &str) -> (u16, Option<String>) {
    // The header's parameters: after the name-addr's `>`, or, for an addr-spec, after its
    // first `;` (RFC 3261 §20: they are the header's, not the URI's).
    let params = match entry.rfind('>') {
        Some(i) => entry.get(i + 1..).unwrap_or_default(),
        None => entry.split_once(';').map_or("", |(_, p)| p),
    };
    let q = params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
    });
    match q.and_then(|v| parse_q(v).map(|n| (n, v))) {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (1000, None),
    }
}

/// A `qvalue` (`0`, `0.5`, `1.000`: RFC 3261 §25.1) in thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = |s: &str| s.bytes().fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    let milli = digits(frac) * [1000, 100, 10, 1][frac.len()];
    match int {
        "0" => Some(milli),
        "1" if milli == 0 => Some(1000),
        _ => None,
    }
}

/// Whether a transfer (a REFER, or a redirect) from `referrer` goes on to the call's other
/// leg (`other_is_trunk`: its peer is a trunk, or not known): only when its `[transfer]`
/// relays, and to a trunk only when `to_trunks` says so. The target names the gateway, but
/// a carrier that performs transfers in its network dials the number itself, billed to the
/// trunk's account: no route, limit or CDR of ours applies (a dial-through from an
/// auto-attendant becomes a premium-rate call).
pub fn relays_to(referrer: &crate::config::Profile, other_is_trunk: bool) -> bool {
    referrer.transfer == TransferMode::Relay && (!other_is_trunk || referrer.transfer_to_trunks)
}

/// Why a REFER cannot be relayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferError {
    #[error("no Refer-To, or more than one")]
    Missing,
    #[error("the transfer target is not a telephone number")]
    NotANumber,
    /// `;method=BYE` (a conference focus asking a participant to leave, RFC 4579): made an
    /// INVITE to the number, it would place a call.
    #[error("the transfer target asks for another method than INVITE")]
    NotAnInvite,
}

/// The `Refer-To` toward the transferee for the referrer's `value`: the target's number at
/// the gateway's host. URI parameters and embedded headers (`?Replaces=…`, which would name
/// the other leg's dialog) are dropped, so an attended transfer becomes a blind one. The
/// number keeps what says which line it reaches: a domain's `phone-context` (a private
/// extension, RFC 3966 §5.1.5), its `isub`/`ext`, and from a trunk (`from_trunk`) the
/// parameters that route it (`rn`/`npdi`), written in the user part with `;user=phone`.
/// `at` is where peers dial the gateway: its host and port, then any URI parameters
/// (`;transport=tcp`, [`crate::sip::LocalAddrs::dial_at`]), which end the target's URI.
pub fn refer_to_via_gateway(value: &str, at: &str, from_trunk: bool) -> Result<String, ReferError> {
    refer_target(value, at, from_trunk, &Arc::from(Vec::new()))
}

/// [`refer_to_via_gateway`], a number dialled within a global `phone-context` read with
/// that country's prefixes when a profile gives them (`places`: `Config::dial_plans`), as the
/// call it makes will be.
pub fn refer_target(
    value: &str,
    at: &str,
    from_trunk: bool,
    places: &Arc<[DialPlan]>,
) -> Result<String, ReferError> {
    // No `;` stands in a host and port, bracketed IPv6 included.
    let (host, uri_params) = at.find(';').map_or((at, ""), |i| at.split_at(i));
    let elements = split_header_list(value);
    let [element] = elements.as_slice() else {
        return Err(ReferError::Missing);
    };
    let uri = match super::topology::name_addr_uri(element) {
        Some((open, close)) => &element[open + 1..close],
        None => element.split(';').next().unwrap_or_default(),
    };
    // Embedded headers first: `sip:100@pbx?Replaces=…` is not a number URI otherwise.
    let uri = uri.split('?').next().unwrap_or_default().trim();
    let method = (uri.split(';').skip(1).filter_map(|p| p.split_once('=')))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("method"));
    if method.is_some_and(|(_, m)| !m.trim().eq_ignore_ascii_case("INVITE")) {
        return Err(ReferError::NotAnInvite);
    }
    let read = dialled_number(uri).ok_or(ReferError::NotANumber)?;
    let reading = UriPolicy {
        places: places.clone(),
        ..UriPolicy::default()
    };
    let number = normalise_number(&read, &reading);
    if !is_number(&number) {
        return Err(ReferError::NotANumber);
    }
    let params = read.trusted_params(from_trunk);
    // (A domain's, or a global one on a number it did not make global: a short code.)
    let private = super::uri::kept_context(&read, &number);
    if params.is_empty() && private.is_none() {
        // `#` stands escaped in a user part (RFC 3261 §25.1).
        return Ok(format!("<sip:{}@{host}{uri_params}>", escape_user(&number)));
    }
    let phone = UriPolicy {
        user_phone: true,
        ..UriPolicy::default()
    };
    Ok(format!(
        "<{}{uri_params}>",
        peer_uri_in(&number, private, &params, false, &phone, host)
    ))
}

/// The CSeq of the REFER an `Event: refer;id=N` value names, or `None` when it names none
/// that can be read (without an id it is the dialog's first REFER, RFC 3515 §2.4.6).
pub fn refer_event_id(value: &str) -> Option<u32> {
    // Parameters cut outside quoted strings: `x="a;id=5"` holds no id.
    crate::sip::split_params(value)
        .into_iter()
        .skip(1)
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("id")
                .then(|| v.trim().parse().ok())?
        })
}

/// `value` (an `Event: refer…`) naming the REFER with CSeq `id` instead: its `id` replaced
/// or added, its other parameters kept (but one holding a control character).
pub fn refer_event_naming(value: &str, id: u32) -> String {
    let mut out = String::from("refer");
    for p in crate::sip::split_params(value).into_iter().skip(1) {
        let name = p.split('=').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("id") && !name.is_empty() && !crate::sip::has_control(p) {
            out.push(';');
            out.push_str(p.trim());
        }
    }
    out.push_str(&format!(";id={id}"));
    out
}

fn is_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    !digits.is_empty()
        && digits.len() <= 32
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_the_number_at_the_gateway() {
        assert_eq!(
            refer_to_via_gateway(
                "<sip:+8610456@10.0.0.7:5060;user=phone>",
                "gw.example",
                false
            )
            .unwrap(),
            "<sip:+8610456@gw.example>"
        );
        assert_eq!(
            refer_to_via_gateway("sip:2001@pbx.local", "gw", false).unwrap(),
            "<sip:2001@gw>"
        );
        assert_eq!(
            refer_to_via_gateway("<tel:+86-10-456>", "gw", false).unwrap(),
            "<sip:+8610456@gw>"
        );
    }

    /// A '>' in a quoted header parameter does not end the target's URI.
    #[test]
    fn a_quoted_angle_after_the_target_is_not_its_end() {
        assert_eq!(
            refer_to_via_gateway(r#"<sip:2001@pbx>;x="a>b""#, "gw", false).unwrap(),
            "<sip:2001@gw>"
        );
        assert_eq!(
            refer_to_via_gateway(r#""Sales <EMEA>" <sip:2001@pbx>"#, "gw", false).unwrap(),
            "<sip:2001@gw>"
        );
    }

    /// A service code's `#` goes escaped (RFC 3261 §25.1 allows it in no user part).
    #[test]
    fn a_hash_in_the_target_is_escaped() {
        assert_eq!(
            refer_to_via_gateway("<sip:*21%23@pbx>", "gw", false).unwrap(),
            "<sip:*21%23@gw>"
        );
    }

    /// A gateway reached over TCP only says so in the target, after everything else the URI
    /// holds (before, the transferee dialled it over UDP, where nothing listens).
    #[test]
    fn the_target_ends_with_the_gateways_uri_parameters() {
        let at = "gw:5071;transport=tcp";
        assert_eq!(
            refer_to_via_gateway("<sip:2001@pbx>", at, false).unwrap(),
            "<sip:2001@gw:5071;transport=tcp>"
        );
        assert_eq!(
            refer_to_via_gateway("<tel:+8610456;ext=22>", at, false).unwrap(),
            "<sip:+8610456;ext=22@gw:5071;user=phone;transport=tcp>"
        );
        assert_eq!(
            refer_to_via_gateway("<sip:2001@pbx>", "[2001:db8::1]:5071;transport=tcp", false)
                .unwrap(),
            "<sip:2001@[2001:db8::1]:5071;transport=tcp>"
        );
        assert_eq!(
            redirect_targets(
                &["<sip:2001@pbx>".into()],
                at,
                false,
                &Arc::from(Vec::new())
            ),
            ["<sip:2001@gw:5071;transport=tcp>"]
        );
    }

    /// A redirect's targets go most preferred first (by `q`, 1 when unstated, as listed when
    /// equal), each once, their `q` kept; a `q` past reading counts as 1.
    #[test]
    fn a_redirects_targets_go_by_preference_each_once() {
        let targets = |c: &str| redirect_targets(&[c.into()], "gw", false, &Arc::from(Vec::new()));
        assert_eq!(
            targets("<sip:+1@a>;q=0.1, <sip:+2@b>;q=1.0, <sip:+2@c>;q=0.5, <sip:+3@d>"),
            ["<sip:+2@gw>;q=1.0", "<sip:+3@gw>", "<sip:+1@gw>;q=0.1"]
        );
        assert_eq!(
            targets("<sip:+1@a>;q=0.25, sip:+4@e;q=0.9, <sip:+5@f>;q=7"),
            ["<sip:+5@gw>", "<sip:+4@gw>;q=0.9", "<sip:+1@gw>;q=0.25"]
        );
        assert_eq!(
            contact_q("<sip:x@h;q=0.2>"),
            (1000, None),
            "a URI's own parameter"
        );
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
    }

    /// What says which line the number reaches goes with it: a private extension's domain,
    /// an extension or subaddress; a ported number's routing number only from a trunk.
    #[test]
    fn the_target_keeps_its_context_and_extension() {
        assert_eq!(
            refer_to_via_gateway("<tel:2001;phone-context=pbx.example.com>", "gw", false).unwrap(),
            "<sip:2001;phone-context=pbx.example.com@gw;user=phone>"
        );
        assert_eq!(
            refer_to_via_gateway("<tel:+8610456;ext=22>", "gw", false).unwrap(),
            "<sip:+8610456;ext=22@gw;user=phone>"
        );
        let ported = "<sip:+8610456;rn=+8610999;npdi@carrier;user=phone>";
        assert_eq!(
            refer_to_via_gateway(ported, "gw", false).unwrap(),
            "<sip:+8610456@gw>"
        );
        assert_eq!(
            refer_to_via_gateway(ported, "gw", true).unwrap(),
            "<sip:+8610456;npdi;rn=+8610999@gw;user=phone>"
        );
        // A global context makes the number global, as anywhere; a short code stays local,
        // with its context.
        assert_eq!(
            refer_to_via_gateway("<tel:64561234;phone-context=+8610>", "gw", false).unwrap(),
            "<sip:+861064561234@gw>"
        );
        assert_eq!(
            refer_to_via_gateway("<tel:114;phone-context=+8610>", "gw", false).unwrap(),
            "<sip:114;phone-context=+8610@gw;user=phone>"
        );
        assert_eq!(
            refer_to_via_gateway("<tel:114;phone-context=+86>", "gw", false).unwrap(),
            "<sip:114;phone-context=+86@gw;user=phone>"
        );
        // A profile of that country says how it dials: its national prefix goes, and its
        // service numbers (5 digits in China) stay local. Before, the target was read
        // without it: `+8601012345678` and `+8610086`.
        let china = UriPolicy {
            country_code: Some("86".into()),
            short_code_digits: 5,
            ..UriPolicy::default()
        };
        let places = Arc::from(vec![china.dial_plan().unwrap()]);
        let target = |v: &str| refer_target(v, "gw", false, &places).unwrap();
        assert_eq!(
            target("<tel:010-1234-5678;phone-context=+86>"),
            "<sip:+861012345678@gw>"
        );
        assert_eq!(
            target("<tel:10086;phone-context=+86>"),
            "<sip:10086;phone-context=+86@gw;user=phone>"
        );
    }

    #[test]
    fn a_refer_events_id_is_read_and_renamed() {
        assert_eq!(refer_event_id("refer"), None);
        assert_eq!(refer_event_id("Refer ; id = 93809824"), Some(93_809_824));
        assert_eq!(refer_event_id("refer;id=x"), None);
        assert_eq!(refer_event_naming("refer", 7), "refer;id=7");
        assert_eq!(refer_event_naming("refer;id=1;x=y", 7), "refer;x=y;id=7");
        assert_eq!(
            refer_event_naming("refer;x=\u{1b};id=1;y=\u{0};z=1", 7),
            "refer;z=1;id=7",
            "a parameter holding a control character stays behind"
        );
        // A quoted parameter value is one, whatever it holds: before, its `;id=5"` was
        // cut off as an id, leaving its quote open.
        assert_eq!(refer_event_id(r#"refer;x="a;id=5;b""#), None);
        assert_eq!(
            refer_event_naming(r#"refer;x="a;id=5";id=2"#, 7),
            r#"refer;x="a;id=5";id=7"#
        );
    }

    #[test]
    fn an_attended_transfer_loses_its_replaces() {
        let v = "<sip:2001@10.0.0.7?Replaces=abc%40pbx%3Bto-tag%3D1%3Bfrom-tag%3D2>";
        assert_eq!(
            refer_to_via_gateway(v, "gw", false).unwrap(),
            "<sip:2001@gw>"
        );
    }

    /// A target asking for another method (`;method=BYE`: a conference focus asking a
    /// participant to leave) is refused, not made a call to the number; `method=INVITE` is
    /// an INVITE. Before, the parameter was dropped and the transferee placed a call.
    #[test]
    fn a_target_asking_for_another_method_is_refused() {
        let bye = "<sip:+4930123@carrier.example;method=BYE>";
        assert_eq!(
            refer_to_via_gateway(bye, "gw", false),
            Err(ReferError::NotAnInvite)
        );
        let invite = "<sip:+4930123@carrier.example;METHOD=invite>";
        assert_eq!(
            refer_to_via_gateway(invite, "gw", false).unwrap(),
            "<sip:+4930123@gw>"
        );
    }

    #[test]
    fn what_is_not_one_number_is_refused() {
        assert_eq!(
            refer_to_via_gateway("<sip:alice@example.com>", "gw", false),
            Err(ReferError::NotANumber)
        );
        assert_eq!(
            refer_to_via_gateway("<sip:1@a>, <sip:2@b>", "gw", false),
            Err(ReferError::Missing)
        );
        assert_eq!(
            refer_to_via_gateway("", "gw", false),
            Err(ReferError::Missing)
        );
        assert_eq!(
            refer_to_via_gateway("<http://evil.example/1234>", "gw", false),
            Err(ReferError::NotANumber)
        );
    }
}
