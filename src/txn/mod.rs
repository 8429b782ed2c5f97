//! RFC 3261 §17 transactions, sans-IO.
//!
//! Keys (branch, sent-by, method; the pre-3261 rules for old peers) come from `sipx-sip`'s
//! `TransactionKey`. The state machines are ours (`machine.rs`): sipx's kept every parsed
//! request and response for the 32 s a transaction outlives its call, about 6 KiB each; ours
//! keep wire bytes only while they can still be retransmitted (see BENCHMARKS.md). This module
//! adds what the machines leave to a driver: where each transaction's messages go, deadlines
//! from the caller's `now`, and only our own types upward.

mod machine;

use foldhash::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sipx_sip::TransactionKey;

pub use machine::Timer;
use machine::{Client, Consts, Out, Server};

use crate::sip::{Message, Method, Request, Response, Target};

/// Identifies one transaction (branch + sent-by + method).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxnId(TransactionKey);

/// One of the §17 timers of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnTimer(pub Timer);

impl TxnTimer {
    /// Its RFC letter, for logs.
    pub fn name(self) -> String {
        format!("{:?}", self.0)
    }
}

/// What the transaction layer asks of its driver and its user.
#[derive(Debug)]
pub enum TxnOutput {
    /// Put these bytes on the wire toward `target`.
    Send {
        id: TxnId,
        target: Target,
        wire: Bytes,
    },
    /// Fire `timer` of transaction `id` at `at`.
    SetTimer {
        id: TxnId,
        timer: TxnTimer,
        at: Instant,
    },
    /// The timer is no longer needed.
    ClearTimer { id: TxnId, timer: TxnTimer },
    /// A new request (never a retransmission) for the transaction user.
    Request { id: TxnId, req: Request },
    /// A response to one of our client transactions.
    Response { id: TxnId, resp: Response },
    /// An ACK to a 2xx that matched its INVITE server transaction (RFC 6026).
    Ack { id: TxnId, ack: Request },
    /// Timer B/F/H: nobody answered.
    Timeout { id: TxnId },
    /// The transport could not deliver.
    TransportError { id: TxnId },
    /// The transaction is gone; drop whatever referred to it.
    Terminated { id: TxnId },
}

/// RFC 3261 §17 timer constants; T1 500 ms, T2 4 s, T4 5 s unless configured.
#[derive(Debug, Clone, Copy)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

#[derive(Debug)]
struct Entry<T> {
    machine: T,
    target: Target,
}

/// The transactions in flight and where their messages go.
#[derive(Debug)]
pub struct TxnLayer {
    consts: Consts,
    client: HashMap<TxnId, Entry<Client>>,
    server: HashMap<TxnId, Entry<Server>>,
    scratch: Vec<Out>,
}

impl TxnLayer {
    pub fn new(timers: TimerConfig) -> Self {
        TxnLayer {
            consts: Consts {
                t1: timers.t1,
                t2: timers.t2,
                t4: timers.t4,
            },
            client: HashMap::default(),
            server: HashMap::default(),
            scratch: Vec::new(),
        }
    }

    /// Transactions in flight (client, server). A test that asserts on this catches leaks.
    pub fn len(&self) -> (usize, usize) {
        (self.client.len(), self.server.len())
    }

    /// Whether no transaction is in flight.
    pub fn is_empty(&self) -> bool {
        self.client.is_empty() && self.server.is_empty()
    }

    /// Feed a received message. Returns it back when no transaction took it: a stray
    /// response, or an ACK for a 2xx whose transaction is gone; the caller handles those.
    pub fn receive(
        &mut self,
        msg: Message,
        source: Target,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) -> Option<Message> {
        let c = self.consts;
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = match msg {
            Message::Request(req) => {
                let Some(key) = TransactionKey::from_request(&req.0) else {
                    return Some(Message::Request(req));
                };
                let id = TxnId(key);
                if let Some(e) = self.server.get_mut(&id) {
                    e.machine.on_request(&req, &c, &mut scratch);
                    let target = e.target;
                    self.apply(&id, target, false, &mut scratch, now, out);
                    None
                } else if req.method() == Method::Ack {
                    Some(Message::Request(req))
                } else {
                    let machine =
                        Server::new(req, source.transport.is_reliable(), &c, &mut scratch);
                    self.server.insert(
                        id.clone(),
                        Entry {
                            machine,
                            target: source,
                        },
                    );
                    self.apply(&id, source, false, &mut scratch, now, out);
                    None
                }
            }
            Message::Response(resp) => {
                let id = TransactionKey::from_response(&resp.0).map(TxnId);
                match id.filter(|id| self.client.contains_key(id)) {
                    Some(id) => {
                        let target = match self.client.get_mut(&id) {
                            Some(e) => {
                                e.machine.on_response(resp, &c, &mut scratch);
                                e.target
                            }
                            None => source,
                        };
                        self.apply(&id, target, true, &mut scratch, now, out);
                        None
                    }
                    None => Some(Message::Response(resp)),
                }
            }
        };
        self.scratch = scratch;
        result
    }

    /// Start a client transaction for `req` toward `target`. `None` when the request has no
    /// usable Via (a bug in the caller, not a peer).
    pub fn send_request(
        &mut self,
        req: Request,
        target: Target,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) -> Option<TxnId> {
        let id = TxnId(TransactionKey::from_sent_request(&req.0)?);
        let mut scratch = std::mem::take(&mut self.scratch);
        let machine = Client::new(
            req,
            target.transport.is_reliable(),
            &self.consts,
            &mut scratch,
        );
        self.client.insert(id.clone(), Entry { machine, target });
        self.apply(&id, target, true, &mut scratch, now, out);
        self.scratch = scratch;
        Some(id)
    }

    /// Answer a server transaction.
    pub fn send_response(
        &mut self,
        id: &TxnId,
        resp: Response,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) {
        let c = self.consts;
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(e) = self.server.get_mut(id) {
            e.machine.on_response(resp, &c, &mut scratch);
            let target = e.target;
            self.apply(id, target, false, &mut scratch, now, out);
        }
        self.scratch = scratch;
    }

    /// A timer fired.
    pub fn on_timer(
        &mut self,
        id: &TxnId,
        timer: TxnTimer,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) {
        let c = self.consts;
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(e) = self.client.get_mut(id) {
            e.machine.on_timer(timer.0, &c, &mut scratch);
            let target = e.target;
            self.apply(id, target, true, &mut scratch, now, out);
        } else if let Some(e) = self.server.get_mut(id) {
            e.machine.on_timer(timer.0, &c, &mut scratch);
            let target = e.target;
            self.apply(id, target, false, &mut scratch, now, out);
        }
        self.scratch = scratch;
    }

    /// The engine could not deliver a message of this transaction.
    pub fn on_transport_error(&mut self, id: &TxnId, now: Instant, out: &mut Vec<TxnOutput>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(e) = self.client.get_mut(id) {
            e.machine.on_transport_error(&mut scratch);
            let target = e.target;
            self.apply(id, target, true, &mut scratch, now, out);
        } else if let Some(e) = self.server.get_mut(id) {
            e.machine.on_transport_error(&mut scratch);
            let target = e.target;
            self.apply(id, target, false, &mut scratch, now, out);
        }
        self.scratch = scratch;
    }

    /// The INVITE server transaction a received CANCEL refers to (RFC 3261 §9.2).
    pub fn cancelled_invite(&self, cancel: &Request) -> Option<TxnId> {
        TransactionKey::for_cancelled_invite(&cancel.0).map(TxnId)
    }

    /// Whether a server transaction is still waiting for a final response.
    pub fn server_pending(&self, id: &TxnId) -> bool {
        self.server.get(id).is_some_and(|e| e.machine.pending())
    }

    /// Where a transaction's messages go.
    pub fn target(&self, id: &TxnId) -> Option<Target> {
        self.client
            .get(id)
            .map(|e| e.target)
            .or_else(|| self.server.get(id).map(|e| e.target))
    }

    /// Turn a machine's outputs into ours; forget it when it terminated.
    fn apply(
        &mut self,
        id: &TxnId,
        target: Target,
        client: bool,
        scratch: &mut Vec<Out>,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) {
        for o in scratch.drain(..) {
            out.push(match o {
                Out::Send(wire) => TxnOutput::Send {
                    id: id.clone(),
                    target,
                    wire,
                },
                Out::Set(timer, after) => TxnOutput::SetTimer {
                    id: id.clone(),
                    timer: TxnTimer(timer),
                    at: now + after,
                },
                Out::Clear(timer) => TxnOutput::ClearTimer {
                    id: id.clone(),
                    timer: TxnTimer(timer),
                },
                Out::Request(req) => TxnOutput::Request {
                    id: id.clone(),
                    req,
                },
                Out::Response(resp) => TxnOutput::Response {
                    id: id.clone(),
                    resp,
                },
                Out::Ack(ack) => TxnOutput::Ack {
                    id: id.clone(),
                    ack,
                },
                Out::Timeout => TxnOutput::Timeout { id: id.clone() },
                Out::TransportError => TxnOutput::TransportError { id: id.clone() },
                Out::Terminated => {
                    // Timers still armed for it fire into an unknown id and are ignored.
                    if client {
                        self.client.remove(id);
                    } else {
                        self.server.remove(id);
                    }
                    TxnOutput::Terminated { id: id.clone() }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests;
