//! Handing events to the core's queues: which queue each goes to, and what is dropped
//! (counted) when a queue has no room, in events or in bytes.

use tokio::sync::mpsc;

use super::super::Event;
use super::super::byte_budget::SharedBudget;
use super::{Inbox, Tally, budget, is_cancel, is_new_work};
use crate::sip::Message;

impl Inbox {
    /// Hand over a stranger's message without waiting: a response to a request we sent it
    /// (an address a Contact named, a peer's old one) with accepted work; a request
    /// (`unknown_sources = "reject"`) on the strangers' own queue, read last. False when it
    /// was dropped.
    pub(crate) fn try_deliver_stranger(&self, ev: Event) -> bool {
        if matches!(&ev, Event::Message { msg, .. } if self.answers_nothing_of_ours(msg)) {
            return true;
        }
        self.send_now(self.stranger_queue(&ev), ev).is_ok()
    }

    /// A stranger's request (`reject` mode) waits on the strangers' queue, read last; its
    /// response, which carries our branch (one that does not is dropped before), answers
    /// a request of ours as a peer's does, and is served first as a peer's is (a carrier's
    /// second SBC answering our BYE from outside every `match`): before, it waited with new
    /// work, and was dropped with it in an overload. (Unchecked, where no key checks
    /// branches, it waits with new work.)
    fn stranger_queue(&self, ev: &Event) -> &mpsc::Sender<Event> {
        let request = matches!(
            ev,
            Event::Message {
                msg: Message::Request(_),
                ..
            } | Event::Unparseable { .. }
        );
        if request {
            &self.strangers
        } else if self.tags.is_some() {
            &self.urgent
        } else {
            &self.fresh
        }
    }

    /// Whether [`Inbox::try_deliver_stranger`] would queue `ev` now: `None` when it would
    /// drop it unqueued (a response answering nothing of ours), else whether its queue has
    /// room (counted when not). Asked before a stranger's connection is made known to the
    /// core (a `TcpUp` with accepted work, and a `TcpDown` after), so a message that would
    /// be dropped costs accepted work nothing.
    pub(crate) fn stranger_room(&self, ev: &Event) -> Option<bool> {
        if matches!(ev, Event::Message { msg, .. } if self.answers_nothing_of_ours(msg)) {
            return None;
        }
        let queue = self.stranger_queue(ev);
        // (The core's queues count their room in bytes too: tried, and given back.)
        let size = budget::size(ev);
        let budget = self.bytes_of(queue);
        let bytes = budget.is_none_or(|b| b.take(size));
        if let Some(b) = budget.filter(|_| bytes) {
            b.give(size);
        }
        let room = bytes && queue.capacity() > 0;
        if !room {
            self.count_queue_full();
        }
        Some(room)
    }

    pub(super) fn queue_for(&self, ev: &Event) -> &mpsc::Sender<Event> {
        match ev {
            // The front's own probe: accepted work (`front_probe`).
            Event::Message { msg, source, .. } if self.fronts_probe(msg, *source) => &self.urgent,
            // A CANCEL queues behind the INVITE it cancels: overtaking it, it would find
            // nothing to cancel and the call would start anyway.
            Event::Message { msg, .. } if is_new_work(msg) || is_cancel(msg) => &self.fresh,
            // A request whose To tag is not one of ours is in no dialog of ours (a BYE or
            // an INFO with made-up tags, spoofed in a peer's name): it waits with new work,
            // never ahead of what a call needs, and the core answers it 481.
            Event::Message {
                msg: msg @ Message::Request(_),
                ..
            } if !self.in_our_dialog(msg) => &self.fresh,
            // What does not parse is nobody's accepted work (and anyone can spoof a peer's
            // address): it waits with new work, and is shed first (`drops_unparseable`).
            Event::Unparseable { .. } => &self.fresh,
            _ => &self.urgent,
        }
    }

    /// Hand over without waiting (UDP): a full queue drops the event, counted. False when
    /// it was dropped.
    pub(crate) fn try_deliver(&self, ev: Event) -> bool {
        self.offer(ev).is_ok()
    }

    /// Hand over without waiting; a full queue gives the event back (counted), so the caller
    /// can refuse it itself. A CANCEL that finds new work full is dropped with it: over UDP
    /// its sender sends it again (Timer E), and put with accepted work it could overtake its
    /// INVITE still waiting with new work, find nothing to cancel (481) and end, while the
    /// INVITE, handled after it, rang on.
    pub(crate) fn offer(&self, ev: Event) -> Result<(), Box<Event>> {
        if matches!(&ev, Event::Message { msg, .. } if self.answers_nothing_of_ours(msg)) {
            return Ok(());
        }
        self.send_now(self.queue_for(&ev), ev)
    }

    /// Put `ev` on `queue` without waiting; a full (or closed) queue gives it back, counted.
    fn send_now(&self, queue: &mpsc::Sender<Event>, ev: Event) -> Result<(), Box<Event>> {
        self.try_put(queue, ev).map_err(|e| {
            self.count_queue_full();
            Box::new((*e).into_inner())
        })
    }

    /// The bytes `queue` may hold, for the core's two (the strangers' is bounded by count).
    fn bytes_of(&self, queue: &mpsc::Sender<Event>) -> Option<&SharedBudget> {
        if std::ptr::eq(queue, &self.urgent) {
            Some(&self.urgent_bytes)
        } else if std::ptr::eq(queue, &self.fresh) {
            Some(&self.fresh_bytes)
        } else {
            None
        }
    }

    /// Put `ev` on `queue` if it has room, in events and, for the core's two, in bytes.
    fn try_put(
        &self,
        queue: &mpsc::Sender<Event>,
        ev: Event,
    ) -> Result<(), Box<mpsc::error::TrySendError<Event>>> {
        let budget = self.bytes_of(queue);
        let size = budget::size(&ev);
        if budget.is_some_and(|b| !b.take(size)) {
            return Err(Box::new(mpsc::error::TrySendError::Full(ev)));
        }
        queue.try_send(ev).map_err(|e| {
            if let Some(b) = budget {
                b.give(size)
            }
            Box::new(e)
        })
    }

    /// Hand over what came on a connection: accepted work waits for room (the peer is slowed
    /// down, nothing is lost); what goes with new work never waits (see below). False when
    /// the core task is gone.
    pub(crate) async fn deliver(&self, ev: Event) -> bool {
        if matches!(&ev, Event::Message { msg, .. } if self.answers_nothing_of_ours(msg)) {
            return true;
        }
        let queue = self.queue_for(&ev);
        if !std::ptr::eq(queue, &self.fresh) {
            return self.send_urgent(ev).await;
        }
        // What goes with new work never waits for room there: what follows it on the
        // connection (a BYE, the answers to our requests) would wait too. With new work
        // full, a CANCEL goes with accepted work (if it overtakes its INVITE it gets its
        // 481, and the caller ends that call once it is answered, RFC 3261 §9.1); a
        // request in no dialog of ours (an ACK of our overload 503 among them) is dropped,
        // counted: all it would get is a 481, or nothing.
        let cancel = matches!(&ev, Event::Message { msg, .. } if is_cancel(msg));
        match self.try_put(&self.fresh, ev).map_err(|e| *e) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(ev)) if cancel => self.send_urgent(ev).await,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.count_queue_full();
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Put a connection's `ev` on the urgent queue, waiting for room in events, then in
    /// bytes ([`budget::URGENT_CONNECTION_BYTES`]: its peer is slowed down by the wait,
    /// nothing is lost). The charge and the send at once: a task ended while it waits
    /// leaves nothing charged.
    async fn send_urgent(&self, ev: Event) -> bool {
        let Ok(permit) = self.urgent.reserve().await else {
            return false;
        };
        let size = budget::size(&ev);
        let mut pause = std::time::Duration::from_millis(1);
        while !(self.urgent_bytes).take_up_to(size, budget::URGENT_CONNECTION_BYTES) {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
        permit.send(ev);
        true
    }

    pub(super) fn count_queue_full(&self) {
        Tally::bump(&self.tally.queue_full);
        crate::ops::metrics::refused("queue_full");
    }

    pub(crate) fn count_oversize(&self) {
        Tally::bump(&self.tally.oversize);
        crate::ops::metrics::refused("too_large");
    }

    pub(crate) fn count_unparseable(&self) {
        Tally::bump(&self.tally.unparseable);
    }
}
