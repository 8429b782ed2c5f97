//! Signed call-back datagrams (`[callback] secret_file`): over UDP a source address can be
//! forged, a key cannot. Each message, both ways, ends in `;ts=UNIX_SECONDS;sig=HEX`, where
//! `HEX` is the HMAC-SHA256, under the shared key, of the signer's label (`as:` or `gw:`)
//! followed by everything before `;sig=` (the message and its `ts`), as 64 hex digits. A
//! message is taken if its MAC is right under one of the keys and its `ts` is within
//! [`MAX_SKEW_S`] of our clock; a REQUEST sent again inside that window is recognised by
//! [`Replays`]. Pure functions and plain data: the caller gives the time.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a message's `ts` may be from our clock, either way, in seconds.
pub const MAX_SKEW_S: u64 = 30;
/// Shortest key accepted (a key is the bytes of one line of the secret file).
pub const MIN_KEY_LEN: usize = 16;
/// Keys in one secret file at most (the current one, and those still accepted while the
/// application servers move to it).
pub const MAX_KEYS: usize = 4;
const SIG: &[u8] = b";sig=";
const TS: &[u8] = b";ts=";
/// The most a signature adds to a message: `;ts=`, 20 digits, `;sig=`, 64 hex digits, and
/// the line end (CR LF at most) after them.
pub const MAX_SUFFIX: usize = TS.len() + 20 + SIG.len() + 64 + 2;

/// Who signed a datagram. Part of what the MAC covers, so that a datagram cannot be sent
/// back to its own signer as if the other side had signed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// The application server.
    As,
    Gateway,
}

impl Signer {
    fn label(self) -> &'static [u8] {
        match self {
            Signer::As => b"as:",
            Signer::Gateway => b"gw:",
        }
    }
}

/// The shared keys: the first signs what the gateway sends, any of them verifies. Never
/// printed (`Debug` says how many there are). Each with its HMAC state keyed once, and its
/// [`KeyRef`] made once.
#[derive(Clone)]
pub struct Keys(Vec<(Vec<u8>, HmacSha256, KeyRef)>);

impl PartialEq for Keys {
    fn eq(&self, other: &Keys) -> bool {
        self.0.iter().map(|k| &k.0).eq(other.0.iter().map(|k| &k.0))
    }
}

impl Eq for Keys {}

impl Keys {
    /// One key per non-empty line of `text` (surrounding spaces trimmed).
    pub fn parse(text: &str) -> Result<Keys, &'static str> {
        let keys: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if keys.is_empty() {
            return Err("holds no key");
        }
        if keys.len() > MAX_KEYS {
            return Err("holds more than 4 keys");
        }
        if keys.iter().any(|k| k.len() < MIN_KEY_LEN) {
            return Err("has a key shorter than 16 bytes");
        }
        keys.into_iter()
            .map(|k| {
                let mac = <HmacSha256 as Mac>::new_from_slice(k.as_bytes())
                    .map_err(|_| "has a key HMAC refuses")?;
                Ok((k.as_bytes().to_vec(), mac, KeyRef::of(k.as_bytes())))
            })
            .collect::<Result<_, _>>()
            .map(Keys)
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({} hidden)", self.0.len())
    }
}

/// Why a datagram was not taken; each is dropped unanswered and counted under its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigError {
    /// No `;sig=`, or no `;ts=` before it.
    Unsigned,
    /// The MAC is not that of any key (or is not 64 hex digits).
    BadSignature,
    /// Signed right, but `ts` is too far from our clock (a replay, or a clock to fix).
    Stale,
}

impl SigError {
    pub fn reason(self) -> &'static str {
        match self {
            SigError::Unsigned => "unsigned",
            SigError::BadSignature => "bad_signature",
            SigError::Stale => "stale",
        }
    }
}

/// A datagram whose signature holds: the message without `ts` and `sig`, and the MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'a> {
    pub message: &'a [u8],
    pub mac: [u8; 32],
    /// Its `ts`.
    pub ts: u64,
    /// Which key signed it: the answers to it are signed with that one, which its sender
    /// knows.
    pub key: KeyRef,
}

/// A key, named by its SHA-256 rather than its place in the key file: a rotation puts the
/// new key first and moves the old one down, and a call-back placed before it must still
/// have its RESPONSE signed with the key its REQUEST came with (by place, it was signed
/// with the new key, which its AS did not have yet, and was refused).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyRef([u8; 32]);

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyRef(hidden)")
    }
}

impl KeyRef {
    fn of(key: &[u8]) -> KeyRef {
        use sha2::Digest;
        KeyRef(sha2::Sha256::digest(key).into())
    }
}

/// Check `datagram`, signed by `by` (one line end, LF or CRLF, allowed after it), at
/// wall-clock second `now_s`.
pub fn verify<'a>(
    datagram: &'a [u8],
    by: Signer,
    keys: &Keys,
    now_s: u64,
) -> Result<Verified<'a>, SigError> {
    let d = datagram.strip_suffix(b"\n").unwrap_or(datagram);
    let d = d.strip_suffix(b"\r").unwrap_or(d);
    let at = rfind(d, SIG).ok_or(SigError::Unsigned)?;
    let (signed, hex) = (&d[..at], &d[at + SIG.len()..]);
    let ts_at = rfind(signed, TS).ok_or(SigError::Unsigned)?;
    let ts = &signed[ts_at + TS.len()..];
    let mac = unhex(hex).ok_or(SigError::BadSignature)?;
    let key = keys.0.iter().find(|(_, k, _)| {
        let mut m = k.clone();
        m.update(by.label());
        m.update(signed);
        // Constant time: a forger learns nothing from how long a refusal takes.
        m.verify_slice(&mac).is_ok()
    });
    let Some(&(_, _, key)) = key else {
        return Err(SigError::BadSignature);
    };
    let ts = std::str::from_utf8(ts)
        .ok()
        .filter(|t| (1..=20).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or(SigError::BadSignature)?;
    if ts.abs_diff(now_s) > MAX_SKEW_S {
        return Err(SigError::Stale);
    }
    Ok(Verified {
        message: &signed[..ts_at],
        mac,
        ts,
        key,
    })
}

/// `message` (a line feed at its end kept at the end) signed by `by` with the first key at
/// `now_s`.
pub fn sign(message: &[u8], by: Signer, keys: &Keys, now_s: u64) -> Vec<u8> {
    sign_with(message, by, (keys, None), now_s)
}

/// [`sign`] with key `key` (the first when there is none, or a reload took it out).
/// Answers go with the key their datagram came with: during a rotation (the new key put
/// first) an AS not yet moved to it still reads them.
pub fn sign_with(
    message: &[u8],
    by: Signer,
    (keys, key): (&Keys, Option<KeyRef>),
    now_s: u64,
) -> Vec<u8> {
    let (body, lf) = match message.strip_suffix(b"\n") {
        Some(b) => (b, true),
        None => (message, false),
    };
    let mut out = Vec::with_capacity(message.len() + 96);
    out.extend_from_slice(body);
    out.extend_from_slice(TS);
    out.extend_from_slice(now_s.to_string().as_bytes());
    let named = key.and_then(|r| keys.0.iter().find(|(_, _, id)| *id == r));
    let Some((_, chosen, _)) = named.or_else(|| keys.0.first()) else {
        return out;
    };
    let mut m = chosen.clone();
    m.update(by.label());
    m.update(&out);
    let mac = m.finalize().into_bytes();
    out.extend_from_slice(SIG);
    out.extend_from_slice(crate::hex::encode(&mac).as_bytes());
    if lf {
        out.push(b'\n');
    }
    out
}

/// What became of a signed REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// It placed a call-back.
    Placed,
    /// It was refused, for this reason.
    Refused(&'static str),
}

/// The signed REQUESTs whose `ts` is still good, by MAC, and what became of each: one sent
/// again inside its window gets the same answer and changes nothing (whoever sends it, and
/// whether its id is remembered or not). An entry goes, oldest first, once it has been
/// held for the window's width on the monotonic clock and no wall-clock reading near now
/// could take its `ts` any more (the clock `verify` judges by): a wall clock set back keeps
/// entries longer, never shorter, and one that jumps forward and is set back within the
/// window (a bad NTP step, corrected) forgets nothing. With a steady clock an entry lives
/// the window's width, so the table holds every signed REQUEST of the last minute, placed
/// or refused (refused ones too: a refusal sent again must not place the call). At most
/// [`Replays::MAX`], more than a minute at the highest `rate` placed, and at most
/// [`Replays::share_for`] from one source (an IPv4 address, an IPv6 /64: half of what the
/// others leave, so one AS flooding signed REQUESTs, refused or not, leaves room for the
/// others, and so do two); a REQUEST that finds no room is refused. Only datagrams signed with our key get in.
#[derive(Debug, Default)]
pub struct Replays {
    /// (first seen, `ts`, MAC, its source's IP), in the order they were first seen.
    by_arrival: VecDeque<(Instant, u64, [u8; 32], IpAddr)>,
    seen: HashMap<[u8; 32], Seen>,
    /// Entries per source IP (only IPs that hold some).
    by_source: HashMap<IpAddr, usize>,
}

impl Replays {
    /// A minute of the highest `rate` (1,000 a second placed) under the seven eighths past
    /// which new REQUESTs are refused, and then some.
    pub const MAX: usize = 131_072;

    /// The most one source IP may hold, alone in the table: still more than a minute at the
    /// highest `rate`.
    pub const SHARE: usize = Self::MAX / 2;

    /// The least a source's share falls to, however many hold entries.
    const FLOOR: usize = Self::MAX / 16;

    /// The most `src` may hold: half of what the other sources leave (a lone source half
    /// the table, [`Replays::SHARE`]), at least [`Replays::FLOOR`]. Two that flood settle
    /// at a third each, three at a quarter: room is always left for one more, and a busy
    /// AS keeps its half beside others that hold little. Before, each source had half,
    /// whatever the others held: two (an AS's two NAT addresses, its IPv4 and IPv6) filled
    /// the table for every other.
    pub fn share_for(&self, src: IpAddr) -> usize {
        let others = self.seen.len().saturating_sub(self.held_by(src));
        (Self::MAX.saturating_sub(others) / 2).max(Self::FLOOR)
    }

    /// How long an entry stays whatever the wall clock says: the window's width.
    const HOLD: Duration = Duration::from_secs(2 * MAX_SKEW_S);

    /// What became of `mac` (forgetting what no clock reading near `now_s` could take, once
    /// held for [`Replays::HOLD`]).
    pub fn seen(&mut self, now: Instant, now_s: u64, mac: &[u8; 32]) -> Option<Seen> {
        self.forget(now, now_s);
        self.seen.get(mac).copied()
    }

    /// Forget what no clock reading near `now_s` could take any more, once held for
    /// [`Replays::HOLD`]; the tables shrink with it. Also asked every second, so a burst's
    /// entries (up to ~10 MB) go in the quiet after it, not at the next signed REQUEST.
    pub fn forget(&mut self, now: Instant, now_s: u64) {
        while let Some(&(at, ts, old, ip)) = self.by_arrival.front()
            && now.saturating_duration_since(at) >= Self::HOLD
            && ts.saturating_add(MAX_SKEW_S) < now_s
        {
            self.by_arrival.pop_front();
            self.seen.remove(&old);
            if let Some(n) = self.by_source.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.by_source.remove(&ip);
                }
            }
        }
        crate::maps::shrink_if_sparse(&mut self.seen);
        crate::maps::shrink_if_sparse(&mut self.by_source);
        let (len, cap) = (self.by_arrival.len(), self.by_arrival.capacity());
        if cap > 1024 && len < cap / 4 {
            self.by_arrival.shrink_to(len * 2);
        }
    }

    #[cfg(test)]
    pub fn arrival_capacity(&self) -> usize {
        self.by_arrival.capacity()
    }

    /// Remember what became of the REQUEST signed at `ts` with `mac`, seen at `now` from
    /// `src`.
    pub fn remember(&mut self, now: Instant, (ts, src): (u64, IpAddr), mac: [u8; 32], what: Seen) {
        if let Some(was) = self.seen.get_mut(&mac) {
            // Placed stays placed: a copy refused afterwards (sent from another source, it
            // finds its id taken) must not turn the AS's own resend into that refusal, and
            // the AS into placing the call again under a new id.
            if *was != Seen::Placed {
                *was = what;
            }
        } else if !self.is_full_for(src) {
            self.seen.insert(mac, what);
            self.by_arrival.push_back((now, ts, mac, src));
            *self.by_source.entry(src).or_default() += 1;
        }
    }

    /// Full: a signed REQUEST not seen before cannot be remembered, so it is not taken.
    pub fn is_full(&self) -> bool {
        self.seen.len() >= Self::MAX
    }

    /// How many entries `src` holds.
    pub fn held_by(&self, src: IpAddr) -> usize {
        self.by_source.get(&src).copied().unwrap_or(0)
    }

    /// Full for `src`: the table, or `src`'s share of it.
    pub fn is_full_for(&self, src: IpAddr) -> bool {
        self.is_full() || self.held_by(src) >= self.share_for(src)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn unhex(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
