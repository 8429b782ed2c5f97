//! A registration client (RFC 3261 §10.2) for one peer: keeps a binding of the gateway's
//! contact at the peer's registrar, refreshing it before it expires, backing off when the
//! registrar refuses or does not answer, and removing it (`Expires: 0`) at shutdown.
//!
//! Sans-IO: the engine calls [`Registration::start`], then drives it with
//! [`Registration::handle_response`], [`Registration::handle_timeout`] (at
//! [`Registration::poll_timeout`]) and [`Registration::handle_failure`] (transaction timeout or
//! transport error), and sends whatever [`Registration::poll_transmit`] yields. One REGISTER is
//! in flight at a time. What a registrar's 2xx grants is read in `granted.rs`; what a
//! registration is made from is in `params.rs`, and what its REGISTERs look like in
//! `request.rs`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::credentials::{AuthSession, Credentials, Retry};
use crate::config::PeerName;
use crate::sip::{Method, Request, Response, Target};
use granted::bounded_secs;

mod granted;
mod outcome;
use outcome::{refuses_us, sent_at};
mod params;
mod removal;
mod request;

use request::hex;

pub use outcome::{
    FIRST_BACKOFF, FIRST_REFUSED_BACKOFF, MAX_BACKOFF, MAX_REFUSED_BACKOFF, MAX_RETRY_AFTER,
    MIN_GRANT, REFRESH_EARLIEST, REFRESH_PERCENT,
};
pub use params::{RegisterParams, RegisterPolicy};
pub use removal::REMOVAL_TRIES;

/// No final response within 64·T1 is a failure even if the transaction layer never says so.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(32);
/// At shutdown, how long a REGISTER still out is waited for before the `Expires: 0` goes
/// anyway: a stop may not wait out a silent registrar's 32 s (a short `drain_s`), and a
/// binding left behind would draw the trunk's calls to a gateway that is gone.
pub const LEAVE_WAIT: Duration = Duration::from_secs(2);
/// Longest expiry we ask for or accept through `423 Min-Expires`: a day, as
/// `[register] expires_s` at most (a dead gateway left registered for longer draws the
/// trunk's calls for too long). Before, a 423 could raise it to a week.
pub const MAX_EXPIRES: Duration = Duration::from_secs(24 * 3600);

/// What a registration ended by a reload passes to the one that replaces it.
#[derive(Debug, Clone, Copy)]
pub struct Handover {
    bound_until: Option<Instant>,
    /// The binding was known to work (its last REGISTER accepted): not a REGISTER still
    /// unanswered, nor one refused.
    up: bool,
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub to: Target,
    pub request: Request,
}

/// What happened, for the log (the metric follows [`Registration::is_up`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegEvent {
    /// The registrar accepted the binding for `expires`; `refresh_in` until we renew it.
    /// `service_route`: its `Service-Route` (RFC 3608), the routes our requests to it take.
    Registered {
        expires: Duration,
        refresh_in: Duration,
        service_route: Box<[Box<str>]>,
    },
    /// An attempt failed; the next one is in `retry_in`. The registration is down.
    Failed { reason: String, retry_in: Duration },
    /// The binding was removed at shutdown (or the removal failed: `ok == false`).
    Unregistered { ok: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Register,
    Unregister,
}

#[derive(Debug, Clone)]
enum State {
    /// Not started.
    Idle,
    /// A REGISTER is out; `deadline` is our own Timer F.
    InFlight {
        sent: Box<Request>,
        op: Op,
        deadline: Instant,
    },
    /// Registered (refresh) or backing off (retry): send again at `at`.
    Waiting { at: Instant },
    /// Unregistered at shutdown, or never registered when shutdown came.
    Done,
}

/// Bounds for the small queues: one REGISTER is in flight at a time, so two outgoing is
/// already one more than ever needed; events are for the log and the oldest may go.
const MAX_OUTBOX: usize = 2;
const MAX_EVENTS: usize = 16;

/// One peer's registration.
#[derive(Debug)]
pub struct Registration {
    params: RegisterParams,
    auth: AuthSession,
    /// ChaCha12, as the call layer's ids (`sip/ids.rs`): its Call-ID, tags and branches go
    /// on the wire, and a generator whose outputs reveal its state would let whoever sees
    /// them predict the next branch (to answer our REGISTER with a forged 200 or 401) and
    /// the cnonces.
    rng: StdRng,
    /// What the call layer's branches are checked with: the registrar's answers name a
    /// branch the edge knows for ours ([`crate::sip::TagKey::our_branch`]).
    branch_key: Option<crate::sip::TagKey>,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The expiry we ask for (raised by `423 Interval Too Brief`).
    expires: Duration,
    /// The REGISTER out was sent at once after a 423: another 423 waits for the back-off.
    raised_423: bool,
    state: State,
    /// Until when the registrar may hold our binding: shutdown removes it while it may.
    bound_until: Option<Instant>,
    /// The last REGISTER failed: the binding may still be held (a refused refresh does not
    /// remove it), but the registration is not working, and says so.
    failing: bool,
    /// Failures in a row since the last success; of them, refusals (their own steps).
    failures: u32,
    refusals: u32,
    /// Shutdown came while a REGISTER was out: its `Expires: 0` goes once that REGISTER
    /// has ended (RFC 3261 §10.2: one REGISTER at a time; sent at once, the removal could
    /// reach the registrar first, and the REGISTER's retransmission bind the contact anew).
    leave_next: bool,
    removal: removal::Removal,
    outbox: VecDeque<Transmit>,
    events: VecDeque<RegEvent>,
    /// Refreshes and back-offs are spread (see [`REFRESH_EARLIEST`]); off in some tests.
    jitter: bool,
}

impl Registration {
    /// A registration that has not started. `seed` seeds its Call-ID, tags, branches and
    /// cnonces: the engine passes 32 bytes of its OS-seeded generator (a 64-bit seed could
    /// be found from one REGISTER's Call-ID by search, and every later value predicted),
    /// tests fixed ones.
    pub fn new(params: RegisterParams, creds: Option<Arc<Credentials>>, seed: [u8; 32]) -> Self {
        let mut rng = StdRng::from_seed(seed);
        let host = params
            .sent_by
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| params.sent_by.clone());
        let call_id = format!("{}@{host}", hex(&mut rng, 20));
        let from_tag = hex(&mut rng, 12);
        let expires = params.expires.min(MAX_EXPIRES);
        Registration {
            params,
            auth: AuthSession::new(creds),
            rng,
            branch_key: None,
            call_id,
            from_tag,
            cseq: 0,
            expires,
            raised_423: false,
            state: State::Idle,
            bound_until: None,
            failing: false,
            failures: 0,
            refusals: 0,
            leave_next: false,
            removal: removal::Removal::default(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            jitter: true,
        }
    }

    /// Refreshes at [`REFRESH_PERCENT`] and back-offs at their full step, for tests that
    /// follow a registration to the second.
    #[cfg(test)]
    pub(crate) fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// Branches checked with `key`, as the call layer's are (the edge drops answers to a
    /// branch it does not know for ours).
    pub fn with_branch_key(mut self, key: crate::sip::TagKey) -> Self {
        self.branch_key = Some(key);
        self
    }

    /// The peer this registration is with.
    pub fn peer(&self) -> &PeerName {
        &self.params.peer
    }

    /// The Call-ID every REGISTER of this registration carries: responses with it are ours.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The contact URI we register (inbound requests to it belong to this peer).
    pub fn contact(&self) -> &str {
        &self.params.contact
    }

    /// Whether the registrar holds our binding and our last REGISTER was accepted
    /// (`trunkgate_registration_up{peer}`).
    pub fn is_up(&self) -> bool {
        self.bound_until.is_some() && !self.failing && !self.is_leaving()
    }

    /// Whether the registration has ended (after [`Registration::shutdown`]).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether its last REGISTER failed (refused, or never answered): its registrar may be
    /// gone, and a removal sent to it may wait out its 32 s.
    pub fn is_failing(&self) -> bool {
        self.failing
    }

    /// Whether it is removing its binding (its `Expires: 0` is out, or waits for the
    /// REGISTER out to end).
    pub fn is_leaving(&self) -> bool {
        self.leave_next
            || matches!(
                self.state,
                State::InFlight {
                    op: Op::Unregister,
                    ..
                }
            )
    }

    /// Whether it has not been started.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Ends it without removing the binding: a registration of the same contact at the same
    /// registrar replaces it (RFC 3261 §10.3: a REGISTER under another Call-ID updates the
    /// binding), and an `Expires: 0` raced against that REGISTER could remove the new one.
    /// Returns what the new registration takes: until when the registrar may hold the
    /// binding, and whether it was known to work.
    pub fn hand_over(&mut self, now: Instant) -> Handover {
        // A REGISTER still out may bind (it is given up: its answer will reach no one; a
        // retransmission sent until now may be the copy that binds), for as long as it
        // asked.
        let out = matches!(
            self.state,
            State::InFlight {
                op: Op::Register,
                ..
            }
        )
        .then(|| later(now, self.expires));
        let up = self.is_up();
        self.state = State::Done;
        Handover {
            bound_until: self.bound_until.take().max(out),
            up,
        }
    }

    /// The binding of the same contact the registration this one replaces may hold: shutdown
    /// removes it even if this one's REGISTERs fail, and it shows up only if the last
    /// REGISTER worked, until this one's first answer says otherwise.
    pub fn take_over(&mut self, from: Handover) {
        if from.bound_until > self.bound_until {
            self.bound_until = from.bound_until;
            self.failing = !from.up;
        }
    }

    /// Sends the first REGISTER.
    pub fn start(&mut self, now: Instant) {
        if matches!(self.state, State::Idle) {
            self.send(now, Op::Register);
        }
    }

    /// Removes the binding (a reload that no longer wants it): `Expires: 0` when we may
    /// hold one, else nothing. With a REGISTER out, once that has ended (its answer says
    /// whether it bound; no answer within 32 s may mean it did): one REGISTER at a time.
    pub fn shutdown(&mut self, now: Instant) {
        self.leave_when_done(now, None);
    }

    /// [`Registration::shutdown`] for a process that stops: a REGISTER out is waited for
    /// [`LEAVE_WAIT`] at most, which the stop has time for.
    pub fn stop(&mut self, now: Instant) {
        self.leave_when_done(now, Some(LEAVE_WAIT));
    }

    fn leave_when_done(&mut self, now: Instant, wait: Option<Duration>) {
        // A reload's removal may be tried again; a stop's goes once.
        self.removal.retries = wait.is_none();
        match self.state {
            State::Done
            | State::InFlight {
                op: Op::Unregister, ..
            } => {}
            State::InFlight {
                op: Op::Register,
                ref mut deadline,
                ..
            } => {
                self.leave_next = true;
                if let Some(w) = wait {
                    *deadline = (*deadline).min(later(now, w));
                }
            }
            _ => self.leave(now, self.bound_until.is_some()),
        }
    }

    /// End without removing the binding (one other instances behind a front share).
    pub fn end_keeping_binding(&mut self) {
        self.state = State::Done;
    }

    /// Remove the binding if one may be held, else end.
    fn leave(&mut self, now: Instant, maybe_bound: bool) {
        self.leave_next = false;
        self.removal.again = false;
        if maybe_bound {
            self.send(now, Op::Unregister);
        } else {
            self.state = State::Done;
        }
    }

    /// Next request to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// Next thing that happened, for the log.
    pub fn poll_event(&mut self) -> Option<RegEvent> {
        self.events.pop_front()
    }

    /// When [`Registration::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let state_at = match &self.state {
            State::InFlight { deadline, .. } => Some(*deadline),
            State::Waiting { at } => Some(*at),
            State::Idle | State::Done => None,
        };
        [state_at, self.bound_until].into_iter().flatten().min()
    }

    /// Time has passed: refresh, retry, give up on a silent registrar, or notice that the
    /// binding expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.bound_until.is_some_and(|t| now >= t) {
            self.bound_until = None;
        }
        match &self.state {
            State::InFlight { deadline, op, .. } if now >= *deadline => {
                let (op, deadline) = (*op, *deadline);
                let reason = "no response from the registrar";
                self.unanswered(now, (op, deadline), reason, true);
            }
            // (A removal tried again goes while the binding may still be held.)
            State::Waiting { at } if now >= *at && self.removal.again => {
                self.leave(now, self.bound_until.is_some())
            }
            State::Waiting { at } if now >= *at => self.send(now, Op::Register),
            _ => {}
        }
    }

    /// The transaction of the REGISTER with CSeq `cseq` ended without a response;
    /// `delivered`: it may have reached the registrar (timed out, or its TCP connection
    /// closed after it was written), else it was not sent. Only the one in flight counts:
    /// an earlier one's end (outliving our own deadline) must not fail the next.
    pub fn handle_failure(&mut self, now: Instant, cseq: u32, reason: &str, delivered: bool) {
        if let State::InFlight { op, deadline, .. } = self.state
            && cseq == self.cseq
        {
            self.unanswered(now, (op, deadline), reason, delivered);
        }
    }

    /// A response arrived. Returns whether it belonged to this registration's REGISTER in
    /// flight (responses to abandoned or other requests are ignored).
    pub fn handle_response(&mut self, now: Instant, resp: &Response) -> bool {
        let State::InFlight {
            sent, op, deadline, ..
        } = &self.state
        else {
            return false;
        };
        let sent_at = sent_at(*deadline, now);
        let (sent, op) = (sent.clone(), *op);
        let ours = resp.call_id().as_deref() == Some(self.call_id.as_str())
            && resp.cseq() == Some((self.cseq, Method::Register));
        if !ours {
            return false;
        }
        let status = resp.status();
        if resp.is_provisional() {
            return true;
        }
        if self.leave_next {
            // Shutdown came while it was out: now that it has its answer, remove what it
            // bound (or what was bound before), and try nothing else (no challenge
            // answered, no 423 raise).
            if resp.is_success() {
                self.registered(now, sent_at, resp);
            }
            self.leave(now, self.bound_until.is_some());
            return true;
        }
        if resp.is_success() {
            match op {
                Op::Unregister => {
                    self.bound_until = None;
                    self.state = State::Done;
                    self.event(RegEvent::Unregistered { ok: true });
                }
                Op::Register => self.registered(now, sent_at, resp),
            }
            return true;
        }
        match status {
            401 | 407 => {
                self.cseq = self.cseq.wrapping_add(1);
                let retry = Retry {
                    cseq: self.cseq,
                    via: self.via(),
                };
                match self.auth.on_challenge(&sent, resp, retry, &mut self.rng) {
                    Ok(req) => self.put_in_flight(now, op, req),
                    Err(e) => self.refused(now, op, format!("{status}: {e}"), None),
                }
            }
            423 if op == Op::Register => self.interval_too_brief(now, resp),
            _ => {
                // Longer than a u32 holds is the longest wait, not none (`fail` caps it).
                let retry_after = resp
                    .retry_after_secs()
                    .and_then(|s| bounded_secs(s.min(u64::from(u32::MAX))));
                let reason = format!("{status} {}", resp.reason());
                match op {
                    Op::Unregister => {
                        let retryable = status == 408 || (500..600).contains(&status);
                        self.removal_failed(now, reason, retry_after, retryable);
                    }
                    Op::Register if refuses_us(status) => {
                        self.refused(now, op, reason, retry_after)
                    }
                    Op::Register => self.fail(now, op, reason, retry_after),
                }
            }
        }
        true
    }

    fn event(&mut self, e: RegEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }
}

/// `now + d`, or a far but representable instant if that overflows.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX_EXPIRES))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests;
