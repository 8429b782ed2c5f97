//! The per-peer gauges set every second (each peer's calls up, registration and ping
//! states), their handles kept. With thousands of profiles, a `gauge!` per peer each second
//! built its key (the peer's name copied) and looked it up in the registry: thousands of
//! allocations and lookups in one burst on the signalling thread. A kept handle's `set` is
//! one atomic store.

use std::collections::HashMap;

/// Handles by metric, then peer, with the round each was last set in.
#[derive(Default)]
pub struct PeerGauges {
    handles: HashMap<&'static str, HashMap<Box<str>, (metrics::Gauge, u64)>>,
    round: u64,
}

impl std::fmt::Debug for PeerGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self.handles.values().map(HashMap::len).sum();
        write!(f, "PeerGauges({n} handles, round {})", self.round)
    }
}

impl PeerGauges {
    /// Set metric `name`'s gauge for `peer` to `value`.
    pub(super) fn set(&mut self, name: &'static str, peer: &str, value: f64) {
        let round = self.round;
        let of_name = self.handles.entry(name).or_default();
        if let Some((g, at)) = of_name.get_mut(peer) {
            g.set(value);
            *at = round;
            return;
        }
        let g = metrics::gauge!(name, "peer" => peer.to_string());
        g.set(value);
        of_name.insert(peer.into(), (g, round));
    }

    /// The round's gauges are set: a handle not set in it is let go. Its gauge leaves the
    /// scrape once idle (the exporter removes a gauge nobody sets); a handle kept past that
    /// would set a gauge no longer in the registry, and a peer back later would show nothing.
    pub fn end_round(&mut self) {
        let round = self.round;
        for of_name in self.handles.values_mut() {
            of_name.retain(|_, (_, at)| *at == round);
            crate::maps::shrink_if_sparse(of_name);
        }
        self.round += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_not_set_in_a_round_is_let_go() {
        let mut g = PeerGauges::default();
        g.set("test_gauge", "a", 1.0);
        g.set("test_gauge", "b", 2.0);
        g.end_round();
        g.set("test_gauge", "a", 1.0);
        g.end_round();
        let held: Vec<&str> = g.handles["test_gauge"].keys().map(|k| &**k).collect();
        assert_eq!(held, vec!["a"]);
    }
}
