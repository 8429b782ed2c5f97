//! How a dead peer's TCP connection is found out: keepalive probes when it is idle, the
//! user timeout when what we sent goes unacknowledged.

use std::time::Duration;

use tokio::net::TcpStream;
use tracing::debug;

/// TCP keepalive probes after this long without traffic, then every [`KEEPALIVE_INTERVAL`]
/// (the kernel's own interval and count would keep an idle dead connection 12 minutes).
const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 3;
/// What we wrote may go this long unacknowledged before the connection is given up
/// (`TCP_USER_TIMEOUT`). Without it, a trunk that vanishes without a reset (power lost, a
/// firewall's failover) keeps its connection for the kernel's retransmissions, about 15
/// minutes, while every call to it waits out its INVITE's timer on a dead connection; and
/// keepalive never probes one with data unacknowledged. 30 s: about an INVITE's Timer B,
/// so the call after the first lost one opens a new connection (or fails over). With it
/// set, Linux ends an idle connection once this long has passed since anything came and a
/// probe is unanswered, whatever the probe count: the probes' start and spacing leave room
/// for three (at 15, 20 and 25 s), so one or two lost ones do not end a live connection.
const USER_TIMEOUT: Duration = Duration::from_secs(30);

/// How a dead peer's connection is found out: keepalive when idle, the user timeout when
/// what we sent goes unacknowledged.
pub(super) fn keepalive(stream: &TcpStream) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
        debug!(error = %e, "cannot enable TCP keepalive");
    }
    let ms = USER_TIMEOUT.as_millis() as u32;
    if let Err(e) =
        nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::TcpUserTimeout, &ms)
    {
        debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
    }
}
