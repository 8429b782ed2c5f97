//! A reload reaches the core: the new limits, the peers it moved (heard where they were
//! while the calls up with them last), the registrations.

use std::sync::Arc;
use std::time::Instant;

use super::B2bua;
use crate::config::Config;

impl B2bua {
    /// The running configuration is `cfg` from now (a changed listen/advertise is refused
    /// by the shell before it gets here, so our own addresses, Via and Contact, stay those
    /// of the running sockets).
    pub(super) fn on_reload(&mut self, now: Instant, cfg: Arc<Config>) {
        // The new limits and registrations are the process's, not a call's.
        let _zone = crate::zone::enter(crate::zone::Zone::Process);
        self.env.limits.reconfigure(&self.env.cfg, &cfg);
        // Every call up now began before this reload: their peers are heard at the
        // addresses they had until the last of them ends.
        if !self.calls.is_empty() && cfg.peers_moved_from(&self.env.cfg) {
            let old = self.env.cfg.clone();
            self.env.note_moved(self.next_ref, self.calls.len(), old);
        }
        self.env.cfg = cfg.clone();
        if !self.env.draining {
            self.registrations.configure(&mut self.env, &cfg, now);
        }
    }
}
