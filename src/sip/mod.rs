//! SIP messages: our facade over the `sipx-sip` parser and serializer.
//!
//! Everything above this module (the call layer, interop, the engine) sees only the types
//! defined here. `sipx-sip` is named only in `sip/` and `txn/`, so it can be replaced without
//! touching call logic. Parsed messages keep their wire bytes: headers we do not edit are
//! forwarded exactly as they arrived.

mod body;
mod date;
mod error;
pub mod fast;
mod framing;
mod header;
mod ids;
pub mod ingress;
/// Session timers (RFC 4028): the header types and the negotiation rules, as sipx implements
/// them; the call layer applies them per leg (`interop::session_timer`).
pub mod session {
    pub use sipx_sip::session::{
        ABSOLUTE_MIN_INTERVAL, Accepted, Answer, DEFAULT_INTERVAL, MinSe, OPTION_TAG, Refresher,
        Session, SessionExpires, adopt, answer,
    };
}
mod local;
mod message;
mod method;
mod new_request;
mod reject;
mod split;
mod status;
mod tags;
mod to_tag;
mod transport;
mod uri;
mod via;

pub use body::Body;
pub use date::is_sip_date;
pub use error::SipError;
pub use framing::{Framed, SENT_HEADER_ROOM, StreamFramer, parse_datagram, parse_sent};
pub use header::Hdr;
pub use ids::IdGen;
pub use local::{LocalAddrs, uri_host};
pub use message::{Message, Request, Response};
pub use method::Method;
pub use new_request::NewRequest;
pub use reject::{Unreadable, reject_unparseable};
pub use split::{
    generic_param_ok, has_control, is_token, is_token_byte, leading_number, outside_quotes,
    split_header_list, split_params, without_control_params,
};
pub use status::reason_phrase;
pub(crate) use tags::BRANCH_RANDOM;
pub use tags::{TagKey, TagKind};
pub use transport::{ConnId, ListenerId, Target, Transport};
pub use uri::{
    LEADING_PARAMS, NumberUri, dialled_number, is_paramchars, is_phone_digits, param_name,
    params_where, percent_decoded, sip_uri_user, strip_visual_separators,
};
pub use via::ViaInfo;

/// The magic cookie every RFC 3261 branch starts with (§8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";
