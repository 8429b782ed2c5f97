//! How a recording's file ends besides its call's close: discarded (a call never answered),
//! or, at a stop, completed if its call was answered and removed if not.

use super::{Drained, Files};

impl Files<'_> {
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
