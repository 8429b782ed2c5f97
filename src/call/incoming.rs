//! What arrives that is not (yet) a call's: the checks every message passes first, requests
//! outside any dialog (OPTIONS keepalives, strays), and initial INVITEs, which admission
//! turns into a call or into one refusal and one CDR.

use std::time::Instant;

use tracing::debug;

use super::router::B2bua;
use super::{CoreEvent, Output};
use crate::config::UnknownSources;
use crate::interop::egress::{ACCEPT, ALLOW};
use crate::interop::prack::PrackMode;
use crate::sip::ingress::{self, Verdict};
use crate::sip::{Hdr, Message, Method, Request, Target};
use crate::txn::TxnId;

mod new_call;

/// Server transactions kept at most. The most a gateway at its capacity keeps is about
/// 2,500 INVITEs a second for 32 s (Timer L after their 2xx) and as many BYEs (Timer J):
/// some 160,000. Past the bound new requests outside the calls up are dropped (see
/// `refused_statelessly`), so no flood can grow the table (and the memory it holds) past
/// 1.25 times the bound and twice the calls.
pub const MAX_SERVER_TRANSACTIONS: usize = 262_144;

/// What one server transaction may hold on average (its entry, key and the response it
/// keeps: about 1–1.5 KiB for an ordinary request, up to 3 KiB for a ringing INVITE's 183
/// with SDP): the table's bound in bytes is this many times its bound in entries (512 MiB
/// at the default), which a flood of long requests reaches long before the count. An
/// estimate, not a measurement, for a gateway at its capacity: 2,500 calls a second ringing
/// 20 s with 2.5 KiB 183s hold about 150 MiB in INVITEs, and their BYEs and answered INVITEs
/// kept 32 s some 200 MiB more.
pub const TXN_BYTES: usize = 2048;

impl B2bua {
    /// A message off the wire: checked once, then to the transaction layer.
    pub(super) fn on_message(&mut self, now: Instant, msg: Message, source: Target) {
        // Strangers first, before any check answers them or any state exists for them.
        // The front's own requests (its OPTIONS pings) carry no source of another: not a
        // stranger's.
        if let Message::Request(req) = &msg
            && self.env.origin_peer(req, source).is_none()
            && !(self.env.is_front(source)
                && req.header(&Hdr::named(super::cx::SOURCE_HEADER)).is_none())
            && !(self.env.peers_moved() && self.is_from_a_legs_peer(req, source))
            && !self.is_from_a_legs_address(req, source)
        {
            return self.unknown_source(req, source);
        }
        match ingress::check(msg, source, &self.env.local) {
            Verdict::Accept(msg) => {
                let Some(msg) = self.unbelieved_body(msg, source) else {
                    return;
                };
                if let Message::Request(req) = &msg
                    && req.method() != Method::Ack
                    && !self.env.txn.knows(req, source.addr)
                    && self.refused_statelessly(now, req, source)
                {
                    return;
                }
                // A response from another server of the peer a request went to: the same
                // peer by the running configuration, or, while a reload that moved peers
                // has calls up, by the one it replaced (the peer's old `match`). Before, a
                // reload that moved the peer left a call ringing there unable to hear its
                // answer from the peer's other server. (Asked only once a response matched
                // a transaction of ours, from another address than its target.)
                let (cfg, moved) = (&self.env.cfg, &self.env.moved);
                let same_peer = |to, from| super::moved::same_peer(cfg, moved, to, from);
                let heard = self.env.heard(&msg, source);
                let unmatched =
                    self.env
                        .txn
                        .receive_from(msg, heard, now, &mut self.env.txn_out, &same_peer);
                match unmatched {
                    Some(Message::Request(ack)) if ack.method() == Method::Ack => {
                        self.on_ack(now, &ack, source)
                    }
                    // No transaction could be keyed on it (a Via past reading): never taken
                    // for an ACK, whatever its CSeq.
                    Some(Message::Request(req)) => {
                        self.reject_malformed(&req, source, 400, "no transaction key")
                    }
                    Some(Message::Response(resp)) => {
                        let how = crate::call::orphan::Unwanted {
                            offerless: false,
                            hang_up: true,
                        };
                        self.on_stray_response(now, resp, source, how);
                    }
                    None => {}
                }
            }
            Verdict::Reject { req, status, why } => {
                self.reject_malformed(&req, source, status, why)
            }
            Verdict::Drop { reason, why } => {
                debug!(%source, "dropped: {why}");
                self.refused(reason);
            }
        }
    }

    /// A request that would start a server transaction, answered (or dropped) here without
    /// one: true when done with. A request in a dialog we do not have, the commonest junk
    /// of a flood spoofed in a peer's name (a BYE with made-up tags; the source guard lets
    /// such a flood through at the peer's rate), or a CANCEL of no INVITE we have, gets its
    /// 481 without a transaction (RFC 3261 §8.2.6: a stateless answer; a retransmission
    /// gets another) rather than one kept for Timer J's 32 s. And the transaction table is bounded
    /// ([`MAX_SERVER_TRANSACTIONS`]): past it, requests outside the calls up are refused
    /// (counted; an INVITE, and any request over TCP, with a stateless 503; others over UDP
    /// dropped: one sent again finds room later). The calls up go on: their
    /// requests (a PRACK, a refresh, a re-INVITE) have a quarter more room, each call at
    /// most [`super::headroom::PER_CALL_HEADROOM`] of it per 32 s, and what ends
    /// a call (its BYE while it is not ending already, the CANCEL of its INVITE still
    /// unanswered) always gets its transaction. So a flood of new requests cannot end calls, and nothing grows the
    /// table past 1.25 times the bound and twice the calls.
    fn refused_statelessly(&mut self, now: Instant, req: &Request, source: Target) -> bool {
        if self.refused_for_overload(now, req, source) {
            return true;
        }
        let cancel = req.method() == Method::Cancel;
        let in_dialog = !cancel && req.to_tag().is_some();
        let found = in_dialog
            .then(|| self.dialog_of_request(req, source))
            .flatten();
        let call = found.map(|(r, _)| r);
        // A CANCEL that matches no INVITE gets its 481 (RFC 3261 §9.2) the same way: a flood
        // of them with made-up branches would otherwise keep a transaction each for 32 s.
        // Nor does one from elsewhere than the INVITE's peer: kept, its transaction would be
        // the one the caller's own CANCEL (same branch) matches, and that would be dropped as
        // a copy from another address until Timer J ended it.
        let cancels_nothing = cancel
            && self
                .env
                .txn
                .cancelled_invite(req)
                .is_none_or(|i| !self.is_from_invites_peer(i, req, source));
        if cancels_nothing || (in_dialog && call.is_none()) {
            // A CANCEL's answer gets a To tag of its own (RFC 3261 §8.2.6.2).
            let tag = cancel.then(|| self.env.ids.stateless_tag(req));
            if let Ok(resp) = ingress::response_to(
                req,
                481,
                "Call/Transaction Does Not Exist",
                tag.as_deref(),
                &[],
            ) {
                self.env.send(source, &Message::Response(resp));
            }
            return true;
        }
        // Outside any dialog, what is not an INVITE is answered at once and needs no
        // transaction either (RFC 3261 §8.2.7; a retransmission gets another answer, with the same To tag):
        // OPTIONS pings, methods the gateway does not take.
        // Kept as transactions for Timer J's 32 s, a flood of them spoofed in a peer's
        // name filled the table, and every new call was refused 503.
        if !cancel && !in_dialog && req.method() != Method::Invite {
            // (Behind a front, the peer it names.)
            let peer = self.env.origin_peer(req, source);
            let (status, reason, extra) = self.out_of_dialog_answer(req, peer);
            // A tag of no check (`stateless_tag`), as every stateless answer's: none the edge
            // lets ahead as ours.
            let tag = self.env.ids.stateless_tag(req);
            let resp = match required_refusal(req, status, peer) {
                Some((status, reason, unsupported)) => {
                    let extra: Vec<(Hdr, &str)> = (unsupported.iter())
                        .map(|u| (Hdr::UNSUPPORTED, u.as_str()))
                        .collect();
                    ingress::response_to(req, status, reason, Some(&tag), &extra)
                }
                None => ingress::response_to(req, status, reason, Some(&tag), &extra),
            };
            if let Ok(resp) = resp {
                self.env.send(source, &Message::Response(resp));
            }
            return true;
        }
        // Counted in transactions, or in bytes where those weigh more: a peer's long
        // requests make long responses to keep (each repeats the Vias, From and To), and
        // the bound is on memory as much as on entries.
        let held = (self.env.txn.len().1).max(self.env.txn.server_retained() / TXN_BYTES);
        let bound = self.env.max_server_txns;
        // A BYE that will end its call: not ending already, and in order (RFC 3261 §12.2.2),
        // or it is answered 500 and the next one would pass again. Not a callee's BYE in
        // one early dialog of several (a forking proxy's branch): it ends that branch only,
        // and a branch can ring again with the same tag, so each such BYE would get a
        // transaction past the bound, without end.
        let ends_a_call = match found {
            Some((r, side)) => {
                req.method() == Method::Bye
                    && self.calls.get(&r).is_some_and(|c| {
                        let one_branch_of_several = side == super::Side::B && c.has_other_branch();
                        !c.phase.is_ending()
                            && !one_branch_of_several
                            && c.dialog(side)
                                .is_some_and(|d| d.remote_cseq.is_none_or(|l| req.seq() >= l))
                    })
            }
            // (A CANCEL here matches its INVITE: one that matches none was answered above.)
            // Only one that can still end it: an INVITE answered already is not stopped
            // by it, and each such CANCEL would keep a transaction past the bound.
            None => {
                cancel
                    && (self.env.txn.cancelled_invite(req))
                        .is_some_and(|id| self.env.txn.server_pending(id))
            }
        };
        // However much room the table has, one call's requests take at most its share
        // (`headroom::PER_CALL_ALWAYS` a window): past it they are refused, but for the BYE
        // that ends it. With 500 and Retry-After, as the relay's pace refuses (RFC 3261
        // §14.2's form: this request, not the server): a 503 would tell a carrier to send
        // the gateway nothing for a while, for one phone's flood in one call. (Over UDP a
        // request but a re-INVITE is dropped: sent again, it finds room later.)
        if let Some(r) = call
            && !ends_a_call
            && !self.call_share.take(r, now)
        {
            debug!(%source, "a call's requests past its share of transactions: {} refused", req.method());
            self.refused("call_transactions");
            if req.method() == Method::Invite || source.transport.is_reliable() {
                let retry = [(Hdr::RETRY_AFTER, "1")];
                let refusal = ingress::response_to(req, 500, "Server Internal Error", None, &retry);
                if let Ok(resp) = refusal {
                    self.env.send(source, &Message::Response(resp));
                }
            }
            return true;
        }
        // The last quarter of the table's bytes is kept from a source holding half of them
        // already: one peer's long requests (or a spoofer's in its name), whose answers are
        // kept up to 32 s, would otherwise fill it, and every other peer's new calls be
        // refused. (One trunk carrying the gateway's whole capacity holds some 350 MiB of
        // the 512: under the three quarters, so it alone is never refused by this.)
        // (New work only: the calls up keep their headroom below, a source's among them.)
        let bytes = bound.saturating_mul(TXN_BYTES);
        let all_held = self.env.txn.server_retained();
        if call.is_none()
            && !ends_a_call
            && all_held >= bytes / 4 * 3
            && (self.env.txn).server_retained_from(self.env.origin_ip(req, source)) >= bytes / 2
        {
            debug!(%source, "a source holding half the transaction table: {} refused", req.method());
            return self.refuse_for_room(now, req, source, "source_transactions");
        }
        if held < bound {
            self.headroom.forget_all();
            return false;
        }
        if ends_a_call {
            return false;
        }
        if let Some(r) = call
            && held < bound + bound / 4
            && self.headroom.take(r, now)
        {
            return false;
        }
        debug!(%source, "transaction table full: {} refused", req.method());
        self.refuse_for_room(now, req, source, "transactions_full")
    }

    /// Refuse a request for want of room in the transaction table (`why`, counted).
    fn refuse_for_room(
        &mut self,
        now: Instant,
        req: &Request,
        source: Target,
        why: &'static str,
    ) -> bool {
        self.refused(why);
        // Told, where a silence would cost more: a connection's peer never sends again
        // and would wait out its Timer B (32 s) before trying elsewhere, and an INVITE
        // over UDP is sent up to seven times (its retransmissions get the same 503, as
        // overload's do). Other requests over UDP are sent again, and find room later.
        if req.method() == Method::Invite {
            if let Some(key) = self.overload_refusals.key(req, source) {
                self.overload_refusals.note(key, now);
            }
            self.send_overload_503(req, source);
        } else if source.transport.is_reliable() && req.method() != Method::Ack {
            self.send_overload_503(req, source);
        }
        true
    }

    /// A request from an address the running configuration matches no more can still be
    /// from one end of a call that began before a reload removed or re-addressed its peer:
    /// in that call's dialog and from an address the leg's own profile (the configuration
    /// the call started with) matches or names as its `address`, or a CANCEL from where its INVITE came. Such a
    /// request is heard, so the call can still be hung up from that end. Asked only while
    /// such calls may be up (`Env::peers_moved()`), so a stranger costs nothing more.
    fn is_from_a_legs_peer(&self, req: &Request, source: Target) -> bool {
        let ip = self.env.origin_ip(req, source);
        if req.method() == Method::Cancel {
            return (self.env.txn.cancelled_invite(req))
                .and_then(|id| self.env.txn.target(id))
                .is_some_and(|t| t.addr.ip() == source.addr.ip());
        }
        (self.legs_profile(req)).is_some_and(|p| p.holds(ip))
    }

    /// The profile of the call leg whose dialog `req` is in (the configuration the call
    /// started with).
    fn legs_profile(&self, req: &Request) -> Option<std::sync::Arc<crate::config::Profile>> {
        let (call_id, tag) = (req.call_id()?, req.to_tag()?);
        let (r, side) = self.dialog_of(&call_id, &tag)?;
        self.calls.get(&r)?.profile(side).cloned()
    }

    /// A request in a call's dialog from the `address` of that leg's peer, outside its
    /// `match`: the carrier's SBC we sent the call to, hanging it up or refreshing it
    /// (profiles/README.md: a request in one of its calls is heard from its `address` too).
    /// Asked only of a peer's `address`, so a stranger costs nothing more.
    fn is_from_a_legs_address(&self, req: &Request, source: Target) -> bool {
        let ip = self.env.origin_ip(req, source).to_canonical();
        if !self.env.cfg.is_peer_address(ip) {
            return false;
        }
        (self.legs_profile(req)).is_some_and(|p| p.address.addr.ip().to_canonical() == ip)
    }

    /// A request from an address no profile matches: silence, or one stateless 403 (never
    /// retransmitted, no To tag kept) when `[protect] unknown_sources = "reject"`.
    fn unknown_source(&mut self, req: &Request, source: Target) {
        self.refused("unknown_source");
        if self.env.cfg.protect.unknown_sources != UnknownSources::Reject
            || req.method() == Method::Ack
            || ingress::validate_request(req).is_err()
        {
            return;
        }
        let tag = self.env.ids.stateless_tag(req);
        if let Ok(resp) = ingress::response_to(req, 403, "Forbidden", Some(&tag), &[]) {
            self.env.send(source, &Message::Response(resp));
        }
    }

    /// A datagram that is not SIP: from a known peer, one stateless 400 if the raw text
    /// holds what a response needs; from anyone else, nothing.
    pub(super) fn on_unparseable(
        &mut self,
        raw: &[u8],
        why: &str,
        status: crate::sip::Unreadable,
        source: Target,
    ) {
        debug!(%source, "unparseable message: {why}");
        self.refused(match status {
            crate::sip::Unreadable::Malformed => "unparseable",
            crate::sip::Unreadable::TooLarge => "too_large",
        });
        if self.env.cfg.peer_for_source(source.addr.ip()).is_none() && !self.env.is_front(source) {
            return;
        }
        if let Some(resp) = crate::sip::reject_unparseable(status, raw, why) {
            self.env.out.push_back(Output::Transmit {
                target: source,
                wire: resp,
                txn: None,
            });
        }
    }

    pub(super) fn refused(&mut self, why: &'static str) {
        self.env
            .out
            .push_back(Output::Event(CoreEvent::Refused { why }));
    }

    /// A request too broken for a transaction: one stateless 400 (505 for another SIP
    /// version), built from the parsed request, never retransmitted.
    fn reject_malformed(&mut self, req: &Request, source: Target, status: u16, why: &'static str) {
        debug!(%source, "malformed {}: {why}", req.method());
        let reason = if status == 505 {
            "Version Not Supported".to_string()
        } else {
            format!("Bad Request ({why})")
        };
        let tag = self.env.ids.stateless_tag(req);
        if let Ok(resp) = ingress::response_to(req, status, &reason, Some(&tag), &[]) {
            self.env.send(source, &Message::Response(resp));
        }
        // The metric's label is one of a fixed few (the reason phrase says which check).
        self.refused(if status == 505 {
            "sip_version"
        } else {
            "malformed_request"
        });
    }

    /// A request no transaction has seen before.
    pub(super) fn on_new_request(&mut self, now: Instant, id: TxnId, req: Request, source: Target) {
        let in_dialog = req.to_tag().is_some();
        match req.method() {
            Method::Cancel => self.on_cancel(now, id, req, source),
            Method::Invite if !in_dialog => self.on_initial_invite(now, id, req, source),
            _ if in_dialog => self.on_in_dialog_request(now, id, req, source),
            // (Answered statelessly before a transaction is made: `refused_statelessly`.)
            _ => {
                let peer = self.env.origin_peer(&req, source);
                let (status, reason, extra) = self.out_of_dialog_answer(&req, peer);
                self.env.respond(now, id, &req, status, reason, &extra);
            }
        }
    }

    /// The answer to a request outside any dialog that is neither an INVITE nor a CANCEL.
    fn out_of_dialog_answer(
        &self,
        req: &Request,
        peer: Option<&crate::config::Profile>,
    ) -> (u16, &'static str, Vec<(Hdr, &'static str)>) {
        match req.method() {
            // Shutting down: a front's probe (or a peer's keepalive) learns it now and sends
            // new calls elsewhere, while calls in progress go on.
            Method::Options if self.env.draining => {
                (503, "Service Unavailable", vec![(Hdr::RETRY_AFTER, "30")])
            }
            // Refusing every new call for want of a CDR (`[cdr] fail_closed`), as /health
            // says: a front's probe moves the calls to another instance rather than have
            // each refused here.
            Method::Options if !self.env.cdr_writable => {
                (503, "Service Unavailable", vec![(Hdr::RETRY_AFTER, "5")])
            }
            // Keepalive / capability query outside any dialog: what a call from this peer
            // may use (RFC 3261 §11.2).
            Method::Options => {
                let mut extra = vec![(Hdr::ALLOW, ALLOW), (Hdr::ACCEPT, ACCEPT)];
                if let Some(s) = peer.and_then(super::admission::supported_for) {
                    extra.push((Hdr::SUPPORTED, s));
                }
                (200, "OK", extra)
            }
            Method::Bye | Method::Update | Method::Info | Method::Prack => {
                (481, "Call/Transaction Does Not Exist", Vec::new())
            }
            // A method no RFC we know defines (RFC 3261 §21.5.2); one we know of but do not
            // serve (REGISTER, SUBSCRIBE, MESSAGE, …) is not allowed here (§8.2.1).
            Method::Other(_) => (501, "Not Implemented", vec![(Hdr::ALLOW, ALLOW)]),
            _ => (405, "Method Not Allowed", vec![(Hdr::ALLOW, ALLOW)]),
        }
    }
}

/// What an out-of-dialog request's `Require` earns instead of `status`, the answer its
/// method would get (RFC 3261 §8.2.2.3, an OPTIONS's too): 420 with the extensions we lack
/// in `Unsupported`, or 400 for a `Require` that is not a list of tokens. A method we do
/// not serve, a draining 503 and a BYE's 481 answer first, whatever it requires.
/// Judged against what `peer`'s profile leaves on (what its OPTIONS is told in `Supported`):
/// `timer` and `100rel` each when its profile has them.
fn required_refusal(
    req: &Request,
    status: u16,
    peer: Option<&crate::config::Profile>,
) -> Option<(u16, &'static str, Option<String>)> {
    if matches!(status, 405 | 501 | 503) || req.method() == Method::Bye {
        return None;
    }
    let timers = peer.is_none_or(|p| p.session_timer.supported());
    let reliable = peer.is_none_or(|p| p.prack.mode != PrackMode::Disabled);
    match super::admission::unsupported_required(req, timers) {
        None => Some((400, "Bad Require", None)),
        Some(mut tags) => {
            if !reliable && req.header_has_token(&Hdr::REQUIRE, "100rel") {
                tags.push("100rel".into());
            }
            (!tags.is_empty()).then(|| (420, "Bad Extension", Some(tags.join(", "))))
        }
    }
}
