//! Relaying a request from one leg's peer to the other's (re-INVITE, UPDATE, INFO, REFER,
//! a transfer's NOTIFY, the caller's PRACK offer as an UPDATE): built in the far dialog,
//! its offer anchored, started as a [`Relayed`] (its answers: `relayed`).

use tracing::{debug, warn};

use super::Side;
use super::anchor;
use super::cx::Cx;
use super::prack_offer::PRACK_OFFER_WAIT_T1;
use super::state::{
    Call, MAX_RELAYED, RELAYED_FOR_SESSIONS, Relayed, RelayedRefer, Standing, TxnRole,
};
use super::timers::CallTimer;
use crate::interop::egress::{copy_end_to_end, identity_header, shaped_body};
use crate::interop::transfer::{ReferError, refer_event_naming, refer_target};
use crate::sip::{Hdr, Method, Request, Transport};
use crate::txn::TxnId;

/// The longest body of an INFO, NOTIFY, REFER or OPTIONS relayed to a leg over UDP (DTMF by
/// INFO, a transfer's report, a picture-update request: a few hundred bytes at most). A
/// longer one goes as IP fragments, which carriers' firewalls often drop: each sent again
/// for 32 s (some eleven times its size out for its size in) and held per call meanwhile,
/// then the call released as if the far peer had gone. Refused with `513` instead.
const MAX_UDP_RELAYED_BODY: usize = 4096;
/// The longest body of any request relayed to a leg over UDP: past it, with our headers,
/// the datagram cannot be sent at all (a re-INVITE's from a peer on TCP, say).
const MAX_UDP_BODY: usize = 60_000;

impl Call {
    /// Relay `req` (server transaction `id`) from `side`'s peer to the other leg as a request
    /// of that leg's dialog, a [`Relayed`]: its answer comes back through
    /// [`Call::on_relayed_response`]. The caller's
    /// PRACK with a new offer goes as an UPDATE in the callee's early dialog
    /// (`prack_offer.rs`); what would refuse another request answers it 200 without SDP.
    pub(super) fn relay_request(&mut self, cx: &mut Cx, side: Side, id: TxnId, req: Request) {
        let other = side.other();
        let method = req.method();
        // A caller's dialog is always ready; a callee's (or a call-back's user1's) once its
        // peer's tag is known, or it answered without one (RFC 3261 §12.1.2: an RFC 2543
        // peer's dialog, its remote tag null).
        let caller = other == Side::A && self.caller_txn().is_some();
        // (A failover waiting for the caller's answer has no callee to relay to.)
        let ready = self
            .dialog(other)
            .is_some_and(|l| caller || l.answered || l.remote_tag.is_some())
            && !(other == Side::B && self.uas_rel.failover_waits);
        let from_trunk = self.is_trunk(side);
        let Some(profile) = self.profile(other).cloned().filter(|_| ready) else {
            return self.refuse_relay(cx, id, &req, 491, "Request Pending", &[]);
        };
        // An offer in an early UPDATE toward a forking proxy's branches would change one
        // branch's session while another may answer the call: answered here, as when the
        // callee takes no UPDATE (the session stays as it was). Toward one branch it goes,
        // also before that branch's answer was reliable (`README.md`: phones send it after
        // an unreliable 183, and a callee that cannot take it says so itself).
        if other == Side::B
            && method == Method::Update
            && anchor::carries_sdp(&req)
            && self.has_other_branch()
        {
            debug!(call_id = %self.call_id(), "an early UPDATE's offer toward a callee with several branches: 500");
            let retry = [(Hdr::RETRY_AFTER, "5")];
            return cx.respond(id, &req, 500, "Server Internal Error", &retry);
        }
        // An offer in the callee's early UPDATE toward a caller that takes 100rel whose own
        // early offer/answer is not done (our reliable 18x carrying the answer to its INVITE
        // not yet PRACKed, or, to its INVITE without SDP, its answer not yet given): RFC
        // 3311 §5.1 forbids that UPDATE on the caller's leg, where the gateway is the UAS,
        // and the caller would refuse it. Answered here; the callee tries again later
        // (§5.2's 500 and Retry-After). (A caller without 100rel never has it done reliably:
        // it is sent the UPDATE as before, and says itself whether it takes it.)
        if other == Side::A
            && method == Method::Update
            && anchor::carries_sdp(&req)
            && self.phase.is_routing()
            && self.uas_rel.reliable
            && !self.uas_rel.answer_acked
            && self.uas_rel.early_answer.is_none()
        {
            debug!(call_id = %self.call_id(), "an early UPDATE's offer toward a caller whose own offer/answer is not done: 500");
            let retry = [(Hdr::RETRY_AFTER, "2")];
            return cx.respond(id, &req, 500, "Server Internal Error", &retry);
        }
        // The caller's PRACK offer goes as an UPDATE in the callee's early dialog.
        let mut send_as = if method == Method::Prack {
            Method::Update
        } else {
            method.clone()
        };
        // An offer in an UPDATE toward a peer that takes no UPDATE: after the answer it goes
        // as a re-INVITE (which the gateway ACKs itself); before, it is answered here.
        if matches!(method, Method::Update | Method::Info) && !self.peer_takes(other, &method) {
            let confirmed = matches!(self.phase, super::phase::Phase::Confirmed { .. });
            if method == Method::Update && anchor::carries_sdp(&req) && confirmed {
                // One INVITE at a time within the far dialog (RFC 3261 §14.1), and none
                // before the ACK of its last 2xx.
                if self.reinvite_in_progress()
                    || self.pending_2xx[other].is_some()
                    || self.invite_toward(other)
                {
                    cx.respond(id, &req, 491, "Request Pending", &[]);
                    return;
                }
                send_as = Method::Invite;
            } else {
                return self.answer_for_the_other_leg(cx, side, id, &req);
            }
        }
        // Trickle ICE's candidates (RFC 8840, an INFO of package `trickle-ice`) name the
        // sender's own addresses, LAN ones among them: on an anchored call, where the
        // gateway answers no ICE and hides them from the SDP, they are not passed on
        // either. 469 to the package (RFC 6086 §4.2.2; its Recv-Info lists none, as the
        // gateway does not know which the far side takes); 415 to a legacy INFO that
        // carries the fragment without naming the package.
        if method == Method::Info && self.media.is_some() {
            match trickle_ice(&req) {
                Some(true) => {
                    debug!(call_id = %self.call_id(), "trickle-ICE INFO on an anchored call: 469");
                    let recv = (Hdr::named("Recv-Info"), "");
                    return self.refuse_relay(cx, id, &req, 469, "Bad Info Package", &[recv]);
                }
                Some(false) => {
                    debug!(call_id = %self.call_id(), "trickle-ICE fragment on an anchored call: 415");
                    return self.refuse_relay(cx, id, &req, 415, "Unsupported Media Type", &[]);
                }
                None => {}
            }
        }
        // A REFER's target via the gateway, or its refusal before anything is sent.
        let refer_to = match (method == Method::Refer).then(|| {
            // Every line: two Refer-To headers are two targets, refused as one line listing
            // two is (RFC 3515 §2.4.1).
            // (Our address as the transferee reaches us: its leg's transport.)
            let transport = self
                .dialog(other)
                .map_or(Transport::Udp, |d| d.target.transport);
            refer_target(
                &req.header_lines(&Hdr::named("Refer-To")).join(", "),
                &cx.env.local.dial_at_over(transport),
                from_trunk,
                &self.cfg.dial_plans(),
            )
        }) {
            Some(Err(e)) => {
                debug!(call_id = %self.call_id(), error = %e, "REFER refused");
                let (status, reason) = if e == ReferError::Missing {
                    (400, "Bad Refer-To")
                } else {
                    (403, "Forbidden")
                };
                cx.respond(id, &req, status, reason, &[]);
                return;
            }
            Some(Ok(to)) => Some(to),
            None => None,
        };
        // Max-Forwards counts hops a request is forwarded (RFC 3261 §16.3): one the gateway
        // answers itself (a PRACK, a refresh, a BYE, an OPTIONS for the other leg) is taken
        // whatever it says; one it would forward with none left gets 483.
        if matches!(req.max_forwards(), Some(Ok(0))) {
            return self.refuse_relay(cx, id, &req, 483, "Too Many Hops", &[]);
        }
        let session = matches!(method, Method::Invite | Method::Update | Method::Prack);
        let room = MAX_RELAYED - if session { 0 } else { RELAYED_FOR_SESSIONS };
        // (A call's requests past its pace are refused alike: the sender tries again. A
        // re-INVITE or UPDATE too, at a pace of their own: one at a time, each sent as the
        // last one's 200 came, was a flood of its own.)
        let pace = match method {
            Method::Prack => None,
            _ if session => Some(&mut cx.env.session_pace),
            _ => Some(&mut cx.env.relay_pace),
        };
        let over_pace = pace.is_some_and(|p| !p.take(cx.r, cx.now));
        if self.relayed.len() >= room || over_pace {
            let retry = [(Hdr::RETRY_AFTER, "1")];
            return self.refuse_relay(cx, id, &req, 500, "Server Internal Error", &retry);
        }
        let mf = match req.max_forwards() {
            Some(Ok(n)) => n.saturating_sub(1),
            _ => 70,
        };
        let Some(leg) = self.dialog_mut(other) else {
            return;
        };
        let target = leg.target;
        let most = if session {
            MAX_UDP_BODY
        } else {
            MAX_UDP_RELAYED_BODY
        };
        // (A transfer's report goes as its status line alone: measured so.)
        let report = (method == Method::Notify)
            .then(|| super::transfer::sipfrag_status_line(req.body()))
            .flatten();
        let going = report.map_or(req.body().len(), |line| line.len());
        if !target.transport.is_reliable() && going > most {
            return self.refuse_relay(cx, id, &req, 513, "Message Too Large", &[]);
        }
        let Some(leg) = self.dialog_mut(other) else {
            return;
        };
        let local = &cx.env.local;
        // A re-INVITE or UPDATE is a session refresh of the far leg too (the PRACK's offer
        // in its UPDATE included: one that crosses the callee's 2xx is one to the callee,
        // and without Session-Expires would turn its timer off, RFC 4028 §9).
        let restates = matches!(send_as, Method::Invite | Method::Update);
        // Whether `[sdp] ptime` changed its body (counted as a rewrite).
        let mut reshaped = false;
        let built = leg
            .request(send_as, local, &mut cx.env.ids)
            .and_then(|mut out| {
                out.set_header(&Hdr::MAX_FORWARDS, mf.to_string())?;
                copy_end_to_end(&mut out, &req, local, &profile, self.sender(side))?;
                if method == Method::Notify
                    && let Some(event) = req.header(&Hdr::EVENT)
                    && let Some(origin_cseq) = self.refer_reported(side, &event)
                {
                    // The referrer knows its REFER by its own CSeq, not ours.
                    out.set_header(&Hdr::EVENT, refer_event_naming(&event, origin_cseq))?;
                }
                if method == Method::Refer {
                    if let Some(to) = refer_to {
                        out.push_header(&Hdr::named("Refer-To"), to)?;
                    }
                    let by_hdr = Hdr::named("Referred-By");
                    // Who referred, as any identity: from a peer that is believed, and not
                    // to a peer outside the trust domain when the referrer is private.
                    let sender = self.sender(side);
                    let privacy = sender.privacy(req.header_lines(&Hdr::named("Privacy")));
                    let shown = sender.asserts
                        && !crate::interop::headers::hides_caller(&profile.headers, &privacy);
                    if let Some(by) = req
                        .header(&by_hdr)
                        .filter(|_| shown)
                        // (`[headers] strip` takes it off, as any identity header.)
                        .filter(|_| !profile.headers.strip.contains(&by_hdr))
                        .filter(|v| crate::interop::egress::buildable(v))
                        // One referrer (RFC 3892 §3): a list is not rewritten whole.
                        .and_then(|by| crate::sip::split_header_list(&by).into_iter().next())
                        .and_then(|by| {
                            let h = Hdr::named("Referred-By");
                            identity_header(&h, &by, local, &profile, self.sender(side))
                        })
                    {
                        out.push_header(&Hdr::named("Referred-By"), by)?;
                    }
                }
                if req.body().is_empty() {
                    out.set_no_body()?;
                } else if method == Method::Notify
                    && let Some(status) = super::transfer::sipfrag_status_line(req.body())
                {
                    // A transfer's report is its status line: the transferee's message
                    // fragment may hold the new call's headers (its Contact, the far
                    // party's identity), which are the other leg's business.
                    out.set_body(status, Some("message/sipfrag"))?;
                } else {
                    let ct = req.header(&Hdr::CONTENT_TYPE);
                    let shaped = shaped_body(&profile, &req);
                    reshaped = shaped != *req.body();
                    out.set_body(shaped, ct.as_deref())?;
                    let isdn = &crate::interop::isdn::for_peer(&profile, &mut out);
                    if isdn.is_err() && crate::interop::isdn::may_carry_session(&req.method(), None)
                    {
                        return Err(crate::interop::isdn::Inseparable.into());
                    }
                }
                Ok(out)
            })
            .and_then(|mut out| {
                if restates {
                    self.restate_session(other, &mut out)?;
                }
                Ok(out)
            });
        if built.is_ok() && reshaped {
            cx.env.rewrote(super::cx::Rewrite::Ptime);
        }
        let mut out = match built {
            Ok(out) => out,
            Err(e) => {
                warn!(error = %e, "cannot relay {method}");
                return self.refuse_relay(cx, id, &req, 500, "Server Internal Error", &[]);
            }
        };
        // SDP in a request that cannot offer (an INFO, an OPTIONS) changes nothing of the
        // call's media, and goes on with every stream refused.
        let offers = anchor::may_offer(&method);
        if !offers {
            self.neutralise_sdp(&mut out);
        }
        let standing = (offers && anchor::carries_sdp(&out)).then(|| {
            Box::new(Standing {
                far_sent: self.sdp[other].as_ref().and_then(|s| s.sent.clone()),
                far_uncut: self.sdp[other].as_ref().and_then(|s| s.uncut.clone()),
                origin_received: self.sdp[side]
                    .as_ref()
                    .and_then(|s| s.received_origin.clone()),
                origin_sent: self.sdp[side].as_ref().and_then(|s| s.sent.clone()),
                origin_uncut: self.sdp[side].as_ref().and_then(|s| s.uncut.clone()),
                far_received: self.sdp[other]
                    .as_ref()
                    .and_then(|s| s.received_origin.clone()),
                media: self.media.as_deref().cloned(),
                early: self.phase.is_routing(),
                deferred_2xx: None,
            })
        });
        if offers && let Err(e) = self.anchor_offer(cx, side, &mut out, None) {
            // The far leg must never get an offer we cannot relay media for. Ports the spare
            // logic moved before the pool ran dry go back to their streams.
            if let Some(before) = standing.as_ref().and_then(|s| s.media.as_ref()) {
                self.media_as_before(cx, before);
            }
            let warning = e.warning().map(|w| w.value(&cx.env.local.uri_host()));
            match e {
                // An operator's sizing problem, not a peer's: said as loudly as for a new
                // call, and in the CDR (a call whose video could not be added, say).
                anchor::AnchorError::NoPorts => {
                    warn!(call_id = %self.call_id(), "no RTP ports left: {method} offer refused with 488");
                    self.events
                        .push_once(super::events::CallEvent::MediaPortsExhausted);
                }
                anchor::AnchorError::Unreadable(e) => {
                    debug!(call_id = %self.call_id(), error = %e, "{method} offer refused")
                }
                anchor::AnchorError::OtherFamily => {}
            }
            let extra: Vec<(Hdr, &str)> = (warning.iter())
                .map(|w| (Hdr::named("Warning"), w.as_str()))
                .collect();
            return self.refuse_relay(cx, id, &req, 488, "Not Acceptable Here", &extra);
        }
        self.carry_identity(&cx.env.local, other, &mut out);
        self.sign(cx, other, &mut out);
        // Another offer relayed while a re-INVITE without SDP waits (an UPDATE, RFC 3311)
        // makes that re-INVITE's snapshot stale: its failure then drops only the far leg's
        // offer, as before snapshots were taken.
        if standing.is_some() {
            for (_, r) in &mut self.relayed {
                r.media_before = None;
            }
        }
        let media_before = (method == Method::Invite && !anchor::carries_sdp(&out))
            .then(|| self.media.as_deref().cloned().map(Box::new))
            .flatten();
        let relayed = Relayed {
            origin: side,
            origin_txn: id,
            origin_req: req,
            method,
            sent: out.clone(),
            heard: false,
            cancelled: false,
            standing,
            media_before,
            retried_422: false,
        };
        if relayed.method == Method::Refer {
            self.remember_refer(RelayedRefer {
                toward: other,
                sent_cseq: relayed.sent.seq(),
                origin_cseq: relayed.origin_req.seq(),
                ended: false,
            });
        }
        let prack = relayed.method == Method::Prack;
        match self.start_client(cx, out, target, TxnRole::Relay) {
            Some(txn) => {
                // A refresh from `side` (it restates the timer) is on its way: the peer is
                // alive, whatever the other leg answers (`session.rs`).
                if matches!(relayed.method, Method::Invite | Method::Update) {
                    self.refresh_heard(cx, side, &relayed.origin_req);
                }
                self.relayed.push((txn, relayed));
                if prack {
                    let deadline = cx.now + cx.env.timers.t1 * PRACK_OFFER_WAIT_T1;
                    self.timers.set(CallTimer::PrackOffer, deadline);
                }
            }
            None => {
                // A request of ours without a transaction key (it always has one): the origin
                // is answered, and its offer changed nothing.
                warn!(call_id = %self.call_id(), "cannot start the relayed {}", relayed.method);
                self.offer_not_taken(cx, &relayed);
                let req = &relayed.origin_req;
                self.refuse_relay(cx, id, req, 500, "Server Internal Error", &[]);
            }
        }
    }

    /// A request that cannot be relayed gets `status`; the caller's PRACK, which must get a
    /// 2xx, gets 200 without an answer to its offer.
    fn refuse_relay(
        &mut self,
        cx: &mut Cx,
        id: TxnId,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(Hdr, &str)],
    ) {
        if req.method() == Method::Prack {
            // (Not the callee's refusal, ours: it was never sent.)
            let _ = status;
            self.prack_offer_not_taken(cx, id, req, 0);
        } else {
            cx.respond(id, req, status, reason, extra);
        }
    }
}

/// Whether an INFO carries trickle ICE (RFC 8840): `Some(true)` of its package,
/// `Some(false)` its fragment type without the package (a legacy INFO).
fn trickle_ice(req: &Request) -> Option<bool> {
    let has =
        |v: Option<String>, what: &str| v.is_some_and(|v| v.to_ascii_lowercase().contains(what));
    if has(req.header(&Hdr::named("Info-Package")), "trickle-ice") {
        return Some(true);
    }
    has(req.header(&Hdr::CONTENT_TYPE), "trickle-ice-sdpfrag").then_some(false)
}
