//! Whether a connection just accepted is kept, and on which slot: the accept loop's only
//! decision, apart so that a defect in it (a panic) costs that one connection and not the
//! loop, which ended with it before and took every TCP connection to come.

use std::net::IpAddr;
use std::time::Instant;

use super::accept_pace::AcceptPace;
use super::slots::{Slot, Slots};
use crate::config::UnknownSources;
use crate::engine::inbox::Inbox;

/// What a kept connection is: its slot, and whether its source is a stranger.
pub(super) struct Admitted {
    pub(super) slot: Slot,
    pub(super) stranger: bool,
}

/// The decision for a connection from `ip`, a panic inside it caught: `None` closes the
/// connection (each refusal is counted where it is made; a panic as
/// `refused{reason="tcp_accept_panicked"}`, its place and message logged by the hook).
pub(super) fn guarded(
    inbox: &Inbox,
    slots: &Slots,
    paced: &mut AcceptPace,
    ip: IpAddr,
) -> Option<Admitted> {
    let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        admit(inbox, slots, paced, ip)
    }));
    decided.unwrap_or_else(|_| {
        crate::ops::metrics::refused("tcp_accept_panicked");
        None
    })
}

fn admit(inbox: &Inbox, slots: &Slots, paced: &mut AcceptPace, ip: IpAddr) -> Option<Admitted> {
    // A fault for the test that a panic here costs this connection only.
    #[cfg(test)]
    if ip == IpAddr::from([127, 0, 0, 99]) {
        panic!("a test fault");
    }
    // A stranger gets nothing in `drop` mode, not even a slot, unless the gateway sent it
    // a request lately (a Contact or an old address whose connection closed before it
    // answered connects back with the answer, RFC 3261 §18.2.2: only a response is read
    // from it, as from its datagrams); in `reject` mode one message's time for its 403. A
    // peer's `address` is no stranger either, outside its `match`: a carrier answering
    // from the SBC we call connects back from there with its answer; what it may send is
    // screened by the core as its datagrams are.
    let stranger = !inbox.answers_from_peer(ip);
    if stranger
        && inbox.unknown_sources() == UnknownSources::Drop
        && !inbox.may_answer(ip, Instant::now())
    {
        inbox.tally.count_stranger(ip);
        return None;
    }
    // Over its source's pace too (`accept_pace.rs`).
    if let Some(rate) = inbox.stream_rate(ip)
        && !paced.admit(ip, rate, Instant::now())
    {
        crate::ops::metrics::refused("tcp_accept_rate");
        return None;
    }
    // Over a cap the connection is closed at once (dropping it), and counted.
    let of = inbox.peer_of(ip).filter(|_| !stranger);
    match slots.take_of(Some(ip), stranger, of.as_ref()) {
        Ok(slot) => Some(Admitted { slot, stranger }),
        Err(why) => {
            crate::ops::metrics::refused(why);
            None
        }
    }
}
