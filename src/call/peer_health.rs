//! Peers pinged outside any call (`[sip] ping_s`): an OPTIONS to the peer's address every
//! `ping_s`. After `ping_failures` in a row that go unanswered (or are answered 408 or 503,
//! or cannot be sent) the peer is down: routes pass it over, and a call whose every peer is
//! down gets 503 at once, until a ping is answered again. Without this, a trunk gone
//! silent costs every call its INVITE timeout before the route's next peer is tried.
//!
//! A call's INVITE to a pinged peer that gets no answer at all has the peer pinged at once:
//! the next calls learn within a round trip whether it was the peer or that INVITE. It
//! counts as a failed ping too, but never as the one that takes the peer down (a carrier
//! that drops an INVITE to a barred number in silence is there), and once between two
//! pings' outcomes (a burst of calls timing out together is one failure).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use foldhash::HashMap;
use tracing::{debug, error, info, warn};

use super::cx::Env;
use crate::config::{Config, PeerName, Ping};
use crate::sip::{Hdr, Method, NewRequest, Request, Response, SipError, Target, Transport};
use crate::txn::TxnId;

/// Over how long the first pings of peers pinged anew together (at start, or a reload that
/// adds many) are spread, each peer's at most its own interval: 2,000 trunks pinged in one
/// burst, and resent in step, could overflow a socket's send buffer every interval.
const FIRST_SPREAD: Duration = Duration::from_secs(5);
/// ... in steps of this: pings due together go in one turn of the core (fewer wake-ups).
const SPREAD_STEP: Duration = Duration::from_millis(100);

/// The longest a ping waits for its answer (less when pings are more frequent): a
/// non-INVITE transaction's own limit, Timer F (64·T1).
const PING_DEADLINE: Duration = Duration::from_secs(32);

/// One pinged peer.
#[derive(Debug)]
struct Watch {
    /// Where its pings go: its `address`.
    target: Target,
    /// The host of its pings' Request-URI: its `domain` (as its INVITEs have it).
    domain: String,
    ping: Ping,
    /// It takes calls. Until its first ping's outcome it does: a gateway just started
    /// routes as it would without pings.
    up: bool,
    /// Pings in a row that failed.
    failures: u8,
    /// When the next ping goes.
    next: Instant,
    /// The ping out: its transaction and the moment it is given up on.
    out: Option<(TxnId, Instant)>,
    /// A call's INVITE went unanswered since the last ping's outcome (counted already).
    missed: bool,
    /// Its place in [`PeerHealth::schedule`]: `next`, or the ping out's deadline.
    wake: Instant,
}

impl Watch {
    /// When it next has work: its ping out's deadline, else its next ping.
    fn wake(&self) -> Instant {
        self.out.map_or(self.next, |(_, deadline)| deadline)
    }
}

/// What the pings found of one peer, at one address (put back after a failed reload).
#[derive(Debug, Clone)]
pub struct Verdict {
    peer: PeerName,
    at: Target,
    up: bool,
    failures: u8,
}

/// The health taken out of its `Env` while pings are sent with that `Env`, put back when
/// dropped: also when a defect unwinds (the fault guard catches it), else every peer would
/// be taken for up, unpinged, until the next reload.
struct Taken<'a> {
    env: &'a mut Env,
    h: PeerHealth,
}

impl<'a> Taken<'a> {
    fn from(env: &'a mut Env) -> Self {
        let h = std::mem::take(&mut env.health);
        Taken { env, h }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        // A defect unwound part way: a watch changed may not be where the schedule has it.
        if std::thread::panicking() {
            self.h.reschedule_all();
        }
        self.env.health = std::mem::take(&mut self.h);
    }
}

/// Every pinged peer, and the pings out.
#[derive(Debug, Default)]
pub struct PeerHealth {
    watches: HashMap<PeerName, Watch>,
    txns: HashMap<TxnId, PeerName>,
    /// Every watch by when it next has work: the core asks for the earliest after every
    /// event, and each answer, send or deadline moves one watch, with thousands pinged.
    schedule: BTreeSet<(Instant, PeerName)>,
}

impl PeerHealth {
    /// `peer` is pinged and has not answered: no call goes to it.
    pub fn is_down(&self, peer: &PeerName) -> bool {
        self.watches.get(peer).is_some_and(|w| !w.up)
    }

    /// Each pinged peer and whether it takes calls (`trunkgate_peer_up{peer}`).
    pub fn states(&self) -> Vec<(PeerName, bool)> {
        (self.watches.iter())
            .map(|(name, w)| (name.clone(), w.up))
            .collect()
    }

    /// Whether `id` is a ping's transaction.
    pub fn owns(&self, id: TxnId) -> bool {
        self.txns.contains_key(&id)
    }

    /// When [`PeerHealth::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.schedule.first().map(|(at, _)| *at)
    }

    /// Move `name` in the schedule after a change to its watch.
    fn reschedule(&mut self, name: &PeerName) {
        let Some(w) = self.watches.get_mut(name) else {
            return;
        };
        let wake = w.wake();
        if wake != w.wake {
            self.schedule.remove(&(w.wake, name.clone()));
            w.wake = wake;
        }
        self.schedule.insert((wake, name.clone()));
    }

    /// The schedule anew from the watches (after a reload).
    fn reschedule_all(&mut self) {
        self.schedule = (self.watches.iter_mut())
            .map(|(name, w)| {
                w.wake = w.wake();
                (w.wake, name.clone())
            })
            .collect();
    }

    /// Ping the peers `cfg` asks for (after a reload: a peer still pinged at the same
    /// address keeps its state; a new one, or one re-addressed, starts up and is pinged at
    /// once, several such spread over [`FIRST_SPREAD`]; one no longer pinged is forgotten,
    /// its ping out given up).
    pub fn configure(env: &mut Env, cfg: &Config, now: Instant) {
        let _zone = process_zone();
        let mut t = Taken::from(env);
        let Taken { env, h } = &mut t;
        let mut old = std::mem::take(&mut h.watches);
        let kept = |p: &crate::config::Profile| {
            (old.get(&p.name)).is_some_and(|w| same_address(&w.target, &p.address))
        };
        let new_ones = (cfg.profiles.values())
            .filter(|p| p.ping.is_some() && !kept(p))
            .count();
        let new_ones = u32::try_from(new_ones).unwrap_or(u32::MAX).max(1);
        let mut nth: u32 = 0;
        // Kept peers whose next ping is further off than their new interval (a reload that
        // made pings more frequent): brought forward spread over that interval, as their
        // first pings were. All set to `now + every` they went in one burst, and stayed in
        // step ever after (the next is set from the send).
        let late = |p: &crate::config::Profile| {
            (p.ping.zip(old.get(&p.name)))
                .is_some_and(|(ping, w)| kept(p) && w.next > now + ping.every)
        };
        let late_ones = cfg.profiles.values().filter(|p| late(p)).count();
        let late_ones = u32::try_from(late_ones).unwrap_or(u32::MAX).max(1);
        let mut kth: u32 = 0;
        for p in cfg.profiles.values() {
            let Some(ping) = p.ping else { continue };
            let kept = old
                .remove(&p.name)
                .filter(|w| same_address(&w.target, &p.address));
            let watch = match kept {
                Some(mut w) => {
                    // Sooner when pings became more frequent (a ping out too: the next goes
                    // once it is answered or given up); never later than asked.
                    if w.next > now + ping.every {
                        let offset = (ping.every * kth) / late_ones;
                        let steps = offset.as_millis() / SPREAD_STEP.as_millis();
                        w.next = now + SPREAD_STEP * u32::try_from(steps).unwrap_or(0);
                        kth = kth.saturating_add(1);
                    }
                    w.ping = ping;
                    w.domain.clone_from(&p.domain);
                    w
                }
                None => {
                    let offset = FIRST_SPREAD.min(ping.every) * nth / new_ones;
                    let steps = offset.as_millis() / SPREAD_STEP.as_millis();
                    let first = now + SPREAD_STEP * u32::try_from(steps).unwrap_or(0);
                    nth = nth.saturating_add(1);
                    Watch {
                        target: p.address,
                        domain: p.domain.clone(),
                        ping,
                        up: true,
                        failures: 0,
                        next: first,
                        out: None,
                        missed: false,
                        wake: first,
                    }
                }
            };
            h.watches.insert(p.name.clone(), watch);
        }
        // Those no longer pinged, or pinged elsewhere: their answers would say nothing.
        for (name, w) in old {
            if let Some((id, _)) = w.out {
                h.txns.remove(&id);
                env.txn.abandon(id, now, &mut env.txn_out);
            }
            info!(peer = %name, "no longer pinged at that address");
        }
        // (A re-addressed peer's ping out among them.)
        let watches = &h.watches;
        env.abandon_where(&mut h.txns, now, |id, name| {
            (watches.get(name)).is_none_or(|w| w.out.map(|o| o.0) != Some(*id))
        });
        h.reschedule_all();
    }

    /// What the pings found, by peer and address: a reload that fails part way puts it
    /// back ([`PeerHealth::put_back`]); its `configure` may have forgotten a peer it stopped
    /// pinging or re-addressed, which would then take calls again though down.
    pub fn verdicts(&self) -> Vec<Verdict> {
        (self.watches.iter())
            .map(|(peer, w)| Verdict {
                peer: peer.clone(),
                at: w.target,
                up: w.up,
                failures: w.failures,
            })
            .collect()
    }

    /// Put back `verdicts` on the peers pinged at the same address now.
    pub fn put_back(&mut self, verdicts: Vec<Verdict>) {
        for v in verdicts {
            if let Some(w) = self.watches.get_mut(&v.peer)
                && same_address(&w.target, &v.at)
            {
                w.up = v.up;
                w.failures = v.failures;
            }
        }
    }

    /// Give up the pings past their deadline; send those due.
    pub fn handle_timeout(env: &mut Env, now: Instant) {
        let _zone = process_zone();
        let mut t = Taken::from(env);
        let Taken { env, h } = &mut t;
        let due: Vec<PeerName> = (h.schedule.iter())
            .take_while(|(at, _)| *at <= now)
            .map(|(_, name)| name.clone())
            .collect();
        for name in due {
            if let Some(w) = h.watches.get_mut(&name)
                && let Some((id, deadline)) = w.out
                && deadline <= now
            {
                w.out = None;
                h.txns.remove(&id);
                env.txn.abandon(id, now, &mut env.txn_out);
                h.ping_failed(&name, "no answer");
            }
            h.send_due(env, &name, now);
            h.reschedule(&name);
        }
    }

    /// An answer to ping `id`: a provisional one says nothing yet; 408 and 503 say the peer
    /// (or the proxy before it) cannot take calls; any other, even a refusal of the OPTIONS
    /// itself, that it is there. Behind a front, one the front sends itself (unstamped: a
    /// refused TCP connection's 477, say) says it could not reach the peer.
    pub fn on_response(env: &mut Env, id: TxnId, resp: &Response) {
        if resp.is_provisional() {
            return;
        }
        let _zone = process_zone();
        let fronts_own =
            env.cfg.front.is_some() && resp.header(&Hdr::named(super::cx::SOURCE_HEADER)).is_none();
        let h = &mut env.health;
        let Some(name) = h.take(id) else { return };
        match resp.status() {
            status if fronts_own => h.ping_failed(&name, &format!("the front answered {status}")),
            status @ (408 | 503) => h.ping_failed(&name, &format!("answered {status}")),
            _ => h.answered(&name),
        }
        h.reschedule(&name);
    }

    /// Ping `id` timed out or could not be sent.
    pub fn on_failure(env: &mut Env, id: TxnId, timeout: bool) {
        let _zone = process_zone();
        let h = &mut env.health;
        let Some(name) = h.take(id) else { return };
        h.ping_failed(
            &name,
            if timeout {
                "no answer"
            } else {
                "cannot be reached"
            },
        );
        h.reschedule(&name);
    }

    /// A call's INVITE to `peer` at `target` got no answer at all: a ping at once, and one
    /// failure (the first since the last ping's outcome) unless it would take the peer
    /// down, which only a ping's outcome does. One sent where the peer no longer is (a
    /// reload re-addressed it) says nothing of where it is.
    pub fn missed(&mut self, peer: &PeerName, target: &Target, now: Instant) {
        let Some(w) = self.watches.get_mut(peer) else {
            return;
        };
        if !same_address(&w.target, target) {
            return;
        }
        w.next = w.next.min(now);
        let counts = !w.missed && w.failures.saturating_add(1) < w.ping.failures;
        w.missed = true;
        self.reschedule(peer);
        if counts {
            let _zone = process_zone();
            self.failed(peer, "an INVITE got no answer");
        }
    }

    /// The peer a ping's transaction was for; the ping is no longer out.
    fn take(&mut self, id: TxnId) -> Option<PeerName> {
        let name = self.txns.remove(&id)?;
        let w = self.watches.get_mut(&name)?;
        if w.out.is_some_and(|(out, _)| out == id) {
            w.out = None;
        }
        Some(name)
    }

    fn answered(&mut self, name: &PeerName) {
        let Some(w) = self.watches.get_mut(name) else {
            return;
        };
        w.failures = 0;
        w.missed = false;
        if !w.up {
            w.up = true;
            info!(peer = %name, "the peer answers its ping again: it takes calls");
        }
    }

    /// A ping's outcome says the peer did not answer: a call's INVITE unanswered after it
    /// counts again.
    fn ping_failed(&mut self, name: &PeerName, why: &str) {
        if let Some(w) = self.watches.get_mut(name) {
            w.missed = false;
        }
        self.failed(name, why);
    }

    /// A ping (or a call's INVITE) went unanswered.
    fn failed(&mut self, name: &PeerName, why: &str) {
        let Some(w) = self.watches.get_mut(name) else {
            return;
        };
        w.failures = w.failures.saturating_add(1);
        if w.up && w.failures >= w.ping.failures {
            w.up = false;
            warn!(peer = %name, failures = w.failures, "ping failed ({why}): the peer is down, no call goes to it until a ping is answered");
        } else {
            debug!(peer = %name, failures = w.failures, "ping failed ({why})");
        }
    }

    /// Send `name`'s ping if none is out and it is due.
    fn send_due(&mut self, env: &mut Env, name: &PeerName, now: Instant) {
        let Some(w) = self.watches.get_mut(name) else {
            return;
        };
        if w.out.is_some() || w.next > now {
            return;
        }
        w.next = now + w.ping.every;
        let target = w.target;
        let deadline = now + w.ping.every.min(PING_DEADLINE);
        // Our own failure to build or start it (a defect) is no news of the peer: the next
        // ping is tried in its time. One the network refuses is (`on_failure`).
        let req = match ping_request(env, target, &w.domain) {
            Ok(req) => req,
            Err(e) => return error!(peer = %name, error = %e, "cannot build the ping"),
        };
        let Some(id) = env.send_request(req, target, now) else {
            return error!(peer = %name, "cannot start the ping's transaction");
        };
        w.out = Some((id, deadline));
        self.txns.insert(id, name.clone());
    }
}

/// An OPTIONS for the peer at `target` (RFC 3261 §11), outside any dialog, addressed to
/// its `domain` as its INVITEs are (an SBC may drop a request for a host it is not).
fn ping_request(env: &mut Env, target: Target, domain: &str) -> Result<Request, SipError> {
    let t = target.transport;
    let uri = match t {
        Transport::Udp => format!("sip:{domain}"),
        Transport::Tcp => format!("sip:{domain};transport=tcp"),
    };
    let call_id = env.ids.call_id(&env.local.uri_host());
    let from = format!(
        "<sip:{}>;tag={}",
        env.local.dial_at_over(t),
        env.ids.tag(&call_id)
    );
    let via = env.local.via(t, &env.ids.branch());
    let mut req = NewRequest {
        method: Method::Options,
        uri: &uri,
        via: &via,
        max_forwards: 70,
        routes: &[],
        from: &from,
        to: &format!("<{uri}>"),
        call_id: &call_id,
        cseq: 1,
    }
    .build()?;
    req.push_header(&Hdr::named("Accept"), "application/sdp")?;
    req.push_header(&Hdr::CONTENT_LENGTH, "0")?;
    Ok(req)
}

/// The same address and transport (a connection or listener named aside).
fn same_address(a: &Target, b: &Target) -> bool {
    (a.addr, a.transport) == (b.addr, b.transport)
}

/// The pings live as long as the process, not as long as a call (src/zone.rs; as the
/// registrations do).
fn process_zone() -> crate::zone::Entered {
    crate::zone::enter(crate::zone::Zone::Process)
}
