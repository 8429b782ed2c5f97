//! HTTP digest authentication as SIP uses it (RFC 3261 §22.4, RFC 2617, RFC 7616, RFC 8760):
//! reading `WWW-Authenticate` / `Proxy-Authenticate` challenges and computing the
//! `Authorization` / `Proxy-Authorization` answer.
//!
//! The hashes come from RustCrypto's `md-5` and `sha2`. The protocol logic is ours: the
//! digest crate on crates.io (`digest_auth` 0.3) slices its input by character index, so a
//! challenge with a non-ASCII byte panics it, matches parameter names case-sensitively, reads
//! one challenge per header and draws its cnonce from a thread RNG, none of which a gateway
//! facing carriers can accept.

use std::fmt::Write as _;

use md5::Md5;
use sha2::Sha256;
use thiserror::Error;

/// More challenges than this in one response are ignored: no real server sends more than a
/// handful (one per algorithm), and the list is walked for every challenge.
pub const MAX_CHALLENGES: usize = 16;
/// Parameters per challenge beyond this are ignored (RFC 7616 defines ten).
const MAX_PARAMS: usize = 32;

/// A digest algorithm (RFC 7616 §3.3, the `algorithm` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    /// Every algorithm we answer, strongest first: the default preference.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Md5,
        Algorithm::Md5Sess,
    ];

    /// The token as written in headers and in the profile's `[auth] algorithm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Parses a token case-insensitively (`md5`, `SHA-256-SESS`, …).
    pub fn parse(token: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(token.trim()))
    }

    /// A `-sess` algorithm: its A1 is a session key made once per nonce.
    pub fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex of the hash of `parts` joined by `:`.
    fn hash(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => crate::hex::encode(&joined::<Md5>(parts)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => {
                crate::hex::encode(&joined::<Sha256>(parts))
            }
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn joined<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut d = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(p);
    }
    d.finalize().to_vec()
}

/// Quality of protection (RFC 7616 §3.3 `qop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// Authentication of method and URI.
    Auth,
    /// Also the body.
    AuthInt,
}

impl Qop {
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Which header carried a challenge, and so which header answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// `401` with `WWW-Authenticate`, answered with `Authorization`.
    Www,
    /// `407` with `Proxy-Authenticate`, answered with `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The kind a status code asks for: 401 → Www, 407 → Proxy.
    pub fn for_status(status: u16) -> Option<ChallengeKind> {
        match status {
            401 => Some(ChallengeKind::Www),
            407 => Some(ChallengeKind::Proxy),
            _ => None,
        }
    }

    /// The header holding the challenge.
    pub fn challenge_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }

    /// The header holding the answer.
    pub fn credentials_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// A digest challenge we can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The qop values offered; empty when the server offered none (RFC 2069 style).
    pub qop: Vec<Qop>,
    /// `stale=true`: our credentials were right, only the nonce had expired.
    pub stale: bool,
}

impl Challenge {
    /// The qop we answer with: `auth` when offered, because bodies are routinely rewritten on
    /// the way (SDP anchoring, SBCs) and `auth-int` would then fail; `auth-int` only when it
    /// is all the server takes.
    pub fn chosen_qop(&self) -> Option<Qop> {
        if self.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else {
            self.qop.first().copied()
        }
    }
}

/// Why a challenge could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChallengeError {
    #[error("authentication scheme {0:?} is not Digest")]
    NotDigest(String),
    #[error("digest challenge without {0}")]
    Missing(&'static str),
    #[error("digest algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
    #[error("digest challenge offers no qop we support ({0:?})")]
    UnsupportedQop(String),
    #[error("malformed digest challenge")]
    Malformed,
}

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
            // Not a token: skip this element up to the next comma outside quotes.
            if let Some(c) = cur.as_mut() {
                c.malformed = true;
            }
            i = skip_element(b, i + 1);
            continue;
        }
        let token = value.get(start..i).unwrap_or_default();
        let j = skip(b, i, is_ws);
        if b.get(j) == Some(&b'=') && cur.is_some() {
            let (v, next, ok) = read_value(value, skip(b, j + 1, is_ws));
            // token68 (`Basic dXNlcg==`) ends in `=` characters: take them as part of nothing.
            i = skip(b, next, |c| c == b'=');
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

/// Reads a Digest challenge out of a raw one.
pub fn parse_digest(raw: &RawChallenge) -> Result<Challenge, ChallengeError> {
    if !raw.scheme.eq_ignore_ascii_case("Digest") {
        return Err(ChallengeError::NotDigest(raw.scheme.clone()));
    }
    if raw.malformed {
        return Err(ChallengeError::Malformed);
    }
    let realm = raw.param("realm").ok_or(ChallengeError::Missing("realm"))?;
    let nonce = raw.param("nonce").ok_or(ChallengeError::Missing("nonce"))?;
    if nonce.is_empty() {
        return Err(ChallengeError::Missing("nonce"));
    }
    let algorithm = match raw.param("algorithm") {
        None => Algorithm::Md5,
        Some(a) => {
            Algorithm::parse(a).ok_or_else(|| ChallengeError::UnsupportedAlgorithm(a.into()))?
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
                return Err(ChallengeError::UnsupportedQop(q.into()));
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

/// What one answer to a challenge is computed from.
#[derive(Clone)]
pub struct DigestInput<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    /// The Request-URI exactly as sent.
    pub uri: &'a str,
    /// The body (for `auth-int`).
    pub body: &'a [u8],
    /// Nonce count, 1 for the first use of a nonce.
    pub nc: u32,
    pub cnonce: &'a str,
}

// Hand-written so the password can never reach a log through `{:?}`.
impl std::fmt::Debug for DigestInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestInput")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("nc", &self.nc)
            .finish_non_exhaustive()
    }
}

/// The `response` value (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1 without qop).
pub fn response(ch: &Challenge, qop: Option<Qop>, input: &DigestInput<'_>) -> String {
    let alg = ch.algorithm;
    let user_realm_pw = [
        input.username.as_bytes(),
        ch.realm.as_bytes(),
        input.password.as_bytes(),
    ];
    let ha1 = if alg.is_sess() {
        let inner = alg.hash(&user_realm_pw);
        alg.hash(&[
            inner.as_bytes(),
            ch.nonce.as_bytes(),
            input.cnonce.as_bytes(),
        ])
    } else {
        alg.hash(&user_realm_pw)
    };
    let ha2 = match qop {
        Some(Qop::AuthInt) => {
            let body = alg.hash(&[input.body]);
            alg.hash(&[
                input.method.as_bytes(),
                input.uri.as_bytes(),
                body.as_bytes(),
            ])
        }
        _ => alg.hash(&[input.method.as_bytes(), input.uri.as_bytes()]),
    };
    match qop {
        Some(q) => {
            let nc = format!("{:08x}", input.nc);
            alg.hash(&[
                ha1.as_bytes(),
                ch.nonce.as_bytes(),
                nc.as_bytes(),
                input.cnonce.as_bytes(),
                q.as_str().as_bytes(),
                ha2.as_bytes(),
            ])
        }
        None => alg.hash(&[ha1.as_bytes(), ch.nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// The credentials header value answering `ch` (`Digest username="…", …`). The password
/// enters only the hash.
pub fn credentials_value(ch: &Challenge, input: &DigestInput<'_>) -> String {
    let qop = ch.chosen_qop();
    let resp = response(ch, qop, input);
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
        quote(input.username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(input.uri),
        quote(&resp),
        ch.algorithm.as_str(),
    );
    if let Some(o) = &ch.opaque {
        let _ = write!(v, ", opaque={}", quote(o));
    }
    if let Some(q) = qop {
        let _ = write!(
            v,
            ", qop={}, nc={:08x}, cnonce={}",
            q.as_str(),
            input.nc,
            quote(input.cnonce)
        );
    } else if ch.algorithm.is_sess() {
        let _ = write!(v, ", cnonce={}", quote(input.cnonce));
    }
    v
}

/// A quoted-string with `"` and `\` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A fresh client nonce: 16 random bytes as hex.
pub fn cnonce(rng: &mut impl rand::RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    crate::hex::encode(&b)
}

#[cfg(test)]
mod tests;
