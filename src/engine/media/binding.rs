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

/// Pairs a socket not ours holds: found when a stream's bind failed, reported to the core
/// (which hands them out no more), and tried again every [`RECHECK`] (the socket may have
/// been a short-lived one's, a DNS lookup's on a range overlapping the ephemeral ports):
/// those that bind again are reported free.
#[derive(Default)]
pub(super) struct Held {
    /// Found, not yet reported (at most [`MAX_HELD`]: more is a host whose whole range is
    /// taken, which the next seconds report on).
    new: Vec<u16>,
    /// Reported, by RTP port.
    withheld: Vec<u16>,
    last_check: Option<std::time::Instant>,
}

/// Held pairs waiting to be reported at once.
const MAX_HELD: usize = 64;

/// How often withheld pairs are tried again.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

impl Held {
    /// A stream's bind failed with the address in use: which of its pairs (if any) a socket
    /// not ours holds, by binding each port again (no released stream of ours is closing on
    /// it).
    pub(super) fn note(
        &mut self,
        closing: &[([u16; 2], Arc<AtomicBool>)],
        ip: IpAddr,
        p: &RelayPair,
    ) {
        for rtp in [p.a_port, p.b_port] {
            let ours = closing.iter().any(|(ports, _)| ports.contains(&rtp));
            let taken = !ours && !binds(ip, rtp);
            let known = self.new.contains(&rtp) || self.withheld.contains(&rtp);
            if taken && !known && self.new.len() < MAX_HELD {
                self.new.push(rtp);
            }
        }
    }

    /// The pairs found held since last asked: the core withholds them.
    pub(super) fn take_new(&mut self) -> Vec<u16> {
        let new = std::mem::take(&mut self.new);
        self.withheld.extend_from_slice(&new);
        new
    }

    /// Every [`RECHECK`]: the withheld pairs that bind again (each tried by binding its two
    /// ports, then let go: no call has them), for the core to hand out again.
    pub(super) fn free_again(&mut self, ip: IpAddr, now: std::time::Instant) -> Vec<u16> {
        if self.withheld.is_empty() || self.last_check.is_some_and(|t| now < t + RECHECK) {
            return Vec::new();
        }
        self.last_check = Some(now);
        let (free, held): (Vec<u16>, Vec<u16>) =
            self.withheld.iter().partition(|&&rtp| binds(ip, rtp));
        self.withheld = held;
        free
    }
}

/// Whether both ports of the pair of `rtp` can be bound now (an address in use says no;
/// another error is no sign of another socket).
fn binds(ip: IpAddr, rtp: u16) -> bool {
    [rtp, rtp.saturating_add(1)]
        .into_iter()
        .all(|port| !bind(ip, port).is_err_and(|e| e.kind() == std::io::ErrorKind::AddrInUse))
}

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
