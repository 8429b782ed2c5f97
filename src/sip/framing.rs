//! Bytes to messages: one UDP datagram, or a TCP byte stream framed by Content-Length
//! (RFC 3261 §18.3) with RFC 5626 keep-alives between messages.

use bytes::{Buf, Bytes, BytesMut};
use sipx_sip as sipx;
use sipx_sip::Limits;

use super::{Message, SipError};

/// Parse one message from a UDP datagram, refusing anything over `max_bytes`.
pub fn parse_datagram(buf: Bytes, max_bytes: usize) -> Result<Message, SipError> {
    let limits = Limits {
        max_message_bytes: max_bytes,
        max_body_bytes: max_bytes,
        ..Limits::datagram()
    };
    sipx::parse_datagram(buf, &limits)
        .map(Message::from_sipx)
        .map_err(SipError::from_parse)
}

/// What the gateway may add to one header the parser took at its size limit: the Via stamp
/// of where a request came from (`via::STAMP_GROWTH`) or our To tag (`;tag=` and 24
/// characters), copied into the answer.
pub const SENT_HEADER_ROOM: usize = 64;
const _: () = assert!(super::via::STAMP_GROWTH <= SENT_HEADER_ROOM);

/// As [`parse_datagram`], with [`SENT_HEADER_ROOM`] in each header: what the gateway sends
/// built from a message it accepted parses again. For tests and fuzz targets.
pub fn parse_sent(buf: Bytes, max_bytes: usize) -> Result<Message, SipError> {
    let limits = Limits {
        max_message_bytes: max_bytes,
        max_body_bytes: max_bytes,
        max_header_bytes: Limits::datagram().max_header_bytes + SENT_HEADER_ROOM,
        ..Limits::datagram()
    };
    sipx::parse_datagram(buf, &limits)
        .map(Message::from_sipx)
        .map_err(SipError::from_parse)
}

/// One message framed out of a stream.
// `Message` is the large variant and the common one: boxing it would cost an allocation
// per message read.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Framed {
    Message(Message),
    /// A message whose length its Content-Length gave, so the stream's framing holds, but
    /// which does not parse (a header over the parser's limit, two Content-Lengths that
    /// agree, a bad URI): answered as such a datagram is (a 400 to a known peer), and the
    /// messages behind it on the stream are read as usual.
    Unparseable {
        wire: Bytes,
        error: SipError,
    },
    /// A request whose Content-Length takes it over the size limit: its header section,
    /// kept to answer it with a 513 (RFC 3261 §21.5.14); its body is skipped unread and the
    /// messages behind it on the stream are read as usual. (Such a response loses the
    /// stream, as before: its transaction fails with the connection.)
    TooLarge {
        head: Bytes,
    },
}

/// The most body bytes skipped after a [`Framed::TooLarge`]: a peer declaring more has no
/// message the gateway would keep its connection for.
const MAX_SKIP: usize = 1 << 20;

/// Buffer room a connection keeps between messages at most: two of its 16 KiB reads, so a
/// busy trunk's reads (a partial message left over each time) do not churn the buffer.
const KEEP_ROOM: usize = 32 * 1024;

/// Frames messages out of a TCP byte stream (Content-Length framing, RFC 3261 §18.3).
///
/// The framing is ours and each framed message is then parsed whole as a datagram is, so
/// `max_bytes` bounds the whole message, header section and body together, as it does on
/// UDP, and what a connection buffers (with at most one read on top). A body that would take
/// a message over it is refused when its Content-Length is read, before it is buffered:
/// skipped as it arrives, the message answered from its header section
/// ([`Framed::TooLarge`]).
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max_bytes: usize,
    /// How far the search for the end of the header section has looked.
    scanned: usize,
    /// The length of the message at the front of `buf`, once its header section is read.
    frame_len: Option<usize>,
    /// CRLF pairs discarded between messages, not yet taken.
    pairs: usize,
    /// A CRLF pair counted but not yet paired into a ping (a ping split over two reads).
    odd_pair: usize,
    /// Body bytes of a message over the limit still to be discarded.
    skip: usize,
    /// Framing was lost: every later push fails too.
    failed: bool,
    /// The buffer grew past [`KEEP_ROOM`] for a large message.
    grown: bool,
}

impl StreamFramer {
    pub fn new(max_bytes: usize) -> Self {
        StreamFramer {
            buf: BytesMut::new(),
            max_bytes,
            scanned: 0,
            frame_len: None,
            pairs: 0,
            odd_pair: 0,
            skip: 0,
            failed: false,
            grown: false,
        }
    }

    /// Append received bytes; returns every message they completed, in order. An error
    /// means the stream lost framing (a header section with no valid Content-Length, or too
    /// long) and the connection must be closed; the messages framed before the fault in the
    /// same read are dropped with it, for a fault can show the framing went wrong earlier (a
    /// Content-Length short of its body makes the rest of the body the next "message").
    /// Every later push is that error. A message framed but not parseable is no such fault
    /// ([`Framed::Unparseable`]).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Framed>, SipError> {
        if self.failed {
            return Err(SipError::Parse("the stream lost its framing".into()));
        }
        self.buf.extend_from_slice(chunk);
        self.grown |= self.buf.capacity() > KEEP_ROOM;
        let mut out = Vec::new();
        loop {
            match self.next_message() {
                Ok(Some(msg)) => out.push(msg),
                Ok(None) => {
                    // A large message grew the buffer: the room goes back once it is read,
                    // else a connection kept for hours by keep-alives holds it all along.
                    // (`capacity` counts only the room after what was read: whether it grew is
                    // noted when it holds the message.)
                    if self.buf.is_empty() && self.grown {
                        self.buf = BytesMut::new();
                        self.grown = false;
                    }
                    return Ok(out);
                }
                Err(e) => {
                    // Guessing where the next message starts is how a body becomes a
                    // request (RFC 4475 §3.1.2.3): the connection ends here.
                    self.failed = true;
                    self.buf = BytesMut::new();
                    return Err(e);
                }
            }
        }
    }

    fn next_message(&mut self) -> Result<Option<Framed>, SipError> {
        if self.skip > 0 {
            let n = self.skip.min(self.buf.len());
            self.buf.advance(n);
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        let len = match self.frame_len {
            Some(len) => len,
            None => {
                // RFC 3261 §7.5: CRLFs before a start line are ignored on a stream; RFC 5626
                // §4.4.1 makes them keep-alives.
                while self.buf.starts_with(b"\r\n") {
                    self.buf.advance(2);
                    self.pairs += 1;
                    self.scanned = self.scanned.saturating_sub(2);
                }
                // A message begins: a CRLF left unpaired before it is no half of a ping (a
                // ping is a CRLF pair, RFC 5626 §4.4.1; some peers end messages with one).
                // The run of CRLFs before it may have begun in an earlier read (`odd_pair`);
                // the runs before that were made even at their own message.
                if !self.buf.is_empty()
                    && self.buf.as_ref() != b"\r"
                    && (self.pairs + self.odd_pair) % 2 == 1
                {
                    if self.pairs > 0 {
                        self.pairs -= 1;
                    } else {
                        self.odd_pair = 0;
                    }
                }
                let Some(head_end) = find_head_end(&self.buf, self.scanned) else {
                    // Back up three bytes so a terminator split over two reads is found.
                    self.scanned = self.buf.len().saturating_sub(3);
                    // With its terminator still to come, a header section this long makes a
                    // message over the limit.
                    if self.buf.len() >= self.max_bytes {
                        return Err(SipError::TooLarge(format!(
                            "header section over {} bytes",
                            self.max_bytes
                        )));
                    }
                    return Ok(None);
                };
                let body = content_length(&self.buf[..head_end])?;
                let head_len = head_end + 4;
                match head_len.checked_add(body) {
                    Some(len) if len <= self.max_bytes => {
                        self.frame_len = Some(len);
                        len
                    }
                    // A request's header section within the limit declaring a body that
                    // takes the message over it: the framing holds, so the body is skipped
                    // and the request answered (a 513), not the connection closed. (Not a
                    // response's: skipped, it would leave its transaction waiting on a
                    // peer that answered; the connection's loss fails it at once.)
                    _ if head_len <= self.max_bytes
                        && body <= MAX_SKIP
                        && starts_as_sip(&self.buf[..head_len])
                        && !(self.buf.get(..4))
                            .is_some_and(|v| v.eq_ignore_ascii_case(b"SIP/")) =>
                    {
                        let head = Bytes::copy_from_slice(&self.buf[..head_len]);
                        self.buf.advance(head_len);
                        self.scanned = 0;
                        self.skip = body;
                        return Ok(Some(Framed::TooLarge { head }));
                    }
                    _ => {
                        return Err(SipError::TooLarge(format!(
                            "{head_len} bytes of header section and a body of {body} over {}",
                            self.max_bytes
                        )));
                    }
                }
            }
        };
        if self.buf.len() < len {
            return Ok(None);
        }
        // A copy of its own: a view into the buffer would keep the whole buffer (up to
        // `max_bytes` and a read) alive for as long as the core keeps the message.
        let wire = Bytes::copy_from_slice(&self.buf[..len]);
        self.buf.advance(len);
        self.frame_len = None;
        self.scanned = 0;
        match parse_datagram(wire.clone(), self.max_bytes) {
            Ok(msg) => Ok(Some(Framed::Message(msg))),
            // A SIP start line: the frame is a message, one the parser refused.
            Err(error) if starts_as_sip(&wire) => Ok(Some(Framed::Unparseable { wire, error })),
            // Anything else there is what a Content-Length short of its body leaves (the
            // rest of the body): the framing is in doubt.
            Err(error) => Err(error),
        }
    }

    /// Whether bytes of a message not yet complete are buffered or a body over the limit is
    /// being skipped (keep-alive CRLFs between messages are discarded, never buffered).
    pub fn mid_message(&self) -> bool {
        !self.buf.is_empty() || self.skip > 0
    }

    /// RFC 5626 keep-alive pings (CRLFCRLF between messages) since the last call, however
    /// the reads split them. A lone CRLF (a pong) counts as half of one; the gateway sends
    /// no pings, so none is expected.
    pub fn take_pings(&mut self) -> usize {
        let pairs = self.odd_pair + std::mem::take(&mut self.pairs);
        self.odd_pair = pairs % 2;
        pairs / 2
    }
}

/// Whether `wire` begins with a SIP/2.0 start line: `SIP/2.0 ` and a status code, or a
/// request line ending in ` SIP/2.0` whose method is a token.
fn starts_as_sip(wire: &[u8]) -> bool {
    let Some(end) = memchr::memmem::find(wire, b"\r\n") else {
        return false;
    };
    let line = &wire[..end];
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        return rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit);
    }
    let method_end = line.iter().position(|&b| b == b' ').unwrap_or(0);
    method_end > 0
        && line[..method_end].iter().all(|&b| super::is_token_byte(b))
        && line.ends_with(b" SIP/2.0")
}

/// Where the CRLFCRLF ending the header section starts, searching from `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)
        .and_then(|tail| tail.windows(4).position(|w| w == b"\r\n\r\n"))
        .map(|i| i + from)
}

/// The body length a stream message declares (RFC 3261 §20.14: required on a stream), read
/// from its header section: `Content-Length` or its compact form `l`, folded lines
/// unfolded. Two that disagree leave no way to frame the stream.
fn content_length(head: &[u8]) -> Result<usize, SipError> {
    let mut found: Option<usize> = None;
    let mut lines = head.split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        // A continuation line belongs to the header before it: an `l:` folded into a
        // Subject is no Content-Length.
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim_lws(&line[..colon]);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let mut value = trim_lws(&line[colon + 1..]).to_vec();
        // Folded lines are joined by a space (RFC 3261 §7.3.1), as the parser joins them:
        // digits on two lines are no number to either.
        while let Some(next) = lines.next_if(|l| l.starts_with(b" ") || l.starts_with(b"\t")) {
            value.push(b' ');
            value.extend_from_slice(trim_lws(next));
        }
        let value = trim_lws(&value);
        let n = std::str::from_utf8(value)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or(SipError::BadHeader("Content-Length"))?;
        if found.is_some_and(|f| f != n) {
            return Err(SipError::BadHeader("Content-Length"));
        }
        found = Some(n);
    }
    found.ok_or(SipError::MissingHeader("Content-Length"))
}

/// A header line's part without its line end (the CR before the LF it was split at) and
/// the spaces and tabs around it: what the parser trims, and nothing else (a form feed or a
/// bare CR stays, and makes the value no number).
fn trim_lws(s: &[u8]) -> &[u8] {
    let s = s.strip_suffix(b"\r").unwrap_or(s);
    let start = s.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = s.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(a), Some(b)) => &s[a..=b],
        _ => &[],
    }
}

#[cfg(test)]
mod tests;
