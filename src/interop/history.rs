//! History-Info (RFC 7044) across the gateway: how a forwarded call came to its callee (who
//! was called before, and why: RFC 4458's `cause` on each target), which voicemail and
//! call-diversion services read. Each entry reaches the other leg as an identity header
//! does (a number in the peer's form, no host of the side it came from), with its Reason
//! and its `index`, `rc`, `mp` and `np`, so the entries still refer to one another; an
//! entry whose owner asked for history privacy is anonymised toward a peer outside the
//! trust domain (RFC 7044 §10.1.3), and a request that asks it for all of them (`Privacy:
//! history` or `header`) carries none there.

use super::egress::{identity_uri_in, identity_uri_of, is_tel};
use super::topology::name_addr_uri;
use crate::config::Profile;
use crate::interop::uri::{UriPolicy, UriScheme, is_telephone_number};
use crate::sip::{LocalAddrs, dialled_number, split_header_list};

/// Entries carried at most: a history longer than this is a loop or a flood. The last ones
/// are kept: the current target and who diverted to it are what services read (an `rc` or
/// `mp` of them may then name an entry left out).
const MAX_ENTRIES: usize = 32;

/// What an anonymised entry's target becomes (RFC 3323 §4.1.1.3).
const ANONYMOUS: &str = "sip:anonymous@anonymous.invalid";

/// The History-Info of `lines` rewritten for `peer` (see the module), as one header value;
/// `None` when no entry is left. `sender`: the peer the lines came from (a trunk is trusted
/// with the number parameters that route or bill a call; its numbers are read as it dials).
pub fn rewrite(
    lines: &[String],
    local: &LocalAddrs,
    peer: &Profile,
    sender: super::egress::Sender,
) -> Option<String> {
    let all: Vec<String> = lines
        .iter()
        .filter(|l| super::egress::buildable(l))
        .flat_map(|l| split_header_list(l))
        .collect();
    let entries: Vec<String> = all[all.len().saturating_sub(MAX_ENTRIES)..]
        .iter()
        .filter_map(|e| entry(e, local, peer, sender))
        .collect();
    (!entries.is_empty()).then(|| entries.join(", "))
}

/// Whether `Privacy` lines ask for every History-Info entry to be withheld from a peer
/// outside the trust domain: `history` (RFC 7044 §10.1.3.1) or `header` (RFC 3323 §4.2).
pub fn asks_all_withheld(privacy: &[String]) -> bool {
    super::headers::asks_privacy_of(privacy, &["history", "header"])
}

/// One entry rewritten; `None`: it is not a name-addr (RFC 7044 §9 wants one), so it cannot
/// be read to hide the hosts it names.
fn entry(
    element: &str,
    local: &LocalAddrs,
    peer: &Profile,
    sender: super::egress::Sender,
) -> Option<String> {
    let (open, close) = name_addr_uri(element)?;
    let inner = element.get(open + 1..close)?;
    let (uri, headers) = inner.split_once('?').unwrap_or((inner, ""));
    let private = !peer.headers.trust_identity && asks_history(headers);
    let mut kept = embedded_headers(headers);
    if !peer.causes.send_reason {
        kept.retain(|(name, _)| *name != "Reason");
    }
    let target = if private {
        None
    } else {
        target(uri, local, peer, sender, !kept.is_empty())
    };
    let mut out = String::with_capacity(element.len());
    out.push('<');
    match &target {
        Some(t) => out.push_str(t),
        // Unreadable, or private: nothing of it is shown, but the entry stays, so that the
        // others' `rc`/`mp` indexes still point where they did.
        None => out.push_str(ANONYMOUS),
    }
    for (i, (name, value)) in kept.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out.push('>');
    out.push_str(&entry_params(element.get(close + 1..).unwrap_or_default()));
    Some(out)
}

/// The target URI for `peer`: a telephone number in the peer's form, with the diversion
/// `cause` it carried (RFC 4458); any other SIP URI its user at the gateway's host. `None`
/// when it reads as neither. A number goes as a SIP URI, whatever the peer's form, when it
/// carries a cause or `headers` (a tel: URI has room for neither).
fn target(
    uri: &str,
    local: &LocalAddrs,
    peer: &Profile,
    sender: super::egress::Sender,
    headers: bool,
) -> Option<String> {
    match dialled_number(uri) {
        Some(n) if is_telephone_number(&n.number) => {
            let n = crate::sip::NumberUri {
                params: n.trusted_params(sender.trunk),
                ..n
            };
            let cause = diversion_cause(uri);
            let mut out = identity_uri_of(&n, is_tel(uri), local, peer, sender.plan);
            if out.starts_with("tel:") && (cause.is_some() || headers) {
                let sip = UriPolicy {
                    scheme: UriScheme::Sip,
                    ..peer.uri.clone()
                };
                out = identity_uri_in(&n, false, local, peer, &sip, sender.plan);
            }
            if let Some(cause) = cause {
                out.push_str(";cause=");
                out.push_str(cause);
            }
            Some(out)
        }
        // A name (`sip:alice@pbx`) at our host keeps its RFC 4458 cause too.
        _ => super::egress::at_our_host(uri, &local.uri_host()).map(|mut out| {
            if let Some(cause) = diversion_cause(uri) {
                out.push_str(";cause=");
                out.push_str(cause);
            }
            out
        }),
    }
}

/// A SIP URI's `cause` parameter (RFC 4458: why the call left that target, a SIP status),
/// when it is three digits.
fn diversion_cause(uri: &str) -> Option<&str> {
    let after_host = &uri[uri.rfind('@')? + 1..];
    after_host.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("cause")
            && v.len() == 3
            && v.bytes().all(|b| b.is_ascii_digit()))
        .then_some(v)
    })
}

/// Whether a value is written as a URI header value must be (RFC 3261 §25.1 `hvalue`): no
/// character that could end the URI or the header, and every `%` an escape of two hex
/// digits.
fn is_hvalue(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.iter().enumerate().all(|(i, &c)| match c {
            b'%' => b
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
            c => c.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&c),
        })
}

/// The headers embedded in a target URI that an entry may carry (RFC 7044 §9: Reason and
/// Privacy), the first of each name, each kept only when it is a well-written value.
fn embedded_headers(headers: &str) -> Vec<(&'static str, &str)> {
    let mut out: Vec<(&'static str, &str)> = Vec::new();
    for h in headers.split('&') {
        let Some((name, value)) = h.split_once('=') else {
            continue;
        };
        let name = if name.eq_ignore_ascii_case("Reason") {
            "Reason"
        } else if name.eq_ignore_ascii_case("Privacy") {
            "Privacy"
        } else {
            continue;
        };
        if is_hvalue(value) && !out.iter().any(|(n, _)| *n == name) {
            out.push((name, value));
        }
    }
    out
}

/// Whether the headers embedded in a target URI ask for that entry's privacy: any Privacy
/// among them with `history`, its escapes decoded; one that cannot be read asks for it
/// (failing closed: an entry is anonymised rather than shown against its owner's wish).
fn asks_history(headers: &str) -> bool {
    headers.split('&').any(|h| {
        let Some((name, value)) = h.split_once('=') else {
            return false;
        };
        if !name.trim().eq_ignore_ascii_case("Privacy") {
            return false;
        }
        match percent_decoded(value) {
            Some(v) => v
                .split([';', ','])
                .any(|p| p.trim().eq_ignore_ascii_case("history")),
            None => true,
        }
    })
}

/// `v` with its `%XX` escapes decoded; `None` when one is broken or it is not UTF-8.
fn percent_decoded(v: &str) -> Option<String> {
    String::from_utf8(crate::sip::percent_decoded(v.as_bytes())?).ok()
}

/// An entry's own parameters: `index`, and the `rc`, `mp` and `np` that point at another
/// entry (RFC 7044 §9), the first of each, each kept when its value is an index (`1.2.1`);
/// nothing else.
fn entry_params(params: &str) -> String {
    let is_index = |v: &str| {
        !v.is_empty()
            && v.split('.')
                .all(|d| !d.is_empty() && d.len() <= 5 && d.bytes().all(|b| b.is_ascii_digit()))
    };
    // Split at the `;`s outside quoted values (`;x="a;index=9"` is one parameter).
    let cuts: Vec<usize> = crate::sip::outside_quotes(params)
        .filter(|&(_, b)| b == b';')
        .map(|(i, _)| i)
        .chain(std::iter::once(params.len()))
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    let mut out = String::new();
    for p in cuts.windows(2).filter_map(|w| params.get(w[0] + 1..w[1])) {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let known = ["index", "rc", "mp", "np"]
            .into_iter()
            .find(|n| k.eq_ignore_ascii_case(n));
        if let Some(name) = known
            && is_index(v)
            && !seen.contains(&name)
        {
            seen.push(name);
            out.push(';');
            out.push_str(name);
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

#[cfg(test)]
mod tests;
