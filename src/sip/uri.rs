use super::message::parse_uri;

/// A telephone number read out of a `sip:`/`sips:` user part or a `tel:` subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberUri {
    /// The number as written, visual separators removed (`+86 10-1234` is `+86101234`).
    pub number: String,
    /// RFC 3966 `phone-context`, when the number is local.
    pub phone_context: Option<String>,
    /// The number's other RFC 3966 parameters (`;isub=`, `;ext=`, and those a carrier adds:
    /// `;rn=…;npdi` for a ported number, RFC 4694; `;cpc=`, `;oli=`), each `;name[=value]`,
    /// values in tel: form (`%HH` allowed): ext and isub first, the rest by name (RFC 3966
    /// §3). Empty when there are none. Only a telephone number has them.
    pub params: String,
}

/// At most this many parameters of a number are carried, and at most [`MAX_PARAMS_LEN`]
/// bytes of them: a number does not need more, and a peer cannot make every URI we write
/// toward the other leg long.
const MAX_PARAMS: usize = 8;
const MAX_PARAMS_LEN: usize = 256;

/// An RFC 3966 `pname`: alphanumerics and `-`.
fn is_pname(n: &[u8]) -> bool {
    !n.is_empty() && n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// An RFC 3966 `pvalue`: `paramchar`s (unreserved, `[]/:&+$`, `%HH`).
fn is_pvalue(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' => {
                if !v
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$".contains(&b) => i += 1,
            _ => return false,
        }
    }
    !v.is_empty()
}

/// A number's parameters other than `phone-context`, written as [`NumberUri::params`]:
/// well-formed ones only (a malformed one is left out, not copied into URIs we build), each
/// name once, bounded.
fn number_params<'a>(params: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>) -> String {
    let mut kept: Vec<(String, Option<&[u8]>)> = Vec::new();
    for (name, value) in params {
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        if !is_pname(name)
            || lower == "phone-context"
            || value.is_some_and(|v| !is_pvalue(v))
            || kept.iter().any(|(n, _)| *n == lower)
        {
            continue;
        }
        if kept.len() == MAX_PARAMS {
            break;
        }
        kept.push((lower, value));
    }
    // RFC 3966 §3: isub or ext first, the others in lexicographical order.
    kept.sort_by_key(|(n, _)| (!matches!(n.as_str(), "isub" | "ext"), n.clone()));
    let mut out = String::new();
    for (name, value) in kept {
        let len = 1 + name.len() + value.map_or(0, |v| 1 + v.len());
        if out.len() + len > MAX_PARAMS_LEN {
            break;
        }
        out.push(';');
        out.push_str(&name);
        if let Some(v) = value {
            out.push('=');
            // Checked above: ASCII.
            out.push_str(&String::from_utf8_lossy(v));
        }
    }
    out
}

/// Remove RFC 3966 visual separators (`-`, `.`, `(`, `)`) and spaces from a dialled string.
pub fn strip_visual_separators(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect()
}

/// Digits (with `*` and `#`), after an optional `+`: what a telephone number is once its
/// visual separators are gone.
fn is_phone_digits(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// The number a URI dials: the decoded user part of a SIP URI, or the subscriber of a tel URI
/// (with its `phone-context`). `None` when the URI carries no user (a SIP URI without `user@`).
pub fn dialled_number(uri: &str) -> Option<NumberUri> {
    let parsed = parse_uri(uri).ok()?;
    if let Some(tel) = parsed.tel_parts() {
        let number = strip_visual_separators(&String::from_utf8_lossy(tel.subscriber()));
        let phone_context = tel.parsed_parameters().find_map(|p| match p {
            Ok(p) if p.name_eq(b"phone-context") => {
                p.value().map(|v| String::from_utf8_lossy(v).into_owned())
            }
            _ => None,
        });
        let params = number_params(
            tel.parsed_parameters()
                .flatten()
                .map(|p| (p.name(), p.value())),
        );
        return Some(NumberUri {
            number,
            phone_context,
            params,
        });
    }
    let user = parsed.decoded_user()?;
    let user = String::from_utf8_lossy(&user).into_owned();
    // A SIP user part may itself carry telephone-subscriber parameters (RFC 3261 §19.1.6).
    let mut pieces = user.split(';');
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
    // The user part was decoded: a value's `%`, `[`, `]` or `:` is escaped again where it
    // is written into a SIP URI (and a decoded `%` is no tel: `%HH`, so it is left out).
    let params = if is_phone_digits(&number) {
        number_params(pieces.map(|p| match p.split_once('=') {
            Some((k, v)) => (k.as_bytes(), Some(v.as_bytes())),
            None => (p.as_bytes(), None),
        }))
    } else {
        String::new()
    };
    Some(NumberUri {
        number,
        phone_context,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A number's other parameters are kept, well-formed ones only, each once, in RFC 3966
    /// order; from a SIP URI's user part only for a telephone number.
    #[test]
    fn a_numbers_parameters_are_kept() {
        for (uri, params) in [
            ("tel:+1555;rn=+1999;npdi", ";npdi;rn=+1999"),
            ("tel:1234;phone-context=+1;ext=22;isub=9", ";ext=22;isub=9"),
            (
                "tel:+1555;RN=%2B1999;rn=2;cpc=ordinary",
                ";cpc=ordinary;rn=%2B1999",
            ),
            ("sip:+1555;npdi;rn=+1999@h;user=phone", ";npdi;rn=+1999"),
            ("sip:+1555;rn=a%3Ab@h;user=phone", ";rn=a:b"),
            // Not a paramchar, or a lone `%`, or a bad name: left out.
            ("sip:+1555;rn=a%22b;x%20y=1;cpc=%25@h", ""),
            ("sip:john;npdi@h", ""),
            ("tel:+1555", ""),
        ] {
            assert_eq!(dialled_number(uri).unwrap().params, params, "{uri}");
        }
        let many: String = (0..20).map(|i| format!(";p{i:02}=1")).collect();
        let n = dialled_number(&format!("tel:+1555{many}")).unwrap();
        assert_eq!(n.params.matches(';').count(), MAX_PARAMS);
        let long = format!("tel:+1555;a={};b={}", "1".repeat(200), "2".repeat(200));
        let n = dialled_number(&long).unwrap();
        assert!(n.params.len() <= MAX_PARAMS_LEN && n.params.starts_with(";a="));
    }

    #[test]
    fn tel_with_context() {
        let n = dialled_number("tel:1234;phone-context=+86").unwrap();
        assert_eq!(n.number, "1234");
        assert_eq!(n.phone_context.as_deref(), Some("+86"));
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
