//! What a connection's reader hands the core: messages let through at the source's pace,
//! framed messages as the core takes them, and the `503` a new request gets when the queue
//! of new work is full.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::super::Event;
use super::super::inbox::Inbox;
use super::Slot;
use crate::sip::{Framed, Target, Unreadable};

/// Wait until a peer's next message is within its `source_rate` (counted once per pause):
/// a stream cannot skip a message, nor should a busy trunk lose its connection, so the
/// reader stops reading for a moment and TCP's flow control holds the peer back. Without
/// it one peer's connection could stream responses at line rate into the queue served
/// before everyone's new calls. How long it waited; `None` when the connection's writer
/// ended meanwhile.
pub(super) async fn pace(
    inbox: &Inbox,
    slot: &mut Slot,
    ip: std::net::IpAddr,
    writer: &mut tokio::task::JoinHandle<()>,
) -> Option<Duration> {
    let Some(rate) = inbox.stream_rate(ip) else {
        return Some(Duration::ZERO);
    };
    let start = Instant::now();
    let mut counted = false;
    while let Some(wait) = slot.pace(rate, Instant::now()) {
        if !counted {
            crate::ops::metrics::tcp_paced();
            counted = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
            _ = &mut *writer => return None,
        }
    }
    Some(if counted {
        start.elapsed()
    } else {
        Duration::ZERO
    })
}

/// Whether `msg` is a request to be answered (not an ACK) from a peer behind NAT: its top
/// Via's sent-by an IP address other than `source`'s, so no connection opened back to
/// `source` at the Via's port would reach it (a host name: not known, taken as reachable).
pub(super) fn behind_nat(msg: &crate::sip::Message, source: std::net::IpAddr) -> bool {
    let crate::sip::Message::Request(r) = msg else {
        return false;
    };
    r.method() != crate::sip::Method::Ack
        && r.top_via().is_some_and(|v| v.names_other_ip_than(source))
}

/// A message read from `source` at `at`, as the core's queues take it (unscreened: the
/// connection's source is its own).
pub(super) fn read_message(msg: crate::sip::Message, source: Target, at: Instant) -> Event {
    Event::Message {
        held: msg.held_size(msg.wire_size()),
        msg,
        source,
        at,
        screened: false,
    }
}

/// A framed message, or what the core hears of one that is not one.
pub(super) fn for_the_core(
    framed: Framed,
    source: Target,
) -> Result<crate::sip::Message, Box<Event>> {
    let (raw, why, status) = match framed {
        Framed::Message(msg) => return Ok(msg),
        Framed::Unparseable { wire, error } => (wire, error.why(), Unreadable::Malformed),
        Framed::TooLarge { head } => {
            let why = "over [protect] max_message_bytes".to_string();
            (head, why, Unreadable::TooLarge)
        }
    };
    Err(Box::new(Event::Unparseable {
        raw,
        why,
        status,
        source,
    }))
}

/// The stateless `503` + `Retry-After` a new request gets when the queue of new work is
/// full (tagged as overload control's, so its ACK is known and dropped).
pub(super) fn overloaded(msg: &crate::sip::Message, tag: &str) -> Option<Bytes> {
    let crate::sip::Message::Request(req) = msg else {
        return None;
    };
    let after = crate::call::OVERLOAD_RETRY_AFTER_S.to_string();
    let retry = [(crate::sip::Hdr::RETRY_AFTER, after.as_str())];
    crate::sip::ingress::response_to(req, 503, "Service Unavailable", Some(tag), &retry)
        .ok()
        .map(|r| r.to_bytes())
}
