//! The `/metrics` endpoint, served by us rather than by the exporter crate's HTTP listener.
//! That listener spawns a task per connection with no cap and no deadline, answers anyone,
//! and busy-loops when `accept` fails for want of descriptors; on a gateway whose metrics
//! port is reachable, a stranger could hold sockets and tasks on the signalling runtime
//! without end. Here a connection is closed unanswered unless its source is in
//! `[metrics] allow`, at most `max_connections` are served at once (more are closed at
//! once), the request head must arrive within `HEAD_TIMEOUT` and fit in `MAX_HEAD`, and
//! every connection ends after one answer.
//!
//! What to answer is decided by [`reply_to`], without sockets.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time the answer has to be taken by the client.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the answer, what the client still sends is read and dropped for this long (and up
/// to `LINGER_BYTES`) before closing: closing with unread bytes resets the connection,
/// and the client may then lose the answer (a 400 to a head too long, above all).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// Longest request head read; Prometheus and curl send a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// Histogram upkeep (the exporter's own listener ran it every 5 s too).
const UPKEEP: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (out of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The exposition text (`GET` of any path but `/health`, as the exporter did).
    Metrics { head_only: bool },
    /// `GET /health`: 200 "OK" while the gateway takes new calls, else 503 and why.
    Health { head_only: bool },
    /// A method other than GET or HEAD.
    MethodNotAllowed,
    /// No readable request line.
    BadRequest,
}

/// The answer to one request head (the bytes up to and including its blank line).
pub fn reply_to(head: &[u8]) -> Reply {
    let Ok(text) = std::str::from_utf8(head) else {
        return Reply::BadRequest;
    };
    let line = text.lines().next().unwrap_or("");
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Reply::BadRequest;
    };
    // Origin form (`/metrics`), or absolute form (`http://host:9464/metrics`), which a
    // server must take too (RFC 9112 §3.2.2).
    let target = match target.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        _ => target,
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Reply::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Reply::MethodNotAllowed,
    };
    let path = target.split('?').next().unwrap_or(target);
    if path == "/health" {
        Reply::Health { head_only }
    } else {
        Reply::Metrics { head_only }
    }
}

/// Where a request head ends in `buf` (just past its blank line), if it has arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(i + 4);
    }
    buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

/// One HTTP/1.1 response that closes the connection; `extra`: more header lines, each
/// ending in CRLF.
fn response(
    status: &str,
    content_type: &str,
    extra: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// Who may scrape, asked per connection so a reload's `[metrics] allow` applies at once.
pub type Allow = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Whether the gateway takes new calls, or why not (`GET /health`, a readiness probe: a
/// load balancer or orchestrator sends new calls elsewhere while it drains).
pub type Ready = Arc<dyn Fn() -> Result<(), &'static str> + Send + Sync>;

/// Serve `/metrics` on `listener` until the runtime stops, and run the exporter's upkeep.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    allow: Allow,
    ready: Ready,
    max_connections: usize,
) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            // Off the signalling thread, as a render is: the upkeep walks every histogram
            // under the registry's write lock, which a render's read lock holds off.
            let upkeep = upkeep.clone();
            let _ = tokio::task::spawn_blocking(move || upkeep.run_upkeep()).await;
        }
    });
    let slots = Arc::new(Semaphore::new(max_connections));
    let sources = Arc::new(PerSource::new(max_connections));
    loop {
        // As the SIP listeners: a flood of connections must not hold the thread.
        tokio::task::consume_budget().await;
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // A source not allowed, or one past the cap, is closed without a byte. A panic in
        // that decision (a defect) closes this connection, not the loop: ended, it would
        // have left the gateway's metrics and health check unanswered until a restart.
        let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            allow(peer.ip()).then(|| sources.take(peer.ip()))
        }));
        let mine = match decided {
            Ok(Some(Some(mine))) => mine,
            Ok(Some(None)) => {
                crate::ops::metrics::scrape_refused("source_busy");
                continue;
            }
            Ok(None) => {
                debug!(%peer, "metrics: source not in [metrics] allow");
                crate::ops::metrics::scrape_refused("source");
                continue;
            }
            Err(_) => {
                crate::ops::metrics::scrape_refused("panicked");
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            crate::ops::metrics::scrape_refused("busy");
            continue;
        };
        let handle = handle.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            answer(stream, handle, ready).await;
            drop((slot, mine));
        });
    }
}

/// How many of the slots one source holds. An allowed source that opened every slot and
/// sent nothing (or read slowly) held off every other one, the health check of a container
/// or orchestrator too, which then restarted a working gateway: one source holds at most
/// half the slots (one when there is one). IPv6 sources count by /64, as the SIP edge does.
struct PerSource {
    most: usize,
    held: std::sync::Mutex<foldhash::HashMap<IpAddr, usize>>,
}

impl PerSource {
    fn new(max_connections: usize) -> Self {
        PerSource {
            most: (max_connections / 2).max(1),
            held: std::sync::Mutex::default(),
        }
    }

    /// A slot of `ip`'s share, given back when the [`SourceSlot`] drops; None when it holds
    /// its share. (At most as many entries as connections served.)
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let key = crate::config::net::source_key(ip);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(key).or_insert(0);
        if *n >= self.most {
            return None;
        }
        *n += 1;
        Some(SourceSlot(self.clone(), key))
    }
}

struct SourceSlot(Arc<PerSource>, IpAddr);

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut held = (self.0.held.lock()).unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.1);
            }
        }
    }
}

/// Read one request head and answer it.
async fn answer(mut stream: TcpStream, handle: PrometheusHandle, ready: Ready) {
    let mut buf = Vec::with_capacity(1024);
    let read = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = head_end(&buf) {
                return Some(end);
            }
            if buf.len() >= MAX_HEAD {
                return None;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n.min(MAX_HEAD - buf.len())]),
            }
        }
    })
    .await;
    let reply = match read {
        Ok(Some(end)) => reply_to(&buf[..end]),
        Ok(None) if buf.len() >= MAX_HEAD => Reply::BadRequest,
        // Closed, failed or too slow: nothing to answer.
        _ => return,
    };
    let out = match reply {
        Reply::Metrics { head_only } => {
            // Rendering walks every series; keep it off the signalling threads. At most
            // `max_connections` renders run at once.
            let Ok(text) = tokio::task::spawn_blocking(move || handle.render()).await else {
                return;
            };
            response(
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                "",
                text.as_bytes(),
                head_only,
            )
        }
        Reply::Health { head_only } => match ready() {
            Ok(()) => response("200 OK", "text/plain", "", b"OK", head_only),
            Err(why) => response(
                "503 Service Unavailable",
                "text/plain",
                "",
                why.as_bytes(),
                head_only,
            ),
        },
        // RFC 9110 §15.5.6: a 405 names the methods that are allowed.
        Reply::MethodNotAllowed => response(
            "405 Method Not Allowed",
            "text/plain",
            "Allow: GET, HEAD\r\n",
            b"",
            false,
        ),
        Reply::BadRequest => response("400 Bad Request", "text/plain", "", b"", false),
    };
    let sent = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        let _ = tokio::time::timeout(LINGER, async {
            let mut chunk = [0u8; 4096];
            let mut dropped = 0;
            while dropped < LINGER_BYTES {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => dropped += n,
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests;
