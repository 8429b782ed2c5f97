//! What transport tasks hand the core task, in two bounded queues, and what the core task
//! does when it falls behind.
//!
//! Work already accepted (responses, ACK, CANCEL, BYE and every request inside a dialog)
//! goes to the `urgent` queue, which the core task always empties first. New work (a request
//! outside any dialog: an initial INVITE, an OPTIONS) goes to `fresh`, stamped with when it
//! arrived. When a fresh request has waited longer than `[protect] overload_delay_ms` the
//! gateway is behind: it is answered with a stateless 503 instead of starting a call, and past
//! `overload_drop_ms` (over UDP) it is dropped, since its sender has retransmitted by then.
//! Capacity is shed at the door instead of every call slowing down until all of them time
//! out.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::mpsc;

use super::Event;
use super::source_guard::{Gate, SourceGuard};
use crate::config::{Config, Protect};
use crate::sip::Message;

/// Room for accepted work: responses and in-dialog requests are only dropped past this.
const URGENT: usize = 16_384;
/// Room for new requests. A full second of them at our capacity, no more: beyond that a
/// request would wait longer than the overload thresholds anyway.
const FRESH: usize = 4_096;

/// Whether a message starts new work, which overload control may refuse: a request outside
/// any dialog, other than ACK and CANCEL (which belong to an INVITE already received).
pub(crate) fn is_new_work(msg: &Message) -> bool {
    match msg {
        Message::Response(_) => false,
        Message::Request(r) => {
            !matches!(
                r.method(),
                crate::sip::Method::Ack | crate::sip::Method::Cancel
            ) && r.to_tag().is_none()
        }
    }
}

fn is_cancel(msg: &Message) -> bool {
    matches!(msg, Message::Request(r) if r.method() == crate::sip::Method::Cancel)
}

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
const WINDOW: Duration = Duration::from_millis(100);
/// How much of the new work is refused more (or less) after a window with (or without) a
/// standing queue: up quickly, down slowly, so the load settles just under capacity.
const STEP_UP: f64 = 0.10;
const STEP_DOWN: f64 = 0.02;

/// Overload control for new work, from how long new requests waited (counted from the
/// kernel's receive time). A request that waited `[protect] overload_delay_ms` or more is
/// refused: the queue is too long now, and answering it quickly is the cheapest thing to do
/// with it. Past `overload_drop_ms` it is dropped (UDP). And while a queue stands for whole
/// 100 ms windows (even its shortest wait over the threshold), a share of the other new
/// requests is refused too, growing each such window and shrinking each window without one,
/// so a sustained overload is met before every request has to wait that long.
#[derive(Debug)]
pub(crate) struct Shedder {
    /// Share of new requests refused, 0..=1.
    share: f64,
    /// Error diffusion: refusals owed so far (refuses exactly `share` of them, no RNG).
    owed: f64,
    window_end: Option<Instant>,
    window_min: Duration,
    /// The shortest delay seen in the last window closed (the standing queue).
    pub(crate) last_min: Duration,
}

impl Default for Shedder {
    fn default() -> Self {
        Shedder {
            share: 0.0,
            owed: 0.0,
            window_end: None,
            window_min: Duration::MAX,
            last_min: Duration::ZERO,
        }
    }
}

impl Shedder {
    /// The share currently refused (for the metrics).
    pub(crate) fn share(&self) -> f64 {
        self.share
    }

    /// Decide for one new request taken off the queue at `now` after waiting `delay`.
    pub(crate) fn decide(
        &mut self,
        now: Instant,
        delay: Duration,
        reliable: bool,
        p: &Protect,
    ) -> Shed {
        self.observe(now, delay, p);
        if delay >= p.overload_drop {
            return if reliable { Shed::Refuse } else { Shed::Drop };
        }
        if delay >= p.overload_delay {
            return Shed::Refuse;
        }
        self.owed += self.share;
        if self.owed >= 1.0 {
            self.owed -= 1.0;
            Shed::Refuse
        } else {
            Shed::Admit
        }
    }

    /// For a request the UDP reader let in: it counts toward the share no more, but it may
    /// have waited too long in the internal queue since (the reader saw only its wait in the
    /// socket buffer).
    pub(crate) fn screened(&mut self, now: Instant, delay: Duration, p: &Protect) -> Shed {
        self.observe(now, delay, p);
        if delay >= p.overload_drop {
            Shed::Drop
        } else if delay >= p.overload_delay {
            Shed::Refuse
        } else {
            Shed::Admit
        }
    }

    fn observe(&mut self, now: Instant, delay: Duration, p: &Protect) {
        let end = *self.window_end.get_or_insert(now + WINDOW);
        self.window_min = self.window_min.min(delay);
        if now < end {
            return;
        }
        self.last_min = self.window_min;
        self.share = if self.window_min >= p.overload_delay {
            (self.share + STEP_UP).min(1.0)
        } else {
            (self.share - STEP_DOWN).max(0.0)
        };
        if self.share == 0.0 {
            self.owed = 0.0;
        }
        self.window_end = Some(now + WINDOW);
        self.window_min = Duration::MAX;
    }
}

/// Slots of the table of INVITE transactions handed to the core lately (8 bytes each).
const RECENT: usize = 1 << 17;

/// Overload control shared by the UDP readers, which refuse new INVITEs before parsing
/// them (`sip::fast`: about a tenth of the work of the full path, so shedding stays cheap
/// when most of the load is shed), and the core task, which decides for everything else.
pub(crate) struct Overload {
    state: std::sync::Mutex<(Shedder, Protect)>,
    /// The To tag of every refusal sent from a reader: the ACKs that come back for them
    /// are recognised by it and dropped unparsed.
    pub(crate) tag: String,
    /// INVITE transactions (source address and branch, hashed) let through to the core:
    /// a retransmission of one is never refused here, whatever the share (the core absorbs
    /// it in its transaction). A direct-mapped table; a slot overwritten by a later INVITE
    /// only means that retransmission is judged like a new one.
    recent: Box<[AtomicU64]>,
    hasher: foldhash::fast::RandomState,
}

impl Overload {
    pub(crate) fn new(p: &Protect) -> Overload {
        Overload {
            state: std::sync::Mutex::new((Shedder::default(), p.clone())),
            tag: format!("ov-{:016x}", rand::random::<u64>()),
            recent: (0..RECENT).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub(crate) fn configure(&self, p: &Protect) {
        if let Ok(mut st) = self.state.lock() {
            st.1 = p.clone();
        }
    }

    /// See [`Shedder::decide`].
    pub(crate) fn decide(&self, now: Instant, delay: Duration, reliable: bool) -> Shed {
        match self.state.lock() {
            Ok(mut st) => {
                let (shedder, p) = &mut *st;
                shedder.decide(now, delay, reliable, p)
            }
            Err(_) => Shed::Admit,
        }
    }

    /// See [`Shedder::screened`].
    pub(crate) fn screened(&self, now: Instant, delay: Duration) -> Shed {
        match self.state.lock() {
            Ok(mut st) => {
                let (shedder, p) = &mut *st;
                shedder.screened(now, delay, p)
            }
            Err(_) => Shed::Admit,
        }
    }

    pub(crate) fn share(&self) -> f64 {
        self.state.lock().map_or(0.0, |st| st.0.share())
    }

    /// The standing queue delay of the last window (what the share follows).
    pub(crate) fn standing_delay(&self) -> Duration {
        self.state.lock().map_or(Duration::ZERO, |st| st.0.last_min)
    }

    /// The key of an INVITE transaction for [`Overload::seen`] (never 0).
    pub(crate) fn invite_key(&self, ip: IpAddr, branch: &[u8]) -> u64 {
        self.hasher.hash_one((ip, branch)) | 1
    }

    /// The slot of a key (its low bit is always set: index by the others).
    fn slot(key: u64) -> usize {
        ((key >> 1) as usize) % RECENT
    }

    pub(crate) fn seen(&self, key: u64) -> bool {
        self.recent[Self::slot(key)].load(Ordering::Relaxed) == key
    }

    pub(crate) fn remember(&self, key: u64) {
        self.recent[Self::slot(key)].store(key, Ordering::Relaxed);
    }
}

/// Counts of what the edge dropped, for the metrics and one log summary per interval
/// (never a log line per packet: the packets are the attacker's to send).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub source_blocked: AtomicU64,
    pub sources_tripped: AtomicU64,
    pub queue_full: AtomicU64,
    pub oversize: AtomicU64,
    pub unparseable: AtomicU64,
    pub shed_refused: AtomicU64,
    pub shed_dropped: AtomicU64,
}

impl Tally {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_refused(&self) {
        Tally::bump(&self.shed_refused);
    }

    pub(crate) fn count_dropped(&self) {
        Tally::bump(&self.shed_dropped);
    }

    /// Take the counts since the last call, as (what, how many) for those not zero.
    pub(crate) fn take(&self) -> Vec<(&'static str, u64)> {
        [
            (
                "messages from sources over [protect] source_rate dropped",
                &self.source_blocked,
            ),
            (
                "sources went over [protect] source_rate",
                &self.sources_tripped,
            ),
            (
                "messages dropped: the core queue was full",
                &self.queue_full,
            ),
            (
                "datagrams over [protect] max_message_bytes dropped",
                &self.oversize,
            ),
            ("datagrams that are not SIP", &self.unparseable),
            (
                "new requests refused with 503: overloaded",
                &self.shed_refused,
            ),
            ("new requests dropped: overloaded", &self.shed_dropped),
        ]
        .into_iter()
        .filter_map(|(what, c)| match c.swap(0, Ordering::Relaxed) {
            0 => None,
            n => Some((what, n)),
        })
        .collect()
    }
}

/// The transports' end of the queues, with the source guard they check first.
#[derive(Clone)]
pub(crate) struct Inbox {
    urgent: mpsc::Sender<Event>,
    fresh: mpsc::Sender<Event>,
    guard: Arc<ArcSwapOption<SourceGuard>>,
    pub(crate) tally: Arc<Tally>,
    pub(crate) overload: Arc<Overload>,
    /// The running configuration, for the one question a reader asks of it: does a profile
    /// match this source?
    config: Arc<ArcSwap<Config>>,
}

/// The core task's end.
pub(crate) struct Queues {
    pub urgent: mpsc::Receiver<Event>,
    pub fresh: mpsc::Receiver<Event>,
}

impl Queues {
    /// The next event without waiting: accepted work before new work.
    pub(crate) fn try_next(&mut self) -> Option<Event> {
        self.urgent
            .try_recv()
            .ok()
            .or_else(|| self.fresh.try_recv().ok())
    }
}

impl Inbox {
    pub(crate) fn new(cfg: Arc<Config>, now: Instant) -> (Inbox, Queues) {
        let p = &cfg.protect.clone();
        let (utx, urx) = mpsc::channel(URGENT);
        let (ftx, frx) = mpsc::channel(FRESH);
        let inbox = Inbox {
            urgent: utx,
            fresh: ftx,
            guard: Arc::new(ArcSwapOption::new(None)),
            tally: Arc::default(),
            overload: Arc::new(Overload::new(p)),
            config: Arc::new(ArcSwap::new(cfg)),
        };
        inbox.configure_protect(p, now);
        (
            inbox,
            Queues {
                urgent: urx,
                fresh: frx,
            },
        )
    }

    /// A reloaded configuration.
    pub(crate) fn configure(&self, cfg: Arc<Config>, now: Instant) {
        self.configure_protect(&cfg.protect, now);
        self.config.store(cfg);
    }

    /// Whether a profile matches this source.
    pub(crate) fn knows_source(&self, ip: IpAddr) -> bool {
        self.config.load().peer_for_source(ip).is_some()
    }

    /// Apply `[protect]`. A changed source rate starts afresh.
    fn configure_protect(&self, p: &Protect, now: Instant) {
        self.overload.configure(p);
        let current = self.guard.load();
        let same = match (&*current, p.source_rate) {
            (None, None) => true,
            (Some(g), Some(rate)) => g.rate == rate && g.cooldown == p.source_cooldown,
            _ => false,
        };
        if !same {
            self.guard.store(
                p.source_rate
                    .map(|r| Arc::new(SourceGuard::new(r, p.source_cooldown, now))),
            );
        }
    }

    /// Whether a message from `ip` may be looked at (the source guard); counted when not.
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        let guard = self.guard.load();
        let Some(g) = guard.as_ref() else {
            return true;
        };
        match g.check(ip, now) {
            Gate::Pass => true,
            Gate::Tripped => {
                Tally::bump(&self.tally.sources_tripped);
                Tally::bump(&self.tally.source_blocked);
                crate::ops::metrics::refused("source_rate");
                false
            }
            Gate::Blocked => {
                Tally::bump(&self.tally.source_blocked);
                crate::ops::metrics::refused("source_rate");
                false
            }
        }
    }

    fn queue_for(&self, ev: &Event) -> &mpsc::Sender<Event> {
        match ev {
            // A CANCEL queues behind the INVITE it cancels: overtaking it, it would find
            // nothing to cancel and the call would start anyway.
            Event::Message { msg, .. } if is_new_work(msg) || is_cancel(msg) => &self.fresh,
            _ => &self.urgent,
        }
    }

    /// Hand over without waiting (UDP): a full queue drops the event, counted. False when
    /// it was dropped.
    pub(crate) fn try_deliver(&self, ev: Event) -> bool {
        if self.queue_for(&ev).try_send(ev).is_err() {
            Tally::bump(&self.tally.queue_full);
            crate::ops::metrics::refused("queue_full");
            return false;
        }
        true
    }

    /// Hand over, waiting for room (TCP: the peer is slowed down, nothing is lost). False
    /// when the core task is gone.
    pub(crate) async fn deliver(&self, ev: Event) -> bool {
        self.queue_for(&ev).send(ev).await.is_ok()
    }

    pub(crate) fn count_oversize(&self) {
        Tally::bump(&self.tally.oversize);
        crate::ops::metrics::refused("too_large");
    }

    pub(crate) fn count_unparseable(&self) {
        Tally::bump(&self.tally.unparseable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Target, parse_datagram};
    use bytes::Bytes;

    fn cfg(p: Protect) -> Arc<Config> {
        let mut c = crate::call::tests::config();
        c.protect = p;
        Arc::new(c)
    }

    fn msg(text: &str) -> Message {
        parse_datagram(Bytes::from(text.replace('\n', "\r\n")), 65535).unwrap()
    }

    fn req(method: &str, to_tag: &str) -> Message {
        msg(&format!(
            "{method} sip:x@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1\n\
             From: <sip:a@127.0.0.2>;tag=f\nTo: <sip:x@127.0.0.1>{to_tag}\nCall-ID: c1\n\
             CSeq: 1 {method}\nMax-Forwards: 70\nContent-Length: 0\n\n"
        ))
    }

    #[test]
    fn new_work_is_requests_outside_dialogs_but_ack_and_cancel() {
        assert!(is_new_work(&req("INVITE", "")));
        assert!(is_new_work(&req("OPTIONS", "")));
        assert!(!is_new_work(&req("INVITE", ";tag=t")), "a re-INVITE");
        assert!(!is_new_work(&req("BYE", ";tag=t")));
        assert!(!is_new_work(&req("ACK", "")));
        assert!(!is_new_work(&req("CANCEL", "")));
        let resp = msg(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=f\n\
             To: <sip:b@h>;tag=t\nCall-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
        );
        assert!(!is_new_work(&resp));
    }

    /// Overload thresholds of 100 ms (refuse) and 500 ms (drop), whatever the defaults.
    fn thresholds() -> Protect {
        Protect {
            overload_delay: Duration::from_millis(100),
            overload_drop: Duration::from_millis(500),
            ..Protect::default()
        }
    }

    /// Feed the shedder `n` requests a millisecond apart, each having waited `delay`;
    /// returns how many were refused and dropped.
    fn run(sh: &mut Shedder, t: &mut Instant, n: u32, delay: Duration, p: &Protect) -> (u32, u32) {
        let (mut refused, mut dropped) = (0, 0);
        for _ in 0..n {
            *t += Duration::from_millis(1);
            match sh.decide(*t, delay, false, p) {
                Shed::Admit => {}
                Shed::Refuse => refused += 1,
                Shed::Drop => dropped += 1,
            }
        }
        (refused, dropped)
    }

    #[test]
    fn requests_are_refused_only_when_they_waited_too_long() {
        let p = thresholds();
        let (mut sh, mut t) = (Shedder::default(), Instant::now());
        assert_eq!(
            run(&mut sh, &mut t, 5000, Duration::from_millis(5), &p),
            (0, 0)
        );
        // Bursts over the threshold: those requests are refused, but the queue empties
        // within every window, so the others are not.
        let mut refused = 0;
        for _ in 0..20 {
            refused += run(&mut sh, &mut t, 90, Duration::from_millis(300), &p).0;
            refused += run(&mut sh, &mut t, 10, Duration::ZERO, &p).0;
        }
        assert_eq!(refused, 20 * 90);
        assert_eq!(sh.share(), 0.0);
    }

    #[test]
    fn a_standing_queue_raises_the_refused_share_and_its_end_lowers_it_again() {
        let p = thresholds();
        let (mut sh, mut t) = (Shedder::default(), Instant::now());
        let standing = Duration::from_millis(150);
        // One second of standing queue: every one of those waited too long, and nine
        // windows close, each raising the share a step.
        let (refused, _) = run(&mut sh, &mut t, 1000, standing, &p);
        assert_eq!(refused, 1000);
        assert!(sh.share() > 0.85, "{}", sh.share());
        // The queue is gone: the share still refuses most of what comes next (the overload
        // has not gone away because the queue did) and comes down a little per window.
        let (refused, _) = run(&mut sh, &mut t, 100, Duration::from_millis(1), &p);
        assert!((80..=95).contains(&refused), "refused {refused} of 100");
        run(&mut sh, &mut t, 900, Duration::from_millis(1), &p);
        assert!(sh.share() < 0.9 && sh.share() > 0.5, "{}", sh.share());
        run(&mut sh, &mut t, 5000, Duration::from_millis(1), &p);
        assert_eq!(sh.share(), 0.0);
        // And then nothing is refused.
        assert_eq!(
            run(&mut sh, &mut t, 1000, Duration::from_millis(1), &p),
            (0, 0)
        );
    }

    #[test]
    fn the_share_settles_where_the_queue_stops_growing() {
        // A fake core serving 1000 requests/s offered 2000/s: what it admits is queued;
        // the delay is the queue's length over the service rate.
        let p = thresholds();
        let (mut sh, mut t) = (Shedder::default(), Instant::now());
        let mut queue = 0.0f64;
        let mut admitted_last_5s = 0;
        for ms in 0..20_000u32 {
            t += Duration::from_micros(500);
            let delay = Duration::from_secs_f64(queue / 1000.0);
            if sh.decide(t, delay, false, &p) == Shed::Admit {
                queue += 1.0;
                if ms >= 10_000 {
                    admitted_last_5s += 1;
                }
            }
            queue = (queue - 0.5).max(0.0);
        }
        // About the service rate gets in (5 s × 1000/s), the rest is refused.
        assert!(
            (4000..=5600).contains(&admitted_last_5s),
            "{admitted_last_5s}"
        );
    }

    #[test]
    fn an_invite_the_reader_let_in_is_still_refused_if_it_then_waited_too_long_inside() {
        let p = thresholds();
        let mut sh = Shedder::default();
        let t = Instant::now();
        assert_eq!(sh.screened(t, Duration::from_millis(10), &p), Shed::Admit);
        assert_eq!(sh.screened(t, Duration::from_millis(100), &p), Shed::Refuse);
        assert_eq!(sh.screened(t, Duration::from_millis(500), &p), Shed::Drop);
    }

    #[test]
    fn thresholds_refuse_then_drop_over_udp_and_always_answer_over_tcp() {
        let p = thresholds();
        let mut sh = Shedder::default();
        let t = Instant::now();
        assert_eq!(
            sh.decide(t, Duration::from_millis(500), false, &p),
            Shed::Drop
        );
        assert_eq!(
            sh.decide(t, Duration::from_millis(500), true, &p),
            Shed::Refuse
        );
        assert_eq!(
            sh.decide(t, Duration::from_millis(499), false, &p),
            Shed::Refuse
        );
        assert_eq!(
            sh.decide(t, Duration::from_millis(99), false, &p),
            Shed::Admit
        );
    }

    #[tokio::test]
    async fn accepted_work_is_taken_before_new_work() {
        let (inbox, mut q) = Inbox::new(cfg(Protect::default()), Instant::now());
        let src = Target::udp("127.0.0.2:5060".parse().unwrap());
        let at = Instant::now();
        for m in [
            req("INVITE", ""),
            req("BYE", ";tag=t"),
            req("OPTIONS", ""),
            req("ACK", ""),
            req("CANCEL", ""),
        ] {
            inbox.try_deliver(Event::Message {
                msg: m,
                source: src,
                at,
                screened: false,
            });
        }
        let order: Vec<String> = std::iter::from_fn(|| q.try_next())
            .map(|ev| match ev {
                Event::Message {
                    msg: Message::Request(r),
                    ..
                } => r.method().to_string(),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(order, ["BYE", "ACK", "INVITE", "OPTIONS", "CANCEL"]);
    }

    #[tokio::test]
    async fn a_full_fresh_queue_drops_new_work_but_still_takes_accepted_work() {
        let (inbox, mut q) = Inbox::new(cfg(Protect::default()), Instant::now());
        let src = Target::udp("127.0.0.2:5060".parse().unwrap());
        let at = Instant::now();
        for _ in 0..FRESH + 10 {
            inbox.try_deliver(Event::Message {
                msg: req("INVITE", ""),
                source: src,
                at,
                screened: false,
            });
        }
        inbox.try_deliver(Event::Message {
            msg: req("BYE", ";tag=t"),
            source: src,
            at,
            screened: false,
        });
        assert_eq!(inbox.tally.queue_full.load(Ordering::Relaxed), 10);
        assert!(matches!(
            q.try_next(),
            Some(Event::Message { msg: Message::Request(r), .. }) if r.method().to_string() == "BYE"
        ));
    }

    #[tokio::test]
    async fn the_guard_follows_a_reload() {
        let t0 = Instant::now();
        let p = Protect {
            source_rate: Some(10),
            ..Protect::default()
        };
        let (inbox, _q) = Inbox::new(cfg(p.clone()), t0);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!((0..20).filter(|_| inbox.admit(ip, t0)).count(), 10);
        inbox.configure(
            cfg(Protect {
                source_rate: None,
                ..p
            }),
            t0,
        );
        assert!(inbox.admit(ip, t0), "the guard is off");
        let tally = inbox.tally.take();
        assert_eq!(tally.len(), 2, "tripped once, 10 dropped: {tally:?}");
    }
}
