//! Where a leg's requests go when its peer moves under it: a NAT that rebinds it to another
//! UDP port, or a reconnect over another TCP connection. Judged on a request (or ACK) that
//! already matched the leg's dialog and came from the leg's peer's IP.

use super::Side;
use super::dialog::Dialog;
use super::state::Call;
use crate::sip::{Request, Target, Transport};

impl Call {
    /// The peer on `side` spoke in its dialog from `heard_on` (`req`): its leg follows it
    /// there when [`follow`] says so.
    pub(super) fn follow_peer(&mut self, side: Side, heard_on: Option<Target>, req: &Request) {
        let configured = self.profile(side).map(|p| p.address);
        if let Some(leg) = self.dialog_mut(side) {
            follow(leg, heard_on, req, configured);
        }
    }
}

/// TCP: a peer that reached us over a connection of its own and now speaks in the dialog on
/// another (its NAT rebound, it reconnected): our requests go on that one from now on. The
/// old one may be gone, and a connection back to its Contact or Via port, behind its NAT,
/// would reach nothing. Only a leg on a connection of its own (one the peer opened, or we
/// opened back toward it) follows, to another from the same IP (a connection cannot be
/// spoofed, and the request matched the dialog's tags); a leg we reach at its configured
/// address has none of its own, and keeps it.
///
/// UDP: a peer behind NAT (its top Via names another IP than the one it came from) that now
/// speaks from another port of that IP (its NAT's mapping timed out and was made anew, as a
/// home router's does after 30 s to 3 min of quiet): our requests go to that port from now
/// on. Before, the BYE, re-INVITEs and session refreshes went on to the old port, which the
/// NAT had dropped or given to another host. A peer not behind NAT keeps its port (an SBC
/// may send from a port of its own and listen on the one it first used), and so does a leg
/// we reach at its profile's configured address (a PBX behind a port forward is reached
/// there, whatever its NAT sends from).
pub(super) fn follow(
    leg: &mut Dialog,
    heard_on: Option<Target>,
    req: &Request,
    configured: Option<Target>,
) {
    let Some(t) = heard_on else {
        return;
    };
    if t.transport != leg.target.transport || t.addr.ip() != leg.target.addr.ip() {
        return;
    }
    let moved = match t.transport {
        Transport::Tcp => {
            t.conn.is_some() && leg.target.conn.is_some() && t.conn != leg.target.conn
        }
        Transport::Udp => {
            let at_configured = configured
                .is_some_and(|c| c.transport == Transport::Udp && c.addr == leg.target.addr);
            t.addr.port() != leg.target.addr.port()
                && !at_configured
                && req
                    .top_via()
                    .is_some_and(|v| v.names_other_ip_than(t.addr.ip()))
        }
    };
    if moved {
        leg.target = t;
    }
}
