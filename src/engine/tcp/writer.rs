//! A connection's writer: the queue between the core and the socket, bounded in messages
//! and in bytes, and a close the core can order however full that queue is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// A peer that reads nothing we send is cut off after this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The core's (and the reader's) end of a connection's writer.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    /// Ends the writer at once, whatever it has queued.
    shut: Arc<Notify>,
}

/// The writer task's end.
pub(super) struct Drain {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
    shut: Arc<Notify>,
}

impl Writer {
    pub(super) fn new() -> (Writer, Drain) {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let shut = Arc::new(Notify::new());
        let drain = Drain {
            rx,
            queued: queued.clone(),
            shut: shut.clone(),
        };
        (Writer { tx, queued, shut }, drain)
    }

    /// Queue `b` for the peer: false, and `b` dropped, when the connection is backed up
    /// (in messages or in bytes) or its writer has ended.
    pub(in crate::engine) fn send(&self, b: Bytes) -> bool {
        let len = b.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > WRITE_BUDGET || self.tx.try_send(b).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Close the connection once what is queued is written; at once when the queue is full
    /// (in messages or bytes: a closing request lost to a full queue would leave the
    /// connection open, and its peer's messages read, for as long as the peer kept it busy;
    /// one behind a full budget would wait for a peer that reads slowly).
    pub(in crate::engine) fn close(&self) {
        if self.queued.load(Ordering::Acquire) >= WRITE_BUDGET / 2
            || self.tx.try_send(Bytes::new()).is_err()
        {
            self.shut.notify_one();
        }
    }

    /// Bytes queued and not yet written.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
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
            let Some(b) = b else { break };
            if b.is_empty() {
                break;
            }
            let wrote = tokio::select! {
                biased;
                _ = self.shut.notified() => break,
                w = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&b)) => w,
            };
            self.queued.fetch_sub(b.len(), Ordering::AcqRel);
            match wrote {
                Ok(Ok(())) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_in_bytes_as_well_as_in_messages() {
        let (w, drain) = Writer::new();
        let big = Bytes::from(vec![b'x'; 60 * 1024]);
        let taken = (0..WRITE_QUEUE).take_while(|_| w.send(big.clone())).count();
        assert_eq!(
            taken,
            WRITE_BUDGET / big.len(),
            "60 KB answers, a 1 MiB budget"
        );
        assert!(w.queued() <= WRITE_BUDGET);
        // A short message still fits in what is left.
        assert!(w.send(Bytes::from_static(b"SIP/2.0 100 Trying\r\n\r\n")));
        drop(drain);
        assert!(!w.send(Bytes::from_static(b"\r\n")), "its writer has ended");
        assert!(w.queued() <= WRITE_BUDGET);
    }

    /// A close ordered while the queue is full ends the writer all the same: before, the
    /// empty message that orders it was dropped with the full queue, and the connection
    /// stayed open.
    #[tokio::test]
    async fn a_close_ordered_on_a_full_queue_still_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The peer accepts and reads nothing.
        let (_peer, _) = listener.accept().await.unwrap();
        let (_rd, wr) = client.into_split();
        let (w, drain) = Writer::new();
        // Pings fill its queue in messages while it writes nothing yet.
        while w.send(Bytes::from_static(b"\r\n")) {}
        w.close();
        let task = tokio::spawn(drain.run(wr, addr));
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the writer ended at once")
            .unwrap();
    }

    /// A close ordered while the queue holds half its byte budget or more, toward a peer
    /// that reads nothing, ends the writer at once. Before, it waited behind what was
    /// queued: up to the write timeout for each message a slow reader took.
    #[tokio::test]
    async fn a_close_behind_a_full_byte_budget_does_not_wait_for_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_send_buffer_size(4096).unwrap();
        let client = sock.connect(addr).await.unwrap();
        let (_peer, _) = listener.accept().await.unwrap();
        let (_rd, wr) = client.into_split();
        let (w, drain) = Writer::new();
        let task = tokio::spawn(drain.run(wr, addr));
        let msg = Bytes::from(vec![b'x'; 60 * 1024]);
        while w.send(msg.clone()) {}
        assert!(w.queued() >= WRITE_BUDGET / 2);
        w.close();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the writer ended at once")
            .unwrap();
    }
}
