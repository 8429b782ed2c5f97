//! Media anchoring in the call: SDP toward each leg names the gateway's ports, and the
//! shell's relay is told where each leg's RTP really goes (RFC 4566 endpoints from each SDP).

use bytes::Bytes;
use tracing::warn;

use super::cx::{Cx, Env, Rewrite};
use super::state::{Call, MediaState, OfferShape, Remote, StreamUse};
use super::{CallRef, Output, Side};
use crate::config::Profile;
use crate::media::{MediaAction, StreamKind};
use crate::sdp::{MediaBody, SdpError, Transport};
use crate::sip::{Body, Hdr};

mod addresses;
mod answered;
mod body;
mod emit;
mod exchange;
mod hold;
mod plan;
mod ports;
use addresses::within;
pub(super) use body::{carries_sdp, may_offer, readable_type};
pub(super) use exchange::Exchange;
pub(super) use plan::media_plan;

/// Why the SDP of a message could not be anchored.
#[derive(Debug)]
pub(super) enum AnchorError {
    /// No RTP ports left for a new stream.
    NoPorts,
    /// The SDP cannot be read (or has too many streams): it must not pass unanchored.
    Unreadable(SdpError),
    /// A stream's address is of the other IP family than the relay's (`[media] advertise`):
    /// the relay's sockets cannot reach it, and the call would have no audio.
    OtherFamily,
}

impl AnchorError {
    /// What the `488` refusing the offer says of it (`Warning`); `None` for our own want of
    /// ports, no fault of the offer.
    pub(super) fn warning(&self) -> Option<crate::sdp::SdpWarning> {
        match self {
            AnchorError::NoPorts => None,
            AnchorError::Unreadable(e) => Some(e.warning()),
            AnchorError::OtherFamily => Some(crate::sdp::SdpWarning::OTHER_FAMILY),
        }
    }
}

/// What the relay reads of a stream over `t`; `Unrelayable` streams get no ports, so this is
/// never asked about them (they would be forwarded unread).
fn stream_kind(t: Transport) -> StreamKind {
    match t {
        Transport::Rtp => StreamKind::Rtp,
        Transport::Srtp => StreamKind::Srtp,
        Transport::Datagram | Transport::Unrelayable => StreamKind::Datagram,
    }
}

/// Give a call's ports back and stop its relay; `answered` calls keep their recording.
pub(super) fn release_media(env: &mut Env, r: CallRef, media: MediaState, answered: bool) {
    for (a, b) in media.pairs.into_iter().flatten() {
        env.pool.free(a);
        env.pool.free(b);
    }
    env.out.push_back(Output::Media(MediaAction::Release {
        call: r,
        keep_recording: answered,
    }));
}

impl Call {
    /// An SDP body from leg `from`, rewritten for the other leg: its streams now point at the
    /// gateway. Records `from`'s real endpoints and updates the relay. `Ok(None)` when the
    /// call is not anchored or the body carries no SDP (forward it as is).
    ///
    /// `callee` names the callee's profile while an attempt is being set up (before the call
    /// records it); otherwise the current attempt's is used.
    fn anchor_body(
        &mut self,
        cx: &mut Cx,
        from: Side,
        body: &Bytes,
        ct: Option<&str>,
        callee: Option<&Profile>,
        exchange: Exchange,
    ) -> Result<Option<Bytes>, AnchorError> {
        let offer = exchange.offer();
        if body.is_empty() || self.media.is_none() {
            return Ok(None);
        }
        // An answer takes no stream its offer did not relay: its extra m= lines are left
        // out, and a stream the offer refused (port 0) stays refused whatever port the
        // answer names, so it gets no ports and the offerer sees port 0 (RFC 3264 §6).
        let last_offer = (self.media.as_ref())
            .and_then(|m| m.offered[from.other()].as_ref())
            .map(|o| (o.relayed.clone(), &o.sections))
            .filter(|_| offer.is_none());
        // An offer is held to its sender's `[media] max_streams` (a peer's share of the port
        // pool); an answer relays no stream its offer did not.
        // An offer in a response to a re-INVITE cannot be refused (its answer goes in the
        // ACK): its streams past `max_streams`, or past what the pool can give, are refused
        // in the SDP and the streams the call has go on. Before, every stream of it was
        // refused, the call's audio with them. (A new call's late offer past `max_streams`
        // fails the call before this: `unreadable_sdp`.)
        let binding = exchange == Exchange::OfferInResponse;
        let cap = (binding && last_offer.is_none()).then(|| self.offer_max_streams(from, callee));
        let mb = match &last_offer {
            Some((_, sections)) => MediaBody::read_answer(ct, body, sections),
            None if binding => MediaBody::read(ct, body, usize::MAX),
            None if offer.is_some() => {
                MediaBody::read(ct, body, self.offer_max_streams(from, callee))
            }
            None => MediaBody::read(ct, body, self.cfg.media_max_streams),
        };
        let last_offer = last_offer.map(|(relayed, _)| relayed);
        let mb = match mb {
            Ok(Some(mb)) => mb,
            Ok(None) => return Ok(None),
            Err(e) => return Err(AnchorError::Unreadable(e)),
        };
        let (mb, mut relayed): (MediaBody, Vec<bool>) = match last_offer {
            Some(offered) => {
                let relayed = mb
                    .streams
                    .iter()
                    .zip(&offered)
                    .map(|(e, o)| *o && e.is_relayed())
                    .collect();
                (mb, relayed)
            }
            _ => {
                let relayed = mb.streams.iter().map(|e| e.is_relayed()).collect();
                (mb, relayed)
            }
        };
        if let Some(cap) = cap {
            let pairs = self.media.as_ref().map_or(&[][..], |m| &m.pairs[..]);
            ports::cap(&mut relayed, cap, pairs);
        }
        // A relayed stream whose address is of the other family than the relay's: nothing
        // is sent there, and a leg latched to its SDP's address (`latch = "sdp-ip"`) is
        // never heard either; a new call's offer from such a leg is refused (488), and
        // anything else said, once (before, the call answered silent, each send failing at
        // debug). Another leg may still be heard from an address of the relay's family (a
        // dual-stack phone); a call under way is not refused its refresh or hold.
        let relay_v4 = self.cfg.media_ip.to_canonical().is_ipv4();
        let other_family = (mb.streams.iter().zip(&relayed)).any(|(e, r)| {
            *r && e
                .ip
                .is_some_and(|ip| !ip.is_unspecified() && ip.to_canonical().is_ipv4() != relay_v4)
        });
        if other_family
            && self
                .events
                .push_once(super::events::CallEvent::MediaOtherFamily(from))
        {
            warn!(call_id = %self.call_id(), side = ?from, "SDP names media in the other IP family than [media] advertise: the relay sends nothing there");
        }
        let latched_to_sdp = (self.profile_during(from, callee))
            .is_some_and(|p| p.latch == crate::media::Latch::SdpIp);
        if other_family && exchange == Exchange::Offer && latched_to_sdp && !self.phase.is_up() {
            return Err(AnchorError::OtherFamily);
        }
        let profile = |side: Side| self.profile_during(side, callee);
        // The shorter of the two legs' media timeouts; their hold timeouts while this SDP
        // holds every active stream (a hold is offered and answered: either way it shows).
        // (An SDP relaying no stream holds none: its media timeout is the plain one.)
        let mut on_hold = hold::every_relayed(&relayed, |i| mb.streams[i].held);
        let rtp_timeouts = hold::media_timeouts([profile(Side::A), profile(Side::B)]);
        let media_ip = self.cfg.media_ip;
        // While the callee's branches ring, which one the callee's addresses are from.
        let branch = (from == Side::B && self.phase.is_routing())
            .then(|| self.b.as_ref().and_then(|b| b.remote_tag.clone()))
            .flatten();
        let networks =
            profile(from).and_then(|p| Some((p.media_networks.clone()?, p.name.clone())));
        // An offer moves the relay only once answered after the answer (the caller's ACK
        // may still be on its way), where a leg's latched source is at stake; while the
        // call is set up each callee branch's SDP is where its early media comes from, at
        // once, and so is the offer in the callee's first 2xx (a late offer, answered in
        // the caller's ACK): no earlier address is the call's to keep.
        let holds_old = matches!(self.phase, super::phase::Phase::Confirmed { .. })
            || (self.phase.is_up() && exchange != Exchange::OfferInResponse);
        let Some(media) = self.media.as_mut() else {
            return Ok(None);
        };
        // Another branch's SDP takes over from the followed one's: what that one said is
        // kept, to be taken up again if this one's early dialog ends first. Its answer to
        // the call ends the branches' story.
        match (&branch, exchange) {
            (_, Exchange::Answer) if from == Side::B => media.branches = Vec::new(),
            (Some(new), _) if media.b_branch.as_ref().is_some_and(|old| old != new) => {
                media.keep_branch();
            }
            _ => {}
        }
        // (Before the streams are counted again: one the offer adds had no address.)
        if holds_old && offer.is_some() {
            media.offer_from(from);
        }
        match (offer, media.offered[from.other()].as_mut()) {
            (Some(_), _) => {
                let prev = media.offered[from].take();
                let sections = mb.refused_sections(body);
                media.offered[from] = Some(OfferShape::offer(prev, relayed.clone(), sections));
            }
            (None, Some(o)) => o.answered = true,
            (None, None) => {}
        }
        let n = mb.streams.len();
        if media.pairs.len() < n {
            media.pairs.resize(n, None);
            media.remote.a.resize(n, None);
            media.remote.b.resize(n, None);
            media.uses.resize(n, StreamUse::default());
        }
        match ports::give(media, &mut cx.env.pool, &mut relayed, from, binding) {
            Ok(true) => {}
            Ok(false) => {
                warn!(call_id = %self.a.call_id, "no ports left for some new streams of an offer in a response: they are refused, the others go on");
                (self.events).push_once(super::events::CallEvent::MediaPortsExhausted);
            }
            Err(()) => return Err(AnchorError::NoPorts),
        }
        media.heard[from] = true;
        // What the leg says it does takes effect with the answer: a refused offer changes
        // nothing, so an offer to hold that is refused does not look like a resume.
        let said: Vec<(bool, bool)> = (mb.streams.iter().zip(&relayed))
            .map(|(e, r)| (*r && e.sends, *r && e.receives))
            .collect();
        match offer {
            Some(_) => media.proposed = Some((from, said)),
            None => {
                if let Some((offerer, proposed)) = media.proposed.take()
                    && offerer != from
                {
                    media.directions[offerer] = proposed;
                }
                media.directions[from] = said;
                // An answer's hold is what both legs now say, not its own SDP alone: an
                // old-style hold (`c=0.0.0.0`, no direction) answered `sendrecv`, as RFC
                // 3264 §8.4 allows, leaves nothing flowing either way, and was timed as a
                // live call (released as `rtp_timeout` while on hold).
                on_hold =
                    hold::every_relayed(&relayed, |i| !super::state::flows(&media.directions, i));
                // The offerer's new addresses stand now (and an answer's own are its), once
                // the answer is final.
                if exchange != Exchange::EarlyAnswer {
                    media.moving = None;
                }
            }
        }
        for ((slot, ep), r) in media.remote[from].iter_mut().zip(&mb.streams).zip(&relayed) {
            *slot = match (ep.ip, ep.port) {
                // The canonical address: the relay hears an IPv4 peer as IPv4, also on a
                // dual-stack socket, and latching compares the two. One that is no
                // destination (`deliverable`) is kept all the same, if it names one host:
                // the leg's packets are taken from there (`latch = "sdp-ip"`), and answered
                // once they come (`emit_relay`).
                (Some(ip), p) if *r && p != 0 && crate::config::net::names_one_host(ip) => {
                    Some(Remote {
                        rtp: (ip.to_canonical(), p).into(),
                        rtcp_port: ep.rtcp_port,
                        maxptime: ep.maxptime,
                    })
                }
                _ => None,
            };
        }
        // A relayed stream with no address (a host name, which the relay does not look up,
        // or no `c=`): said once a call per side (before, a trunk's hostname moved its
        // audio nowhere without a word).
        let nameless =
            (mb.streams.iter().zip(&relayed)).any(|(e, r)| *r && e.ip.is_none() && e.port != 0);
        if nameless
            && self
                .events
                .push_once(super::events::CallEvent::MediaNoAddress(from))
        {
            warn!(call_id = %self.a.call_id, ?from, "SDP names no IP address for a stream (a host name in c=, or no c=): the relay sends that leg nothing until it hears it, and takes nothing from it under latch = \"sdp-ip\"");
        }
        // An address outside the peer's `[media] networks` is kept (the relay's wait for
        // its source and its source check both refuse it: `emit_relay`) and reported, once
        // a call per side: a peer repeats it in every refresh.
        if let Some((nets, peer)) = networks
            && let Some(ip) = media.remote[from]
                .iter()
                .take(mb.streams.len())
                .flatten()
                .map(|a| a.rtp.ip())
                .find(|ip| !within(Some(&nets), *ip))
            && self
                .events
                .push_once(super::events::CallEvent::MediaOutsideNetworks(from))
        {
            warn!(?from, %peer, %ip, "SDP names a media address outside the peer's [media] networks: nothing is relayed to or from it");
        }
        if from == Side::B {
            media.b_branch = branch;
        }
        for (i, u) in media.uses.iter_mut().enumerate() {
            u.off = !relayed.get(i).copied().unwrap_or(false);
        }
        for ((u, ep), r) in media.uses.iter_mut().zip(&mb.streams).zip(&relayed) {
            if !r {
                continue;
            }
            let kind = stream_kind(ep.transport);
            if let Some(binding) = offer {
                u.offer(kind, ep.rtcp_mux, ep.g711, binding);
            } else {
                u.answer(kind, ep.rtcp_mux, ep.g711);
            }
        }
        // The SDP toward the other leg names the gateway's port facing that leg.
        let toward: Vec<Option<u16>> = relayed
            .iter()
            .zip(&media.pairs)
            .map(|(r, pair)| {
                let (a, b) = (*pair)?;
                r.then_some(match from {
                    Side::A => b,
                    Side::B => a,
                })
            })
            .collect();
        media.rtp_timeout = rtp_timeouts.of(on_hold);
        self.emit_relay(cx, callee);
        let shown = self.media.as_mut().map(|m| &mut m.shown[from.other()]);
        let anchored = mb
            .anchored(body, media_ip, &toward, shown)
            .map_err(AnchorError::Unreadable)?;
        cx.env.rewrote(Rewrite::SdpAnchor);
        Ok(Some(anchored))
    }

    /// Streams an offer from `from` may have relayed: its peer's own `[media] max_streams`,
    /// else the gateway's.
    fn offer_max_streams(&self, from: Side, callee: Option<&Profile>) -> usize {
        (self.profile_during(from, callee))
            .and_then(|p| p.max_streams)
            .unwrap_or(self.cfg.media_max_streams)
    }

    /// The profile of the peer on `side`; `callee`, when given, stands for side B's (an
    /// attempt being set up, before the call records its peer).
    fn profile_during<'a>(
        &'a self,
        side: Side,
        callee: Option<&'a Profile>,
    ) -> Option<&'a Profile> {
        match (side, callee) {
            (Side::B, Some(p)) => Some(p),
            _ => self.profile(side).map(|p| &**p),
        }
    }

    /// The gateway offered `body` to leg `to` itself (a session refresh): an answer from
    /// it may take what that offer relayed.
    pub(super) fn offered_toward(&mut self, to: Side, body: &Bytes, ct: Option<&str>) {
        let Some(media) = self.media.as_mut() else {
            return;
        };
        if let Ok(Some(mb)) = MediaBody::read(ct, body, usize::MAX) {
            let relayed = mb.streams.iter().map(|e| e.is_relayed()).collect();
            let sections = mb.refused_sections(body);
            media.offered[to.other()] = Some(OfferShape::offer(None, relayed, sections));
        }
        // Its answer settles no leg's new directions: the session offered again is the one
        // that stands.
        media.proposed = None;
    }

    /// A relayed offer was refused: the streams are as they were before it (RFC 3264 §8),
    /// and the relay is told so.
    pub(super) fn media_as_before(&mut self, cx: &mut Cx, before: &MediaState) {
        if let Some(media) = self.media.as_mut() {
            media.restore(before);
            self.emit_relay(cx, None);
        }
    }

    /// The SDP of an answer (or an ACK) relayed from leg `from`, anchored, with the body's
    /// Content-Type; `None` leaves the body as is. An answer cannot be refused with 488: what
    /// cannot be anchored has its streams refused in the SDP rather than leaking the peer's
    /// address (and becomes plain SDP when its SDP part could not be found).
    pub(super) fn anchored_body(
        &mut self,
        cx: &mut Cx,
        from: Side,
        body: &Bytes,
        ct: Option<&str>,
        exchange: Exchange,
    ) -> Option<(Bytes, Option<String>)> {
        match self.anchor_body(cx, from, body, ct, None, exchange) {
            Ok(b) => b.map(|b| (b, ct.map(str::to_string))),
            Err(e) => {
                warn!(call_id = %self.call_id(), error = ?e, "SDP not anchorable: its streams are refused");
                let ip = self.cfg.media_ip;
                // An answer keeps its offer's m= lines whatever it had (RFC 3264 §6).
                let offered = (self.media.as_ref())
                    .and_then(|m| m.offered[from.other()].as_ref())
                    .filter(|_| exchange.offer().is_none());
                let (refused, refused_ct) = match offered {
                    Some(o) => crate::sdp::refuse_all_answering(ct, body, ip, &o.sections),
                    None => crate::sdp::refuse_all(ct, body, ip),
                };
                // An offer (in a 2xx) that could not be read: its answer is matched to the
                // offer the other side was sent, every stream of it refused (as many m=
                // lines; none relayed, whatever port the answer names), not to the
                // sender's earlier offer.
                if exchange.offer().is_some()
                    && let Some(m) = self.media.as_mut()
                {
                    m.offered[from] = MediaBody::read(refused_ct.as_deref(), &refused, usize::MAX)
                        .ok()
                        .flatten()
                        .map(|mb| {
                            let sections = mb.refused_sections(&refused);
                            OfferShape::offer(None, vec![false; mb.streams.len()], sections)
                        });
                }
                // Shown to the peer in its session, like any SDP it is sent.
                let refused = match self.media.as_mut() {
                    Some(m) => crate::sdp::present_again(
                        refused_ct.as_deref(),
                        &refused,
                        &mut m.shown[from.other()],
                    ),
                    None => refused,
                };
                Some((refused, refused_ct))
            }
        }
    }

    /// Anchor the SDP of an offer from leg `from` (an INVITE toward a new callee
    /// `callee`, or a relayed re-INVITE/UPDATE). An error means: refuse the offer.
    pub(super) fn anchor_offer<M: Body>(
        &mut self,
        cx: &mut Cx,
        from: Side,
        msg: &mut M,
        callee: Option<&Profile>,
    ) -> Result<(), AnchorError> {
        let ct = readable_type(msg);
        let body = msg.body().clone();
        if let Some(b) =
            self.anchor_body(cx, from, &body, ct.as_deref(), callee, Exchange::Offer)?
            && let Err(e) = msg.set_body(b, ct.as_deref())
        {
            warn!(error = %e, "cannot set anchored SDP");
        }
        self.note_sdp_received(from, &body, ct.as_deref());
        let policy = callee.map(|p| p.session_timer).filter(|_| from == Side::A);
        self.note_sdp_sent(from.other(), msg.body(), ct.as_deref(), false, policy);
        Ok(())
    }

    /// Anchor the SDP of a response (or another message that cannot be refused) relayed
    /// from leg `from`: an answer, or an offer in a response (to an INVITE that carried no
    /// SDP).
    pub(super) fn anchor_answer<M: Body>(
        &mut self,
        cx: &mut Cx,
        from: Side,
        msg: &mut M,
        exchange: Exchange,
    ) {
        let ct = readable_type(msg);
        let body = msg.body().clone();
        let mut sent_ct = ct.clone();
        let offer = exchange == Exchange::OfferInResponse;
        if let Some((b, new_ct)) = self.anchored_body(cx, from, &body, ct.as_deref(), exchange) {
            match msg.set_body(b, new_ct.as_deref()) {
                Ok(()) => {
                    sent_ct = new_ct;
                    // What is sent now is what was written, not encoded.
                    msg.remove_header(&Hdr::named("Content-Encoding"));
                }
                Err(e) => warn!(error = %e, "cannot set anchored SDP"),
            }
        }
        self.note_sdp_received(from, &body, ct.as_deref());
        // An offer in a response (to an INVITE without SDP) is no answer of ours: a refresh
        // from that leg is not to be answered with it.
        self.note_sdp_sent(from.other(), msg.body(), sent_ct.as_deref(), !offer, None);
    }
}

#[cfg(test)]
mod tests;
