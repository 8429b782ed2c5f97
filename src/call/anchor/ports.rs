//! Ports for the relayed streams of an SDP: a stream refused now gives its ports to a new
//! one, the rest come from the pool.

use super::super::Side;
use super::super::state::{MediaState, StreamUse};
use crate::media::PortPool;

/// Give each of `relayed`'s streams ports, from `from`'s SDP. `Ok(true)` when every one has
/// them; `Ok(false)` when the pool had none for some of a `binding` offer's (an offer in a
/// response, which cannot be refused): those are refused (no longer in `relayed`, nor in the
/// offer's shape, so its answer relays none of them either) and the others go on; `Err` when
/// it had none for another SDP's, which is refused whole (all or nothing, before any port is
/// taken from the pool).
pub(super) fn give(
    media: &mut MediaState,
    pool: &mut PortPool,
    relayed: &mut [bool],
    from: Side,
    binding: bool,
) -> Result<bool, ()> {
    let n = relayed.len();
    // A stream refused now (port 0, or gone) gives its ports to a new active one: a UA that
    // turns video off and on appends m= lines (RFC 3264 §8.2), and offers that keep adding
    // streams must not take the pool. So a call never holds more streams' ports than the
    // most any one SDP of it had active (at most `max_streams`).
    let mut spare: Vec<usize> = (0..media.pairs.len())
        .filter(|i| media.pairs[*i].is_some())
        .filter(|i| !relayed.get(*i).copied().unwrap_or(false))
        .collect();
    for (i, r) in relayed.iter().enumerate() {
        if *r
            && media.pairs[i].is_none()
            && let Some(j) = spare.pop()
        {
            media.pairs[i] = media.pairs[j].take();
            // A new stream on those ports: nothing agreed about it yet.
            media.uses[i] = StreamUse::default();
            media.uses[j] = StreamUse::default();
        }
    }
    // Ports only for relayed streams that have none yet; a stream refused with port 0, or
    // over a transport the relay cannot carry (TCP/MSRP, say), gets none (and keeps what it
    // had until the call ends or another stream takes them).
    let wanted: Vec<usize> = (0..n)
        .filter(|i| relayed[*i] && media.pairs[*i].is_none())
        .collect();
    if wanted.is_empty() {
        return Ok(true);
    }
    let (got, all) = match pool.alloc_pairs(wanted.len()) {
        Some(got) => (got, true),
        None if binding => {
            // As many as the pool has, in order; the rest refused.
            let mut got = Vec::new();
            while got.len() < wanted.len()
                && let Some(mut one) = pool.alloc_pairs(1)
            {
                got.append(&mut one);
            }
            let mut shape = media.offered[from].as_mut().map(|o| &mut o.relayed);
            for &i in wanted.get(got.len()..).unwrap_or_default() {
                relayed[i] = false;
                if let Some(r) = shape.as_mut().and_then(|s| s.get_mut(i)) {
                    *r = false;
                }
            }
            (got, false)
        }
        None => return Err(()),
    };
    for (i, pair) in wanted.into_iter().zip(got) {
        media.pairs[i] = Some(pair);
    }
    Ok(all)
}

/// Keep at most `cap` of `relayed`'s streams: those that hold ports already first (the
/// call's live audio, wherever its `m=` line now is), then the others in order.
pub(super) fn cap(relayed: &mut [bool], cap: usize, pairs: &[Option<(u16, u16)>]) {
    let holds = |i: usize| pairs.get(i).is_some_and(Option::is_some);
    let mut left = cap;
    for first in [true, false] {
        for (i, r) in relayed.iter_mut().enumerate() {
            if *r && holds(i) == first {
                match left.checked_sub(1) {
                    Some(l) => left = l,
                    None => *r = false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The streams holding ports stay, whatever their place; then the others in order.
    #[test]
    fn the_cap_keeps_the_streams_with_ports_first() {
        let mut relayed = [true, true, true, false, true];
        let pairs = [None, None, Some((1, 2)), None, Some((3, 4))];
        super::cap(&mut relayed, 3, &pairs);
        assert_eq!(relayed, [true, false, true, false, true]);
    }
}
