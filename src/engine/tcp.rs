//! TCP transport (RFC 3261 §18.3): Content-Length framing, a reader and a writer task per
//! connection, and connection reuse: responses and in-dialog requests go back over the
//! connection the peer opened while it is up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Event;
use crate::sip::{ConnId, StreamFramer, Target, Transport};
use crate::txn::TxnId;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer that sends a partial message and stops is cut off after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Hands out connection ids, shared by the accept loops and the registry (outbound
/// connections) of one engine.
#[derive(Debug, Clone, Default)]
pub(super) struct ConnIds(Arc<AtomicU64>);

impl ConnIds {
    fn next(&self) -> ConnId {
        ConnId(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

pub(super) async fn accept(
    listener: TcpListener,
    max: usize,
    ids: ConnIds,
    tx: mpsc::Sender<Event>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, peer, ids.next(), max, tx.clone()));
            }
            Err(e) => {
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connect(addr: SocketAddr, conn: ConnId, max: usize, tx: mpsc::Sender<Event>) {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            serve(stream, addr, conn, max, tx).await;
        }
        Ok(Err(e)) => {
            warn!(%addr, error = %e, "TCP connect failed");
            let _ = tx.send(Event::TcpDown { conn }).await;
        }
        Err(_) => {
            warn!(%addr, "TCP connect timed out");
            let _ = tx.send(Event::TcpDown { conn }).await;
        }
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    max: usize,
    tx: mpsc::Sender<Event>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::channel::<Bytes>(1024);
    if tx
        .send(Event::TcpUp {
            conn,
            peer,
            tx: wtx,
        })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            if let Err(e) = wr.write_all(&b).await {
                debug!(%peer, error = %e, "TCP write failed");
                break;
            }
        }
    });
    let mut framer = StreamFramer::new(max);
    let mut buf = vec![0u8; 16 * 1024];
    let source = Target {
        transport: Transport::Tcp,
        addr: peer,
        conn: Some(conn),
    };
    loop {
        let n = match tokio::time::timeout(IDLE_TIMEOUT, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "TCP read failed");
                break;
            }
        };
        match framer.push(&buf[..n]) {
            Ok(msgs) => {
                for msg in msgs {
                    if tx.send(Event::Message { msg, source }).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                // Framing is lost; the stream cannot be resynchronised (RFC 3261 §18.3).
                warn!(%peer, error = %e, "malformed SIP on TCP: closing the connection");
                break;
            }
        }
    }
    writer.abort();
    let _ = tx.send(Event::TcpDown { conn }).await;
}

/// Messages waiting for a connection to open, with the transaction each belongs to.
type Queued = Vec<(Bytes, Option<TxnId>)>;

/// The core task's view of TCP connections.
pub(super) struct Registry {
    conns: HashMap<ConnId, (SocketAddr, mpsc::Sender<Bytes>)>,
    by_addr: HashMap<SocketAddr, ConnId>,
    /// Outbound connections being opened, with what waits to be sent on them.
    connecting: HashMap<SocketAddr, (ConnId, Queued)>,
    events: mpsc::Sender<Event>,
    max: usize,
    ids: ConnIds,
}

impl Registry {
    pub(super) fn new(events: mpsc::Sender<Event>, max: usize, ids: ConnIds) -> Self {
        Registry {
            conns: HashMap::new(),
            by_addr: HashMap::new(),
            connecting: HashMap::new(),
            events,
            max,
            ids,
        }
    }

    /// Send over the target's connection, any connection to its address, or a new one.
    /// Returns the transaction whose message could not even be queued; a connection that
    /// fails to open reports its waiting transactions through [`Registry::down`].
    pub(super) fn send(
        &mut self,
        target: Target,
        bytes: Bytes,
        txn: Option<TxnId>,
    ) -> Option<TxnId> {
        let conn = target
            .conn
            .filter(|c| self.conns.contains_key(c))
            .or_else(|| self.by_addr.get(&target.addr).copied());
        if let Some(c) = conn
            && let Some((_, tx)) = self.conns.get(&c)
        {
            if tx.try_send(bytes).is_err() {
                warn!(addr = %target.addr, "TCP connection backed up; message dropped");
                return txn;
            }
            return None;
        }
        if let Some((_, queue)) = self.connecting.get_mut(&target.addr) {
            queue.push((bytes, txn));
            return None;
        }
        let conn = self.ids.next();
        self.connecting
            .insert(target.addr, (conn, vec![(bytes, txn)]));
        tokio::spawn(connect(target.addr, conn, self.max, self.events.clone()));
        None
    }

    /// A connection is up: remember it and flush what waited for it. Returns transactions
    /// whose messages could not be queued.
    pub(super) fn up(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        tx: mpsc::Sender<Bytes>,
    ) -> Vec<TxnId> {
        let mut failed = Vec::new();
        if let Some((cid, queue)) = self.connecting.remove(&peer) {
            if cid == conn {
                for (b, txn) in queue {
                    if tx.try_send(b).is_err() {
                        failed.extend(txn);
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

    /// A connection closed (or never opened). Returns transactions that were waiting on it.
    pub(super) fn down(&mut self, conn: ConnId) -> Vec<TxnId> {
        if let Some((peer, _)) = self.conns.remove(&conn)
            && self.by_addr.get(&peer) == Some(&conn)
        {
            self.by_addr.remove(&peer);
        }
        let waiting: Option<SocketAddr> = self
            .connecting
            .iter()
            .find(|(_, (c, _))| *c == conn)
            .map(|(a, _)| *a);
        waiting
            .and_then(|a| self.connecting.remove(&a))
            .map(|(_, q)| q.into_iter().filter_map(|(_, t)| t).collect())
            .unwrap_or_default()
    }
}
