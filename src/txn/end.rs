//! Transactions ended or given up on before their timers would: a transport that failed,
//! a connection lost, a user that no longer waits.

use std::time::Instant;

use super::{Machine, TxnId, TxnLayer, TxnOutput};

impl TxnLayer {
    /// The engine could not deliver a message of this transaction.
    pub fn on_transport_error(&mut self, id: TxnId, now: Instant, out: &mut Vec<TxnOutput>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        match self.entries.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::Client(m)) => m.on_transport_error(&mut scratch),
            Some(Machine::Server(m)) => m.on_transport_error(&mut scratch),
            None => {}
        }
        self.apply(id, &mut scratch, now, out);
        self.scratch = scratch;
    }

    /// The connection a request of client transaction `id` went out on closed: a transport
    /// error if nothing has answered it yet (it may never have been delivered). One the
    /// peer has answered, provisionally or finally, goes on: its answers come on a new
    /// connection (RFC 3261 §18.2.2), and its timers end it otherwise.
    pub fn on_connection_lost(&mut self, id: TxnId, now: Instant, out: &mut Vec<TxnOutput>) {
        let unanswered = matches!(
            self.entries.get(&id).map(|e| &e.machine),
            Some(Machine::Client(m)) if m.unanswered()
        );
        if unanswered {
            self.on_transport_error(id, now, out);
        }
    }

    /// Give up on client transaction `id` later (see `Client::abandon_later`).
    pub fn abandon_later(&mut self, id: TxnId, now: Instant, out: &mut Vec<TxnOutput>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(Machine::Client(m)) = self.entries.get_mut(&id).map(|e| &mut e.machine) {
            m.abandon_later(&self.consts, &mut scratch);
        }
        self.apply(id, &mut scratch, now, out);
        self.scratch = scratch;
    }

    /// End a transaction its user has given up on (see `Client::abandon`,
    /// `Server::abandon`).
    pub fn abandon(&mut self, id: TxnId, now: Instant, out: &mut Vec<TxnOutput>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        match self.entries.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::Client(m)) => m.abandon(&mut scratch),
            Some(Machine::Server(m)) => m.abandon(&mut scratch),
            None => {}
        }
        self.apply(id, &mut scratch, now, out);
        self.scratch = scratch;
    }
}
