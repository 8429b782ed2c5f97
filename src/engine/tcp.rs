//! TCP transport (RFC 3261 §18.3): Content-Length framing, a reader and a writer task per
//! connection, and connection reuse: responses and in-dialog requests go back over the
//! connection the peer opened while it is up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::Event;
use super::inbox::{Inbox, StrangerSends};
use crate::sip::{ConnId, Framed, StreamFramer, Target, Transport};

mod accept_pace;
mod admit;
mod connect;
mod delivery;
mod first_bytes;
mod keepalive;
mod registry;
mod slots;
mod writer;
use accept_pace::AcceptPace;
use connect::connect;
use delivery::{behind_nat, for_the_core, overloaded, pace, read_message};
use first_bytes::{FirstBytes, Look};
use keepalive::keepalive;
pub(super) use registry::Registry;
pub(super) use slots::{Slot, Slots};
pub(super) use writer::Writer;

/// The first pause after a failed accept, and the longest.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// A connection is closed after this long without a byte read, nor one written since, nor
/// a call on it (closed, a peer behind NAT could no longer be reached: a connection back
/// goes to the private address its Contact names; `Registry::keep_in_use`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a connection whose peer behind NAT closed its side right after a request (a
/// BYE, then `shutdown(SHUT_WR)`) stays open for the answer: a half-closed socket still
/// takes it, and RFC 3261 §18.2.2 sends it there while the connection is open; after, it
/// goes to the Via's port, where a NATed peer listens on nothing. (A peer not behind NAT
/// gets it there as before: one that closed both ways would lose it to a reset here.)
/// Bounded by the message timeout too.
const HALF_CLOSED_LINGER: Duration = Duration::from_secs(2);
/// Per-connection settings from `[protect]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub max: usize,
    pub message_timeout: Duration,
}

/// Who opened a connection: what it may send, and how long it may stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenedBy {
    /// A source no profile knows: one message, within the message timeout of the accept.
    Stranger,
    /// A peer: its first message (or keep-alive) within the message timeout of the accept
    /// too (a connection that never carries one would hold a slot for nothing), then the
    /// idle rule.
    Peer,
    /// Us, toward a peer: the idle rule from the start (the peer may never send on it).
    Us,
}

/// Hands out connection ids, shared by the accept loops and the registry (outbound
/// connections) of one engine.
#[derive(Debug, Clone, Default)]
pub(super) struct ConnIds(Arc<AtomicU64>);

impl ConnIds {
    fn next(&self) -> ConnId {
        ConnId(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

pub(super) async fn accept(
    listener: TcpListener,
    limits: Limits,
    slots: Slots,
    ids: ConnIds,
    inbox: Inbox,
) {
    // After a failed accept (out of descriptors, say), a pause that doubles while it
    // keeps failing; logged once a run, not every pause.
    let mut pause = ACCEPT_PAUSE;
    let mut paced = AcceptPace::new(Instant::now());
    loop {
        // Each connection counts against the task's share of the thread (an accept takes
        // none of tokio's budget): a flood of connections must not hold the core's thread.
        tokio::task::consume_budget().await;
        match listener.accept().await {
            Ok((stream, peer)) => {
                pause = ACCEPT_PAUSE;
                // A dual-stack listener's IPv4 peer as its IPv4 address (as over UDP).
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                let Some(admit::Admitted { slot, stranger }) =
                    admit::guarded(&inbox, &slots, &mut paced, peer.ip())
                else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                keepalive(&stream);
                let conn = ids.next();
                tokio::spawn(serve(
                    stream,
                    peer,
                    conn,
                    limits,
                    slot,
                    inbox.clone(),
                    if stranger {
                        OpenedBy::Stranger
                    } else {
                        OpenedBy::Peer
                    },
                ));
            }
            Err(e) => {
                if pause == ACCEPT_PAUSE {
                    warn!(error = %e, "TCP accept failed: pausing (logged once until one succeeds)");
                } else {
                    debug!(error = %e, "TCP accept failed again");
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_ACCEPT_PAUSE);
            }
        }
    }
}

/// A connection's reader that panicked (a defect) ends it as a closed one ends: its writer
/// stopped (else the socket stayed open, unread) and the core told it is down (else a
/// trunk's requests kept going to it, their answers never read, and none opened anew).
struct Unwound {
    writer: tokio::task::AbortHandle,
    conn: ConnId,
    inbox: Inbox,
}

/// Readers that panicked: counted (`refused{reason="tcp_panicked"}`), and said at the 1st,
/// 2nd, 4th… (one per connection, a defect every connection met would flood the log).
static READER_PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Drop for Unwound {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.writer.abort();
            crate::ops::metrics::refused("tcp_panicked");
            let panics = READER_PANICS
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .saturating_add(1);
            if panics.is_power_of_two() {
                tracing::error!(conn = ?self.conn, panics, "a TCP connection's reader panicked: the connection is closed");
            }
            // Nothing can wait here: with accepted work full, a task waits for room. Lost,
            // the registry would keep the connection as the one to send on for good.
            if let Err(ev) = self.inbox.offer(Event::TcpDown { conn: self.conn })
                && let Ok(rt) = tokio::runtime::Handle::try_current()
            {
                let inbox = self.inbox.clone();
                rt.spawn(async move { inbox.deliver(*ev).await });
            }
        }
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    limits: Limits,
    // Held for the connection's life; its drop frees the slot.
    mut slot: Slot,
    inbox: Inbox,
    // A stranger's connection: its one request must come within the message timeout, and
    // nothing after it is read (the core answers it, then closes).
    opened: OpenedBy,
) {
    let stranger = opened == OpenedBy::Stranger;
    let (mut rd, wr) = stream.into_split();
    let (tx, drain) = Writer::new(slot.write_budget());
    // RFC 5626 §3.5.1 pongs go out on the same writer, behind what the core queued.
    let pong = tx.clone();
    // A stranger's connection is made known to the core only with the one message it may
    // be answered: one that sends nothing worth answering costs the core nothing.
    let mut up = Some(tx);
    if !stranger
        && let Some(tx) = up.take()
        && !inbox.deliver(Event::TcpUp { conn, peer, tx }).await
    {
        return;
    }
    // The writer ends on a write failure, a peer that reads nothing, or the core closing
    // the connection; the reader stops with it.
    let mut writer = tokio::spawn(drain.run(wr, peer));
    let _unwound = Unwound {
        writer: writer.abort_handle(),
        conn,
        inbox: inbox.clone(),
    };
    let mut framer = StreamFramer::new(limits.max);
    // When the message being received began, if one is under way: it must be complete within
    // `message_timeout`, however slowly its bytes come (one byte every few minutes would
    // otherwise hold the connection for ever).
    // A connection opened to us is held to it from the accept until its first message or
    // keep-alive: one that never sends a byte holds its slot that long, not the idle
    // timeout's 300 s (a peer's wide `match` could otherwise fill `max_tcp_total` with
    // silent connections, reopened every five minutes).
    let mut begun: Option<tokio::time::Instant> =
        (opened != OpenedBy::Us).then(tokio::time::Instant::now);
    let mut buf = vec![0u8; 16 * 1024];
    let mut answered = false;
    // A stranger's messages went to the core (an asked one's answers).
    let mut delivered = false;
    // When the last message read from a peer behind NAT was a request (not an ACK): an end
    // of stream soon after waits for its answer ([`HALF_CLOSED_LINGER`]).
    let mut asked: Option<tokio::time::Instant> = None;
    let mut first = FirstBytes::default();
    let mut ended = false;
    let source = Target {
        transport: Transport::Tcp,
        addr: peer,
        conn: Some(conn),
        listener: None,
    };
    'reading: loop {
        if stranger && answered {
            // Room for the answer to be written; the core closes the writer after it.
            let _ = tokio::time::timeout(limits.message_timeout, &mut writer).await;
            break;
        }
        let deadline = match begun {
            Some(t) => t + limits.message_timeout,
            None => tokio::time::Instant::now() + IDLE_TIMEOUT,
        };
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, rd.read(&mut buf)) => r,
            _ = &mut writer => break,
        };
        let n = match read {
            Err(_) if begun.is_some() => {
                // (A stranger that connected back with its answers, all read, just had its
                // time: nothing of it was refused.)
                if !delivered || framer.mid_message() {
                    crate::ops::metrics::refused("tcp_message_timeout");
                    debug!(%peer, "TCP message not complete in time: closing");
                }
                break;
            }
            Err(_) if pong.wrote_lately() => continue,
            Ok(Ok(0)) => {
                ended = true;
                break;
            }
            Err(_) => break,
            Ok(Ok(n)) => {
                let _ = pong.wrote_lately(); // (the idle window starts again here)
                n
            }
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "TCP read failed");
                break;
            }
        };
        // A fault for the test that a panic here ends this connection cleanly.
        #[cfg(test)]
        if buf[..n].starts_with(b"PANIC-TEST") {
            panic!("a test fault");
        }
        // A stranger costs a look at its first bytes, as over UDP: only what it may be
        // answered (a request in `reject` mode, not an ACK; a response) is framed and parsed.
        if stranger
            && (!framer.mid_message() || first.gathering())
            && let Look::Judge(start) = first.look(&buf[..n])
            && !inbox.hears_stranger(peer.ip(), &start, std::time::Instant::now())
        {
            break;
        }
        match framer.push(&buf[..n]) {
            Ok(msgs) => {
                // A message under way must complete in time; keep-alive CRLFs between
                // messages are not one (the peer pinging an idle connection keeps it open).
                // A stranger's deadline, set at accept, stays: pinging does not keep it.
                if !stranger {
                    if framer.mid_message() {
                        if !msgs.is_empty() || begun.is_none() {
                            begun = Some(tokio::time::Instant::now());
                        }
                    } else {
                        begun = None;
                    }
                }
                // One pong for the pings of this read, at most: a peer sending CRLFs in bulk
                // gets two bytes back per read, and nothing when the writer is behind.
                // Strangers get none.
                if framer.take_pings() > 0 && !stranger {
                    pong.send(Bytes::from_static(b"\r\n"));
                }
                let at = Instant::now();
                if stranger {
                    // Its messages go where a stranger's datagrams go (`try_deliver_stranger`:
                    // a request on the strangers' queue, read last; a response carrying our
                    // branch with accepted work), never waiting (a full queue drops them and
                    // the connection). A request (`reject` mode)
                    // is its one message: answered, then the connection closed. Responses
                    // (an address the gateway asked lately, connecting back with its
                    // answers: a 100, then a 486) are each read, until its time is up.
                    for framed in msgs {
                        // Over its rate it loses the connection (a stream cannot skip
                        // messages), each message counted: a read of a hundred small ones
                        // costs a hundred (a peer is paced, message by message, below).
                        if !inbox.admit(peer.ip(), at, true) {
                            debug!(%peer, "TCP source over [protect] source_rate: closing");
                            break 'reading;
                        }
                        let Framed::Message(msg) = framed else {
                            // Nothing it could be answered: as its datagram, dropped.
                            inbox.count_unparseable();
                            crate::ops::metrics::refused("unparseable");
                            break 'reading;
                        };
                        // (The read's first bytes were looked at; what follows them is too.)
                        let sends = match &msg {
                            crate::sip::Message::Request(r) => StrangerSends::Request {
                                ack: r.method() == crate::sip::Method::Ack,
                            },
                            crate::sip::Message::Response(_) => StrangerSends::Response,
                        };
                        let request = sends != StrangerSends::Response;
                        if !inbox.stranger_may_send(peer.ip(), sends, at) {
                            break 'reading;
                        }
                        let ev = read_message(msg, source, at);
                        match inbox.stranger_room(&ev) {
                            Some(true) => {}
                            Some(false) => break 'reading,
                            // Dropped as it would be below, before the core hears of it.
                            None => {
                                delivered = true;
                                continue;
                            }
                        }
                        if let Some(tx) = up.take()
                            && let Err(refused) = inbox.offer(Event::TcpUp { conn, peer, tx })
                        {
                            // The core never heard of it: it hears of no end either.
                            if let Event::TcpUp { tx, .. } = *refused {
                                up = Some(tx);
                            }
                            break 'reading;
                        }
                        if !inbox.try_deliver_stranger(ev) {
                            break 'reading;
                        }
                        delivered = true;
                        if request {
                            answered = true;
                            break;
                        }
                    }
                    continue;
                }
                // What the read's messages waited to be let through (`pace`) was the peer's
                // wait (TCP held it back), not queueing of ours: overload control counts
                // from when each was read, plus that wait. (A wait for room in our queue
                // stays counted: that is overload.)
                let mut paced = Duration::ZERO;
                let had_messages = !msgs.is_empty();
                for framed in msgs {
                    match pace(&inbox, &mut slot, peer.ip(), &mut writer).await {
                        Some(waited) => paced += waited,
                        None => break 'reading,
                    }
                    let at = at + paced;
                    let msg = match for_the_core(framed, source) {
                        Ok(msg) => msg,
                        // Framed but unparseable, or over the size limit (its body skipped):
                        // the core answers it as it does such a datagram (a 400, or a 513,
                        // to a known peer); what follows on the stream is read as usual.
                        Err(ev) => {
                            inbox.count_unparseable();
                            if !inbox.deliver(*ev).await {
                                // The core is gone: so is this connection.
                                break 'reading;
                            }
                            continue;
                        }
                    };
                    // New work waits for no room: behind it on this connection may be what
                    // the core must see first (a BYE, an ACK, the answers to our own
                    // requests on a trunk's connection). When the queue of new work is
                    // full it is refused here, over the connection it came on.
                    let new_work = super::inbox::is_new_work(&msg);
                    asked = behind_nat(&msg, peer.ip()).then(tokio::time::Instant::now);
                    let ev = read_message(msg, source, at);
                    if new_work {
                        if let Err(ev) = inbox.offer(ev)
                            && let Event::Message { msg, .. } = *ev
                            && let Some(reply) = overloaded(&msg, &inbox.overload.tag)
                        {
                            pong.send(reply);
                        }
                    } else if !inbox.deliver(ev).await {
                        break 'reading;
                    }
                }
                // The message begun after them has its time from now: what their pacing and
                // queueing took was ours (or the peer's rate), not the peer being slow.
                if had_messages && framer.mid_message() {
                    begun = Some(tokio::time::Instant::now());
                }
            }
            Err(e) => {
                // Framing is lost; the stream cannot be resynchronised (RFC 3261 §18.3).
                // Counted and summed up in the log, not a line per connection: anyone who
                // may connect could loop on it.
                debug!(%peer, error = %e, "unframeable SIP on TCP: closing the connection");
                inbox.count_unparseable();
                crate::ops::metrics::refused("tcp_unframeable");
                break;
            }
        }
    }
    // (The writer has not ended: the read, not the writer, ended the loop.)
    let linger = HALF_CLOSED_LINGER.min(limits.message_timeout);
    if ended && !stranger && asked.is_some_and(|t| t.elapsed() < linger) {
        // Until something is written (since the last read: the answer) and nothing waits,
        // or the writer ends (a socket closed both ways refuses the first write). A peer
        // that closes once answered (a connection per transaction) waits for nothing.
        let until = tokio::time::Instant::now() + linger;
        let mut wrote = false;
        loop {
            wrote |= pong.wrote_lately();
            if (wrote && pong.is_written()) || tokio::time::Instant::now() >= until {
                break;
            }
            if tokio::time::timeout(Duration::from_millis(10), &mut writer)
                .await
                .is_ok()
            {
                break;
            }
        }
    }
    writer.abort();
    if up.is_none() {
        inbox.deliver(Event::TcpDown { conn }).await;
    }
}

#[cfg(test)]
mod tests;
