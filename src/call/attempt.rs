//! Attempts toward the callee: the INVITE to each peer of the route in turn (what the
//! callee answers: `invite_answer`; its failures, and the failover they lead to:
//! `failover`).

use tracing::{debug, info, warn};

use super::anchor::AnchorError;
use super::cx::{Cx, Rewrite};
use super::events::CallEvent;
use super::limits::Over;
use super::outbound::outbound_invite;
use super::phase::AttemptState;
use super::state::{Attempt, Call, StreamUse, TxnRole};
use super::timers::CallTimer;
use super::{CoreEvent, Direction, Output, Side, Stage};
use crate::config::{DEFAULT_RING_TIMEOUT, Profile};
use crate::interop::egress::Sender;
use crate::interop::uri::{UriPolicy, request_uri};
use crate::sip::{Hdr, Request, Target};
use crate::txn::TxnId;

/// What came of trying to send the INVITE onward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    /// Every peer of the route was tried (or could not be written to).
    NoPeerLeft,
    /// The call's media could not be anchored: no RTP ports left.
    NoMediaPorts,
    /// The caller's SDP cannot be anchored (unreadable, too many streams): 488, with what
    /// it says why.
    BadSdp(crate::sdp::SdpWarning),
    /// Every peer left was over one of its `[limits]`: 503 with Retry-After.
    RateLimited(Over),
}

impl Call {
    /// Start a client transaction of this call; it stays open until its final answer.
    pub(super) fn start_client(
        &mut self,
        cx: &mut Cx,
        req: Request,
        target: Target,
        role: TxnRole,
    ) -> Option<TxnId> {
        self.start_client_timed(cx, req, target, role, None)
    }

    /// [`Call::start_client`] for an INVITE attempt to a peer whose `[sip]
    /// invite_timeout_s` is `silence` (a front is told it).
    pub(super) fn start_client_timed(
        &mut self,
        cx: &mut Cx,
        req: Request,
        target: Target,
        role: TxnRole,
        silence: Option<std::time::Duration>,
    ) -> Option<TxnId> {
        let id = cx.send_client(req, target, role, silence)?;
        self.open.push(id);
        Some(id)
    }

    /// Send the INVITE to the next peer of the route.
    pub(super) fn start_attempt(&mut self, cx: &mut Cx) -> AttemptOutcome {
        // The callee before this one failed.
        self.let_callee_go(cx);
        let mut limited = None;
        while let Some(name) = self.route.take_next().cloned() {
            let Some(peer) = self.cfg.profile(&name).cloned() else {
                warn!(peer = %name, "route names a peer without a profile; skipping");
                continue;
            };
            // A reload since the call began took the peer out (a trunk removed after fraud,
            // say), or moved it (another `address`: its old SBC dead, or not to be trusted):
            // no new INVITE goes to it as the call's configuration had it, though the call's
            // route still names it. Before, a moved peer was sent the INVITE at its old
            // address, with its old settings and credentials. (A `match` widened or narrowed
            // changes where it is heard from, not where its INVITE goes.)
            let same_peer = (cx.env.cfg.profile(&name)).is_some_and(|now| {
                (now.address.addr, now.address.transport)
                    == (peer.address.addr, peer.address.transport)
            });
            if !same_peer {
                info!(peer = %name, "a reload removed or moved this peer: not tried");
                continue;
            }
            // Pinged and not answering (`[sip] ping_s`): its INVITE would wait out its
            // timeout for nothing.
            if cx.env.health.is_down(&name) {
                debug!(peer = %name, "peer down (no answer to its pings): not tried");
                self.events.push(CallEvent::PeerDown(name));
                continue;
            }
            // A peer tried in an earlier turn of this loop no longer carries this call.
            if let Some(prev) = self.counted_egress.take() {
                cx.env.limits.release(&prev);
            }
            if let Err(over) = cx.env.limits.admit_attempt(cx.now, &name) {
                debug!(peer = %name, reason = over.label(), "peer over its limits; trying the next");
                self.events.push(CallEvent::PeerLimited(over.label()));
                cx.emit(Output::Event(CoreEvent::LimitRefused {
                    peer: name,
                    reason: over.label(),
                }));
                limited = Some(over);
                continue;
            }
            self.counted_egress = Some(name.clone());
            // A call-back's numbers come from the application server, not from a peer's
            // callers: read with the receiving peer's own prefixes.
            let mut sender = Sender::of(Some(&self.ingress));
            if self.third_party().is_some() {
                sender.plan = None;
            }
            let built = outbound_invite(
                &cx.env.local,
                &mut cx.env.ids,
                self.template(),
                &self.number,
                &self.caller,
                &peer,
                sender,
            );
            let (dialog, mut invite) = match built {
                Ok(x) => x,
                Err(e) => {
                    warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                    continue;
                }
            };
            if let Err(e) = self.shape_callback_invite(&mut invite) {
                warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                continue;
            }
            // The peer's registrar's `Service-Route` (RFC 3608 §6: an IMS network's S-CSCF)
            // goes on its calls' INVITEs as their route; not through a front, which routes
            // by the peer it is told (`Env::toward`) and would take the Route's first hop.
            if let Some(routes) =
                (cx.env.service_routes.get(&name)).filter(|_| cx.env.cfg.front.is_none())
                && let Err(e) = (routes.iter()).try_for_each(|r| {
                    invite.insert_header_before_length(&Hdr::ROUTE, r.to_string())
                })
            {
                warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                continue;
            }
            if let Err(e) = self.offer_callers_session(cx, &peer, &mut invite) {
                warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                continue;
            }
            // A late offer (no SDP) from a caller without 100rel: the callee must not offer
            // in a reliable provisional, whose PRACK would need the caller's answer (RFC 3262
            // §5), which nobody can give. Not even to a peer whose profile requires 100rel:
            // one that insists answers 421 and the attempt ends as for any 421 (the caller
            // gets 500), where a Require kept would have the gateway PRACK an offer without
            // its answer.
            if !self.uas_rel.reliable
                && self.caller_txn().is_some()
                && !super::anchor::carries_sdp(&invite)
                && let Err(e) =
                    super::third_party::without_100rel(&mut invite, &[Hdr::SUPPORTED, Hdr::REQUIRE])
            {
                warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                continue;
            }
            // (After every change but anchoring, which counts itself.)
            self.count_invite_rewrites(cx, &invite, &peer);
            // A new callee: what the one before said of the streams does not carry over.
            // (An INVITE with SDP tells the relay again as it is anchored; one without
            // would not.)
            self.forget_callee_media(cx, Some(&peer));
            // A late offer on an anchored call takes its ports when the callee's offer comes,
            // in a response that cannot be refused: with none left then, the call would be
            // answered with every stream refused, silent and billed. Refused now instead, as
            // an offer is, when not even one stream's ports are left (a pool emptied between
            // the INVITE and the callee's offer, or one with room for its audio but not for
            // the video it offers too, still has it so).
            let late_without_ports = (self.media.as_ref())
                .is_some_and(|m| m.pairs.iter().all(Option::is_none))
                && !super::anchor::carries_sdp(&invite)
                // (A stream takes a port on each leg.)
                && cx.env.pool.available() < 2;
            match self
                .anchor_offer(cx, Side::A, &mut invite, Some(&peer))
                .and(match late_without_ports {
                    true => Err(AnchorError::NoPorts),
                    false => Ok(()),
                }) {
                Ok(()) => {}
                Err(AnchorError::NoPorts) => {
                    warn!(call_id = %self.call_id(), "no RTP ports left: refusing the call");
                    self.route.stop();
                    self.events.push(CallEvent::MediaPortsExhausted);
                    return AttemptOutcome::NoMediaPorts;
                }
                Err(AnchorError::Unreadable(e)) => {
                    debug!(call_id = %self.call_id(), error = %e, "caller's SDP cannot be anchored: 488");
                    self.route.stop();
                    return AttemptOutcome::BadSdp(e.warning());
                }
                // (Said where it is found.)
                Err(AnchorError::OtherFamily) => {
                    self.route.stop();
                    return AttemptOutcome::BadSdp(crate::sdp::SdpWarning::OTHER_FAMILY);
                }
            }
            let target = dialog.target;
            // A new peer: its challenges, if any, are its own; so are its branches. The
            // earlier peer's are kept with it: a late 2xx of its is ACKed and hung up with
            // its own credentials.
            self.keep_earlier_peer(cx);
            let earlier = self.b.replace(dialog);
            self.forget_early_forks();
            debug!(peer = %name, call_id = %self.call_id(), "INVITE toward peer");
            let role = TxnRole::Invite(self.route.attempt());
            let silence = peer.invite_timeout;
            let Some(txn) = self.start_client_timed(cx, invite.clone(), target, role, silence)
            else {
                // Never sent: the CDR's egress Call-ID must not name it, but the earlier
                // peer's, which `egress_peer` still names (not indexed any more).
                self.b = earlier;
                continue;
            };
            // Indexed once its INVITE went: a dialog whose INVITE could not start would stay
            // in the index after the call (only the last attempt's is removed then).
            if let Some(b) = self.b.as_ref() {
                cx.add_dialog(b, Side::B);
            }
            let name = peer.name.clone();
            if self.route.ring_per_peer {
                let ring = peer.ring_timeout.unwrap_or(DEFAULT_RING_TIMEOUT);
                self.timers.set(CallTimer::Ring, cx.now + ring);
            }
            let asked_se = peer.session_timer.asked(None);
            let offered = super::anchor::carries_sdp(&invite);
            self.attempt = Some(Attempt {
                peer,
                txn,
                invite: Some(Box::new(invite)),
                state: AttemptState::Calling,
                asked_se,
                retried_422: false,
                offered,
            });
            self.arm_invite_timeout(cx.now);
            self.progress(cx, name, Direction::Outbound, Stage::Offered);
            return AttemptOutcome::Sent;
        }
        match limited {
            Some(over) => AttemptOutcome::RateLimited(over),
            None => AttemptOutcome::NoPeerLeft,
        }
    }

    /// Nothing the callee said of the streams, or was shown, carries over to the next one
    /// (the caller's RTP must not go on to a callee that failed); the relay is told at once
    /// (`peer`: the next callee's profile, when one is being set up).
    pub(super) fn forget_callee_media(&mut self, cx: &mut Cx, peer: Option<&Profile>) {
        if let Some(m) = self.media.as_mut() {
            m.remote.b.iter_mut().for_each(|r| *r = None);
            m.b_branch = None;
            m.branches = Vec::new();
            m.uses.iter_mut().for_each(|u| *u = StreamUse::default());
            m.shown.b = None;
            m.callee = m.callee.wrapping_add(1);
            m.heard.b = false;
            // A failed callee's offers say nothing of what the next one may answer.
            m.offered.b = None;
            m.directions.b.clear();
            if m.proposed.as_ref().is_some_and(|(s, _)| *s == Side::B) {
                m.proposed = None;
            }
            self.emit_relay(cx, peer);
        }
    }

    /// Count what the INVITE built for the peer changed of the caller's (anchoring counts
    /// itself).
    fn count_invite_rewrites(&self, cx: &mut Cx, invite: &Request, peer: &Profile) {
        let template = self.template();
        // (A late offer may carry the caller's early answer, alone or beside its ISUP: not a
        // rewrite of the caller's SDP, and counted where it is shaped.) The caller's SDP is
        // its session as it last offered it.
        let (session, session_ct) = self.callers_session_over(template).map_or(
            (template.body(), template.header(&Hdr::CONTENT_TYPE)),
            |(body, ct)| (body, ct.clone()),
        );
        // Its SDP compared, not the whole body: an ISUP withheld from this peer is no ptime.
        let sdp_of = |body: &[u8], ct: Option<String>| {
            crate::sdp::locate(ct.as_deref(), body)
                .ok()
                .flatten()
                .map(|p| p.of(body).to_vec())
        };
        if peer.ptime.is_some()
            && super::anchor::carries_sdp(template)
            && sdp_of(invite.body(), invite.header(&Hdr::CONTENT_TYPE))
                != sdp_of(session, session_ct)
        {
            cx.env.rewrote(Rewrite::Ptime);
        }
        let plain = request_uri(&self.number, false, &UriPolicy::default(), &peer.domain);
        if invite.uri() != plain {
            cx.env.rewrote(Rewrite::RequestUri);
        }
        let rel = |r: &Request| {
            (
                r.header_has_token(&Hdr::SUPPORTED, "100rel"),
                r.header_has_token(&Hdr::REQUIRE, "100rel"),
            )
        };
        if rel(invite) != rel(template) {
            cx.env.rewrote(Rewrite::Prack100rel);
        }
    }

    /// The current attempt got its final outcome: false when it already had one.
    /// Whether the called party was rung (180–183) by the attempt out now or by an earlier
    /// peer of the route before it failed: a ring timeout, or a callee's 408, is then the
    /// party not answering (480, cause 19), and another peer would ring it again.
    pub(super) fn party_alerted(&self) -> bool {
        self.route.rang || self.attempt.as_ref().is_some_and(|a| a.state.alerted())
    }

    pub(super) fn finish_attempt(&mut self) -> bool {
        let Some(att) = self.attempt.as_mut() else {
            return false;
        };
        self.route.rang |= att.state.alerted();
        let first = att.state.finish();
        att.invite = None;
        let txn = att.txn;
        self.close_txn(txn);
        first
    }
}
