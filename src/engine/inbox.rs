//! What transport tasks hand the core task, in bounded queues, with the per-source guard
//! they check first and the counts of what they dropped.
//!
//! Work already accepted (responses, every request inside one of our dialogs, the ACKs of our
//! refusals: their To tags say so, `sip::TagKey`) goes to the `urgent` queue, which the core
//! task always empties first. New work (a request outside any dialog: an initial INVITE, an
//! OPTIONS), CANCEL (which must not overtake its INVITE), requests naming a dialog we never
//! made and messages that do not parse go to `fresh`, stamped with when the kernel received
//! it. Strangers' requests (`unknown_sources = "reject"`) have a small queue of their own,
//! read last. What becomes of new work
//! that waited too long is `overload`'s decision: capacity is shed at the door instead of
//! every call slowing down until all of them time out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use ipnet::IpNet;
use tokio::sync::mpsc;

use super::Event;
use super::asked::{Asked, window_for};
use super::overload::Overload;
use super::source_guard::{Gate, SourceGuard};
use crate::config::{Config, Protect};
use crate::sip::Message;

mod admission;
mod budget;
mod departed;
mod front_probe;
mod handover;
mod strangers;
mod tally;
use super::byte_budget::SharedBudget;
use departed::Departed;
#[cfg(test)]
use departed::MAX_DEPARTED;
pub(crate) use tally::Tally;

/// Room for accepted work: responses and in-dialog requests are only dropped past this.
const URGENT: usize = 16_384;
/// Room for new requests. A full second of them at our capacity, no more: beyond that a
/// request would wait longer than the overload thresholds anyway.
pub(super) const FRESH: usize = 4_096;
/// Room for strangers' requests (`[protect] unknown_sources = "reject"`: each gets one
/// 403). Their own queue, read after new work: a spray of spoofed sources, each under the
/// per-source rate, must not fill the room peers' INVITEs and CANCELs need.
const STRANGERS: usize = 256;

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

/// The transports' end of the queues, with the source guard they check first.
#[derive(Clone)]
pub(crate) struct Inbox {
    urgent: mpsc::Sender<Event>,
    fresh: mpsc::Sender<Event>,
    strangers: mpsc::Sender<Event>,
    guard: Arc<ArcSwapOption<SourceGuard>>,
    /// One rate for all strangers' responses together (`[protect] source_rate`, its one
    /// key the unspecified address).
    strangers_answers: Arc<ArcSwapOption<SourceGuard>>,
    pub(crate) tally: Arc<Tally>,
    pub(crate) overload: Arc<Overload>,
    /// The running configuration, for the one question a reader asks of it: does a profile
    /// match this source?
    config: Arc<ArcSwap<Config>>,
    /// The old `match` networks of peers reloads removed or re-addressed, kept while calls
    /// begun before those reloads are up: those peers may still open a TCP connection to
    /// end their calls (the core hears only their own dialogs' requests).
    departed: Arc<ArcSwapOption<Departed>>,
    /// Where we sent requests lately: a stranger's response from elsewhere is dropped unread.
    asked: Arc<Asked>,
    /// What our tags are checked with: a request whose To tag is not ours is in no dialog
    /// of ours, and waits with new work. None: not checked (tests of other things).
    tags: Option<crate::sip::TagKey>,
    /// The bytes `urgent` and `fresh` hold.
    urgent_bytes: SharedBudget,
    fresh_bytes: SharedBudget,
    /// The front's own probes let ahead of new work lately (`front_probe`).
    front_probes: Arc<front_probe::FrontProbes>,
}

/// The core task's end.
pub(crate) struct Queues {
    pub urgent: mpsc::Receiver<Event>,
    pub fresh: mpsc::Receiver<Event>,
    pub strangers: mpsc::Receiver<Event>,
    urgent_bytes: SharedBudget,
    fresh_bytes: SharedBudget,
}

impl Queues {
    /// The next event without waiting: accepted work before new work, strangers last.
    pub(crate) fn try_next(&mut self) -> Option<Event> {
        self.try_next_accepted()
            .or_else(|| {
                let ev = self.fresh.try_recv().ok()?;
                self.fresh_bytes.give(budget::size(&ev));
                Some(ev)
            })
            .or_else(|| self.strangers.try_recv().ok())
    }

    /// The next event of accepted work without waiting.
    pub(crate) fn try_next_accepted(&mut self) -> Option<Event> {
        let ev = self.urgent.try_recv().ok()?;
        self.urgent_bytes.give(budget::size(&ev));
        Some(ev)
    }

    /// `ev` was taken off `urgent` (waited for there: the shell's loop).
    pub(crate) fn took_urgent(&self, ev: &Event) {
        self.urgent_bytes.give(budget::size(ev));
    }

    /// `ev` was taken off `fresh` (waited for there: the shell's loop).
    pub(crate) fn took_fresh(&self, ev: &Event) {
        self.fresh_bytes.give(budget::size(ev));
    }
}

impl Inbox {
    pub(crate) fn new(cfg: Arc<Config>, now: Instant) -> (Inbox, Queues) {
        let p = &cfg.protect.clone();
        let (utx, urx) = mpsc::channel(URGENT);
        let (ftx, frx) = mpsc::channel(FRESH);
        let (stx, srx) = mpsc::channel(STRANGERS);
        let urgent_bytes = SharedBudget::new(budget::URGENT_BYTES);
        let fresh_bytes = SharedBudget::new(budget::FRESH_BYTES);
        let inbox = Inbox {
            urgent: utx,
            fresh: ftx,
            strangers: stx,
            guard: Arc::new(ArcSwapOption::new(None)),
            strangers_answers: Arc::new(ArcSwapOption::new(None)),
            tally: Arc::default(),
            overload: Arc::new(Overload::new(p)),
            asked: Arc::new(Asked::new(window_for(&cfg), now)),
            config: Arc::new(ArcSwap::new(cfg)),
            departed: Arc::new(ArcSwapOption::new(None)),
            tags: None,
            urgent_bytes: urgent_bytes.clone(),
            fresh_bytes: fresh_bytes.clone(),
            front_probes: Arc::new(front_probe::FrontProbes::new(now)),
        };
        inbox.configure_protect(p, now);
        (
            inbox,
            Queues {
                urgent: urx,
                fresh: frx,
                strangers: srx,
                urgent_bytes,
                fresh_bytes,
            },
        )
    }

    /// Check the To tag of requests in a dialog with `key`, the key the core's tags are made
    /// with.
    pub(crate) fn checking_tags(mut self, key: crate::sip::TagKey) -> Inbox {
        self.tags = Some(key);
        self
    }

    /// Whether `msg` is a request in a dialog of ours, or the ACK of one of our refusals:
    /// its To tag one of our tags of that kind for its Call-ID. Unknowable (true) when tags
    /// are not checked.
    fn in_our_dialog(&self, msg: &Message) -> bool {
        let (Some(key), Message::Request(r)) = (&self.tags, msg) else {
            return true;
        };
        match (r.to_tag(), r.call_id()) {
            (Some(tag), Some(call_id)) => {
                key.ours(&tag, &call_id)
                    || (r.method() == crate::sip::Method::Ack
                        && key.is(crate::sip::TagKind::Refusal, &tag, &call_id))
            }
            _ => false,
        }
    }

    /// Whether `msg` is a response whose top Via branch is not one we gave (counted): it
    /// answers no request of ours (ours carry a check: `TagKey::our_branch`), whoever sent
    /// it, and is dropped here rather than go ahead of new work (a flood of made-up
    /// responses in a peer's name would otherwise fill the queue of accepted work).
    fn answers_nothing_of_ours(&self, msg: &Message) -> bool {
        let (Some(key), Message::Response(r)) = (&self.tags, msg) else {
            return false;
        };
        let ours = r.top_branch_is(|b| key.our_branch(b));
        if !ours {
            crate::ops::metrics::refused("unknown_branch");
        }
        !ours
    }

    /// Whether `msg`, taken off the queue after `delay`, is a request in no dialog of ours
    /// (nor the ACK of a refusal of ours) to drop unanswered: while overload control sheds
    /// anything (its share is above 0, or this one waited past `overload_delay_ms`), every
    /// such request is, before any INVITE is refused; it takes no turn of the share. The
    /// tag is checked (again: the reader checked it to queue it) only then. Counted. Over a
    /// connection nothing is (`reliable`): its source is not spoofed, its 481 is cheap, and
    /// unanswered its sender, which does not retransmit, would wait 32 s.
    pub(crate) fn drops_as_junk(
        &self,
        msg: &Message,
        delay: std::time::Duration,
        reliable: bool,
    ) -> bool {
        // The cheap test first: most messages are no request with a To tag, and need not
        // take overload control's lock.
        let in_a_dialog = matches!(msg, Message::Request(r)
            if r.to_tag().is_some() && r.method() != crate::sip::Method::Cancel);
        if reliable {
            return false;
        }
        if !in_a_dialog {
            return false;
        }
        let shedding =
            self.overload.share() > 0.0 || delay >= self.config.load().protect.overload_delay;
        if !shedding || self.in_our_dialog(msg) {
            return false;
        }
        self.tally.count_dropped();
        crate::ops::metrics::refused("overload_drop");
        true
    }

    /// Whether a message that does not parse is dropped unanswered: over UDP while overload
    /// control sheds new work (a 400 for junk, perhaps spoofed in a peer's name, is the last
    /// thing to spend on). A connection's is answered: its source is not spoofed, and it
    /// would otherwise wait 32 s for an answer. Counted when dropped.
    pub(crate) fn drops_unparseable(&self, reliable: bool) -> bool {
        if reliable || self.overload.share() <= 0.0 {
            return false;
        }
        self.tally.count_dropped();
        crate::ops::metrics::refused("overload_drop");
        true
    }

    /// Whether new work waits in its queue, unread by the core.
    pub(crate) fn holds_new_work(&self) -> bool {
        self.fresh_bytes.used() > 0
    }

    /// Whether new work from `ip` is decided on by overload control, its wait counted. A
    /// stranger's request gets its 403 (or nothing) whatever the load, and is no measure
    /// of it: it waited in the queue served last, behind everyone's, and a spoofed spray
    /// keeping that queue full would otherwise raise the share refused of the peers' new
    /// calls while refusing it saved nothing.
    pub(crate) fn measures_load(&self, ip: IpAddr) -> bool {
        self.answers_from_peer(ip)
    }

    /// A reloaded configuration.
    pub(crate) fn configure(&self, cfg: Arc<Config>, now: Instant) {
        let old = self.config.load();
        if old.profiles.len() != cfg.profiles.len()
            || cfg.profiles.keys().any(|k| !old.profiles.contains_key(k))
        {
            self.overload.peers_changed();
        }
        self.configure_protect(&cfg.protect, now);
        self.asked.set_window(window_for(&cfg));
        self.config.store(cfg);
    }

    /// Whether a profile of the running configuration matches this source, or it is the old
    /// address of a peer a reload moved while the calls up at that reload last.
    pub(crate) fn knows_source(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let cfg = self.config.load();
        cfg.is_peer_source(ip)
            || cfg.is_front_ip(ip)
            || self
                .departed
                .load()
                .as_ref()
                .is_some_and(|old| old.holds(ip))
    }

    /// Whether a response from `ip` comes from a peer: a profile's `match`, or its
    /// `address` (a carrier may call from one SBC while we call another, outside `match`).
    pub(crate) fn answers_from_peer(&self, ip: IpAddr) -> bool {
        self.knows_source(ip) || self.config.load().is_peer_address(ip)
    }

    /// The slot of the peer whose `match` holds `ip` (else of `ip`), for its fair part of
    /// overload control's share.
    pub(crate) fn fair_slot(&self, ip: IpAddr) -> usize {
        Overload::slot(self.config.load().peer_order_for_source(ip), ip)
    }

    /// The peer a connection from `ip` is of, for its share of what peers' connections may
    /// queue: the profile whose `match` holds it, else the one whose `address` it is.
    pub(crate) fn peer_of(&self, ip: IpAddr) -> Option<crate::config::PeerName> {
        self.config.load().peer_at(ip).cloned()
    }

    /// A reload moved peers whose old sources are `nets` (only those the new configuration
    /// does not know) while the calls numbered below `before` were up: kept, apart from
    /// earlier reloads', while those calls last.
    pub(crate) fn remember_departed(&self, before: crate::call::CallRef, nets: Vec<IpNet>) {
        let kept = self.departed.load().as_deref().cloned().unwrap_or_default();
        self.departed.store(Some(Arc::new(kept.with(before, nets))));
    }

    /// The oldest reload with calls still up is the one whose calls began below `since`
    /// (the core's count; `None`: none): earlier reloads' networks are forgotten. True
    /// when some were.
    pub(crate) fn keep_departed(&self, since: Option<crate::call::CallRef>) -> bool {
        let Some(d) = self.departed.load_full() else {
            return false;
        };
        let Some(kept) = d.keeping(since) else {
            return false;
        };
        self.departed.store(kept.map(Arc::new));
        true
    }

    /// Whether the running configuration's `[metrics] allow` lets `ip` scrape.
    pub(crate) fn metrics_allows(&self, ip: IpAddr) -> bool {
        self.config.load().metrics.allows(ip)
    }

    /// What `[protect] unknown_sources` says to do with strangers.
    pub(crate) fn unknown_sources(&self) -> crate::config::UnknownSources {
        self.config.load().protect.unknown_sources
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
            (self.strangers_answers).store(
                p.source_rate
                    .map(|r| Arc::new(SourceGuard::new(r, Duration::ZERO, now))),
            );
        }
    }

    /// The rate a peer's messages on its connections are read at (`[protect] source_rate`;
    /// None: not paced, the guard off or the front, which carries every peer's traffic).
    pub(crate) fn stream_rate(&self, ip: IpAddr) -> Option<u32> {
        let cfg = self.config.load();
        if cfg.is_front_ip(ip) {
            return None;
        }
        cfg.protect.source_rate.filter(|&r| r > 0)
    }

    /// We sent a request to `ip`: its responses are worth reading for a while.
    pub(crate) fn asked(&self, ip: IpAddr, now: Instant) {
        self.asked.asked(ip, now);
    }

    /// Whether a response from `ip` at `now` would be read.
    pub(crate) fn may_answer(&self, ip: IpAddr, now: Instant) -> bool {
        self.asked.may_answer(ip, now)
    }
}

#[cfg(test)]
use strangers::STRANGER_MAX_BYTES;
pub(crate) use strangers::StrangerSends;

#[cfg(test)]
mod tests;
