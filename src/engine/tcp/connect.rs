//! Opening a connection of ours: from `[sip] advertise` when it can, within the connect
//! timeout, a failure said once in a while per destination; once open, served as any.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::keepalive::keepalive;
use super::{Event, Inbox, Limits, OpenedBy, Slot, serve};
use crate::sip::ConnId;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Open a connection to `addr`, from `from` (`[sip] advertise`) when of `addr`'s family and
/// this host's: a peer that knows us by that address (a floating one for failover) would
/// refuse one from the kernel's pick, which is taken otherwise.
async fn open(addr: SocketAddr, from: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let sock = || {
        if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
    };
    if let Some(ip) = from.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        let s = sock()?;
        if s.bind(SocketAddr::new(ip, 0)).is_ok() {
            return s.connect(addr).await;
        }
    }
    sock()?.connect(addr).await
}

/// Whether a failed connect to `addr` is a warning line: at most one each 10 s per
/// destination (a slot of 64, by a hash of the address: two peers sharing one now and
/// then share their line). A dead TCP trunk is tried by every call and every `[sip]
/// ping_s` ping; one line each would bury the log, and it must not take every other
/// peer's warning with it.
fn connect_warning_due(addr: SocketAddr) -> bool {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    // Per slot, seconds since EPOCH of its last warning, plus one (0: none yet).
    static LAST: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
    let hash = foldhash::fast::FixedState::with_seed(0).hash_one(addr);
    let slot = &LAST[(hash % 64) as usize];
    let now = EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
        + 1;
    let last = slot.load(Ordering::Relaxed);
    if last != 0 && now < last + 10 {
        return false;
    }
    (slot.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)).is_ok()
}

/// `back`: a connect-back toward a peer whose connection closed, which any matched source
/// can have us try at its rate: its failures are no warning line each.
pub(super) async fn connect(
    (addr, back): (SocketAddr, bool),
    from: Option<std::net::IpAddr>,
    conn: ConnId,
    limits: Limits,
    slot: Slot,
    inbox: Inbox,
) {
    match tokio::time::timeout(CONNECT_TIMEOUT, open(addr, from)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            keepalive(&stream);
            serve(stream, addr, conn, limits, slot, inbox, OpenedBy::Us).await;
        }
        failed => {
            let why = failed.map_or("timed out".to_string(), |r| {
                r.err().map(|e| e.to_string()).unwrap_or_default()
            });
            if back {
                debug!(%addr, why, "TCP connect back failed");
            } else if connect_warning_due(addr) {
                warn!(%addr, why, "TCP connect failed (the next ones to it within 10 s: at debug level)");
            } else {
                debug!(%addr, why, "TCP connect failed");
            }
            inbox.deliver(Event::TcpDown { conn }).await;
        }
    }
}
