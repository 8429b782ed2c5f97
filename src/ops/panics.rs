//! Panics said in the log, as its other lines are (JSON or text), not as bare text on
//! stderr: a JSON log reader would meet a line it cannot parse, and a defect that every
//! call hits (each caught: `call/router/fault.rs`, the UDP reader, the relay threads) would
//! write one per call. Each is counted; the 1st, 2nd, 4th, 8th… are said.

use std::sync::atomic::{AtomicU64, Ordering};

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Replace the default panic hook (the binary does, once its log is set up).
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let n = PANICS.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if !n.is_power_of_two() {
            return;
        }
        let thread = std::thread::current();
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
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
fn message_of(payload: &(dyn std::any::Any + Send)) -> &str {
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
