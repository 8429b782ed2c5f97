//! The gateway's registrations with its peers (`[register] enabled = true`), kept by the
//! core beside its calls: each `auth::Registration` decides what to send and when, and its
//! REGISTERs go through the core's transaction layer like any request (retransmissions,
//! Timer F, transport errors), so their responses find them by transaction.

use std::sync::Arc;
use std::time::Instant;

use foldhash::{HashMap, HashSet};
use tracing::{info, warn};

use super::cx::Env;
use crate::auth::{Credentials, Handover, RegEvent, RegisterParams, Registration};
use crate::config::{Config, PeerName, Profile, local_port};
use crate::sip::Response;
use crate::txn::TxnId;

/// One registration and what it was made from.
#[derive(Debug)]
struct Entry {
    reg: Registration,
    params: RegisterParams,
    creds: Option<Arc<Credentials>>,
    /// A reload no longer wants it: it removes its binding (`Expires: 0`).
    removes: bool,
    /// Its contact is a front's address (`[sip] front` when it was made): the binding is
    /// every instance's, and this one never removes it.
    shared: bool,
    /// When a connection's close last had its binding renewed (at most one each
    /// [`RENEW_ON_CLOSE_EVERY`]).
    renewed_on_close: Option<Instant>,
    /// Its REGISTER transaction out, the last sent (a newer one gives it up).
    out: Option<TxnId>,
}

/// A registrar that closes its TCP connections after each transaction (RFC 3261 §18 asks
/// it to keep them) would have a binding renewed on every close, every few seconds: at most
/// once each this long.
const RENEW_ON_CLOSE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Every registration, and the REGISTER transactions in flight.
#[derive(Debug, Default)]
pub struct Registrations {
    /// The live ones, and after a reload or at shutdown those still unregistering.
    regs: Vec<Entry>,
    /// Which registration a REGISTER transaction belongs to (its Call-ID), its CSeq, and
    /// whether the TCP connection it was written on closed before an answer.
    txns: HashMap<TxnId, (String, u32, bool)>,
    /// The soonest of their timers, kept by [`Registrations::flush`].
    due: Option<Instant>,
    /// A change began and has not ended (a fault cut it short): `due` is the rest after it.
    unsettled: bool,
}

/// How long the registrations rest after a change a fault cut short (a defect, caught):
/// their next look comes then, not at once, where a fault met on every look would have
/// the shell's loop fire their timer for ever, the SIP queues unread.
const FAULT_REST: std::time::Duration = std::time::Duration::from_secs(1);

/// What a registration is made from: a change to any of it starts a new one.
fn params(cfg: &Config, p: &Profile) -> Option<RegisterParams> {
    let policy = p.register.as_ref()?;
    let port = local_port(&cfg.listen, policy.transport, &cfg.advertise)?;
    let mut params =
        RegisterParams::for_profile(p, policy, p.auth.as_deref(), &cfg.advertise, port);
    // Behind a front the binding is the front's address, which the carrier reaches (the
    // instance's may be private) and whose calls the front spreads over every instance:
    // each instance registers that one binding (a refresh of it), not one of its own.
    if let Some(front) = cfg.front {
        params.bind_at(front.addr, policy);
    }
    Some(params)
}

impl Registrations {
    /// Start (or, after a reload, reconcile) the registrations `cfg` asks for. A peer whose
    /// registration changed registers anew: when its contact, address of record and registrar
    /// stayed (new credentials or expiry), the new REGISTER replaces the old binding and the
    /// old registration just ends, its binding taken over by the new one; otherwise the old
    /// binding is removed first, and the new registration starts once that `Expires: 0` has
    /// its answer (sent at the same moment, the two could reach the registrar, or two
    /// registrars sharing one location database, in either order). A peer no longer
    /// registering is unregistered.
    pub fn configure(&mut self, env: &mut Env, cfg: &Config, now: Instant) {
        let _zone = process_zone();
        self.changing(now);
        let wanted: Vec<(RegisterParams, Option<Arc<Credentials>>)> = cfg
            .profiles
            .values()
            .filter_map(|p| params(cfg, p).map(|r| (r, p.auth.clone())))
            .collect();
        // Looked up, not scanned: with thousands of registrations a scan of every wanted one
        // for each running one held the core for seconds.
        let by_peer: HashMap<&PeerName, usize> = (wanted.iter().enumerate())
            .map(|(i, (p, _))| (&p.peer, i))
            .collect();
        let bindings: HashSet<_> = wanted.iter().map(|(p, _)| p.binding()).collect();
        let same = |e: &Entry| {
            by_peer
                .get(&e.params.peer)
                .is_some_and(|&i| (&e.params, &e.creds) == (&wanted[i].0, &wanted[i].1))
        };
        // A registration still wanted: neither ended nor removing its binding.
        let kept = |e: &Entry| !e.reg.is_done() && !e.reg.is_removing();
        // Bindings handed over, by the peer whose new registration takes them.
        let mut handed: Vec<(RegisterParams, Handover)> = Vec::new();
        for e in &mut self.regs {
            if !kept(e) || same(e) {
                continue;
            }
            if bindings.contains(&e.params.binding()) {
                info!(peer = %e.reg.peer(), "registration settings changed: registering the same contact anew");
                handed.push((e.params.clone(), e.reg.hand_over(now)));
            } else if e.shared {
                // Every instance's binding: the others' refreshes keep it until each is
                // reloaded too (then it is left to its expiry). Before, the first instance
                // reloaded removed it, and the trunk's calls failed until the others'
                // next refresh, some 45 minutes later.
                info!(peer = %e.reg.peer(), "registration changed or no longer wanted: ended, the binding left to the front's other instances");
                e.reg.end_keeping_binding();
            } else {
                info!(peer = %e.reg.peer(), "registration changed or no longer wanted: unregistering");
                e.reg.shutdown(now);
                // Ended at once: it never bound, nothing is removed.
                e.removes = !e.reg.is_done();
            }
        }
        let running: HashSet<&PeerName> = (self.regs.iter())
            .filter(|e| kept(e) && same(e))
            .map(|e| &e.params.peer)
            .collect();
        let new: Vec<_> = (wanted.iter())
            .filter(|(p, _)| !running.contains(&p.peer))
            .cloned()
            .collect();
        for (params, creds) in new {
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(env.ids.rng(), &mut seed);
            let mut reg = Registration::new(params.clone(), creds.clone(), seed)
                .with_branch_key(env.ids.tag_key().clone());
            for (_, from) in handed.iter().filter(|(old, _)| old.same_binding(&params)) {
                reg.take_over(*from);
            }
            self.regs.push(Entry {
                reg,
                params,
                creds,
                removes: false,
                shared: cfg.front.is_some(),
                renewed_on_close: None,
                out: None,
            });
        }
        self.flush(env, now);
    }

    /// Shutting down: remove every binding we may hold.
    pub fn shutdown(&mut self, env: &mut Env, now: Instant) {
        let _zone = process_zone();
        self.changing(now);
        // Behind a front the binding is every instance's (the front's address): one
        // stopping leaves it to the others' refreshes, or to its expiry.
        for e in &mut self.regs {
            if e.shared {
                e.reg.end_keeping_binding();
            } else {
                e.reg.stop(now);
            }
        }
        self.flush(env, now);
    }

    /// Whether an unregistration (or a registration) is still waiting for its answer.
    pub fn pending(&self) -> bool {
        self.regs.iter().any(|e| !e.reg.is_done())
    }

    /// Where the registrations register over TCP: that connection carries the binding (a
    /// registrar reaching a gateway behind NAT sends its calls back over it), so it is kept
    /// open however quiet, as a call's is (`engine::tcp`'s idle timeout).
    pub fn tcp_targets(&self) -> impl Iterator<Item = crate::sip::Target> + '_ {
        (self.regs.iter())
            .filter(|e| !e.reg.is_done() && !e.removes)
            .map(|e| e.params.target)
            .filter(|t| t.transport == crate::sip::Transport::Tcp)
    }

    /// Each peer's registration state, for `trunkgate_registration_up{peer}`.
    pub fn states(&self) -> Vec<(PeerName, bool)> {
        self.regs
            .iter()
            .filter(|e| !e.reg.is_done())
            .map(|e| (e.reg.peer().clone(), e.reg.is_up()))
            .collect()
    }

    /// Kept, not computed: the shell asks on every turn of its loop, and a scan of every
    /// registration each time cost a busy gateway with thousands of them. (Never later
    /// than the soonest timer: earlier only after a change a fault cut short, which the
    /// next look puts right.)
    pub fn poll_timeout(&self) -> Option<Instant> {
        debug_assert!(
            self.unsettled
                || match (self.due, soonest(&self.regs)) {
                    (Some(due), Some(soonest)) => due <= soonest,
                    (due, soonest) => due.is_some() || soonest.is_none(),
                },
            "a change to a registration's timer not followed by its due time kept"
        );
        self.due
    }

    /// A change to the registrations begins: until it ends (with their soonest timer
    /// kept), the next look is due after [`FAULT_REST`], so that a fault cutting it short
    /// (a defect, caught) leaves a timer that comes a little late, never one that never
    /// comes, nor one that comes at once every time.
    fn changing(&mut self, now: Instant) {
        self.due = Some(now + FAULT_REST);
        self.unsettled = true;
    }

    /// A change ended: the next look is the soonest timer.
    fn settle(&mut self) {
        self.due = soonest(&self.regs);
        self.unsettled = false;
    }

    pub fn handle_timeout(&mut self, env: &mut Env, now: Instant) {
        let _zone = process_zone();
        self.changing(now);
        for e in &mut self.regs {
            if e.reg.poll_timeout().is_some_and(|t| t <= now) {
                #[cfg(test)]
                super::router::fault::test_fault::strike(super::router::FaultPlace::Core);
                e.reg.handle_timeout(now);
            }
        }
        self.flush(env, now);
    }

    /// Whether `id` is a REGISTER transaction of ours.
    pub fn owns(&self, id: TxnId) -> bool {
        self.txns.contains_key(&id)
    }

    /// A response to REGISTER transaction `id`.
    pub fn on_response(&mut self, env: &mut Env, now: Instant, id: TxnId, resp: &Response) {
        let _zone = process_zone();
        self.changing(now);
        let call_id = if resp.is_provisional() {
            self.txns.get(&id).cloned()
        } else {
            self.txns.remove(&id)
        };
        if let Some(reg) = call_id.and_then(|(c, _, _)| self.registration(&c)) {
            reg.handle_response(now, resp);
        }
        self.flush(env, now);
    }

    /// The registration whose REGISTERs carry `call_id`.
    fn registration(&mut self, call_id: &str) -> Option<&mut Registration> {
        self.regs
            .iter_mut()
            .map(|e| &mut e.reg)
            .find(|r| r.call_id() == call_id)
    }

    /// The TCP connection REGISTER transaction `id` was written on closed: should that end
    /// it (no answer yet), the registrar may have bound it all the same.
    pub fn connection_lost(&mut self, id: TxnId) {
        if let Some(t) = self.txns.get_mut(&id) {
            t.2 = true;
        }
    }

    /// A TCP connection the gateway opened to `addr` closed: a registration over it that is
    /// registered renews its binding soon, on a new connection; [`RENEW_ON_CLOSE_EVERY`]
    /// after the last such renewal at the soonest (put off, not dropped: with no
    /// connection left, no later close would come to ask again).
    pub fn connection_closed(&mut self, addr: std::net::SocketAddr, now: Instant) {
        self.changing(now);
        for e in self.regs.iter_mut().filter(|e| !e.removes) {
            let t = e.params.target;
            if t.transport != crate::sip::Transport::Tcp || t.addr != addr {
                continue;
            }
            let rested = (e.renewed_on_close)
                .and_then(|at| at.checked_add(RENEW_ON_CLOSE_EVERY))
                .map_or(now, |at| at.max(now));
            if let Some(at) = e.reg.connection_closed(rested) {
                e.renewed_on_close = Some(at);
            }
        }
        self.settle();
    }

    /// REGISTER transaction `id` timed out or could not be sent.
    pub fn on_failure(&mut self, env: &mut Env, now: Instant, id: TxnId, timeout: bool) {
        let _zone = process_zone();
        let Some((call_id, cseq, lost)) = self.txns.remove(&id) else {
            return;
        };
        self.changing(now);
        let why = match (timeout, lost) {
            (true, _) => "no response from the registrar",
            (false, true) => "the connection to the registrar closed before its answer",
            (false, false) => "the registrar could not be reached",
        };
        if let Some(reg) = self.registration(&call_id) {
            // Written and unanswered, it may have bound.
            reg.handle_failure(now, cseq, why, timeout || lost);
        }
        self.flush(env, now);
    }

    /// Start the registrations not started whose peer, or contact, has no binding being
    /// removed (a renamed peer's old one; the removal would undo the new REGISTER), send
    /// what the registrations want sent, log what happened to them, forget the ended.
    fn flush(&mut self, env: &mut Env, now: Instant) {
        // A removal that has ended (answered, or given up on: it may have reached the
        // registrar) may have taken a kept registration's binding with it: the same contact
        // and address of record at another registrar address sharing one location database
        // (a carrier's two SBCs, one profile dropped). Those register again now; before,
        // they stayed unbound, shown up, until their next refresh (45 minutes at 3600 s).
        // A removal waiting to be tried again whose binding a registration still wanted has
        // (a reload wanted it back while that removal was out) is not sent: it would undo
        // that registration's REGISTER.
        // (Each step below looks at the few registrations it is about, not at every pair:
        // with thousands, a scan of all for each held the core for seconds per answer.)
        if self.regs.iter().any(|e| e.reg.removes_later()) {
            let kept: HashSet<_> = (self.regs.iter())
                .filter(|e| !e.removes && !e.reg.is_done() && !e.reg.is_removing())
                .map(|e| e.params.binding())
                .collect();
            let ending: Vec<usize> = (0..self.regs.len())
                .filter(|&i| {
                    let e = &self.regs[i];
                    e.reg.removes_later() && kept.contains(&e.params.binding())
                })
                .collect();
            for i in ending {
                self.regs[i].reg.end_keeping_binding();
                self.regs[i].removes = false;
            }
        }
        // (Also each try of a removal that failed: it may have reached the registrar.)
        let mut removed: Vec<RegisterParams> = Vec::new();
        for e in &mut self.regs {
            if e.removes && (e.reg.is_done() || e.reg.take_removal_tried()) {
                removed.push(e.params.clone());
            }
        }
        for e in self.regs.iter_mut().filter(|_| !removed.is_empty()) {
            if !e.removes && removed.iter().any(|r| r.same_contact(&e.params)) {
                info!(peer = %e.reg.peer(), "a removal of the same contact ended: registering again");
                e.reg.rebind(now);
            }
        }
        // A new registration waits for the removal of its peer's or its contact's binding
        // (which could undo its REGISTER: two SBCs may share one location database), but
        // not for one at another registrar that was failing (a registrar moved away from,
        // perhaps dead: its removal may wait out 32 s while the trunk's calls fail; should it
        // be answered after all, `rebind` above registers again).
        let leaving: Vec<usize> = (0..self.regs.len())
            .filter(|&i| self.regs[i].reg.is_leaving())
            .collect();
        for i in 0..self.regs.len() {
            let waits = self.regs[i].reg.is_idle()
                && leaving.iter().any(|&o| {
                    let (o, p) = (&self.regs[o], &self.regs[i].params);
                    (o.params.target == p.target || !o.reg.is_failing())
                        && (o.params.peer == p.peer || o.params.same_contact(p))
                });
            if self.regs[i].reg.is_idle() && !waits {
                info!(peer = %self.regs[i].params.peer, "registering");
                self.regs[i].reg.start(now);
            }
        }
        for Entry { reg, out, .. } in &mut self.regs {
            while let Some(t) = reg.poll_transmit() {
                let call_id = reg.call_id().to_string();
                let request = t.request;
                let cseq = request.cseq().map_or(0, |(n, _)| n);
                // A REGISTER of this registration still out is given up on: one at a time
                // (RFC 3261 §10.2), and its retransmissions must not bind the contact again
                // after an `Expires: 0` (our deadline may come before the transaction's).
                if let Some(id) = out.take()
                    && self
                        .txns
                        .get(&id)
                        .is_some_and(|(c, n, _)| *c == call_id && *n < cseq)
                {
                    self.txns.remove(&id);
                    env.txn.abandon(id, now, &mut env.txn_out);
                }
                match env.send_request(request, t.to, now) {
                    Some(id) => {
                        self.txns.insert(id, (call_id, cseq, false));
                        *out = Some(id);
                    }
                    None => {
                        warn!(peer = %reg.peer(), "cannot send REGISTER");
                        reg.handle_failure(now, cseq, "cannot send REGISTER", false);
                    }
                }
            }
            while let Some(ev) = reg.poll_event() {
                match ev {
                    RegEvent::Registered {
                        expires,
                        refresh_in,
                        service_route,
                    } => {
                        info!(
                            peer = %reg.peer(),
                            expires_s = expires.as_secs(),
                            refresh_in_s = refresh_in.as_secs(),
                            service_route = service_route.len(),
                            "registered"
                        );
                        // Each 2xx's replaces the last (RFC 3608 §6); one without none.
                        match service_route.is_empty() {
                            true => env.service_routes.remove(reg.peer()),
                            false => env.service_routes.insert(reg.peer().clone(), service_route),
                        };
                    }
                    RegEvent::Failed { reason, retry_in } => warn!(
                        peer = %reg.peer(),
                        retry_in_s = retry_in.as_secs(),
                        "registration failed: {reason}"
                    ),
                    RegEvent::Unregistered { ok } => info!(peer = %reg.peer(), ok, "unregistered"),
                }
            }
        }
        let before = self.regs.len();
        self.regs.retain(|e| !e.reg.is_done());
        if self.regs.len() < before && !env.service_routes.is_empty() {
            let peers: HashSet<&PeerName> = self.regs.iter().map(|e| e.reg.peer()).collect();
            env.service_routes.retain(|peer, _| peers.contains(peer));
        }
        // A REGISTER of a registration that ended (handed over by a reload while it was
        // out) is given up: its retransmissions must not bind the contact again later.
        if self.regs.len() < before {
            let live: HashSet<&str> = self.regs.iter().map(|e| e.reg.call_id()).collect();
            env.abandon_where(&mut self.txns, now, |_, (c, _, _)| {
                !live.contains(c.as_str())
            });
        }
        self.settle();
    }
}

/// The soonest timer of `regs`.
fn soonest(regs: &[Entry]) -> Option<Instant> {
    regs.iter().filter_map(|e| e.reg.poll_timeout()).min()
}

/// Registrations live as long as the process, not as long as a call: what they allocate
/// (their state, each refresh's request) stays out of the calls' heap, whose pages must be
/// free to go back to the system when the calls are gone (src/zone.rs).
fn process_zone() -> crate::zone::Entered {
    crate::zone::enter(crate::zone::Zone::Process)
}
