use bytes::Bytes;
use sipx_sip as sipx;
use sipx_sip::headers::{Address, CSeq, From as FromHdr, MaxForwards, To as ToHdr, Via};
use sipx_sip::{Header, Headers, TypedHeader};

use super::{Hdr, Method, SipError, ViaInfo};

/// A SIP request.
#[derive(Debug, Clone)]
pub struct Request(pub(crate) sipx::Request);

/// A SIP response.
#[derive(Debug, Clone)]
pub struct Response(pub(crate) sipx::Response);

/// A request or a response.
#[derive(Debug, Clone)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    pub(crate) fn from_sipx(m: sipx::Message) -> Self {
        match m {
            sipx::Message::Request(r) => Message::Request(Request(r)),
            sipx::Message::Response(r) => Message::Response(Response(r)),
        }
    }

    /// Serialize for the wire.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.0.headers,
            Message::Response(r) => &r.0.headers,
        }
    }

    /// The Call-ID, if present.
    pub fn call_id(&self) -> Option<String> {
        header_string(self.headers(), &Hdr::CALL_ID)
    }

    /// The memory the message holds while it waits in a queue: `wire`, the bytes its
    /// parts point into, and its parsed form, an entry per header (a name and a slice,
    /// some 90 bytes: a 1.3 KB datagram of 256 one-letter headers holds 17 times its
    /// size) beside the message itself.
    pub fn held_size(&self, wire: usize) -> usize {
        let parsed: usize = self.headers().iter().map(std::mem::size_of_val).sum();
        wire.saturating_add(parsed) + std::mem::size_of::<Self>()
    }

    /// See [`Request::wire_size`].
    pub fn wire_size(&self) -> usize {
        match self {
            Message::Request(r) => r.wire_size(),
            Message::Response(r) => r.wire_size(),
        }
    }

    /// A short description for logs: `INVITE sip:…` or `SIP/2.0 200 (INVITE)`.
    pub fn summary(&self) -> String {
        match self {
            Message::Request(r) => format!("{} {}", r.method(), r.uri()),
            Message::Response(r) => format!(
                "{} ({})",
                r.status(),
                r.cseq().map(|c| c.1.to_string()).unwrap_or_default()
            ),
        }
    }
}

fn header_string(headers: &Headers, h: &Hdr) -> Option<String> {
    headers
        .value(&h.0)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Header access shared by requests and responses.
macro_rules! common_accessors {
    () => {
        /// About the bytes its headers and body take on the wire, read from what was parsed
        /// (nothing is encoded again): a retransmission, the same message, measures the same.
        pub fn wire_size(&self) -> usize {
            let headers: usize = (self.0.headers.iter())
                .map(|h| h.name().canonical().len() + h.raw_value().len() + 4)
                .sum();
            headers.saturating_add(self.0.body().len())
        }

        /// The first value of a header, unfolded and trimmed.
        pub fn header(&self, h: &Hdr) -> Option<String> {
            header_string(&self.0.headers, h)
        }

        /// Every value of a header: one entry per header line, in wire order.
        pub fn header_lines(&self, h: &Hdr) -> Vec<String> {
            self.0
                .headers
                .get_all(&h.0)
                .map(|x| String::from_utf8_lossy(&x.value()).into_owned())
                .collect()
        }

        /// How many values a list header holds, over all its lines.
        pub fn count_values(&self, h: &Hdr) -> usize {
            self.0
                .headers
                .get_all(&h.0)
                .map(|x| super::split::count_list(&x.value()))
                .sum()
        }

        /// Whether the header is present.
        pub fn has_header(&self, h: &Hdr) -> bool {
            self.0.headers.get(&h.0).is_some()
        }

        /// Whether a comma-separated token header (Supported, Require) lists `token`.
        pub fn header_has_token(&self, h: &Hdr, token: &str) -> bool {
            self.header_tokens(h)
                .iter()
                .any(|t| t.eq_ignore_ascii_case(token))
        }

        /// The comma-separated tokens of every line of a header (Require, Supported, Allow).
        pub fn header_tokens(&self, h: &Hdr) -> Vec<String> {
            self.header_lines(h)
                .iter()
                .flat_map(|line| line.split(','))
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        }

        /// The `Session-Expires` header (RFC 4028 §4): `None` when absent, an error when
        /// present and unreadable.
        pub fn session_expires(
            &self,
        ) -> Option<Result<crate::sip::session::SessionExpires, sipx_sip::HeaderError>> {
            self.0.headers.typed()
        }

        /// The `Min-SE` header's interval (RFC 4028 §5); an unreadable one counts as absent.
        pub fn min_se(&self) -> Option<std::time::Duration> {
            self.0
                .headers
                .typed::<crate::sip::session::MinSe>()
                .and_then(Result::ok)
                .map(|m| m.0)
        }

        /// Append a header line. The value must not contain CR or LF.
        pub fn push_header(&mut self, h: &Hdr, value: impl Into<Bytes>) -> Result<(), SipError> {
            let header = Header::build(h.0.clone(), value).map_err(SipError::build)?;
            self.0.headers.push(header);
            Ok(())
        }

        /// Replace every line of a header with one line carrying `value`, keeping its
        /// position (the first line's) so forwarded messages stay recognisable.
        pub fn set_header(&mut self, h: &Hdr, value: impl Into<Bytes>) -> Result<(), SipError> {
            let header = Header::build(h.0.clone(), value).map_err(SipError::build)?;
            let pos = self.0.headers.iter().position(|x| x.name() == &h.0);
            self.0.headers.remove_all(&h.0);
            match pos {
                Some(i) => self.0.headers.insert(i, header),
                None => self.0.headers.push(header),
            }
            Ok(())
        }

        /// Add a header line just before Content-Length (or at the end when there is none),
        /// where a reader expects the last headers.
        pub fn insert_header_before_length(
            &mut self,
            h: &Hdr,
            value: impl Into<Bytes>,
        ) -> Result<(), SipError> {
            let header = Header::build(h.0.clone(), value).map_err(SipError::build)?;
            let pos = self
                .0
                .headers
                .iter()
                .position(|x| x.name() == &Hdr::CONTENT_LENGTH.0)
                .unwrap_or(self.0.headers.len());
            self.0.headers.insert(pos, header);
            Ok(())
        }

        /// Remove every line of a header; returns how many went.
        pub fn remove_header(&mut self, h: &Hdr) -> usize {
            self.0.headers.remove_all(&h.0)
        }

        /// Copy, in order and byte for byte (a folded value unfolded), every header of `src` that `keep` accepts and
        /// whose value holds no control character but HTAB (folds aside): the parser takes
        /// a NUL or an ESC in a value, and one copied across the legs would reach the other
        /// peer, whose C-string handling it may cut or confuse. Such a header is left out, as
        /// is a Date that is no RFC 1123 date in GMT (a request in a dialog is heard with
        /// one, `ingress::validate_request`; the other peer might refuse it).
        pub fn copy_headers_where(&mut self, src: &Headers, keep: impl Fn(&Hdr) -> bool) {
            let clean = |h: &Header| {
                !h.value()
                    .iter()
                    .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
                    && (h.name() != &sipx::HeaderName::Date
                        || std::str::from_utf8(&h.value()).is_ok_and(crate::sip::is_sip_date))
            };
            for h in src.iter() {
                if !(keep(&Hdr(h.name().clone())) && clean(h)) {
                    continue;
                }
                // A folded value goes on unfolded (RFC 3261 §7.3.1 lets it): a far end that
                // does not unfold, and trims a continuation line, would read its second
                // line as a header of its own (a `Content-Length` smuggled in, say).
                if h.raw_value().iter().any(|&b| b == b'\r' || b == b'\n') {
                    if let Ok(unfolded) = Header::build(h.name().clone(), h.value().into_owned()) {
                        self.0.headers.push(unfolded);
                    }
                } else {
                    self.0.headers.push(h.clone());
                }
            }
        }

        /// The Call-ID, if present.
        pub fn call_id(&self) -> Option<String> {
            self.header(&Hdr::CALL_ID)
        }

        /// The `tag` parameter of From.
        pub fn from_tag(&self) -> Option<String> {
            address_tag::<FromHdr>(&self.0.headers)
        }

        /// The `tag` parameter of To.
        pub fn to_tag(&self) -> Option<String> {
            address_tag::<ToHdr>(&self.0.headers)
        }

        /// The URI of From, as text.
        pub fn from_uri(&self) -> Option<String> {
            address_uri::<FromHdr>(&self.0.headers)
        }

        /// The URI of To, as text.
        pub fn to_uri(&self) -> Option<String> {
            address_uri::<ToHdr>(&self.0.headers)
        }

        /// The display name of From, if any (unquoted).
        pub fn from_display(&self) -> Option<String> {
            match self.0.headers.typed::<FromHdr>() {
                Some(Ok(a)) => a
                    .display_name
                    .as_ref()
                    .map(|d| String::from_utf8_lossy(d).into_owned()),
                _ => None,
            }
        }

        /// CSeq number and method.
        pub fn cseq(&self) -> Option<(u32, Method)> {
            match self.0.headers.typed::<CSeq>() {
                Some(Ok(c)) => Some((c.sequence, Method::from_sipx(&c.method))),
                _ => None,
            }
        }

        /// The CSeq number. `sip::ingress` lets no message in without a valid CSeq and
        /// every message the gateway builds has one, so the 0 for a missing one is never
        /// read in the call layer; one accessor keeps that one fallback in one place.
        pub fn seq(&self) -> u32 {
            self.cseq().map_or(0, |c| c.0)
        }

        /// The topmost Via, parsed.
        pub fn top_via(&self) -> Option<ViaInfo> {
            match self.0.headers.typed::<Via>() {
                Some(Ok(v)) => Some(ViaInfo::from_sipx(&v)),
                _ => None,
            }
        }

        /// The URI of the first Contact, as text.
        pub fn contact_uri(&self) -> Option<String> {
            match self.0.headers.typed::<sipx_sip::headers::Contact>() {
                Some(Ok(c)) => Some(c.uri.to_bytes_string()),
                _ => None,
            }
        }

        /// The seconds a Retry-After asks for (RFC 3261 §20.33: its leading number).
        pub fn retry_after_secs(&self) -> Option<u64> {
            self.header(&Hdr::RETRY_AFTER)
                .and_then(|v| super::leading_number(&v))
        }

        /// Every Record-Route entry, in wire order, each as `<uri>;params` text.
        pub fn record_route(&self) -> Vec<String> {
            self.header_lines(&Hdr::RECORD_ROUTE)
                .iter()
                .flat_map(|l| super::split_header_list(l))
                .collect()
        }

        /// The body.
        pub fn body(&self) -> &Bytes {
            self.0.body()
        }

        /// A message being built has no body: Content-Length 0, written last (whatever
        /// Content-Length or Content-Type it had goes), after every header pushed so far.
        pub fn set_no_body(&mut self) -> Result<(), SipError> {
            self.set_body(Bytes::new(), None)
        }

        /// Replace the body, its Content-Type (when given, or removed with an empty body)
        /// and its Content-Length, which is written last. The type comes from another
        /// leg's message: a parameter of it holding a control character is left behind
        /// (not carried to this peer, nor failing the message), and a type that is itself
        /// unreadable so becomes `application/octet-stream`.
        pub fn set_body(
            &mut self,
            body: Bytes,
            content_type: Option<&str>,
        ) -> Result<(), SipError> {
            self.remove_header(&Hdr::CONTENT_LENGTH);
            if let Some(ct) = content_type {
                let ct = crate::sip::without_control_params(ct)
                    .unwrap_or_else(|| "application/octet-stream".into());
                self.set_header(&Hdr::CONTENT_TYPE, ct)?;
            } else if body.is_empty() {
                self.remove_header(&Hdr::CONTENT_TYPE);
            }
            self.push_header(&Hdr::CONTENT_LENGTH, body.len().to_string())?;
            self.0.set_body(body);
            Ok(())
        }

        /// The raw header collection (for `copy_headers_where`).
        pub fn headers_raw(&self) -> &Headers {
            &self.0.headers
        }

        /// Serialize for the wire.
        pub fn to_bytes(&self) -> Bytes {
            let mut out = Vec::with_capacity(self.0.body().len() + 512);
            self.0.write_to(&mut out);
            Bytes::from(out)
        }
    };
}

trait UriText {
    fn to_bytes_string(&self) -> String;
}

impl UriText for sipx::Uri {
    fn to_bytes_string(&self) -> String {
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }
}

fn address_tag<H: TypedHeader + std::ops::Deref<Target = Address>>(
    headers: &Headers,
) -> Option<String> {
    match headers.typed::<H>() {
        Some(Ok(a)) => a.tag().map(|t| String::from_utf8_lossy(t).into_owned()),
        _ => None,
    }
}

fn address_uri<H: TypedHeader + std::ops::Deref<Target = Address>>(
    headers: &Headers,
) -> Option<String> {
    match headers.typed::<H>() {
        Some(Ok(a)) => Some(a.uri.to_bytes_string()),
        _ => None,
    }
}

impl Request {
    common_accessors!();

    /// A new request with no headers. `uri` is validated.
    pub fn new(method: Method, uri: &str) -> Result<Self, SipError> {
        let parsed = parse_uri(uri)?;
        Ok(Request(sipx::Request::new(method.to_sipx(), parsed)))
    }

    /// The method.
    pub fn method(&self) -> Method {
        Method::from_sipx(&self.0.method)
    }

    /// The Request-URI, as text.
    pub fn uri(&self) -> String {
        self.0.uri.to_bytes_string()
    }

    /// Replace the Request-URI; only the URI span of a parsed start line changes.
    pub fn set_uri(&mut self, uri: &str) -> Result<(), SipError> {
        let parsed = parse_uri(uri)?;
        self.0.set_uri(parsed).map_err(|e| SipError::BadUri {
            uri: uri.to_string(),
            reason: e.to_string(),
        })
    }

    /// Whether the request is SIP/2.0 (anything else gets 505).
    pub fn version_supported(&self) -> bool {
        self.0.version.is_supported()
    }

    /// Whether the Request-URI carries `?headers`, which RFC 3261 §19.1.1 forbids there.
    pub fn uri_has_headers(&self) -> bool {
        self.0.uri.has_headers()
    }

    /// The Request-URI's scheme in lower case (`sip`, `sips`, `tel`, …).
    pub fn uri_scheme(&self) -> String {
        let u = self.uri();
        u.split(':').next().unwrap_or_default().to_ascii_lowercase()
    }

    /// Max-Forwards: `None` when absent, `Some(Err)` when unreadable.
    pub fn max_forwards(&self) -> Option<Result<u8, SipError>> {
        self.0.headers.typed::<MaxForwards>().map(|r| {
            r.map(|m| m.0)
                .map_err(|_| SipError::BadHeader("Max-Forwards"))
        })
    }

    /// Rewrite the topmost Via's `received`/`rport` per RFC 3261 §18.2.1 and RFC 3581, so
    /// that responses copied from this request name where it really came from.
    pub fn stamp_received(&mut self, src: std::net::SocketAddr) {
        let Some(first) = self.0.headers.get(&sipx::HeaderName::Via) else {
            return;
        };
        let Some(new_value) = super::via::stamp(&first.value(), src) else {
            return;
        };
        if let Ok(h) = Header::build(sipx::HeaderName::Via, new_value) {
            let pos = self
                .0
                .headers
                .iter()
                .position(|x| x.name() == &sipx::HeaderName::Via)
                .unwrap_or(0);
            self.0.headers.remove_first(&sipx::HeaderName::Via);
            self.0.headers.insert(pos, h);
        }
    }
}

impl Response {
    common_accessors!();

    /// The status code.
    pub fn status(&self) -> u16 {
        self.0.status.code()
    }

    /// The reason phrase.
    pub fn reason(&self) -> String {
        String::from_utf8_lossy(&self.0.reason).into_owned()
    }

    /// Whether this is a 1xx.
    pub fn is_provisional(&self) -> bool {
        self.0.status.is_provisional()
    }

    /// Whether this is a 2xx.
    pub fn is_success(&self) -> bool {
        self.0.status.is_success()
    }
}

pub(crate) fn parse_uri(uri: &str) -> Result<sipx::Uri, SipError> {
    sipx::Uri::parse(Bytes::copy_from_slice(uri.as_bytes())).map_err(|e| SipError::BadUri {
        uri: uri.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
mod top_branch;
