//! What a call keeps of its anchored media: ports and addresses per stream, what each
//! stream carries, the session each leg was shown.

use super::PerSide;
use crate::call::Side;

/// The call's anchored media: per m= line, the gateway's RTP ports facing (the caller, the
/// callee) when the stream has any, and where each leg wants its RTP (from its SDP).
#[derive(Debug, Clone, Default)]
pub struct MediaState {
    pub pairs: Vec<Option<(u16, u16)>>,
    pub remote: PerSide<Vec<Option<Remote>>>,
    /// Per stream: what the offer/answer exchanges settled about it.
    pub uses: Vec<StreamUse>,
    /// Each leg's last offer's m= lines: what an answer from the other leg may take (RFC
    /// 3264 §6: as many lines, and a stream the offer refused stays refused). `None` before
    /// that leg made an offer that was anchored.
    pub offered: PerSide<Option<OfferShape>>,
    /// The media timeout the relay was last given (a held call's is the longer one).
    pub rtp_timeout: Option<std::time::Duration>,
    /// The session each leg has been shown in the SDP sent to it (one `o=` per dialog).
    pub shown: PerSide<Option<crate::sdp::Origin>>,
    /// Where the call is recorded, when it is.
    pub recording: Option<crate::media::RecordSpec>,
    /// Which callee side B is (one more at each failover): see [`crate::media::RelayPair`].
    pub callee: u32,
    /// Each leg's peer has sent SDP (side B's: this callee).
    pub heard: PerSide<bool>,
    /// Per stream, what each leg's SDP of the last completed offer/answer says it does:
    /// (sends, receives). See [`crate::media::RelayPair::flowing`].
    pub directions: PerSide<Vec<(bool, bool)>>,
    /// What the offer waiting for its answer says its leg does (set as the answer comes:
    /// a refused offer changes nothing).
    pub proposed: Option<(super::super::Side, Vec<(bool, bool)>)>,
    /// The offerer's addresses before the offer waiting for its answer: the relay keeps
    /// them until the answer ([`MediaState::relay_remote`]). Set only once the call is
    /// answered (`anchor.rs`): a failover or a fork's end, while it is set up, finds none.
    pub moving: Option<Box<(super::super::Side, Vec<Option<Remote>>)>>,
    /// Where the caller's signalling comes from: its source, or through the front the
    /// source the front stamped (the dialog's target is then the front). Whether its SDP
    /// address is behind NAT is judged against it. `None` for a call-back, whose side A is
    /// user1's dialog (its target the address it is reached at).
    pub caller_ip: Option<std::net::IpAddr>,
    /// The `o=` version of the answer the caller took in a reliable provisional: a 2xx that
    /// shows it a later one (another branch's answer, the next callee's) is offered to it
    /// after its ACK (`reoffer.rs`). Cleared by any other early offer/answer on its leg,
    /// and at the ACK.
    pub caller_agreed: Option<u64>,
    /// Per leg, our offer that met glare (a 491) or found an INVITE under way, made when
    /// [`crate::call::timers::CallTimer::Reoffer`] fires.
    pub reoffer_again: PerSide<Option<Box<crate::call::reoffer::ReofferAgain>>>,
    /// Per leg, how many times our offer there met glare.
    pub glare_tries: PerSide<u8>,
    /// Our offers in a row made to carry an answer's new terms to the other leg
    /// (`Call::carry_over`).
    pub carried: u8,
    /// The branch of a forking callee whose SDP `remote.b` is from, while the call rings:
    /// when that branch's early dialog ends, the caller's media goes to it no more.
    pub b_branch: Option<Box<str>>,
    /// What the branches whose SDP `b_branch` took over from last said of the streams
    /// (empty, unallocated, on a call that never forks): when the followed branch's early
    /// dialog ends and side B goes back to one of them, its media is taken up again.
    pub branches: Vec<BranchMedia>,
}

impl MediaState {
    /// The call's G.711 voice was encrypted end to end (SRTP, DTLS-SRTP), and none of it
    /// ever in the clear: a recording of the call holds none of it. (Judged over the
    /// call, not by its end: a call recorded in the clear and re-INVITEd to SRTP has voice
    /// in its file.)
    pub fn voice_encrypted(&self) -> bool {
        self.uses.iter().any(|u| u.voice_encrypted) && !self.uses.iter().any(|u| u.voice_clear)
    }
}

/// An early branch's media as its last SDP left it ([`MediaState::branches`]).
#[derive(Debug, Clone)]
pub struct BranchMedia {
    pub tag: Box<str>,
    pub remote: Vec<Option<Remote>>,
    pub directions: Vec<(bool, bool)>,
    pub uses: Vec<StreamUse>,
}

/// `v` made `n` long: cut, or padded with `pad`.
fn padded<T: Clone>(mut v: Vec<T>, n: usize, pad: T) -> Vec<T> {
    v.resize(n, pad);
    v
}

/// Branches' media kept at most (as many as the early dialogs a call keeps).
const MAX_BRANCHES: usize = crate::call::forks::MAX_EARLY_FORKS;

impl MediaState {
    /// Another branch's SDP is about to replace `b_branch`'s: keep what that one said.
    pub fn keep_branch(&mut self) {
        let Some(tag) = self.b_branch.clone() else {
            return;
        };
        let kept = BranchMedia {
            remote: self.remote.b.clone(),
            directions: self.directions.b.clone(),
            uses: self.uses.clone(),
            tag,
        };
        let all = &mut self.branches;
        all.retain(|b| b.tag != kept.tag);
        if all.len() == MAX_BRANCHES {
            all.remove(0);
        }
        all.push(kept);
    }

    /// Branch `tag`'s kept media, taken out (and forgotten: its early dialog ended, or it is
    /// followed again).
    pub fn take_branch(&mut self, tag: &str) -> Option<BranchMedia> {
        let all = &mut self.branches;
        let i = all.iter().position(|b| &*b.tag == tag)?;
        Some(all.remove(i))
    }

    /// Side B follows branch `b`'s SDP again, as it left it. A stream added since by
    /// another branch's SDP is none of its own: off, nothing relayed through it (with
    /// `latch = "any"` its open side would latch to anyone).
    pub fn take_up_branch(&mut self, b: BranchMedia) {
        let n = self.pairs.len();
        let off = StreamUse {
            off: true,
            ..StreamUse::default()
        };
        self.remote.b = padded(b.remote, n, None);
        self.directions.b = padded(b.directions, n, (false, false));
        self.uses = padded(b.uses, n, off);
        self.b_branch = Some(b.tag);
        self.heard.b = true;
    }
}

/// Where a leg wants one stream's media, from its SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    pub rtp: std::net::SocketAddr,
    /// Its RTCP's port at the same IP, when not the RTP port + 1 (`a=rtcp`, RFC 3605).
    pub rtcp_port: Option<u16>,
    /// The longest packets it takes (`a=maxptime`).
    pub maxptime: Option<u16>,
}

impl MediaState {
    /// The streams as they were in `before` (a copy taken before an offer that was then
    /// refused). Ports the offer took stay the call's, their sockets open until it ends:
    /// they are kept as refused streams, for the next stream to take.
    pub fn restore(&mut self, before: &MediaState) {
        let taken: Vec<(u16, u16)> = self
            .pairs
            .iter()
            .flatten()
            .filter(|p| !before.pairs.contains(&Some(**p)))
            .copied()
            .collect();
        self.pairs.clone_from(&before.pairs);
        self.remote.clone_from(&before.remote);
        self.uses.clone_from(&before.uses);
        self.offered.clone_from(&before.offered);
        self.directions = self.directions_after_refusal(before);
        self.proposed.clone_from(&before.proposed);
        self.moving.clone_from(&before.moving);
        // Whose SDP side B's addresses are from goes back with them (an early branch's
        // refused UPDATE offer left them the branch's before).
        self.b_branch.clone_from(&before.b_branch);
        self.branches.clone_from(&before.branches);
        self.rtp_timeout = before.rtp_timeout;
        for p in taken {
            self.pairs.push(Some(p));
            self.remote.a.push(None);
            self.remote.b.push(None);
            // Off: nothing may be relayed through them until an offer takes them (on
            // `latch = "any"` each side would latch to anyone, an open relay).
            self.uses.push(StreamUse {
                off: true,
                ..StreamUse::default()
            });
        }
    }
}

impl MediaState {
    /// Where the relay takes `side`'s stream `i` to be: its SDP's address, but the one
    /// before an offer of its still unanswered (RFC 3264 §8.3.1: its old endpoint sends
    /// until the answer). Moved at the offer, the leg's latch emptied then, open to the
    /// first sender, and again when the offer was refused.
    pub fn relay_remote(&self, side: Side, i: usize) -> Option<Remote> {
        let new = *self.remote[side].get(i)?;
        match self.moving.as_deref() {
            // A stream the offer adds has no address before it; one that named none (an
            // old-style hold, `c=0.0.0.0`) still names none: the relay keeps the leg.
            Some((s, old)) if *s == side => old.get(i).copied().unwrap_or(new),
            _ => new,
        }
    }

    /// An offer from `side` is about to change its addresses: the ones before it are kept
    /// for the relay until the answer. The same offer again (in a 183, then in the 200)
    /// keeps the first's; a new one takes its own.
    pub fn offer_from(&mut self, side: Side) {
        let again = self.moving.as_deref().is_some_and(|(s, _)| *s == side)
            && self.proposed.as_ref().is_some_and(|(s, _)| *s == side);
        if !again {
            self.moving = Some(Box::new((side, self.remote[side].clone())));
        }
    }

    /// The offer from `side` will not be answered after all (the peer that was to answer
    /// it is gone, or its offer was not taken): the relay keeps the addresses before it.
    pub fn offer_dropped(&mut self, side: Side) {
        if let Some(m) = self.moving.take_if(|m| m.0 == side) {
            let (s, mut old) = *m;
            // Streams the offer added had no address before it, and relay nothing now.
            let before = old.len();
            old.resize(self.remote[s].len().max(before), None);
            self.remote[s] = old;
            for u in self.uses.iter_mut().skip(before) {
                u.off = true;
            }
        }
    }
}

impl MediaState {
    /// The directions once an offer is refused: those before it, as a provisional answer
    /// may have settled the refused offer's (a resume answered in a 183, then refused: the
    /// call is still held, and the real resume after it must read as one). Except where
    /// that turns a stream's media back on (a hold answered in a 183, then refused): the
    /// relay reads that edge as a resume, which opens legs that have sent nothing to the
    /// first sender, and no new session was agreed. Such a stream stays as the 183 left it
    /// until the next offer/answer.
    fn directions_after_refusal(&self, before: &MediaState) -> PerSide<Vec<(bool, bool)>> {
        let mut directions = before.directions.clone();
        for i in 0..before.directions.a.len() {
            if flows(&before.directions, i) && !flows(&self.directions, i) {
                for side in [Side::A, Side::B] {
                    if let Some(d) = directions[side].get_mut(i) {
                        *d = self.directions[side].get(i).copied().unwrap_or_default();
                    }
                }
            }
        }
        directions
    }
}

/// Whether stream `i` has media both ways on both legs: what the relay is told as
/// [`crate::media::RelayPair::flowing`] once the call is up.
pub fn flows(directions: &PerSide<Vec<(bool, bool)>>, i: usize) -> bool {
    directions.a.get(i) == Some(&(true, true)) && directions.b.get(i) == Some(&(true, true))
}

/// The shape of an offer: see [`MediaState::offered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferShape {
    /// An answer to it has come.
    pub answered: bool,
    /// Per m= line, whether it offered a relayed stream.
    pub relayed: Vec<bool>,
    /// Per m= line, as an answer refuses it: what an answer that left it out gets back.
    pub sections: Vec<Box<[u8]>>,
}

impl OfferShape {
    /// A new offer from a leg whose last was `prev`. Another before any answer (each branch
    /// of a forking proxy offering in its own provisional) widens the shape instead: the
    /// answer may be to any of them.
    pub fn offer(prev: Option<OfferShape>, relayed: Vec<bool>, sections: Vec<Box<[u8]>>) -> Self {
        match prev {
            Some(mut o) if !o.answered => {
                if o.relayed.len() < relayed.len() {
                    o.relayed.resize(relayed.len(), false);
                }
                for (o, r) in o.relayed.iter_mut().zip(relayed) {
                    *o |= r;
                }
                let known = o.sections.len();
                o.sections.extend(sections.into_iter().skip(known));
                o
            }
            _ => OfferShape {
                answered: false,
                relayed,
                sections,
            },
        }
    }
}

/// What the offer/answer exchanges settled about one anchored stream, and so what the relay
/// reads of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamUse {
    /// What the relay reads of it: what the last answer said, or before any answer, the
    /// offer that made the stream.
    pub kind: crate::media::StreamKind,
    /// RTCP on the RTP port: offered and answered with `a=rtcp-mux` (RFC 5761 §5.1.1).
    pub rtcp_mux: bool,
    /// The offer waiting for its answer: its kind and `a=rtcp-mux`. A refused offer is
    /// dropped, changing nothing.
    pub offered: Option<(crate::media::StreamKind, bool)>,
    answered: bool,
    /// The answered offer's `a=rtcp-mux`: another answer to it (a forking callee's next
    /// branch) settles multiplexing with it too.
    offer_mux: Option<bool>,
    /// The last SDP turned the stream off (port 0, or no such m= line): it relays nothing.
    pub off: bool,
    /// G.711 audio (`m=audio` with payload type 0 or 8), as the answer (before one, the
    /// offer) says: only such a stream is repacketised.
    pub g711: bool,
    /// An answer made it G.711 in the clear at some point, or encrypted G.711: what a
    /// recording of the call could hold ([`MediaState::voice_encrypted`]).
    voice_clear: bool,
    voice_encrypted: bool,
}

impl StreamUse {
    /// An offer said this of the stream. An offer that cannot be refused (in a response to
    /// an INVITE without SDP: `binding`) is what the stream carries from now on; any other
    /// takes effect with its answer, unless the stream is new (its packets may come before
    /// any answer, as early media).
    pub fn offer(&mut self, kind: crate::media::StreamKind, mux: bool, g711: bool, binding: bool) {
        self.offered = Some((kind, mux));
        if binding || !self.answered {
            self.kind = kind;
            self.g711 = g711;
        }
    }

    /// An answer said this of the stream: it is what the stream now carries (an answer that
    /// drops best-effort SRTP keys makes it RTP), and with the offer it answers it settles
    /// RTCP multiplexing. Another answer to the same offer (a 200 after its 183, or another
    /// branch's 183) settles it again: RTCP is multiplexed when both the offer and the
    /// latest answer say so.
    pub fn answer(&mut self, kind: crate::media::StreamKind, mux: bool, g711: bool) {
        self.kind = kind;
        self.g711 = g711;
        self.answered = true;
        if g711 {
            match kind {
                crate::media::StreamKind::Rtp => self.voice_clear = true,
                _ => self.voice_encrypted = true,
            }
        }
        if let Some((_, offer_mux)) = self.offered.take() {
            self.offer_mux = Some(offer_mux);
        }
        if let Some(offer_mux) = self.offer_mux {
            self.rtcp_mux = mux && offer_mux;
        }
    }
}
