//! The pool of `[media] ports` as the shell reports on it: pairs another socket on the host
//! holds are withheld until they bind again.

use super::B2bua;

impl B2bua {
    /// Free RTP port pairs (`trunkgate_media_pairs_free`, tests).
    pub fn free_media_ports(&self) -> usize {
        self.env.pool.available()
    }

    /// Another socket holds the pair of RTP port `port`: handed out no more while it does.
    pub(super) fn port_held(&mut self, port: u16) {
        if self.env.pool.withhold(port) {
            tracing::warn!(
                port,
                withheld = self.env.pool.withheld(),
                "another socket on this host holds a pair of [media] ports: no call gets it while it does (keep [media] ports out of the kernel's ephemeral range, ip_local_port_range)"
            );
        }
    }

    /// A withheld pair binds again: back in the pool.
    pub(super) fn port_free(&mut self, port: u16) {
        if self.env.pool.release_withheld(port) {
            tracing::info!(
                port,
                "a withheld pair of [media] ports binds again: back in use"
            );
        }
    }
}
