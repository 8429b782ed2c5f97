//! What happened to a call on its way, for the CDR's `events` list. Typed, so code matches on
//! variants rather than strings; spelled for the CDR in one place.

use std::fmt;

use super::Side;

/// At most this many events are kept per call: a peer cannot grow a call's record for ever.
pub const MAX_EVENTS: usize = 32;

/// One noteworthy step of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The attempt failed with this status and the next peer was tried.
    Failover(u16),
    /// The failure the caller got came from this earlier peer of the route (the later
    /// ones said nothing): `egress_peer` names the last one tried.
    FailureFrom(crate::config::PeerName),
    /// A peer of the route did not answer the INVITE (Timer B).
    PeerTimeout,
    /// A peer of the route could not be reached (transport error).
    PeerTransportError,
    /// No RTP ports were free to anchor the call.
    MediaPortsExhausted,
    /// A 2xx nobody wanted (after CANCEL, a second fork) was ACKed and BYEd.
    Late2xxReleased,
    /// The callee's 2xx carried SDP that could not be read (an anchored call): it was
    /// ACKed and BYEd, and the call failed.
    CalleeSdpUnreadable,
    /// The callee refused our INVITE's 100rel with 420.
    PeerRejected100rel,
    /// The callee sent reliable provisionals although we did not offer 100rel.
    PeerForced100rel,
    /// The callee refused our PRACK (status or `timeout`) and the call went on without it.
    PrackIgnored(String),
    /// The callee refused our PRACK (status or `timeout`) and the call was failed.
    PrackFailed(String),
    /// The caller never PRACKed our reliable provisional.
    CallerPrackTimeout,
    /// The caller's PRACK carried a changed offer, not passed on: its 200 had no answer.
    PrackOfferIgnored,
    /// A side never ACKed our 2xx.
    AckTimeout(Side),
    /// A request to this side, relayed or our own re-offer, found its dialog gone (481, or
    /// no answer at all): the call was released for it.
    DialogGone(Side),
    /// A peer of the route was skipped: over its `[limits]` (`cps` or `max_calls`).
    PeerLimited(&'static str),
    /// A peer of the route was passed over: it answers none of its pings (`[sip] ping_s`).
    PeerDown(crate::config::PeerName),
    /// A peer's 401/407 could not be answered, or refused our answer (the attempt failed,
    /// or the challenged request was given up).
    AuthFailed,
    /// This side's session timer expired (RFC 4028): its refreshes stopped or failed.
    SessionExpired(Side),
    /// This side's peer no longer had the call when the gateway asked (`[sip] probe_s`).
    ProbeFailed(Side),
    /// The caller could not be reached with our answer to its INVITE while the call rang
    /// (its TCP connection gone and none could be opened to it again).
    CallerUnreachable,
    /// This side's SDP named a media address outside its profile's `[media] networks`:
    /// nothing is sent there, nor taken from there.
    MediaOutsideNetworks(Side),
    /// The call was to be recorded and no file could be made.
    RecordingNotStarted,
    /// The disk stopped the recording before the call ended (a refused write, the WAV
    /// size limit): the file holds the call up to there.
    RecordingStopped,
    /// The call's voice was encrypted end to end (SRTP, DTLS-SRTP): its recording holds
    /// none of it.
    RecordingEncrypted,
    /// The recording's file was removed while the call was up: recording stopped, no file.
    RecordingRemoved,
    /// The recording writer had not finished the file when the CDR was written (a disk
    /// that did not answer for seconds): the file may lack its last audio or header.
    RecordingUnfinished,
    /// This side's SDP named media in the other IP family than the relay's, in an answer
    /// (an offer so written is refused): that leg gets no audio through the relay.
    MediaOtherFamily(Side),
    /// This side's SDP named no IP address for a relayed stream (a host name in `c=`, or no
    /// `c=`): nothing is sent to that leg until its packets are heard, and none are taken
    /// from it under `latch = "sdp-ip"`.
    MediaNoAddress(Side),
    /// This side's REFER was relayed and accepted (2xx) by the other leg: a transfer.
    Transfer(Side),
    /// The transferee's last report on a transfer (`Subscription-State: terminated`): the
    /// status of the call it placed (its `message/sipfrag` status line).
    TransferResult(u16),
}

impl fmt::Display for CallEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallEvent::Failover(status) => write!(f, "failover_{status}"),
            CallEvent::FailureFrom(peer) => write!(f, "failure_from_{}", peer.as_str()),
            CallEvent::PeerTimeout => f.write_str("peer_timeout"),
            CallEvent::PeerTransportError => f.write_str("peer_transport_error"),
            CallEvent::MediaPortsExhausted => f.write_str("media_ports_exhausted"),
            CallEvent::Late2xxReleased => f.write_str("late_2xx_released"),
            CallEvent::CalleeSdpUnreadable => f.write_str("callee_sdp_unreadable"),
            CallEvent::PeerRejected100rel => f.write_str("peer_rejected_100rel"),
            CallEvent::PeerForced100rel => f.write_str("peer_forced_100rel"),
            CallEvent::PrackIgnored(what) => write!(f, "prack_{what}_ignored"),
            CallEvent::PrackFailed(what) => write!(f, "prack_{what}"),
            CallEvent::CallerPrackTimeout => f.write_str("caller_prack_timeout"),
            CallEvent::PrackOfferIgnored => f.write_str("prack_offer_ignored"),
            CallEvent::AckTimeout(side) => write!(f, "ack_timeout_{}", side.party()),
            CallEvent::DialogGone(side) => write!(f, "dialog_gone_{}", side.party()),
            CallEvent::PeerLimited(reason) => write!(f, "peer_limited_{reason}"),
            CallEvent::PeerDown(peer) => write!(f, "peer_down_{}", peer.as_str()),
            CallEvent::AuthFailed => f.write_str(crate::auth::AuthFailure::CDR_EVENT),
            CallEvent::SessionExpired(side) => {
                write!(f, "session_expired_{}", side.party())
            }
            CallEvent::ProbeFailed(side) => write!(f, "probe_failed_{}", side.party()),
            CallEvent::CallerUnreachable => f.write_str("caller_unreachable"),
            CallEvent::MediaOutsideNetworks(side) => {
                write!(f, "media_outside_networks_{}", side.party())
            }
            CallEvent::RecordingNotStarted => f.write_str("recording_not_started"),
            CallEvent::RecordingStopped => f.write_str("recording_stopped"),
            CallEvent::RecordingEncrypted => f.write_str("recording_encrypted"),
            CallEvent::RecordingRemoved => f.write_str("recording_removed"),
            CallEvent::RecordingUnfinished => f.write_str("recording_unfinished"),
            CallEvent::MediaOtherFamily(side) => write!(f, "media_other_family_{}", side.party()),
            CallEvent::MediaNoAddress(side) => write!(f, "media_no_address_{}", side.party()),
            CallEvent::Transfer(side) => write!(f, "transfer_by_{}", side.party()),
            CallEvent::TransferResult(status) => write!(f, "transfer_result_{status}"),
        }
    }
}

/// A call's events, bounded to [`MAX_EVENTS`] (later ones are counted, not kept).
#[derive(Debug, Clone, Default)]
pub struct Events {
    list: Vec<CallEvent>,
    dropped: u32,
}

impl Events {
    /// Give back the list's spare capacity (an established call keeps what it holds).
    pub fn shrink(&mut self) {
        self.list.shrink_to_fit();
    }

    /// [`Events::push`] unless `e` is already there (something a peer may repeat with each
    /// offer, or each probe); whether it was stored now. One that finds the list full is
    /// not counted as dropped: it would be counted again each time it came.
    pub fn push_once(&mut self, e: CallEvent) -> bool {
        let store = self.list.len() < MAX_EVENTS && !self.list.contains(&e);
        if store {
            self.list.push(e);
        }
        store
    }

    pub fn push(&mut self, e: CallEvent) {
        if self.list.len() < MAX_EVENTS {
            self.list.push(e);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// The CDR spelling, with `last` (an event known only at the end) after the ones kept,
    /// and a marker when some were not kept.
    pub fn to_cdr(&self, last: Option<CallEvent>) -> Vec<String> {
        let mut v: Vec<String> = (self.list.iter().chain(&last))
            .map(ToString::to_string)
            .collect();
        if self.dropped > 0 {
            v.push(format!("events_dropped_{}", self.dropped));
        }
        v
    }
}
