//! Which relay thread carries a new call: fill one, then spread.
//!
//! A relay thread that carries few streams spends most of its time waking up for single
//! packets; one that carries many is preempted now and then, and every packet of its calls
//! waits while it is. Measured on 2 cores (BENCHMARKS.md): at 250 and 500 relayed calls one
//! thread relayed 15 % more packets per CPU-second than two, with p99 added latency about
//! 1 ms either way; at 1,000 calls one thread's p99 was 15–25 ms and two threads' 2–4 ms.
//! So a new call goes to the first thread still under [`FILL_STREAMS`], and only when every
//! thread has that many to the least loaded one.

/// Streams (one RTP/RTCP pair per media section, both directions: about 100 packets a
/// second at 20 ms) a relay thread takes before the next thread is used.
pub const FILL_STREAMS: usize = 300;

/// The thread for a new call, given how many streams each thread carries now (never
/// empty: the shell runs at least one thread), how many a thread takes before the next is
/// used ([`FILL_STREAMS`]), and which threads still run: a thread that stopped (its poll
/// failed) would fail every call placed on it, and emptied it is first under the line.
pub fn pick_thread(loads: &[usize], fill: usize, runs: impl Fn(usize) -> bool) -> usize {
    let live = || loads.iter().enumerate().filter(|&(i, _)| runs(i));
    if let Some((first_free, _)) = live().find(|&(_, &n)| n < fill) {
        return first_free;
    }
    // Every thread is full: the least loaded, the lowest index on a tie.
    live().min_by_key(|&(i, &n)| (n, i)).map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Place `calls` one-stream calls on `threads` threads; the resulting loads.
    fn place(threads: usize, calls: usize) -> Vec<usize> {
        let mut loads = vec![0; threads];
        for _ in 0..calls {
            let t = pick_thread(&loads, FILL_STREAMS, |_| true);
            loads[t] += 1;
        }
        loads
    }

    #[test]
    fn light_load_stays_on_one_thread() {
        assert_eq!(place(2, 250), [250, 0]);
        assert_eq!(place(4, FILL_STREAMS), [FILL_STREAMS, 0, 0, 0]);
    }

    #[test]
    fn heavy_load_fills_each_thread_then_spreads_evenly() {
        assert_eq!(place(2, FILL_STREAMS + 1), [FILL_STREAMS, 1]);
        assert_eq!(place(2, 1000), [500, 500]);
        assert_eq!(place(3, 2000), [667, 667, 666]);
    }

    #[test]
    fn a_thread_that_emptied_is_filled_first() {
        // Calls ended on thread 0: it is the first under the fill line again.
        let all = |_| true;
        assert_eq!(pick_thread(&[10, FILL_STREAMS], FILL_STREAMS, all), 0);
        assert_eq!(pick_thread(&[FILL_STREAMS, 10], FILL_STREAMS, all), 1);
        // All full: the least loaded, wherever it is.
        assert_eq!(
            pick_thread(&[FILL_STREAMS + 9, FILL_STREAMS + 2], FILL_STREAMS, all),
            1
        );
        assert_eq!(pick_thread(&[7], FILL_STREAMS, all), 0);
    }

    #[test]
    fn a_stopped_thread_gets_no_new_call() {
        // Thread 0 stopped and its calls ended: empty, but not picked.
        let runs = |i| i != 0;
        assert_eq!(pick_thread(&[0, 10], FILL_STREAMS, runs), 1);
        assert_eq!(
            pick_thread(&[0, FILL_STREAMS + 5, FILL_STREAMS + 1], FILL_STREAMS, runs),
            2
        );
    }
}
