//! An ended call's recording, as its CDR asks: finished now, and the news of it.

use super::{Relays, WavWriters};

/// What became of an ended call's recording when its CDR came ([`Relays::finish_recording`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine) enum Finishing {
    /// The writer was asked to finish its file: `Finished` news comes once it has.
    Asked,
    /// Its open was refused here (the writer stalled or gone): no file was made.
    Refused,
    /// No recording was asked of the relay for it (or there is no writer): nothing comes.
    NoFile,
}

impl Relays {
    /// Call `call` ended and its CDR names its recording: the file is finished now (its
    /// relay sends it nothing more), not when the call is forgotten, and `Finished` news
    /// comes once it is ([`Finishing`]).
    pub(in crate::engine) fn finish_recording(&mut self, call: u64) -> Finishing {
        let Some(wav) = &self.wav else {
            return Finishing::NoFile;
        };
        // Emptied, not removed: the call's next relay update must not open it anew.
        match self.recordings.get_mut(&call).map(Option::take) {
            Some(Some(_)) => {
                wav.close(call);
                Finishing::Asked
            }
            Some(None) => Finishing::Refused,
            None => Finishing::NoFile,
        }
    }

    /// Rung when the recording writer has news (see [`Relays::recording_news`]).
    pub(in crate::engine) fn news_bell(&self) -> std::sync::Arc<tokio::sync::Notify> {
        (self.wav.as_ref()).map_or_else(Default::default, WavWriters::bell)
    }

    /// What became of calls' recordings since the last call, for their CDRs (see
    /// [`crate::media::RecordingNews`]).
    pub(in crate::engine) fn recording_news(&self) -> Vec<(u64, crate::media::RecordingNews)> {
        self.wav.as_ref().map(WavWriters::news).unwrap_or_default()
    }
}
