//! Appending drained audio to a recording's file: its backlog first, silence a minute a
//! pass at most, and the file's stop at a refused write or the WAV size limit.

use std::time::Instant;

use super::{
    Drained, Files, HEADER_EVERY, RecordingNews, SILENCE_CHUNK, SILENCE_PER_PASS, ZEROS, file,
};

impl Files<'_> {
    /// Append what was drained to call `id`'s file, after its backlog, writing at most
    /// [`SILENCE_PER_PASS`] of silence. A full or failing disk stops that recording here,
    /// once and for all (no retry every 100 ms, no log flood); the call goes on, and the file
    /// keeps what reached the disk. So does a file at the WAV size limit.
    pub(super) fn write(&mut self, id: u64, d: Drained) {
        let Some(f) = self.open.get_mut(&id) else {
            return;
        };
        if !d.is_empty() {
            f.backlog.push_back(d);
        }
        // Nothing to write: only the header, brought up to date when audio went in since
        // (a pause on hold writes nothing until it ends, and a crash meanwhile must still
        // find the audio before it in the file).
        if f.backlog.is_empty() && (!f.dirty || f.last_header.elapsed() < HEADER_EVERY) {
            return;
        }
        let per_frame = if f.stereo { 4 } else { 2 };
        let mut room = self.limit.saturating_sub(f.bytes) / per_frame;
        let mut budget = SILENCE_PER_PASS;
        let mut wrote = 0u64;
        let mut r = Ok(());
        while r.is_ok()
            && let Some(piece) = f.backlog.front_mut()
        {
            let mut silence = piece.silence.min(budget).min(room);
            piece.silence -= silence;
            (budget, room, wrote) = (budget - silence, room - silence, wrote + silence);
            while silence > 0 && r.is_ok() {
                let n = silence.min(SILENCE_CHUNK as u64);
                r = file::write_frames(&mut f.writer, f.stereo, &ZEROS[..n as usize]);
                silence -= n;
            }
            if piece.silence > 0 {
                break; // this pass's share of silence is spent, or the file is full
            }
            let sound = piece
                .frames
                .len()
                .min(usize::try_from(room).unwrap_or(usize::MAX));
            if r.is_ok() && sound > 0 {
                r = file::write_frames(&mut f.writer, f.stereo, &piece.frames[..sound]);
            }
            (room, wrote) = (room - sound as u64, wrote + sound as u64);
            if sound < piece.frames.len() {
                break; // the file is full
            }
            f.backlog.pop_front();
        }
        let full = room == 0 && f.backlog.iter().any(|p| !p.is_empty());
        // Looked for at each header update: a file removed under a recording (its folder
        // deleted to free a full disk) would take its space until the call ends.
        // Moved away it is still the recording. So is the free space of its file system
        // (`[recording] min_free_mb`).
        let (mut gone, mut checked) = (false, false);
        let r = r.and_then(|()| {
            f.dirty |= wrote > 0;
            if f.last_header.elapsed() >= HEADER_EVERY {
                f.last_header = Instant::now();
                f.dirty = false;
                gone |= file::unlinked(&f.file);
                checked = true;
                f.writer.flush()
            } else {
                Ok(())
            }
        });
        f.bytes += if r.is_ok() { wrote * per_frame } else { 0 };
        let short = r.is_ok()
            && !gone
            && checked
            && (f.path.parent())
                .is_some_and(|d| file::short_of_space(self.min_free, &mut self.space, d));
        let path = &f.path;
        // A call whose Close came (its file finishing a long pause's backlog) has nothing
        // left to remove it from `failed`: it is not kept there.
        let closing = f.closing;
        match r {
            Ok(()) if gone => {
                tracing::warn!(path = %path.display(), "recording stopped: its file was removed; the call goes on unrecorded");
                self.refused_for(id, "removed", RecordingNews::Removed);
                // Dropped unfinalised: its space goes back now, not at the call's end.
                self.open.remove(&id);
            }
            Ok(()) => {
                self.written.increment(wrote * per_frame);
                if short {
                    let kept = path.clone();
                    self.refused_for(id, "space", RecordingNews::Stopped);
                    self.finalize_counted(id, false);
                    // A call still ringing may yet be discarded: its file goes then.
                    if !closing {
                        self.failed.insert(id, kept);
                    }
                } else if full {
                    tracing::error!(path = %path.display(), "recording stopped: a WAV file holds at most 4 GiB (about 37 hours stereo); the call goes on unrecorded");
                    self.refused_for(id, "size_limit", RecordingNews::Stopped);
                    self.finalize_counted(id, false);
                }
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "recording stopped: the disk refused a write; the call goes on unrecorded");
                if let Some(f) = self.open.remove(&id) {
                    if f.writer.finalize().is_err() {
                        file::mend(&f.path);
                    }
                    // Refused before even its header reached the disk (full at the call's
                    // start): no recording, and no empty file for the CDR to name.
                    if file::holds_no_header(&f.path) {
                        let _ = std::fs::remove_file(&f.path);
                        self.refused_for(id, "write", RecordingNews::NotStarted);
                    } else {
                        self.refused_for(id, "write", RecordingNews::Stopped);
                        if !closing {
                            self.failed.insert(id, f.path);
                        }
                    }
                }
            }
        }
        // A closed call's file that stopped while catching up its backlog is as finished as
        // it will be: its held CDR goes now (see `engine::held_cdrs`).
        if closing && !self.open.contains_key(&id) {
            super::tell(&self.news, id, RecordingNews::Finished);
        }
    }
}
