//! What a registrar's answer grants: the expiry of our binding, from the 2xx's Contact
//! entry for our contact or its Expires header, and the seconds of a header value.

use std::time::Duration;

use crate::sip::{Hdr, Response};

/// Seconds at the start of a header value (`120`, `120 (maintenance);duration=60`).
pub(super) fn leading_secs(v: &str) -> Option<Duration> {
    crate::sip::leading_number(v).and_then(bounded_secs)
}

/// A peer's count of seconds as a duration, if it fits in u32: more is nonsense, and
/// refusing it keeps `Instant` arithmetic sane.
pub(super) fn bounded_secs(s: u64) -> Option<Duration> {
    u32::try_from(s)
        .ok()
        .map(|s| Duration::from_secs(u64::from(s)))
}

/// The expiry a 2xx grants our contact: its Contact's `expires` parameter, else the Expires
/// header (RFC 3261 §10.2.4). When no entry is ours as we wrote it (a registrar that shows
/// our contact as it saw it, past a NAT: its host and port, never its user part), the
/// entries with our contact's user part; when none has it either, the shortest listed:
/// refreshed early, a binding is kept; taken for the hour asked while the registrar granted
/// two minutes, it lapsed. (Other bindings of the address of record, another device's or
/// another gateway's, are not ours: one of a few seconds must not take ours down.)
pub(super) fn granted_expiry(resp: &Response, ours: &str) -> Option<Duration> {
    let mine = key(ours);
    let parsed = entries(resp);
    let header = || {
        resp.header(&Hdr::named("Expires"))
            .and_then(|v| leading_secs(&v))
    };
    if let Some((_, e)) = parsed.iter().find(|(u, _)| key(u) == mine) {
        return e.or_else(header);
    }
    let my_user = user(ours);
    let shortest = |of: &mut dyn Iterator<Item = &(String, Option<Duration>)>| {
        of.filter_map(|(_, e)| e.or_else(header)).min()
    };
    let same_user = shortest(
        &mut parsed
            .iter()
            .filter(|(u, _)| my_user.is_some() && user(u) == my_user),
    );
    same_user.or_else(|| {
        shortest(&mut parsed.iter())
            .into_iter()
            .chain(header())
            .min()
    })
}

/// Whether the 2xx lists a binding of ours: our contact as we wrote it, or one with its user
/// part (a registrar past a NAT shows our host as it saw it). A registrar lists every
/// binding of the address of record (RFC 3261 §10.3 step 8): one listing none of ours most
/// likely did not bind us (or answers without Contact, against the RFC).
pub(super) fn lists_ours(resp: &Response, ours: &str) -> bool {
    let (mine, my_user) = (key(ours), user(ours));
    entries(resp)
        .iter()
        .any(|(u, _)| key(u) == mine || (my_user.is_some() && user(u) == my_user))
}

/// The 2xx's Contact entries: each URI and its `expires` parameter.
fn entries(resp: &Response) -> Vec<(String, Option<Duration>)> {
    (resp.header_lines(&Hdr::CONTACT).iter())
        .flat_map(|l| crate::sip::split_header_list(l))
        .map(|e| contact_entry(&e))
        .collect()
}

/// A contact URI as compared: without its parameters, lowercase.
fn key(uri: &str) -> String {
    uri.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A contact URI's user part, as compared.
fn user(uri: &str) -> Option<String> {
    key(uri).split_once('@').map(|(u, _)| u.to_string())
}

/// The URI and `expires` parameter of one Contact entry (`"n" <sip:u@h>;expires=60`).
pub(super) fn contact_entry(e: &str) -> (String, Option<Duration>) {
    let (uri, params) = match (e.find('<'), e.find('>')) {
        (Some(a), Some(b)) if a < b => (
            e.get(a + 1..b).unwrap_or_default(),
            e.get(b + 1..).unwrap_or_default(),
        ),
        _ => match e.split_once(';') {
            Some((u, p)) => (u, p),
            None => (e, ""),
        },
    };
    let expires = params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        // (Quoted by some registrars, against the grammar: read all the same, else the
        // hour asked was taken for a grant of minutes and the binding lapsed.)
        k.trim()
            .eq_ignore_ascii_case("expires")
            .then(|| leading_secs(v.trim().trim_matches('"')))
            .flatten()
    });
    (uri.trim().to_string(), expires)
}
