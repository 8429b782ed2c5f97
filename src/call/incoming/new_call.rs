//! An initial INVITE: admission turns it into a call, or into one refusal and one CDR.

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info};

use super::super::admission::{self, Refusal};
use super::super::anchor::media_plan;
use super::super::cdr::{Facts, record};
use super::super::dialog::Dialog;
use super::super::dialog_index::SetupKey;
use super::super::phase::EndInfo;
use super::super::router::{B2bua, FaultPlace, guarded};
use super::super::state::{Call, CallStart, CallerInvite, Origin, TxnRole, UasRel};
use super::super::timers::CallTimer;
use super::super::{CoreEvent, Direction, Output, Side, Stage};
use crate::cdr::CallTag;
use crate::config::PeerName;
use crate::interop::causes::Q850Cause;
use crate::sip::{Hdr, Request, Target};
use crate::txn::TxnId;

impl B2bua {
    /// An initial INVITE, in transaction `id`. A panic before it is a call (admission,
    /// routing, building the call: a defect) costs that INVITE only: it is answered 500, so
    /// its resends are absorbed rather than handled (and panicking) again, and what its
    /// call had been counted against is given back. Once the call exists its own handling
    /// is guarded (`router/fault.rs`).
    pub(super) fn on_initial_invite(
        &mut self,
        now: Instant,
        id: TxnId,
        req: Request,
        source: Target,
    ) {
        let req = Arc::new(req);
        let mut counted = None;
        let ran = guarded(self, FaultPlace::Core, |b| {
            b.begin_call(now, id, req.clone(), source, &mut counted)
        });
        if ran {
            return;
        }
        if let Some(peer) = counted {
            self.env.limits.release(&peer);
        }
        if self.env.txn.server_pending(id) {
            self.env
                .respond(now, id, &req, 500, "Server Internal Error", &[]);
        }
    }

    /// The call an initial INVITE makes, or its refusal. `counted`: set while the call is
    /// counted against its peer's limits but not yet among the calls (what a fault in
    /// between must give back).
    fn begin_call(
        &mut self,
        now: Instant,
        id: TxnId,
        req: Arc<Request>,
        source: Target,
        counted: &mut Option<PeerName>,
    ) {
        let cfg = self.env.cfg.clone();
        // A registering peer's calls to its registered contact are its own, whichever of its
        // servers they come from.
        let ip = self.env.origin_ip(&req, source);
        let by_contact = cfg.peer_for_contact(ip, &req.uri());
        let Some(ingress) = by_contact.or_else(|| cfg.peer_for_source(ip)).cloned() else {
            // `on_message` keeps strangers out; a reload may have dropped the profile since.
            debug!(%source, "INVITE from an address no profile matches");
            self.refused("unknown_source");
            self.env.respond(now, id, &req, 403, "Forbidden", &[]);
            return;
        };
        // The same INVITE by another path (another branch): RFC 3261 §8.2.2.2, a merged
        // request. Not a call of its own: one response, no CDR. Once the first one has its
        // final answer (a CANCEL, a failure) a proxy may try it again: no longer merged.
        let setup = SetupKey::of(&req);
        if let Some(key) = &setup
            && let Some(r) = self.env.dialogs.find_setup(key)
            && self
                .calls
                .get(&r)
                .is_some_and(|c| !c.phase.is_ending() && c.setup_key().as_ref() == Some(key))
        {
            debug!(%source, "merged request: 482");
            self.refused("merged");
            self.env.respond(now, id, &req, 482, "Loop Detected", &[]);
            return;
        }
        if !self.env.cdr_writable {
            // No CDR for this refusal either: it would only feed the queue that is full.
            self.refused("cdr_unavailable");
            let extra = [(Hdr::RETRY_AFTER, "5")];
            self.env
                .respond(now, id, &req, 503, "Service Unavailable", &extra);
            return;
        }
        let mut adm = match admission::admit(&cfg, &ingress, &req, self.env.draining) {
            Ok(adm) => adm,
            Err(refusal) => return self.refuse(now, id, &req, &ingress.name, refusal),
        };
        let looped = self.loops_back(&req);
        if let Some(peer) = &looped {
            // Not to the peer it came back from again: the route's others may take it.
            adm.targets.retain(|t| t != peer);
        }
        if looped.is_some() && adm.targets.is_empty() {
            debug!(%source, "our own INVITE came back for the same number, and its route has no other peer: 482");
            let refusal = Refusal {
                status: 482,
                reason: "Loop Detected",
                tag: CallTag::CallerRejected,
                cause: Q850Cause::ROUTING_ERROR,
                extra: vec![],
                number: adm.number,
                caller: adm.caller,
            };
            return self.refuse(now, id, &req, &ingress.name, refusal);
        }
        let calls = self.active_calls();
        if let Err(over) = self.env.limits.admit_call(now, &ingress.name, calls) {
            self.env
                .out
                .push_back(Output::Event(CoreEvent::LimitRefused {
                    peer: ingress.name.clone(),
                    reason: over.label(),
                }));
            let refusal = Refusal {
                status: 503,
                reason: "Service Unavailable",
                tag: CallTag::RateLimited,
                cause: Q850Cause::CONGESTION,
                extra: vec![(Hdr::RETRY_AFTER, over.retry_after().into())],
                number: adm.number,
                caller: adm.caller,
            };
            return self.refuse(now, id, &req, &ingress.name, refusal);
        }
        *counted = Some(ingress.name.clone());
        #[cfg(test)]
        super::super::router::test_fault::strike_new_call();
        let r = self.next_ref;
        self.next_ref += 1;
        let local_tag = self.env.ids.tag(&req.call_id().unwrap_or_default());
        let a = Dialog {
            call_id: req.call_id().unwrap_or_default().into(),
            local_hdr: format!(
                "{};tag={local_tag}",
                req.header(&Hdr::TO).unwrap_or_default()
            )
            .into(),
            local_tag: local_tag.into(),
            remote_hdr: req.header(&Hdr::FROM).unwrap_or_default().into(),
            remote_tag: req.from_tag().map(String::into_boxed_str),
            remote_target: req
                .contact_uri()
                .or_else(|| req.from_uri())
                .unwrap_or_default()
                .into(),
            route_set: req
                .record_route()
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            local_cseq: 1,
            remote_cseq: req.cseq().map(|c| c.0),
            target: self.env.peer_of(&req, source),
            peer_allows: super::super::dialog::allow_of(req.header_tokens(&Hdr::ALLOW)),
            peer_refused: Default::default(),
            answered: false,
        };
        let media = media_plan(
            &mut self.env,
            &cfg,
            &ingress,
            &adm.targets,
            &a.call_id,
            Some(ip),
            now,
        );
        let adm_peer = ingress.name.clone();
        let privacy = req.header_lines(&crate::sip::Hdr::named("Privacy"));
        let mut call = Call::start(CallStart {
            cfg,
            ingress,
            a,
            origin: Origin::Caller(CallerInvite { txn: id, req }),
            route: adm.targets,
            ring_per_peer: adm.ring_per_peer,
            counted_ingress: Some(adm_peer),
            number: adm.number,
            caller: adm.caller,
            started: now,
            started_wall: self.env.wall(now),
            uas_rel: UasRel {
                reliable: adm.reliable_to_caller,
                ..Default::default()
            },
            media,
        });
        call.note_privacy(Side::A, None, &privacy);
        // Filed only once it is built: nothing points at a call that never was.
        self.env.dialogs.insert(&call.a, (r, Side::A));
        if let Some(key) = &setup {
            self.env.dialogs.insert_setup(key, r);
        }
        self.env.owners.insert(id, (r, TxnRole::CallerInvite));
        self.calls.insert(r, Box::new(call));
        // Its own now: released with it.
        *counted = None;
        let ring = adm.ring_timeout;
        self.with_call(r, now, |call, cx| {
            let caller = call.ingress.name.clone();
            call.progress(cx, caller, Direction::Inbound, Stage::Offered);
            call.timers.set(CallTimer::Ring, cx.now + ring);
            let outcome = call.start_attempt(cx);
            call.on_attempt_outcome(cx, outcome);
        });
    }

    /// Refuse an INVITE before it becomes a call: one response, and one CDR within the
    /// peer's `[cdr] refused_rate` (past it the refusal is counted instead).
    fn refuse(&mut self, now: Instant, id: TxnId, req: &Request, peer: &PeerName, no: Refusal) {
        let mut extra: Vec<(Hdr, &str)> = no
            .extra
            .iter()
            .map(|(h, v)| (h.clone(), v.as_str()))
            .collect();
        // The cause the CDR records, told as a refusal of a call is (`[causes] send_reason`):
        // before, only refusals made once the call existed carried it.
        let reason = crate::interop::causes::reason_header(no.cause);
        if (self.env.cfg.profile(peer)).is_some_and(|p| p.causes.send_reason) {
            extra.push((Hdr::REASON, reason.as_str()));
        }
        self.env.respond(now, id, req, no.status, no.reason, &extra);
        if !self.env.refusal_recorded(now, peer, no.tag, no.cause.0) {
            return;
        }
        let call_id = req.call_id().unwrap_or_default();
        info!(%call_id, peer = %peer.0, "refusing call: {} {}", no.status, no.reason);
        let facts = Facts::refused(&call_id, &no.caller, &no.number, &peer.0, now);
        let end = EndInfo::internal(no.tag, no.status, no.cause.0, now);
        let cdr = record(&self.env, facts, end);
        self.env.out.push_back(Output::Cdr(Box::new(cdr), None));
    }
}
