//! The call-back wire protocol: one ASCII message per UDP datagram,
//! `VERB: key=value;key=value`.
//!
//! From the application server (AS):
//! - `REQUEST: id=ID;user1=NUMBER;user2=NUMBER[;caller=NUMBER][;max_duration=S]`
//! - `CANCEL: id=ID`
//! - `STATUS: id=ID`
//! - `ACK: id=ID` (the AS acknowledges our `RESPONSE`)
//!
//! From the gateway:
//! - `ACK: id=ID;result=ok[;state=STATE]` or `ACK: [id=ID;]result=error;reason=REASON`
//! - `RESPONSE: id=ID;result=RESULT;duration=S;call_tag=TAG;cause=Q850`
//!
//! Parsing is strict: anything unexpected is a [`ParseError`], which the service turns into an
//! error `ACK` without changing any state. Nothing here allocates more than the (bounded)
//! datagram it reads.

use std::fmt;

/// Longest datagram accepted. A full REQUEST (64-character id, three 32-character numbers,
/// a duration) is about 220 bytes; anything much longer is not ours.
pub const MAX_DATAGRAM: usize = 512;
/// Longest call-back id.
pub const MAX_ID: usize = 64;
/// Longest number (ITU-T E.164 allows 15 digits; room for prefixes and `*`/`#` codes).
pub const MAX_NUMBER: usize = 32;
/// Longest `max_duration` a request may ask for, in seconds (a day).
pub const MAX_DURATION_S: u32 = 86_400;

/// An application server's name for one call-back: 1 to 64 visible ASCII characters
/// (`!` to `~`), none of them `;`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallbackId(String);

impl CallbackId {
    pub fn parse(s: &str) -> Option<CallbackId> {
        let ok =
            (1..=MAX_ID).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic() && b != b';');
        ok.then(|| CallbackId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallbackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A number exactly as the AS sent it (the AS owns number format and dial plan): an optional
/// leading `+`, then 1 to 32 digits, `*` or `#`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number(String);

impl Number {
    pub fn parse(s: &str) -> Option<Number> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        let ok = (1..=MAX_NUMBER).contains(&digits.len())
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
        ok.then(|| Number(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The message kinds an AS sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Request,
    Cancel,
    Status,
    Ack,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Request => "request",
            Verb::Cancel => "cancel",
            Verb::Status => "status",
            Verb::Ack => "ack",
        }
    }
}

/// `REQUEST`: connect `user1` and `user2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: CallbackId,
    pub user1: Number,
    pub user2: Number,
    pub caller: Option<Number>,
    /// Seconds; 1..=86400.
    pub max_duration: Option<u32>,
}

/// One well-formed message from an AS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Request(Request),
    Cancel(CallbackId),
    Status(CallbackId),
    Ack(CallbackId),
}

/// Why a datagram is not a valid message. Each maps to the `reason` token of the error `ACK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("datagram longer than {MAX_DATAGRAM} bytes")]
    TooLong,
    #[error("bytes outside ASCII")]
    NotAscii,
    #[error("not `VERB: key=value;…` (or a control character)")]
    BadSyntax,
    #[error("unknown verb")]
    UnknownVerb,
    #[error("unknown key")]
    UnknownKey,
    #[error("a key appears twice")]
    DuplicateKey,
    #[error("a required key is missing")]
    MissingKey,
    #[error("id must be 1 to {MAX_ID} visible ASCII characters without `;`")]
    BadId,
    #[error("a number must be an optional + and 1 to {MAX_NUMBER} digits, * or #")]
    BadNumber,
    #[error("max_duration must be whole seconds, 1 to {MAX_DURATION_S}")]
    BadDuration,
}

impl ParseError {
    /// The `reason=` token sent back to the AS.
    pub fn reason(self) -> &'static str {
        match self {
            ParseError::TooLong => "too_long",
            ParseError::NotAscii => "not_ascii",
            ParseError::BadSyntax => "bad_syntax",
            ParseError::UnknownVerb => "unknown_verb",
            ParseError::UnknownKey => "unknown_key",
            ParseError::DuplicateKey => "duplicate_key",
            ParseError::MissingKey => "missing_key",
            ParseError::BadId => "bad_id",
            ParseError::BadNumber => "bad_number",
            ParseError::BadDuration => "bad_duration",
        }
    }
}

/// A datagram that failed to parse, with what could still be read from it so the error `ACK`
/// can name the id, and so an `ACK` from the AS is never answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub error: ParseError,
    pub verb: Option<Verb>,
    pub id: Option<CallbackId>,
}

/// Keys each verb takes: (name, required).
fn keys(verb: Verb) -> &'static [(&'static str, bool)] {
    match verb {
        Verb::Request => &[
            ("id", true),
            ("user1", true),
            ("user2", true),
            ("caller", false),
            ("max_duration", false),
        ],
        Verb::Cancel | Verb::Status | Verb::Ack => &[("id", true)],
    }
}

/// The verb a datagram starts with, read from the raw bytes so even a datagram rejected
/// before parsing (too long, not ASCII, control characters) is known to be an `ACK`.
fn verb_of(bytes: &[u8]) -> Option<Verb> {
    let colon = bytes.iter().take(16).position(|b| *b == b':')?;
    let word = bytes.get(..colon)?.trim_ascii();
    match word {
        b"REQUEST" => Some(Verb::Request),
        b"CANCEL" => Some(Verb::Cancel),
        b"STATUS" => Some(Verb::Status),
        b"ACK" => Some(Verb::Ack),
        _ => None,
    }
}

/// Parse one datagram.
pub fn parse(bytes: &[u8]) -> Result<Inbound, Rejected> {
    let verb = verb_of(bytes);
    let reject = |error| Rejected {
        error,
        verb,
        id: None,
    };
    if bytes.len() > MAX_DATAGRAM {
        return Err(reject(ParseError::TooLong));
    }
    if !bytes.is_ascii() {
        return Err(reject(ParseError::NotAscii));
    }
    // `echo … | nc -u` ends the line; a trailing CR LF or LF is allowed, nothing else.
    let text = std::str::from_utf8(bytes)
        .map_err(|_| reject(ParseError::NotAscii))?
        .trim_end_matches(['\r', '\n']);
    if text.bytes().any(|b| b.is_ascii_control()) {
        return Err(reject(ParseError::BadSyntax));
    }
    let (_, rest) = text
        .split_once(':')
        .ok_or_else(|| reject(ParseError::BadSyntax))?;
    // Fields are read before the verb is judged, so even an error names a readable id.
    let mut fields: Vec<(&str, &str)> = Vec::with_capacity(5);
    let mut syntax_ok = true;
    for field in rest.split(';') {
        match field.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                // Eight is more than any verb takes (REQUEST has five); more is not ours,
                // and the list stays small whatever the datagram holds.
                if fields.len() < 8 {
                    fields.push((k.trim(), v.trim_matches(' ')));
                } else {
                    syntax_ok = false;
                }
            }
            _ => syntax_ok = false,
        }
    }
    let id = match fields.iter().filter(|(k, _)| *k == "id").count() {
        1 => fields
            .iter()
            .find(|(k, _)| *k == "id")
            .and_then(|(_, v)| CallbackId::parse(v)),
        _ => None,
    };
    let fail = |error| Rejected {
        error,
        verb,
        id: id.clone(),
    };
    let Some(verb) = verb else {
        return Err(fail(ParseError::UnknownVerb));
    };
    if !syntax_ok {
        return Err(fail(ParseError::BadSyntax));
    }
    let allowed = keys(verb);
    for (i, (k, _)) in fields.iter().enumerate() {
        if !allowed.iter().any(|(name, _)| name == k) {
            return Err(fail(ParseError::UnknownKey));
        }
        if fields
            .get(..i)
            .is_some_and(|before| before.iter().any(|(b, _)| b == k))
        {
            return Err(fail(ParseError::DuplicateKey));
        }
    }
    if allowed
        .iter()
        .any(|(name, required)| *required && !fields.iter().any(|(k, _)| k == name))
    {
        return Err(fail(ParseError::MissingKey));
    }
    let value = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let Some(id) = id.clone() else {
        return Err(fail(ParseError::BadId));
    };
    let number = |name: &str| -> Result<Option<Number>, Rejected> {
        match value(name) {
            None => Ok(None),
            Some(v) => Number::parse(v)
                .map(Some)
                .ok_or_else(|| fail(ParseError::BadNumber)),
        }
    };
    Ok(match verb {
        Verb::Request => {
            let (Some(user1), Some(user2)) = (number("user1")?, number("user2")?) else {
                return Err(fail(ParseError::MissingKey));
            };
            let caller = number("caller")?;
            let max_duration = match value("max_duration") {
                None => None,
                Some(v) => Some(parse_seconds(v).ok_or_else(|| fail(ParseError::BadDuration))?),
            };
            Inbound::Request(Request {
                id,
                user1,
                user2,
                caller,
                max_duration,
            })
        }
        Verb::Cancel => Inbound::Cancel(id),
        Verb::Status => Inbound::Status(id),
        Verb::Ack => Inbound::Ack(id),
    })
}

/// `1`..=`86400`, digits only (no sign, no exponent, no leading zeros games beyond length).
fn parse_seconds(v: &str) -> Option<u32> {
    if v.is_empty() || v.len() > 6 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u32>()
        .ok()
        .filter(|s| (1..=MAX_DURATION_S).contains(s))
}

/// How far a call-back has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// user1 is being called.
    Calling1,
    /// user1 answered; user2 is being called.
    Calling2,
    /// Both answered and are connected.
    Connected,
    /// Released (the RESPONSE has been or is being sent).
    Ended,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Calling1 => "calling1",
            State::Calling2 => "calling2",
            State::Connected => "connected",
            State::Ended => "ended",
        }
    }
}

/// How a call-back ended, as the `RESPONSE` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both parties were connected (whoever hung up afterwards).
    Connected,
    /// user1 did not answer, was busy, or could not be reached.
    User1Failed,
    /// user1 answered, user2 did not.
    User2Failed,
    /// The AS cancelled it before both were connected.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::User1Failed => "user1_failed",
            Outcome::User2Failed => "user2_failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// A message the gateway sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound<'a> {
    /// `ACK: id=…;result=ok[;state=…]`.
    Ok {
        id: &'a CallbackId,
        state: Option<State>,
    },
    /// `ACK: [id=…;]result=error;reason=…`; the id is left out when none could be read.
    Error {
        id: Option<&'a CallbackId>,
        reason: &'static str,
    },
    /// `RESPONSE: id=…;result=…;duration=…;call_tag=…;cause=…`.
    Response {
        id: &'a CallbackId,
        outcome: Outcome,
        duration_s: u64,
        /// A CDR `call_tag` (a snake_case token).
        call_tag: &'a str,
        cause: u16,
    },
}

impl Outbound<'_> {
    /// The datagram, ending in LF. At most [`MAX_DATAGRAM`] bytes: ids and numbers are
    /// bounded and a `call_tag` that is not a short snake_case token is sent as `unknown`.
    pub fn encode(&self) -> Vec<u8> {
        let s = match self {
            Outbound::Ok { id, state: None } => format!("ACK: id={id};result=ok\n"),
            Outbound::Ok {
                id,
                state: Some(st),
            } => format!("ACK: id={id};result=ok;state={}\n", st.as_str()),
            Outbound::Error {
                id: Some(id),
                reason,
            } => format!("ACK: id={id};result=error;reason={reason}\n"),
            Outbound::Error { id: None, reason } => format!("ACK: result=error;reason={reason}\n"),
            Outbound::Response {
                id,
                outcome,
                duration_s,
                call_tag,
                cause,
            } => {
                let tag = if is_token(call_tag) {
                    call_tag
                } else {
                    "unknown"
                };
                format!(
                    "RESPONSE: id={id};result={};duration={duration_s};call_tag={tag};cause={cause}\n",
                    outcome.as_str()
                )
            }
        };
        s.into_bytes()
    }
}

/// A short lowercase snake_case token (what a `call_tag` or `reason` is).
fn is_token(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests;
