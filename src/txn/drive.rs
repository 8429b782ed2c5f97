//! Driving the machines: every timer fired from one deadline index (each transaction is
//! filed under its earliest deadline), and a machine's outputs turned into the layer's.

use std::collections::BTreeSet;
use std::time::Instant;

use super::machine::{Out, Timer};
use super::{Entry, Machine, TxnId, TxnLayer, TxnOutput, sends};

impl TxnLayer {
    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<TxnOutput>) {
        let _zone = crate::zone::enter(crate::zone::Zone::ShortLived);
        let c = self.consts;
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id));
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            e.filed = None;
            // Fire the entry's earliest due timer; `apply` files it again under what is left,
            // so a second due timer of the same transaction comes round in this loop too.
            let fired = due_slot(&e.timers, now).and_then(|slot| e.timers[slot].take());
            match fired {
                Some((_, timer)) => {
                    let fire = std::panic::AssertUnwindSafe(|| {
                        #[cfg(test)]
                        test_fault::strike();
                        match &mut e.machine {
                            Machine::Client(m) => m.on_timer(timer, &c, &mut scratch),
                            Machine::Server(m) => m.on_timer(timer, &c, &mut scratch),
                        }
                    });
                    if let Err(panic) = std::panic::catch_unwind(fire) {
                        // A machine whose timer panicked (a defect) is ended, whatever its
                        // state (a server's `abandon` ends only a pending one, and its timers
                        // fire later), its user told it timed out: unwound from here, it
                        // stayed filed under no deadline, kept for good and counted against
                        // the layer's bounds. The panic goes on up, to be counted where the
                        // core catches it.
                        scratch.clear();
                        scratch.extend([Out::Timeout, Out::Terminated]);
                        self.apply(id, &mut scratch, now, out);
                        self.scratch = scratch;
                        std::panic::resume_unwind(panic);
                    }
                    // Every send a timer makes repeats one already sent.
                    self.retransmissions.sent += sends(&scratch);
                    self.apply(id, &mut scratch, now, out);
                }
                None => refile(&mut self.deadlines, id, e),
            }
        }
        self.scratch = scratch;
    }

    /// Whether transaction `id` is still kept.
    #[cfg(test)]
    pub(super) fn holds(&self, id: TxnId) -> bool {
        self.entries.contains_key(&id)
    }

    /// Whether client transaction `id` still holds its request's wire form.
    #[cfg(test)]
    pub(super) fn holds_wire(&self, id: TxnId) -> bool {
        matches!(
            self.entries.get(&id),
            Some(Entry {
                machine: Machine::Client(m),
                ..
            }) if m.holds_wire()
        )
    }

    /// The timers a transaction has armed, by slot.
    #[cfg(test)]
    pub(super) fn timers_of(&self, id: TxnId) -> Vec<(Timer, Instant)> {
        self.entries
            .get(&id)
            .map(|e| e.timers.iter().flatten().map(|(at, t)| (*t, *at)).collect())
            .unwrap_or_default()
    }

    /// Turn a machine's outputs into ours: arm and disarm its timers, forget it when it
    /// terminated, and keep the deadline index in step.
    pub(super) fn apply(
        &mut self,
        id: TxnId,
        scratch: &mut Vec<Out>,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) {
        let Some(e) = self.entries.get_mut(&id) else {
            scratch.clear();
            return;
        };
        let target = e.target;
        let mut terminated = false;
        for o in scratch.drain(..) {
            match o {
                Out::Send(wire) => out.push(TxnOutput::Send { id, target, wire }),
                Out::Set(timer, after) => e.timers[timer.slot()] = Some((now + after, timer)),
                Out::Clear(timer) => {
                    if e.timers[timer.slot()].is_some_and(|(_, t)| t == timer) {
                        e.timers[timer.slot()] = None;
                    }
                }
                Out::Request(req) => out.push(TxnOutput::Request {
                    id,
                    req,
                    source: target,
                }),
                Out::Response(resp) => out.push(TxnOutput::Response { id, resp }),
                Out::Ack(ack) => out.push(TxnOutput::Ack {
                    id,
                    ack,
                    source: target,
                }),
                Out::Timeout => out.push(TxnOutput::Timeout { id }),
                Out::TransportError => out.push(TxnOutput::TransportError { id }),
                Out::Terminated => terminated = true,
            }
        }
        // What it holds may have changed (a response kept, a 100 Trying sent and dropped).
        let now_held = if terminated { 0 } else { e.retained() };
        (self.server_retained).recount(e.source_ip(), e.counted, now_held);
        e.counted = now_held;
        if terminated {
            if let Some(f) = e.filed {
                self.deadlines.remove(&(f, id));
            }
            let client = matches!(e.machine, Machine::Client(_));
            if let Some(e) = self.entries.remove(&id) {
                if client {
                    self.client_keys.remove(&e.key);
                    crate::maps::shrink_if_sparse(&mut self.client_keys);
                } else {
                    self.server_keys.remove(&e.key);
                    crate::maps::shrink_if_sparse(&mut self.server_keys);
                }
                crate::maps::shrink_if_sparse(&mut self.entries);
            }
            out.push(TxnOutput::Terminated { id });
        } else {
            refile(&mut self.deadlines, id, e);
        }
    }
}

/// The slot of the earliest timer of `timers` due at `now`.
fn due_slot(timers: &[Option<(Instant, Timer)>; 3], now: Instant) -> Option<usize> {
    timers
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.filter(|(at, _)| *at <= now).map(|(at, _)| (at, i)))
        .min()
        .map(|(_, i)| i)
}

/// File `e` in the index under its earliest deadline (or not at all).
fn refile(index: &mut BTreeSet<(Instant, TxnId)>, id: TxnId, e: &mut Entry) {
    let next = e.next_deadline();
    if next == e.filed {
        return;
    }
    if let Some(f) = e.filed {
        index.remove(&(f, id));
    }
    if let Some(n) = next {
        index.insert((n, id));
    }
    e.filed = next;
}

/// A fault made on purpose: the tests that a timer's panic ends its transaction.
#[cfg(test)]
pub(super) mod test_fault {
    use std::cell::Cell;

    thread_local! {
        static ARMED: Cell<bool> = const { Cell::new(false) };
    }

    /// The next timer fired on this thread panics.
    pub(in crate::txn) fn arm() {
        ARMED.with(|a| a.set(true));
    }

    pub(super) fn strike() {
        if ARMED.with(|a| a.replace(false)) {
            panic!("a test fault");
        }
    }
}
