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
}

/// Frames messages out of a TCP byte stream (Content-Length framing, RFC 3261 §18.3).
///
/// The framing is ours and each framed message is then parsed whole as a datagram is, so
/// `max_bytes` bounds the whole message, header section and body together, as it does on
/// UDP, and what a connection buffers (with at most one read on top). A body that would take
/// a message over it is refused when its Content-Length is read, before it is buffered.
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
    /// Framing was lost: every later push fails too.
    failed: bool,
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
            failed: false,
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
        let mut out = Vec::new();
        loop {
            match self.next_message() {
                Ok(Some(msg)) => out.push(msg),
                Ok(None) => return Ok(out),
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
                let len = (head_end + 4)
                    .checked_add(body)
                    .filter(|&len| len <= self.max_bytes)
                    .ok_or_else(|| {
                        SipError::TooLarge(format!(
                            "{} bytes of header section and a body of {body} over {}",
                            head_end + 4,
                            self.max_bytes
                        ))
                    })?;
                self.frame_len = Some(len);
                len
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

    /// Whether bytes of a message not yet complete are buffered (keep-alive CRLFs between
    /// messages are discarded, never buffered).
    pub fn mid_message(&self) -> bool {
        !self.buf.is_empty()
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
        && line[..method_end]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
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
mod tests {
    use super::*;

    #[test]
    fn keep_alive_pings_are_counted_however_reads_split_them_and_are_no_message() {
        let mut f = StreamFramer::new(65535);
        assert!(f.push(b"\r\n").unwrap().is_empty());
        assert_eq!(f.take_pings(), 0);
        assert!(!f.mid_message());
        assert!(f.push(b"\r\n").unwrap().is_empty());
        assert_eq!(f.take_pings(), 1);
        assert!(
            f.push(b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\n")
                .unwrap()
                .is_empty()
        );
        assert_eq!(f.take_pings(), 1);
        assert!(f.mid_message(), "a message has begun");
    }

    fn options(body: &str, pad: usize) -> Vec<u8> {
        format!(
            "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2;branch=z9hG4bK1\r\n\
             From: <sip:b@127.0.0.2>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c1\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nX-Pad: {}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            "p".repeat(pad),
            body.len()
        )
        .into_bytes()
    }

    /// A Content-Length the parser reads otherwise than the framer would have framed by
    /// loses the stream, as any length in doubt does: folded digits (`1` and ` 0` on the
    /// next line, which RFC 3261 §7.3.1 joins with a space: no number) and a value with a
    /// form feed or a CR in it. Before, the framer read `10` and `5`, framed by them, and
    /// went on past a message the parser refused.
    #[test]
    fn a_length_the_parser_would_not_read_as_framed_loses_the_stream() {
        let with = |length: &str| {
            String::from_utf8(options("0123456789", 0))
                .unwrap()
                .replace("Content-Length: 10\r\n", length)
        };
        for length in [
            "Content-Length: 1\r\n 0\r\n",
            "Content-Length: 10\x0c\r\n",
            "Content-Length: 1\r0\r\n",
        ] {
            let wire = with(length);
            assert!(wire.contains(length), "{wire}");
            let mut f = StreamFramer::new(65535);
            assert!(f.push(wire.as_bytes()).is_err(), "{length:?}");
        }
        // Space and tab around it are as ever.
        let mut f = StreamFramer::new(65535);
        let framed = f
            .push(with("Content-Length: \t10 \r\n").as_bytes())
            .unwrap();
        assert!(matches!(framed.as_slice(), [Framed::Message(_)]));
    }

    /// A keep-alive ping is a CRLF pair: a lone CRLF before a message and another after it
    /// are no ping (some peers end each message with a CRLF). Before, the two made one and
    /// drew a pong.
    #[test]
    fn lone_crlfs_on_either_side_of_a_message_are_no_ping() {
        let mut f = StreamFramer::new(65535);
        let mut wire = b"\r\n".to_vec();
        wire.extend(options("", 0));
        wire.extend(b"\r\n");
        assert_eq!(f.push(&wire).unwrap().len(), 1);
        assert_eq!(f.take_pings(), 0);
        // The same CRLF, then one more: a pair, a ping.
        assert!(f.push(b"\r\n").unwrap().is_empty());
        assert_eq!(f.take_pings(), 1);
        // A ping split over two reads, a message right behind its second half: a ping.
        assert!(f.push(b"\r\n").unwrap().is_empty());
        assert_eq!(f.take_pings(), 0);
        let mut rest = b"\r\n".to_vec();
        rest.extend(options("", 0));
        assert_eq!(f.push(&rest).unwrap().len(), 1);
        assert_eq!(f.take_pings(), 1);
    }

    #[test]
    fn the_limit_is_on_the_whole_message_and_a_body_over_it_is_refused_before_it_is_read() {
        let at_limit = options("v=0\r\n", 100);
        let mut f = StreamFramer::new(at_limit.len());
        assert_eq!(
            f.push(&at_limit).unwrap().len(),
            1,
            "a message of max bytes passes"
        );

        // A header section under the limit declaring a body that takes the message over it
        // (each alone under the limit: what sipx's stream parser let through).
        let max = 400;
        let body = "x".repeat(300);
        let wire = options(&body, 0);
        let head = wire.len() - body.len();
        assert!(head < max && body.len() < max && wire.len() > max);
        let mut f = StreamFramer::new(max);
        let err = f.push(&wire[..head]).unwrap_err();
        assert!(matches!(err, SipError::TooLarge(_)), "{err}");
        assert!(f.push(b"OPTIONS").is_err(), "the stream stays failed");
        assert!(!f.mid_message(), "nothing of it is kept");
    }

    /// A message the stream frames (its Content-Length is good) but that does not parse is
    /// one bad message, not a lost stream: the messages behind it on the connection are
    /// still read. Before, the connection was closed and a trunk's BYE or 200 in the same
    /// read was lost with it (over UDP the same bytes get a 400 and nothing else is lost).
    #[test]
    fn a_framed_message_that_does_not_parse_does_not_end_the_stream() {
        let bad_header = options("", 9000); // one header over the parser's 8 KiB
        let twice = String::from_utf8(options("", 0))
            .unwrap()
            .replace("Content-Length: 0\r\n", "l: 0\r\nContent-Length: 0\r\n");
        let mut stream = bad_header.clone();
        stream.extend(twice.as_bytes());
        stream.extend(options("v=0\r\n", 0));
        for size in [7, stream.len()] {
            let mut f = StreamFramer::new(65535);
            let mut got = Vec::new();
            for piece in stream.chunks(size) {
                got.extend(f.push(piece).unwrap());
            }
            assert_eq!(got.len(), 3, "reads of {size}");
            assert!(
                matches!(&got[0], Framed::Unparseable { wire, .. } if wire[..] == bad_header[..])
            );
            assert!(matches!(&got[1], Framed::Unparseable { .. }));
            let Framed::Message(Message::Request(last)) = &got[2] else {
                panic!("the message behind them was read: {:?}", got[2]);
            };
            assert_eq!(&last.body()[..], b"v=0\r\n");
        }
    }

    #[test]
    fn how_reads_split_the_stream_changes_nothing() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend(options("", 3));
        stream.extend(b"\r\n\r\n");
        stream.extend(options("v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\n", 7));
        stream.extend(options("", 0));
        for size in [1, 2, 3, 5, 64, stream.len()] {
            let mut f = StreamFramer::new(65535);
            let mut got = Vec::new();
            for piece in stream.chunks(size) {
                got.extend(f.push(piece).unwrap());
            }
            assert_eq!(got.len(), 3, "reads of {size}");
            let Framed::Message(Message::Request(second)) = &got[1] else {
                panic!("a request was sent");
            };
            assert_eq!(second.body().len(), 31, "reads of {size}");
            assert_eq!(f.take_pings(), 2, "reads of {size}");
            assert!(!f.mid_message());
        }
    }

    #[test]
    fn content_length_is_read_in_every_legal_spelling_and_refused_when_unusable() {
        assert_eq!(content_length(b"INVITE x SIP/2.0\r\nl: 12").unwrap(), 12);
        assert_eq!(
            content_length(b"INVITE x SIP/2.0\r\ncontent-LENGTH \t:\t 7 ").unwrap(),
            7
        );
        assert_eq!(
            content_length(b"INVITE x SIP/2.0\r\nContent-Length:\r\n  5\r\nX: 1").unwrap(),
            5
        );
        assert_eq!(
            content_length(b"INVITE x SIP/2.0\r\nl: 3\r\nContent-Length: 3").unwrap(),
            3
        );
        for bad in [
            &b"INVITE x SIP/2.0\r\nX-Length: 3"[..],
            b"INVITE x SIP/2.0\r\nContent-Length: 3\r\nl: 4",
            b"INVITE x SIP/2.0\r\nContent-Length: -1",
            b"INVITE x SIP/2.0\r\nContent-Length: 1e3",
            b"INVITE x SIP/2.0\r\nContent-Length: 99999999999999999999999",
            b"INVITE x SIP/2.0\r\nContent-Length:",
        ] {
            assert!(
                content_length(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn one_byte_over_the_limit_is_refused_whether_the_head_or_the_body_takes_it_over() {
        let wire = options("v=0\r\n", 40);
        let mut f = StreamFramer::new(wire.len() - 1);
        assert!(
            matches!(f.push(&wire), Err(SipError::TooLarge(_))),
            "the body"
        );
        let mut f = StreamFramer::new(wire.len());
        assert_eq!(f.push(&wire).unwrap().len(), 1, "at the limit");

        // A message without body: its header section and the CRLFCRLF ending it.
        let bare = options("", 40);
        let end = bare.len();
        let mut f = StreamFramer::new(end);
        assert!(
            f.push(&bare[..end - 1]).unwrap().is_empty(),
            "room for the last byte"
        );
        assert_eq!(f.push(&bare[end - 1..]).unwrap().len(), 1);
        // One byte less of room: refused as soon as the bytes before the terminator's last
        // one fill it, without waiting for the rest.
        let mut f = StreamFramer::new(end - 1);
        assert!(
            matches!(f.push(&bare[..end - 1]), Err(SipError::TooLarge(_))),
            "the head"
        );
    }

    #[test]
    fn a_length_folded_into_another_header_frames_nothing() {
        // `l: 50` continues the Subject: this message has no Content-Length, which a stream
        // cannot frame.
        let wire =
            b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nSubject: x\r\n l: 50\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let mut f = StreamFramer::new(65535);
        assert!(matches!(
            f.push(wire),
            Err(SipError::MissingHeader("Content-Length"))
        ));
    }

    #[test]
    fn a_fault_drops_the_whole_read_for_its_framing_is_in_doubt() {
        // A Content-Length one short of its body: the first message is framed without its
        // last byte, which then starts a "message" that cannot be framed. Nothing of the
        // read is handed on, not even the first message, cut as it is.
        let mut stream = options("v=0\r\n", 0);
        let len_at = stream
            .windows(17)
            .position(|w| w == b"Content-Length: 5")
            .unwrap();
        stream[len_at + 16] = b'4';
        stream.extend(options("", 0));
        let mut f = StreamFramer::new(65535);
        assert!(f.push(&stream).is_err());
        assert!(f.push(&options("", 0)).is_err(), "the stream stays failed");
    }

    #[test]
    fn a_frame_that_does_not_start_as_sip_ends_the_stream() {
        let mut f = StreamFramer::new(65535);
        assert!(f.push(b"NOT SIP\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(f.push(&options("", 0)).is_err());
    }
}
