//! What a call keeps of the transfers it relayed (REFER, RFC 3515): which REFER a
//! transferee's NOTIFY reports on, named for the referrer.

use super::Side;
use super::state::{Call, MAX_REFERS, MAX_REFERS_PER_CALL, RelayedRefer};
use crate::interop::transfer::refer_event_id;

impl Call {
    /// A REFER was relayed: remembered (the last [`MAX_REFERS`]) for the NOTIFYs that report
    /// on it.
    pub(super) fn remember_refer(&mut self, refer: RelayedRefer) {
        let refers = self.refers.get_or_insert_with(Box::default);
        refers.2 = refers.2.saturating_add(1);
        if refers.0.len() >= MAX_REFERS {
            // The oldest: toward its side, the first sent there is gone (now or before).
            let gone = refers.0.remove(0);
            refers.1[gone.toward] = true;
        }
        refers.0.push(refer);
    }

    /// The REFER sent to `toward` with CSeq `sent_cseq` was refused: no subscription came
    /// of it, and a NOTIFY on it gets 481 (before, it reached the referrer).
    pub(super) fn refer_refused(&mut self, toward: Side, sent_cseq: u32) {
        for r in self.refers_sent(toward, sent_cseq) {
            r.ended = true;
        }
    }

    /// Whether the call has relayed all the REFERs it may ([`MAX_REFERS_PER_CALL`]).
    pub(super) fn refers_spent(&self) -> bool {
        (self.refers.as_deref()).is_some_and(|r| r.2 >= MAX_REFERS_PER_CALL)
    }

    /// A relayed REFER sent to `toward` with CSeq `before` went again (with credentials)
    /// with CSeq `now`.
    pub(super) fn refer_sent_again(&mut self, toward: Side, before: u32, now: u32) {
        for r in self.refers_sent(toward, before) {
            r.sent_cseq = now;
        }
    }

    /// The remembered REFERs sent to `toward` with CSeq `cseq`.
    fn refers_sent(&mut self, toward: Side, cseq: u32) -> impl Iterator<Item = &mut RelayedRefer> {
        let refers = (self.refers.as_deref_mut()).map_or(&mut [][..], |r| &mut r.0[..]);
        (refers.iter_mut()).filter(move |r| r.toward == toward && r.sent_cseq == cseq)
    }

    /// The referrer's CSeq of the relayed REFER a NOTIFY from `side` reports on (`event`:
    /// its Event header): the one sent to `side` with the CSeq its `id` names, or without
    /// one, the first sent there (none once that one is forgotten: a later one's would be
    /// named to the referrer for it; none once its subscription ended).
    pub(super) fn refer_reported(&self, side: Side, event: &str) -> Option<u32> {
        let refers = self.refers.as_deref()?;
        let r = &refers.0[self.reported_refer(side, event)?];
        (!r.ended).then_some(r.origin_cseq)
    }

    /// A NOTIFY from `side` on the REFER `event` names said its subscription is over
    /// (`Subscription-State: terminated`, RFC 6665 §4.1.3): its later NOTIFYs get 481 rather
    /// than reaching the referrer for the rest of the call.
    pub(super) fn refer_subscription_ended(&mut self, side: Side, event: &str) {
        if let Some(i) = self.reported_refer(side, event)
            && let Some(refers) = self.refers.as_deref_mut()
        {
            refers.0[i].ended = true;
        }
    }

    /// Where in the remembered REFERs the one a NOTIFY from `side` reports on is (`event`:
    /// its Event header), ended or not.
    fn reported_refer(&self, side: Side, event: &str) -> Option<usize> {
        let refers = self.refers.as_deref()?;
        let mut toward = (refers.0.iter().enumerate()).filter(|(_, r)| r.toward == side);
        let found = match refer_event_id(event) {
            Some(id) => toward.find(|(_, r)| r.sent_cseq == id),
            None if refers.1[side] => None,
            None => toward.next(),
        };
        found.map(|(i, _)| i)
    }
}

/// Whether a `Subscription-State` value says the subscription is over.
pub(super) fn is_terminated(value: &str) -> bool {
    leads_with(value, "terminated")
}

/// The status of a transfer's progress report: its `message/sipfrag` body's status line
/// (RFC 3515 §2.4.5), `SIP/2.0 200 OK`.
pub(super) fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let rest = body.strip_prefix(b"SIP/2.0 ")?;
    let digits = rest.get(..3)?;
    let status: u16 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let ends = rest
        .get(3)
        .is_none_or(|c| matches!(c, b' ' | b'\r' | b'\n'));
    ((100..700).contains(&status) && ends && digits.iter().all(u8::is_ascii_digit))
        .then_some(status)
}

/// A transfer's progress report's body reduced to its status line (with its CRLF), when it
/// has one ([`sipfrag_status`]).
pub(super) fn sipfrag_status_line(body: &[u8]) -> Option<bytes::Bytes> {
    sipfrag_status(body)?;
    // (A bare LF or CR ends it too: a fragment so written must not go on whole.)
    let end = (body.iter())
        .position(|c| matches!(c, b'\r' | b'\n'))
        .unwrap_or(body.len());
    let mut line = body[..end].to_vec();
    line.extend_from_slice(b"\r\n");
    Some(line.into())
}

/// Whether an `Event` value is the `refer` package (RFC 3515 §2.4.4), with or without an id.
pub(super) fn is_refer_event(value: &str) -> bool {
    leads_with(value, "refer")
}

/// Whether a header value's leading token (before its parameters) is `word`, in any case.
fn leads_with(value: &str, word: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::{sipfrag_status, sipfrag_status_line};

    #[test]
    fn a_sipfrags_status_is_read_from_its_status_line_only() {
        assert_eq!(sipfrag_status(b"SIP/2.0 180 Ringing\r\n"), Some(180));
        assert_eq!(sipfrag_status(b"SIP/2.0 603"), Some(603));
        let bare_lf = b"SIP/2.0 200 OK\nContact: <sip:secret@10.1.1.1>\n";
        assert_eq!(
            sipfrag_status_line(bare_lf).as_deref(),
            Some(&b"SIP/2.0 200 OK\r\n"[..])
        );
        for no in [
            &b"SIP/2.0 2000 OK"[..],
            b"SIP/2.0 +20 OK",
            b"SIP/2.0 099 x",
            b"INVITE sip:a SIP/2.0",
            b"",
        ] {
            assert_eq!(sipfrag_status(no), None, "{}", String::from_utf8_lossy(no));
        }
    }
}
