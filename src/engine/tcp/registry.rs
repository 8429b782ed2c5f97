//! The core task's view of TCP connections: which are up, which are being opened, and
//! where a message goes (its connection, any connection to its address, or a new one).

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use tracing::debug;

use super::super::inbox::Inbox;
use super::{ConnIds, Limits, Slots, Writer, connect, writer};
use crate::sip::{ConnId, Target};
use crate::txn::TxnId;

/// Messages waiting for a connection to open, with the transaction each belongs to, their
/// bytes counted against the budgets its writer will share.
pub(super) struct Queued {
    items: Vec<(Bytes, Option<TxnId>)>,
    reserved: writer::Reserved,
}

impl Queued {
    /// Messages waiting.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Messages it takes before it holds half what the writer will take: as
    /// [`Writer::room`].
    fn room(&self) -> usize {
        (writer::WRITE_QUEUE / 2).saturating_sub(self.items.len())
    }

    /// Queue `bytes` if the connection's writer will take it once up (in messages and
    /// bytes, and within its source's and every connection's budgets); false if not.
    fn push(&mut self, bytes: Bytes, txn: Option<TxnId>) -> bool {
        if self.items.len() >= writer::WRITE_QUEUE || !self.reserved.add(bytes.len()) {
            return false;
        }
        self.items.push((bytes, txn));
        true
    }
}

/// Requests of ours remembered per connection, the latest, at most. Those whose transaction
/// has ended are forgotten once a second ([`Registry::forget_ended`]), so what is kept is
/// what may still be waiting on the connection: a trunk that vanished without a reset takes
/// 30 s to be given up (`keepalive`), and every request put on it meanwhile is failed then,
/// not left to its Timer B (before, only the last 128 were: a few seconds of a busy trunk's).
const SENT_KEPT: usize = 8192;

/// Whether a message we send is a provisional response: one lost to a backed-up queue is no
/// transport failure (the final answer is still to come), so its transaction goes on.
fn is_provisional(wire: &[u8]) -> bool {
    wire.starts_with(b"SIP/2.0 1")
}

/// Whether a message we send is a response (not a request of ours to remember, `sent_on`).
fn is_response(wire: &[u8]) -> bool {
    wire.starts_with(b"SIP/2.0 ")
}

/// The core task's view of TCP connections.
pub(in crate::engine) struct Registry {
    pub(super) conns: HashMap<ConnId, (SocketAddr, Writer)>,
    pub(super) by_addr: HashMap<SocketAddr, ConnId>,
    /// Outbound connections being opened, with what waits to be sent on them.
    pub(super) connecting: HashMap<SocketAddr, (ConnId, Queued)>,
    /// Connections the gateway opened (the rest were accepted).
    pub(super) ours: std::collections::HashSet<ConnId>,
    /// Ours, the one to their address, forgotten for sending once their writer ended
    /// ([`Registry::forget_if_ended`]) before their `TcpDown` was taken: its address is
    /// still what their end reports (a registration over one renews its binding).
    pub(super) ended: HashMap<ConnId, SocketAddr>,
    /// The transactions of the latest requests of ours handed to each connection: when it
    /// dies, those still unanswered failed (see [`Registry::down`]).
    pub(super) sent: HashMap<ConnId, std::collections::VecDeque<TxnId>>,
    pub(super) events: Inbox,
    pub(super) limits: Limits,
    pub(super) slots: Slots,
    pub(super) ids: ConnIds,
    /// The address our connections leave from: `[sip] advertise`, when it is an IP
    /// address (see `connect`).
    pub(super) advertise: Option<std::net::IpAddr>,
}

impl Registry {
    pub(in crate::engine) fn new(
        events: Inbox,
        limits: Limits,
        slots: Slots,
        ids: ConnIds,
    ) -> Self {
        Registry {
            conns: HashMap::new(),
            by_addr: HashMap::new(),
            connecting: HashMap::new(),
            ours: std::collections::HashSet::new(),
            ended: HashMap::new(),
            sent: HashMap::new(),
            events,
            limits,
            slots,
            ids,
            advertise: None,
        }
    }

    /// Connections we open leave from `advertise` when this host has it.
    pub(in crate::engine) fn advertising(mut self, advertise: Option<std::net::IpAddr>) -> Self {
        self.advertise = advertise.map(|ip| ip.to_canonical());
        self
    }

    /// Send over the target's connection, any connection to its address, or a new one.
    /// Returns the transaction whose message could not even be queued; a connection that
    /// fails to open reports its waiting transactions through [`Registry::down`].
    ///
    /// A message for a connection that has closed meanwhile goes back over a new one only
    /// to a source a profile knows, and a response then to the port of its Via's sent-by
    /// (RFC 3261 §18.2.2: the closed connection's port was the peer's own, where nothing
    /// listens). A stranger never gets a connection from us; a peer's connections opened
    /// back count against its share (`Slots::take_back_toward`).
    pub(in crate::engine) fn send(
        &mut self,
        target: Target,
        bytes: Bytes,
        txn: Option<TxnId>,
    ) -> Option<TxnId> {
        // A connection whose writer has ended (its peer closed it; the news of it waits in
        // the queue behind the requests it sent last, a BYE say) is gone already: its
        // answer goes back over a new connection as for one known closed (RFC 3261
        // §18.2.2), not into a queue nobody reads.
        if let Some(c) = target.conn {
            self.forget_if_ended(c);
        }
        if let Some(&c) = self.by_addr.get(&target.addr) {
            self.forget_if_ended(c);
        }
        let gone = target.conn.is_some_and(|c| !self.conns.contains_key(&c));
        let mut addr = target.addr;
        if gone {
            if !self.events.answers_from_peer(addr.ip()) {
                debug!(%addr, "TCP connection of a stranger closed before its answer: dropped");
                crate::ops::metrics::refused("tcp_connection_gone");
                return txn;
            }
            // A response goes to the port of its top Via's sent-by (5060 when it names none:
            // RFC 3261 §18.2.2). One whose Via cannot be read (we built it: not expected) is
            // not sent to the closed connection's own port; nor is one whose sent-by is
            // another address than the connection came from (behind NAT) onto a connection
            // up at that address and port: another host's there, it would get this caller's
            // answer, SDP and all. A new connection there may reach it (a port forwarded to
            // a PBX, a 1:1 NAT).
            if is_response(&bytes) {
                let sent_by = crate::sip::fast::top_via_sent_by(&bytes);
                let natted = |host: &[u8]| {
                    (std::str::from_utf8(host).ok())
                        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
                        .is_some_and(|ip| ip.to_canonical() != addr.ip().to_canonical())
                };
                let mut back = addr;
                let port = match sent_by {
                    Some((host, port)) => {
                        back.set_port(port);
                        (!natted(&host) || !self.by_addr.contains_key(&back)).then_some(port)
                    }
                    None => None,
                };
                let Some(port) = port else {
                    debug!(%addr, "TCP connection closed before its answer, and no way back to its sender: dropped");
                    crate::ops::metrics::refused("tcp_connection_gone");
                    return txn;
                };
                addr.set_port(port);
            } else if let Some(port) = crate::sip::fast::next_hop_port_for(&bytes, addr.ip()) {
                // A request in a dialog goes to its next hop: the proxy its top Route names,
                // else the peer's Contact (its Request-URI), to the port named when that
                // names this address (a connection the peer opened came from a port of its
                // own, where nothing listens); one naming another host (a NATed phone's)
                // leaves the address as it was.
                addr.set_port(port);
            }
            // The connection there may have ended too (its news still queued).
            if let Some(&c) = self.by_addr.get(&addr) {
                self.forget_if_ended(c);
            }
            // A request toward a peer behind NAT (its Contact a private address, its
            // connection from a public one) goes onto no other connection up at the closed
            // one's address and port, nor a new one there: either reaches the NAT's port,
            // which may be another host's now (a carrier-grade NAT gives ports anew), and
            // it would get this dialog's Call-ID, tags, numbers and SDP. Dropped (its
            // transaction fails). The peer reconnected gets the dialog's requests once it
            // speaks in it (`call/follow.rs`).
            if !is_response(&bytes) && crate::sip::fast::next_hop_natted(&bytes, addr.ip()) {
                debug!(%addr, "TCP connection of a peer behind NAT closed before our request: dropped");
                crate::ops::metrics::refused("tcp_connection_gone");
                return txn;
            }
        }
        let conn = target
            .conn
            .filter(|c| self.conns.contains_key(c))
            .or_else(|| self.by_addr.get(&addr).copied());
        if let Some(c) = conn
            && let Some((_, tx)) = self.conns.get(&c)
        {
            let request = !is_response(&bytes);
            let provisional = is_provisional(&bytes);
            if !tx.send(bytes) {
                // The peer reads nothing, or too slowly: its writer's timeout closes the
                // connection, or its budget bounds what it holds. (Or the budget all peers
                // share is spent by others: a provisional lost to that must not fail the
                // call whose INVITE it answers.)
                debug!(%addr, "TCP connection backed up; message dropped");
                crate::ops::metrics::refused("tcp_backlog");
                return txn.filter(|_| !provisional);
            }
            if request {
                self.sent_on(c, txn);
            }
            return None;
        }
        if let Some((_, queue)) = self.connecting.get_mut(&addr) {
            // No more than its writer will take once it is up: the rest would fail then.
            let provisional = is_provisional(&bytes);
            if !queue.push(bytes, txn) {
                debug!(%addr, "TCP connection still opening, its queue is full; message dropped");
                crate::ops::metrics::refused("tcp_backlog");
                return txn.filter(|_| !provisional);
            }
            return None;
        }
        // Our own connections count against the total too; toward a peer whose own
        // connection closed, against its share as well.
        let slot = if gone {
            let of = self.events.peer_of(addr.ip());
            self.slots.take_back_toward(addr.ip(), of.as_ref())
        } else {
            self.slots.take(None, false)
        };
        let slot = match slot {
            Ok(slot) => slot,
            Err(why) => {
                debug!(%addr, why, "no TCP connection slot left");
                crate::ops::metrics::refused(why);
                return txn;
            }
        };
        let mut queue = Queued {
            items: Vec::new(),
            reserved: writer::Reserved::new(slot.write_budget()),
        };
        let provisional = is_provisional(&bytes);
        if !queue.push(bytes, txn) {
            debug!(%addr, "TCP write budget spent; message dropped");
            crate::ops::metrics::refused("tcp_backlog");
            return txn.filter(|_| !provisional);
        }
        let conn = self.ids.next();
        self.ours.insert(conn);
        self.connecting.insert(addr, (conn, queue));
        let from = self.advertise;
        tokio::spawn(connect(
            (addr, gone),
            from,
            conn,
            self.limits,
            slot,
            self.events.clone(),
        ));
        None
    }

    /// A connection is up: remember it and flush what waited for it. Returns transactions
    /// whose messages could not be queued.
    pub(in crate::engine) fn up(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        tx: Writer,
    ) -> Vec<TxnId> {
        let mut failed = Vec::new();
        if let Some((cid, queue)) = self.connecting.remove(&peer) {
            if cid == conn {
                // Counted by the writer from here on.
                let Queued { items, reserved } = queue;
                drop(reserved);
                for (b, txn) in items {
                    let request = !is_response(&b);
                    let provisional = is_provisional(&b);
                    if !tx.send(b) {
                        // (A provisional so lost fails nothing, as on an open connection.)
                        failed.extend(txn.filter(|_| !provisional));
                    } else if request {
                        self.sent_on(conn, txn);
                    }
                }
            } else {
                self.connecting.insert(peer, (cid, queue));
            }
        }
        self.by_addr.insert(peer, conn);
        self.conns.insert(conn, (peer, tx));
        failed
    }

    /// The connections calls' dialogs send on (`targets`: theirs, or any to their address)
    /// stay open however long the call is quiet: one a phone behind NAT opened is the only
    /// way to reach it (a connection back goes to the private address its Contact names), so
    /// closing it after five minutes of silence cut off the call's BYE. Called more often
    /// than the idle timeout. A dialog whose connection closed is sent to over one we open
    /// back to its host, at a port its Contact or Via names ([`Registry::send`]), which the
    /// target does not hold: every connection of ours to that host is kept then.
    pub(in crate::engine) fn keep_in_use(&self, targets: impl Iterator<Item = Target>) {
        if self.conns.is_empty() {
            return;
        }
        let mut opened_back = std::collections::HashSet::new();
        for t in targets {
            let conn = t
                .conn
                .filter(|c| self.conns.contains_key(c))
                .or_else(|| self.by_addr.get(&t.addr).copied());
            match conn.and_then(|c| self.conns.get(&c)) {
                Some((_, w)) => w.in_use(),
                None => {
                    opened_back.insert(t.addr.ip());
                }
            }
        }
        if opened_back.is_empty() {
            return;
        }
        for (id, (addr, w)) in &self.conns {
            if self.ours.contains(id) && opened_back.contains(&addr.ip()) {
                w.in_use();
            }
        }
    }

    /// The least room left on any connection, open or opening (as [`Writer::room`]); none
    /// up, no bound.
    pub(in crate::engine) fn least_room(&self) -> usize {
        let open = (self.conns.values())
            .filter(|(_, w)| !w.is_closed())
            .map(|(_, w)| w.room());
        let opening = self.connecting.values().map(|(_, q)| q.room());
        open.chain(opening).min().unwrap_or(usize::MAX)
    }

    /// Whether every open connection's queue is written out (what a stop waits for, a
    /// moment, before the process ends; one still opening is not waited for).
    pub(in crate::engine) fn all_written(&self) -> bool {
        self.conns.values().all(|(_, w)| w.is_written())
    }

    /// Whether a peer opened this connection (rather than the gateway).
    pub(in crate::engine) fn is_inbound(&self, conn: ConnId) -> bool {
        !self.ours.contains(&conn)
    }

    /// Forget `conn` for sending when its writer has ended (the connection closed, its
    /// `TcpDown` not yet taken): what waited on it is still failed by [`Registry::down`].
    fn forget_if_ended(&mut self, conn: ConnId) {
        let Some((peer, tx)) = self.conns.get(&conn) else {
            return;
        };
        if !tx.is_closed() {
            return;
        }
        let peer = *peer;
        self.conns.remove(&conn);
        if self.by_addr.get(&peer) == Some(&conn) {
            self.by_addr.remove(&peer);
            if self.ours.contains(&conn) {
                self.ended.insert(conn, peer);
            }
        }
    }

    /// Forget the requests whose transactions have ended (`live` says which have not): the
    /// lists then hold what a connection's loss must still fail.
    pub(in crate::engine) fn forget_ended(&mut self, live: impl Fn(TxnId) -> bool) {
        self.sent.retain(|_, sent| {
            sent.retain(|t| live(*t));
            !sent.is_empty()
        });
    }

    /// A request of transaction `txn` went out on `conn`.
    fn sent_on(&mut self, conn: ConnId, txn: Option<TxnId>) {
        let Some(txn) = txn else {
            return;
        };
        let sent = self.sent.entry(conn).or_default();
        if sent.len() >= SENT_KEPT {
            sent.pop_front();
        }
        sent.push_back(txn);
    }

    /// Close a connection once what was queued on it is written (a stranger's, after the
    /// one answer it may get).
    pub(in crate::engine) fn close(&mut self, conn: ConnId) {
        self.sent.remove(&conn);
        if let Some((peer, tx)) = self.conns.remove(&conn) {
            tx.close();
            if self.by_addr.get(&peer) == Some(&conn) {
                self.by_addr.remove(&peer);
            }
        }
    }

    /// Close every connection a peer opened from an address `known` no longer accepts (a
    /// reload removed its peer, or the calls that kept a moved peer's old address known have
    /// ended): such a connection would otherwise stay open until idle. Returns how many.
    pub(in crate::engine) fn close_unknown(
        &mut self,
        known: impl Fn(std::net::IpAddr) -> bool,
    ) -> usize {
        let gone: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(c, (peer, _))| !self.ours.contains(c) && !known(peer.ip()))
            .map(|(c, _)| *c)
            .collect();
        for &c in &gone {
            self.close(c);
        }
        gone.len()
    }

    /// A connection closed (or never opened). Returns the transactions that were waiting
    /// for it to open (their messages never went: failed), those of the latest requests
    /// of ours sent on it (lost with it unless already answered: a peer reset, a standby
    /// that took over the peer's address and resets what it never accepted, our writer
    /// giving up), and, for one we opened that was the one to its address, that address
    /// (a registration over it renews its binding). Without them a request lost with its
    /// connection waited for Timer B or F before the call failed over.
    pub(in crate::engine) fn down(&mut self, conn: ConnId) -> Down {
        let ours = self.ours.remove(&conn);
        let lost = self.sent.remove(&conn).map(Vec::from).unwrap_or_default();
        // (Forgotten already by a send that found its writer ended: its address kept.)
        let mut closed = self.ended.remove(&conn).filter(|_| ours);
        if let Some((peer, _)) = self.conns.remove(&conn)
            && self.by_addr.get(&peer) == Some(&conn)
        {
            self.by_addr.remove(&peer);
            closed = ours.then_some(peer);
        }
        let waiting: Option<SocketAddr> = self
            .connecting
            .iter()
            .find(|(_, (c, _))| *c == conn)
            .map(|(a, _)| *a);
        let failed = waiting
            .and_then(|a| self.connecting.remove(&a))
            .map(|(_, q)| q.items.into_iter().filter_map(|(_, t)| t).collect())
            .unwrap_or_default();
        // A peak of connections (up to `[protect] max_tcp_total`) gives its tables back as
        // they close.
        crate::maps::shrink_if_sparse(&mut self.conns);
        crate::maps::shrink_if_sparse(&mut self.by_addr);
        crate::maps::shrink_if_sparse(&mut self.connecting);
        crate::maps::shrink_if_sparse(&mut self.sent);
        crate::maps::shrink_if_sparse(&mut self.ended);
        Down {
            failed,
            lost,
            closed,
        }
    }
}

/// What a connection's end tells the core ([`Registry::down`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(in crate::engine) struct Down {
    pub failed: Vec<TxnId>,
    pub lost: Vec<TxnId>,
    pub closed: Option<SocketAddr>,
}

impl Down {
    /// The core's inputs: the failed, then the lost, then the address closed.
    pub(in crate::engine) fn inputs(self) -> impl Iterator<Item = crate::call::Input> {
        use crate::call::Input;
        (self.failed.into_iter().map(Input::SendFailed))
            .chain(self.lost.into_iter().map(Input::ConnectionLost))
            .chain(self.closed.map(Input::TcpClosed))
    }
}
