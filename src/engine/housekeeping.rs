//! What the shell does once a second: media timeouts and failures to the core, the gauges
//! and counters to the metrics, freed memory back to the system, and the edge's drop counts
//! summed up in the log.

use std::time::Instant;

use tracing::{debug, warn};

use super::{SUMMARY_EVERY, Shell};
use crate::call::Input;
use crate::ops::metrics;

impl Shell {
    pub(super) fn every_second(&mut self, now: Instant) {
        for call in self.media.silent_calls(now) {
            self.core.handle_input(now, Input::MediaTimeout(call));
        }
        self.media.replace_stopped_threads();
        for call in self.media.failed_calls() {
            self.core.handle_input(now, Input::MediaFailed(call));
        }
        for (call, news) in self.media.recording_news() {
            self.core.handle_input(now, Input::Recording { call, news });
        }
        self.perform(now);
        metrics::active_calls(self.core.active_calls());
        metrics::retransmissions(self.core.retransmissions());
        metrics::rewrites(&self.core.rewrites());
        let states = self.core.registrations();
        for gone in self
            .registering
            .iter()
            .filter(|p| !states.iter().any(|(q, _)| q == *p))
        {
            metrics::registration_up(&gone.0, false);
        }
        self.registering = states.iter().map(|(p, _)| p.clone()).collect();
        for (peer, up) in states {
            metrics::registration_up(&peer.0, up);
        }
        if let Some(cb) = &self.callback {
            ::metrics::gauge!(crate::callback::metrics::ACTIVE).set(cb.active() as f64);
        }
        let ov = &self.inbox.overload;
        metrics::overload(ov.share(), ov.standing_delay());
        ov.release_if_idle(now);
        if !self.core.peers_moved() && self.inbox.forget_departed() {
            self.close_unknown_connections();
        }
        let cfg = self.core.config().clone();
        self.core.release_idle();
        let st = self.core.stats();
        // Freed pages go back to the system also when nothing allocates any more.
        self.heap.tick(st.calls + st.client_txns + st.server_txns);
        metrics::levels(&metrics::Levels {
            peers: cfg
                .profiles
                .keys()
                .map(|p| (p.as_str(), self.core.peer_calls(p)))
                .collect(),
            client_txns: st.client_txns,
            server_txns: st.server_txns,
            dialogs: st.dialogs,
            rtp_streams: self.media.streams(),
            recordings: self.media.recordings(),
        });
        if now >= self.summary_at {
            self.summary_at = now + SUMMARY_EVERY;
            for (what, n) in self.inbox.tally.take() {
                warn!(count = n, period_s = SUMMARY_EVERY.as_secs(), "{what}");
            }
            let cb_dropped = self.callback.as_ref().map_or(0, |c| c.take_dropped());
            if cb_dropped > 0 {
                warn!(
                    count = cb_dropped,
                    period_s = SUMMARY_EVERY.as_secs(),
                    "call-back datagrams dropped: they arrived faster than they were handled"
                );
            }
        }
        let st = self.core.stats();
        debug!(
            calls = st.calls,
            dialogs = st.dialogs,
            client_txns = st.client_txns,
            server_txns = st.server_txns,
            timers = st.timers,
            rtp_streams = self.media.streams(),
            "core state"
        );
    }
}
