//! URIs and numbers toward a peer (`[uri]` of its profile): tel: ⇄ sip:, `;user=phone`,
//! Request-URI parameters a trunk demands, and E.164 normalisation.

use crate::sip::{LEADING_PARAMS, NumberUri, param_name, params_where, strip_visual_separators};

mod context;
mod dial_plan;
pub use context::kept_context;
use context::{completed_by_context, phone_context};
pub use dial_plan::DialPlan;

/// `[uri] scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriScheme {
    /// `sip:NUMBER@DOMAIN`.
    Sip,
    /// `tel:NUMBER` (RFC 3966).
    Tel,
    /// The scheme the caller used (tel: stays tel:, anything else becomes sip:).
    Keep,
}

/// `[uri] number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberFormat {
    /// As dialled (visual separators removed, a global phone-context applied).
    Keep,
    /// E.164 with a leading `+`, national numbers completed with `country_code`.
    E164,
}

/// How URIs and numbers are written toward one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriPolicy {
    pub scheme: UriScheme,
    pub user_phone: bool,
    /// Appended to the Request-URI of calls to this peer, without the leading `;`.
    pub request_uri_params: String,
    pub number: NumberFormat,
    /// Digits only, without `+`.
    pub country_code: Option<String>,
    /// What dials abroad (`00`; `011` in North America) and what starts a national number
    /// (`0`; `1` in North America; none in Italy), as this peer's callers dial: `number =
    /// "e164"` takes them off.
    pub international_prefix: String,
    pub national_prefix: String,
    /// The longest service or emergency number of this peer's callers' country (112, 911,
    /// 1471; 10086 in China): a number of at most this many digits is never completed with
    /// the country code, which would make it one nobody has.
    pub short_code_digits: u8,
    /// Whether a number keeps its RFC 3966 parameters (`;rn=…;npdi`, `;cpc=`, `;ext=`) in
    /// the URIs written toward this peer: in a tel: URI, and in a SIP URI's user part when
    /// it carries `;user=phone` (without it they would be read as part of the user name).
    pub number_params: bool,
    /// `tgrp` and `trunk-context` of `request_uri_params` go into a `;user=phone` SIP URI's
    /// user part, as RFC 4904 §5 writes them, not after the host.
    pub tgrp_in_user: bool,
    /// How callers dial in each country some profile names (its `country_code`; the first
    /// profile by name for each), shared by every profile: a local number with a global
    /// `phone-context` of such a place is read with its prefixes wherever it is written
    /// (`Config::link_dial_plans`). Empty: the context's digits followed by the number's.
    pub places: std::sync::Arc<[dial_plan::DialPlan]>,
}

impl Default for UriPolicy {
    fn default() -> Self {
        UriPolicy {
            scheme: UriScheme::Sip,
            user_phone: false,
            request_uri_params: String::new(),
            number: NumberFormat::Keep,
            country_code: None,
            international_prefix: "00".into(),
            national_prefix: "0".into(),
            short_code_digits: DEFAULT_SHORT_CODE_DIGITS,
            number_params: true,
            tgrp_in_user: false,
            places: std::sync::Arc::from(Vec::new()),
        }
    }
}

/// RFC 4904's trunk group parameters: the number's, in a tel: URI or a `;user=phone` user
/// part.
const TRUNK_GROUP_PARAMS: [&str; 2] = ["tgrp", "trunk-context"];

/// Whether a user part is a telephone number ([`crate::sip::is_phone_digits`]).
pub fn is_telephone_number(n: &str) -> bool {
    crate::sip::is_phone_digits(n)
}

/// A domain name (RFC 3966 §3 `domainname`): labels of letters, digits and hyphens, the
/// last starting with a letter, so not an IP address.
fn is_domain_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    host_labels(s)
        && s.rsplit('.')
            .next()
            .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// Whether `name` (no trailing dot) is dot-separated labels of letters, digits and inner
/// hyphens.
fn host_labels(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A host and the port after it, if one is written (digits after the last ':' outside an
/// IPv6 reference).
fn split_port(hostport: &str) -> (&str, Option<&str>) {
    match hostport.rsplit_once(':') {
        Some((h, p))
            if !h.is_empty()
                && (h.ends_with(']') || !h.contains(':'))
                && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (h, Some(p))
        }
        _ => (hostport, None),
    }
}

/// The host of a `host[:port]` (a peer's `domain` may name a port; a phone-context cannot).
pub fn host_of(hostport: &str) -> &str {
    split_port(hostport).0
}

/// The number as this policy writes it. A local number with a global `phone-context` is
/// global in that place (RFC 3966 §5.1.5): `tel:5550100;phone-context=+1-212` is
/// `+12125550100`; toward a peer of that country (`country_code`), as its callers dial:
/// `tel:010-1234-5678;phone-context=+86` is `+861012345678` there (it was `+8601012345678`,
/// the trunk prefix inside). One whose context is a domain (`tel:1234;phone-context=pbx.example.com`, a private extension)
/// stays as it is: it has no E.164 form. A short code (at most `short_code_digits` digits:
/// 112, 911, 1471) is never completed with the country code, whether by a context that is
/// a country code (`tel:911;phone-context=+1` stays `911` there: `+1911` is no number, RFC
/// 3966 §5.1.5; [`completed_by_context`]) or by `number = "e164"`.
pub fn normalise_number(n: &NumberUri, policy: &UriPolicy) -> String {
    // Visual separators belong to telephone numbers: a name (`sales-team`) keeps them.
    let stripped = strip_visual_separators(&n.number);
    let number = if is_telephone_number(&stripped) {
        stripped
    } else {
        n.number.clone()
    };
    let global = match &n.phone_context {
        // Only digits become global: a service code (`*21#`) stays local (RFC 3966 §5.1.4,
        // a global number is digits).
        Some(ctx)
            if !number.starts_with('+')
                && ctx.starts_with('+')
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
                && completed_by_context(&number, ctx, policy) =>
        {
            let place = strip_visual_separators(ctx);
            let place = place.trim_start_matches('+');
            // Dialled as the peer's callers dial when the place is its country (its
            // prefixes known); else the digits follow the place's (a trunk prefix is not
            // everywhere a `0`, nor a `0` everywhere a trunk prefix: Italy keeps it).
            match &policy.country_code {
                Some(cc) if cc == place => in_e164(
                    &number,
                    place,
                    &policy.international_prefix,
                    &policy.national_prefix,
                ),
                // (The place's own prefixes when a profile of that country gives them, as
                // the Request-URI is read: `010…` within `+86` is `+8610…`, not `+86010…`.)
                _ => match policy.place_plan(place) {
                    Some(p) => p.in_e164(&number),
                    None => format!("+{place}{number}"),
                },
            }
        }
        _ => number,
    };
    let private = n
        .phone_context
        .as_ref()
        .is_some_and(|c| !c.starts_with('+'));
    match (policy.number, &policy.country_code) {
        (NumberFormat::E164, Some(cc))
            if !private && global.len() > usize::from(policy.short_code_digits) =>
        {
            in_e164(
                &global,
                cc,
                &policy.international_prefix,
                &policy.national_prefix,
            )
        }
        _ => global,
    }
}

/// `[uri] short_code_digits` unless set: 112, 911, 1471.
pub const DEFAULT_SHORT_CODE_DIGITS: u8 = 4;

/// E.164, for a number dialled where `cc` is the country code (or the place's digits: a
/// country and area code): `+…` stays, `intl…` is international, `national…` is national
/// with its trunk prefix, other digits are a national significant number.
fn in_e164(n: &str, cc: &str, intl: &str, national: &str) -> String {
    if n.starts_with('+') || !n.bytes().all(|b| b.is_ascii_digit()) || n.is_empty() {
        return n.to_string();
    }
    // A prefix alone (`0011` dialled in Australia, `0`) is no number: left as dialled, not
    // made into `+` (or `+61`) with nothing after it.
    if let Some(rest) = n.strip_prefix(intl).filter(|_| !intl.is_empty()) {
        return match rest.is_empty() {
            true => n.to_string(),
            false => format!("+{rest}"),
        };
    }
    if let Some(rest) = n.strip_prefix(national).filter(|_| !national.is_empty()) {
        return match rest.is_empty() {
            true => n.to_string(),
            false => format!("+{cc}{rest}"),
        };
    }
    format!("+{cc}{n}")
}

/// The URI naming `number` at a peer in its preferred form. `inbound_tel` is whether the
/// caller used a tel: URI (for `scheme = "keep"`); `domain` is the peer's domain.
pub fn peer_uri(number: &str, inbound_tel: bool, policy: &UriPolicy, domain: &str) -> String {
    peer_uri_in(number, None, "", inbound_tel, policy, domain)
}

/// A number's parameters ([`NumberUri::params`](crate::sip::NumberUri)) split where a
/// `phone-context` goes: after `;isub=` or `;ext=`, before the others (RFC 3966 §3).
fn split_params(params: &str) -> (&str, &str) {
    let mut at = 0;
    for p in params.split(';').skip(1) {
        if !LEADING_PARAMS.contains(&param_name(p)) {
            break;
        }
        at += 1 + p.len();
    }
    params.split_at(at)
}

/// Number parameters (tel: form, `%HH` kept) written into a SIP URI's user part: what
/// that may not carry literally (`[`, `]`, `:`) escaped (RFC 3261 §25.1).
fn params_in_user(params: &str) -> String {
    percent_encode(params, b"-_.!~*'()&=+$,;?/%")
}

/// `s` with every byte but ASCII alphanumerics and `keep` written as `%HH`.
fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// [`peer_uri`] for a number that may be local to a domain (`private`, the domain
/// `phone-context` it was dialled with): a local number keeps that context rather than
/// take the peer's (`+CC` would make it a national number, RFC 3966 §5.1.5), in a tel:
/// URI and in a `;user=phone` SIP URI's user part (RFC 3261 §19.1.6). `params`: the
/// number's other parameters, kept when the policy keeps them.
pub fn peer_uri_in(
    number: &str,
    private: Option<&str>,
    params: &str,
    inbound_tel: bool,
    policy: &UriPolicy,
    domain: &str,
) -> String {
    // Only a domain name may stand there (it came from a peer's URI): RFC 3966 §3, its last
    // label starts with a letter, so no IP address either. A number private to a context
    // that is none is still local, and never gets the peer's `+CC`, which would make it
    // national again: it gets the peer's domain if that is a domain name, else its own
    // context if that is a host at all (an IP address: a strict peer refuses the URI,
    // which is better than a call to the wrong number), else the peer's host.
    let private = private.filter(|_| !number.starts_with('+'));
    let scheme = match policy.scheme {
        UriScheme::Keep if inbound_tel => UriScheme::Tel,
        UriScheme::Keep => UriScheme::Sip,
        s => s,
    };
    let phone = is_telephone_number(number);
    let params = if policy.number_params && phone {
        params
    } else {
        ""
    };
    let (lead, rest) = split_params(params);
    // RFC 3966 §5.1.5: a local number needs a phone-context.
    let local = phone && !number.starts_with('+');
    let context = local
        .then(|| phone_context(private, policy, domain))
        .flatten();
    if scheme == UriScheme::Tel && phone {
        // With no context that fits (no country code, a peer known by its address: an IP
        // address is no domain name, and a bracketed IPv6 one no `descriptor` at all) a
        // local number goes as a SIP URI at that address, not as a tel: URI naming the
        // address as its context, which a strict peer refuses (it named the gateway's own
        // address for an internal peer's callers).
        match &context {
            _ if !local => return format!("tel:{number}{params}"),
            Some(ctx) => return format!("tel:{number}{lead};phone-context={ctx}{rest}"),
            None => {}
        }
    }
    // `user=phone` says the user part is an RFC 3966 number, where a local one needs
    // a phone-context, chosen as in a tel: URI. With none that fits it goes as dialled,
    // its parameters kept: the peer asked for `user=phone`, and a dropped `;ext=` or
    // `;rn=` would reach the wrong line.
    let user_phone = policy.user_phone && phone;
    let user = match context {
        Some(c) if user_phone => format!(
            "{}{};phone-context={c}{}",
            escape_user(number),
            params_in_user(lead),
            params_in_user(rest)
        ),
        _ if user_phone => {
            format!("{}{}", escape_user(number), params_in_user(params))
        }
        _ => escape_user(number),
    };
    let mut u = format!("sip:{user}@{domain}");
    if user_phone {
        u.push_str(";user=phone");
    }
    u
}

/// The Request-URI toward a peer: its URI plus the operator's `request_uri_params`.
pub fn request_uri(number: &str, inbound_tel: bool, policy: &UriPolicy, domain: &str) -> String {
    request_uri_in(number, None, "", inbound_tel, policy, domain)
}

/// [`request_uri`] for a number that may be local to a domain (see [`peer_uri_in`]).
pub fn request_uri_in(
    number: &str,
    private: Option<&str>,
    params: &str,
    inbound_tel: bool,
    policy: &UriPolicy,
    domain: &str,
) -> String {
    let ours = policy.request_uri_params.trim().trim_start_matches(';');
    // A parameter the operator sets is not also carried over from the number (in a tel:
    // URI both would be the same URI's parameters, twice).
    let named = |name: &str| {
        ours.split(';')
            .any(|o| param_name(o).eq_ignore_ascii_case(name))
    };
    let params = params_where(params, |name| !named(name));
    let mut u = peer_uri_in(number, private, &params, inbound_tel, policy, domain);
    if ours.is_empty() {
        return u;
    }
    // Which of ours are the number's: all in a tel: URI; in a SIP URI with `;user=phone`,
    // the trunk group's when the peer wants them in the user part (RFC 4904 §5).
    let tel = u.starts_with("tel:");
    let in_user = |p: &&str| {
        tel || (policy.tgrp_in_user
            && policy.user_phone
            && is_telephone_number(number)
            && TRUNK_GROUP_PARAMS
                .iter()
                .any(|t| param_name(p).eq_ignore_ascii_case(t)))
    };
    let (numbers, hosts): (Vec<&str>, Vec<&str>) = ours.split(';').partition(in_user);
    if !numbers.is_empty() {
        // In a tel: URI they are the number's parameters too, in RFC 3966 §3's order:
        // `isub`/`ext`, then `phone-context`, then the rest by name.
        let own = if policy.number_params {
            &params[..]
        } else {
            ""
        };
        let mut merged: Vec<&str> = own.split(';').skip(1).chain(numbers).collect();
        merged.sort_by_key(|p| {
            let name = param_name(p).to_ascii_lowercase();
            (!LEADING_PARAMS.contains(&name.as_str()), name)
        });
        let merged: String = merged.into_iter().flat_map(|p| [";", p]).collect();
        let policy = UriPolicy {
            number_params: true,
            ..policy.clone()
        };
        u = peer_uri_in(number, private, &merged, inbound_tel, &policy, domain);
    }
    for p in hosts {
        u.push(';');
        u.push_str(p);
    }
    u
}

/// Percent-encode what a SIP user part may not carry literally (RFC 3261 §25.1), and `;`
/// and `?` though it may: a name we read with an escaped `%3B` (no parameter, `sip::uri`)
/// must not reach a peer that reads `;rn=…` in a user part as a parameter (`user=phone`).
pub fn escape_user(s: &str) -> String {
    let out = percent_encode(s, b"-_.!~*'()&=+$,/");
    if out.is_empty() {
        "anonymous".into()
    } else {
        out
    }
}

/// Why `request_uri_params` (`name[=value](;name[=value])*`) cannot go into a
/// Request-URI, or `None`: RFC 3261 §25.1 parameter characters only (so a typo cannot
/// inject into the start line), `%` only before two hex digits, each name once, and none
/// the gateway writes itself (`user` when `user_phone` is on) or that would steer the
/// request elsewhere (`maddr`, `lr`) or mean nothing here (`method`, `ttl`).
pub fn uri_params_refusal(s: &str, user_phone: bool) -> Option<String> {
    let chars_ok = |t: &str| crate::sip::is_paramchars(t.as_bytes());
    let s = s.trim().trim_start_matches(';');
    if s.is_empty() {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    for p in s.split(';') {
        let (k, v) = p.split_once('=').map_or((p, None), |(k, v)| (k, Some(v)));
        if !chars_ok(k) || v.is_some_and(|v| !chars_ok(v)) {
            return Some(format!(
                "{p:?} is not name=value with URI parameter characters (a '%' needs two hex digits)"
            ));
        }
        let name = k.to_ascii_lowercase();
        if seen.contains(&name) {
            return Some(format!("{k:?} is given twice"));
        }
        match name.as_str() {
            "user" if user_phone => {
                return Some("user= is written by user_phone = true already".into());
            }
            "maddr" | "lr" => {
                return Some(format!(
                    "{k:?} would send the request elsewhere than the peer"
                ));
            }
            "method" | "ttl" => return Some(format!("{k:?} has no meaning in a Request-URI")),
            // The number's own (RFC 3966): written from the number, once, and never on a
            // global one.
            "phone-context" | "isub" | "ext" => {
                return Some(format!(
                    "{k:?} belongs to the number, which carries its own (RFC 3966)"
                ));
            }
            _ => {}
        }
        seen.push(name);
    }
    None
}

/// Whether `host` can be a URI's hostport (RFC 3261 §25.1): a host name (letters, digits,
/// '-' and '.'), an IPv4 address or an IPv6 one (bare or in brackets), with an optional
/// `:port` after a name, an IPv4 address or a bracketed IPv6 one.
pub fn valid_host(host: &str) -> bool {
    let (host, port) = split_port(host);
    if port.is_some_and(|p| !matches!(p.parse::<u16>(), Ok(1..))) {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return port.is_none() || host.parse::<std::net::Ipv4Addr>().is_ok();
    }
    // A name whose last label is all digits (`10.0.0.256`, `1.2.3`, `x.123`) is a mistyped
    // address, not a name every URI should carry. (RFC 3261's `toplabel` starts with a
    // letter; a container's host name such as `3f2a9c1b7d4e` does not, and is kept.)
    let name = host.strip_suffix('.').unwrap_or(host);
    host_labels(name)
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests;
