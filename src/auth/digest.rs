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

mod parse;
pub use parse::{RawChallenge, parse_digest, parse_header_lines, split_challenges};

#[cfg(test)]
mod tests;
