//! A recorded call's CDR waits for its recording to be complete (its last audio written,
//! its header final) before it is written. Before, the CDR went at the call's end and the
//! file was finished only when the call was forgotten (its last transactions over, up to
//! 32 s later): a CDR reader picking up the recording found a file without its last
//! seconds and with a stale header, and news from that last write (a disk refusing it, a
//! file that then held nothing) never reached the CDR. The writer finishes a file within a
//! pass (10 ms) of being asked, so a CDR waits that long; a writer that does not answer (a
//! stalled disk) holds it at most [`WAIT`], and the CDR then says `recording_unfinished`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::cdr::CdrRecord;
use crate::media::RecordingNews;

/// How long a CDR waits for its recording at most: the writer finishes a file at its next
/// pass (10 ms), or after a long pause's silence (a minute of it a pass, every 100 ms: an
/// hour's pause takes 6 s, past this, and its CDR goes first).
pub(super) const WAIT: Duration = Duration::from_secs(5);

/// CDRs held at most: past this (a writer stalled while thousands of recorded calls end)
/// a CDR goes at once, as `recording_unfinished`, rather than memory growing.
const MAX_HELD: usize = 4096;

/// The CDRs waiting for their recording, by call.
#[derive(Debug, Default)]
pub(super) struct HeldCdrs {
    held: HashMap<u64, (Instant, Box<CdrRecord>)>,
}

impl HeldCdrs {
    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.held.len()
    }

    /// Hold call `call`'s CDR until its recording is finished. The CDR itself when it
    /// cannot be held: to be written now.
    pub(super) fn hold(
        &mut self,
        call: u64,
        mut cdr: Box<CdrRecord>,
        now: Instant,
    ) -> Option<Box<CdrRecord>> {
        if self.held.len() >= MAX_HELD {
            crate::call::recording_unfinished(&mut cdr);
            return Some(cdr);
        }
        // A call ends once; a second CDR of one (a defect) must not push the first out.
        if let Some((_, earlier)) = self.held.remove(&call) {
            self.held.insert(call, (now, cdr));
            return Some(earlier);
        }
        self.held.insert(call, (now, cdr));
        None
    }

    /// News of call `call`'s recording. `Err(news)` when no CDR of that call is held (the
    /// call is still up: the core takes it); else applied to its CDR, which is given back
    /// once its file is finished.
    pub(super) fn news(
        &mut self,
        call: u64,
        news: RecordingNews,
    ) -> Result<Option<Box<CdrRecord>>, RecordingNews> {
        let Some((_, cdr)) = self.held.get_mut(&call) else {
            return Err(news);
        };
        crate::call::recording_news_after_cdr(cdr, &news);
        if news != RecordingNews::Finished {
            return Ok(None);
        }
        let done = self.held.remove(&call).map(|(_, cdr)| cdr);
        crate::maps::shrink_if_sparse(&mut self.held);
        Ok(done)
    }

    /// The CDRs held since `now - WAIT` or longer: written now, unfinished.
    pub(super) fn overdue(&mut self, now: Instant) -> Vec<CdrRecord> {
        let late: Vec<u64> = (self.held.iter())
            .filter(|(_, (since, _))| now.saturating_duration_since(*since) >= WAIT)
            .map(|(&call, _)| call)
            .collect();
        if !late.is_empty() {
            warn!(
                cdrs = late.len(),
                "the recording writer did not finish recordings within {} s (a disk that does not answer?): their CDRs go without waiting (event recording_unfinished)",
                WAIT.as_secs()
            );
        }
        self.take(late)
    }

    /// Every CDR still held (the gateway is stopping): written now, unfinished.
    pub(super) fn all(&mut self) -> Vec<CdrRecord> {
        let calls: Vec<u64> = self.held.keys().copied().collect();
        self.take(calls)
    }

    fn take(&mut self, calls: Vec<u64>) -> Vec<CdrRecord> {
        let mut out: Vec<(Instant, Box<CdrRecord>)> = (calls.into_iter())
            .filter_map(|c| self.held.remove(&c))
            .collect();
        crate::maps::shrink_if_sparse(&mut self.held);
        // In the order their calls ended, as they would have been written.
        out.sort_by_key(|(since, _)| *since);
        out.into_iter()
            .map(|(_, mut cdr)| {
                crate::call::recording_unfinished(&mut cdr);
                *cdr
            })
            .collect()
    }
}

/// At a stop, how long the CDRs still held wait for their recordings (taken from the
/// second the stop keeps spare: README, `[shutdown] drain_s`).
const WAIT_AT_STOP: Duration = Duration::from_millis(500);

impl super::Shell {
    /// A call's CDR: written now, or, when it names a recording being written, once that
    /// is finished (asked for now).
    pub(super) fn write_cdr(&mut self, cdr: Box<CdrRecord>, recorded: Option<u64>, now: Instant) {
        use super::media::Finishing;
        let mut cdr = cdr;
        let now_or_later = match recorded.map(|call| (call, self.media.finish_recording(call))) {
            Some((call, Finishing::Asked)) => self.held_cdrs.hold(call, cdr, now),
            // Its open was refused here (the writer stalled or gone), told in news the call
            // may not have had yet: the CDR names no file.
            Some((_, Finishing::Refused)) => {
                crate::call::recording_news_after_cdr(&mut cdr, &RecordingNews::NotStarted);
                Some(cdr)
            }
            Some((_, Finishing::NoFile)) | None => Some(cdr),
        };
        if let Some(cdr) = now_or_later {
            self.cdr.write(*cdr);
        }
    }

    /// What became of recordings: for a held CDR's, applied to it (and the CDR written once
    /// its file is finished); for a call still up, told to the call.
    pub(super) fn take_recording_news(&mut self, now: Instant) {
        for (call, news) in self.media.recording_news() {
            match self.held_cdrs.news(call, news) {
                Ok(Some(cdr)) => self.cdr.write(*cdr),
                Ok(None) => {}
                Err(RecordingNews::Finished) => {}
                Err(news) => {
                    (self.core).handle_input(now, crate::call::Input::Recording { call, news })
                }
            }
        }
        for cdr in self.held_cdrs.overdue(now) {
            self.cdr.write(cdr);
        }
    }

    /// Stopping: the CDRs still held wait for their recordings a moment (the last calls'
    /// files are finished within milliseconds), then go as they are.
    pub(super) async fn write_held_cdrs(&mut self) {
        let until = tokio::time::Instant::now() + WAIT_AT_STOP;
        let bell = self.media.news_bell();
        while !self.held_cdrs.is_empty() {
            let rung = tokio::time::timeout_at(until, bell.notified()).await;
            let now = self.clock();
            self.take_recording_news(now);
            if rung.is_err() {
                break;
            }
        }
        for cdr in self.held_cdrs.all() {
            self.cdr.write(cdr);
        }
    }
}

#[cfg(test)]
mod tests;
