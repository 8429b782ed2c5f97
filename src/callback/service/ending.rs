//! How call-backs end: the call layer's progress and end reports, the RESPONSE to the AS
//! and its resends, the watchdog for ends never reported, and forgetting ended ids.

use std::time::{Duration, Instant};

use super::{
    Command, End, Entry, LINGER, MAX_ENDED, MAX_QUEUED, MAX_TRIES, Output, Phase, QUEUE_FULL_WAIT,
    Resend, Service, T1, WATCHDOG_GRACE, call_tag_token,
};
use crate::callback::metrics;
use crate::callback::protocol::{CallbackId, Outbound, Outcome, State};
use crate::cdr::CallTag;
use crate::interop::causes::Q850Cause;

impl Service {
    /// The call layer's progress: `Calling2` once user1 answered, `Connected` once user2
    /// did. Only forward steps count; anything for an unknown or ended id is ignored.
    pub fn on_progress(&mut self, now: Instant, id: &CallbackId, next: State) {
        if next == State::Ended {
            return;
        }
        let allowance = self.setup_allowance();
        let Some(Entry {
            phase:
                Phase::Active {
                    state,
                    connected_at,
                    deadline,
                    ..
                },
            max_duration,
            ..
        }) = self.entries.get_mut(id)
        else {
            return;
        };
        if next <= *state {
            return;
        }
        *state = next;
        if next == State::Calling2 {
            // user1 answered: user2's leg has its own allowance from now.
            self.watchdog.remove(&(*deadline, id.clone()));
            *deadline = now + allowance;
            self.watchdog.insert((*deadline, id.clone()));
        }
        if next == State::Connected {
            *connected_at = Some(now);
            // Connected: the call layer ends it at max_duration at the latest.
            self.watchdog.remove(&(*deadline, id.clone()));
            *deadline = now + *max_duration + WATCHDOG_GRACE;
            self.watchdog.insert((*deadline, id.clone()));
        }
    }

    /// The call-back ended (the call layer reports this exactly once per `Originate`):
    /// sends the RESPONSE and keeps resending it until the AS acknowledges it.
    pub fn on_ended(&mut self, now: Instant, id: &CallbackId, end: End) {
        self.last = self.last.max(now);
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        let Phase::Active { deadline, .. } = entry.phase else {
            return;
        };
        self.watchdog.remove(&(deadline, id.clone()));
        let tag = call_tag_token(end.call_tag);
        let bytes = Outbound::Response {
            id,
            outcome: end.outcome,
            duration_s: end.duration.as_secs(),
            call_tag: &tag,
            cause: end.cause.0,
        }
        .encode();
        let (to, key) = (entry.src, entry.key);
        // To a source let in only because anyone may send, unsigned (`allow` 0.0.0.0/0 or
        // ::/0, no `secret_file`), sent once: its address may be forged, and seven sends of
        // a RESPONSE to a victim for one small REQUEST would make the service the largest
        // reflector it has (some 15 times the bytes). Such an AS learns of a lost one by
        // `STATUS` (`state=ended`).
        let once = self.cfg.callback.open_only_to(to.ip()) && self.cfg.callback.keys.is_none();
        // A full send queue (a burst of ends in one turn) would drop it: sent a moment
        // later instead, the try not counted (before, it counted, and past some 7,000 ends
        // at once RESPONSEs were given up unsent; sent once, lost outright).
        let room = self.queued < MAX_QUEUED;
        let (tries, next_at) = if room {
            (1, now + T1)
        } else {
            (0, now + QUEUE_FULL_WAIT)
        };
        entry.phase = Phase::Ended {
            resend: (!once || !room).then(|| Resend {
                bytes: bytes.clone(),
                tries,
                once,
                next_at,
                // (Doubled at each send: the first resend T1 after the first send.)
                interval: if room { T1 } else { T1 / 2 },
            }),
        };
        self.active = self.active.saturating_sub(1);
        self.shares.ended(to.ip());
        if once && room {
            self.count_response("sent_once");
        } else {
            self.resend.insert((next_at, id.clone()));
        }
        self.ended.push_back((now + LINGER, id.clone()));
        let result = end.outcome.as_str();
        *self.stats.ended.entry(result).or_default() += 1;
        ::metrics::counter!(metrics::RESULTS, "result" => result).increment(1);
        if room {
            self.transmit(to, bytes, key);
        }
        while self.ended.len() > MAX_ENDED {
            self.forget_oldest(true);
        }
    }

    /// Resend due RESPONSEs, give up on those tried `MAX_TRIES` times, forget old ids.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last = self.last.max(now);
        // Each pass either removes a due item or moves it past `now`: bounded by their number.
        for _ in 0..self.resend.len() {
            let Some((at, id)) = self.resend.first().cloned() else {
                break;
            };
            if at > now {
                break;
            }
            self.resend.remove(&(at, id.clone()));
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            let (to, key) = (entry.src, entry.key);
            let Phase::Ended { resend: slot } = &mut entry.phase else {
                continue;
            };
            let Some(r) = slot else {
                continue;
            };
            if r.tries >= MAX_TRIES {
                *slot = None;
                self.count_response("given_up");
                continue;
            }
            // A reload took the AS off `allow`: its ACK would be dropped at the socket, so
            // resends would only be given up after a minute (and hold a drain that long).
            if !self.cfg.callback.allows(to.ip()) {
                *slot = None;
                self.count_response("not_allowed");
                continue;
            }
            if self.queued >= MAX_QUEUED {
                r.next_at = now + QUEUE_FULL_WAIT;
                self.resend.insert((r.next_at, id));
                continue;
            }
            r.tries += 1;
            r.interval = r.interval.saturating_mul(2);
            r.next_at = now + r.interval;
            let bytes = r.bytes.clone();
            if r.once {
                *slot = None;
                self.count_response("sent_once");
            } else {
                self.resend.insert((r.next_at, id));
            }
            self.transmit(to, bytes, key);
        }
        while self.ended.front().is_some_and(|(at, _)| *at <= now) {
            self.forget_oldest(false);
        }
        // Each pass ends one active call-back (removing its deadline): bounded by max_active.
        for _ in 0..self.watchdog.len() {
            match self.watchdog.first() {
                Some((at, id)) if *at <= now => {
                    let id = id.clone();
                    self.expire(now, &id);
                }
                _ => break,
            }
        }
    }

    /// The call layer never reported this call-back's end: ask it to release whatever is
    /// left, and tell the AS (as a gateway failure) so its slot is free again.
    fn expire(&mut self, now: Instant, id: &CallbackId) {
        let Some(Entry {
            phase:
                Phase::Active {
                    state,
                    connected_at,
                    deadline,
                    ..
                },
            ..
        }) = self.entries.get(id)
        else {
            return;
        };
        let (state, connected_at, deadline) = (*state, *connected_at, *deadline);
        self.watchdog.remove(&(deadline, id.clone()));
        tracing::warn!(callback_id = %id, state = state.as_str(), "call-back never reported its end: released");
        self.stats.expired += 1;
        // Asked again even after a CANCEL: the watchdog is for a call layer that lost the
        // first ask; it does nothing for a call it no longer has.
        self.out
            .push_back(Output::Command(Command::Cancel { id: id.clone() }));
        let outcome = match state {
            State::Calling1 | State::Ended => Outcome::User1Failed,
            State::Calling2 => Outcome::User2Failed,
            State::Connected => Outcome::Connected,
        };
        self.on_ended(
            now,
            id,
            End {
                outcome,
                duration: connected_at.map_or(Duration::ZERO, |c| now.saturating_duration_since(c)),
                call_tag: CallTag::GatewayError,
                cause: Q850Cause::TIMER_EXPIRY,
            },
        );
    }

    fn forget_oldest(&mut self, evicted: bool) {
        let Some((_, id)) = self.ended.pop_front() else {
            return;
        };
        if let Some(Entry {
            phase: Phase::Ended { resend },
            ..
        }) = self.entries.remove(&id)
            && let Some(r) = resend
        {
            self.resend.remove(&(r.next_at, id));
            if evicted {
                self.count_response("evicted");
            }
        }
    }
}
