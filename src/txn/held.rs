//! What the transaction layer holds: its transactions, their bytes, the room a burst left.
//! A response repeats its request's Vias, From and To, so what a server transaction keeps
//! is as long as a peer makes it: the table is bounded in bytes as well as in entries
//! (what a retransmission may draw is `machine::Server::may_draw`).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use foldhash::HashMap;

use sipx_sip::TransactionKey;

use super::{Entry, Machine, TxnId, TxnLayer};

impl TxnLayer {
    /// Transactions in flight (client, server). A test that asserts on this catches leaks.
    pub fn len(&self) -> (usize, usize) {
        (self.client_keys.len(), self.server_keys.len())
    }

    /// Whether no transaction is in flight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// With no transaction in flight, give back the room the busiest moment grew: the
    /// deadline index keeps a node when emptied and the scratch lists keep their capacity,
    /// all made during a burst, in its pages, which they would keep resident.
    pub fn release_idle(&mut self) {
        if !self.entries.is_empty() {
            return;
        }
        // With no transaction, nothing is held: a count that says otherwise drifted.
        debug_assert!(
            self.server_retained.total == 0 && self.server_retained.by_source.is_empty(),
            "server transactions' bytes drifted"
        );
        self.server_retained = Retained::default();
        crate::maps::release_if_empty(&mut self.entries);
        crate::maps::release_if_empty(&mut self.client_keys);
        crate::maps::release_if_empty(&mut self.server_keys);
        if self.deadlines.is_empty() {
            self.deadlines = BTreeSet::new();
        }
        if self.scratch.is_empty() {
            self.scratch = Vec::new();
        }
        if self.trying.is_empty() {
            self.trying = Vec::new();
        }
    }

    /// The bytes the server transactions hold (their entries, keys, and the responses they
    /// keep for sending again): a peer's requests decide how large those are (a response repeats
    /// the request's Vias, From and To), so a table bounded by count alone is not bounded.
    pub fn server_retained(&self) -> usize {
        self.server_retained.total
    }

    /// What of [`TxnLayer::server_retained`] is held by the transactions of requests from
    /// `ip` (behind a front, the peer it names): one source's long requests must not take
    /// the whole table (see `call::incoming`).
    pub fn server_retained_from(&self, ip: IpAddr) -> usize {
        let ip = ip.to_canonical();
        self.server_retained
            .by_source
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }
}

/// What the server transactions hold in bytes, in all and by the source of their requests
/// (an entry per source that has one: as many as the transactions at most).
#[derive(Debug, Default)]
pub(super) struct Retained {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl Retained {
    /// A transaction of a request from `source` held `was` bytes and now holds `now`.
    pub(super) fn recount(&mut self, source: IpAddr, was: usize, now: usize) {
        if was == now {
            return;
        }
        self.total = self.total.saturating_sub(was) + now;
        let source = source.to_canonical();
        let held = self.by_source.entry(source).or_default();
        *held = held.saturating_sub(was) + now;
        if *held == 0 {
            self.by_source.remove(&source);
            crate::maps::shrink_if_sparse(&mut self.by_source);
        }
    }
}

impl Entry {
    /// Where its request came from (behind a front, the peer the front named).
    pub(super) fn source_ip(&self) -> IpAddr {
        self.peer.unwrap_or(self.target.addr.ip())
    }

    /// The bytes a server transaction holds now (0 for a client's: the gateway's own
    /// requests, bounded by its calls).
    pub(super) fn retained(&self) -> usize {
        match &self.machine {
            Machine::Server(m) => ENTRY_BYTES + key_bytes(&self.key) + m.retained(),
            Machine::Client(_) => 0,
        }
    }
}

/// What a transaction costs besides its strings and kept bytes: its entry, its key's slot,
/// its place in the deadline index.
const ENTRY_BYTES: usize = std::mem::size_of::<(TxnId, Entry)>()
    + std::mem::size_of::<(TransactionKey, TxnId)>()
    + std::mem::size_of::<(Instant, TxnId)>();

/// The bytes a transaction key holds, counted twice: it is kept in the entry and in the
/// table of keys.
fn key_bytes(key: &TransactionKey) -> usize {
    let held = match key {
        TransactionKey::Rfc3261 {
            branch,
            sent_by,
            method,
        } => branch.len() + sent_by.len() + method.len(),
        TransactionKey::Legacy {
            request_uri,
            top_via,
            from_tag,
            to_tag,
            call_id,
            method,
            ..
        } => {
            request_uri.len()
                + top_via.len()
                + from_tag.len()
                + to_tag.len()
                + call_id.len()
                + method.len()
        }
    };
    2 * held
}
