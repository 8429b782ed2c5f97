//! What the layer tells of its transactions when asked: whether a request is a
//! retransmission, which INVITE a CANCEL cancels (and which an RFC 2543 ACK acknowledges),
//! a server transaction's state, where a transaction's messages go.

use sipx_sip::TransactionKey;

use super::{Machine, TxnId, TxnLayer, machine};
use crate::sip::{Request, Target};

impl TxnLayer {
    /// Whether a received request belongs to a server transaction already under way (a
    /// retransmission).
    pub fn knows(&self, req: &Request, source: std::net::SocketAddr) -> bool {
        match TransactionKey::from_request(&req.0) {
            // An RFC 2543 key holds the top Via verbatim, and transactions are keyed on it
            // once `received` is stamped in (`ingress::check`): look the same way.
            Some(TransactionKey::Legacy { .. }) => {
                let mut stamped = req.clone();
                stamped.stamp_received(source);
                TransactionKey::from_request(&stamped.0)
                    .is_some_and(|k| self.server_keys.contains_key(&k))
            }
            Some(k) => self.server_keys.contains_key(&k),
            None => false,
        }
    }

    /// The INVITE server transaction a received CANCEL refers to (RFC 3261 §9.2).
    pub fn cancelled_invite(&self, cancel: &Request) -> Option<TxnId> {
        TransactionKey::for_cancelled_invite(&cancel.0)
            .and_then(|k| self.server_keys.get(&k).copied())
    }

    /// The To tag of the last response a server transaction sent, if any.
    pub fn server_to_tag(&self, id: TxnId) -> Option<String> {
        match self.entries.get(&id).map(|e| &e.machine) {
            Some(Machine::Server(m)) => m.final_to_tag(),
            _ => None,
        }
    }

    /// Whether a server transaction is still waiting for a final response.
    pub fn server_pending(&self, id: TxnId) -> bool {
        matches!(
            self.entries.get(&id).map(|e| &e.machine),
            Some(Machine::Server(m)) if m.pending()
        )
    }

    /// Whether client transaction `id`'s request is an INVITE that went without SDP (its 2xx
    /// then holds an offer). `None` for no such client transaction.
    pub fn sent_without_sdp(&self, id: TxnId) -> Option<bool> {
        match self.entries.get(&id).map(|e| &e.machine) {
            Some(Machine::Client(m)) => Some(m.sdpless),
            _ => None,
        }
    }

    /// Whether client transaction `id`'s user handled a 2xx with To tag `tag` before
    /// ([`TxnLayer::note_handled_2xx`]): a copy of one handled while its call was up (the
    /// call's own dialog, or a fork hung up) or after (ACKed and hung up then) is ACKed
    /// again after the call is gone, not hung up a second time. `false` for no such
    /// transaction.
    pub fn handled_2xx(&self, id: TxnId, tag: &str) -> bool {
        let h = tag_hash(tag);
        (self.entries.get(&id))
            .is_some_and(|e| e.handled_2xx.as_ref().is_some_and(|t| t.contains(&h)))
    }

    /// Client transaction `id`'s user has handled (ACKed, and hung up or kept) a 2xx with
    /// To tag `tag`. Past [`HANDLED_TAGS`] tags a transaction notes no more (a copy of such
    /// a one is hung up again: harmless).
    pub fn note_handled_2xx(&mut self, id: TxnId, tag: &str) {
        let h = tag_hash(tag);
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let tags = e.handled_2xx.get_or_insert_with(Box::default);
        if !tags.contains(&h)
            && let Some(free) = tags.iter_mut().find(|t| **t == 0)
        {
            *free = h;
        }
    }

    /// Where a transaction's messages go.
    pub fn target(&self, id: TxnId) -> Option<Target> {
        self.entries.get(&id).map(|e| e.target)
    }

    /// The INVITE server transaction an RFC 2543 peer's ACK of our failure belongs to
    /// (RFC 3261 §17.2.3). Without a branch cookie the key holds the To tag, and the ACK
    /// carries the tag our response added where its INVITE had none: it matches the INVITE
    /// keyed without a tag, when that tag is the one our final response carried. Only a
    /// transaction in Completed takes it; the ACK of a 2xx is the user's.
    pub(super) fn legacy_ack_owner(&self, key: &TransactionKey) -> Option<TxnId> {
        let TransactionKey::Legacy { to_tag, .. } = key else {
            return None;
        };
        if to_tag.is_empty() {
            return None;
        }
        let mut invite = key.clone();
        if let TransactionKey::Legacy { to_tag, .. } = &mut invite {
            to_tag.clear();
        }
        let id = self.server_keys.get(&invite).copied()?;
        match self.entries.get(&id).map(|e| &e.machine) {
            Some(Machine::Server(m))
                if m.state == machine::State::Completed
                    && m.final_to_tag()
                        .is_some_and(|t| t.as_bytes() == to_tag.as_slice()) =>
            {
                Some(id)
            }
            _ => None,
        }
    }
}

/// A client transaction's key: its branch and method, as RFC 3261 §17.1.3 matches a response
/// to it. The top Via's sent-by is left out: our branches are unique on their own, and a
/// response echoing our Via without its port (which `LocalAddrs::is_ours` lets in) is still
/// this transaction's, not a stray.
pub(super) fn client_key(key: TransactionKey) -> TransactionKey {
    match key {
        TransactionKey::Rfc3261 { branch, method, .. } => TransactionKey::Rfc3261 {
            branch,
            sent_by: Vec::new(),
            method,
        },
        legacy => legacy,
    }
}

/// How many 2xx To tags a client INVITE transaction notes (its forks that answered).
pub const HANDLED_TAGS: usize = 4;

/// The noted tags' hashes, 0 where none is.
pub(super) type Handled2xx = [u64; HANDLED_TAGS];

/// A To tag's hash for [`Handled2xx`] (0 marks a free place: a tag hashing to it counts as
/// another).
fn tag_hash(tag: &str) -> u64 {
    std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), tag).max(1)
}
