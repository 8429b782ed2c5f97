//! New work the shell kept waiting too long (`Input::Overloaded`): one stateless 503 with
//! Retry-After, and the same 503 again for that INVITE's retransmissions. A stateless
//! answer keeps no transaction, so without a note of it a retransmission that crossed the
//! 503 (or whose 503 was lost) and came in once the queue had drained found nothing and
//! became a call the caller had been told had failed (RFC 3261 §8.2.7, §17.2.1: one
//! transaction, one answer).

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use super::router::B2bua;
use crate::sip::ingress;
use crate::sip::{Hdr, Message, Method, Request, Target};

/// How long an INVITE refused for overload is answered so again: its retransmissions stop
/// with Timer B (64·T1, 32 s at the default T1).
const KEEP: Duration = Duration::from_secs(32);

/// INVITEs kept at most (about 40 bytes each): the core refuses only what the readers let
/// through, and at thousands a second the oldest go first, after their first few
/// retransmissions (at 0.5, 1.5 and 3.5 s) have come.
const MAX_KEPT: usize = 8192;

/// The INVITE transactions refused for overload lately, by a hash of their source, branch
/// (an RFC 2543 peer's top Via and From tag), Call-ID and CSeq.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    /// The keys, and in `order` when each was noted (what expires them).
    keys: foldhash::HashSet<u64>,
    order: VecDeque<(Instant, u64)>,
    hasher: foldhash::fast::RandomState,
}

impl Refusals {
    pub(super) fn key(&self, req: &Request, source: Target) -> Option<u64> {
        let via = req.top_via()?;
        let call_id = req.call_id()?;
        let seq = req.seq();
        Some(match via.branch {
            Some(branch) => self.hasher.hash_one((source.addr, branch, call_id, seq)),
            // An RFC 2543 peer's (no branch): its transaction is its top Via's sent-by, its
            // From tag, Call-ID and CSeq (RFC 3261 §17.2.3).
            None => self.hasher.hash_one((
                source.addr,
                (via.host, via.port),
                req.from_tag(),
                call_id,
                seq,
            )),
        })
    }

    pub(super) fn note(&mut self, key: u64, now: Instant) {
        self.expire(now);
        // Kept already (a retransmission refused again): nothing to make room for. Before,
        // another INVITE's refusal was forgotten for it.
        if self.keys.contains(&key) {
            return;
        }
        if self.order.len() >= MAX_KEPT
            && let Some((_, old)) = self.order.pop_front()
        {
            self.keys.remove(&old);
        }
        if self.keys.insert(key) {
            self.order.push_back((now, key));
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(t, key)) = self.order.front()
            && now.saturating_duration_since(t) >= KEEP
        {
            self.order.pop_front();
            self.keys.remove(&key);
        }
        // Emptied after a storm: give the tables back.
        if self.order.is_empty() && self.keys.capacity() > 0 {
            *self = Refusals {
                hasher: self.hasher.clone(),
                ..Refusals::default()
            };
        }
    }
}

impl B2bua {
    /// New work the shell had to keep waiting too long (`Input::Overloaded`).
    pub(super) fn on_overloaded(&mut self, now: Instant, msg: Message, source: Target) {
        let req = match msg {
            Message::Request(req)
                if !self.env.txn.knows(&req, source.addr)
                    && self.env.origin_peer(&req, source).is_some() =>
            {
                req
            }
            // Retransmissions, strangers and anything that is not new work: as always.
            other => return self.on_message(now, other, source),
        };
        self.refused("overload");
        if req.method() == Method::Ack || ingress::validate_request(&req).is_err() {
            return;
        }
        if req.method() == Method::Invite
            && let Some(key) = self.overload_refusals.key(&req, source)
        {
            self.overload_refusals.note(key, now);
        }
        self.send_overload_503(&req, source);
    }

    /// Whether `req` is a retransmission of an INVITE refused for overload: answered with
    /// the same 503 if so.
    pub(super) fn refused_for_overload(
        &mut self,
        now: Instant,
        req: &Request,
        source: Target,
    ) -> bool {
        // Expired first: what is left was refused within KEEP.
        self.overload_refusals.expire(now);
        // (Nothing refused lately, the usual case: no key to make.)
        let again = !self.overload_refusals.keys.is_empty()
            && req.method() == Method::Invite
            && req.to_tag().is_none()
            && self
                .overload_refusals
                .key(req, source)
                .is_some_and(|k| self.overload_refusals.keys.contains(&k));
        if again {
            self.send_overload_503(req, source);
        }
        again
    }

    pub(super) fn send_overload_503(&mut self, req: &Request, source: Target) {
        // The edge drops the ACKs of 503s with this tag unparsed.
        let tag = match &self.env.overload_tag {
            Some(t) => t.to_string(),
            None => self.env.ids.stateless_tag(req),
        };
        let after = super::OVERLOAD_RETRY_AFTER_S.to_string();
        let extra = [(Hdr::RETRY_AFTER, after.as_str())];
        if let Ok(resp) = ingress::response_to(req, 503, "Service Unavailable", Some(&tag), &extra)
        {
            self.env.send(source, &Message::Response(resp));
        }
    }
}
