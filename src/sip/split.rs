/// The number at the start of a header value (`120`, `120 (maintenance);duration=60`:
/// Retry-After, Expires), if it has one; one too large for a u64 is `u64::MAX` (every
/// caller caps what it takes: a huge Retry-After is the longest rest, not none).
pub fn leading_number(value: &str) -> Option<u64> {
    let digits: String = value
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    match digits.parse() {
        Ok(n) => Some(n),
        Err(_) if !digits.is_empty() => Some(u64::MAX),
        Err(_) => None,
    }
}

/// Split a comma-separated header value (Route, Record-Route, Contact) into its elements,
/// respecting quoted strings and `<…>` so `"Bell, A." <sip:a@b>` stays one element.
pub fn split_header_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' if !in_angle => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

/// How many elements a comma-separated header value holds (as [`split_header_list`] would
/// split it), without building them.
pub fn count_list(value: &[u8]) -> usize {
    let (mut n, mut any) = (0, false);
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    for &b in value {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quote => escaped = true,
            b'"' if !in_angle => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            b',' if !in_quote && !in_angle => {
                n += usize::from(any);
                any = false;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => {}
        }
        any = true;
    }
    n + usize::from(any)
}

/// The bytes of `value` outside its quoted strings, with their offsets (a backslash inside
/// quotes escapes the next byte; quotes are not yielded). What a header's delimiters are
/// looked for in.
pub fn outside_quotes(value: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    outside_quotes_bytes(value.as_bytes())
}

/// As [`outside_quotes`], over bytes that need not be UTF-8.
fn outside_quotes_bytes(value: &[u8]) -> impl Iterator<Item = (usize, u8)> + '_ {
    let (mut in_quote, mut escaped) = (false, false);
    value.iter().copied().enumerate().filter(move |&(_, b)| {
        if escaped {
            escaped = false;
            return false;
        }
        match b {
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            _ => return !in_quote,
        }
        false
    })
}

/// Whether `text` holds a control character other than HTAB (the parser takes an ESC or a
/// NUL in a value; copied to another peer it may cut or confuse that peer's parsing).
pub fn has_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\t')
}

/// A header value built from another leg's (`media/type;params`): the parameters holding a
/// control character left out, the rest kept as written; `None` when the value itself holds
/// one.
pub fn without_control_params(value: &str) -> Option<String> {
    // The usual value holds none: copied as it is, with no split.
    if !has_control(value) {
        return Some(value.to_string());
    }
    let mut parts = split_params(value).into_iter();
    let first = parts.next().filter(|v| !has_control(v))?;
    let mut out = first.to_string();
    for p in parts.filter(|p| !has_control(p)) {
        out.push(';');
        out.push_str(p);
    }
    Some(out)
}

/// Whether `p` (`name` or `name=value`, trimmed) is a well-formed generic parameter (RFC
/// 3261 §25.1: `token [ "=" ( token / host / quoted-string ) ]`), fit to be written into
/// another leg's header as it is: a value quoted but never closed (`reason="x`), or with a
/// space, would make the far peer reject the whole message.
pub fn generic_param_ok(p: &str) -> bool {
    let (name, value) = match p.split_once('=') {
        Some((n, v)) => (n.trim(), Some(v.trim())),
        None => (p.trim(), None),
    };
    if !is_token(name) {
        return false;
    }
    let Some(v) = value else {
        return true;
    };
    if let Some(inner) = v.strip_prefix('"') {
        return quoted_body_closes(inner);
    }
    // A host: a name or IPv4 address is token characters; an IPv6 reference is bracketed.
    is_token(v)
        || (v.len() > 2
            && v.starts_with('[')
            && v.ends_with(']')
            && v[1..v.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'))
}

/// Whether `b` is one of RFC 3261 §25.1's token characters.
#[inline]
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Whether `s` is an RFC 3261 token: one or more token characters.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Whether `inner` (what follows a quoted string's opening quote) is the rest of one quoted
/// string and nothing after it: escapes paired, no control character, closed at its end.
fn quoted_body_closes(inner: &str) -> bool {
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        match b {
            // An escape takes the next byte, whatever it is but a line break.
            b'\\' => match bytes.next() {
                None | Some(b'\r' | b'\n') => return false,
                Some(_) => {}
            },
            b'"' => return bytes.next().is_none(),
            b'\r' | b'\n' | 0 => return false,
            _ => {}
        }
    }
    false
}

/// The `;`-separated parts of a header value (its value, then each parameter), split
/// outside quoted strings only: a quoted `text="a;b"` stays one parameter (RFC 3261 §25.1).
pub fn split_params(value: &str) -> Vec<&str> {
    // `;` is ASCII: each cut is at a char boundary.
    split_at_semicolons(value, value.as_bytes())
}

/// As [`split_params`], over bytes that need not be UTF-8 (a Via's hop sent back as it came).
pub(crate) fn split_params_bytes(value: &[u8]) -> Vec<&[u8]> {
    split_at_semicolons(value, value)
}

/// `value` (text or bytes, `bytes` its bytes) cut at each `;` outside quoted strings.
fn split_at_semicolons<'a, T>(value: &'a T, bytes: &[u8]) -> Vec<&'a T>
where
    T: ?Sized + std::ops::Index<std::ops::Range<usize>, Output = T>,
{
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in outside_quotes_bytes(bytes).filter(|&(_, b)| b == b';') {
        out.push(&value[start..i]);
        start = i + 1;
    }
    out.push(&value[start..bytes.len()]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generic_param_is_a_token_with_a_token_host_or_closed_quoted_value() {
        for ok in [
            "npdi",
            "reason=unconditional",
            "reason=\"user busy\"",
            "reason=\"a \\\" quote\"",
            "counter=1",
            "maddr=[2001:db8::1]",
            "x=host.example.com",
        ] {
            assert!(generic_param_ok(ok), "{ok}");
        }
        for bad in [
            "reason=\"x",
            "reason=user busy",
            "reason=\"x\"y",
            "reason=\"x\\",
            "re son=1",
            "=1",
            "reason=",
            "x=[zz]",
            "x=a<b",
        ] {
            assert!(!generic_param_ok(bad), "{bad}");
        }
    }

    #[test]
    fn a_leading_number_is_read_and_one_too_large_is_the_largest() {
        assert_eq!(leading_number(" 120 (maintenance);duration=60"), Some(120));
        assert_eq!(leading_number("18446744073709551615"), Some(u64::MAX));
        // Past u64: the longest a caller allows, not "no Retry-After" (no rest at all).
        assert_eq!(leading_number("99999999999999999999"), Some(u64::MAX));
        assert_eq!(leading_number("soon"), None);
        assert_eq!(leading_number(""), None);
    }

    #[test]
    fn a_list_is_counted_as_it_is_split() {
        for v in [
            "",
            " ",
            "a",
            "a, b",
            "a,,b,",
            r#""Bell, A." <sip:a@b>, <sip:c,d@e>"#,
            r#"SIP/2.0/UDP h;x="a,b\",c", SIP/2.0/TCP k"#,
        ] {
            assert_eq!(
                count_list(v.as_bytes()),
                split_header_list(v).len(),
                "{v:?}"
            );
        }
    }

    #[test]
    fn a_value_from_another_leg_keeps_only_its_clean_parameters() {
        let c = without_control_params;
        assert_eq!(c("application/sdp").as_deref(), Some("application/sdp"));
        assert_eq!(
            c("application/sdp;x=\u{1b};charset=utf-8").as_deref(),
            Some("application/sdp;charset=utf-8")
        );
        assert_eq!(
            c("multipart/mixed;boundary=\"a;\u{0}\";x=1").as_deref(),
            Some("multipart/mixed;x=1")
        );
        assert_eq!(c("application/s\u{7f}dp"), None);
        assert_eq!(
            c("a/b;\tx=1").as_deref(),
            Some("a/b;\tx=1"),
            "HTAB is whitespace"
        );
    }

    #[test]
    fn splits_parameters_outside_quotes_only() {
        assert_eq!(
            split_params(r#"Q.850;text="x;cause=2;\"y;";cause=16"#),
            vec!["Q.850", r#"text="x;cause=2;\"y;""#, "cause=16"]
        );
        assert_eq!(split_params("a"), vec!["a"]);
        assert_eq!(split_params("a;;b;"), vec!["a", "", "b", ""]);
        // An unclosed quote keeps the rest as one part rather than inventing parameters.
        assert_eq!(split_params(r#"a;x="b;c"#), vec!["a", r#"x="b;c"#]);
    }

    #[test]
    fn splits_on_top_level_commas_only() {
        let v = r#""Bell, A." <sip:a@b;lr>, <sip:c@d,e>;x=1 , sip:f@g"#;
        assert_eq!(
            split_header_list(v),
            vec![r#""Bell, A." <sip:a@b;lr>"#, "<sip:c@d,e>;x=1", "sip:f@g"]
        );
    }
}
