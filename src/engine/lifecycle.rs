//! Where the process is in its life, and how it stops: SIGTERM or SIGINT drains (new calls
//! refused while calls end by themselves), then hangs up what is left and gives the BYEs
//! time to be answered; a repeated signal skips ahead.

use std::time::{Duration, Instant};

use anyhow::Context;
use tracing::info;

use super::Shell;
use crate::call::Input;

/// A second stop signal closer than this to the one before is the same request.
const SIGNAL_REPEAT: Duration = Duration::from_secs(1);
/// After SIGTERM and the drain period, how long BYEs get to be answered (after the last
/// call was hung up).
const HANGUP_GRACE: Duration = Duration::from_secs(4);
/// Calls hung up in one turn at the drain's end at most: their BYEs (one a leg) fit a TCP
/// connection's writer queue (1,024 messages), and the turn is short. Fewer when a
/// connection's queue has less room (a trunk reading slowly): each BYE over TCP is sent
/// once, and one dropped to a full queue leaves its call up at the peer, billed.
const HANGUP_BATCH: usize = 400;
/// The pause between two such turns: the connections' writers and the CDR writer run.
const HANGUP_PAUSE: Duration = Duration::from_millis(5);
/// How long the hang-up waits for room for the next turn, in the CDR queue for its records
/// and in the TCP connections' queues for its BYEs; past it (a writer stuck on its disk, a
/// peer reading nothing) the rest are hung up at once, their CDRs to the log when the
/// queue is full. (A healthy writer makes room at each sync, a peer as it reads, well
/// within it; counted in the stop's budget, `config::process`.)
const ROOM_WAIT: Duration = Duration::from_secs(2);
/// How long a stop waits for the TCP connections' queues to be written out.
const TCP_FLUSH: Duration = Duration::from_secs(1);

/// The signals the process answers: SIGHUP reloads, SIGTERM and SIGINT stop.
pub struct Signals {
    pub(super) hup: tokio::signal::unix::Signal,
    pub(super) term: tokio::signal::unix::Signal,
    pub(super) int: tokio::signal::unix::Signal,
}

/// SIGHUP watched from the start of `trunkgate run`, before the configuration is read:
/// unwatched, one then (a reload asked while a slow start reads its files) would end the
/// process; watched, it is a reload once the gateway runs. SIGTERM and SIGINT are watched
/// only after the load ([`Signals::watch`]): a start hung on a file (a stalled NFS mount)
/// still ends on them at once. But for process 1 (a container's entry point), which the
/// kernel gives no signal it does not watch: watched from the start too, so a `docker stop`
/// during the load stops the gateway as soon as it runs, rather than being lost.
pub struct Hangup {
    hup: tokio::signal::unix::Signal,
    early_stop: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Hangup {
    /// Must be called inside the runtime (`Runtime::enter`).
    pub fn watch() -> anyhow::Result<Hangup> {
        use tokio::signal::unix::{SignalKind, signal};
        let early_stop = if std::process::id() == 1 {
            Some(stop_signals()?)
        } else {
            None
        };
        Ok(Hangup {
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
            early_stop,
        })
    }
}

/// SIGTERM and SIGINT, watched.
fn stop_signals() -> anyhow::Result<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok((
        signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
        signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
    ))
}

impl Signals {
    /// `hup` and the stop signals, watched before anything is bound or the pid file
    /// written (a SIGTERM after that, unwatched, would leave the pid file behind). Must be
    /// called inside the runtime.
    pub fn watch(hup: Hangup) -> anyhow::Result<Signals> {
        let (term, int) = match hup.early_stop {
            Some(watched) => watched,
            None => stop_signals()?,
        };
        Ok(Signals {
            hup: hup.hup,
            term,
            int,
        })
    }
}

/// How many calls the next turn hangs up (`usize::MAX`: all that are left), or none yet, at
/// `now` for turns that `began` then and last went at `since`, with `cdr_room` records free
/// in the CDR queue and `tcp_room` messages on the fullest TCP connection. The connections
/// pace the turns for [`ROOM_WAIT`] at most, however slowly they make room: a trunk
/// reading a few KB a second would otherwise hold the stop past what stops the process (the
/// calls not hung up by then get no CDR). The CDR queue's room, which keeps each call's
/// record, paces them to the end, but for a writer that takes nothing for [`ROOM_WAIT`].
fn turn_size(
    now: Instant,
    (began, since): (Instant, Instant),
    (cdr_room, tcp_room): (usize, usize),
) -> Option<usize> {
    let tcp_room = if now < began + ROOM_WAIT {
        tcp_room / 2
    } else {
        usize::MAX
    };
    let room = (cdr_room.min(HANGUP_BATCH)).min(tcp_room);
    if room > 0 {
        Some(room)
    } else if now >= since + ROOM_WAIT {
        Some(usize::MAX)
    } else {
        None
    }
}

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lifecycle {
    Running,
    /// SIGTERM: new calls are refused; calls may end by themselves until `until`.
    Draining {
        until: Instant,
    },
    /// The rest are hung up, a turn at a time until `next` is None (`next`: when the next
    /// turn goes; `since`: when the last one did; `began`: when the first did); the
    /// process stops at `stop_at` (or when the last call ends). `hurried` (a third
    /// signal): it stops once the last turn went, not waiting for the BYEs' answers.
    HangingUp {
        stop_at: Instant,
        next: Option<Instant>,
        since: Instant,
        began: Instant,
        hurried: bool,
    },
}

impl Lifecycle {
    /// A stop signal while hanging up (the third): the turns go on, each call's CDR and
    /// BYEs paced by the room for them, but the stop waits for no answer once they are
    /// done. (Before, every call left was hung up in one turn: past the CDR queue's room
    /// their records went to a bounded log queue or were lost, their BYEs past a TCP
    /// connection's queue dropped.)
    fn hurried(self, now: Instant) -> Lifecycle {
        match self {
            Lifecycle::HangingUp {
                stop_at,
                next,
                since,
                began,
                ..
            } => Lifecycle::HangingUp {
                stop_at: if next.is_some() { stop_at } else { now },
                next,
                since,
                began,
                hurried: true,
            },
            other => other,
        }
    }

    /// After a turn at `now` (`more`: calls are left for another; `since`: when a turn last
    /// hung some up).
    fn after_turn(self, now: Instant, more: bool, since: Instant) -> Lifecycle {
        let (began, hurried) = match self {
            Lifecycle::HangingUp { began, hurried, .. } => (began, hurried),
            _ => (now, false),
        };
        Lifecycle::HangingUp {
            stop_at: if hurried && !more {
                now
            } else {
                now + HANGUP_GRACE
            },
            next: more.then(|| now + HANGUP_PAUSE),
            since,
            began,
            hurried,
        }
    }

    pub(super) fn deadline(self) -> Option<Instant> {
        match self {
            Lifecycle::Running => None,
            Lifecycle::Draining { until } => Some(until),
            Lifecycle::HangingUp { stop_at, next, .. } => {
                Some(next.map_or(stop_at, |n| n.min(stop_at)))
            }
        }
    }
}

impl Shell {
    /// Move the drain along; true when it is time to stop.
    pub(super) fn lifecycle_step(&mut self, now: Instant) -> bool {
        let calls = self.core.calls_held();
        // Calls, unregistrations waiting for their answer, and call-back RESPONSEs waiting
        // for the AS's ACK (resent at 0.5, 1, 2 s…: a stop that left at once would leave a
        // lost one lost). The drain's end and the hang-up grace bound the wait.
        let callback_busy = self.callback.as_ref().is_some_and(|c| c.awaiting_acks());
        let busy = self.core.busy() || callback_busy;
        match self.lifecycle {
            Lifecycle::Running => false,
            Lifecycle::Draining { until } if !busy || now >= until => {
                let next = (calls > 0).then(|| {
                    info!(calls, "drain period over: hanging up the remaining calls");
                    now
                });
                self.lifecycle = Lifecycle::HangingUp {
                    stop_at: now + HANGUP_GRACE,
                    next,
                    since: now,
                    began: now,
                    hurried: false,
                };
                self.hang_up_turn(now);
                self.lifecycle_done()
            }
            Lifecycle::Draining { .. } => false,
            Lifecycle::HangingUp { stop_at, next, .. } if now >= stop_at => {
                // Stopping (the grace is over with no turn in it, a stall): calls not hung
                // up yet are hung up at once, so that each has its CDR.
                if next.is_some() {
                    self.core.handle_input(now, Input::HangUpAll);
                    self.perform(now);
                }
                true
            }
            Lifecycle::HangingUp { next, .. } => {
                if next.is_some_and(|n| now >= n) {
                    self.hang_up_turn(now);
                }
                self.lifecycle_done()
            }
        }
    }

    /// What the last turns put on TCP connections (a stop's last BYEs, answers) is written
    /// before the process ends, for up to [`TCP_FLUSH`]: the runtime drops the writers'
    /// tasks as they are. Before, a stop that hung up its calls at once (a third signal)
    /// sent those BYEs over UDP but not over TCP, and the calls stayed up at the peers.
    pub(super) async fn flush_tcp(&self) {
        let until = tokio::time::Instant::now() + TCP_FLUSH;
        while !self.tcp.all_written() && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Whether nothing is left to wait for: every call hung up and gone, no answer awaited.
    fn lifecycle_done(&self) -> bool {
        let hanging_up = matches!(self.lifecycle, Lifecycle::HangingUp { next: Some(_), .. });
        !hanging_up
            && !self.core.busy()
            && !self.callback.as_ref().is_some_and(|c| c.awaiting_acks())
    }

    /// One turn of the hang-up: as many calls as the CDR queue takes the records of and
    /// the TCP connections' queues the BYEs of (two a call, on the fullest), up to
    /// [`HANGUP_BATCH`]; none while there is no room, for up to [`ROOM_WAIT`], then all
    /// the rest. The grace for the BYEs' answers runs from the last turn.
    fn hang_up_turn(&mut self, now: Instant) {
        let Lifecycle::HangingUp {
            next: Some(_),
            since,
            began,
            ..
        } = self.lifecycle
        else {
            return;
        };
        // (A recorded call's CDR, held until its recording is finished, takes room too.)
        let cdr_room = (self.cdr.room()).saturating_sub(self.held_cdrs.len());
        let rooms = (cdr_room, self.tcp.least_room());
        let (more, since) = match turn_size(now, (began, since), rooms) {
            Some(n) => (self.core.hang_up_some(now, n), now),
            None => (true, since),
        };
        // Given up (its turns kept panicking: a defect): calls still up end with the
        // process, with no BYE and no CDR, which the exit must not hide.
        let left = self.core.active_calls();
        if !more && left > 0 && self.core.hang_up_gave_up() {
            tracing::error!(
                calls = left,
                "the stop's hang-up gave up (a defect, see the faults logged): these calls end with the process, without BYE or CDR"
            );
            self.cdr.count_never_made(left);
        }
        self.perform(now);
        self.lifecycle = self.lifecycle.after_turn(now, more, since);
    }

    /// SIGTERM or SIGINT: the first starts the drain; a second, during it, hangs up the
    /// calls still up at once (an operator who cannot wait); a third stops without waiting
    /// for the answers to those BYEs (the turns that hang them up still paced by the CDR
    /// queue's room). Every call has its CDR whichever way it ends.
    pub(super) fn on_stop_signal(&mut self) {
        let now = self.clock();
        if !new_stop_request(&mut self.last_stop_signal, now) {
            return;
        }
        match self.lifecycle {
            Lifecycle::Running => self.start_drain(),
            Lifecycle::Draining { .. } => {
                info!("stop signal again: hanging up the remaining calls now");
                self.lifecycle = Lifecycle::Draining { until: now };
            }
            Lifecycle::HangingUp { .. } => {
                info!("stop signal again: stopping without waiting for the BYEs' answers");
                self.lifecycle = self.lifecycle.hurried(now);
            }
        }
    }

    fn start_drain(&mut self) {
        let now = self.clock();
        self.core.handle_input(now, Input::Drain);
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(cb) = self.callback.as_mut() {
            cb.drain();
        }
        let drain = self.core.config().drain;
        info!(
            calls = self.core.active_calls(),
            drain_s = drain.as_secs(),
            "shutting down: refusing new calls, waiting for calls to end"
        );
        self.lifecycle = Lifecycle::Draining { until: now + drain };
    }
}

/// Whether a stop signal at `now` is a new request, given when the last one acted on came
/// (updated when it is). One keypress can arrive twice (SIGINT to the process group, SIGTERM
/// from a wrapper passing it on): a repeat within a second of the last one acted on is the
/// same request. Counted from the one acted on, not the last received, so an operator
/// pressing Ctrl-C every half second still moves the stop along.
fn new_stop_request(last_acted: &mut Option<Instant>, now: Instant) -> bool {
    if last_acted.is_some_and(|t| now.saturating_duration_since(t) < SIGNAL_REPEAT) {
        return false;
    }
    *last_acted = Some(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_every_600_ms_act_every_second_or_so() {
        let t0 = Instant::now();
        let mut last = None;
        let acted: Vec<u64> = (0..6)
            .map(|i| t0 + Duration::from_millis(600 * i))
            .filter(|&t| new_stop_request(&mut last, t))
            .map(|t| (t - t0).as_millis() as u64)
            .collect();
        // Before, each ignored repeat restarted the second and only the first acted.
        assert_eq!(acted, vec![0, 1200, 2400]);
    }

    /// A third signal while turns are left stops once they are done, not at once (when every
    /// call left was hung up in one turn, past the CDR queue's room); with none left, at once.
    #[test]
    fn a_third_signal_waits_for_the_turns_not_for_the_answers() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let hanging = Lifecycle::HangingUp {
            stop_at: at(4_000),
            next: Some(at(5)),
            since: t0,
            began: t0,
            hurried: false,
        };
        let hurried = hanging.hurried(at(1));
        assert_eq!(hurried.deadline(), Some(at(5)), "the next turn, not a stop");
        let more = hurried.after_turn(at(5), true, at(5));
        assert_eq!(more.deadline(), Some(at(10)));
        let last = more.after_turn(at(10), false, at(10));
        assert_eq!(
            last.deadline(),
            Some(at(10)),
            "the last turn done: no grace"
        );
        // Unhurried, the last turn is followed by the grace for the BYEs' answers.
        let graced = hanging.after_turn(at(10), false, at(10));
        assert_eq!(graced.deadline(), Some(at(10) + HANGUP_GRACE));
        // Hurried with no turn left: at once.
        assert_eq!(graced.hurried(at(20)).deadline(), Some(at(20)));
    }

    /// A TCP connection with little room left (a trunk reading slowly) makes the turns
    /// smaller, two BYEs a call, and none while it has none; before, each turn took 400
    /// calls whatever the connection held, and BYEs past its queue were dropped. Past
    /// [`ROOM_WAIT`] from the first turn the connections pace nothing more; the CDR queue's
    /// room paces to the end, but for a writer taking nothing for [`ROOM_WAIT`].
    #[test]
    fn the_turns_are_paced_by_the_fullest_connection_for_a_while_and_by_the_cdr_queue() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let free = usize::MAX;
        assert_eq!(turn_size(t0, (t0, t0), (10_000, free)), Some(HANGUP_BATCH));
        assert_eq!(turn_size(t0, (t0, t0), (10_000, 100)), Some(50));
        assert_eq!(turn_size(at(5), (t0, t0), (10_000, 1)), None);
        assert_eq!(turn_size(at(1_999), (t0, t0), (10_000, 0)), None);
        // (A stall of the connections alone is not the CDR writer's.)
        assert_eq!(
            turn_size(at(2_000), (t0, at(1_000)), (10_000, 0)),
            Some(HANGUP_BATCH)
        );
        assert_eq!(turn_size(at(2_500), (t0, at(2_400)), (7, 0)), Some(7));
        assert_eq!(turn_size(at(2_500), (t0, at(2_400)), (0, free)), None);
        assert_eq!(
            turn_size(at(4_400), (t0, at(2_400)), (0, free)),
            Some(usize::MAX)
        );
    }
}
