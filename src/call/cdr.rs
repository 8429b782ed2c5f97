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
        }
    }
}

pub(super) fn record(env: &Env, f: Facts<'_>, end: EndInfo) -> CdrRecord {
    let fmt = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();
    CdrRecord {
        call_id: f.call_id.to_string(),
        egress_call_id: f.egress_call_id,
        start: fmt(f.started_wall.unwrap_or_else(|| env.wall(f.started))),
        answer: f.answered_wall.map(fmt),
        // A CDR is written at the event that ends the call: `env.wall` is that event's.
        end: fmt(env.wall(end.at)),
        duration_ms: f
            .answered
            .map(|a| end.at.saturating_duration_since(a).as_millis() as u64)
            .unwrap_or(0),
        from: f.from.to_string(),
        to: f.to.to_string(),
        ingress_peer: f.ingress.to_string(),
        egress_peer: f.egress,
        status: end.status,
        call_tag: end.tag,
        cause: end.cause,
        cause_source: end.cause_source,
        recording: f.recording,
        events: f.events,
        reason_sip: end.reason_sip,
        callback_id: f.callback_id,
    }
}

impl Call {
    /// What a CDR says of a call from a caller.
    fn facts(&self, recording: Option<String>) -> Facts<'_> {
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
            events: self.events.to_cdr(),
            callback_id: None,
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
        }
    }

    /// The call's CDR as things stand (its end as fixed by the release).
    pub(super) fn cdr(&self, env: &Env) -> CdrRecord {
        let end = self.phase.end_info().cloned().unwrap_or(EndInfo::internal(
            CallTag::GatewayError,
            500,
            Q850Cause::PROTOCOL_ERROR.0,
            self.started,
        ));
        // A call that was never answered has no recording (its file is not kept).
        let recording = self
            .media
            .as_ref()
            .and_then(|m| m.recording.as_ref())
            .filter(|_| self.phase.answered_at().is_some())
            .map(|r| r.path.display().to_string());
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
                ..self.facts(recording)
            },
            None => self.facts(recording),
        };
        record(env, facts, end)
    }
}
