//! The gateway's maps (calls, dialogs, transactions) grow with the load and must shrink
//! after it: a `HashMap` never gives its table back by itself, so 20,000 ended calls would
//! keep their slots for the life of the process.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// A table this small is not shrunk while it holds entries: churning it would cost more
/// than it holds.
const KEEP_BYTES: usize = 32 * 1024;
/// An emptied table this small is kept for the next entries (a map at light load goes
/// between empty and a few entries with every call).
const KEEP_EMPTY_BYTES: usize = 4 * 1024;

/// Shrink `m` once it has emptied to a quarter of its capacity (to twice its length, so a
/// map that refills does not rehash at once). Small tables are left alone; "small" is in
/// bytes, not entries: a thousand empty slots of a 400-byte transaction are 400 KB
/// (heaptrack after a 5,000-call burst: the transaction tables kept 750 KB when the rule
/// was 1,024 entries). An emptied map gives its table back whole unless it is tiny: the
/// table the last shrink of a burst's tail made is what the burst would otherwise leave
/// behind, in the pages the burst used.
pub fn shrink_if_sparse<K: Eq + Hash, V, S: BuildHasher>(m: &mut HashMap<K, V, S>) {
    let cap = m.capacity();
    let bytes = cap.saturating_mul(std::mem::size_of::<(K, V)>());
    if m.is_empty() {
        if bytes > KEEP_EMPTY_BYTES {
            m.shrink_to(0);
        }
    } else if bytes > KEEP_BYTES && m.len() * 4 < cap {
        m.shrink_to(m.len() * 2);
    }
}

/// An empty map gives its table back, however small (the shell calls this when the load is
/// gone): kept for the next entries, a table made in the tail of a burst holds a page of the
/// burst's heap resident for good.
pub fn release_if_empty<K: Eq + Hash, V, S: BuildHasher>(m: &mut HashMap<K, V, S>) {
    if m.is_empty() && m.capacity() > 0 {
        m.shrink_to(0);
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
        // Large entries: emptied, the table goes (almost) entirely.
        let mut big: HashMap<u32, [u8; 400]> = (0..5_000).map(|i| (i, [0; 400])).collect();
        for i in 0..5_000 {
            big.remove(&i);
            shrink_if_sparse(&mut big);
        }
        assert_eq!(big.capacity(), 0, "an emptied table is given back whole");
        // Shrinking while it empties keeps the last few entries in a small table.
        let mut tail: HashMap<u32, [u8; 400]> = (0..5_000).map(|i| (i, [0; 400])).collect();
        for i in 0..4_990 {
            tail.remove(&i);
            shrink_if_sparse(&mut tail);
        }
        assert!(
            tail.capacity() * std::mem::size_of::<(u32, [u8; 400])>() <= KEEP_BYTES,
            "{} slots of 404 bytes kept for 10 entries",
            tail.capacity()
        );
        // A small map is never churned, emptied or not.
        let mut small: HashMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
        let cap = small.capacity();
        small.clear();
        shrink_if_sparse(&mut small);
        assert_eq!(small.capacity(), cap);
        // Until the load is gone: then even a small table goes, and a full one stays.
        release_if_empty(&mut small);
        assert_eq!(small.capacity(), 0);
        let mut busy: HashMap<u32, u32> = (0..3).map(|i| (i, i)).collect();
        release_if_empty(&mut busy);
        assert_eq!(busy.len(), 3);
    }
}
