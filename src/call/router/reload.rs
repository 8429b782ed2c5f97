//! A reload reaches the core: the new limits, the peers it moved (heard where they were
//! while the calls up with them last), the registrations. All of it or none: a reload whose
//! handling panics (a defect) leaves the running configuration in place, and the shell says
//! so rather than report a reload applied in part.

use std::sync::Arc;
use std::time::Instant;

use tracing::error;

use super::B2bua;
use super::fault::{self, FaultPlace};
use crate::config::Config;

impl B2bua {
    /// The running configuration is `cfg` from now (a changed listen/advertise is refused
    /// by the shell before it gets here, so our own addresses, Via and Contact, stay those
    /// of the running sockets). False when applying it failed: the configuration that ran
    /// before runs on, its limits and registrations put back.
    pub fn reload(&mut self, now: Instant, cfg: Arc<Config>) -> bool {
        let old = self.env.cfg.clone();
        let rests = self.env.limits.rests();
        let verdicts = self.env.health.verdicts();
        let applied = |b: &mut B2bua| {
            b.on_reload(now, cfg.clone());
            b.pump(now);
        };
        if fault::guarded(self, FaultPlace::Core, applied) {
            return true;
        }
        error!("applying the reload failed (a defect): the running configuration stays");
        let restored = fault::guarded(self, FaultPlace::Core, |b| {
            b.put_back_after_reload(now, &cfg, old.clone());
            b.env.limits.put_back_rests(rests);
            b.env.health.put_back(verdicts);
            b.pump(now);
        });
        if !restored {
            // (Its configuration is the old one whatever else: nothing new is half-read.)
            self.env.cfg = old;
        }
        false
    }

    fn on_reload(&mut self, now: Instant, cfg: Arc<Config>) {
        // The new limits and registrations are the process's, not a call's.
        let _zone = crate::zone::enter(crate::zone::Zone::Process);
        #[cfg(test)]
        fault::test_fault::strike_reload(1);
        self.env.limits.reconfigure(&self.env.cfg, &cfg);
        // Every call up now began before this reload: their peers are heard at the
        // addresses they had until the last of them ends.
        if !self.calls.is_empty() && cfg.peers_moved_from(&self.env.cfg) {
            let old = self.env.cfg.clone();
            self.env.note_moved(self.next_ref, self.calls.len(), old);
        }
        if !self.env.draining {
            self.registrations.configure(&mut self.env, &cfg, now);
        }
        crate::call::peer_health::PeerHealth::configure(&mut self.env, &cfg, now);
        #[cfg(test)]
        fault::test_fault::strike_reload(2);
        // Last, and unable to fail: until here the running configuration is the old one.
        self.env.cfg = cfg;
    }

    /// A reload failed part way: what it may have changed goes back to `old`'s (a peer it
    /// noted as moved stays heard at its old address while the calls up last: harmless).
    fn put_back_after_reload(&mut self, now: Instant, tried: &Config, old: Arc<Config>) {
        let _zone = crate::zone::enter(crate::zone::Zone::Process);
        self.env.cfg = old.clone();
        self.env.limits.reconfigure(tried, &old);
        if !self.env.draining {
            self.registrations.configure(&mut self.env, &old, now);
        }
        crate::call::peer_health::PeerHealth::configure(&mut self.env, &old, now);
    }
}
