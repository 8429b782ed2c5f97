//! The shedder: from how long new requests waited, what becomes of each (admitted, refused,
//! dropped) and what share of them is refused while a queue stands.

use std::time::{Duration, Instant};

use super::fair::Fair;
use super::{QUEUES, Stage};
use crate::config::Protect;

/// A pause in the decisions on a queue longer than this starts its count again: the
/// requests after it are a new queue (after quiet time), not the one that stood.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// What happens to a fresh request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shed {
    Admit,
    /// A stateless 503 + Retry-After.
    Refuse,
    /// Nothing (UDP only: a TCP sender does not retransmit, so it always gets an answer).
    Drop,
}

/// How often the shedder looks at the queue and adjusts.
pub(super) const WINDOW: Duration = Duration::from_millis(100);
/// How much of the new work is refused more (or less) after a window with (or without) a
/// standing queue: up quickly, down slowly, so the load settles just under capacity.
const STEP_UP: f64 = 0.10;
const STEP_DOWN: f64 = 0.02;

/// Overload control for new work, from how long new requests waited (counted from the
/// kernel's receive time). Once requests have waited `[protect] overload_delay_ms` or more
/// for a whole window (every one decided on for 100 ms), a request that waited that long is
/// refused: the queue stands, and answering it quickly is the cheapest thing to do with it.
/// A queue that drains within the window is no overload (a burst, or the backlog of a stall
/// of the machine): its requests are served late rather than refused, since a carrier takes
/// a 503 with Retry-After as a reason to send us nothing for a while (CoDel's interval, RFC
/// 8289). Past `overload_drop_ms` a request is dropped (UDP) in any case. And while a queue
/// stands for whole windows (even its shortest wait over the threshold), a share of the
/// other new requests is refused too, growing each such window and shrinking each window
/// without one, so a sustained overload is met before every request has to wait that long.
#[derive(Debug)]
pub(crate) struct Shedder {
    /// Share of new requests refused, 0..=1.
    share: f64,
    /// How that share is spread over the peers: from those sending the most.
    fair: Fair,
    window_end: Option<Instant>,
    /// Per queue ([`Stage`]), the shortest delay seen this window (`Duration::MAX`: no
    /// decision there yet). The share grows when any queue stood a whole window: one
    /// minimum over all, a queue that keeps up (a quiet listener, a TCP peer) held the
    /// share at 0 while another stood.
    window_min: [Duration; QUEUES],
    /// The shortest delay seen in the last window closed, of the queue that stood most.
    pub(crate) last_min: Duration,
    /// Per queue ([`Stage`]): since when every request decided on there waited the
    /// threshold or more, and when the last of them was decided on.
    above: [Option<(Instant, Instant)>; QUEUES],
}

impl Default for Shedder {
    fn default() -> Self {
        Shedder {
            share: 0.0,
            fair: Fair::default(),
            window_end: None,
            window_min: [Duration::MAX; QUEUES],
            last_min: Duration::ZERO,
            above: [None; QUEUES],
        }
    }
}

impl Shedder {
    /// The share currently refused (for the metrics).
    pub(crate) fn share(&self) -> f64 {
        self.share
    }

    /// The peers' slots now name other peers (a reload changed the profiles): what each
    /// slot's count said is no one's now.
    pub(crate) fn forget_peers(&mut self) {
        self.fair = Fair::default();
    }

    /// Decide for one new request from the peer of `slot` (`fair::SLOTS`), taken off the
    /// queue at `now` after waiting `delay`, at `stage`.
    pub(crate) fn decide(
        &mut self,
        now: Instant,
        (delay, stage): (Duration, Stage),
        (reliable, slot): (bool, usize),
        p: &Protect,
    ) -> Shed {
        self.observe(now, delay, stage, p);
        let stands = self.stands(now, delay, stage, p);
        if delay >= p.overload_drop {
            self.fair.count(slot);
            return if reliable { Shed::Refuse } else { Shed::Drop };
        }
        if stands {
            self.fair.count(slot);
            return Shed::Refuse;
        }
        if self.fair.refuses(slot) {
            Shed::Refuse
        } else {
            Shed::Admit
        }
    }

    /// For a request the UDP reader let in: it counts toward the share no more, but it may
    /// have waited too long in the internal queue since (the reader saw only its wait in the
    /// socket buffer).
    pub(crate) fn screened(&mut self, now: Instant, delay: Duration, p: &Protect) -> Shed {
        self.observe(now, delay, Stage::CoreUdp, p);
        let stands = self.stands(now, delay, Stage::CoreUdp, p);
        if delay >= p.overload_drop {
            Shed::Drop
        } else if stands {
            Shed::Refuse
        } else {
            Shed::Admit
        }
    }

    /// Whether a request that waited `delay` in `stage`'s queue, decided on at `now`,
    /// finds that queue standing: it waited the threshold or more, as every one decided on
    /// there for the last window did. (A stall of the machine makes no decisions, so the
    /// backlog it leaves starts a count of its own, and is served if it drains within the
    /// window.)
    fn stands(&mut self, now: Instant, delay: Duration, stage: Stage, p: &Protect) -> bool {
        let above = &mut self.above[stage.queue()];
        if delay < p.overload_delay {
            *above = None;
            return false;
        }
        let (since, last) = above.get_or_insert((now, now));
        if now.saturating_duration_since(*last) > RESTART_AFTER {
            *since = now;
        }
        *last = (*last).max(now);
        now.saturating_duration_since(*since) >= WINDOW
    }

    fn observe(&mut self, now: Instant, delay: Duration, stage: Stage, p: &Protect) {
        let end = *self.window_end.get_or_insert(now + WINDOW);
        let min = &mut self.window_min[stage.queue()];
        *min = (*min).min(delay);
        if now < end {
            return;
        }
        let received = now.checked_sub(delay).unwrap_or(now);
        self.close_window(end, received, p);
        self.window_end = Some(now + WINDOW);
    }

    /// With no decision for a whole window after the one open (no new request came at
    /// all), that window is closed and the quiet ones after it bring the share down, as the
    /// next decision would: the share (its metric, and the rules that drop junk while it is
    /// above 0) does not show the last storm for as long as it is quiet. Housekeeping asks,
    /// once a second, while no new work waits in its queue (a stall of the core with work
    /// queued is no quiet).
    pub(crate) fn decay_idle(&mut self, now: Instant, p: &Protect) {
        let Some(end) = self.window_end else {
            return;
        };
        if now < end + WINDOW {
            return;
        }
        self.close_window(end, now, p);
        // A quiet window is open now: the next decision, or the next ask, closes it.
        self.window_end = Some(now + WINDOW);
        self.last_min = Duration::ZERO;
    }

    /// Close the window that ended at `end`, with the quiet windows from then until
    /// `received` (the latest request's receipt, or now).
    fn close_window(&mut self, end: Instant, received: Instant, p: &Protect) {
        // The queue that stood most: of those decided on this window, the longest
        // shortest wait.
        let worst = (self.window_min.iter())
            .filter(|m| **m != Duration::MAX)
            .max()
            .copied()
            .unwrap_or(Duration::ZERO);
        self.last_min = worst;
        // Windows that passed with no request at all had no queue either: the share comes
        // down for each, so a storm followed by quiet (night, peers honouring Retry-After)
        // does not leave the next calls refused until enough requests have closed windows.
        // Only up to when this request was received: while it waited (a stall of the core
        // or a reader) the queue stood, however few decisions were made meanwhile.
        let idle = (received.saturating_duration_since(end).as_nanos() / WINDOW.as_nanos())
            .min(u128::from(u16::MAX)) as f64;
        self.share = if worst >= p.overload_delay {
            (self.share + STEP_UP).min(1.0)
        } else {
            (self.share - STEP_DOWN).max(0.0)
        };
        self.share = (self.share - STEP_DOWN * idle).max(0.0);
        self.fair.close(self.share);
        self.window_min = [Duration::MAX; QUEUES];
    }
}
