//! Call setup: the caller's INVITE, routing, attempts toward the callee (with failover),
//! the callee's answers, CANCEL and the ring timeout.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::b2bua::{B2bua, ClientPurpose, build_response};
use super::leg::Leg;
use super::media::NoPorts;
use super::outbound::outbound_invite;
use super::reliable::{offers_100rel, reliable_rseq};
use super::state::{Attempt, Call, CallState, EndInfo, Pending2xx};
use super::state::{MediaState, UasRel};
use super::{CallRef, CallTimer, Side};
use crate::cdr::{CallTag, CauseSource};
use crate::config::{DEFAULT_RING_TIMEOUT, Profile};
use crate::interop::causes::{Q850Cause, cause_for_status, reason_header};
use crate::interop::prack::PrackMode;
use crate::interop::uri::{UriPolicy, normalise_number};
use crate::sip::{Hdr, Message, Method, Request, Response, SipError, dialled_number};
use crate::txn::TxnId;

/// Option tags we can honour in a caller's `Require` (100rel unless the caller's profile
/// disables it). Anything else gets 420 (RFC 3261 §8.2.2.3).
const SUPPORTED_EXTENSIONS: &[&str] = &["100rel"];

/// Statuses after which the next peer of the route is tried.
const FAILOVER_STATUSES: &[u16] = &[408, 503];

impl B2bua {
    pub(super) fn on_initial_invite(&mut self, now: Instant, id: TxnId, req: Request) {
        let Some(source) = self.txn.target(&id) else {
            return;
        };
        let Some(ingress) = self.cfg.peer_for_source(source.addr.ip()).cloned() else {
            info!(%source, "INVITE from an address no profile matches: 403");
            self.respond(now, &id, &req, 403, "Forbidden", &[]);
            return;
        };
        // Numbers in global form: a tel: phone-context is applied before routing.
        let plain = UriPolicy::default();
        let number = dialled_number(&req.uri()).map(|n| normalise_number(&n, &plain));
        let caller = req
            .from_uri()
            .and_then(|u| dialled_number(&u))
            .map(|n| normalise_number(&n, &plain))
            .unwrap_or_else(|| "anonymous".into());

        // Refusals before routing: no call is set up, but each one is a CDR.
        let refuse = |status: u16, reason: &str, tag: CallTag, cause: Q850Cause| {
            (status, reason.to_string(), tag, cause)
        };
        let mut refusal = None;
        if self.draining {
            refusal = Some(refuse(
                503,
                "Service Unavailable",
                CallTag::Shutdown,
                Q850Cause::TEMPORARY_FAILURE,
            ));
        } else if matches!(req.max_forwards(), Some(Ok(0))) {
            refusal = Some(refuse(
                483,
                "Too Many Hops",
                CallTag::CallerRejected,
                Q850Cause(25),
            ));
        }
        let unsupported: Vec<String> = req
            .header_lines(&Hdr::REQUIRE)
            .iter()
            .flat_map(|l| {
                l.split(',')
                    .map(|t| t.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|t| {
                !t.is_empty()
                    && !SUPPORTED_EXTENSIONS
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(t))
            })
            .collect();
        let mut unsupported = unsupported;
        let mut require_hdr = false;
        if refusal.is_none() && !unsupported.is_empty() {
            refusal = Some(refuse(
                420,
                "Bad Extension",
                CallTag::CallerRejected,
                Q850Cause::INTERWORKING,
            ));
        } else if refusal.is_none()
            && let Some((status, (h, _))) = Self::prack_refusal(ingress.prack.mode, &req)
        {
            if h == Hdr::UNSUPPORTED {
                unsupported = vec!["100rel".into()];
            } else {
                require_hdr = true;
            }
            let reason = if status == 421 {
                "Extension Required"
            } else {
                "Bad Extension"
            };
            refusal = Some(refuse(
                status,
                reason,
                CallTag::CallerRejected,
                Q850Cause::INTERWORKING,
            ));
        }
        let route = number
            .as_deref()
            .and_then(|n| self.cfg.route_for(&ingress.name, n))
            .cloned();
        if refusal.is_none() && route.is_none() {
            refusal = Some(refuse(
                404,
                "Not Found",
                CallTag::NoRoute,
                Q850Cause::UNALLOCATED,
            ));
        }
        if let Some((status, reason, tag, cause)) = refusal {
            let unsupported = unsupported.join(", ");
            let extra: Vec<(Hdr, &str)> = match status {
                420 => vec![(Hdr::UNSUPPORTED, unsupported.as_str())],
                421 if require_hdr => vec![(Hdr::REQUIRE, "100rel")],
                503 => vec![(Hdr::RETRY_AFTER, "30")],
                _ => vec![],
            };
            info!(call_id = ?req.call_id(), peer = %ingress.name, "refusing call: {status} {reason}");
            self.respond(now, &id, &req, status, &reason, &extra);
            let call = self.new_call(
                now,
                id,
                req,
                source,
                ingress,
                number.unwrap_or_default(),
                caller,
                Vec::new(),
            );
            let r = self.new_call_ref();
            let mut call = call;
            self.end_call(
                now,
                r,
                &mut call,
                EndInfo::internal(tag, status, cause.0, now),
            );
            self.put_back(r, call);
            return;
        }
        let Some(route) = route else { return };
        let ring_timeout = route
            .ring_timeout
            .or_else(|| {
                route
                    .to
                    .first()
                    .and_then(|p| self.cfg.profile(p))
                    .and_then(|p| p.ring_timeout)
            })
            .unwrap_or(DEFAULT_RING_TIMEOUT);
        let call = self.new_call(
            now,
            id.clone(),
            req.clone(),
            source,
            ingress,
            number.unwrap_or_default(),
            caller,
            route.to.clone(),
        );
        let r = self.new_call_ref();
        self.dialogs.insert(
            (call.a.call_id.clone(), call.a.local_tag.clone()),
            (r, Side::A),
        );
        self.register_server_txn(&id, r, Side::A);
        // Answer 100 at once: the caller stops retransmitting while we reach the callee.
        if let Ok(trying) = build_response(&req, 100, "Trying", None, &[]) {
            self.txn.send_response(&id, trying, now, &mut self.txn_out);
        }
        self.set_call_timer(r, CallTimer::Ring, now + ring_timeout);
        let mut call = call;
        if self.wants_anchoring(&call) {
            let recording = self.recording_for(&call, now);
            call.media = Some(MediaState {
                recording,
                ..Default::default()
            });
        }
        if !self.start_attempt(now, r, &mut call) {
            // 47: resource unavailable, when it was the RTP ports that ran out.
            let (tag, cause) = if call.events.iter().any(|e| e == "media_ports_exhausted") {
                (CallTag::MediaUnavailable, Q850Cause(47))
            } else {
                (CallTag::PeerUnreachable, Q850Cause(38))
            };
            self.fail_call(now, r, &mut call, 503, tag, cause);
        }
        self.put_back(r, call);
    }

    #[allow(clippy::too_many_arguments)]
    fn new_call(
        &mut self,
        now: Instant,
        id: TxnId,
        req: Request,
        source: crate::sip::Target,
        ingress: std::sync::Arc<Profile>,
        number: String,
        caller: String,
        targets: Vec<crate::config::PeerName>,
    ) -> Call {
        let local_tag = self.ids.tag();
        // Our 18x to the caller go reliably when its profile wants 100rel and its INVITE
        // offers it (RFC 3262); never when the profile disables it.
        let reliable = match ingress.prack.mode {
            PrackMode::Disabled => false,
            PrackMode::Required => true,
            PrackMode::Supported => offers_100rel(&req),
        };
        let a = Leg {
            call_id: req.call_id().unwrap_or_default(),
            local_hdr: format!(
                "{};tag={local_tag}",
                req.header(&Hdr::TO).unwrap_or_default()
            ),
            local_tag,
            remote_hdr: req.header(&Hdr::FROM).unwrap_or_default(),
            remote_tag: req.from_tag(),
            remote_target: req
                .contact_uri()
                .or_else(|| req.from_uri())
                .unwrap_or_default(),
            route_set: req.record_route(),
            local_cseq: 1,
            remote_cseq: req.cseq().map(|c| c.0),
            target: source,
        };
        Call {
            cfg: self.cfg.clone(),
            state: CallState::Proceeding,
            ingress,
            a,
            a_invite_txn: id,
            a_invite: req,
            b: None,
            attempt: None,
            targets,
            next_target: 0,
            number,
            caller,
            started: now,
            answered: None,
            relayed: Default::default(),
            reinvite_in_progress: false,
            pending_2xx: [None, None],
            acks_sent: Default::default(),
            end: None,
            open_client: 0,
            last_failure: None,
            events: Vec::new(),
            media: None,
            b_rel: Default::default(),
            a_rel: UasRel {
                reliable,
                ..Default::default()
            },
        }
    }

    /// Send the INVITE to the next peer of the route. `false` when none is left.
    pub(super) fn start_attempt(&mut self, now: Instant, r: CallRef, call: &mut Call) -> bool {
        while call.next_target < call.targets.len() {
            let name = call.targets[call.next_target].clone();
            call.next_target += 1;
            let Some(peer) = call.cfg.profile(&name).cloned() else {
                warn!(peer = %name, "route names a peer without a profile; skipping");
                continue;
            };
            let (leg, invite) = match outbound_invite(
                &self.local,
                &mut self.ids,
                &call.a_invite,
                &call.number,
                &call.caller,
                &peer,
            ) {
                Ok(x) => x,
                Err(e) => {
                    warn!(peer = %name, error = %e, "cannot build INVITE; trying next peer");
                    continue;
                }
            };
            let mut invite = invite;
            let ct = invite.header(&Hdr::CONTENT_TYPE);
            match self.anchor_body(
                r,
                call,
                Side::A,
                &invite.body().clone(),
                ct.as_deref(),
                Some(&peer),
            ) {
                Ok(Some(body)) => {
                    if let Err(e) = invite.set_body(body, ct.as_deref()) {
                        warn!(error = %e, "cannot set anchored SDP");
                    }
                }
                Ok(None) => {}
                Err(NoPorts) => {
                    warn!(call_id = %call.a.call_id, "no RTP ports left: refusing the call");
                    call.next_target = call.targets.len();
                    call.events.push("media_ports_exhausted".into());
                    return false;
                }
            }
            if let Some(old) = call.b.take() {
                self.dialogs.remove(&(old.call_id, old.local_tag));
            }
            self.dialogs
                .insert((leg.call_id.clone(), leg.local_tag.clone()), (r, Side::B));
            let target = leg.target;
            call.b = Some(leg);
            call.b_rel = Default::default();
            debug!(peer = %name, call_id = %call.a.call_id, "INVITE toward peer");
            let Some(txn) = self.send_client(now, r, invite.clone(), target, ClientPurpose::Invite)
            else {
                continue;
            };
            call.open_client += 1;
            call.attempt = Some(Attempt {
                peer,
                txn,
                invite,
                got_provisional: false,
                alerted: false,
                cancel_wanted: false,
                cancel_sent: false,
                final_received: false,
            });
            return true;
        }
        false
    }

    /// A response to the current (or an earlier) INVITE attempt.
    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        r: CallRef,
        id: TxnId,
        resp: Response,
    ) {
        let Some(mut call) = self.calls.remove(&r) else {
            return;
        };
        let current = call.attempt.as_ref().is_some_and(|a| a.txn == id);
        if !current {
            // An answer to an attempt we already gave up on (failover raced a late 2xx).
            if resp.is_success() {
                self.kill_fork(now, r, &mut call, &resp);
            }
            self.put_back(r, call);
            return;
        }
        let status = resp.status();
        if resp.is_provisional() {
            self.on_invite_provisional(now, r, &mut call, resp);
        } else if resp.is_success() {
            self.on_invite_2xx(now, r, &mut call, resp);
        } else {
            self.on_invite_failure(now, r, &mut call, status, resp);
        }
        self.put_back(r, call);
    }

    fn on_invite_provisional(&mut self, now: Instant, r: CallRef, call: &mut Call, resp: Response) {
        let status = resp.status();
        let Some(att) = call.attempt.as_mut() else {
            return;
        };
        att.got_provisional = true;
        if (180..=183).contains(&status) {
            att.alerted = true;
        }
        if att.cancel_wanted && !att.cancel_sent {
            self.send_cancel(now, r, call);
            return;
        }
        if status == 100 || call.state != CallState::Proceeding {
            return;
        }
        if resp.to_tag().is_some()
            && let Some(b) = call.b.as_mut()
        {
            update_uac_dialog(b, &resp);
        }
        if let Some(rseq) = reliable_rseq(&resp)
            && !self.on_reliable_from_callee(now, r, call, &resp, rseq)
        {
            return;
        }
        let tag = call.a.local_tag.clone();
        match self.relayed_response(&call.a_invite, &resp, &tag, &call.ingress) {
            Ok(mut out) => {
                self.anchor_response(r, call, Side::B, &mut out);
                self.send_provisional_to_caller(now, r, call, out)
            }
            Err(e) => warn!(error = %e, "cannot relay {status} to caller"),
        }
    }

    fn on_invite_2xx(&mut self, now: Instant, r: CallRef, call: &mut Call, resp: Response) {
        // A retransmitted or forked 2xx finds the attempt already closed.
        close_attempt(call);
        let wanted_gone = call
            .attempt
            .as_ref()
            .is_some_and(|a| a.cancel_wanted || a.cancel_sent);
        if call.state == CallState::Ending || wanted_gone {
            // The 2xx crossed our CANCEL (or the call ended meanwhile): accept and hang up.
            self.kill_fork(now, r, call, &resp);
            return;
        }
        if call.state != CallState::Proceeding {
            // Retransmission or another fork's answer.
            let same = call.b.as_ref().and_then(|b| b.remote_tag.clone()) == resp.to_tag();
            if same {
                let cseq = resp.cseq().map(|c| c.0).unwrap_or(1);
                if let (Some(ack), Some(b)) =
                    (call.acks_sent.get(&(Side::B, cseq)), call.b.as_ref())
                {
                    self.send(b.target, Message::Request(ack.clone()));
                }
            } else {
                self.kill_fork(now, r, call, &resp);
            }
            return;
        }
        if let Some(b) = call.b.as_mut() {
            update_uac_dialog(b, &resp);
        }
        call.state = CallState::Answered;
        call.answered = Some(now);
        self.clear_call_timer(r, CallTimer::Ring);
        let tag = call.a.local_tag.clone();
        let out = match self.relayed_response(&call.a_invite, &resp, &tag, &call.ingress) {
            Ok(mut out) => {
                self.anchor_response(r, call, Side::B, &mut out);
                out
            }
            Err(e) => {
                warn!(error = %e, "cannot relay 2xx to caller");
                self.kill_fork(now, r, call, &resp);
                self.fail_call(
                    now,
                    r,
                    call,
                    500,
                    CallTag::GatewayError,
                    Q850Cause::PROTOCOL_ERROR,
                );
                return;
            }
        };
        let b_cseq = resp.cseq().map(|c| c.0).unwrap_or(1);
        self.deliver_2xx_to_caller(now, r, call, out, b_cseq);
        debug!(call_id = %call.a.call_id, peer = ?call.egress_name(), "call answered");
    }

    fn on_invite_failure(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        status: u16,
        resp: Response,
    ) {
        if !close_attempt(call) || call.state != CallState::Proceeding {
            return;
        }
        if FAILOVER_STATUSES.contains(&status) && call.next_target < call.targets.len() {
            info!(call_id = %call.a.call_id, peer = ?call.egress_name(), status, "failing over to the next peer");
            call.events.push(format!("failover_{status}"));
            call.last_failure = Some((status, resp));
            if self.start_attempt(now, r, call) {
                return;
            }
            if let Some((status, resp)) = call.last_failure.take() {
                self.relay_failure(now, r, call, status, &resp);
            }
            return;
        }
        self.relay_failure(now, r, call, status, &resp);
    }

    /// Pass the callee's final failure to the caller and release the call.
    fn relay_failure(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        status: u16,
        resp: &Response,
    ) {
        let tag = call.a.local_tag.clone();
        let egress = call.profile(Side::B).cloned();
        let (cause, cause_source, reason_sip) = match &egress {
            Some(p) => cause_for_status(status, &resp.header_lines(&Hdr::REASON), &p.causes),
            None => cause_for_status(
                status,
                &resp.header_lines(&Hdr::REASON),
                &Default::default(),
            ),
        };
        if status == 420 && resp.header_has_token(&Hdr::UNSUPPORTED, "100rel") {
            call.events.push("peer_rejected_100rel".into());
        }
        self.clear_reliable(r, call);
        match self.relayed_response(&call.a_invite, resp, &tag, &call.ingress) {
            Ok(mut out) => {
                // The caller learns the cause in its own profile's terms (or not at all).
                out.remove_header(&Hdr::REASON);
                if call.ingress.causes.send_reason {
                    // The callee's own Reason values when it gave a Q.850 one (text and all),
                    // else the cause we determined.
                    let values = if cause_source == CauseSource::ReasonHeader {
                        resp.header_lines(&Hdr::REASON)
                    } else {
                        std::iter::once(reason_header(cause))
                            .chain(reason_sip.clone())
                            .collect()
                    };
                    for v in values {
                        let _ = out.insert_header_before_length(&Hdr::REASON, v);
                    }
                }
                self.txn
                    .send_response(&call.a_invite_txn, out, now, &mut self.txn_out)
            }
            Err(e) => warn!(error = %e, "cannot relay {status} to caller"),
        }
        let cause = cause.0;
        self.end_call(
            now,
            r,
            call,
            EndInfo {
                tag: CallTag::CalleeReject,
                status,
                cause,
                cause_source,
                reason_sip,
                at: now,
            },
        );
    }

    /// The INVITE attempt timed out (Timer B) or could not be sent.
    pub(super) fn on_invite_unreachable(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        timeout: bool,
    ) {
        if !close_attempt(call) || call.state != CallState::Proceeding {
            return;
        }
        let why = if timeout {
            "timeout"
        } else {
            "transport_error"
        };
        warn!(call_id = %call.a.call_id, peer = ?call.egress_name(), "peer unreachable ({why})");
        call.events.push(format!("peer_{why}"));
        if self.start_attempt(now, r, call) {
            return;
        }
        if let Some((status, resp)) = call.last_failure.take() {
            self.relay_failure(now, r, call, status, &resp);
        } else if timeout {
            self.fail_call(
                now,
                r,
                call,
                408,
                CallTag::PeerUnreachable,
                Q850Cause::TIMER_EXPIRY,
            );
        } else {
            self.fail_call(now, r, call, 503, CallTag::PeerUnreachable, Q850Cause(38));
        }
    }

    /// A CANCEL from the caller.
    pub(super) fn on_cancel(&mut self, now: Instant, id: TxnId, req: Request) {
        let invite = self.txn.cancelled_invite(&req);
        let found = invite
            .as_ref()
            .and_then(|i| self.server_txns.get(i).copied())
            .filter(|(_, side)| *side == Side::A);
        let Some((r, _)) = found else {
            self.respond(now, &id, &req, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        let Some(mut call) = self.calls.remove(&r) else {
            return;
        };
        // The 200 to CANCEL carries the tag our INVITE responses carry.
        let tag = call.a.local_tag.clone();
        match build_response(&req, 200, "OK", Some(&tag), &[]) {
            Ok(resp) => self.txn.send_response(&id, resp, now, &mut self.txn_out),
            Err(e) => warn!(error = %e, "cannot answer CANCEL"),
        }
        if call.state == CallState::Proceeding && self.txn.server_pending(&call.a_invite_txn) {
            let (cause, cause_source, reason_sip) =
                match crate::interop::causes::parse_reason(&req.header_lines(&Hdr::REASON)) {
                    crate::interop::causes::ReasonInfo { q850: Some(q), sip } => {
                        (q.0, CauseSource::ReasonHeader, sip)
                    }
                    other => (
                        Q850Cause::NORMAL_CLEARING.0,
                        CauseSource::Internal,
                        other.sip,
                    ),
                };
            self.fail_call_with(
                now,
                r,
                &mut call,
                EndInfo {
                    tag: CallTag::CallerCancel,
                    status: 487,
                    cause,
                    cause_source,
                    reason_sip,
                    at: now,
                },
            );
        }
        self.put_back(r, call);
    }

    /// The ring timeout fired.
    pub(super) fn on_ring_timeout(&mut self, now: Instant, r: CallRef, call: &mut Call) {
        if call.state != CallState::Proceeding {
            return;
        }
        let alerted = call.attempt.as_ref().is_some_and(|a| a.alerted);
        let cause = if alerted {
            Q850Cause::NO_ANSWER
        } else {
            Q850Cause::NO_USER_RESPONDING
        };
        info!(call_id = %call.a.call_id, "ring timeout");
        self.fail_call(now, r, call, 408, CallTag::NoAnswerTimeout, cause);
    }

    /// Answer the caller with a failure of our own making, cancel any attempt, and release.
    pub(super) fn fail_call(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        status: u16,
        tag: CallTag,
        cause: Q850Cause,
    ) {
        self.fail_call_with(now, r, call, EndInfo::internal(tag, status, cause.0, now));
    }

    pub(super) fn fail_call_with(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        info: EndInfo,
    ) {
        let status = info.status;
        let reason = crate::sip::reason_phrase(status);
        let tag = call.a.local_tag.clone();
        let reason_hdr = reason_header(Q850Cause(info.cause));
        let extra: Vec<(Hdr, &str)> = if call.ingress.causes.send_reason {
            vec![(Hdr::REASON, reason_hdr.as_str())]
        } else {
            Vec::new()
        };
        self.clear_reliable(r, call);
        match build_response(&call.a_invite, status, reason, Some(&tag), &extra) {
            Ok(resp) => self
                .txn
                .send_response(&call.a_invite_txn, resp, now, &mut self.txn_out),
            Err(e) => warn!(error = %e, "cannot answer caller with {status}"),
        }
        self.cancel_attempt(now, r, call);
        self.end_call(now, r, call, info);
    }

    /// Stop the current attempt: CANCEL now if a provisional arrived, else as soon as one does.
    pub(super) fn cancel_attempt(&mut self, now: Instant, r: CallRef, call: &mut Call) {
        let Some(att) = call.attempt.as_mut() else {
            return;
        };
        if att.final_received || att.cancel_sent {
            return;
        }
        att.cancel_wanted = true;
        if att.got_provisional {
            self.send_cancel(now, r, call);
        }
    }

    /// CANCEL the attempt's INVITE (RFC 3261 §9.1: same Request-URI, Call-ID, To, From,
    /// CSeq number and top Via branch).
    fn send_cancel(&mut self, now: Instant, r: CallRef, call: &mut Call) {
        let Some(att) = call.attempt.as_mut() else {
            return;
        };
        att.cancel_sent = true;
        let inv = &att.invite;
        let build = || -> Result<Request, SipError> {
            let mut c = Request::new(Method::Cancel, &inv.uri())?;
            for h in [Hdr::VIA, Hdr::FROM, Hdr::TO, Hdr::CALL_ID] {
                c.push_header(
                    &h,
                    inv.header(&h)
                        .ok_or(SipError::MissingHeader("INVITE header"))?,
                )?;
            }
            c.push_header(
                &Hdr::CSEQ,
                format!("{} CANCEL", inv.cseq().map(|x| x.0).unwrap_or(1)),
            )?;
            c.push_header(&Hdr::MAX_FORWARDS, "70")?;
            c.push_header(&Hdr::CONTENT_LENGTH, "0")?;
            Ok(c)
        };
        let target = att.peer.address;
        match build() {
            Ok(c) => {
                self.send_client(now, r, c, target, ClientPurpose::Cancel);
            }
            Err(e) => warn!(error = %e, "cannot build CANCEL"),
        }
    }

    /// A 2xx we do not want (a late answer after CANCEL, a second fork, an abandoned
    /// attempt): ACK it, as RFC 3261 requires, then BYE that dialog.
    pub(super) fn kill_fork(&mut self, now: Instant, r: CallRef, call: &mut Call, resp: &Response) {
        let Some(base) = call.b.clone() else { return };
        let mut leg = base;
        update_uac_dialog(&mut leg, resp);
        let cseq = resp.cseq().map(|c| c.0).unwrap_or(1);
        match leg.ack(cseq, &self.local, &mut self.ids) {
            Ok(ack) => self.send(leg.target, Message::Request(ack)),
            Err(e) => warn!(error = %e, "cannot build ACK"),
        }
        leg.local_cseq = leg.local_cseq.max(cseq);
        match leg.request(Method::Bye, &self.local, &mut self.ids) {
            Ok(bye) => {
                if self
                    .send_client(now, r, bye, leg.target, ClientPurpose::Bye(Side::B))
                    .is_some()
                {
                    call.open_client += 1;
                }
            }
            Err(e) => warn!(error = %e, "cannot build BYE"),
        }
        call.events.push("late_2xx_released".into());
    }

    /// Remember our 2xx on `side` and retransmit it until that side ACKs.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn await_ack(
        &mut self,
        now: Instant,
        r: CallRef,
        call: &mut Call,
        side: Side,
        resp: Response,
        cseq: u32,
        other_cseq: u32,
        txn: TxnId,
    ) {
        let t1 = self.timers.t1;
        call.pending_2xx[Call::slot(side)] = Some(Pending2xx {
            resp,
            cseq,
            other_cseq,
            interval: t1,
            txn,
        });
        if !call
            .leg(side)
            .is_some_and(|l| l.target.transport.is_reliable())
        {
            self.set_call_timer(r, CallTimer::Retransmit2xx(side), now + t1);
        }
        self.set_call_timer(r, CallTimer::AckTimeout(side), now + t1 * 64);
    }
}

/// Record that the attempt got its final outcome (a final response, Timer B, a transport
/// error), once: false when it already had one.
fn close_attempt(call: &mut Call) -> bool {
    if let Some(a) = call.attempt.as_mut() {
        if a.final_received {
            return false;
        }
        a.final_received = true;
    }
    call.open_client = call.open_client.saturating_sub(1);
    true
}

/// Learn the callee's tag, target and route set from a response that creates or confirms
/// the dialog (RFC 3261 §12.1.2).
pub(super) fn update_uac_dialog(b: &mut Leg, resp: &Response) {
    if let Some(tag) = resp.to_tag() {
        b.remote_tag = Some(tag);
        if let Some(to) = resp.header(&Hdr::TO) {
            b.remote_hdr = to;
        }
    }
    if let Some(c) = resp.contact_uri() {
        b.remote_target = c;
    }
    let mut rr = resp.record_route();
    if !rr.is_empty() || resp.is_success() {
        rr.reverse();
        b.route_set = rr;
    }
}
