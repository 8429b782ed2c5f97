//! Receive errors in a row on one socket. These sockets are unconnected and do not ask for
//! ICMP errors (`IP_RECVERR`), so Linux reports none on them; what fails a read is rare and
//! passing (no memory for the datagram, an error another system reports on a later read),
//! and reading on at once is right. A socket that fails on every read would spin its task
//! at full speed instead: past [`BURST`] errors in a row, each read waits a little longer
//! first.

use std::time::Duration;

/// Errors in a row taken as passing ones, read past at once.
const BURST: u32 = 64;

/// The longest wait between reads of a failing socket.
const MAX_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub(super) struct ReadErrors {
    in_row: u32,
}

impl ReadErrors {
    /// A read succeeded.
    pub(super) fn ok(&mut self) {
        self.in_row = 0;
    }

    /// A read of the `what` socket failed with `e`: wait as long as the errors in a row
    /// call for before the next read.
    pub(super) async fn pause_after(&mut self, e: &std::io::Error, what: &'static str) {
        let (pause, first) = self.failed();
        if first {
            tracing::error!(error = %e, socket = what, "reads keep failing: reading more slowly until one succeeds");
        }
        if let Some(p) = pause {
            tokio::time::sleep(p).await;
        }
    }

    /// A read failed: how long to wait before the next one (none within a burst), and
    /// whether this is the error that starts the pauses (to be said once, not per read).
    fn failed(&mut self) -> (Option<Duration>, bool) {
        self.in_row = self.in_row.saturating_add(1);
        let past = self.in_row.saturating_sub(BURST);
        if past == 0 {
            return (None, false);
        }
        let pause = Duration::from_millis(u64::from(past)).min(MAX_PAUSE);
        (Some(pause), past == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_read_past_and_a_failing_socket_is_paused() {
        let mut e = ReadErrors::default();
        for _ in 0..BURST {
            assert_eq!(e.failed(), (None, false));
        }
        assert_eq!(e.failed(), (Some(Duration::from_millis(1)), true));
        assert_eq!(e.failed(), (Some(Duration::from_millis(2)), false));
        for _ in 0..1_000 {
            e.failed();
        }
        assert_eq!(e.failed(), (Some(MAX_PAUSE), false));
        // One datagram read: the next error starts a new burst.
        e.ok();
        assert_eq!(e.failed(), (None, false));
    }
}
