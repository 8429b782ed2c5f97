//! Placing call-backs: what the core does with the call-back service's commands. An
//! `Originate` becomes a [`Call`] with [`Origin::Callback`] calling user1 (the flow from there
//! is `third_party`'s), or, when it cannot (no route, limits, shutting down), one CDR and an
//! immediate `Ended` report. A `Cancel` goes to the call-back's call.

use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::admission::ring_timeout;
use super::anchor::media_plan;
use super::cdr::{Facts, record};
use super::dialog::Dialog;
use super::phase::EndInfo;
use super::router::B2bua;
use super::state::{Call, CallStart, Origin};
use super::third_party::{CallbackReport, ThirdParty, template};
use super::timers::CallTimer;
use super::{CoreEvent, Output};
use crate::callback::{Command, End, Originate, Outcome, State};
use crate::cdr::CallTag;
use crate::config::PeerName;
use crate::interop::causes::Q850Cause;

impl B2bua {
    /// A command of the call-back service.
    pub(super) fn on_callback(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Originate(o) => {
                // A fault before the call-back is a call (a defect) costs it alone: its peer's
                // count given back, and the service told it ended, as `new_call` does for an
                // INVITE. Before, the count stayed taken until a restart, and the service
                // waited for an end never reported.
                let mut counted = None;
                let ran =
                    super::router::fault::guarded(self, super::router::FaultPlace::Core, |b| {
                        b.originate(now, &o, &mut counted)
                    });
                if ran {
                    return;
                }
                if let Some(peer) = counted {
                    self.env.limits.release(&peer);
                }
                if !self.callbacks.contains_key(&o.id) {
                    let (tag, cause) = (CallTag::GatewayError, Q850Cause::TEMPORARY_FAILURE);
                    self.refuse_callback(now, &o, tag, cause);
                }
            }
            Command::Cancel { id } => {
                if let Some(&r) = self.callbacks.get(&id) {
                    self.with_call(r, now, |c, cx| c.cancel_callback(cx));
                }
            }
        }
    }

    /// Place a call-back: call user1. `counted`: the peer whose count it holds while it is
    /// no call yet.
    fn originate(&mut self, now: Instant, o: &Originate, counted: &mut Option<PeerName>) {
        let cfg = self.env.cfg.clone();
        let (user1, user2) = (o.user1.as_str().to_string(), o.user2.as_str().to_string());
        let refuse = |b: &mut B2bua, tag: CallTag, cause: Q850Cause| {
            info!(callback = %o.id, "call-back refused: {}", tag.as_str());
            b.refuse_callback(now, o, tag, cause);
        };
        if self.env.draining {
            return refuse(self, CallTag::Shutdown, Q850Cause::TEMPORARY_FAILURE);
        }
        if !self.env.cdr_writable || self.callbacks.contains_key(&o.id) {
            return refuse(self, CallTag::GatewayError, Q850Cause::TEMPORARY_FAILURE);
        }
        let from = o.from_peer.as_ref();
        let (Some(route1), Some(route2)) = (
            cfg.route_from(from, &user1).cloned(),
            cfg.route_from(from, &user2).cloned(),
        ) else {
            return refuse(self, CallTag::NoRoute, Q850Cause::UNALLOCATED);
        };
        // The call's side-A profile until user1 answers (then user1's peer's).
        let ingress = from
            .and_then(|p| cfg.profile(p))
            .or_else(|| route1.to.iter().find_map(|p| cfg.profile(p)))
            .cloned();
        let Some(ingress) = ingress else {
            return refuse(self, CallTag::NoRoute, Q850Cause::UNALLOCATED);
        };
        let calls = self.active_calls();
        let admitted = match from {
            Some(p) => self.env.limits.admit_call(now, p, calls),
            None => self.env.limits.admit_gateway(now, calls),
        };
        if let Err(over) = admitted {
            self.env
                .out
                .push_back(Output::Event(CoreEvent::LimitRefused {
                    peer: ingress.name.clone(),
                    reason: over.label(),
                }));
            return refuse(self, CallTag::RateLimited, Q850Cause::CONGESTION);
        }
        counted.clone_from(&from.cloned());
        #[cfg(test)]
        super::router::test_fault::strike_new_call();
        // Each party sees the other's number unless a calling number was given.
        let shown_to_user1 = o
            .caller
            .as_ref()
            .map_or(user2.as_str(), |c| c.as_str())
            .to_string();
        let shown_to_user2 = o
            .caller
            .as_ref()
            .map_or(user1.as_str(), |c| c.as_str())
            .to_string();
        let built = template(&self.env.local, &mut self.env.ids, &user1, &shown_to_user1);
        let template = match built {
            Ok(t) => t,
            Err(e) => {
                debug!(callback = %o.id, error = %e, "cannot build the call-back's INVITE");
                if let Some(p) = counted.take() {
                    self.env.limits.release(&p);
                }
                return refuse(self, CallTag::GatewayError, Q850Cause::PROTOCOL_ERROR);
            }
        };
        let r = self.next_ref;
        self.next_ref += 1;
        // Side A is user1's once user1 answers; until then it is no dialog at all (not
        // indexed, so nothing reaches it), named after the call-back for logs and recording.
        let a = Dialog {
            call_id: format!("callback-{}", o.id).into(),
            local_tag: Box::default(),
            local_hdr: Box::default(),
            remote_hdr: Box::default(),
            remote_tag: None,
            remote_target: Box::default(),
            route_set: Box::default(),
            local_cseq: 1,
            remote_cseq: None,
            target: ingress.address,
            peer_allows: None,
            peer_refused: Default::default(),
            answered: false,
        };
        let peers: Vec<PeerName> = route1.to.iter().chain(&route2.to).cloned().collect();
        let media = media_plan(
            &mut self.env,
            &cfg,
            &ingress,
            &peers,
            &a.call_id,
            // None: side A is user1's dialog once user1 answers, judged by its target.
            None,
            now,
        );
        let ring = ring_timeout(&cfg, &route1);
        let tp = ThirdParty {
            id: o.id.clone(),
            stage: State::Calling1,
            user1: user1.clone(),
            user2,
            shown_to_user2,
            template,
            user2_route: route2,
            max_duration: o.max_duration,
            user1_txn: None,
            user1_cseq: 1,
            user1_offer: None,
            user1_counted: None,
            user2_since: None,
            user1_left: false,
            reported: false,
            user1_answered: None,
        };
        let call = Call::start(CallStart {
            cfg,
            ingress,
            a,
            origin: Origin::Callback(Box::new(tp)),
            route: route1.to,
            // user1's ring and user2's are bounded as a whole (third_party.rs).
            ring_per_peer: false,
            counted_ingress: o.from_peer.clone(),
            number: user1,
            caller: shown_to_user1,
            started: now,
            started_wall: self.env.wall(now),
            uas_rel: Default::default(),
            media,
        });
        info!(callback = %o.id, "call-back: calling user1");
        self.calls.insert(r, Box::new(call));
        self.callbacks.insert(o.id.clone(), r);
        // Its own now: released with it.
        *counted = None;
        self.with_call(r, now, |call, cx| {
            call.timers.set(CallTimer::Ring, cx.now + ring);
            let outcome = call.start_attempt(cx);
            call.on_attempt_outcome(cx, outcome);
        });
    }

    /// A call-back that never became a call: its one CDR and its end, reported at once.
    fn refuse_callback(&mut self, now: Instant, o: &Originate, tag: CallTag, cause: Q850Cause) {
        let call_id = format!("callback-{}", o.id);
        // The peer the call would have come from: `from_peer`, else the one user1 would have
        // been called through, else none there is, and the CDR and the metrics' `peer` say
        // `*`, which no profile may be named (an empty label is no label to Prometheus).
        let cfg = self.env.cfg.clone();
        let ingress = match &o.from_peer {
            Some(p) => p.as_str(),
            None => cfg
                .route_from(None, o.user1.as_str())
                .and_then(|r| r.to.first())
                .map_or("*", |p| p.as_str()),
        };
        let facts = Facts {
            callback_id: Some(o.id.to_string()),
            ..Facts::refused(&call_id, o.user1.as_str(), o.user2.as_str(), ingress, now)
        };
        let status = if tag == CallTag::NoRoute { 404 } else { 503 };
        // None while CDRs cannot be written, as for an INVITE refused then: the queue keeps
        // its room for the calls already up, and the AS has its answer.
        if self.env.cdr_writable {
            let cdr = record(
                &self.env,
                facts,
                EndInfo::internal(tag, status, cause.0, now),
            );
            self.env.out.push_back(Output::Cdr(Box::new(cdr), None));
        }
        let end = End {
            outcome: Outcome::User1Failed,
            duration: Duration::ZERO,
            call_tag: tag,
            cause,
        };
        self.env
            .out
            .push_back(Output::Callback(CallbackReport::Ended {
                id: o.id.clone(),
                end,
            }));
    }
}
