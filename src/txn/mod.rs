//! RFC 3261 §17 transactions, sans-IO.
//!
//! The state machines are `sipx-sip`'s (they passed our retransmission and timer tests, see
//! `tests` below); this module adds what they leave to the driver: remembering where each
//! transaction's messages go, turning relative timers into deadlines from the caller's `now`,
//! and exposing only our own types upward.

use foldhash::HashMap;
use std::time::{Duration, Instant};

use sipx_sip::transaction::Output;
use sipx_sip::{Reliability, Timer, Timers, TransactionKey, TransactionLayer, TuEvent};

use crate::sip::{Message, Request, Response, Target};

/// Identifies one transaction (branch + sent-by + method).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxnId(TransactionKey);

/// One of the §17 timers of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnTimer(Timer);

impl TxnTimer {
    /// Its RFC letter, for logs.
    pub fn name(self) -> String {
        format!("{:?}", self.0)
    }
}

/// What the transaction layer asks of its driver and its user.
#[derive(Debug)]
pub enum TxnOutput {
    /// Put this message on the wire toward `target`.
    Send {
        id: TxnId,
        target: Target,
        msg: Message,
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

/// The transactions in flight and where their messages go.
#[derive(Debug)]
pub struct TxnLayer {
    inner: TransactionLayer,
    targets: HashMap<TxnId, Target>,
}

impl TxnLayer {
    pub fn new(timers: TimerConfig) -> Self {
        TxnLayer {
            inner: TransactionLayer::new(Timers {
                t1: timers.t1,
                t2: timers.t2,
                t4: timers.t4,
            }),
            targets: HashMap::default(),
        }
    }

    /// Transactions in flight (client, server). A test that asserts on this catches leaks.
    pub fn len(&self) -> (usize, usize) {
        self.inner.len()
    }

    /// Whether no transaction is in flight.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
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
        let reliability = reliability(source);
        match self.inner.receive(msg.into_sipx(), reliability) {
            sipx_sip::transaction::Dispatch::Created { key, outputs } => {
                let id = TxnId(key);
                self.targets.insert(id.clone(), source);
                self.convert(&id, outputs, now, out);
                None
            }
            sipx_sip::transaction::Dispatch::Matched { key, outputs } => {
                let id = TxnId(key);
                self.convert(&id, outputs, now, out);
                None
            }
            sipx_sip::transaction::Dispatch::Unmatched(m) => Some(Message::from_sipx(*m)),
        }
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
        let (key, outputs) = self.inner.send_request(req.0, reliability(target))?;
        let id = TxnId(key);
        self.targets.insert(id.clone(), target);
        self.convert(&id, outputs, now, out);
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
        let outputs = self.inner.send_response(&id.0, resp.0);
        self.convert(id, outputs, now, out);
    }

    /// A timer fired.
    pub fn on_timer(
        &mut self,
        id: &TxnId,
        timer: TxnTimer,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) {
        let outputs = self.inner.on_timer(&id.0, timer.0);
        self.convert(id, outputs, now, out);
    }

    /// The engine could not deliver a message of this transaction.
    pub fn on_transport_error(&mut self, id: &TxnId, now: Instant, out: &mut Vec<TxnOutput>) {
        let outputs = self.inner.on_transport_error(&id.0);
        self.convert(id, outputs, now, out);
        self.targets.remove(id);
    }

    /// The INVITE server transaction a received CANCEL refers to (RFC 3261 §9.2).
    pub fn cancelled_invite(&self, cancel: &Request) -> Option<TxnId> {
        TransactionKey::for_cancelled_invite(&cancel.0).map(TxnId)
    }

    /// Whether a server transaction is still waiting for a final response.
    pub fn server_pending(&self, id: &TxnId) -> bool {
        use sipx_sip::transaction::ServerState;
        matches!(
            self.inner.server_state(&id.0),
            Some(ServerState::Trying | ServerState::Proceeding)
        )
    }

    /// The request that created a server transaction.
    pub fn server_request(&self, id: &TxnId) -> Option<Request> {
        self.inner.server_request(&id.0).cloned().map(Request)
    }

    /// Where a transaction's messages go.
    pub fn target(&self, id: &TxnId) -> Option<Target> {
        self.targets.get(id).copied()
    }

    fn convert(
        &mut self,
        id: &TxnId,
        outputs: Vec<Output>,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) {
        for o in outputs {
            match o {
                Output::Send(m) => {
                    if let Some(target) = self.targets.get(id) {
                        out.push(TxnOutput::Send {
                            id: id.clone(),
                            target: *target,
                            msg: Message::from_sipx(*m),
                        });
                    }
                }
                Output::SetTimer { timer, after } => out.push(TxnOutput::SetTimer {
                    id: id.clone(),
                    timer: TxnTimer(timer),
                    at: now + after,
                }),
                Output::ClearTimer(timer) => out.push(TxnOutput::ClearTimer {
                    id: id.clone(),
                    timer: TxnTimer(timer),
                }),
                Output::ToTu(ev) => match *ev {
                    TuEvent::Request(r) => out.push(TxnOutput::Request {
                        id: id.clone(),
                        req: Request(*r),
                    }),
                    TuEvent::Response(r) => out.push(TxnOutput::Response {
                        id: id.clone(),
                        resp: Response(*r),
                    }),
                    TuEvent::Ack(r) => out.push(TxnOutput::Ack {
                        id: id.clone(),
                        ack: Request(*r),
                    }),
                    TuEvent::Timeout => out.push(TxnOutput::Timeout { id: id.clone() }),
                    TuEvent::TransportError => {
                        out.push(TxnOutput::TransportError { id: id.clone() })
                    }
                    _ => {}
                },
                Output::Terminated(_) => {
                    // Timers still armed for it fire into an unknown key and are ignored;
                    // the machines clear the long ones themselves on the way here.
                    self.targets.remove(id);
                    out.push(TxnOutput::Terminated { id: id.clone() });
                }
                _ => {}
            }
        }
    }
}

fn reliability(t: Target) -> Reliability {
    if t.transport.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}

#[cfg(test)]
mod tests;
