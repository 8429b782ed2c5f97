//! Bytes to messages: one UDP datagram, or a TCP byte stream framed by Content-Length
//! (RFC 3261 §18.3) with RFC 5626 keep-alives between messages.

use bytes::Bytes;
use sipx_sip as sipx;
use sipx_sip::{Limits, StreamParser};

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

/// Frames messages out of a TCP byte stream (Content-Length framing, RFC 3261 §18.3).
#[derive(Debug)]
pub struct StreamFramer {
    parser: StreamParser,
    /// A CRLF pair counted but not yet paired into a ping (a ping split over two reads).
    odd_pair: usize,
}

impl StreamFramer {
    pub fn new(max_bytes: usize) -> Self {
        StreamFramer {
            parser: StreamParser::new(Limits {
                max_message_bytes: max_bytes,
                max_body_bytes: max_bytes,
                ..Limits::stream()
            }),
            odd_pair: 0,
        }
    }

    /// Append received bytes; returns every message they completed. An error means the
    /// stream lost framing and the connection must be closed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Message>, SipError> {
        self.parser
            .push(chunk)
            .map(|v| v.into_iter().map(Message::from_sipx).collect())
            .map_err(SipError::from_parse)
    }

    /// Whether bytes of a message not yet complete are buffered (keep-alive CRLFs between
    /// messages are discarded, never buffered).
    pub fn mid_message(&self) -> bool {
        self.parser.pending() > 0
    }

    /// RFC 5626 keep-alive pings (CRLFCRLF between messages) since the last call, however
    /// the reads split them. A lone CRLF (a pong) counts as half of one; the gateway sends
    /// no pings, so none is expected.
    pub fn take_pings(&mut self) -> usize {
        let pairs = self.odd_pair + self.parser.take_keepalives();
        self.odd_pair = pairs % 2;
        pairs / 2
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
}
