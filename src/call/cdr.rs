//! A call's CDR, built from its facts at release; and the CDR of a call refused before it
//! became one.

use std::time::{Instant, SystemTime};

use super::cx::Env;
use super::events::CallEvent;
use super::phase::EndInfo;
use super::state::Call;
use crate::cdr::{CallTag, CdrRecord};
use crate::interop::causes::Q850Cause;

/// What a CDR says about where and when.
pub(super) struct Facts<'a> {
    pub call_id: &'a str,
    pub egress_call_id: Option<String>,
    /// Monotonic: durations.
    pub started: Instant,
    pub answered: Option<Instant>,
    /// The system clock at those events (`None`: the start is this event).
    pub started_wall: Option<SystemTime>,
    pub answered_wall: Option<SystemTime>,
    pub from: &'a str,
    pub to: &'a str,
    pub ingress: &'a str,
    pub egress: Option<String>,
    pub recording: Option<String>,
    pub events: Vec<String>,
    pub callback_id: Option<String>,
    /// A call-back's user1 answered then.
    pub user1_answered_wall: Option<SystemTime>,
}

impl<'a> Facts<'a> {
    /// A call refused at `now`, before it became one: nothing sent on, nothing answered.
    pub fn refused(
        call_id: &'a str,
        from: &'a str,
        to: &'a str,
        ingress: &'a str,
        now: Instant,
    ) -> Facts<'a> {
        Facts {
            call_id,
            egress_call_id: None,
            started: now,
            answered: None,
            started_wall: None,
            answered_wall: None,
            from,
            to,
            ingress,
            egress: None,
            recording: None,
            events: Vec::new(),
            callback_id: None,
            user1_answered_wall: None,
        }
    }
}

/// The longest a peer's text (its Call-ID, a number) is written in a CDR, and its Reason:
/// a header may be 8 KiB, and a queue of CDRs waiting for a full disk is bounded by count,
/// as is the room set aside to spill them at exit.
const MAX_FIELD: usize = 256;
const MAX_REASON: usize = 512;

/// `s`, cut at a character boundary to at most `max` bytes (with "…" in place of the rest)
/// when it is longer; `cut` is then set.
fn clip(s: &str, max: usize, cut: &mut bool) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    *cut = true;
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `t` as RFC 3339 with milliseconds. A clock set before 1970 or past 9999 is written as
/// the nearest it can be: the formatter panics on either.
pub(super) fn stamp(t: SystemTime) -> String {
    const LAST: std::time::Duration = std::time::Duration::from_secs(253_402_300_799);
    let t = t.clamp(SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH + LAST);
    humantime::format_rfc3339_millis(t).to_string()
}

pub(super) fn record(env: &Env, f: Facts<'_>, end: EndInfo) -> CdrRecord {
    let fmt = stamp;
    let mut cut = false;
    let call_id = clip(f.call_id, MAX_FIELD, &mut cut);
    let from = clip(f.from, MAX_FIELD, &mut cut);
    let to = clip(f.to, MAX_FIELD, &mut cut);
    let reason_sip = (end.reason_sip.as_deref()).map(|r| clip(r, MAX_REASON, &mut cut));
    let mut events = f.events;
    if cut {
        events.push("field_truncated".into());
    }
    CdrRecord {
        call_id,
        egress_call_id: f.egress_call_id,
        start: fmt(f.started_wall.unwrap_or_else(|| env.wall(f.started))),
        answer: f.answered_wall.map(fmt),
        // A CDR is written at the event that ends the call: `env.wall` is that event's.
        end: fmt(env.wall(end.at)),
        duration_ms: f
            .answered
            .map(|a| end.at.saturating_duration_since(a).as_millis() as u64)
            .unwrap_or(0),
        from,
        to,
        ingress_peer: f.ingress.to_string(),
        egress_peer: f.egress,
        status: end.status,
        call_tag: end.tag,
        cause: end.cause,
        cause_source: end.cause_source,
        recording: f.recording,
        events,
        reason_sip,
        callback_id: f.callback_id,
        user1_answer: f.user1_answered_wall.map(fmt),
    }
}

impl Call {
    /// What a CDR says of a call from a caller (`unstarted`: its recording was to be, and
    /// never began).
    fn facts(&self, recording: Option<String>, unstarted: bool) -> Facts<'_> {
        let recorded = recording.is_some();
        Facts {
            call_id: &self.a.call_id,
            egress_call_id: self.b.as_ref().map(|b| b.call_id.to_string()),
            started: self.started,
            answered: self.phase.answered_at(),
            started_wall: Some(self.started_wall),
            answered_wall: self.answered_wall,
            from: &self.caller,
            to: &self.number,
            ingress: &self.ingress.name.0,
            egress: self.egress_name().map(|n| n.to_string()),
            recording,
            // Said at the end, from what the streams carried: the relay learns of a stream's
            // kind only with the answer, and the call may end a moment later.
            events: self.events.to_cdr(if unstarted {
                Some(CallEvent::RecordingNotStarted)
            } else {
                (recorded && self.media.as_ref().is_some_and(|m| m.voice_encrypted()))
                    .then_some(CallEvent::RecordingEncrypted)
            }),
            callback_id: None,
            user1_answered_wall: None,
        }
    }

    /// What the writer thread made of the call's recording: the CDR names the file it
    /// made, or none, and says when the recording stopped before the call.
    pub(super) fn on_recording_news(&mut self, news: crate::media::RecordingNews) {
        use crate::media::RecordingNews;
        let Some(rec) = self.media.as_mut().and_then(|m| m.recording.as_mut()) else {
            return;
        };
        match news {
            RecordingNews::NotStarted => {
                // Later offers/answers then ask the relay for no recording either.
                if let Some(m) = self.media.as_mut() {
                    m.recording = None;
                }
                self.events.push(CallEvent::RecordingNotStarted);
            }
            RecordingNews::Renamed(path) => rec.path = path,
            RecordingNews::Stopped => self.events.push(CallEvent::RecordingStopped),
            RecordingNews::Removed => {
                if let Some(m) = self.media.as_mut() {
                    m.recording = None;
                }
                self.events.push(CallEvent::RecordingRemoved);
            }
            // Only after the call's CDR: the shell holds that for it.
            RecordingNews::Finished => {}
        }
    }

    /// Whether the call's CDR, `cdr`, names a recording: the shell then holds it until the
    /// file is complete (`engine::held_cdrs`), and it is told which call's that is.
    pub(super) fn recorded(&self, cdr: &CdrRecord, r: super::CallRef) -> Option<super::CallRef> {
        cdr.recording.is_some().then_some(r)
    }

    /// The call's CDR as things stand (its end as fixed by the release).
    pub(super) fn cdr(&self, env: &Env) -> CdrRecord {
        let end = self.phase.end_info().cloned().unwrap_or(EndInfo::internal(
            CallTag::GatewayError,
            500,
            Q850Cause::PROTOCOL_ERROR.0,
            self.started,
        ));
        // A call that was never answered has no recording (its file is not kept); nor has
        // one none of whose streams the relay could carry (no ports: an MSRP or T.140 over
        // TCP session, every `m=` at port 0), whose recording was never opened.
        let planned = (self.media.as_ref())
            .and_then(|m| m.recording.as_ref().zip(Some(&m.pairs)))
            .filter(|_| self.phase.answered_at().is_some());
        let relayed = |pairs: &[Option<(u16, u16)>]| pairs.iter().any(Option::is_some);
        let unstarted = planned.is_some_and(|(_, pairs)| !relayed(pairs));
        let recording = (planned.filter(|(_, pairs)| relayed(pairs)))
            .map(|(r, _)| r.path.display().to_string());
        // A call-back's CDR names user1's and user2's legs (see `third_party`).
        let cb = self.callback_facts();
        let facts = match &cb {
            Some(cb) => Facts {
                call_id: &cb.user1_call_id,
                egress_call_id: cb.user2_call_id.clone(),
                from: cb.user1,
                to: cb.user2,
                ingress: &cb.user1_peer,
                egress: cb.user2_peer.clone(),
                callback_id: Some(cb.id.clone()),
                user1_answered_wall: cb.user1_answered,
                ..self.facts(recording, unstarted)
            },
            None => self.facts(recording, unstarted),
        };
        record(env, facts, end)
    }
}

/// News of a recording that came after its call's CDR was made (held for it by the shell):
/// what [`Call::on_recording_news`] does to a call's CDR, done to the record itself.
pub fn recording_news_after_cdr(cdr: &mut CdrRecord, news: &crate::media::RecordingNews) {
    use crate::media::RecordingNews;
    let mut event = |e: CallEvent| {
        let e = e.to_string();
        if !cdr.events.contains(&e) {
            cdr.events.push(e);
        }
    };
    match news {
        RecordingNews::NotStarted => event(CallEvent::RecordingNotStarted),
        RecordingNews::Stopped => event(CallEvent::RecordingStopped),
        RecordingNews::Removed => event(CallEvent::RecordingRemoved),
        RecordingNews::Renamed(_) | RecordingNews::Finished => {}
    }
    match news {
        RecordingNews::NotStarted | RecordingNews::Removed => cdr.recording = None,
        RecordingNews::Renamed(path) => cdr.recording = Some(path.display().to_string()),
        RecordingNews::Stopped | RecordingNews::Finished => {}
    }
}

/// A held CDR written before its recording was finished (see
/// [`CallEvent::RecordingUnfinished`]).
pub fn recording_unfinished(cdr: &mut CdrRecord) {
    cdr.events.push(CallEvent::RecordingUnfinished.to_string());
}
