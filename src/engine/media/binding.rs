//! Binding a stream's ports: a port a released stream of ours still holds is waited for
//! (its relay thread closes it within a turn), and one a socket not ours holds is reported,
//! for the core to hand out no more.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::super::relay_socket::bind;
use crate::media::RelayPair;

/// How long a bind waits for the relay thread to close the socket a released stream held
/// on that port. The thread takes its commands every turn (well under a millisecond when
/// idle). The wait holds up signalling, so it is short: a thread busy with a flood may
/// miss it, and that call's media then fails as before. Only a pool with no rested port
/// left hands a port out this soon.
pub(super) const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// A stream's bind failed with the address in use: which of its pairs (if any) a socket
/// not ours holds, by binding each port again (no released stream of ours is closing on
/// it). Those go to the core, which hands them out no more.
pub(super) fn note_held(
    held: &mut Vec<u16>,
    closing: &[([u16; 2], Arc<AtomicBool>)],
    ip: IpAddr,
    p: &RelayPair,
) {
    for rtp in [p.a_port, p.b_port] {
        let ours = closing.iter().any(|(ports, _)| ports.contains(&rtp));
        let taken = !ours
            && [rtp, rtp.saturating_add(1)].into_iter().any(|port| {
                bind(ip, port).is_err_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
            });
        if taken && !held.contains(&rtp) && held.len() < MAX_HELD {
            held.push(rtp);
        }
    }
}

/// Held pairs waiting to be reported (each second): more is a host whose whole range is
/// taken, which the next seconds report on.
pub(super) const MAX_HELD: usize = 64;

/// Released streams' ports with their `dead` flags, and how long a bind waits for one.
pub(super) type Closing<'a> = (&'a [([u16; 2], Arc<AtomicBool>)], std::time::Duration);

/// Bind `port`; if a released stream's socket still holds it, wait (at most the wait
/// `closing` gives) for its relay thread to close it, then bind again.
pub(super) fn bind_after_close(
    ip: IpAddr,
    port: u16,
    (closing, wait): Closing<'_>,
) -> std::io::Result<mio::net::UdpSocket> {
    match bind(ip, port) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let rtp = port & !1;
            // Every released stream on the port, closed already or not: the one whose socket
            // failed the bind may have closed since (its count fell to one after the
            // failure), and then the bind again is what succeeds. Before, only one still
            // open was looked for, and that race failed the call's media.
            let on_port = || closing.iter().filter(|(ports, _)| ports.contains(&rtp));
            if on_port().next().is_none() {
                return Err(e);
            }
            let until = std::time::Instant::now() + wait;
            while on_port().any(|(_, io)| Arc::strong_count(io) > 1)
                && std::time::Instant::now() < until
            {
                std::thread::yield_now();
            }
            bind(ip, port)
        }
        r => r,
    }
}
