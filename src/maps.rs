//! The gateway's maps (calls, dialogs, transactions) grow with the load and must shrink
//! after it: a `HashMap` never gives its table back by itself, so 20,000 ended calls would
//! keep their slots for the life of the process.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Shrink `m` once it has emptied to a quarter of its capacity (to twice its length, so a
/// map that refills does not rehash at once). Small maps are left alone.
pub fn shrink_if_sparse<K: Eq + Hash, V, S: BuildHasher>(m: &mut HashMap<K, V, S>) {
    let cap = m.capacity();
    if cap > 1024 && m.len() * 4 < cap {
        m.shrink_to(m.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_gives_back_what_a_burst_grew() {
        let mut m: HashMap<u32, [u8; 64]> = HashMap::new();
        for i in 0..20_000 {
            m.insert(i, [0; 64]);
        }
        let grown = m.capacity();
        for i in 0..19_900 {
            m.remove(&i);
            shrink_if_sparse(&mut m);
        }
        assert!(m.capacity() < grown / 8, "{} of {grown}", m.capacity());
        assert_eq!(m.len(), 100);
        // A small map is never churned.
        let mut small: HashMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
        let cap = small.capacity();
        small.clear();
        shrink_if_sparse(&mut small);
        assert_eq!(small.capacity(), cap);
    }
}
