//! What the service does with each request an application server sends: REQUEST (checked,
//! admitted, placed as a call for the call layer), CANCEL, STATUS and the ACK that stops a
//! RESPONSE's resends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Admitted, Command, Entry, Originate, Output, Phase, Service};
use crate::callback::protocol::{CallbackId, Outbound, Request, State, Verb};
use crate::callback::signature::{Replays, Seen};

impl Service {
    /// A REQUEST; `signed` is its MAC and `ts` when it came signed.
    pub(super) fn on_request(
        &mut self,
        now: Instant,
        src: SocketAddr,
        r: Request,
        signed: Option<([u8; 32], u64)>,
    ) {
        let refuse = |s: &mut Self, reason| {
            s.answer(
                src,
                Verb::Request.as_str(),
                Outbound::Error {
                    id: Some(&r.id),
                    reason,
                },
            )
        };
        // A signed REQUEST seen before gets what it got then, and changes nothing: the AS's
        // own resend of a refused one (our answer was lost), or a capture sent again
        // while its `ts` is still good, from anywhere the allow-list lets in.
        // The replay table's share is per source: an IPv4 address as the kernel has it (an
        // IPv4 AS heard on the IPv6 wildcard is its IPv4 address), an IPv6 /64 (one host
        // picks its addresses from one, and would take a share per address).
        let from = crate::config::net::source_key(src.ip());
        // A resend of a call-back that runs (the same REQUEST from the same IP): placed
        // already, it needs no room, whatever the table's fill (refused `over_rate`, an AS
        // would place it again under a new id).
        let resend = self.is_resend(src, &r);
        if let Some((m, _)) = &signed {
            match self.replays.seen(now, self.wall_s(), m) {
                Some(Seen::Refused(reason)) => return refuse(self, reason),
                Some(Seen::Placed) if !self.entries.contains_key(&r.id) => {
                    return self.drop_datagram("replayed");
                }
                // Placed then: `result=ok` again, even once that call-back has ended (a
                // REQUEST whose call-back ends within a second is resent as quickly when our
                // ACK is lost), from whichever address the allow-list lets in (an AS's NAT
                // pool, its standby taking over): the signature shows the AS wrote it. An
                // unsigned REQUEST cannot be told from a reuse of its id.
                Some(Seen::Placed) if self.entries.get(&r.id).is_some_and(|e| e.request == r) => {
                    // Answered where it came from, but the RESPONSEs stay where they go: a
                    // capture resent from elsewhere (spoofing the AS) must not send them
                    // off where the AS never hears them. A resend of its own from a new port
                    // is signed afresh (`Admitted::Again` follows that port).
                    return self.answer(
                        src,
                        Verb::Request.as_str(),
                        Outbound::Ok {
                            id: &r.id,
                            state: None,
                        },
                    );
                }
                // Remembered already: it needs no room.
                Some(Seen::Placed) => {}
                // What cannot be remembered cannot be taken: dropped unanswered (an answer
                // not remembered could be followed by the same REQUEST placed when there is
                // room again). Before that, the last eighth of the table, or of the
                // source's share of it, answers `over_rate`, and remembers it, so the AS
                // hears that it should slow down.
                None if resend => {}
                None if self.replays.is_full() => {
                    return self.drop_datagram("replay_table_full");
                }
                None if self.replays.is_full_for(from) => {
                    return self.drop_datagram("replay_share_full");
                }
                None if self.replays.len() >= Replays::MAX / 8 * 7
                    || self.replays.held_by(from) >= self.replays.share_for(from) / 8 * 7 =>
                {
                    if let Some((m, ts)) = signed {
                        self.replays
                            .remember(now, (ts, from), m, Seen::Refused("over_rate"));
                    }
                    return refuse(self, "over_rate");
                }
                None => {}
            }
        }
        match self.admit(now, src, &r) {
            Ok(Admitted::Again) => {
                // The RESPONSEs follow the port a resend came from: an unsigned one's, or a
                // signed one's remembered here, so that the same bytes sent again (a capture,
                // spoofing the AS's IP) are a replay and move nothing. One that cannot be
                // remembered (the table full) is answered where it came from, moving
                // nothing.
                match signed {
                    None => self.follow_port(&r.id, src),
                    Some((m, ts)) if !self.replays.is_full_for(from) => {
                        self.replays.remember(now, (ts, from), m, Seen::Placed);
                        self.follow_port(&r.id, src);
                    }
                    Some(_) => {}
                }
                self.answer(
                    src,
                    Verb::Request.as_str(),
                    Outbound::Ok {
                        id: &r.id,
                        state: None,
                    },
                )
            }
            Ok(Admitted::New) => {
                if let Some((m, ts)) = signed {
                    self.replays.remember(now, (ts, from), m, Seen::Placed);
                }
                self.place(now, src, r);
            }
            Err(reason) => {
                if let Some((m, ts)) = signed {
                    self.replays
                        .remember(now, (ts, from), m, Seen::Refused(reason));
                }
                refuse(self, reason);
            }
        }
    }

    /// Whether REQUEST `r` from `src` places a call-back, is one placed already (our ACK was
    /// lost), or is refused (the reason).
    fn admit(
        &mut self,
        now: Instant,
        src: SocketAddr,
        r: &Request,
    ) -> Result<Admitted, &'static str> {
        if self.entries.contains_key(&r.id) {
            // The same REQUEST again from the same place while it runs: our ACK was lost
            // (also while draining: that call-back goes on, and its RESPONSE will come).
            // Anything else with a known id, or any REQUEST for an ended one, is refused.
            return if self.is_resend(src, r) {
                Ok(Admitted::Again)
            } else {
                Err("duplicate_id")
            };
        }
        if self.draining {
            return Err("disabled");
        }
        if !self.routable(&r.user1) || !self.routable(&r.user2) {
            return Err("no_route");
        }
        let cb = &self.cfg.callback;
        let room = if self.active >= cb.max_active {
            Err("too_many_active")
        } else {
            (self.shares).check(now, src.ip(), self.active, cb.max_active, cb.rate.get())
        };
        let room = room.and_then(|()| self.limiter.check().map_err(|_| "over_rate"));
        if let Err(reason) = room {
            // Owed its share while it asks again.
            self.shares.refused(now, src.ip(), reason, self.active);
            return Err(reason);
        }
        Ok(Admitted::New)
    }

    /// Place admitted REQUEST `r`: its ACK, the Originate, its entry and its watchdog.
    fn place(&mut self, now: Instant, src: SocketAddr, r: Request) {
        let cb = &self.cfg.callback;
        let max_duration = r
            .max_duration
            .map(|s| Duration::from_secs(u64::from(s)))
            .map_or(cb.max_duration, |d| d.min(cb.max_duration));
        let originate = Originate {
            id: r.id.clone(),
            user1: r.user1.clone(),
            user2: r.user2.clone(),
            caller: r.caller.clone().or_else(|| cb.caller.clone()),
            max_duration,
            from_peer: cb.from_peer.clone(),
        };
        self.answer_placed(
            src,
            Verb::Request.as_str(),
            Outbound::Ok {
                id: &r.id,
                state: None,
            },
        );
        self.out
            .push_back(Output::Command(Command::Originate(originate)));
        self.active += 1;
        self.shares
            .took(now, src.ip(), self.cfg.callback.rate.get());
        let deadline = now + self.setup_allowance();
        self.watchdog.insert((deadline, r.id.clone()));
        self.entries.insert(
            r.id.clone(),
            Entry {
                src,
                key: self.reply_key,
                request: r,
                max_duration,
                phase: Phase::Active {
                    state: State::Calling1,
                    cancelling: false,
                    connected_at: None,
                    deadline,
                },
            },
        );
    }

    pub(super) fn on_cancel(&mut self, src: SocketAddr, id: CallbackId) {
        let verb = Verb::Cancel.as_str();
        let cancel = match self.entries.get_mut(&id).map(|e| &mut e.phase) {
            None => Err("unknown_id"),
            Some(Phase::Ended { .. }) => Err("ended"),
            Some(Phase::Active { cancelling, .. }) => Ok(!std::mem::replace(cancelling, true)),
        };
        match cancel {
            Err(reason) => self.answer(
                src,
                verb,
                Outbound::Error {
                    id: Some(&id),
                    reason,
                },
            ),
            Ok(first) => {
                self.answer(
                    src,
                    verb,
                    Outbound::Ok {
                        id: &id,
                        state: None,
                    },
                );
                // A repeated CANCEL is answered again but asks the call layer only once.
                if first {
                    self.out.push_back(Output::Command(Command::Cancel { id }));
                }
            }
        }
    }

    pub(super) fn on_status(&mut self, src: SocketAddr, id: CallbackId) {
        let verb = Verb::Status.as_str();
        match self.state(&id) {
            None => self.answer(
                src,
                verb,
                Outbound::Error {
                    id: Some(&id),
                    reason: "unknown_id",
                },
            ),
            Some(state) => self.answer(
                src,
                verb,
                Outbound::Ok {
                    id: &id,
                    state: Some(state),
                },
            ),
        }
    }

    /// A REQUEST resent from another port of its AS (a new socket: our ACK was lost): the
    /// RESPONSE goes where the AS listens now.
    /// Whether `r` from `src` is a call-back of ours that runs, sent again from its IP.
    fn is_resend(&self, src: SocketAddr, r: &Request) -> bool {
        (self.entries.get(&r.id)).is_some_and(|e| {
            matches!(e.phase, Phase::Active { .. }) && e.src.ip() == src.ip() && e.request == *r
        })
    }

    fn follow_port(&mut self, id: &CallbackId, src: SocketAddr) {
        if let Some(e) = self.entries.get_mut(id) {
            e.src = src;
        }
    }

    pub(super) fn on_ack(&mut self, id: CallbackId) {
        let resend = match self.entries.get_mut(&id).map(|e| &mut e.phase) {
            Some(Phase::Ended { resend }) => resend.take(),
            _ => None,
        };
        match resend {
            Some(r) => {
                self.resend.remove(&(r.next_at, id));
                self.count_response("acked");
            }
            // Unknown id, not ended yet, or already acknowledged: nothing to stop.
            None => self.drop_datagram("unexpected_ack"),
        }
    }
}
