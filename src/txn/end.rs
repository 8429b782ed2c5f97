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

    /// The connection a request of client transaction `id` went out on closed. Nothing has
    /// answered it yet (it may never have been delivered): sent once more, over a new
    /// connection, then a transport error if that one is lost too (see
    /// `Client::resend_on_new_connection`). One the peer has answered, provisionally or
    /// finally, goes on: its answers come on a new connection (RFC 3261 §18.2.2), and its
    /// timers end it otherwise. Whether it was sent again.
    pub fn on_connection_lost(
        &mut self,
        id: TxnId,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) -> bool {
        let mut scratch = std::mem::take(&mut self.scratch);
        let (unanswered, resent) = match self.entries.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::Client(m)) if m.unanswered() => {
                (true, m.resend_on_new_connection(&mut scratch))
            }
            _ => (false, false),
        };
        self.apply(id, &mut scratch, now, out);
        self.scratch = scratch;
        if unanswered && !resent {
            self.on_transport_error(id, now, out);
        }
        resent
    }

    /// Client transaction `id`'s request is no longer wanted delivered: not sent again on a
    /// new connection if its own is lost (`Client::forgo_resend`).
    pub fn forgo_resend(&mut self, id: TxnId) {
        if let Some(Machine::Client(m)) = self.entries.get_mut(&id).map(|e| &mut e.machine) {
            m.forgo_resend();
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
