//! Panics said in the log, as its other lines are (JSON or text), not as bare text on
//! stderr: a JSON log reader would meet a line it cannot parse, and a defect that every
//! call hits (each caught: `call/router/fault.rs`, the UDP reader, the relay threads) would
//! write one per call. Each is counted by where it happened; the 1st, 2nd, 4th, 8th… of
//! each place are said, so a new defect is said at once, however often an old one came.
//! (Counted over the whole process, the third panic of all, one that ended the process
//! say, went unsaid.)

use std::sync::Mutex;

/// How many panics each place (file:line:column) has had.
#[derive(Debug, Default)]
struct Places {
    counts: Vec<(String, u64)>,
    /// Those of places past [`Places::MAX`].
    others: u64,
    /// Where the latest panic was: the binary's last line names it when one ends the run
    /// (its own line may have gone unsaid, its place having had others).
    last: Option<String>,
}

impl Places {
    /// Places told apart; a defect met in more is counted as one more place.
    const MAX: usize = 64;

    /// One more panic at `place`: how many it has had now.
    fn count(&mut self, place: &str) -> u64 {
        self.last = Some(place.to_owned());
        if let Some((_, n)) = self.counts.iter_mut().find(|(p, _)| p == place) {
            *n = n.saturating_add(1);
            return *n;
        }
        if self.counts.len() < Self::MAX {
            self.counts.push((place.to_owned(), 1));
            return 1;
        }
        self.others = self.others.saturating_add(1);
        self.others
    }
}

static PLACES: Mutex<Places> = Mutex::new(Places {
    counts: Vec::new(),
    others: 0,
    last: None,
});

/// Where the latest panic of the process was (file:line:column), if any.
pub fn last_place() -> Option<String> {
    (PLACES.lock().unwrap_or_else(|p| p.into_inner()).last).clone()
}

/// Replace the default panic hook (the binary does, once its log is set up).
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        // (A panic on another thread while the lock was held cannot leave the counts
        // half-changed: the lock is taken anyway.)
        let n = PLACES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .count(&location);
        if !n.is_power_of_two() {
            return;
        }
        let thread = std::thread::current();
        // (Only with RUST_BACKTRACE set, as the default hook; without it, no field.)
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
            .then(|| tracing::field::display(backtrace));
        tracing::error!(
            panics = n,
            thread = thread.name().unwrap_or("unnamed"),
            %location,
            message = message_of(info.payload()),
            backtrace,
            "panicked (a defect: please report this line)"
        );
    }));
}

/// A panic's message: what `panic!` was given as text, if it was.
pub fn message_of(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_place_is_counted_apart_and_the_places_are_bounded() {
        let mut p = Places::default();
        assert_eq!(p.count("a.rs:1:1"), 1);
        assert_eq!(p.count("a.rs:1:1"), 2);
        assert_eq!(p.count("a.rs:1:1"), 3);
        // A new place is its own first: said, however many the first had.
        assert_eq!(p.count("b.rs:2:2"), 1);
        for i in 2..Places::MAX {
            p.count(&format!("c.rs:{i}:1"));
        }
        assert_eq!(p.counts.len(), Places::MAX);
        assert_eq!(p.count("d.rs:9:9"), 1);
        assert_eq!(p.count("e.rs:9:9"), 2, "past the bound, one shared count");
        assert_eq!(p.count("a.rs:1:1"), 4);
    }

    #[test]
    fn a_panics_message_is_read_whether_static_or_formatted() {
        let fixed = std::panic::catch_unwind(|| panic!("fixed")).unwrap_err();
        assert_eq!(message_of(&*fixed), "fixed");
        let n = 7;
        let formatted = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(message_of(&*formatted), "formatted 7");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(message_of(&*other), "(no message)");
    }
}
