use thiserror::Error;

/// Why a SIP message could not be read or built.
#[derive(Debug, Error)]
pub enum SipError {
    /// The bytes are not a well-formed SIP message (answer 400 where possible).
    #[error("malformed message: {0}")]
    Parse(String),
    /// The message exceeds the configured size limit.
    #[error("message too large: {0}")]
    TooLarge(String),
    /// A header we need is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header we need is present but unreadable.
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    /// A URI could not be parsed or built.
    #[error("bad URI {uri:?}: {reason}")]
    BadUri {
        /// The URI text.
        uri: String,
        /// Why.
        reason: String,
    },
    /// A value we tried to put into a header or start line was refused (CRLF injection etc.).
    #[error("cannot build message: {0}")]
    Build(String),
}

impl SipError {
    /// Why a message did not parse, for the 400 a known peer gets (its Warning/reason):
    /// the parser's words without our prefix.
    pub fn why(&self) -> String {
        match self {
            SipError::Parse(m) | SipError::TooLarge(m) => m.clone(),
            other => other.to_string(),
        }
    }

    pub(crate) fn from_parse(e: sipx_sip::error::ParseError) -> Self {
        match e {
            sipx_sip::error::ParseError::Limit { .. } => SipError::TooLarge(e.to_string()),
            other => SipError::Parse(other.to_string()),
        }
    }

    pub(crate) fn build(e: impl std::fmt::Display) -> Self {
        SipError::Build(e.to_string())
    }
}
