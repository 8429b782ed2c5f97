//! Topology hiding: the addresses of one side never reach the other side in the SIP headers
//! (SDP is rewritten only when the media is anchored: `sdp::anchor`).
//!
//! The B2BUA rebuilds Via, Contact, Call-ID, From/To tags and CSeq for each leg. What it copies
//! from the other leg (identity headers) passes through here so that a host part naming the
//! other side's network is replaced by a host that belongs to the gateway or the peer.

use std::sync::LazyLock;

use crate::sip::{Hdr, split_header_list};

/// Headers a B2BUA must never copy from one leg to the other: they belong to one dialog,
/// one transaction or one hop, or they name hosts of the other side.
pub static PER_LEG_HEADERS: LazyLock<Vec<Hdr>> = LazyLock::new(|| {
    vec![
        Hdr::VIA,
        Hdr::ROUTE,
        Hdr::RECORD_ROUTE,
        Hdr::CONTACT,
        Hdr::FROM,
        Hdr::TO,
        Hdr::CALL_ID,
        Hdr::CSEQ,
        Hdr::MAX_FORWARDS,
        Hdr::CONTENT_LENGTH,
        Hdr::CONTENT_TYPE,
        Hdr::AUTHORIZATION,
        Hdr::PROXY_AUTHORIZATION,
        Hdr::REQUIRE,
        Hdr::PROXY_REQUIRE,
        Hdr::SUPPORTED,
        Hdr::UNSUPPORTED,
        Hdr::ALLOW,
        Hdr::RSEQ,
        Hdr::RACK,
        // Session timers are negotiated per leg (`interop::session_timer`).
        Hdr::SESSION_EXPIRES,
        Hdr::MIN_SE,
        Hdr::PATH,
        Hdr::HISTORY_INFO,
        Hdr::P_ASSERTED_IDENTITY,
        Hdr::P_PREFERRED_IDENTITY,
        Hdr::named("Diversion"),
        Hdr::named("Remote-Party-ID"),
        Hdr::named("P-Charging-Vector"),
        Hdr::named("P-Visited-Network-ID"),
        Hdr::WARNING,
        Hdr::named("Proxy-Authenticate"),
        Hdr::named("WWW-Authenticate"),
        // What the other side runs, and where: software versions, charging and access
        // network addresses, the served or called user of the other network.
        Hdr::named("User-Agent"),
        Hdr::named("Server"),
        Hdr::named("P-Charging-Function-Addresses"),
        Hdr::named("P-Access-Network-Info"),
        Hdr::named("P-Called-Party-ID"),
        Hdr::named("P-Served-User"),
        // URIs of the other side's servers (pictures, ring tones, error pages).
        Hdr::named("Call-Info"),
        Hdr::named("Alert-Info"),
        Hdr::named("Error-Info"),
        // A transfer's headers carry the other leg's URIs: a relayed REFER gets a Refer-To
        // of the gateway's (`interop::transfer`), and Referred-By only from a trusted peer.
        Hdr::named("Refer-To"),
        Hdr::named("Referred-By"),
        // They name the other leg's dialog (its Call-ID and tags), which this leg's peer
        // must never learn and could not use.
        Hdr::named("Replaces"),
        Hdr::named("Join"),
        Hdr::named("Target-Dialog"),
        Hdr::named("In-Reply-To"),
        // Between this gateway and its SIP front only (`call::cx::SOURCE_HEADER`,
        // `PEER_HEADER`, `SCOPE_HEADER`): they name a peer's address, or tell the front how
        // to answer.
        Hdr::named("X-Trunkgate-Source"),
        Hdr::named("X-Trunkgate-Peer"),
        Hdr::named("X-Trunkgate-Scope"),
    ]
});

/// Identity headers that are copied with their host parts replaced.
pub static REHOSTED_HEADERS: LazyLock<Vec<Hdr>> = LazyLock::new(|| {
    vec![
        Hdr::P_ASSERTED_IDENTITY,
        Hdr::P_PREFERRED_IDENTITY,
        Hdr::named("Diversion"),
        Hdr::named("Remote-Party-ID"),
        // Each entry as an identity, its indexes kept (`interop::history`).
        Hdr::HISTORY_INFO,
    ]
});

/// Replace the host (and port) of a `sip:`/`sips:` URI; other schemes (tel:) pass unchanged.
/// `sip:+8610@10.0.0.5:5070;user=phone` with `gw.example` gives `sip:+8610@gw.example;user=phone`.
pub fn rehost_uri(uri: &str, host: &str) -> String {
    // On bytes: a multi-byte character right after the scheme must not make the URI look
    // like no SIP URI at all (it would then pass with its host unchanged).
    let b = uri.as_bytes();
    let is = |scheme: &[u8]| {
        b.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    };
    let scheme_len = if is(b"sips:") {
        5
    } else if is(b"sip:") {
        4
    } else {
        return uri.to_string();
    };
    let (scheme, rest) = uri.split_at(scheme_len);
    // userinfo ends at the first '@': a user part may hold ';' and '?' (RFC 3261 §25.1,
    // user-unreserved), and no '@' can stand unescaped in the host, its parameters or
    // headers.
    let end_of_hostport = |s: &str| s.find([';', '?']).unwrap_or(s.len());
    let host_start = rest.find('@').map(|i| i + 1).unwrap_or(0);
    let host_end = host_start + end_of_hostport(&rest[host_start..]);
    format!("{scheme}{}{host}{}", &rest[..host_start], &rest[host_end..])
}

/// Replace the host of every URI in an address header value (name-addr or addr-spec, lists
/// allowed). Display names and header parameters are kept as written.
pub fn rehost_address(value: &str, host: &str) -> String {
    map_address_uris(value, |u| rehost_uri(u, host))
}

/// Apply `f` to the URI of every element of an address header value, keeping display names
/// and header parameters as written.
pub fn map_address_uris(value: &str, f: impl Fn(&str) -> String) -> String {
    filter_map_address_uris(value, |u, _| Some(f(u)), |_| true).unwrap_or_default()
}

/// The header parameters identity header `h` carries on (`None`: any). The rest are the
/// sender's own (`;x-host=10.1.1.5`), which could name its hosts.
pub fn identity_params(h: &Hdr) -> Option<&'static [&'static str]> {
    let name = h.as_str();
    if name.eq_ignore_ascii_case("Diversion") {
        // RFC 5806 §4.
        Some(&[
            "reason",
            "counter",
            "limit",
            "privacy",
            "screen",
            "extension",
        ])
    } else if name.eq_ignore_ascii_case("Remote-Party-ID") {
        Some(&["party", "screen", "privacy", "id-type"])
    } else if name.eq_ignore_ascii_case("Referred-By") {
        // RFC 3892 §3.
        Some(&["cid"])
    } else if *h == Hdr::P_ASSERTED_IDENTITY || *h == Hdr::P_PREFERRED_IDENTITY {
        // RFC 3325 §9.1: a name-addr or addr-spec, no parameters.
        Some(&[])
    } else {
        None
    }
}

/// `params` (`;a=1;b` after an address) with only the parameters `keep` names, and only
/// well-formed ones ([`crate::sip::generic_param_ok`]): before, a trusted peer's
/// `;reason="x` (a quote never closed) went on as written, and a strict carrier refused
/// the whole request with 400.
fn kept_params(params: &str, keep: &impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for p in crate::sip::split_params(params).into_iter().skip(1) {
        let p = p.trim();
        let name = p.split('=').next().unwrap_or("").trim();
        if !name.is_empty() && keep(name) && crate::sip::generic_param_ok(p) {
            out.push(';');
            out.push_str(p);
        }
    }
    out
}

/// [`map_address_uris`] for identity headers, leaving out each element for which `f`
/// (given its URI and what follows it to check) gives `None`, and each whose text before
/// `<` is no display name (`sip:1000@10.0.0.5;x=<sip:…>`: an address, kept as written,
/// would reach the other leg); `None` when none is left.
///
/// A name-addr's header parameters are kept as written. An addr-spec's tail is the
/// header's parameters (RFC 3261 §20: a Diversion's `;reason=`), except after a `tel:`
/// number, whose parameters a peer writing `tel:+1…;rn=…;npdi` or `tel:555;phone-context=+1`
/// means as the number's: there `f` is given the whole element as the URI. Either way the
/// rewritten URI goes out in `<>`, so nothing after it reads as the URI's own. Before, the
/// tail went out as written beside the rewritten URI, unbracketed: a `tel:` number's
/// `;rn=` passed the trust filter and read as the number's again.
pub fn filter_map_address_uris(
    value: &str,
    f: impl Fn(&str, &str) -> Option<String>,
    keep_param: impl Fn(&str) -> bool,
) -> Option<String> {
    let kept: Vec<String> = split_header_list(value)
        .iter()
        .filter_map(|element| {
            if let Some((open, close)) = name_addr_uri(element) {
                if !is_display_name(&element[..open]) {
                    return None;
                }
                let uri = f(&element[open + 1..close], &element[close + 1..])?;
                let params = kept_params(&element[close + 1..], &keep_param);
                Some(format!("{}<{uri}>{params}", &element[..open]))
            } else {
                let element = element.trim();
                let cut = element.find(';').unwrap_or(element.len());
                let tel = element
                    .get(..4)
                    .is_some_and(|s| s.eq_ignore_ascii_case("tel:"));
                if tel {
                    let uri = f(element, &element[cut..])?;
                    return Some(format!("<{uri}>"));
                }
                let uri = f(&element[..cut], &element[cut..])?;
                Some(format!(
                    "<{uri}>{}",
                    kept_params(&element[cut..], &keep_param)
                ))
            }
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// Whether `text` (before a name-addr's `<`) is a display name: nothing, one quoted
/// string, or tokens and spaces (RFC 3261 §25.1).
fn is_display_name(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() {
        return true;
    }
    if let Some(inner) = t.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        // One quoted string: no unescaped quote inside it.
        let mut escaped = false;
        return inner.chars().all(|c| {
            let ok = escaped || c != '"';
            escaped = !escaped && c == '\\';
            ok
        });
    }
    t.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '\t' || "-.!%*_+`'~".contains(c))
}

/// Where the `<` and the `>` around a name-addr's URI are: the first `<` outside the
/// quoted display name (which may hold `<` and `>` of its own, `"Sales <EMEA>" <sip:…>`),
/// and the first `>` after it (a URI holds none unescaped; a later one is in a header
/// parameter, `;x="a>b"`). `None` for an addr-spec.
pub fn name_addr_uri(element: &str) -> Option<(usize, usize)> {
    let open = crate::sip::outside_quotes(element)
        .find(|&(_, b)| b == b'<')
        .map(|(i, _)| i)?;
    let close = open + 1 + element[open + 1..].find('>')?;
    Some((open, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A URI that gains parameters in a header written without <> gets them (RFC 3261
    /// §20): else `;user=phone` would read as a header parameter. And a '>' in a quoted
    /// header parameter is not the end of the URI.
    #[test]
    fn a_uri_given_parameters_is_enclosed_and_a_quoted_angle_is_left_alone() {
        let with_params = |u: &str| format!("{u};user=phone");
        assert_eq!(
            map_address_uris("sip:1001@10.0.0.2", with_params),
            "<sip:1001@10.0.0.2;user=phone>"
        );
        assert_eq!(
            map_address_uris("sip:1001@10.0.0.2;tag=x", with_params),
            "<sip:1001@10.0.0.2;user=phone>;tag=x"
        );
        assert_eq!(map_address_uris("sip:1@h", |u| u.to_string()), "<sip:1@h>");
        assert_eq!(
            rehost_address(r#"<sip:1@10.1.2.3>;x="a>b""#, "gw"),
            r#"<sip:1@gw>;x="a>b""#
        );
    }

    #[test]
    fn rehosts_sip_uris_only() {
        assert_eq!(
            rehost_uri("sip:+8610@10.0.0.5:5070;user=phone", "gw.example"),
            "sip:+8610@gw.example;user=phone"
        );
        assert_eq!(rehost_uri("sip:10.0.0.5", "gw"), "sip:gw");
        assert_eq!(rehost_uri("SIPS:a@b?h=1", "gw"), "SIPS:a@gw?h=1");
        assert_eq!(
            rehost_uri("tel:+8610;phone-context=x", "gw"),
            "tel:+8610;phone-context=x"
        );
    }

    #[test]
    fn a_multibyte_character_after_the_scheme_does_not_stop_the_rehosting() {
        // Byte 5 falls inside "é": the URI used to pass with its host unchanged.
        assert_eq!(rehost_uri("sip:é@10.0.0.5", "gw"), "sip:é@gw");
        assert_eq!(rehost_uri("sip:€€@10.0.0.5:5060", "gw"), "sip:€€@gw");
        assert_eq!(rehost_uri("sé", "gw"), "sé");
    }

    #[test]
    fn a_user_part_holding_a_semicolon_keeps_its_uri_whole() {
        assert_eq!(rehost_uri("sip:alice;x@10.1.2.3", "gw"), "sip:alice;x@gw");
        assert_eq!(
            rehost_uri("sip:a?b@10.1.2.3:5060;user=phone?h=1", "gw"),
            "sip:a?b@gw;user=phone?h=1"
        );
    }

    #[test]
    fn a_display_name_holding_angle_brackets_is_not_taken_for_the_uri() {
        assert_eq!(
            rehost_address(
                "\"Sales <EMEA>\" <sip:+8613800001111@10.1.2.3;user=phone>",
                "gw"
            ),
            "\"Sales <EMEA>\" <sip:+8613800001111@gw;user=phone>"
        );
        assert_eq!(
            rehost_address(r#""a \" <b>" <sip:c@10.1.2.3>"#, "gw"),
            r#""a \" <b>" <sip:c@gw>"#
        );
    }

    #[test]
    fn rehosts_address_lists() {
        assert_eq!(
            rehost_address(
                "\"Al, B\" <sip:100@10.0.0.5>;privacy=off, sip:200@h;x",
                "gw"
            ),
            "\"Al, B\" <sip:100@gw>;privacy=off, <sip:200@gw>;x"
        );
        assert_eq!(rehost_address("<tel:+8610>", "gw"), "<tel:+8610>");
    }
}
