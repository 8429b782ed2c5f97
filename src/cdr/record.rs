use serde::Serialize;

pub use crate::interop::causes::CauseSource;

/// Where and by whom a call was released. The fixed set operators filter CDRs by; spelt
/// once, by [`CallTag::as_str`], for CDRs and metric labels alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallTag {
    /// The caller hung up an answered call.
    CallerBye,
    /// The callee hung up: an answered call, or its early dialog (the caller got 480).
    CalleeBye,
    /// The caller gave up before answer (CANCEL).
    CallerCancel,
    /// The callee side answered the INVITE with a final failure (4xx/5xx/6xx).
    CalleeReject,
    /// Nobody answered within the ring timeout.
    NoAnswerTimeout,
    /// No peer on the route could be reached (timeout or transport error on every one).
    PeerUnreachable,
    /// No route for the dialled number, or no number at all.
    NoRoute,
    /// The caller's request was refused before routing (Max-Forwards, extensions, malformed).
    CallerRejected,
    /// The callee did not acknowledge reliable provisional handling (PRACK failure).
    PrackRejected,
    /// Refused by a rate or concurrency limit.
    RateLimited,
    /// No RTP flowed for the profile's `rtp_timeout_s`.
    RtpTimeout,
    /// No RTP ports were free to anchor the call's media, its relay could not open or
    /// stopped, or the callee answered in SDP that could not be read.
    MediaUnavailable,
    /// Ended by the gateway at shutdown.
    Shutdown,
    /// The gateway itself failed the call (e.g. a defect caught while handling it).
    GatewayError,
    /// The call reached a peer's `[limits] max_call_duration_s`.
    MaxDuration,
    /// The application server cancelled the call-back (`CANCEL: id=…`).
    CallbackCancelled,
    /// A leg's session timer (RFC 4028) expired: its refreshes stopped or failed.
    SessionExpired,
}

impl CallTag {
    /// The spelling in CDRs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CallTag::CallerBye => "caller_bye",
            CallTag::CalleeBye => "callee_bye",
            CallTag::CallerCancel => "caller_cancel",
            CallTag::CalleeReject => "callee_reject",
            CallTag::NoAnswerTimeout => "no_answer_timeout",
            CallTag::PeerUnreachable => "peer_unreachable",
            CallTag::NoRoute => "no_route",
            CallTag::CallerRejected => "caller_rejected",
            CallTag::PrackRejected => "prack_rejected",
            CallTag::RateLimited => "rate_limited",
            CallTag::RtpTimeout => "rtp_timeout",
            CallTag::MediaUnavailable => "media_unavailable",
            CallTag::Shutdown => "shutdown",
            CallTag::GatewayError => "gateway_error",
            CallTag::MaxDuration => "max_duration",
            CallTag::SessionExpired => "session_expired",
            CallTag::CallbackCancelled => "callback_cancelled",
        }
    }
}

impl Serialize for CallTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One line of the CDR file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CdrRecord {
    /// The caller's Call-ID (the ingress leg).
    pub call_id: String,
    /// The Call-ID the gateway used toward the egress peer, if it got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_call_id: Option<String>,
    /// RFC 3339, UTC, millisecond precision.
    pub start: String,
    pub answer: Option<String>,
    pub end: String,
    /// Answered time: `end - answer`, 0 when never answered.
    pub duration_ms: u64,
    /// Calling number (user part of From).
    pub from: String,
    /// Dialled number.
    pub to: String,
    pub ingress_peer: String,
    pub egress_peer: Option<String>,
    /// Final SIP status toward the caller (200 for answered calls).
    pub status: u16,
    pub call_tag: CallTag,
    /// Q.850 cause value.
    pub cause: u16,
    pub cause_source: CauseSource,
    pub recording: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_sip: Option<String>,
    /// The call-back this call was placed for (`REQUEST: id=…`); absent for other calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    /// A call-back's: when user1 answered (RFC 3339, as `answer`). Its leg is up, and its
    /// carrier bills it, from then; `answer` is user2's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user1_answer: Option<String>,
}

impl CdrRecord {
    /// A record as its JSON line. serde_json leaves U+0085, U+2028 and U+2029 as they are, valid
    /// JSON but line breaks to many readers (Python's `splitlines`, JavaScript before ES2019):
    /// a peer's Call-ID or Reason text carrying one would split a billing reader's record in
    /// two. They can stand only inside strings, where `\uXXXX` means the same.
    pub fn to_line(&self) -> serde_json::Result<String> {
        let line = serde_json::to_string(self)?;
        if !line.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
            return Ok(line);
        }
        let mut out = String::with_capacity(line.len() + 16);
        for c in line.chars() {
            match c {
                '\u{85}' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        Ok(out)
    }
}
