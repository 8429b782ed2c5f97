use super::message::parse_uri;

/// A telephone number read out of a `sip:`/`sips:` user part or a `tel:` subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberUri {
    /// The number as written, visual separators removed (`+86 10-1234` is `+86101234`).
    pub number: String,
    /// RFC 3966 `phone-context`, when the number is local.
    pub phone_context: Option<String>,
    /// The number's [`NUMBER_PARAMS`] (`;isub=`, `;ext=`, and those a carrier adds:
    /// `;rn=…;npdi` for a ported number, RFC 4694; `;cpc=`, `;oli=`), each `;name[=value]`,
    /// values in tel: form (`%HH` allowed): ext and isub first, the rest by name (RFC 3966
    /// §3). Empty when there are none. Only a telephone number has them.
    pub params: String,
}

/// The number parameters carried, and no others: the ISDN subaddress and extension (RFC
/// 3966), number portability (`rn`, `npdi`, RFC 4694), the carrier (`cic`, RFC 4694), the
/// calling party's category and line (`cpc`, `oli`). A parameter about the hop it came over
/// (`tgrp`, `trunk-context`, RFC 4904) or anything unknown is not passed on.
pub const NUMBER_PARAMS: [&str; 7] = ["isub", "ext", "rn", "npdi", "cic", "cpc", "oli"];
/// The ones any caller may set; the rest route or bill the call, and are taken only from a
/// peer trusted to set them (see [`NumberUri::trusted_params`]).
const CALLER_PARAMS: [&str; 2] = ["isub", "ext"];
/// The ones written first, before a `phone-context` (RFC 3966 §3).
pub const LEADING_PARAMS: [&str; 2] = ["isub", "ext"];

/// A `sip:` or `sips:` URI read strictly: whether it is `sips:`, and its user part as
/// written (still escaped), if it has one. `None` for anything else, or a URI that does not
/// parse: the caller then cannot know what it names.
pub fn sip_uri_user(uri: &str) -> Option<(bool, Option<String>)> {
    let u = super::message::parse_uri(uri.trim()).ok()?;
    let secure = match u.scheme() {
        sipx_sip::Scheme::Sip => false,
        sipx_sip::Scheme::Sips => true,
        _ => return None,
    };
    let user = u.user().map(|b| String::from_utf8_lossy(b).into_owned());
    Some((secure, user))
}

/// The name of one `name[=value]` parameter.
pub fn param_name(p: &str) -> &str {
    p.split('=').next().unwrap_or_default()
}

/// The parameters of a `;name[=value]…` list whose name `keep` takes, as such a list.
pub fn params_where(params: &str, keep: impl Fn(&str) -> bool) -> String {
    params
        .split(';')
        .skip(1)
        .filter(|p| keep(param_name(p)))
        .flat_map(|p| [";", p])
        .collect()
}

/// A value longer than this is not a number parameter's: the parameter is left out.
const MAX_VALUE: usize = 64;

/// Whether `t` is URI parameter characters (RFC 3261 `paramchar`, RFC 3966 `paramchar`):
/// unreserved, `[]/:&+$`, and `%` only as `%HH`. Not empty.
pub fn is_paramchars(t: &[u8]) -> bool {
    !t.is_empty()
        && t.iter().enumerate().all(|(i, &c)| {
            c.is_ascii_alphanumeric()
                || b"-_.!~*'()+:[]/&$".contains(&c)
                || (c == b'%'
                    && t.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && t.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        })
}

/// An RFC 3966 `pvalue` of a number parameter: [`is_paramchars`], no `%` at all unless
/// `escaped`, at most [`MAX_VALUE`] long.
fn is_pvalue(v: &[u8], escaped: bool) -> bool {
    is_paramchars(v) && (escaped || !v.contains(&b'%')) && v.len() <= MAX_VALUE
}

/// A number's [`NUMBER_PARAMS`], written as [`NumberUri::params`]: well-formed ones only (a
/// malformed one is left out, not copied into URIs we build), each once. `escaped`: the
/// values are as written in a tel: URI (`%HH` allowed), not decoded from a SIP user part
/// (where a `%` left is not an escape, and the value is left out).
fn number_params<'a>(
    params: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    escaped: bool,
) -> String {
    let mut kept: Vec<(&str, Option<&[u8]>)> = Vec::new();
    let mut rn_refused = false;
    for (name, value) in params {
        let Some(known) = NUMBER_PARAMS
            .iter()
            .find(|n| n.as_bytes().eq_ignore_ascii_case(name))
        else {
            continue;
        };
        // `npdi` is a flag; every other one needs its value (RFC 3966, RFC 4694).
        let well_formed = match value {
            None => *known == "npdi",
            Some(v) => *known != "npdi" && is_pvalue(v, escaped),
        };
        if !well_formed {
            rn_refused |= *known == "rn";
            continue;
        }
        if !kept.iter().any(|(n, _)| n == known) {
            kept.push((known, value));
        }
    }
    // `npdi` without `rn` says the number is not ported: not when its `rn` was refused.
    if rn_refused && !kept.iter().any(|(n, _)| *n == "rn") {
        kept.retain(|(n, _)| *n != "npdi");
    }
    // RFC 3966 §3: isub or ext first, the others in lexicographical order.
    kept.sort_by_key(|(n, _)| (!LEADING_PARAMS.contains(n), *n));
    let mut out = String::new();
    for (name, value) in kept {
        out.push(';');
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            // Checked above: ASCII.
            out.push_str(&String::from_utf8_lossy(v));
        }
    }
    out
}

impl NumberUri {
    /// [`NumberUri::params`] as a peer of this trust may set them: all of them from a
    /// trunk (a carrier that did the portability lookup, or knows the line), only the
    /// subaddress and extension from anyone else (a phone must not route or bill a call
    /// by them).
    pub fn trusted_params(&self, trunk: bool) -> String {
        if trunk {
            return self.params.clone();
        }
        params_where(&self.params, |name| CALLER_PARAMS.contains(&name))
    }
}

/// Remove RFC 3966 visual separators (`-`, `.`, `(`, `)`) and spaces from a dialled string.
pub fn strip_visual_separators(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect()
}

/// What a telephone number is once its visual separators are gone: digits after `+` (a
/// global number, RFC 3966 §3), or digits, `*` and `#` (a local one: service codes).
/// `+*21#` is neither: written as a global tel: URI it would not parse (such a call failed
/// with an internal error).
pub fn is_phone_digits(s: &str) -> bool {
    match s.strip_prefix('+') {
        Some(global) => !global.is_empty() && global.bytes().all(|b| b.is_ascii_digit()),
        None => {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        }
    }
}

/// Whether a `phone-context` is one a number can be read under: a global one is `+` and
/// digits (visual separators allowed, RFC 3966 §3 `global-number-digits`); a domain one is
/// left to its use. `+1,9` or `+44x` is neither: the number it qualifies cannot be known.
fn readable_context(ctx: &str) -> bool {
    match ctx.strip_prefix('+') {
        Some(rest) => {
            rest.bytes().any(|b| b.is_ascii_digit())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'(' | b')'))
        }
        None => true,
    }
}

/// The number a URI dials: the decoded user part of a SIP URI, or the subscriber of a tel URI
/// (with its `phone-context`). `None` when the URI carries no user (a SIP URI without `user@`),
/// or a global `phone-context` that is no number (`+1,9`: what it dials cannot be known), or
/// a tel URI with a parameter that cannot be read (`;;`, `x=a,b`): the parser stops there,
/// and a `phone-context` (or `rn`) after it would be lost, the local number then read in the
/// wrong country (or a ported one as not).
pub fn dialled_number(uri: &str) -> Option<NumberUri> {
    let parsed = parse_uri(uri).ok()?;
    if let Some(tel) = parsed.tel_parts() {
        if tel.parsed_parameters().any(|p| p.is_err()) {
            return None;
        }
        let number = strip_visual_separators(&String::from_utf8_lossy(tel.subscriber()));
        let phone_context = tel.parsed_parameters().find_map(|p| match p {
            Ok(p) if p.name_eq(b"phone-context") => {
                p.value().map(|v| String::from_utf8_lossy(v).into_owned())
            }
            _ => None,
        });
        if phone_context
            .as_deref()
            .is_some_and(|c| !readable_context(c))
        {
            return None;
        }
        let params = number_params(
            tel.parsed_parameters()
                .flatten()
                .map(|p| (p.name(), p.value())),
            true,
        );
        return Some(NumberUri {
            number,
            phone_context,
            params,
        });
    }
    // A SIP user part may itself carry telephone-subscriber parameters (RFC 3261 §19.1.6),
    // parted by `;` as written: an escaped `%3B` is the user's data, never a parameter's
    // start (decoded first, `+1555%3Brn=+1666` would have carried an `rn` the trunk trusts).
    let user: Vec<String> = parsed
        .user()?
        .split(|&b| b == b';')
        .map(|p| percent_decoded(p).map(|d| String::from_utf8_lossy(&d).into_owned()))
        .collect::<Option<_>>()?;
    let mut pieces = user.iter().map(String::as_str);
    let first = pieces.next().unwrap_or_default();
    // Visual separators are a telephone number's only (RFC 3966 §5.1.1): `sales-team` and
    // `john.doe` are names, kept as written.
    let stripped = strip_visual_separators(first);
    let number = if is_phone_digits(&stripped) {
        stripped
    } else {
        first.to_string()
    };
    let phone_context = pieces.clone().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case("phone-context")
            .then(|| v.to_string())
    });
    if phone_context
        .as_deref()
        .is_some_and(|c| !readable_context(c))
    {
        return None;
    }
    // The user part was decoded: a value's `[`, `]` or `:` is escaped again where it is
    // written into a SIP URI, and a value with a `%` left in it is left out (it was `%25`,
    // and read again as an escape it would be another value).
    let params = if is_phone_digits(&number) {
        number_params(
            pieces.map(|p| match p.split_once('=') {
                Some((k, v)) => (k.as_bytes(), Some(v.as_bytes())),
                None => (p.as_bytes(), None),
            }),
            false,
        )
    } else {
        String::new()
    };
    Some(NumberUri {
        number,
        phone_context,
        params,
    })
}

/// `v` with its `%XX` escapes decoded; `None` when one is broken.
pub fn percent_decoded(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hex = std::str::from_utf8(v.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An escaped `;` in a SIP user part is the user's, not a parameter's start: before, it
    /// was decoded first and `rn`/`npdi` rode in as if the peer had written them.
    #[test]
    fn an_escaped_semicolon_starts_no_parameter() {
        let n = dialled_number("sip:+15551234%3Brn=+15550000%3Bnpdi@h;user=phone").unwrap();
        assert!(n.params.is_empty(), "{:?}", n.params);
        let n = dialled_number("sip:+15551234;rn=+15550000;npdi@h;user=phone").unwrap();
        assert!(n.params.contains("rn=+15550000"), "{:?}", n.params);
        let n = dialled_number("sip:*21%23;phone-context=+44@h;user=phone").unwrap();
        assert_eq!(n.phone_context.as_deref(), Some("+44"));
    }

    #[test]
    fn sip_user_is_the_number() {
        let n = dialled_number("sip:+86-10-1234@example.com;user=phone").unwrap();
        assert_eq!(n.number, "+86101234");
        assert_eq!(n.phone_context, None);
    }

    /// A name in a SIP user part keeps its dots and dashes (before, `john.doe` was routed
    /// and sent on as `johndoe`); a number loses them.
    #[test]
    fn a_name_keeps_its_separators() {
        for (uri, user) in [
            ("sip:john.doe@h", "john.doe"),
            ("sip:sales-team@h", "sales-team"),
            ("sip:(0)10-1234@h", "0101234"),
            ("sip:*21%23@h", "*21#"),
        ] {
            assert_eq!(dialled_number(uri).unwrap().number, user, "{uri}");
        }
    }

    /// A number's known parameters are kept, well-formed ones only, each once, in RFC 3966
    /// order; from a SIP URI's user part only for a telephone number. Others (the hop's
    /// `tgrp`, anything unknown) are not.
    #[test]
    fn a_numbers_parameters_are_kept() {
        for (uri, params) in [
            ("tel:+1555;rn=+1999;npdi", ";npdi;rn=+1999"),
            ("tel:1234;phone-context=+1;ext=22;isub=9", ";ext=22;isub=9"),
            (
                "tel:+1555;RN=%2B1999;rn=2;cpc=ordinary",
                ";cpc=ordinary;rn=%2B1999",
            ),
            (
                "tel:+1555;tgrp=t1;trunk-context=x.example;foo=1;oli=62",
                ";oli=62",
            ),
            ("sip:+1555;npdi;rn=+1999@h;user=phone", ";npdi;rn=+1999"),
            ("sip:+1555;rn=a%3Ab@h;user=phone", ";rn=a:b"),
            // Not a paramchar, or a `%` left after decoding (`%2541` is not `A`): left out,
            // and an `npdi` whose `rn` was left out goes too (alone it says "not ported").
            ("sip:+1555;npdi;rn=a%22b;cpc=%25@h", ""),
            ("sip:+1555;rn=a%2541@h", ""),
            // A value missing, or one given to the flag: left out.
            ("tel:+1555;npdi;rn;cpc", ""),
            ("tel:+1555;npdi=yes;ext=1", ";ext=1"),
            ("sip:john;npdi@h", ""),
            ("tel:+1555", ""),
        ] {
            assert_eq!(dialled_number(uri).unwrap().params, params, "{uri}");
        }
        let long = format!("tel:+1555;rn={};cic=1", "1".repeat(MAX_VALUE + 1));
        assert_eq!(dialled_number(&long).unwrap().params, ";cic=1");
        // From a caller not trusted with them, only the subaddress and extension.
        let n = dialled_number("tel:+1555;ext=7;npdi;rn=+1999;cpc=test").unwrap();
        assert_eq!(n.trusted_params(false), ";ext=7");
        assert_eq!(n.trusted_params(true), ";ext=7;cpc=test;npdi;rn=+1999");
    }

    #[test]
    fn tel_with_context() {
        let n = dialled_number("tel:1234;phone-context=+86").unwrap();
        assert_eq!(n.number, "1234");
        assert_eq!(n.phone_context.as_deref(), Some("+86"));
    }

    /// A global context that is no number (`+1,9`, escaped into a SIP user part, or `+44x`)
    /// leaves the number unreadable: routed as `+1,9…` before, garbage sent on. One with
    /// visual separators is read.
    #[test]
    fn a_global_context_that_is_no_number_leaves_the_number_unreadable() {
        assert!(dialled_number("sip:5551234;phone-context=+1%2C9@h").is_none());
        assert!(dialled_number("tel:5551234;phone-context=+44x").is_none());
        assert!(dialled_number("tel:5551234;phone-context=+").is_none());
        let n = dialled_number("tel:5551234;phone-context=+1-212").unwrap();
        assert_eq!(n.phone_context.as_deref(), Some("+1-212"));
        let n = dialled_number("tel:1234;phone-context=pbx.example.com").unwrap();
        assert_eq!(n.phone_context.as_deref(), Some("pbx.example.com"));
    }

    /// A tel URI with a parameter the parser cannot read before its `phone-context` (an
    /// empty one, a comma in a value, the context itself `+1,9`) is unreadable: before, the
    /// context after it was lost and the local number read in the sender's country.
    #[test]
    fn a_tel_uri_with_an_unreadable_parameter_is_unreadable() {
        assert!(dialled_number("tel:5550100;;phone-context=+44-20").is_none());
        assert!(dialled_number("tel:5551234;x=a,b;phone-context=+44").is_none());
        assert!(dialled_number("tel:5551234;phone-context=+1,9").is_none());
        let n = dialled_number("tel:5551234;x=a;phone-context=+44").unwrap();
        assert_eq!(n.phone_context.as_deref(), Some("+44"));
    }

    #[test]
    fn tel_global_with_separators() {
        let n = dialled_number("tel:+1-(212)-555.0100").unwrap();
        assert_eq!(n.number, "+12125550100");
    }

    #[test]
    fn no_user_no_number() {
        assert!(dialled_number("sip:example.com").is_none());
        assert!(dialled_number("not a uri").is_none());
    }
}
