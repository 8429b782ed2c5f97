//! A call's answer, as the relay takes it: its media clock starts over, and its recording
//! is kept or dropped as the answering callee's peer (or the caller's) records.

use super::Relays;

impl Relays {
    /// Call `call` was answered; `record: false`: neither the caller's peer nor the callee
    /// that answered records, and what was recorded while it rang goes.
    pub(super) fn answered(&mut self, call: u64, record: bool) {
        let now = std::time::Instant::now();
        // (Made here when the call's first streams come after the answer: a late offer.)
        let w = (self.watches.entry(call)).or_insert_with(|| super::Watch::new(now));
        *crate::threads::lock(&w.last) = now;
        w.answered = true;
        let streams = (self.calls.get_mut(&call)).map_or(&mut [][..], |c| &mut c.streams[..]);
        for s in streams {
            let mut route = crate::threads::lock(&s.route);
            route.answered(now);
            if !record && s.recorded {
                route.unrecord();
                s.recorded = false;
            }
        }
        if record
            && let Some(Some(_)) = self.recordings.get(&call)
            && let Some(wav) = &self.wav
        {
            wav.answered(call);
        }
        // Recorded while it rang for a peer of the route that did not answer: the file
        // goes, and the call is not recorded again.
        if !record
            && let Some(entry) = self.recordings.get_mut(&call)
            && entry.take().is_some()
            && let Some(wav) = &self.wav
        {
            wav.discard(call);
        }
    }
}
