use super::message::parse_uri;

/// A telephone number read out of a `sip:`/`sips:` user part or a `tel:` subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberUri {
    /// The number as written, visual separators removed (`+86 10-1234` is `+86101234`).
    pub number: String,
    /// RFC 3966 `phone-context`, when the number is local.
    pub phone_context: Option<String>,
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
        return Some(NumberUri {
            number,
            phone_context,
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
    let phone_context = pieces.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case("phone-context")
            .then(|| v.to_string())
    });
    Some(NumberUri {
        number,
        phone_context,
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
