//! SIP request methods (RFC 3261 §7.1 and the extensions the gateway handles).

use bytes::Bytes;
use sipx_sip as sipx;

/// A request method. Case-sensitive, as RFC 3261 §7.1 says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Info,
    Prack,
    Update,
    Register,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(String),
}

impl Method {
    pub(crate) fn from_sipx(m: &sipx::Method) -> Self {
        match m {
            sipx::Method::Invite => Method::Invite,
            sipx::Method::Ack => Method::Ack,
            sipx::Method::Bye => Method::Bye,
            sipx::Method::Cancel => Method::Cancel,
            sipx::Method::Options => Method::Options,
            sipx::Method::Info => Method::Info,
            sipx::Method::Prack => Method::Prack,
            sipx::Method::Update => Method::Update,
            sipx::Method::Register => Method::Register,
            sipx::Method::Subscribe => Method::Subscribe,
            sipx::Method::Notify => Method::Notify,
            sipx::Method::Refer => Method::Refer,
            sipx::Method::Message => Method::Message,
            sipx::Method::Publish => Method::Publish,
            other => Method::Other(String::from_utf8_lossy(other.as_bytes()).into_owned()),
        }
    }

    pub(crate) fn to_sipx(&self) -> sipx::Method {
        sipx::Method::parse(&Bytes::copy_from_slice(self.as_str().as_bytes()))
    }

    /// Whether the gateway knows `token` as a method by name, in any case (as a profile's
    /// `[sip] allow` may write it).
    pub fn is_known(token: &str) -> bool {
        let upper = Bytes::from(token.to_ascii_uppercase());
        !matches!(
            Method::from_sipx(&sipx::Method::parse(&upper)),
            Method::Other(_)
        )
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Register => "REGISTER",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
