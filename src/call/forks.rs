//! The callee's forks beyond the one the call follows now (RFC 3261 §12.1.2, §13.2.2.4): a
//! forking proxy's branches each set up an early dialog, and the call's side B is the
//! branch heard from last (a provisional, or a request in its early dialog that goes on to
//! the caller), or the one heard before a branch that said its dialog is gone. The others are kept as they stood: an early request from one
//! (a carrier's announcement server updating its early media by UPDATE, an INFO) makes it
//! the followed one again, instead of the 481 that would tell that branch its dialog is gone.
//! Also the 2xx dialogs the call did not want and hung up.

use super::cx::Cx;
use super::dialog::Dialog;
use super::state::Call;

/// Unwanted 2xx dialogs a call hangs up by BYE; past it, another is ACKed only. A forking
/// proxy has a few branches: a peer (or someone on its path) answering one INVITE with
/// thousands of To tags would have each given a BYE transaction, retransmitted for 32 s.
pub const MAX_HUNG_UP_FORKS: u16 = 16;
/// Released forks a call remembers (a forking proxy's branches, failovers raced by a 2xx):
/// every one it may hang up, so that a retransmitted 2xx of one is never hung up twice.
pub const MAX_RELEASED_FORKS: usize = MAX_HUNG_UP_FORKS as usize;
/// Early dialogs kept besides side B's (a proxy forking wider than this has its oldest
/// branches answered 481 again).
pub const MAX_EARLY_FORKS: usize = 8;
/// Branches that said their early dialog is gone, remembered so that a later provisional
/// of one does not bring it back (the oldest forgotten past this).
pub const MAX_GONE_FORKS: usize = 2 * MAX_EARLY_FORKS;

/// A released fork's dialog: its Call-ID and the To tag of its 2xx.
pub type ReleasedFork = (Box<str>, Box<str>);

/// Boxed in the call, only once it has heard from a second fork or hung up an unwanted 2xx.
#[derive(Debug, Default)]
pub struct Forks {
    /// The 2xx dialogs the call hung up, the last [`MAX_RELEASED_FORKS`]: a retransmission of
    /// one is ACKed again, not hung up again.
    pub released: Vec<ReleasedFork>,
    /// The current attempt's other early dialogs, as each stood when another branch spoke.
    pub early: Vec<Dialog>,
    /// Unwanted 2xx dialogs hung up by BYE so far (at most [`MAX_HUNG_UP_FORKS`]).
    pub hung_up: u16,
    /// The To tags of the current attempt's branches that said their early dialog is gone
    /// while another went on (the last [`MAX_GONE_FORKS`]).
    pub gone: Vec<Box<str>>,
    /// Those BYEs (of the current peer's forks) until answered: a challenge to one is
    /// answered as to the call's own BYE, else the fork stays up at the peer, billed.
    pub byes: Vec<(crate::txn::TxnId, crate::sip::Request, crate::sip::Target)>,
    /// What each branch last said of its identity (`Privacy: id` or not), before the
    /// answer: a branch's later messages that say nothing are judged by its own word, not
    /// by the branch heard from in between (the last [`MAX_GONE_FORKS`] branches).
    pub privacy: Vec<(Box<str>, bool)>,
}

impl Forks {
    /// What branch `tag` last said of its identity, if it said anything.
    pub fn said_private(&self, tag: &str) -> Option<bool> {
        (self.privacy.iter()).find_map(|(t, p)| (**t == *tag).then_some(*p))
    }

    /// Branch `tag` said `private` (or it stood so when another branch spoke).
    pub fn note_private(&mut self, tag: &str, private: bool) {
        self.privacy.retain(|(t, _)| **t != *tag);
        if self.privacy.len() >= MAX_GONE_FORKS {
            self.privacy.remove(0);
        }
        self.privacy.push((tag.into(), private));
    }

    /// Where the early dialog of branch `tag` is kept, if it is.
    fn kept(&self, tag: &str) -> Option<usize> {
        (self.early.iter()).position(|d| d.remote_tag.as_deref() == Some(tag))
    }

    /// Branch `tag` said its early dialog is gone.
    fn note_gone(&mut self, tag: &str) {
        if self.gone.iter().any(|g| &**g == tag) {
            return;
        }
        if self.gone.len() >= MAX_GONE_FORKS {
            self.gone.remove(0);
        }
        self.gone.push(tag.into());
    }
}

/// `next` becomes the dialog in `b`'s place (the one it had is returned): our CSeq only
/// grows, whichever branch a request went to.
pub(super) fn in_place_of(b: &mut Dialog, mut next: Dialog) -> Dialog {
    next.local_cseq = next.local_cseq.max(b.local_cseq);
    std::mem::replace(b, next)
}

impl Call {
    /// The To tag of the branch side B follows.
    fn followed_tag(&self) -> Option<&str> {
        self.b.as_ref().and_then(|b| b.remote_tag.as_deref())
    }

    /// Whether branch `tag`'s early dialog is kept (it is not the one followed).
    fn kept_branch(&self, tag: &str) -> bool {
        (self.forks.as_deref()).is_some_and(|f| f.kept(tag).is_some())
    }

    /// The callee's branch `tag` speaks (a provisional, or a request in its early dialog):
    /// side B becomes its dialog, as it stood when another branch last took its place (a new
    /// branch starts from the followed one's, whose branch's own parts its response then
    /// replaces: tag, CSeq, route set, Contact, Allow). The branch followed until now is
    /// kept, the kept ones in the order they were last followed.
    pub(super) fn follow_fork(&mut self, tag: &str) {
        let Some(b) = self.b.as_mut() else {
            return;
        };
        let Some(current) = b.remote_tag.as_deref() else {
            return;
        };
        if current == tag {
            return;
        }
        let forks = self.forks.get_or_insert_with(Default::default);
        let kept = forks.kept(tag).map(|i| forks.early.remove(i));
        if forks.early.len() >= MAX_EARLY_FORKS {
            forks.early.remove(0);
        }
        let left = match kept {
            Some(d) => in_place_of(b, d),
            None => b.clone(),
        };
        forks.early.push(left);
    }

    /// Whether `tag` names an early dialog of the current attempt other than side B's: a
    /// request in it is the call's.
    pub(super) fn has_early_fork(&self, tag: &str) -> bool {
        self.phase.is_routing() && self.kept_branch(tag)
    }

    /// Whether `tag` is a branch the call still knows: the one side B follows, or another
    /// early dialog kept. (One that said its dialog is gone is neither.)
    pub(super) fn knows_branch(&self, tag: &str) -> bool {
        self.followed_tag() == Some(tag) || self.kept_branch(tag)
    }

    /// Whether branch `tag` of the current attempt said its early dialog is gone (its BYE, a
    /// 481, a proxy's 199) while another went on: a later provisional of it is no new early
    /// dialog (RFC 3261 §12.3: a dialog once ended stays ended), and is neither followed nor
    /// relayed. Else the branch came back as it stood, its early media played again, and the
    /// caller heard a callee that had let the call go.
    pub(super) fn branch_said_gone(&self, tag: &str) -> bool {
        (self.forks.as_deref()).is_some_and(|f| f.gone.iter().any(|g| &**g == tag))
    }

    /// Whether another branch than the one side B follows was heard while routing.
    pub(super) fn has_other_branch(&self) -> bool {
        self.phase.is_routing() && (self.forks.as_deref()).is_some_and(|f| !f.early.is_empty())
    }

    /// Branch `tag` says its early dialog is gone (a BYE in it, a 481, a proxy's 199): true
    /// when another branch was heard, which then goes on alone (side B follows the one
    /// heard last, if it was the gone one); false when it is the only one (the caller then
    /// hears of it). Either way the caller's media no longer goes to that branch.
    pub(super) fn branch_gone(&mut self, cx: &mut Cx, tag: &str) -> bool {
        self.branch_media_gone(cx, tag);
        if let Some(m) = self.media.as_mut() {
            m.take_branch(tag);
        }
        if !self.has_other_branch() {
            return false;
        }
        // (Its reliable provisionals' count goes: the branches left are what is counted.)
        self.uac_rel.forget_branch(tag);
        let followed = self.followed_tag() == Some(tag);
        let Some(f) = self.forks.as_deref_mut() else {
            return false;
        };
        if !followed {
            let known = f.kept(tag).map(|i| f.early.remove(i)).is_some();
            if known {
                f.note_gone(tag);
            }
            // Its SDP may have been the one playing while signalling followed another
            // (a 183 with an announcement, then another branch's 180): that one's is
            // taken up.
            self.take_up_branch_media(cx);
            return known;
        }
        f.note_gone(tag);
        let (Some(next), Some(b)) = (f.early.pop(), self.b.as_mut()) else {
            return false;
        };
        in_place_of(b, next);
        self.take_up_branch_media(cx);
        true
    }

    /// Side B follows another branch again after the one whose SDP it followed ended: that
    /// branch's media as its last SDP left it, if it sent any (else the relay waits for its
    /// SDP). Before, it was heard again only with its next SDP or its answer.
    fn take_up_branch_media(&mut self, cx: &mut Cx) {
        let Some(tag) = self.followed_tag().map(Box::<str>::from) else {
            return;
        };
        let Some(m) = self.media.as_mut() else {
            return;
        };
        if m.b_branch.is_some() {
            return;
        }
        if let Some(kept) = m.take_branch(&tag) {
            m.take_up_branch(kept);
            self.emit_relay(cx, None);
        }
    }

    /// Branch `tag`'s early dialog ended: when the callee's addresses are from its SDP, the
    /// caller's media goes nowhere until another branch's SDP says where (the relay is told
    /// at once). A callee that rejected the call must not go on hearing the caller, nor be
    /// heard: side B is a new callee to the relay, learnt from nothing once another branch
    /// has sent SDP (an address dropped alone reads as an old-style hold, which keeps the
    /// branch's latched source).
    fn branch_media_gone(&mut self, cx: &mut Cx, tag: &str) {
        let Some(m) = self.media.as_mut() else {
            return;
        };
        if !self.phase.is_routing() || m.b_branch.as_deref() != Some(tag) {
            return;
        }
        m.b_branch = None;
        m.remote.b.iter_mut().for_each(|r| *r = None);
        m.callee = m.callee.wrapping_add(1);
        m.heard.b = false;
        self.emit_relay(cx, None);
    }

    /// A forking proxy's 199 (RFC 6228): branch `tag`'s early dialog is over, the other
    /// branches go on. Not for the caller, whose one early dialog is ours. A 199 sent
    /// reliably is PRACKed in its own dialog first.
    pub(super) fn on_early_dialog_terminated(
        &mut self,
        cx: &mut Cx,
        resp: &crate::sip::Response,
        rseq: Option<u32>,
    ) {
        let Some(tag) = resp.to_tag() else {
            return;
        };
        if !self.knows_branch(&tag) {
            return;
        }
        tracing::info!(call_id = %self.call_id(), %tag, "a branch of the callee ended its early dialog (199)");
        if let Some(rseq) = rseq {
            let before = self.followed_tag().map(str::to_string);
            self.follow_fork(&tag);
            self.prack_callee(cx, rseq, resp.seq(), None);
            if let Some(before) = before.filter(|b| *b != tag) {
                self.follow_fork(&before);
            }
        }
        // The only branch: the proxy tries its next target (a sequential fork). Side B is
        // as before any answer, so that the next branch is the only one, not one of two.
        if !self.branch_gone(cx, &tag)
            && self.followed_tag() == Some(&tag)
            && let Some(invite) = self.attempt.as_ref().and_then(|a| a.invite.clone())
        {
            self.uac_rel.forget_branch(&tag);
            self.forget_branches(&invite);
        }
    }

    /// A target refresh (RFC 3261 §12.2.1.2) of side `side` in the exchange with the
    /// callee's branch `tag`: side A's dialog, or that branch's, followed or kept (one
    /// another branch took over from meanwhile still moves to its new Contact).
    pub(super) fn refresh_branch_target(
        &mut self,
        side: super::Side,
        tag: Option<&str>,
        contact: Option<String>,
    ) {
        if side == super::Side::A || self.followed_tag() == tag {
            return self.refresh_target(side, contact);
        }
        if let (Some(tag), Some(c)) = (tag, contact)
            && let Some(f) = self.forks.as_deref_mut()
            && let Some(i) = f.kept(tag)
        {
            f.early[i].remote_target = c.into();
        }
    }

    /// The attempt is over (answered, or the next peer tried): its other branches' early
    /// dialogs are gone with it.
    pub(super) fn forget_early_forks(&mut self) {
        if let Some(f) = self.forks.as_deref_mut() {
            f.early = Vec::new();
            f.gone = Vec::new();
            f.privacy = Vec::new();
        }
    }

    /// Our INVITE `again` goes to the same peer once more (after its 401/407 or 422): a new
    /// transaction, whose branches are new; or `again` is the INVITE still out, whose only
    /// branch a sequential forking proxy ended (its 199), the next one to come. Those the first send heard ended with its final
    /// response, so side B is as before any answer (no tag, the Request-URI as target, no
    /// route set): a request from one of them is refused 481, and the first branch of the new
    /// send is the only one, not one of two.
    pub(super) fn forget_branches(&mut self, again: &crate::sip::Request) {
        self.forget_early_forks();
        let Some(b) = self.b.as_mut() else {
            return;
        };
        if let Some(to) = again.header(&crate::sip::Hdr::TO) {
            b.remote_hdr = to.into();
        }
        b.remote_tag = None;
        b.remote_cseq = None;
        b.remote_target = again.uri().into();
        b.route_set = Box::default();
        b.peer_allows = None;
    }
}
