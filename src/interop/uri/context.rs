//! The `phone-context` of a local number (RFC 3966 §5.1.5) toward a peer: the one it came
//! with, or one the peer can read.

use super::{DialPlan, UriPolicy, host_of, is_domain_name, valid_host};
use crate::sip::NumberUri;
use crate::sip::strip_visual_separators;

/// The context a number `n` written as `written` keeps (RFC 3966 §5.1.5), when it is still
/// local: a domain's (a number private to it), or a global one (`+44`) on a number that
/// could not become global by it (a service code, `*21#`): that place is where it means
/// something, not the receiving peer's country. `None` for a number made global.
pub fn kept_context<'a>(n: &'a NumberUri, written: &str) -> Option<&'a str> {
    let c = n.phone_context.as_deref()?;
    (!c.starts_with('+') || !written.starts_with('+')).then_some(c)
}

/// Whether `c` is a global number's digits as a `phone-context` (`+44`, `+1-212`).
fn is_global_context(c: &str) -> bool {
    c.strip_prefix('+').is_some_and(|d| {
        d.bytes().any(|b| b.is_ascii_digit())
            && d.bytes()
                .all(|b| b.is_ascii_digit() || b"-.()".contains(&b))
    })
}

/// The phone-context of a local number toward a peer at `domain`: a number with a context
/// of its own (`private`, [`kept_context`]) keeps it when it is a domain name or a global
/// number's digits, else takes the peer's name or address (never the country's: it is no
/// national number; never the sender's address); any other takes the country's `+CC`, else
/// the peer's domain name. `None`: nothing fits (the peer is known by its address).
pub(super) fn phone_context(
    private: Option<&str>,
    policy: &UriPolicy,
    domain: &str,
) -> Option<String> {
    let peer_host = host_of(domain);
    let peer_name = is_domain_name(peer_host).then(|| peer_host.to_string());
    match private {
        Some(c) if is_domain_name(c) || is_global_context(c) => Some(c.to_string()),
        Some(_) if peer_name.is_some() => peer_name,
        // The sender's address as the context would name its host to the other side: the
        // peer's own address instead (still never the country's).
        Some(_) if valid_host(peer_host) && !peer_host.contains(':') => Some(peer_host.into()),
        Some(_) => None,
        None => (policy.country_code.as_ref().map(|cc| format!("+{cc}"))).or(peer_name),
    }
}

/// Whether local `number` (digits) is completed by its global context `ctx`: not when it
/// is a service number (at most `short_code_digits`: those of the context's country when a
/// profile gives them, else this policy's), whatever the context: `911;phone-context=+1`
/// and `911;phone-context=+1-212` stay `911` (no length tells an area code from a number
/// block, and an emergency number completed is no number at all); the context goes on with
/// it. A longer number is completed: `5550100;phone-context=+1-212` is `+12125550100`.
pub(super) fn completed_by_context(number: &str, ctx: &str, policy: &UriPolicy) -> bool {
    let place = strip_visual_separators(ctx);
    let place = place.trim_start_matches('+');
    let country = |p: &DialPlan| place.starts_with(p.country_code());
    let short = match policy.dial_plan() {
        Some(own) if country(&own) => policy.short_code_digits,
        _ => (policy.places.iter().find(|p| country(p)))
            .map_or(policy.short_code_digits, |p| p.short_code_digits()),
    };
    number.len() > usize::from(short)
}
