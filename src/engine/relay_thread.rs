//! One relay thread: a `mio` poll over the sockets of the streams placed on it, and the
//! work on each packet (checked and routed by `media::relay`, counted, recorded,
//! forwarded) done right where the poll reports its socket readable. There is no runtime
//! between the two: a tokio task per direction cost a wake-up, a schedule and a poll per
//! packet, a tenth of the relay's CPU (BENCHMARKS.md, issue 8).
//!
//! The signalling thread binds a stream's sockets (so a port that cannot be bound fails the
//! call at once) and hands them over; the relay thread owns them from then on and closes
//! them when told to, or when the stream fails.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tracing::warn;

use super::relay_socket::{BATCH, Batch};
use crate::media::relay::StreamRoute;

mod direction;
use direction::with_rtp_sides;
mod held;
pub(super) use direction::Direction;

/// A call's media activity clock (`media::Watch`), set by every packet relayed.
pub(super) type Activity = Arc<Mutex<Instant>>;

/// The sockets of one stream, in this order: RTP and RTCP facing leg A, then leg B. A
/// packet read from socket `i` leaves by socket `i ^ 2`, the same kind facing the other leg.
pub(super) const A_RTP: usize = 0;
pub(super) const A_RTCP: usize = 1;
pub(super) const B_RTP: usize = 2;
pub(super) const B_RTCP: usize = 3;

/// Tokens: four per stream slot; this one wakes the thread for its commands.
const WAKE: Token = Token(usize::MAX);

/// Reads one socket gets in one turn of the thread (`BATCH` packets each): a socket that
/// still has packets queued after them is read again next turn, after every other socket
/// found readable, so a flood on one port cannot hold the thread for the others.
const READS_PER_TURN: usize = 16;

/// A stream handed to a relay thread.
pub(super) struct StreamIo {
    /// [`A_RTP`], [`A_RTCP`], [`B_RTP`], [`B_RTCP`].
    pub(super) sockets: [UdpSocket; 4],
    pub(super) route: Arc<Mutex<StreamRoute>>,
    /// Per socket, what to do with what arrives on it; a socket without one is kept bound
    /// for the call but not read.
    pub(super) dirs: [Option<Direction>; 4],
    /// Set when the stream stopped before it was closed (a panic on a packet, a poisoned
    /// lock), or was never taken by its thread: the call is then ended with MediaFailed
    /// rather than left one-way. Declared after `sockets`, so dropped after them: once the
    /// signalling thread holds the only reference, the ports are free.
    pub(super) dead: Arc<AtomicBool>,
    /// The thread took it (`Relay::open`). One dropped before that (the thread ended with
    /// it still queued, or a send to a thread already gone) is dead.
    pub(super) taken: bool,
    /// Per socket: it is in the thread's list of sockets left with packets (`Relay::again`),
    /// so it is listed once and read once a turn, however often the poll reports it.
    pub(super) left: [bool; 4],
    /// It is in the thread's list of streams whose repacketisers hold audio
    /// (`Relay::holding`), listed once.
    pub(super) holding: bool,
}

impl Drop for StreamIo {
    fn drop(&mut self) {
        if !self.taken {
            self.dead.store(true, Ordering::Relaxed);
        }
    }
}

enum Command {
    Open(u64, Box<StreamIo>),
    Close(u64),
    /// Leave the loop as a failed poll does (tests of what follows a thread's end).
    #[cfg(test)]
    Stop,
    /// Stop coming round the loop for a while, as a defect might (tests of the stop).
    #[cfg(test)]
    Stall(std::time::Duration),
}

/// A relay thread. Dropping it stops the thread and closes every socket it holds.
pub(super) struct RelayThread {
    commands: Option<Sender<Command>>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RelayThread {
    pub(super) fn start(n: usize) -> std::io::Result<RelayThread> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (commands, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("media-{n}"))
            .spawn(move || {
                // However `run` ends (a failed poll, a panic in its bookkeeping), the streams
                // it carried are reported dead (`Drop for Relay`), and so is every one still
                // queued, as the channel drops it untaken (`Drop for StreamIo`).
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Relay::new(poll).run(&inbox)
                }));
                drop(inbox);
                if ran.is_err() {
                    tracing::error!("relay thread stopped on a panic: its streams stop (their calls end) and a new thread takes its place within a second");
                }
            })?;
        Ok(RelayThread {
            commands: Some(commands),
            waker,
            thread: Some(thread),
        })
    }

    /// Whether the thread still relays (it stops only when its poll fails, or on a panic
    /// outside a packet's handling).
    pub(super) fn runs(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// End the thread as a failed poll would.
    #[cfg(test)]
    pub(super) fn stop_for_test(&self) {
        let _ = self.send(Command::Stop);
    }

    /// Hand a stream over under `id` (unique for the thread's life).
    pub(super) fn open(&self, id: u64, io: StreamIo) -> std::io::Result<()> {
        self.send(Command::Open(id, Box::new(io)))
    }

    /// Close the stream `id`: its sockets are closed and its packets no longer relayed.
    pub(super) fn close(&self, id: u64) {
        if self.send(Command::Close(id)).is_err() {
            warn!(id, "the relay thread has stopped: nothing to close");
        }
    }

    fn send(&self, c: Command) -> std::io::Result<()> {
        let gone = || std::io::Error::other("the relay thread has stopped");
        self.commands
            .as_ref()
            .ok_or_else(gone)?
            .send(c)
            .map_err(|_| gone())?;
        self.waker.wake()
    }
}

/// How long relay threads told to stop are waited for (all of them together).
pub(super) const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl RelayThread {
    /// Tell the thread to stop: the closed channel does, once it is woken.
    pub(super) fn tell_to_stop(&mut self) {
        drop(self.commands.take());
        let _ = self.waker.wake();
    }

    /// Wait for the thread (told to stop) until `until` at most: a thread that never comes
    /// round its loop (a defect) must not hold the stop, past its budget, with the
    /// process's last CDRs unwritten.
    pub(super) fn join_by(&mut self, until: std::time::Instant) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match self
            .thread
            .take()
            .map(|t| crate::threads::join_within(t, left))
        {
            Some(crate::threads::Joined::Panicked) => warn!("a relay thread stopped abnormally"),
            Some(crate::threads::Joined::StillRunning) => {
                tracing::error!("a relay thread did not stop within a second: left behind")
            }
            _ => {}
        }
    }

    /// Stall the thread for `d` (tests of the stop).
    #[cfg(test)]
    pub(super) fn stall_for_test(&self, d: std::time::Duration) {
        let _ = self.send(Command::Stall(d));
    }
}

impl Drop for RelayThread {
    fn drop(&mut self) {
        self.tell_to_stop();
        self.join_by(std::time::Instant::now() + JOIN_WAIT);
    }
}

/// The thread's side: its poll, its streams by slot (a slot's four tokens are `4 * slot`
/// to `4 * slot + 3`), and the buffers every socket reads into in turn.
struct Relay {
    poll: Poll,
    slots: Vec<Option<(u64, Box<StreamIo>)>>,
    free: Vec<usize>,
    by_id: HashMap<u64, usize>,
    batch: Batch,
    /// Sockets (slot, socket) left with packets queued when their reads ran out last turn.
    again: Vec<(usize, usize)>,
    /// Streams (by slot) whose repacketisers hold audio short of a packet, and when they
    /// were last looked at (`held.rs`).
    holding: Vec<usize>,
    scanned: Instant,
}

impl Relay {
    fn new(poll: Poll) -> Relay {
        Relay {
            poll,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            batch: Batch::new(),
            again: Vec::new(),
            holding: Vec::new(),
            scanned: Instant::now(),
        }
    }

    fn run(mut self, inbox: &Receiver<Command>) {
        let mut events = Events::with_capacity(256);
        let mut left = Vec::new();
        loop {
            // Sockets left with packets: look for others, but do not wait. Audio held short
            // of a packet: wait no longer than its next look.
            let wait = if !self.again.is_empty() {
                Some(Duration::ZERO)
            } else if !self.holding.is_empty() {
                Some((self.scanned + held::SCAN).saturating_duration_since(Instant::now()))
            } else {
                None
            };
            if let Err(e) = self.poll.poll(&mut events, wait)
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                // Nothing else can wait for packets on this thread: leaving it reports every
                // stream it carried dead (`Drop`), and their calls end.
                tracing::error!(error = %e, "relay thread poll failed: its streams stop (their calls end) and a new thread takes its place within a second");
                return;
            }
            let ready = events
                .iter()
                .filter(|ev| ev.token() != WAKE)
                .map(|ev| (ev.token().0 / 4, ev.token().0 % 4));
            self.turn(ready, &mut left);
            if !self.holding.is_empty() {
                self.send_held(Instant::now());
            }
            loop {
                match inbox.try_recv() {
                    Ok(Command::Open(id, io)) => self.open(id, io),
                    Ok(Command::Close(id)) => self.close(id),
                    #[cfg(test)]
                    Ok(Command::Stop) => return,
                    #[cfg(test)]
                    Ok(Command::Stall(d)) => std::thread::sleep(d),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
        }
    }

    /// One turn over the sockets the poll found `ready` and those left with packets last
    /// turn (`left`, a list kept for its room): each is read once, at most its
    /// [`READS_PER_TURN`], and listed again (once) if packets are still left. A flooded
    /// socket the poll reports every turn is not read once more per turn it stays flooded:
    /// its reads, and the list, would grow without bound, and every other stream on the
    /// thread would wait longer each turn.
    fn turn(
        &mut self,
        ready: impl Iterator<Item = (usize, usize)>,
        left: &mut Vec<(usize, usize)>,
    ) {
        std::mem::swap(left, &mut self.again);
        for (slot, sock) in ready {
            // One left over is read below, after every socket newly ready.
            if !self.left_flag(slot, sock).is_some_and(|f| *f) {
                self.readable(slot, sock, Instant::now());
            }
        }
        for (slot, sock) in left.drain(..) {
            if let Some(f) = self.left_flag(slot, sock) {
                *f = false;
            }
            self.readable(slot, sock, Instant::now());
        }
    }

    /// Whether socket `sock` of the stream in `slot` is listed as left with packets
    /// ([`StreamIo::left`]); `None` for a slot with no stream.
    fn left_flag(&mut self, slot: usize, sock: usize) -> Option<&mut bool> {
        match self.slots.get_mut(slot) {
            Some(Some((_, io))) => io.left.get_mut(sock),
            _ => None,
        }
    }

    fn open(&mut self, id: u64, mut io: Box<StreamIo>) {
        io.taken = true;
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let registry = self.poll.registry();
        let mut registered = Ok(());
        for (i, sock) in io.sockets.iter_mut().enumerate() {
            if io.dirs[i].is_some() {
                registered = registry.register(sock, Token(4 * slot + i), Interest::READABLE);
                if registered.is_err() {
                    break;
                }
            }
        }
        if let Err(e) = registered {
            warn!(id, error = %e, "cannot poll a relay socket; the call's media fails");
            io.dead.store(true, Ordering::Relaxed);
            if slot < self.slots.len() {
                self.free.push(slot);
            }
            // Dropping the sockets takes them out of the poll too.
            return;
        }
        if slot == self.slots.len() {
            self.slots.push(None);
        }
        self.slots[slot] = Some((id, io));
        self.by_id.insert(id, slot);
    }

    fn close(&mut self, id: u64) {
        if let Some(slot) = self.by_id.remove(&id) {
            // Its sockets close as the stream is dropped here (`StreamIo` drops them before
            // its `dead`: the signalling thread's `Arc` left alone says they are closed).
            self.slots[slot] = None;
            self.free.push(slot);
            self.forget_left(slot);
            crate::maps::shrink_if_sparse(&mut self.by_id);
        }
    }

    /// The stream in `slot` is gone: its sockets' places in the list of those left with
    /// packets go too, or the next stream in the slot would be listed twice (its flags say
    /// nothing of them) and read twice a turn.
    fn forget_left(&mut self, slot: usize) {
        self.again.retain(|(s, _)| *s != slot);
        self.holding.retain(|s| *s != slot);
    }

    /// The stream in `slot` stops: marked dead for the signalling thread, its sockets
    /// closed. The call's release closes nothing more then.
    fn fail(&mut self, slot: usize) {
        if let Some((id, io)) = self.slots.get_mut(slot).and_then(Option::take) {
            io.dead.store(true, Ordering::Relaxed);
            self.by_id.remove(&id);
            self.free.push(slot);
            self.forget_left(slot);
        }
    }

    /// Socket `sock` of the stream in `slot` has packets queued: read and relay them all.
    fn readable(&mut self, slot: usize, sock: usize, now: Instant) {
        let Some(Some((_, io))) = self.slots.get_mut(slot) else {
            // A stream closed earlier in this turn.
            return;
        };
        let batch = &mut self.batch;
        // A panic on one packet is one stream's failure, not the thread's: every other
        // stream on the thread goes on.
        let flow = std::panic::catch_unwind(AssertUnwindSafe(|| {
            drain(io, sock, batch, now, READS_PER_TURN)
        }));
        if let Ok(ControlFlow::Continue(_)) = flow
            && !io.holding
            && io
                .dirs
                .get(sock)
                .and_then(Option::as_ref)
                .is_some_and(Direction::holds)
        {
            io.holding = true;
            self.holding.push(slot);
        }
        match flow {
            Ok(ControlFlow::Continue(Queue::Empty)) => {}
            Ok(ControlFlow::Continue(Queue::Left)) => {
                if let Some(flag) = io.left.get_mut(sock)
                    && !*flag
                {
                    *flag = true;
                    self.again.push((slot, sock));
                }
            }
            Ok(ControlFlow::Break(())) => {
                crate::ops::metrics::relay_failures("stream").increment(1);
                self.fail(slot)
            }
            Err(_) => {
                warn!("a relay stream failed on a packet; its call ends");
                crate::ops::metrics::relay_failures("stream").increment(1);
                // What it relayed before the packet still counts.
                if let Some(d) = io.dirs.get_mut(sock).and_then(Option::as_mut) {
                    d.flush(now);
                }
                self.fail(slot);
            }
        }
    }
}

impl Drop for Relay {
    /// However the thread ends (a failed poll, a panic in its own bookkeeping, or the
    /// gateway stopping, when nobody asks any more), every stream it still carries is
    /// reported dead, so no call is left without audio.
    fn drop(&mut self) {
        for slot in 0..self.slots.len() {
            self.fail(slot);
        }
    }
}

/// What a socket's queue holds after its reads of a turn.
#[derive(Debug, PartialEq, Eq)]
enum Queue {
    /// A read found fewer than a batch: the poll reports the next packet.
    Empty,
    /// Every read took a full batch: more may wait, and the poll will not say so (its
    /// readiness is edge-triggered), so the thread reads it again next turn.
    Left,
}

/// Read what is queued on socket `sock` of `io`, at most `reads` batches, and relay it.
fn drain(
    io: &mut StreamIo,
    sock: usize,
    batch: &mut Batch,
    now: Instant,
    reads: usize,
) -> ControlFlow<(), Queue> {
    let StreamIo {
        sockets,
        route,
        dirs,
        ..
    } = io;
    let Some((d, sides)) = with_rtp_sides(dirs, sock) else {
        return ControlFlow::Continue(Queue::Empty);
    };
    let (from, to) = (&sockets[sock], &sockets[sock ^ 2]);
    let mut flow = ControlFlow::Continue(Queue::Left);
    for _ in 0..reads {
        let n = match batch.read(from) {
            Ok(n) => n,
            // Drained; or a read error, which leaves nothing to relay until the next packet.
            Err(e) => {
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    crate::ops::metrics::relay_failures("read").increment(1);
                }
                flow = ControlFlow::Continue(Queue::Empty);
                break;
            }
        };
        if batch
            .each(n, &mut |pkt: &[u8], src| {
                d.relay(route, to, now, pkt, src, sides)
            })
            .is_break()
        {
            flow = ControlFlow::Break(());
            break;
        }
        if n < BATCH {
            flow = ControlFlow::Continue(Queue::Empty);
            break;
        }
    }
    d.flush(now);
    flow
}

#[cfg(test)]
mod tests;
