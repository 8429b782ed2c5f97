//! A client transaction's ends that are not its answer or its timers: its user giving up,
//! and its connection lost before anything answered.

use super::{Client, Consts, Out, State, Timer};

impl Client {
    /// Nothing has answered the request yet.
    pub fn unanswered(&self) -> bool {
        matches!(self.state, State::Calling | State::Trying)
    }

    /// The connection the request went out on closed before anything answered it: send it
    /// once more, over a new connection (the engine opens one: the lost one is gone), rather
    /// than take the loss as the peer's failure at once. A trunk or balancer that closes a
    /// connection it holds idle may do so just as our request is written; without this the
    /// call failed over (or failed) for a peer that was up. Same branch, same bytes: a peer
    /// that did read it takes it as a retransmission (RFC 3261 §17.2.3). Only once, and only
    /// over TCP (the transport with connections); false when not sent again.
    pub fn resend_on_new_connection(&mut self, out: &mut Vec<Out>) -> bool {
        let Some(wire) = self.wire.as_ref().filter(|_| self.reliable && !self.resent) else {
            return false;
        };
        if !self.unanswered() {
            return false;
        }
        self.resent = true;
        out.push(Out::Send(wire.clone()));
        true
    }

    /// Its user no longer wants the request delivered (a CANCEL waits for its provisional,
    /// its call moved on from a silent peer): a lost connection fails it, as before, rather
    /// than send it again, ringing a callee nobody waits for.
    pub fn forgo_resend(&mut self) {
        self.resent = true;
    }

    /// The user gives up on the transaction: an INVITE that never got a final answer within
    /// 64·T1 of its CANCEL (RFC 3261 §9.1) has no timer left to end it.
    pub fn abandon(&mut self, out: &mut Vec<Out>) {
        if self.state != State::Terminated {
            self.terminate(out);
        }
    }

    /// The user gives up on an INVITE that has been answered only provisionally 64·T1 from
    /// now, unless a final answer comes first (and gets its ACK): such a transaction has no
    /// timer of its own (RFC 3261 §9.1 on a CANCELled INVITE).
    pub fn abandon_later(&mut self, c: &Consts, out: &mut Vec<Out>) {
        if self.invite && self.state == State::Proceeding {
            out.push(Out::Set(Timer::B, c.t1 * 64));
        }
    }
}
