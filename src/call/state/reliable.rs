//! What a call keeps of 100rel (RFC 3262) on each leg: toward the callee, where the
//! gateway PRACKs, and toward the caller, where it sends reliable provisionals.

use std::time::{Duration, Instant};

use crate::sip::Response;

/// 100rel toward the callee, where the gateway is the UAC (RFC 3262 §4).
#[derive(Debug, Clone, Default)]
pub struct UacRel {
    /// The peer refused our PRACK (or let it time out) and its profile says carry on:
    /// no more PRACKs toward it in this call.
    pub given_up: bool,
    /// The RSeq last taken in each early dialog of this attempt (by the callee's To tag: a
    /// forking proxy's branches each count from their own start, RFC 3262 §3), and whether
    /// it has offered in one (our INVITE having none: later SDP from it in this attempt is
    /// that offer again, not a new one). Boxed: most calls never get a reliable provisional.
    pub rseqs: Option<Box<RseqBook>>,
    /// Reliable provisionals whose SDP is an offer (our INVITE had none), their PRACKs held
    /// until the caller answers in its own PRACK (RFC 3262 §5: the PRACK carries the
    /// answer): the first branch's, and those of a forking proxy's other branches, which the
    /// caller's one answer answers too. Never empty when set; boxed: most calls hold none.
    #[allow(clippy::box_collection)]
    pub awaiting_answer: Option<Box<Vec<HeldPrack>>>,
    /// Our PRACKs awaiting their final answer, with their transactions: a challenge to one
    /// is answered with the same PRACK and credentials (at most twice
    /// [`MAX_EARLY_DIALOGS`], the oldest forgotten first; boxed: most calls never send one).
    #[allow(clippy::box_collection)]
    pub sent_pracks: Option<Box<Vec<(crate::txn::TxnId, crate::sip::Request)>>>,
    /// The callee's answers to our offer given in reliable provisionals, one per early dialog
    /// (a forking proxy's branches each answer): its 2xx may then come without SDP (RFC 3262
    /// §5), yet a caller that was not given that answer reliably, or user1 of a call-back
    /// (answered in our ACK), must still get it (boxed: most calls never get one). An early
    /// UPDATE refreshes or empties one ([`UacRel::refresh_early_answer`]).
    // A Box of a Vec: 8 bytes in every call, where a Vec or a boxed slice takes 24 or 16.
    #[allow(clippy::box_collection)]
    pub early_answers: Option<Box<Vec<EarlyAnswer>>>,
}

/// The PRACK held for the caller's answer ([`UacRel::awaiting_answer`]): the provisional's
/// RSeq, the CSeq of our INVITE, and the early dialog it came in as it was then (another
/// branch of a forking proxy may speak meanwhile: the PRACK goes in this one's dialog, RFC
/// 3262 §4).
#[derive(Debug, Clone)]
pub struct HeldPrack {
    pub rseq: u32,
    pub invite_cseq: u32,
    pub dialog: crate::call::dialog::Dialog,
    /// Held only until its offer is anchored: the caller had answered already (another
    /// branch's offer) when it came.
    pub answer_known: bool,
    /// Its offer's m= lines, as an answer refuses them: the answer it is sent has as many
    /// (the caller's one answer may be to another branch's offer, RFC 3264 §6). `None`:
    /// not known (an encoded body).
    pub sections: Option<Vec<Box<[u8]>>>,
}

/// An SDP answer a callee gave in a reliable provisional: its early dialog's To tag, the
/// body as the callee sent it, and its Content-Type.
#[derive(Debug, Clone)]
pub struct EarlyAnswer {
    pub tag: Box<str>,
    pub body: bytes::Bytes,
    pub ct: Option<String>,
}

/// Each early dialog's To tag, the RSeq last taken in it, and its offer.
pub type RseqBook = Vec<(Box<str>, u32, EarlyOffer)>;

/// Where an early dialog's offer in a reliable provisional stands (our INVITE had none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyOffer {
    /// It has made none.
    #[default]
    None,
    /// Made, not answered yet.
    Made,
    /// Answered in our PRACK: SDP in its 2xx is that offer again, no new one.
    Answered,
}

/// Early dialogs whose RSeq is kept; a branch past these takes the oldest one's place.
const MAX_EARLY_DIALOGS: usize = 8;

/// What a reliable provisional is, by its RSeq in its early dialog (RFC 3262 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RseqIs {
    /// The first of its dialog, or the next in sequence: PRACK it, process it.
    Next,
    /// One already taken: the callee retransmits until our PRACK reaches it.
    Repeat,
    /// Past the next: one before it is missing. Neither PRACKed nor processed; the callee
    /// retransmits the missing one.
    Gap,
}

impl UacRel {
    /// Whether early dialog `tag` (its last reliable provisional taken) offers for the
    /// first time; it has offered from now on.
    pub fn first_offer_of(&mut self, tag: &str) -> bool {
        let book = self.rseqs.get_or_insert_with(Default::default);
        match book.iter_mut().find(|(t, _, _)| &**t == tag) {
            Some((_, _, o)) if *o == EarlyOffer::None => {
                *o = EarlyOffer::Made;
                true
            }
            _ => false,
        }
    }

    /// Our PRACK to early dialog `tag` carried the answer to its offer.
    pub fn answered(&mut self, tag: &str) {
        let book = self.rseqs.iter_mut().flat_map(|b| b.iter_mut());
        for (_, _, o) in book.filter(|(t, _, _)| &**t == tag) {
            *o = EarlyOffer::Answered;
        }
    }

    /// Our PRACK to early dialog `tag` that carried the answer to its offer was refused or
    /// timed out: its offer stands unanswered.
    pub fn unanswered(&mut self, tag: &str) {
        let book = self.rseqs.iter_mut().flat_map(|b| b.iter_mut());
        for (_, _, o) in book.filter(|(t, _, _)| &**t == tag) {
            if *o == EarlyOffer::Answered {
                *o = EarlyOffer::Made;
            }
        }
    }

    /// Whether early dialog `tag` offered in a reliable provisional and our PRACK answered
    /// it: SDP in its 2xx is that offer again, no new one.
    pub fn answered_in(&self, tag: &str) -> bool {
        (self.rseqs.as_deref()).is_some_and(|b| {
            b.iter()
                .any(|e| &*e.0 == tag && e.2 == EarlyOffer::Answered)
        })
    }

    /// Whether early dialog `tag` has completed its offer/answer reliably: it answered our
    /// offer in a reliable provisional, or our PRACK answered its offer. Only then may it be
    /// sent an UPDATE with a new offer (RFC 3311 §5.1).
    pub fn exchange_done(&self, tag: &str) -> bool {
        self.answered_in(tag)
            || (self.early_answers.as_deref()).is_some_and(|a| a.iter().any(|a| &*a.tag == tag))
    }

    /// How many early dialogs of this attempt sent reliable provisionals (more than one: a
    /// forking proxy's branches).
    /// Early dialog `tag` is gone: its reliable provisionals are no longer counted.
    pub fn forget_branch(&mut self, tag: &str) {
        if let Some(book) = self.rseqs.as_mut() {
            book.retain(|(t, _, _)| &**t != tag);
        }
    }

    pub fn early_dialogs(&self) -> usize {
        self.rseqs.as_ref().map_or(0, |b| b.len())
    }

    /// Whether another PRACK may be held for the caller's answer: fewer than
    /// [`MAX_EARLY_DIALOGS`] are.
    pub fn may_hold(&self) -> bool {
        self.awaiting_answer
            .as_ref()
            .is_none_or(|l| l.len() < MAX_EARLY_DIALOGS)
    }

    /// Hold `held` for the caller's answer (see [`UacRel::may_hold`]).
    pub fn hold_for_answer(&mut self, held: HeldPrack) {
        (self.awaiting_answer.get_or_insert_with(Default::default)).push(held);
    }

    /// Keep our PRACK `req` (transaction `id`) until its final answer.
    pub fn keep_sent(&mut self, id: crate::txn::TxnId, req: crate::sip::Request) {
        let list = self.sent_pracks.get_or_insert_with(Default::default);
        // Every held PRACK may go at once, beside those already out (fewer than
        // `MAX_OPEN_PRACKS`): the bound is above what can be open, a guard only.
        if list.len() >= 2 * MAX_EARLY_DIALOGS {
            list.remove(0);
        }
        list.push((id, req));
    }

    /// Our PRACKs to this attempt's callee still waiting for their final answer: those
    /// kept (a failover starts the next callee with none, so an earlier callee's hold up
    /// nothing of its).
    pub fn open_pracks(&self) -> usize {
        self.sent_pracks.as_ref().map_or(0, |l| l.len())
    }

    /// The To tag of our PRACK `id` still waiting: the branch it went to.
    pub fn sent_to(&self, id: crate::txn::TxnId) -> Option<String> {
        (self.sent_pracks.as_ref())?
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, r)| r.to_tag())
    }

    /// Our PRACK of transaction `id`, if kept; forgotten from now on.
    pub fn take_sent(&mut self, id: crate::txn::TxnId) -> Option<crate::sip::Request> {
        let list = self.sent_pracks.as_mut()?;
        let i = list.iter().position(|(t, _)| *t == id)?;
        let (_, req) = list.remove(i);
        if list.is_empty() {
            self.sent_pracks = None;
        }
        Some(req)
    }

    /// A reliable provisional is taken while fewer than this many of our PRACKs to the
    /// current callee wait for their answer. A callee sends its next reliable provisional
    /// only once the last is PRACKed (RFC 3262 §3), so more are a broken or hostile peer's:
    /// the provisional past the bound is taken as lost, and its retransmission is PRACKed
    /// once one of ours is answered. (PRACKs held for the caller's answer go all at once
    /// when it comes, whatever the bound: at most [`MAX_EARLY_DIALOGS`] of them.)
    pub const MAX_OPEN_PRACKS: u8 = 4;

    /// Keep `answer` for its early dialog: one per dialog, for the latest
    /// [`MAX_EARLY_DIALOGS`] dialogs (as their RSeqs are kept: a branch whose reliable
    /// provisionals are taken has its answer kept too). A later reliable provisional of
    /// the dialog with other SDP of the same shape replaces it, as an UPDATE's would (RFC
    /// 6337 §3.1.1 says it must not differ; a callee whose does moved the relay with it):
    /// the 2xx without SDP then completes the session the early media went to, not the
    /// first one's.
    pub fn keep_early_answer(&mut self, answer: EarlyAnswer) {
        let kept = self.early_answers.get_or_insert_with(Default::default);
        if kept.iter().any(|a| a.tag == answer.tag) {
            return self.refresh_early_answer(&answer.tag, &answer.body, answer.ct, (false, false));
        }
        if kept.len() >= MAX_EARLY_DIALOGS {
            kept.remove(0);
        }
        kept.push(answer);
    }

    /// The early dialog `tag`'s session changed by an offer/answer in it (an UPDATE): its
    /// kept answer becomes `body` (typed `ct`), when `answers_ours` (an answer to our
    /// offer) or when it has as many media sections as the kept one; else, with
    /// `empty_other`, it is emptied (it describes a session that is no more, and there is
    /// none to re-anchor; the dialog's exchange stays done, [`UacRel::exchange_done`]).
    /// Nothing for a dialog whose answer is not kept.
    pub fn refresh_early_answer(
        &mut self,
        tag: &str,
        body: &bytes::Bytes,
        ct: Option<String>,
        (answers_ours, empty_other): (bool, bool),
    ) {
        let media = |ct: Option<&str>, b: &[u8]| {
            let sdp = crate::sdp::sdp_of(ct, b).unwrap_or_default();
            crate::sdp::lines(sdp)
                .filter(|l| l.text.starts_with(b"m="))
                .count()
        };
        let kept = self.early_answers.iter_mut().flat_map(|k| k.iter_mut());
        for a in kept.filter(|a| &*a.tag == tag) {
            if answers_ours || media(ct.as_deref(), body) == media(a.ct.as_deref(), &a.body) {
                a.body = body.clone();
                a.ct = ct.clone();
            } else if empty_other {
                a.body = bytes::Bytes::new();
            }
        }
    }

    /// The answer the early dialog `tag` gave, taken (with every other dialog's).
    pub fn take_early_answer(&mut self, tag: &str) -> Option<EarlyAnswer> {
        self.early_answers
            .take()
            .and_then(|kept| kept.into_iter().find(|a| &*a.tag == tag))
    }

    /// Judge a reliable provisional of the early dialog `tag` with `rseq`, and take it
    /// when it is the next.
    pub fn take_rseq(&mut self, tag: &str, rseq: u32) -> RseqIs {
        let book = self.rseqs.get_or_insert_with(Default::default);
        let known = book.iter().position(|(t, _, _)| &**t == tag);
        let is = match known.map(|i| book[i].1) {
            Some(last) if rseq <= last => RseqIs::Repeat,
            Some(last) if rseq > last.saturating_add(1) => RseqIs::Gap,
            _ => RseqIs::Next,
        };
        if is == RseqIs::Next {
            // The latest dialog goes last: the one least recently heard leaves first.
            let offered = known.map_or(EarlyOffer::None, |i| book.remove(i).2);
            if book.len() >= MAX_EARLY_DIALOGS {
                book.remove(0);
            }
            book.push((tag.into(), rseq, offered));
        }
        is
    }
}

/// At most this many provisionals wait behind an unacknowledged reliable one; later ones
/// replace the newest (only the latest state matters to the caller).
pub const MAX_QUEUED_1XX: usize = 4;

/// 100rel toward the caller, where the gateway is the UAS (RFC 3262 §3).
#[derive(Debug, Default)]
pub struct UasRel {
    /// This call's provisionals to the caller go reliably.
    pub reliable: bool,
    pub next_rseq: u32,
    /// The reliable provisional waiting for its PRACK (boxed, as `held_2xx`: most calls
    /// never have one, and an established call should not carry their room).
    pub pending: Option<Box<PendingRel>>,
    /// Provisionals that arrived while one was unacknowledged (only one at a time, §3).
    /// Boxed: most calls never queue one ([`UasRel::queued`]).
    #[allow(clippy::box_collection)]
    pub queue: Option<Box<std::collections::VecDeque<Response>>>,
    /// A 2xx held back because the unacknowledged provisional carried SDP.
    pub held_2xx: Option<Box<(Response, u32)>>,
    /// The RSeq of a provisional without SDP still unacknowledged when our 2xx went: its
    /// PRACK may cross the 2xx and still gets 200 (a 481 would end the caller's dialog).
    pub crossed_rseq: Option<u32>,
    /// The SDP (and Content-Type) a caller without SDP in its INVITE answered a callee's
    /// offer with, in its PRACK: its session with the gateway, which every later callee
    /// of the call is given (a caller answers one offer in its early dialog, and the
    /// gateway shows it one session across a failover). Kept until the call is confirmed.
    pub early_answer: Option<Box<(bytes::Bytes, Option<String>)>>,
    /// The session of a caller that offered in its INVITE, as a later offer of its own in the
    /// early dialog changed it (an UPDATE, or its PRACK, taken by the callee): plain SDP and
    /// its Content-Type. A later callee (a failover) is offered it instead of the INVITE's,
    /// and an offer in a PRACK restates it or not. Kept until the call is confirmed.
    pub caller_session: Option<Box<(bytes::Bytes, Option<String>)>>,
    /// The caller acknowledged (PRACKed) a provisional carrying the answer to its offer: its
    /// offer/answer is done, and our 2xx carries no SDP the callee's did not.
    pub answer_acked: bool,
    /// A callee failed while the caller was still to answer its offer: the next attempt
    /// waits for that answer (its PRACK), which it is then offered.
    pub failover_waits: bool,
}

impl UasRel {
    /// Whether the caller has (or is being given reliably) the answer to its INVITE's
    /// offer: it PRACKed a provisional carrying it, or the one waiting for its PRACK does.
    pub fn caller_has_answer(&self) -> bool {
        self.answer_acked || self.pending.as_ref().is_some_and(|p| p.has_sdp)
    }

    /// The provisionals queued, made when the first is.
    pub fn queued(&mut self) -> &mut std::collections::VecDeque<Response> {
        self.queue.get_or_insert_with(Default::default)
    }

    /// The next provisional queued, if any (the queue goes with the last).
    pub fn next_queued(&mut self) -> Option<Response> {
        let next = self.queue.as_mut()?.pop_front();
        if self.queue.as_ref().is_some_and(|q| q.is_empty()) {
            self.queue = None;
        }
        next
    }
}

/// A reliable provisional we retransmit until PRACKed.
#[derive(Debug)]
pub struct PendingRel {
    pub resp: Response,
    pub rseq: u32,
    pub interval: Duration,
    pub since: Instant,
    pub has_sdp: bool,
    /// The `o=` version its SDP was shown at (anchored): what the caller agrees to by its
    /// PRACK, whatever it was shown since (a 2xx held for that PRACK).
    pub shown: Option<u64>,
    /// The attempt it came from (`RoutePlan::attempt` then): the caller's answer in its
    /// PRACK answers that attempt's callee only, never one a failover tried next.
    pub attempt: u32,
}
