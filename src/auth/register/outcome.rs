//! What a REGISTER's end does to the registration: accepted (the binding and its
//! refresh), or failed (down, and the back-off before the next try).

use std::time::{Duration, Instant};

use super::granted::{granted_expiry, lists_ours};
use super::{Op, RegEvent, Registration, State, TRANSACTION_TIMEOUT, later};
use crate::sip::Response;
use rand::Rng;

/// Refresh when this share (in percent) of the granted expiry has passed, at the latest;
/// each refresh is at a share drawn between [`REFRESH_EARLIEST`] and this, so that gateways
/// (or registrations) that registered together do not refresh together for ever.
pub const REFRESH_PERCENT: u32 = 85;
pub const REFRESH_EARLIEST: u32 = 75;
/// First back-off after a failure; doubles with every further failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// The same after the registrar refused us (credentials it took for wrong, a 403, a 404):
/// minutes, not seconds. A carrier's fraud guard counts failed authentications (five in ten
/// minutes is common) and bans the address, and the trunk's calls with it; 10 s steps made
/// eleven in the first five minutes. A reload that changes the peer's `[auth]` or
/// `[register]` registers again at once.
pub const FIRST_REFUSED_BACKOFF: Duration = Duration::from_secs(300);
pub const MAX_REFUSED_BACKOFF: Duration = Duration::from_secs(3600);
/// A `Retry-After` is honoured up to this long (a registrar asking for days is ignored).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// The shortest binding taken: a registrar granting less would have us register every few
/// hundred milliseconds for as long as it does. A shorter grant is a failure (retried with
/// the back-off), with the reason logged.
pub const MIN_GRANT: Duration = Duration::from_secs(10);

impl Registration {
    /// The request in flight (`op`, due by `deadline`) ended without an answer
    /// (`delivered`: it may have reached the registrar, else it could not be sent): a
    /// failure; a REGISTER that may have been delivered may have bound all the same, and a
    /// removal waiting for it goes as for a binding.
    pub(super) fn unanswered(
        &mut self,
        now: Instant,
        (op, deadline): (Op, Instant),
        reason: &str,
        delivered: bool,
    ) {
        if delivered && op == Op::Register {
            self.may_have_bound(sent_at(deadline, now));
        }
        match op {
            Op::Unregister => self.removal_failed(now, reason.to_string(), None, true),
            Op::Register => self.fail(now, op, reason.to_string(), None),
        }
        if self.leave_next {
            // (Unanswered, it may have bound all the same.)
            self.leave(now, true);
        }
    }

    /// A binding of the same contact and address of record was just removed by another
    /// registration (its registrar sharing our location database): register again now. A
    /// REGISTER out is replaced (the removal may have reached the registrar after it). One
    /// backing off after a failure keeps its wait (a `Retry-After` is the registrar's);
    /// one not started, ended or removing its own binding has nothing to restore.
    pub fn rebind(&mut self, now: Instant) {
        let registering = matches!(
            self.state,
            State::InFlight {
                op: Op::Register,
                ..
            }
        );
        let bound = matches!(self.state, State::Waiting { .. })
            && self.bound_until.is_some()
            && !self.failing;
        if (registering || bound) && !self.leave_next {
            self.send(now, Op::Register);
        }
    }

    /// A REGISTER sent at `sent_at` went unanswered: it may have reached the registrar and
    /// bound all the same, for as long as it asked. Shutdown, and a reload that drops it,
    /// then remove that binding (`Expires: 0`); it shows down all the same (failing).
    /// Before, a registrar whose answers were lost kept routing the trunk's calls to a
    /// gateway that had stopped, for up to the expiry asked.
    pub(super) fn may_have_bound(&mut self, sent_at: Instant) {
        let until = later(sent_at, self.expires);
        self.bound_until = self.bound_until.max(Some(until));
    }

    /// The REGISTER sent at `sent_at` was accepted at `now`.
    pub(super) fn registered(&mut self, now: Instant, sent_at: Instant, resp: &Response) {
        if !lists_ours(resp, &self.params.contact) {
            tracing::warn!(
                peer = %self.params.peer,
                contact = %self.params.contact,
                "the registrar's 200 lists no binding of ours: taken as registered, but its calls to us may not come (check the registrar's view of our contact)"
            );
        }
        let granted = granted_expiry(resp, &self.params.contact).unwrap_or(self.expires);
        // A registrar may shorten the expiry, never lengthen it (RFC 3261 §10.3 step 7).
        let granted = granted.min(self.expires);
        if granted < MIN_GRANT {
            // Held that long all the same.
            self.bound_until = Some(later(sent_at, granted));
            let why = format!(
                "the registrar granted {} s, under the {} s the gateway takes",
                granted.as_secs(),
                MIN_GRANT.as_secs()
            );
            self.fail(now, Op::Register, why, None);
            return;
        }
        // (In per mille: a grant of minutes is spread over some 600 steps, not 10.)
        let share = match self.jitter {
            true => self
                .rng
                .random_range(REFRESH_EARLIEST * 10..=REFRESH_PERCENT * 10),
            false => REFRESH_PERCENT * 10,
        };
        let refresh_in = granted * share / 1000;
        self.failures = 0;
        self.refusals = 0;
        self.failing = false;
        self.raised_423 = false;
        self.bound_until = Some(later(sent_at, granted));
        self.state = State::Waiting {
            at: later(sent_at, refresh_in),
        };
        self.event(RegEvent::Registered {
            expires: granted,
            refresh_in,
            service_route: service_route(resp),
        });
    }

    /// A REGISTER failed. The registration is down; a binding we held may stay held until
    /// it expires (a refused refresh does not remove it), so shutdown still removes it.
    /// (A 423 raise stays spent until a success: after the back-off a registrar raising
    /// Min-Expires again waits for the next one.)
    pub(super) fn fail(
        &mut self,
        now: Instant,
        op: Op,
        reason: String,
        retry_after: Option<Duration>,
    ) {
        self.fail_after(now, op, reason, retry_after, false);
    }

    /// A REGISTER the registrar refused ([`refuses_us`], or a challenge the gateway could
    /// not or would no more answer): down, and tried again on the slower steps of
    /// [`FIRST_REFUSED_BACKOFF`]. The challenges seen are forgotten: the next try goes
    /// without credentials and answers the registrar's fresh challenge, one failed
    /// authentication if the password is still wrong, not two (before, the refused nonce
    /// went up front again first).
    pub(super) fn refused(
        &mut self,
        now: Instant,
        op: Op,
        reason: String,
        retry_after: Option<Duration>,
    ) {
        self.auth.forget_challenges();
        self.fail_after(now, op, reason, retry_after, true);
    }

    /// A 423 Interval Too Brief: the REGISTER goes again at once with its `Min-Expires`,
    /// once; a registrar raising it again waits for the back-off. One without a usable
    /// value (none, or past a day) is a failure, the value logged.
    pub(super) fn interval_too_brief(&mut self, now: Instant, resp: &Response) {
        let raw = resp.header(&crate::sip::Hdr::named("Min-Expires"));
        match raw.as_deref().and_then(super::granted::leading_secs) {
            Some(m) if m > self.expires && m <= super::MAX_EXPIRES => {
                self.expires = m;
                if self.raised_423 {
                    let why = format!("423 again (Min-Expires {})", m.as_secs());
                    self.fail(now, Op::Register, why, None);
                } else {
                    self.raised_423 = true;
                    self.send(now, Op::Register);
                }
            }
            _ => {
                let shown: String = (raw.as_deref().unwrap_or("none").chars())
                    .take(40)
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                let why = format!("423 without a usable Min-Expires ({shown})");
                self.fail(now, Op::Register, why, None);
            }
        }
    }

    fn fail_after(
        &mut self,
        now: Instant,
        op: Op,
        reason: String,
        retry_after: Option<Duration>,
        refused: bool,
    ) {
        if op == Op::Unregister {
            self.bound_until = None;
            self.state = State::Done;
            self.event(RegEvent::Unregistered { ok: false });
            return;
        }
        self.failing = true;
        self.failures = self.failures.saturating_add(1);
        // Retry-After is the least wait (RFC 3261 §20.33): never sooner than the back-off.
        // Each back-off is drawn between half and all of its step (RFC 5626 §4.5): the
        // gateways a registrar's outage failed together do not come back together. So is
        // a Retry-After, between all of it and half again: every gateway it was given to
        // would otherwise come back at the same instant, the overload it answered again.
        let (step_share, after_share) = match self.jitter {
            true => (
                self.rng.random_range(0.5..=1.0),
                self.rng.random_range(1.0..=1.5),
            ),
            false => (1.0, 1.0),
        };
        // (Refusals counted apart: one after an outage's timeouts waits its own first step.)
        let step = match refused {
            true => {
                self.refusals = self.refusals.saturating_add(1);
                refused_backoff(self.refusals)
            }
            false => backoff(self.failures),
        };
        let step = step.mul_f64(step_share);
        let retry_in = match retry_after.map(|r| r.min(MAX_RETRY_AFTER)) {
            Some(r) if r > step => r.mul_f64(after_share),
            _ => step,
        };
        self.state = State::Waiting {
            at: later(now, retry_in),
        };
        self.event(RegEvent::Failed { reason, retry_in });
    }
}

/// 10 s, 20 s, 40 s, … up to 10 min.
pub(super) fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(1u32 << shift).min(MAX_BACKOFF)
}

/// 5 min, 10 min, 20 min, 40 min, then every hour.
fn refused_backoff(refusals: u32) -> Duration {
    let shift = refusals.saturating_sub(1).min(16);
    FIRST_REFUSED_BACKOFF
        .saturating_mul(1u32 << shift)
        .min(MAX_REFUSED_BACKOFF)
}

/// Whether a REGISTER's final `status` refuses us rather than failing for now: a 4xx but
/// a timeout (408), an interval (423), a rate (429) or an unavailable registrar (480), and
/// a 6xx. A 5xx and no answer are the registrar's trouble, retried sooner.
pub(super) fn refuses_us(status: u16) -> bool {
    matches!(status, 400..=499 if !matches!(status, 408 | 423 | 429 | 480))
        || (600..700).contains(&status)
}

/// When the REGISTER in flight with `deadline` was sent: the registrar's clock for its
/// binding started then at the latest (one answered only on a retransmission, late, must not
/// be refreshed late; one unanswered may be bound until then plus what it asked).
pub(super) fn sent_at(deadline: Instant, now: Instant) -> Instant {
    deadline
        .checked_sub(TRANSACTION_TIMEOUT)
        .unwrap_or(now)
        .min(now)
}

/// After its TCP connection closed, a registered binding is renewed within this (drawn
/// from a second up to it): soon, but the registrations on a registrar that restarted do
/// not all come back in the same instant.
pub const RECONNECT_WITHIN: Duration = Duration::from_secs(5);

impl Registration {
    /// Its TCP connection closed while it was registered (the registrar closed it, or it
    /// broke): a registrar that reaches the gateway over it (behind NAT) can reach it no
    /// more until the next REGISTER, which goes within [`RECONNECT_WITHIN`] of `from` (now,
    /// or later when its caller spaces such renewals) on a new connection, not at its
    /// refresh time. When it moved the REGISTER so, the instant it goes.
    pub fn connection_closed(&mut self, from: Instant) -> Option<Instant> {
        let State::Waiting { at } = self.state else {
            return None;
        };
        if !self.is_up() {
            return None;
        }
        let wait = match self.jitter {
            true => Duration::from_millis(self.rng.random_range(1000..=5000)),
            false => RECONNECT_WITHIN,
        };
        let soon = later(from, wait);
        (soon < at).then(|| {
            self.state = State::Waiting { at: soon };
            soon
        })
    }
}

/// The most `Service-Route` entries taken, and the longest: an IMS registrar names one or
/// two proxies; more is not a route the gateway will preload on every INVITE.
const MAX_SERVICE_ROUTES: usize = 8;
const MAX_SERVICE_ROUTE_LEN: usize = 512;

/// The `Service-Route` of a REGISTER's 2xx (RFC 3608 §6), in order: the routes the
/// registrar's network wants the gateway's requests to it to take (an IMS S-CSCF), preloaded
/// as `Route` on its calls' INVITEs. None when it names more, or longer ones, than taken, or
/// one that is not a `<sip:…>` or `<sips:…>` URI with `lr` (a strict router is not preloaded).
fn service_route(resp: &Response) -> Box<[Box<str>]> {
    let lines = resp.header_lines(&crate::sip::Hdr::named("Service-Route"));
    let entries: Vec<String> = (lines.iter())
        .flat_map(|l| crate::sip::split_header_list(l))
        .map(|e| e.trim().to_string())
        .collect();
    // `<sip:…;lr>`: `lr` a parameter of the URI itself, inside the brackets (one after
    // them is the header's, and the next hop would take the route for a strict router's).
    let usable = |e: &String| {
        let uri = (e.strip_prefix('<'))
            .and_then(|rest| rest.split_once('>'))
            .map(|(uri, _)| uri.to_ascii_lowercase());
        let loose = uri.as_deref().is_some_and(|u| {
            (u.starts_with("sip:") || u.starts_with("sips:"))
                && u.split(';')
                    .skip(1)
                    .any(|p| p == "lr" || p.starts_with("lr="))
        });
        e.len() <= MAX_SERVICE_ROUTE_LEN && loose && !e.chars().any(|c| c.is_control())
    };
    if entries.len() > MAX_SERVICE_ROUTES || !entries.iter().all(usable) {
        tracing::warn!(
            entries = entries.len(),
            "the registrar's Service-Route is not taken (too many entries, too long, or not loose-routing SIP URIs)"
        );
        return Box::default();
    }
    entries.into_iter().map(String::into_boxed_str).collect()
}
