//! Reading authentication headers (RFC 7235 §4.1, RFC 7616 §3.3): splitting a header
//! value into its challenges, each into its parameters, and a digest challenge into what
//! an answer needs. Never panics on what a peer sends: a byte-wise reader, bounded.

use super::{Algorithm, Challenge, ChallengeError, MAX_CHALLENGES, Qop};

/// Parameters per challenge beyond this are ignored (RFC 7616 defines ten).
const MAX_PARAMS: usize = 32;

/// The longest realm, nonce or opaque answered: each is copied into every later request of
/// the leg (and its ACK), so tens of KB from a hostile peer would push them past what UDP
/// carries. Real servers' are under 200 bytes.
const MAX_VALUE: usize = 1024;

/// One `scheme param=value, …` item of an authentication header, parameter names in lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawChallenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
    /// Something in it could not be read; its parameters may be incomplete.
    pub malformed: bool,
}

impl RawChallenge {
    /// The first value of a parameter (names compare case-insensitively).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits an authentication header value into its challenges (RFC 7235 §4.1: a header may
/// hold several, separated by commas, and commas also separate parameters; quoted strings may
/// hold commas and escaped quotes). Works on credentials (`Authorization`) too, which have the
/// same shape. Never fails: unreadable parts mark their challenge `malformed`.
pub fn split_challenges(value: &str) -> Vec<RawChallenge> {
    let b = value.as_bytes();
    let mut out: Vec<RawChallenge> = Vec::new();
    let mut cur: Option<RawChallenge> = None;
    let mut i = 0;
    // Each pass consumes at least one byte, so the loop ends after at most `b.len()` passes.
    while i < b.len() {
        i = skip(b, i, |c| c == b',' || is_ws(c));
        if i >= b.len() {
            break;
        }
        let start = i;
        i = skip(b, i, is_tchar);
        if i == start {
            // Not a token: skip this element up to the next comma outside quotes, from its
            // first byte (which may open a quoted string). It moves on by one byte at least.
            if let Some(c) = cur.as_mut() {
                c.malformed = true;
            }
            i = skip_element(b, i);
            continue;
        }
        let token = value.get(start..i).unwrap_or_default();
        let j = skip(b, i, is_ws);
        if b.get(j) == Some(&b'=') && cur.is_some() {
            let at = skip(b, j + 1, is_ws);
            let (mut v, next, ok) = read_value(value, at);
            // token68 (`Basic dXNlcg==`) ends in `=` characters: take them as part of nothing.
            i = skip(b, next, |c| c == b'=');
            if token.eq_ignore_ascii_case("qop") && b.get(at) != Some(&b'"') {
                i = unquoted_qops(value, i, &mut v);
            }
            if let Some(c) = cur.as_mut() {
                if !ok {
                    c.malformed = true;
                }
                if c.params.len() < MAX_PARAMS {
                    c.params.push((token.to_ascii_lowercase(), v));
                }
            }
        } else {
            if let Some(c) = cur.take()
                && out.len() < MAX_CHALLENGES
            {
                out.push(c);
            }
            cur = Some(RawChallenge {
                scheme: token.to_string(),
                ..RawChallenge::default()
            });
            i = j;
        }
    }
    if let Some(c) = cur
        && out.len() < MAX_CHALLENGES
    {
        out.push(c);
    }
    out
}

/// An unquoted `qop=auth,auth-int` (RFC 7616 quotes the list; some servers do not): the
/// options after the first, from `i`, added to `v`; the index after them. Without this,
/// `auth-int` would start a challenge of its own and take the parameters after it
/// (`algorithm=SHA-256` among them) away from the digest one.
fn unquoted_qops(value: &str, mut i: usize, v: &mut String) -> usize {
    let b = value.as_bytes();
    loop {
        let start = skip(b, i, |c| c == b',' || is_ws(c));
        let end = skip(b, start, is_tchar);
        let option = value.get(start..end).unwrap_or_default();
        let named = b.get(skip(b, end, is_ws)) == Some(&b'=');
        let known = ["auth", "auth-int"]
            .iter()
            .any(|q| option.eq_ignore_ascii_case(q));
        if start == i || !known || named {
            return i;
        }
        v.push(',');
        v.push_str(option);
        i = end;
    }
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// RFC 7230 tchar.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn skip(b: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while b.get(i).is_some_and(|&c| f(c)) {
        i += 1;
    }
    i
}

/// Index after the next comma that is not inside a quoted string (or the end).
fn skip_element(b: &[u8], mut i: usize) -> usize {
    let mut quoted = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b',' if !quoted => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// A parameter value (quoted string or token) starting at `i`: the value unescaped, the index
/// after it, and whether it was well formed.
fn read_value(s: &str, i: usize) -> (String, usize, bool) {
    let b = s.as_bytes();
    if b.get(i) == Some(&b'"') {
        let mut out = Vec::new();
        let mut k = i + 1;
        while let Some(&c) = b.get(k) {
            match c {
                b'"' => {
                    let ok = !out.iter().any(|c: &u8| c.is_ascii_control());
                    return (String::from_utf8_lossy(&out).into_owned(), k + 1, ok);
                }
                b'\\' => {
                    if let Some(&n) = b.get(k + 1) {
                        out.push(n);
                    }
                    k += 2;
                }
                _ => {
                    out.push(c);
                    k += 1;
                }
            }
        }
        // Unterminated: the rest of the header was swallowed.
        (String::from_utf8_lossy(&out).into_owned(), b.len(), false)
    } else {
        let end = skip(b, i, |c| c != b',' && !is_ws(c) && c != b'"');
        let v = s.get(i..end).unwrap_or_default().to_string();
        let ok = !v.bytes().any(|c| c.is_ascii_control());
        (v, end, ok)
    }
}

/// A peer's value as an error shows it (and the log line the error becomes): its first 64
/// characters, so a 60 KB `algorithm` makes no 60 KB line per call.
fn shown(v: &str) -> String {
    const SHOWN: usize = 64;
    match v.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &v[..at]),
        None => v.to_string(),
    }
}

/// Reads a Digest challenge out of a raw one.
pub fn parse_digest(raw: &RawChallenge) -> Result<Challenge, ChallengeError> {
    if !raw.scheme.eq_ignore_ascii_case("Digest") {
        return Err(ChallengeError::NotDigest(shown(&raw.scheme)));
    }
    if raw.malformed {
        return Err(ChallengeError::Malformed);
    }
    let realm = raw.param("realm").ok_or(ChallengeError::Missing("realm"))?;
    let nonce = raw.param("nonce").ok_or(ChallengeError::Missing("nonce"))?;
    if nonce.is_empty() {
        return Err(ChallengeError::Missing("nonce"));
    }
    if [Some(realm), Some(nonce), raw.param("opaque")]
        .into_iter()
        .flatten()
        .any(|v| v.len() > MAX_VALUE)
    {
        return Err(ChallengeError::Malformed);
    }
    let algorithm = match raw.param("algorithm") {
        None => Algorithm::Md5,
        Some(a) => {
            Algorithm::parse(a).ok_or_else(|| ChallengeError::UnsupportedAlgorithm(shown(a)))?
        }
    };
    let qop = match raw.param("qop") {
        None => Vec::new(),
        Some(q) => {
            let offered: Vec<Qop> = q
                .split(',')
                .filter_map(|t| match t.trim().to_ascii_lowercase().as_str() {
                    "auth" => Some(Qop::Auth),
                    "auth-int" => Some(Qop::AuthInt),
                    _ => None,
                })
                .collect();
            if offered.is_empty() {
                return Err(ChallengeError::UnsupportedQop(shown(q)));
            }
            offered
        }
    };
    Ok(Challenge {
        realm: realm.to_string(),
        nonce: nonce.to_string(),
        opaque: raw.param("opaque").map(str::to_string),
        algorithm,
        qop,
        stale: raw
            .param("stale")
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("true")),
    })
}

/// Every challenge of every line of an authentication header, each parsed or refused.
pub fn parse_header_lines(lines: &[String]) -> Vec<Result<Challenge, ChallengeError>> {
    lines
        .iter()
        .flat_map(|l| split_challenges(l))
        .take(MAX_CHALLENGES)
        .map(|r| parse_digest(&r))
        .collect()
}
