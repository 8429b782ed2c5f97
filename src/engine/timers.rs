//! The engine's timer store: deadlines for the core's timers, ordered, re-armable and
//! cancellable by id. One task owns it; no tokio timer per SIP timer.

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::time::Instant;

use crate::call::TimerId;

#[derive(Debug, Default)]
pub struct TimerStore {
    by_deadline: BTreeMap<(Instant, u64), TimerId>,
    by_id: HashMap<TimerId, (Instant, u64)>,
    seq: u64,
}

impl TimerStore {
    /// Arm `id` at `at`, replacing an earlier arming of the same id.
    pub fn set(&mut self, id: TimerId, at: Instant) {
        if let Some(old) = self.by_id.remove(&id) {
            self.by_deadline.remove(&old);
        }
        self.seq += 1;
        self.by_deadline.insert((at, self.seq), id.clone());
        self.by_id.insert(id, (at, self.seq));
    }

    pub fn clear(&mut self, id: &TimerId) {
        if let Some(old) = self.by_id.remove(id) {
            self.by_deadline.remove(&old);
        }
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.keys().next().map(|k| k.0)
    }

    /// Remove and return the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerId> {
        let (&key, _) = self.by_deadline.iter().next()?;
        if key.0 > now {
            return None;
        }
        let id = self.by_deadline.remove(&key)?;
        self.by_id.remove(&id);
        Some(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::CallTimer;
    use std::time::Duration;

    #[test]
    fn rearm_replaces_and_clear_removes() {
        let mut s = TimerStore::default();
        let t0 = Instant::now();
        let a = TimerId::Call(1, CallTimer::Ring);
        let b = TimerId::Call(2, CallTimer::Ring);
        s.set(a.clone(), t0 + Duration::from_secs(5));
        s.set(b.clone(), t0 + Duration::from_secs(3));
        s.set(a.clone(), t0 + Duration::from_secs(1));
        assert_eq!(s.len(), 2);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(s.pop_due(t0), None);
        assert_eq!(s.pop_due(t0 + Duration::from_secs(10)), Some(a));
        s.clear(&b);
        assert!(s.is_empty());
        assert_eq!(s.pop_due(t0 + Duration::from_secs(10)), None);
    }
}
