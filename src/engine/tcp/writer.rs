//! A connection's writer: the queue between the core and the socket, bounded in messages
//! and in bytes, and a close the core can order however full that queue is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, mpsc};
use tracing::debug;

/// Messages queued for one connection's writer at most; past it a message is dropped
/// (its transaction fails or retransmits), so a peer that reads nothing grows nothing.
pub(in crate::engine) const WRITE_QUEUE: usize = 1024;
/// Bytes queued for one connection at most (beside the kernel's send buffer). Each write
/// must finish within [`WRITE_TIMEOUT`], but a peer reading a few KB a second finishes
/// each and would otherwise hold [`WRITE_QUEUE`] of our longest answers (some 60 MB) for as
/// long as it likes; past this a message is dropped as when the queue is full. About what
/// [`WRITE_QUEUE`] messages of a usual size come to, so a busy trunk's connection through a
/// short stall (requests over TCP are not retransmitted) keeps what it kept before.
pub(in crate::engine) const WRITE_BUDGET: usize = 1024 * 1024;
/// The bytes a message of ours is taken to weigh when the room left in a queue is told in
/// messages ([`Writer::room`]): about one datagram's worth, what a BYE with its route set and
/// credentials comes to.
const ROOM_MESSAGE: usize = 1500;
/// A peer that reads nothing we send is cut off after this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A message that waited this long in the queue behind writes to a peer that took them
/// slowly finds the connection closed instead of written: its peer reads so slowly (each
/// write within [`WRITE_TIMEOUT`], yet a queue of them minutes long) that what we send
/// reaches it after its transaction gave up (an INVITE ringing a callee long after the
/// call failed over, a BYE extending the billed call). Closed, the transactions still open
/// on it fail at once (a failover), and the next message opens a new connection. Half of
/// Timer B and F (64·T1). Counted in time spent writing (each write at most
/// [`WRITE_TIMEOUT`]), not in time queued: a stall of the whole process (a VM paused) is no
/// slow peer, and the queue it left is written.
const STALE_QUEUE: Duration = Duration::from_secs(16);
/// Bytes queued for all connections together at most: [`WRITE_BUDGET`] each, over the
/// default 1,024 connections, would be a gigabyte held for peers that read slowly. 64 of
/// them may fill theirs at once. Split in two: [`OWN_WRITES_BUDGET`] and
/// [`PEER_WRITES_BUDGET`].
pub(in crate::engine) const ALL_WRITES_BUDGET: usize = 64 * WRITE_BUDGET;
/// Of it, what the connections the gateway opens toward its trunks may queue: theirs alone.
/// Peers that read slowly from connections they opened (a few KB a second each, just enough
/// for every write to finish within [`WRITE_TIMEOUT`]) could otherwise hold the whole
/// budget, and every INVITE and BYE toward a TCP trunk would be dropped meanwhile.
pub(in crate::engine) const OWN_WRITES_BUDGET: usize = ALL_WRITES_BUDGET / 4;
/// Of it, what the connections peers opened (and those opened back toward them) may queue.
pub(in crate::engine) const PEER_WRITES_BUDGET: usize = ALL_WRITES_BUDGET - OWN_WRITES_BUDGET;
/// Of that, what the sources of one peer (one profile) may queue together: sources inside a
/// peer's wide `match` (a customer's /48 holds 65,536 /64s) that read slowly spend their
/// peer's share, and every other peer's answers still go. Before, six of them spent
/// [`PEER_WRITES_BUDGET`], and every peer's answers over TCP were dropped.
pub(in crate::engine) const PEER_SHARE_WRITES_BUDGET: usize = PEER_WRITES_BUDGET / 4;
/// Bytes queued for the connections of one source (all its connections together) at most:
/// a few sources that read a hundred bytes a second, each write finishing within
/// [`WRITE_TIMEOUT`], would otherwise hold [`ALL_WRITES_BUDGET`] for as long as they like,
/// and every other connection's answers would be dropped.
pub(in crate::engine) const SOURCE_WRITES_BUDGET: usize = ALL_WRITES_BUDGET / 8;

/// The bytes queued for every connection of an engine (or of one source), against a
/// budget shared by them.
pub(in crate::engine) use super::super::byte_budget::SharedBudget;

/// Take `len` bytes from a connection's source's budget (if it counts against one) and
/// every connection's: both or neither.
fn take_shared(source: Option<&SharedBudget>, all: &SharedBudget, len: usize) -> bool {
    if !source.is_none_or(|s| s.take(len)) {
        return false;
    }
    if !all.take(len) {
        if let Some(s) = source {
            s.give(len);
        }
        return false;
    }
    true
}

/// Give back what [`take_shared`] took.
fn give_shared(source: Option<&SharedBudget>, all: &SharedBudget, len: usize) {
    all.give(len);
    if let Some(s) = source {
        s.give(len);
    }
}

/// Bytes held for a connection still opening, counted against the budgets its writer will
/// share (its source's and every connection's) as queued bytes are, and given back when
/// dropped: the connection is up and its writer counts them instead, or it failed. Before,
/// they counted against nothing: 16 connections opened back toward one source held 16 MiB
/// beside its 8 MiB.
#[derive(Debug)]
pub(in crate::engine) struct Reserved {
    len: usize,
    all: SharedBudget,
    source: Option<SharedBudget>,
}

impl Reserved {
    pub(in crate::engine) fn new((all, source): (SharedBudget, Option<SharedBudget>)) -> Self {
        Reserved {
            len: 0,
            all,
            source,
        }
    }

    /// Count `len` more bytes: false, and nothing counted, past the connection's own
    /// budget, its source's or every connection's.
    pub(in crate::engine) fn add(&mut self, len: usize) -> bool {
        if self.len.saturating_add(len) > WRITE_BUDGET
            || !take_shared(self.source.as_ref(), &self.all, len)
        {
            return false;
        }
        self.len += len;
        true
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        give_shared(self.source.as_ref(), &self.all, self.len);
    }
}

/// What a connection's queued bytes count against.
#[derive(Debug)]
struct Budgets {
    /// Bytes waiting in the connection's queue (not the one being written).
    queued: AtomicUsize,
    all: SharedBudget,
    /// The budget of the connections of its source (none for connections we opened).
    source: Option<SharedBudget>,
}

/// A message in a writer's queue. Its bytes leave the budgets when it leaves the queue,
/// however it leaves: taken to be written, or dropped with a queue nobody reads any more
/// (before, a message sent while the writer ended could stay in the channel, counted for
/// ever, and what all connections may queue shrank by it).
#[derive(Debug)]
struct Counted {
    bytes: Bytes,
    budgets: Arc<Budgets>,
    /// The connection's [`Writer::writing`] when it was queued.
    writing_then: u64,
}

impl Drop for Counted {
    fn drop(&mut self) {
        give_back(&self.budgets, self.bytes.len());
    }
}

/// The core's (and the reader's) end of a connection's writer.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Counted>,
    budgets: Arc<Budgets>,
    /// Ends the writer at once, whatever it has queued.
    shut: Arc<Notify>,
    /// Something was written since the reader last asked ([`Writer::wrote_lately`]).
    wrote: Arc<AtomicBool>,
    /// Milliseconds the writer has spent writing, in all (see [`STALE_QUEUE`]).
    writing: Arc<std::sync::atomic::AtomicU64>,
}

/// The writer task's end.
pub(super) struct Drain {
    rx: mpsc::Receiver<Counted>,
    shut: Arc<Notify>,
    wrote: Arc<AtomicBool>,
    writing: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    pub(super) fn new((all, source): (SharedBudget, Option<SharedBudget>)) -> (Writer, Drain) {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let shut = Arc::new(Notify::new());
        let wrote = Arc::new(AtomicBool::new(false));
        let writing = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let drain = Drain {
            rx,
            shut: shut.clone(),
            wrote: wrote.clone(),
            writing: writing.clone(),
        };
        let writer = Writer {
            tx,
            budgets: Arc::new(Budgets {
                queued: AtomicUsize::new(0),
                all,
                source,
            }),
            shut,
            wrote,
            writing,
        };
        (writer, drain)
    }

    /// Queue `b` for the peer: false, and `b` dropped, when the connection is backed up
    /// (in messages or in bytes, its own, its source's or all connections') or its writer
    /// has ended.
    pub(in crate::engine) fn send(&self, b: Bytes) -> bool {
        let len = b.len();
        let budgets = &self.budgets;
        let before = budgets.queued.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > WRITE_BUDGET {
            budgets.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        if !take_shared(budgets.source.as_ref(), &budgets.all, len) {
            budgets.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        // Refused, the message comes back in the error and is dropped: its bytes with it.
        let counted = Counted {
            bytes: b,
            budgets: self.budgets.clone(),
            writing_then: self.writing.load(Ordering::Acquire),
        };
        self.tx.try_send(counted).is_ok()
    }

    /// Messages this connection takes before its queue is half full, in messages or in bytes
    /// (each taken as [`ROOM_MESSAGE`]): what a burst of our own work may put on it with
    /// room to spare for everything else (the calls hung up in turns at a stop, whose BYEs
    /// over TCP are never sent again: one dropped leaves the call up at the peer).
    pub(in crate::engine) fn room(&self) -> usize {
        let by_count = self.tx.capacity().saturating_sub(WRITE_QUEUE / 2);
        let queued = self.budgets.queued.load(Ordering::Acquire);
        let by_bytes = (WRITE_BUDGET / 2).saturating_sub(queued) / ROOM_MESSAGE;
        by_count.min(by_bytes)
    }

    /// Whether nothing it was given waits to be written: its queue is empty (the last
    /// message taken is written in the same turn when the socket has room), or its writer
    /// has ended.
    pub(in crate::engine) fn is_written(&self) -> bool {
        self.is_closed()
            || (self.budgets.queued.load(Ordering::Acquire) == 0
                && self.tx.capacity() == self.tx.max_capacity())
    }

    /// Whether its writer has ended (the connection closed): nothing sent here is written.
    pub(in crate::engine) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Close the connection once what is queued is written; at once when the queue is full
    /// (in messages or bytes: a closing request lost to a full queue would leave the
    /// connection open, and its peer's messages read, for as long as the peer kept it busy;
    /// one behind a full budget would wait for a peer that reads slowly).
    pub(in crate::engine) fn close(&self) {
        let empty = Counted {
            bytes: Bytes::new(),
            budgets: self.budgets.clone(),
            writing_then: 0,
        };
        if self.budgets.queued.load(Ordering::Acquire) >= WRITE_BUDGET / 2
            || self.tx.try_send(empty).is_err()
        {
            self.shut.notify_one();
        }
    }

    /// Whether anything was written since the last time this was asked: the reader's idle
    /// timeout counts what we send as activity too (a call's BYE, a refresh), not only what
    /// the peer sends.
    pub(super) fn wrote_lately(&self) -> bool {
        self.wrote.swap(false, Ordering::AcqRel)
    }

    /// The connection carries a call: as good as a write for the reader's idle timeout.
    pub(super) fn in_use(&self) {
        self.wrote.store(true, Ordering::Release);
    }

    /// Bytes queued and not yet written.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.budgets.queued.load(Ordering::Acquire)
    }
}

impl Drain {
    /// Write what is queued until a write fails, a peer reads nothing for
    /// [`WRITE_TIMEOUT`], an empty message (the core closing the connection after what it
    /// queued before) or [`Writer::close`] at once.
    pub(super) async fn run(mut self, mut wr: OwnedWriteHalf, peer: SocketAddr) {
        loop {
            let b = tokio::select! {
                biased;
                _ = self.shut.notified() => break,
                b = self.rx.recv() => b,
            };
            let Some(counted) = b else { break };
            // Out of the queue, out of the budgets (as `counted` is dropped): the message
            // being written is one at most, and counting it until written would leave it
            // counted for ever when the task is aborted mid-write.
            let b = counted.bytes.clone();
            let writing = self.writing.load(Ordering::Acquire);
            let behind_ms = writing.saturating_sub(counted.writing_then);
            drop(counted);
            if b.is_empty() {
                break;
            }
            if behind_ms > STALE_QUEUE.as_millis() as u64 {
                debug!(%peer, behind_ms, "TCP peer reads too slowly for its messages to matter: closing");
                break;
            }
            let began = tokio::time::Instant::now();
            let wrote = tokio::select! {
                biased;
                _ = self.shut.notified() => break,
                w = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&b)) => w,
            };
            let took = began.elapsed().min(WRITE_TIMEOUT).as_millis() as u64;
            self.writing.fetch_add(took, Ordering::AcqRel);
            match wrote {
                Ok(Ok(())) => self.wrote.store(true, Ordering::Release),
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TCP write failed");
                    break;
                }
                Err(_) => {
                    debug!(%peer, "TCP peer reads nothing: closing");
                    break;
                }
            }
        }
    }
}

/// `len` bytes leave a connection's count and the shared ones (all connections', its
/// source's): out of the queue.
fn give_back(b: &Budgets, len: usize) {
    b.queued.fetch_sub(len, Ordering::AcqRel);
    give_shared(b.source.as_ref(), &b.all, len);
}

/// However the writer ends (done, failed, aborted), what is still queued leaves the shared
/// budget at once (`Counted`): the queue is closed first, so a message sent meanwhile is
/// refused; one whose send was under way as the queue closed leaves when the last
/// `Writer` goes (the core's, as it hears the connection is down).
impl Drop for Drain {
    fn drop(&mut self) {
        self.rx.close();
        while let Ok(counted) = self.rx.try_recv() {
            drop(counted);
        }
    }
}

#[cfg(test)]
mod tests;
