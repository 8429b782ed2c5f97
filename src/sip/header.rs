use bytes::Bytes;
use sipx_sip::HeaderName;

/// A header name. Compares case-insensitively and knows compact forms (`v` is `Via`).
#[derive(Debug, Clone)]
pub struct Hdr(pub(crate) HeaderName);

impl Hdr {
    pub const VIA: Hdr = Hdr(HeaderName::Via);
    pub const FROM: Hdr = Hdr(HeaderName::From);
    pub const TO: Hdr = Hdr(HeaderName::To);
    pub const CALL_ID: Hdr = Hdr(HeaderName::CallId);
    pub const CSEQ: Hdr = Hdr(HeaderName::CSeq);
    pub const CONTACT: Hdr = Hdr(HeaderName::Contact);
    pub const MAX_FORWARDS: Hdr = Hdr(HeaderName::MaxForwards);
    pub const ROUTE: Hdr = Hdr(HeaderName::Route);
    pub const RECORD_ROUTE: Hdr = Hdr(HeaderName::RecordRoute);
    pub const CONTENT_TYPE: Hdr = Hdr(HeaderName::ContentType);
    pub const CONTENT_LENGTH: Hdr = Hdr(HeaderName::ContentLength);
    pub const REASON: Hdr = Hdr(HeaderName::Reason);
    pub const REQUIRE: Hdr = Hdr(HeaderName::Require);
    pub const PROXY_REQUIRE: Hdr = Hdr(HeaderName::ProxyRequire);
    pub const SUPPORTED: Hdr = Hdr(HeaderName::Supported);
    pub const UNSUPPORTED: Hdr = Hdr(HeaderName::Unsupported);
    pub const ALLOW: Hdr = Hdr(HeaderName::Allow);
    pub const RSEQ: Hdr = Hdr(HeaderName::RSeq);
    pub const RACK: Hdr = Hdr(HeaderName::RAck);
    pub const RETRY_AFTER: Hdr = Hdr(HeaderName::RetryAfter);
    pub const USER_AGENT: Hdr = Hdr(HeaderName::UserAgent);
    pub const SERVER: Hdr = Hdr(HeaderName::Server);
    pub const P_ASSERTED_IDENTITY: Hdr = Hdr(HeaderName::PAssertedIdentity);
    pub const P_PREFERRED_IDENTITY: Hdr = Hdr(HeaderName::PPreferredIdentity);
    pub const AUTHORIZATION: Hdr = Hdr(HeaderName::Authorization);
    pub const PROXY_AUTHORIZATION: Hdr = Hdr(HeaderName::ProxyAuthorization);
    pub const PATH: Hdr = Hdr(HeaderName::Path);
    pub const HISTORY_INFO: Hdr = Hdr(HeaderName::HistoryInfo);
    pub const WARNING: Hdr = Hdr(HeaderName::Warning);
    pub const ACCEPT: Hdr = Hdr(HeaderName::Accept);
    pub const EVENT: Hdr = Hdr(HeaderName::Event);
    pub const SESSION_EXPIRES: Hdr = Hdr(HeaderName::SessionExpires);
    pub const MIN_SE: Hdr = Hdr(HeaderName::MinSe);

    /// Any header by name (`Diversion`, `Date`, `X-…`): resolved the way the parser resolves
    /// names, so a known header given by name still matches its parsed form.
    pub fn named(name: &'static str) -> Hdr {
        Hdr(HeaderName::parse(&Bytes::from_static(name.as_bytes())))
    }

    /// A header name an operator wrote (`[headers] pass`): None unless it is a token
    /// (RFC 3261 §25.1), the only thing a header name can be.
    pub fn from_config(name: &str) -> Option<Hdr> {
        let ok = name.len() <= 64 && crate::sip::is_token(name);
        ok.then(|| Hdr(HeaderName::parse(&Bytes::copy_from_slice(name.as_bytes()))))
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.0.canonical()).unwrap_or("?")
    }
}

impl PartialEq for Hdr {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_headers_match_parsed_ones() {
        assert_eq!(Hdr::named("Date"), Hdr(HeaderName::Date));
        assert_eq!(Hdr::named("t"), Hdr::TO);
        assert_eq!(
            Hdr::named("www-authenticate"),
            Hdr(HeaderName::WwwAuthenticate)
        );
        assert_eq!(Hdr::named("Diversion"), Hdr::named("DIVERSION"));
    }
}
