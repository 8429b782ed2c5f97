//! What a call keeps of the 2xx-ACK exchange on each leg (RFC 3261 §13.3.1.4, §13.2.2.4):
//! our 2xx until it is ACKed, our last ACK, and the re-INVITEs given up whose 2xx may
//! still come.

use std::time::Duration;

use bytes::Bytes;

use crate::sip::Response;
use crate::txn::TxnId;

/// Our 2xx to an INVITE on a side, retransmitted until the ACK (RFC 3261 §13.3.1.4).
#[derive(Debug)]
pub struct Pending2xx {
    pub resp: Response,
    /// CSeq of the INVITE on that side, which the ACK will carry.
    pub cseq: u32,
    /// CSeq of the matching INVITE on the other side, which we ACK once this side ACKs;
    /// none when the gateway answered the INVITE itself (a session refresh).
    pub other_cseq: Option<u32>,
    pub interval: Duration,
    /// The server transaction the 2xx answered; retransmissions go through it.
    pub txn: TxnId,
    /// The 2xx carries an offer (its INVITE had none): the ACK carries the answer.
    pub offer: bool,
    /// The callee's 2xx to the caller repeats the offer our PRACK answered: an offer after
    /// all (its ACK then carries the answer) if the callee refuses that PRACK before the
    /// caller's ACK comes; a callee refusing PRACK seldom waits for it to send its 2xx.
    pub offer_if_prack_refused: bool,
    /// The other side hung up before this side's ACK came: this side gets its BYE once the
    /// ACK comes, or its wait ends (RFC 3261 §15: not before), with this Reason.
    pub then_bye: Option<Option<String>>,
}

/// The last ACK we sent on a side, resent when that side retransmits its 2xx. Only the last
/// is kept: an older 2xx is not retransmitted once a newer INVITE was answered.
#[derive(Debug, Clone)]
pub struct SentAck {
    pub cseq: u32,
    /// The datagram as sent; none once the call settled and the ACK had no body (it is
    /// rebuilt from the dialog if the 2xx still comes again).
    pub wire: Option<Bytes>,
    /// It carried SDP (a late offer's answer): never rebuilt, so never dropped.
    pub has_body: bool,
}

/// A re-INVITE relayed to a leg and given up before its final answer (its origin got 487):
/// a 2xx to it may still come, and gets its ACK from the gateway.
#[derive(Debug, Clone, Copy)]
pub struct GivenUpInvite {
    pub cseq: u32,
    /// It carried no offer, so an offer in its 2xx is the gateway's to answer (RFC 3261
    /// §13.2.2.4): the origin can no longer.
    pub offerless: bool,
    /// Its 2xx came (it may come again: only the first one counts).
    pub answered: bool,
    /// It was the gateway's own (a refresh, a re-offer), not relayed: what it offered is
    /// what the gateway has with that leg anyway.
    pub own: bool,
}

/// The re-INVITEs last given up on one leg, newest first: each may still get a late 2xx
/// (for 64·T1 after it was given up), so one given up soon after another does not leave the
/// first one's 2xx unACKed. A leg that needs more keeps the newest.
#[derive(Debug, Default)]
pub struct GivenUp([Option<GivenUpInvite>; GivenUp::KEPT]);

impl GivenUp {
    const KEPT: usize = 4;

    /// Remember `g`, forgetting the oldest one when full.
    pub fn remember(&mut self, g: GivenUpInvite) {
        self.0.rotate_right(1);
        self.0[0] = Some(g);
    }

    /// The given-up re-INVITE with CSeq `cseq`, if it is remembered, as it was before its
    /// 2xx came now (which marks it answered).
    pub fn answer(&mut self, cseq: u32) -> Option<GivenUpInvite> {
        let g = self.0.iter_mut().flatten().find(|g| g.cseq == cseq)?;
        let before = *g;
        g.answered = true;
        Some(before)
    }
}
