//! The body of a request or response, and the headers that travel with it: what anchoring and
//! body shaping read and rewrite, whichever kind of message carries it.

use bytes::Bytes;

use super::{Hdr, Request, Response, SipError};

/// What anchoring and body shaping need of a message, request or response alike.
pub trait Body {
    fn body(&self) -> &Bytes;
    fn content_type(&self) -> Option<String>;
    /// The first value of header `h`.
    fn header_value(&self, h: &Hdr) -> Option<String>;
    /// Whether the body is encoded (`Content-Encoding` other than `identity`, RFC 3261
    /// §20.12): its bytes are not what its Content-Type says until decoded.
    fn encoded(&self) -> bool;
    /// Its `Content-Encoding` when the body is [`Body::encoded`]: what must go with the body
    /// wherever it goes as it came.
    fn encoding(&self) -> Option<String>;
    fn set_body(&mut self, body: Bytes, content_type: Option<&str>) -> Result<(), SipError>;
    fn remove_header(&mut self, h: &Hdr) -> usize;
    /// Whether it carries a P-Asserted-Identity.
    fn has_identity(&self) -> bool;
    fn insert_header_before_length(&mut self, h: &Hdr, value: String) -> Result<(), SipError>;
}

macro_rules! impl_body {
    ($t:ty) => {
        impl Body for $t {
            fn body(&self) -> &Bytes {
                <$t>::body(self)
            }
            fn content_type(&self) -> Option<String> {
                self.header(&Hdr::CONTENT_TYPE)
            }
            fn header_value(&self, h: &Hdr) -> Option<String> {
                self.header(h)
            }
            fn encoded(&self) -> bool {
                self.header_lines(&Hdr::named("Content-Encoding"))
                    .iter()
                    .flat_map(|v| v.split(','))
                    .any(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"))
            }
            fn encoding(&self) -> Option<String> {
                // Every coding of every line, `identity` (no coding) left out: the first
                // line alone may be `identity` with `gzip` on the next.
                let codings: Vec<String> = self
                    .header_lines(&Hdr::named("Content-Encoding"))
                    .iter()
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
                    .map(str::to_string)
                    .collect();
                (!codings.is_empty()).then(|| codings.join(", "))
            }
            fn set_body(
                &mut self,
                body: Bytes,
                content_type: Option<&str>,
            ) -> Result<(), SipError> {
                <$t>::set_body(self, body, content_type)
            }
            fn remove_header(&mut self, h: &Hdr) -> usize {
                <$t>::remove_header(self, h)
            }
            fn has_identity(&self) -> bool {
                <$t>::has_header(self, &Hdr::P_ASSERTED_IDENTITY)
            }
            fn insert_header_before_length(
                &mut self,
                h: &Hdr,
                value: String,
            ) -> Result<(), SipError> {
                <$t>::insert_header_before_length(self, h, value)
            }
        }
    };
}
impl_body!(Request);
impl_body!(Response);
