//! Overload control: what becomes of new work (a request outside any dialog) that waited
//! too long, decided from how long it waited since the kernel received it. Shared by the UDP
//! readers, which refuse new INVITEs before parsing them, and the core task, which decides
//! for everything else (see `inbox` for the queues it watches).

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::Protect;

/// Which queue a request waited in, as far as its wait tells: a UDP reader sees only the
/// wait in its listener's socket buffer (`Reader(listener)`), the core a UDP request's
/// whole wait since the kernel took it (`CoreUdp`) or a TCP one's since it was read
/// (`CoreTcp`). Each has its own count of how long its queue has stood: a queue that keeps
/// up (a quiet listener, a TCP peer) must not hide another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Reader(usize),
    CoreUdp,
    CoreTcp,
}

/// Queues counted apart: the core's two and this many listeners' (more share counts).
const QUEUES: usize = 8;

impl Stage {
    fn queue(self) -> usize {
        match self {
            Stage::CoreUdp => 0,
            Stage::CoreTcp => 1,
            Stage::Reader(l) => 2 + l % (QUEUES - 2),
        }
    }
}

mod fair;
mod shedder;
pub(crate) use shedder::{Shed, Shedder};

/// Slots of the table of INVITE transactions handed to the core lately (8 bytes each).
const RECENT: usize = 1 << 17;

/// Slots [`Overload::release_if_idle`] sweeps for stale entries a call (once a second):
/// the whole table in 32 s.
const SWEEP: usize = RECENT / 32;

/// Slots of a set: a key may sit in any of its set's, and a new one takes the oldest. An
/// INVITE is forgotten only when [`WAYS`] later ones fall in its set, not the first one:
/// at 2,500 INVITEs a second, a direct-mapped table forgot about one in fifty within the
/// second its retransmission may take, and that retransmission could then be refused with
/// a 503 while the core went on with its call.
const WAYS: usize = 4;

/// The low 16 bits of a slot: bit 0 set when in use, bits 1–15 the 64 ms it was written
/// in (modulo 32,768: some 35 minutes, longer than any entry stays), to find a set's
/// oldest; bit 16 [`REFUSED`]; the key is the other 47 bits.
const STAMP_BITS: u64 = 0xFFFF;
/// Set in a slot whose INVITE a reader refused (its 503 sent), rather than let through:
/// its retransmissions get the same 503, whatever the queue is like by then.
const REFUSED: u64 = 1 << 16;
/// A slot's key.
const KEY_BITS: u64 = !(STAMP_BITS | REFUSED);
/// The stamp's 15 bits.
const STAMP_MASK: u64 = 0x7FFF;
/// What one step of the stamp is.
const STAMP_MS: u64 = 64;

/// How long after the last INVITE was remembered the table is dropped: twice Timer B (at
/// the default T1), after which no retransmission of any INVITE in it can still come.
const RECENT_IDLE: Duration = Duration::from_secs(64);

/// The table itself: 1 MiB, and a burst of INVITEs writes all over it, so the process keeps
/// it resident for good unless it is dropped when idle.
struct Recent(Box<[AtomicU64]>);

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
    /// it in its transaction); and those refused here, whose retransmissions are refused
    /// again (one transaction, one answer: RFC 3261 §8.2.7). A table of sets of [`WAYS`]
    /// slots; an INVITE whose slot a set's later ones all took is judged like a new one if
    /// it comes again. Made by the first INVITE remembered, dropped by
    /// [`Overload::release_if_idle`].
    recent: arc_swap::ArcSwapOption<Recent>,
    /// When an INVITE was last remembered, in milliseconds since `epoch`.
    last_remembered: AtomicU64,
    /// Where the next sweep for stale entries starts ([`Overload::release_if_idle`]).
    swept: std::sync::atomic::AtomicUsize,
    epoch: Instant,
    hasher: foldhash::fast::RandomState,
}

impl Overload {
    pub(crate) fn new(p: &Protect) -> Overload {
        Overload {
            state: std::sync::Mutex::new((Shedder::default(), p.clone())),
            tag: format!("ov-{:016x}", rand::random::<u64>()),
            recent: arc_swap::ArcSwapOption::empty(),
            last_remembered: AtomicU64::new(0),
            swept: std::sync::atomic::AtomicUsize::new(0),
            epoch: Instant::now(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub(crate) fn configure(&self, p: &Protect) {
        crate::threads::lock(&self.state).1 = p.clone();
    }

    /// A reload added, removed or renamed profiles: each peer's slot is its place in name
    /// order ([`Overload::slot`]), so the slots' smoothed counts now belong to other peers
    /// (a storm's would be cut from its neighbour for a few windows); they start afresh.
    pub(crate) fn peers_changed(&self) {
        crate::threads::lock(&self.state).0.forget_peers();
    }

    /// See [`Shedder::decide`]; `slot`: the request's peer's ([`Overload::slot`]).
    pub(crate) fn decide(
        &self,
        now: Instant,
        waited: (Duration, Stage),
        (reliable, slot): (bool, usize),
    ) -> Shed {
        let mut st = crate::threads::lock(&self.state);
        let (shedder, p) = &mut *st;
        shedder.decide(now, waited, (reliable, slot), p)
    }

    /// The fair-shedding slot of a request from the peer at `peer` in name order
    /// ([`crate::config::Config::peer_order_for_source`]): its own, for the first
    /// [`fair::PEER_SLOTS`] profiles (more share, by their place); or from `ip` when no
    /// profile matches it (the front's address, a departed peer's), among the slots kept
    /// for addresses, by a hash the same in every run (FNV-1a). (Only peers' requests are
    /// decided on: a stranger cannot pick an address to land in a peer's.)
    pub(crate) fn slot(peer: Option<usize>, ip: IpAddr) -> usize {
        let fnv = |bytes: &[u8]| {
            (bytes.iter()).fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
        };
        let addresses = (fair::SLOTS - fair::PEER_SLOTS) as u64;
        match (peer, ip.to_canonical()) {
            (Some(n), _) => n % fair::PEER_SLOTS,
            (None, IpAddr::V4(v4)) => fair::PEER_SLOTS + (fnv(&v4.octets()) % addresses) as usize,
            (None, IpAddr::V6(v6)) => fair::PEER_SLOTS + (fnv(&v6.octets()) % addresses) as usize,
        }
    }

    /// See [`Shedder::screened`].
    pub(crate) fn screened(&self, now: Instant, delay: Duration) -> Shed {
        let mut st = crate::threads::lock(&self.state);
        let (shedder, p) = &mut *st;
        shedder.screened(now, delay, p)
    }

    /// See [`Shedder::decay_idle`]: the engine asks once a second, unless new work waits
    /// in its queue (no quiet, however long since the last decision).
    pub(crate) fn decay_idle(&self, now: Instant) {
        let mut st = crate::threads::lock(&self.state);
        let (shedder, p) = &mut *st;
        shedder.decay_idle(now, p);
    }

    pub(crate) fn share(&self) -> f64 {
        crate::threads::lock(&self.state).0.share()
    }

    /// The standing queue delay of the last window (what the share follows).
    pub(crate) fn standing_delay(&self) -> Duration {
        crate::threads::lock(&self.state).0.last_min
    }

    /// The key of an INVITE transaction for [`Overload::seen`] (never 0): its source, branch,
    /// Call-ID and CSeq. A new INVITE that reuses a remembered branch (a peer's, or one
    /// spoofed in its name) is not taken for a retransmission: once the core's transaction
    /// is gone it would be a new call let past the shedder.
    pub(crate) fn invite_key(
        &self,
        ip: IpAddr,
        branch: &[u8],
        head: &crate::sip::fast::Head<'_>,
    ) -> u64 {
        self.key_of(ip, branch, head.request_id())
    }

    /// The key [`Overload::invite_key`] gave the INVITE a CANCEL (`head`, `branch`) cancels.
    pub(crate) fn cancelled_invite_key(
        &self,
        ip: IpAddr,
        branch: &[u8],
        head: &crate::sip::fast::Head<'_>,
    ) -> Option<u64> {
        let (via, call_id, _) = head.request_id();
        let cseq = head.cancelled_cseq()?;
        Some(self.key_of(ip, branch, (via, call_id, &cseq[..])))
    }

    fn key_of(&self, ip: IpAddr, branch: &[u8], id: (&[u8], &[u8], &[u8])) -> u64 {
        self.hasher.hash_one((ip, branch, id)) | 1
    }

    /// A key's set of slots in `t` (indexed by the bits that are not the stamp's).
    fn set(t: &Recent, key: u64) -> &[AtomicU64] {
        let at = ((key >> 16) as usize) % (RECENT / WAYS) * WAYS;
        &t.0[at..at + WAYS]
    }

    /// Whether a slot holds `key` (whatever its stamp).
    fn holds(slot: &AtomicU64, key: u64) -> bool {
        let v = slot.load(Ordering::Relaxed);
        v != 0 && v & KEY_BITS == key & KEY_BITS
    }

    /// `Some(true)` when `key`'s INVITE was refused here lately, `Some(false)` when it was
    /// let through, `None` when it is not remembered, or was [`RECENT_IDLE`] or more before
    /// `now`: no retransmission comes that late, and a replay (a peer's, or one spoofed in
    /// its name) of an INVITE let through long ago must not pass the shedder as one.
    pub(crate) fn refused_here(&self, key: u64, now: Instant) -> Option<bool> {
        let t = self.recent.load();
        let v = (Self::set(t.as_ref()?, key).iter())
            .find(|s| Self::holds(s, key))?
            .load(Ordering::Relaxed);
        if Self::stale(self.stamp(now), v) {
            return None;
        }
        Some(v & REFUSED != 0)
    }

    /// Whether slot value `v` was written [`RECENT_IDLE`] or more before the stamp `now`.
    /// Stamps wrap every ~35 minutes: the sweep clears every entry long before it could read
    /// young again. One that reads as from the future (written by a reader whose clock was
    /// read after `now`) is young.
    fn stale(now: u64, v: u64) -> bool {
        let age = Self::age(now, v);
        age <= STAMP_MASK / 2 && Duration::from_millis(age * STAMP_MS) >= RECENT_IDLE
    }

    /// How many stamps before `now` slot value `v` was written (modulo the stamp's wrap).
    fn age(now: u64, v: u64) -> u64 {
        now.wrapping_sub((v >> 1) & STAMP_MASK) & STAMP_MASK
    }

    /// The 64 ms `now` falls in, as a slot stamps it.
    fn stamp(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_millis() as u64 / STAMP_MS) & STAMP_MASK
    }

    /// `key`'s INVITE was let through to the core.
    pub(crate) fn remember(&self, key: u64, now: Instant) {
        self.note(key, now, 0);
    }

    /// `key`'s INVITE was refused here (its 503 sent).
    pub(crate) fn remember_refused(&self, key: u64, now: Instant) {
        self.note(key, now, REFUSED);
    }

    fn note(&self, key: u64, now: Instant, refused: u64) {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.last_remembered.store(ms, Ordering::Relaxed);
        let mut table = self.recent.load_full();
        if table.is_none() {
            let made = Some(Arc::new(Recent(
                (0..RECENT).map(|_| AtomicU64::new(0)).collect(),
            )));
            // Another reader may have made one first: then that one is used.
            let prev = self
                .recent
                .compare_and_swap(&None::<Arc<Recent>>, made.clone());
            table = if prev.is_none() {
                made
            } else {
                (*prev).clone()
            };
        }
        if let Some(t) = table {
            let stamp = self.stamp(now);
            let entry = key & KEY_BITS | refused | stamp << 1 | 1;
            let set = Self::set(&t, key);
            // Its own slot if it has one, else an empty one, else the set's oldest.
            let age = |v: u64| {
                if v == 0 {
                    u64::MAX
                } else {
                    Self::age(stamp, v)
                }
            };
            // An INVITE let through is worth more than a refusal: a refusal takes an empty
            // slot or the oldest refusal's, never one let through (spoofed in a peer's
            // name, refusals would push out the INVITEs whose retransmissions must reach
            // the core), and one let through takes an empty slot, then a refusal's. A stale
            // entry (past the 64 s it is read for, not yet swept) is an empty slot: before,
            // a set of stale let-throughs took no refusal at a carrier's steady load.
            let rank = |v: u64| match v {
                0 => 2,
                v if Self::stale(stamp, v) => 2,
                v if v & REFUSED != 0 => 1,
                _ => 0,
            };
            let slot = (set.iter().find(|s| Self::holds(s, key))).or_else(|| {
                set.iter()
                    .filter(|s| refused == 0 || rank(s.load(Ordering::Relaxed)) > 0)
                    .max_by_key(|s| {
                        let v = s.load(Ordering::Relaxed);
                        (rank(v), age(v))
                    })
            });
            if let Some(s) = slot {
                s.store(entry, Ordering::Relaxed);
            }
        }
    }

    /// Drop the table once no INVITE has been remembered for [`RECENT_IDLE`]: every
    /// entry is stale then, and the allocator can give its pages back. The engine calls
    /// this once a second.
    /// Each call also clears the stale entries of a part of the table ([`SWEEP`] slots),
    /// so every entry is gone within `RECENT_IDLE` and 32 s of being written: on a busy
    /// gateway the table is never idle, and an entry left for the ~35 minutes its stamp
    /// takes to wrap would read young again (a replay of an INVITE let in then would pass
    /// the shedder as a retransmission).
    pub(crate) fn release_if_idle(&self, now: Instant) {
        let last = self.epoch + Duration::from_millis(self.last_remembered.load(Ordering::Relaxed));
        if now.saturating_duration_since(last) >= RECENT_IDLE && self.recent.load().is_some() {
            self.recent.store(None);
        }
        let Some(t) = self.recent.load_full() else {
            return;
        };
        let from = self.swept.fetch_add(SWEEP, Ordering::Relaxed) % RECENT;
        let stamp = self.stamp(now);
        for slot in &t.0[from..from + SWEEP] {
            let v = slot.load(Ordering::Relaxed);
            if v != 0 && Self::stale(stamp, v) {
                // (Written again meanwhile: kept.)
                let _ = slot.compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }
}

/// A queue that stood `ms` milliseconds from `from`: a request a millisecond, each after
/// 200 ms of waiting (tests). The instant after the last.
#[cfg(test)]
impl Overload {
    /// Whether `key`'s INVITE is in the table, let through or refused here, however long ago.
    pub(crate) fn seen(&self, key: u64) -> bool {
        (self.recent.load().as_ref())
            .is_some_and(|t| Self::set(t, key).iter().any(|s| Self::holds(s, key)))
    }

    /// The queue has drained: nothing stands, nothing is refused by share.
    pub(crate) fn drained(&self) {
        crate::threads::lock(&self.state).0 = Shedder::default();
    }

    pub(crate) fn stand_for(&self, from: Instant, ms: u64) -> Instant {
        for i in 0..ms {
            self.decide(
                from + Duration::from_millis(i),
                (Duration::from_millis(200), Stage::CoreUdp),
                (false, Self::slot(None, IpAddr::from([127, 0, 0, 2]))),
            );
        }
        from + Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests;
