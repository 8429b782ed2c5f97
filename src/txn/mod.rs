//! RFC 3261 §17 transactions, sans-IO.
//!
//! Keys (branch, sent-by, method; the pre-3261 rules for old peers) come from `sipx-sip`'s
//! `TransactionKey`. The state machines are ours (`machine.rs`): they keep wire bytes only
//! while they can still be retransmitted (see BENCHMARKS.md). This module adds what the
//! machines leave to a driver: where each transaction's messages go, its timers (a fixed
//! three-slot table per transaction, ordered by one index, `drive.rs`: the layer owns its
//! deadlines and the caller only asks [`TxnLayer::poll_timeout`] when to come back), and only
//! our own types upward. Transactions are named by a small copyable [`TxnId`], not by their heap key.

mod ack;
mod drive;
mod end;
mod held;
mod lookup;
mod machine;
mod timer;
mod trying;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use foldhash::HashMap;
use sipx_sip::TransactionKey;

pub use machine::Timer;
use machine::{Client, Consts, Out, Server};

use crate::sip::{Message, Method, Request, Response, Target};

/// Identifies one transaction for its whole life (never reused within a process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(u64);

#[cfg(test)]
impl TxnId {
    /// An id made up by a test of what carries ids (no transaction has it).
    pub(crate) fn for_tests(n: u64) -> TxnId {
        TxnId(n)
    }
}

/// What the transaction layer tells its user.
#[derive(Debug)]
pub enum TxnOutput {
    /// Put these bytes on the wire toward `target`.
    Send {
        id: TxnId,
        target: Target,
        wire: Bytes,
    },
    /// A new request (never a retransmission) for the transaction user, from `source`.
    Request {
        id: TxnId,
        req: Request,
        source: Target,
    },
    /// A response to one of our client transactions.
    Response { id: TxnId, resp: Response },
    /// An ACK to a 2xx that matched its INVITE server transaction (RFC 6026), from `source`.
    Ack {
        id: TxnId,
        ack: Request,
        source: Target,
    },
    /// Timer B/F/H: nobody answered.
    Timeout { id: TxnId },
    /// The transport could not deliver.
    TransportError { id: TxnId },
    /// The transaction is gone; drop whatever referred to it.
    Terminated { id: TxnId },
}

/// Where a message came from: its source, and behind a SIP front (the source), the peer the
/// front names as its sender.
#[derive(Debug, Clone, Copy)]
pub struct Heard {
    pub source: Target,
    /// `None` when not through a front, or when the front names no sender (its own
    /// message: its ACK of our failure, its local 100 or 408).
    pub peer: Option<IpAddr>,
}

impl Heard {
    /// From `source` itself, no front between.
    pub fn direct(source: Target) -> Heard {
        Heard { source, peer: None }
    }

    /// Whether it may be from `peer`, the peer a transaction is with behind the front: the
    /// front names that peer (by `same`), or names no sender (its own message), or either
    /// is unknown (no front).
    fn may_be_from(&self, peer: Option<IpAddr>, same: impl Fn(IpAddr, IpAddr) -> bool) -> bool {
        match (peer, self.peer) {
            (Some(p), Some(from)) => same(p, from),
            _ => true,
        }
    }
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
enum Machine {
    Client(Client),
    Server(Server),
}

#[derive(Debug)]
struct Entry {
    machine: Machine,
    key: TransactionKey,
    target: Target,
    /// Behind a SIP front (`target` is the front): the peer the transaction is with, as the
    /// front names it. A request's by the front's stamp on it; our request's, the peer we
    /// told the front to send it to (`X-Trunkgate-Peer`). What comes from the front in the
    /// transaction naming a sender must name that peer.
    peer: Option<IpAddr>,
    /// Armed timers, one per slot (see [`Timer::slot`]).
    timers: [Option<(Instant, Timer)>; 3],
    /// The deadline this entry is filed under in the layer's index.
    filed: Option<Instant>,
    /// What it adds to [`TxnLayer::server_retained`] (a server transaction's entry, key and
    /// kept responses; 0 for a client's), as last counted.
    counted: usize,
    /// A client INVITE's: the To tags (hashed) of the 2xx its user has handled
    /// ([`TxnLayer::handled_2xx`]).
    handled_2xx: Option<Box<lookup::Handled2xx>>,
}

impl Entry {
    fn next_deadline(&self) -> Option<Instant> {
        self.timers.iter().flatten().map(|(at, _)| *at).min()
    }
}

/// The transactions in flight, where their messages go, and their timers.
#[derive(Debug)]
pub struct TxnLayer {
    consts: Consts,
    entries: HashMap<TxnId, Entry>,
    client_keys: HashMap<TransactionKey, TxnId>,
    server_keys: HashMap<TransactionKey, TxnId>,
    /// Each entry's earliest deadline: the next timer to fire is the first element.
    deadlines: BTreeSet<(Instant, TxnId)>,
    next_id: u64,
    scratch: Vec<Out>,
    /// INVITE server transactions created by the message being handled: they get their
    /// 100 Trying in [`TxnLayer::flush_trying`] unless the user answers first.
    trying: Vec<TxnId>,
    retransmissions: Retransmissions,
    /// What the server transactions hold in bytes: their entries, keys and the responses
    /// they keep for sending again ([`TxnLayer::server_retained`]), in all and by source.
    server_retained: held::Retained,
}

/// Retransmissions counted since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retransmissions {
    /// Messages sent again: requests and responses on a timer, our last response or our
    /// ACK once more for a peer's retransmission.
    pub sent: u64,
    /// Peers' retransmissions (requests and responses) answered here without reaching the
    /// call layer.
    pub absorbed: u64,
}

/// How many sends a machine asked for.
fn sends(scratch: &[Out]) -> u64 {
    scratch.iter().filter(|o| matches!(o, Out::Send(_))).count() as u64
}

impl TxnLayer {
    pub fn new(timers: TimerConfig) -> Self {
        TxnLayer {
            consts: Consts {
                t1: timers.t1,
                t2: timers.t2,
                t4: timers.t4,
            },
            entries: HashMap::default(),
            client_keys: HashMap::default(),
            server_keys: HashMap::default(),
            deadlines: BTreeSet::new(),
            next_id: 1,
            scratch: Vec::new(),
            trying: Vec::new(),
            retransmissions: Retransmissions::default(),
            server_retained: held::Retained::default(),
        }
    }

    /// Armed timers (for logs and leak tests).
    pub fn timers_armed(&self) -> usize {
        self.entries
            .values()
            .map(|e| e.timers.iter().flatten().count())
            .sum()
    }

    /// When [`TxnLayer::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    fn new_id(&mut self) -> TxnId {
        let id = TxnId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Feed a received message. Returns it back when no transaction took it: a stray
    /// response (also one from another address than the request went to: only the peer we
    /// asked may answer), or an ACK for a 2xx whose transaction is gone; the caller handles
    /// those.
    pub fn receive(
        &mut self,
        msg: Message,
        source: Target,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) -> Option<Message> {
        self.receive_from(msg, Heard::direct(source), now, out, &|_, _| false)
    }

    /// Whether what was `heard` comes from where transaction `id`'s messages go: through
    /// the front, from the peer it is with (or the front itself).
    pub fn is_from_target(&self, id: TxnId, heard: &Heard) -> bool {
        (self.entries.get(&id)).is_some_and(|e| {
            e.target.addr.ip() == heard.source.addr.ip()
                && heard.may_be_from(e.peer, |p, from| p == from)
        })
    }

    /// [`TxnLayer::receive`], a response taken also from an address `same_peer(target,
    /// source)` says is the same peer's as the one its request went to (a carrier's SBC
    /// pair, one answering for the other): else it is a stray, its 2xx never ACKed.
    pub fn receive_from(
        &mut self,
        msg: Message,
        heard: Heard,
        now: Instant,
        out: &mut Vec<TxnOutput>,
        same_peer: &dyn Fn(IpAddr, IpAddr) -> bool,
    ) -> Option<Message> {
        let source = heard.source;
        let _zone = crate::zone::enter(crate::zone::Zone::ShortLived);
        let c = self.consts;
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = match msg {
            Message::Request(req) => match TransactionKey::from_request(&req.0) {
                None => Some(Message::Request(req)),
                Some(key) => match self.server_keys.get(&key).copied().or_else(|| {
                    (req.method() == Method::Ack)
                        .then(|| self.legacy_ack_owner(&key))
                        .flatten()
                }) {
                    // Only what comes from the IP our responses go to is the peer's: an ACK
                    // from elsewhere (one who learnt the branch) cannot end our
                    // retransmissions or speak for that peer, and a copy of the request from
                    // elsewhere (spoofed in its name) draws nothing and tells nothing of it.
                    Some(id) => {
                        // Through the front: from the peer the request came from, or from
                        // the front itself (its own ACK of our failure names nobody).
                        if self.is_from_target(id, &heard) {
                            // The ACK of our failure confirms the transaction: the peer's
                            // first ACK, not a retransmission, though nothing goes up.
                            let mut confirms = false;
                            if let Some(Entry {
                                machine: Machine::Server(m),
                                ..
                            }) = self.entries.get_mut(&id)
                            {
                                confirms = req.method() == Method::Ack
                                    && m.state == machine::State::Completed;
                                m.on_request(&req, &c, &mut scratch);
                            }
                            if !confirms {
                                self.count_retransmission(&scratch);
                            }
                            self.apply(id, &mut scratch, now, out);
                        }
                        None
                    }
                    None if req.method() == Method::Ack => Some(Message::Request(req)),
                    None => {
                        let id = self.new_id();
                        if req.method() == Method::Invite {
                            self.trying.push(id);
                        }
                        let machine =
                            Server::new(req, source.transport.is_reliable(), &c, &mut scratch);
                        self.server_keys.insert(key.clone(), id);
                        self.insert(id, Machine::Server(machine), key, source, heard.peer);
                        self.apply(id, &mut scratch, now, out);
                        None
                    }
                },
            },
            // Nothing answers an ACK (RFC 3261 §17): a "response" to one would match the
            // INVITE's transaction (the key folds ACK into INVITE, a server's rule only,
            // §17.2.3) and draw our ACK again for each, or pass a 200 up as another fork's.
            Message::Response(resp) if resp.cseq().is_some_and(|(_, m)| m == Method::Ack) => None,
            Message::Response(resp) => {
                let id = TransactionKey::from_response(&resp.0)
                    .and_then(|k| self.client_keys.get(&lookup::client_key(k)).copied())
                    .filter(|id| {
                        self.entries.get(id).is_some_and(|e| {
                            let to = e.target.addr.ip();
                            let from_target =
                                to == source.addr.ip() || same_peer(to, source.addr.ip());
                            // Through the front: from the peer it went to, when the front
                            // says who sent it (one that does not is taken at its word).
                            let from_peer = heard
                                .may_be_from(e.peer, |p, from| p == from || same_peer(p, from));
                            from_target && from_peer
                        })
                    });
                match id {
                    Some(id) => {
                        if let Some(Entry {
                            machine: Machine::Client(m),
                            ..
                        }) = self.entries.get_mut(&id)
                        {
                            // Branch and method match, the number does not: a broken or
                            // forged answer (RFC 3261 §8.1.3.3), whose number our ACK and
                            // the dialog's next requests would take.
                            if m.seq != resp.seq() {
                                self.scratch = scratch;
                                return None;
                            }
                            m.on_response(resp, &c, &mut scratch);
                        }
                        self.count_retransmission(&scratch);
                        self.apply(id, &mut scratch, now, out);
                        None
                    }
                    None => Some(Message::Response(resp)),
                }
            }
        };
        self.scratch = scratch;
        result
    }

    /// A message of an existing transaction was handled with `scratch` as the outcome: if
    /// nothing went up to the user it was a retransmission, absorbed here, and whatever it
    /// made us send (our last response again, our ACK again) is a retransmission too.
    fn count_retransmission(&mut self, scratch: &[machine::Out]) {
        let to_user = scratch
            .iter()
            .any(|o| matches!(o, Out::Request(_) | Out::Response(_) | Out::Ack(_)));
        if !to_user {
            self.retransmissions.absorbed += 1;
            self.retransmissions.sent += sends(scratch);
        }
    }

    /// Retransmissions sent and absorbed so far (`trunkgate_retransmissions_total`).
    pub fn retransmissions(&self) -> Retransmissions {
        self.retransmissions
    }

    fn insert(
        &mut self,
        id: TxnId,
        machine: Machine,
        key: TransactionKey,
        target: Target,
        peer: Option<IpAddr>,
    ) {
        let mut e = Entry {
            machine,
            key,
            target,
            peer,
            timers: [None; 3],
            filed: None,
            counted: 0,
            handled_2xx: None,
        };
        e.counted = e.retained();
        (self.server_retained).recount(e.source_ip(), 0, e.counted);
        self.entries.insert(id, e);
    }

    /// Start a client transaction for `req` toward `target`. `None` when the request has no
    /// usable Via, or a running transaction has its branch and method (bugs in the caller,
    /// not a peer's doing).
    pub fn send_request(
        &mut self,
        req: Request,
        target: Target,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) -> Option<TxnId> {
        self.send_request_for(req, target, None, now, out)
    }

    /// [`TxnLayer::send_request`] through a SIP front (`target`) toward `peer`: its
    /// responses are taken from the front only when they name that peer (or none).
    pub fn send_request_for(
        &mut self,
        req: Request,
        target: Target,
        peer: Option<IpAddr>,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) -> Option<TxnId> {
        let _zone = crate::zone::enter(crate::zone::Zone::ShortLived);
        let key = lookup::client_key(TransactionKey::from_sent_request(&req.0)?);
        if self.client_keys.contains_key(&key) {
            // Our branches are random; a repeat is a caller's mistake. Replacing the key
            // would send the running transaction's responses astray, and its end would
            // remove the new one's.
            tracing::warn!("a client transaction with this branch and method is running: not sent");
            return None;
        }
        let id = self.new_id();
        let mut scratch = std::mem::take(&mut self.scratch);
        let machine = Client::new(
            req,
            target.transport.is_reliable(),
            &self.consts,
            &mut scratch,
        );
        self.client_keys.insert(key.clone(), id);
        self.insert(id, Machine::Client(machine), key, target, peer);
        self.apply(id, &mut scratch, now, out);
        self.scratch = scratch;
        Some(id)
    }

    /// Send 100 Trying for the INVITEs received since the last call that their user has not
    /// answered yet. The driver calls this once the user has handled what arrived.
    pub fn flush_trying(&mut self, now: Instant, out: &mut Vec<TxnOutput>) {
        let _zone = crate::zone::enter(crate::zone::Zone::ShortLived);
        let mut scratch = std::mem::take(&mut self.scratch);
        let ids = std::mem::take(&mut self.trying);
        for id in &ids {
            if let Some(Entry {
                machine: Machine::Server(m),
                ..
            }) = self.entries.get_mut(id)
            {
                m.flush_trying(&mut scratch);
                self.apply(*id, &mut scratch, now, out);
            }
        }
        self.trying = ids;
        self.trying.clear();
        self.scratch = scratch;
    }

    /// Answer a server transaction.
    pub fn send_response(
        &mut self,
        id: TxnId,
        resp: Response,
        now: Instant,
        out: &mut Vec<TxnOutput>,
    ) {
        let _zone = crate::zone::enter(crate::zone::Zone::ShortLived);
        let c = self.consts;
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(Entry {
            machine: Machine::Server(m),
            ..
        }) = self.entries.get_mut(&id)
        {
            m.on_response(resp, &c, &mut scratch);
            self.apply(id, &mut scratch, now, out);
        }
        self.scratch = scratch;
    }
}

#[cfg(test)]
mod tests;
