//! The room of the core's queues in bytes. The urgent one holds at most `URGENT` events;
//! counted in events alone, 64 KiB datagrams carrying a check of ours (a peer's, replayed
//! by whoever holds one) could make that a gigabyte, all of it read before any new call.
//! The new-work one likewise.

use super::super::Event;

/// Bytes of messages the urgent queue holds before a datagram is dropped (counted
/// `queue_full`): some 20,000 ordinary answers and in-dialog requests (about 3 KB each with
/// their parsed headers), more than the queue's 16,384 events.
pub(super) const URGENT_BYTES: usize = 64 << 20;

/// What a connection's accepted work waits for room under ([`URGENT_BYTES`] is where
/// datagrams give way, so the wait ends as the core reads): counted in events alone, 16,384
/// messages of 64 KiB from a peer's connections would be a gigabyte.
pub(super) const URGENT_CONNECTION_BYTES: usize = 2 * URGENT_BYTES;

/// Bytes of messages the new-work queue holds before one more is dropped (counted
/// `queue_full`): its 4,096 INVITEs of 4 KB each, with their parsed headers (about 6 KB).
/// Counted in events alone, 64 KiB datagrams would make it a quarter of a gigabyte.
pub(super) const FRESH_BYTES: usize = 24 << 20;

/// The bytes an event holds while it is queued: a message's, with its parsed form
/// ([`crate::sip::Message::held_size`]).
pub(super) fn size(ev: &Event) -> usize {
    match ev {
        Event::Message { held, .. } => *held,
        Event::Unparseable { raw, .. } => raw.len(),
        Event::TcpUp { .. } | Event::TcpDown { .. } => 0,
    }
}
