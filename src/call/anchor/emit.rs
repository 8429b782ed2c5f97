//! What the relay is told of a call's streams: per stream, each leg's address, how its
//! source is latched and where it may come from (`MediaAction::Relay`).

use super::super::Output;
use super::super::Side;
use super::super::cx::Cx;
use super::super::state::{Call, flows};
use super::addresses::{deliverable, within};
use crate::config::Profile;
use crate::config::net::behind_nat;
use crate::media::{Latch, MediaAction, RelayPair};

impl Call {
    /// Tell the relay what the call's streams are now (`callee`: the callee's profile while
    /// an attempt is being set up).
    pub(in crate::call) fn emit_relay(&self, cx: &mut Cx, callee: Option<&Profile>) {
        let Some(media) = self.media.as_deref() else {
            return;
        };
        // Nothing to tell while the call has no stream (ports are kept until it ends, so it
        // never had one): told, the relay opened the call's recording, which a call refused
        // before any stream (no ports, unreadable SDP) then deleted, once per INVITE.
        if media.pairs.iter().all(Option::is_none) {
            return;
        }
        let profile = |side: Side| self.profile_during(side, callee);
        let latch = |side: Side| profile(side).map_or(Latch::Any, |p| p.latch);
        let rebind = |side: Side| {
            profile(side).map_or(crate::media::MOVE_AFTER_SILENCE, |p| p.rebind_after_silence)
        };
        let repack = |side: Side| {
            profile(side)
                .filter(|p| p.repacketize)
                .and_then(|p| p.ptime)
        };
        // Where each leg's signalling comes from: the caller's as it came in (through the
        // front, not the front's), the callee's where its requests go.
        let signalling = |side: Side| match side {
            Side::A => media
                .caller_ip
                .or_else(|| self.dialog(side).map(|d| d.target.addr.ip())),
            Side::B => self.dialog(side).map(|d| d.target.addr.ip()),
        };
        // Nothing is sent to an SDP address that is no destination (this host's, say) until
        // the leg's packets come from it, nor (`latch = "any"`) to a private one behind NAT.
        let networks = |side: Side| profile(side).and_then(|p| p.media_networks.clone());
        let wait = |side: Side, sdp: Option<std::net::SocketAddr>| {
            sdp.is_some_and(|s| {
                !deliverable(s.ip(), &self.cfg) || !within(networks(side).as_deref(), s.ip())
            }) || (latch(side) == Latch::Any
                && sdp
                    .zip(signalling(side))
                    .is_some_and(|(sdp, ip)| behind_nat(sdp.ip(), ip)))
        };
        let pairs = media
            .pairs
            .iter()
            .enumerate()
            .filter_map(|(i, pair)| {
                let (a_port, b_port) = (*pair)?;
                let u = media.uses.get(i)?;
                let (a, b) = (
                    media.relay_remote(Side::A, i),
                    media.relay_remote(Side::B, i),
                );
                Some(RelayPair {
                    kind: u.kind,
                    rtcp_mux: u.rtcp_mux,
                    a_port,
                    b_port,
                    a_remote: a.map(|r| r.rtp),
                    b_remote: b.map(|r| r.rtp),
                    a_rtcp_port: a.and_then(|r| r.rtcp_port),
                    b_rtcp_port: b.and_then(|r| r.rtcp_port),
                    a_wait_for_source: wait(Side::A, a.map(|r| r.rtp)),
                    b_wait_for_source: wait(Side::B, b.map(|r| r.rtp)),
                    a_signalling: signalling(Side::A),
                    b_signalling: signalling(Side::B),
                    a_latch: latch(Side::A),
                    b_latch: latch(Side::B),
                    // Only G.711 audio is re-cut: anything else (video, Opus) would lose
                    // its sequence gaps, header extensions and CSRCs for nothing.
                    // Never longer than the leg's own SDP says it takes (`a=maxptime`).
                    a_ptime: repack(Side::A)
                        .filter(|_| u.g711)
                        .map(|p| a.and_then(|r| r.maxptime).map_or(p, |m| p.min(m))),
                    b_ptime: repack(Side::B)
                        .filter(|_| u.g711)
                        .map(|p| b.and_then(|r| r.maxptime).map_or(p, |m| p.min(m))),
                    a_rebind_after: rebind(Side::A),
                    b_rebind_after: rebind(Side::B),
                    callee: media.callee,
                    // Only once answered: a failover, or forks' provisionals in turn, would
                    // otherwise turn it on and off while the caller waits in silence.
                    flowing: self.phase.is_up() && flows(&media.directions, i),
                    a_heard: media.heard.a,
                    b_heard: media.heard.b,
                    // An ended call relays and records nothing more, though its ports wait
                    // for its last transactions (a BYE unanswered for 32 s).
                    active: !u.off && !self.phase.is_ending(),
                    host_ips: self.cfg.host_ips.clone(),
                    a_networks: networks(Side::A),
                    b_networks: networks(Side::B),
                    g711: u.g711,
                })
            })
            .collect();
        cx.emit(Output::Media(MediaAction::Relay {
            call: cx.r,
            pairs,
            record: media.recording.clone(),
            rtp_timeout: media.rtp_timeout,
        }));
    }
}
