//! Sends the kernel refused: counted, and said in the log at most every 10 s.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

/// How often a failed send is said in the log at most.
const SEND_FAILED_SAID_EVERY: Duration = Duration::from_secs(10);

/// A send the kernel refused: counted, and said at most every 10 s with how many since.
/// Anyone can make these (a 403 to a spoofed source no route leads to, a firewall rule
/// against an address): a line per datagram would be a log flood on demand.
pub(super) fn said(to: SocketAddr, e: &std::io::Error) {
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicU64;
    static BASE: OnceLock<Instant> = OnceLock::new();
    static NEXT_MS: AtomicU64 = AtomicU64::new(0);
    static UNSAID: AtomicU64 = AtomicU64::new(0);
    crate::ops::metrics::udp_send_failed().increment(1);
    let now_ms = BASE.get_or_init(Instant::now).elapsed().as_millis() as u64;
    let next = NEXT_MS.load(Ordering::Relaxed);
    let due = now_ms >= next
        && NEXT_MS
            .compare_exchange(
                next,
                now_ms + SEND_FAILED_SAID_EVERY.as_millis() as u64,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
    if due {
        let unsaid = UNSAID.swap(0, Ordering::AcqRel);
        warn!(%to, error = %e, not_said_before = unsaid, "UDP send failed (said at most every 10 s; all counted in trunkgate_sip_send_failed_total)");
    } else {
        UNSAID.fetch_add(1, Ordering::Relaxed);
    }
}
