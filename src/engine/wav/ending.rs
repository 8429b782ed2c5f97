//! How a recording's file ends: closed and finalised when its call ends, discarded (a call
//! never answered), or, at a stop, completed if its call was answered and removed if not.

use tracing::{debug, warn};

use super::{Drained, Files, file};
use crate::media::RecordingNews;

impl Files<'_> {
    pub(super) fn close(&mut self, id: u64) {
        self.close_open(id);
        // Last: the final write may be the one the disk refuses.
        self.failed.remove(&id);
        // Done, unless a long pause's backlog is still to be written: then once it is.
        if !self.open.contains_key(&id) {
            super::tell(&self.news, id, RecordingNews::Finished);
        }
    }

    fn close_open(&mut self, id: u64) {
        let Some(rec) = self.open.get(&id).map(|f| f.rec.clone()) else {
            return;
        };
        if let Ok(mut r) = rec.lock() {
            let rest = r.finish();
            if r.stats.undecodable > 0 {
                warn!(
                    call = id,
                    packets = r.stats.undecodable,
                    "recording: codec other than G.711; those spans are silent"
                );
            }
            // Dynamic payload types are taken for telephone-events and left out; a call
            // whose audio was one too (Opus, AMR-WB beside a PCMU it never used) gave a
            // silent file and no word of it.
            if r.audio == 0 && r.stats.skipped > 0 && r.stats.undecodable == 0 {
                warn!(
                    call = id,
                    packets = r.stats.skipped,
                    "recording: no G.711 audio at all (the call's codec is a dynamic payload type the recorder does not decode, Opus or AMR-WB say); the file is silent"
                );
            }
            // Audio lost to a writer that fell behind (a slow disk) is said: the file has
            // holes nothing else shows.
            if r.stats.overflow > 0 {
                warn!(
                    call = id,
                    packets = r.stats.overflow,
                    "recording: packets lost while the WAV writer fell behind (a slow disk?); the file has gaps"
                );
            }
            crate::ops::metrics::recording_lost("overflow").increment(r.stats.overflow);
            crate::ops::metrics::recording_lost("late").increment(r.stats.late);
            crate::ops::metrics::recording_lost("stray").increment(r.stats.strays);
            if r.stats != Default::default() {
                debug!(call = id, stats = ?r.stats, "recording finished");
            }
            drop(r);
            for piece in rest {
                self.write(id, piece);
            }
        }
        // What a long pause left is written by the next passes, then the file is finalised.
        match self.open.get_mut(&id) {
            Some(f) if !f.backlog.is_empty() => f.closing = true,
            _ => self.finalize(id),
        }
    }

    /// Write the header of call `id`'s file for the last time and close it. A failure (the
    /// last flush meeting a full disk) stops the recording like a failed write: counted,
    /// and its header set to what reached the disk.
    fn finalize(&mut self, id: u64) {
        self.finalize_counted(id, true);
    }

    /// [`Files::finalize`]; `count`: a failure is a refusal of its own (not for a recording
    /// counted as stopped already).
    pub(super) fn finalize_counted(&mut self, id: u64, count: bool) {
        let Some(f) = self.open.remove(&id) else {
            return;
        };
        if let Err(e) = f.writer.finalize() {
            tracing::error!(path = %f.path.display(), error = %e, "cannot finalise recording: it keeps what reached the disk");
            // Told: the call's CDR, held until its file is complete, says so (before, only
            // counted, and the CDR said nothing of the file's missing end).
            if count {
                self.refused_for(id, "write", RecordingNews::Stopped);
            }
            file::mend(&f.path);
            // Not even its header reached the disk (a short call, or one with no audio the
            // recorder decodes): no file left that no player opens, nor one its CDR names.
            if file::holds_no_header(&f.path) {
                let _ = std::fs::remove_file(&f.path);
                super::tell(&self.news, id, RecordingNews::Removed);
                return;
            }
        }
        self.syncer.sync(&f.path);
    }

    /// A recording whose call ended while its backlog was written is finalised once the
    /// backlog is.
    pub(super) fn finalize_if_caught_up(&mut self, id: u64) {
        if (self.open.get(&id)).is_some_and(|f| f.closing && f.backlog.is_empty()) {
            self.finalize(id);
            super::tell(&self.news, id, RecordingNews::Finished);
        }
    }

    /// Stopping: every file of an answered call is completed now, a long pause's backlog
    /// included; a call still ringing (its callee never answered a CANCEL at shutdown)
    /// keeps none, as it would not at its end. The long pauses' silence is written last:
    /// hours of it take seconds, past the time the stop gives the writer, and every other
    /// recording must be complete by then.
    pub(super) fn close_all(&mut self) {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        for &id in &ids {
            if self.open.get(&id).is_some_and(|f| !f.answered) {
                self.discard(id);
            } else {
                self.close(id);
            }
        }
        for id in ids {
            while self.open.get(&id).is_some_and(|f| f.closing) {
                self.write(id, Drained::default());
                self.finalize_if_caught_up(id);
            }
        }
    }

    pub(super) fn answered(&mut self, id: u64) {
        if let Some(f) = self.open.get_mut(&id) {
            f.answered = true;
        }
    }

    pub(super) fn discard(&mut self, id: u64) {
        let path = match self.open.remove(&id) {
            Some(f) => {
                drop(f.writer);
                Some(f.path)
            }
            None => self.failed.remove(&id),
        };
        if let Some(path) = path
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the unanswered call's recording");
        }
    }
}
