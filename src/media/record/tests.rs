//! The recorder on a fake clock: every packet size, reordering, loss, duplicates, wrap,
//! SSRC change, ptime change, and the two channels on one timeline.

use std::time::{Duration, Instant};

use super::*;

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A deterministic μ-law "noise" stream with no silence code in it, so gaps are visible.
fn stream(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let b = (x & 0xff) as u8;
            if b == 0xff || b == 0x7f { 0x80 } else { b }
        })
        .collect()
}

fn decode(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| ulaw_to_linear(b)).collect()
}

/// Send `data` as packets of the given sizes (samples), at real-time pace from `start`,
/// each delayed by `delay(i)`; returns (arrival, packet) sorted by arrival.
fn packets(
    data: &[u8],
    sizes: &[usize],
    ts0: u32,
    ssrc: u32,
    start: Instant,
    delay: impl Fn(usize) -> i64,
) -> Vec<(Instant, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 0usize;
    let mut i = 0;
    while off < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - off);
        let send = start + Duration::from_micros(off as u64 * 125);
        let d = delay(i);
        let at = if d >= 0 {
            send + Duration::from_millis(d as u64)
        } else {
            send - Duration::from_millis((-d) as u64)
        };
        out.push((
            at,
            rtp(
                0,
                i as u16,
                ts0.wrapping_add(off as u32),
                ssrc,
                &data[off..off + n],
            ),
        ));
        off += n;
        i += 1;
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Run both channels through a recorder, draining every 20 ms; return the frames.
fn record(
    ch0: Vec<(Instant, Vec<u8>)>,
    ch1: Vec<(Instant, Vec<u8>)>,
    jitter_ms: u64,
) -> (Vec<[i16; 2]>, RecordStats) {
    record_draining(ch0, ch1, jitter_ms, 20)
}

/// [`record`], draining every `drain_ms` (the engine drains every 100 ms).
fn record_draining(
    ch0: Vec<(Instant, Vec<u8>)>,
    ch1: Vec<(Instant, Vec<u8>)>,
    jitter_ms: u64,
    drain_ms: u64,
) -> (Vec<[i16; 2]>, RecordStats) {
    let mut r = Recorder::new(Duration::from_millis(jitter_ms));
    let mut events: Vec<(Instant, usize, Vec<u8>)> = ch0
        .into_iter()
        .map(|(t, p)| (t, 0, p))
        .chain(ch1.into_iter().map(|(t, p)| (t, 1, p)))
        .collect();
    events.sort_by_key(|e| e.0);
    let mut frames = Vec::new();
    let mut next_drain = events[0].0;
    for (t, ch, p) in events {
        while next_drain <= t {
            frames.extend(r.drain(next_drain));
            next_drain += Duration::from_millis(drain_ms);
        }
        r.push(t, ch, &p);
    }
    frames.extend(finished(&mut r));
    (frames, r.stats)
}

fn channel(frames: &[[i16; 2]], ch: usize) -> Vec<i16> {
    frames.iter().map(|f| f[ch]).collect()
}

/// Where `needle` starts in `hay` (the stream's first samples).
fn find(hay: &[i16], needle: &[i16]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("stream found in the recording")
}

#[test]
fn any_packet_size_is_sample_exact() {
    let t0 = Instant::now();
    for sizes in [
        &[160usize][..],
        &[240],
        &[320],
        &[80, 480],
        &[160, 240, 320],
    ] {
        let a = stream(8000, 7);
        let b = stream(8000, 9);
        let (frames, stats) = record(
            packets(&a, &[160], 1000, 1, t0, |_| 0),
            packets(&b, sizes, 5000, 2, t0, |_| 0),
            60,
        );
        let left = channel(&frames, 0);
        let right = channel(&frames, 1);
        let la = find(&left, &decode(&a[..160]));
        let rb = find(&right, &decode(&b[..160]));
        assert_eq!(&left[la..la + 8000], decode(&a).as_slice(), "{sizes:?}");
        assert_eq!(&right[rb..rb + 8000], decode(&b).as_slice(), "{sizes:?}");
        // Same start on the shared timeline: both began at t0.
        assert_eq!(la, rb, "channels aligned for {sizes:?}");
        // The file holds the media duration, within one frame.
        assert!(
            frames.len() >= 8000 && frames.len() <= 8000 + 480,
            "{} frames for {sizes:?}",
            frames.len()
        );
        assert_eq!(stats.late + stats.duplicates, 0);
    }
}

#[test]
fn jitter_within_the_buffer_is_absorbed() {
    let t0 = Instant::now();
    let a = stream(16000, 3);
    // ±20 ms of jitter: reorders neighbouring 20 ms packets.
    let jitter = |i: usize| [0i64, 20, -15, 10, -20, 5, 18, -8][i % 8];
    let (frames, stats) = record(packets(&a, &[160], 0, 1, t0, jitter), Vec::new(), 60);
    let left = channel(&frames, 0);
    let s = find(&left, &decode(&a[..160]));
    assert_eq!(&left[s..s + 16000], decode(&a).as_slice());
    assert_eq!(stats.late, 0);
}

#[test]
fn loss_becomes_silence_of_the_right_length_and_late_packets_are_dropped() {
    let t0 = Instant::now();
    let a = stream(8000, 5);
    let mut p = packets(&a, &[160], 0, 1, t0, |_| 0);
    p.remove(10); // lost: samples 1600..1760
    let late_pkt = p.remove(20); // packet 21 (samples 3360..3520) arrives 300 ms late
    p.push((late_pkt.0 + Duration::from_millis(300), late_pkt.1));
    // and one duplicate.
    p.push((p[5].0 + Duration::from_millis(1), p[5].1.clone()));
    p.sort_by_key(|(t, _)| *t);
    let (frames, stats) = record(p, Vec::new(), 60);
    let left = channel(&frames, 0);
    let s = find(&left, &decode(&a[..160]));
    let want = decode(&a);
    for i in 0..8000 {
        let lost = (1600..1760).contains(&i) || (3360..3520).contains(&i);
        if lost {
            assert_eq!(left[s + i], 0, "sample {i} should be silence");
        } else {
            assert_eq!(left[s + i], want[i], "sample {i}");
        }
    }
    assert_eq!(stats.late, 1);
    assert_eq!(stats.duplicates, 1);
}

#[test]
fn timestamp_wrap_ssrc_change_and_ptime_change() {
    let t0 = Instant::now();
    let a = stream(8000, 11);
    // Starts 2000 samples before the 32-bit wrap, 40 ms packets then 20 ms packets.
    let first = packets(&a[..4000], &[320], u32::MAX - 1999, 1, t0, |_| 0);
    let second = packets(
        &a[4000..],
        &[160],
        (u32::MAX - 1999).wrapping_add(4000),
        1,
        t0 + Duration::from_millis(500),
        |_| 0,
    );
    let mut all = first;
    all.extend(second);
    let (frames, stats) = record(all, Vec::new(), 60);
    let left = channel(&frames, 0);
    let s = find(&left, &decode(&a[..320]));
    assert_eq!(&left[s..s + 8000], decode(&a).as_slice());
    assert_eq!(stats.ssrc_changes, 0);

    // An SSRC change (a transfer, a restarted phone): the new stream lands where it arrives.
    let b1 = stream(4000, 13);
    let b2 = stream(4000, 17);
    let mut all = packets(&b1, &[160], 100, 1, t0, |_| 0);
    all.extend(packets(
        &b2,
        &[160],
        900_000,
        2,
        t0 + Duration::from_millis(600),
        |_| 0,
    ));
    let (frames, stats) = record(all, Vec::new(), 60);
    let left = channel(&frames, 0);
    let s1 = find(&left, &decode(&b1[..160]));
    let s2 = find(&left, &decode(&b2[..160]));
    assert_eq!(&left[s1..s1 + 4000], decode(&b1).as_slice());
    assert_eq!(&left[s2..s2 + 4000], decode(&b2).as_slice());
    assert_eq!(s2 - s1, 4800, "600 ms after the first stream started");
    assert_eq!(stats.ssrc_changes, 1);
}

#[test]
fn telephone_events_and_comfort_noise_stay_out_of_the_audio() {
    let t0 = Instant::now();
    let mut r = Recorder::new(Duration::from_millis(60));
    r.push(t0, 0, &rtp(101, 1, 0, 1, &[5, 0x80, 0, 160]));
    r.push(t0, 0, &rtp(13, 2, 0, 1, &[40]));
    r.push(t0, 0, &rtp(18, 3, 0, 1, &[1, 2, 3]));
    assert_eq!(r.stats.skipped, 2);
    assert_eq!(r.stats.undecodable, 1);
    assert_eq!(r.audio, 0, "no audio: what the writer warns of at the end");
    assert!(finished(&mut r).is_empty());
    r.push(t0, 0, &rtp(0, 4, 0, 1, &[0xff; 160]));
    assert_eq!(r.audio, 1);
    // Garbage is not a packet.
    r.push(t0, 0, &[1, 2, 3]);
}

/// The audit's packet: a one-byte header extension whose element claims 16 bytes of a
/// 4-byte block. It used to panic inside the `rtp` crate (and poison the recorder).
fn hostile(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut p = rtp(
        0,
        seq,
        ts,
        ssrc,
        &[0xBE, 0xDE, 0x00, 0x01, 0x1F, 0x00, 0x00, 0x00],
    );
    p[0] |= 0x10;
    p
}

#[test]
fn malformed_packets_are_dropped_and_counted_and_the_stream_goes_on() {
    let t0 = Instant::now();
    let a = stream(1600, 41);
    let mut p = packets(&a, &[160], 0, 1, t0, |_| 0);
    let at = p[4].0 + Duration::from_millis(1);
    p.push((at, hostile(5, 800, 1)));
    p.push((at, vec![0x80, 0x00, 0x00]));
    p.push((
        at,
        rtp(0, 6, 960, 1, &[1, 2, 3, 0])
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i == 0 { b | 0x20 } else { b })
            .collect(),
    ));
    p.sort_by_key(|(t, _)| *t);
    let (frames, stats) = record(p, Vec::new(), 60);
    assert_eq!(stats.malformed, 3);
    let left = channel(&frames, 0);
    let s = find(&left, &decode(&a[..160]));
    assert_eq!(&left[s..s + 1600], decode(&a).as_slice());
}

#[test]
fn memory_stays_bounded_under_overlapping_packets_at_a_high_rate() {
    let t0 = Instant::now();
    let mut r = Recorder::new(Duration::from_millis(60));
    let capacity = r.capacity();
    // 60 ms of depth plus the look-ahead, per channel.
    assert_eq!(capacity, 2 * (480 + 4000));
    // 2 s of packets 1 sample apart, each carrying 1400 samples, 8,000 a second on both
    // channels: the old map held one 2.8 KB vector per packet (about 90 MB here).
    let payload = stream(1400, 43);
    let mut most = 0;
    let mut total = 0;
    for i in 0..16_000u32 {
        let now = t0 + Duration::from_micros(u64::from(i) * 125);
        for ch in 0..2 {
            r.push(now, ch, &rtp(0, i as u16, i, 7 + ch as u32, &payload));
        }
        if i % 800 == 0 {
            total += r.drain(now).len();
        }
        most = most.max(r.buffered());
    }
    assert_eq!(r.capacity(), capacity, "nothing grew");
    assert!(most <= capacity, "{most} held");
    assert!(most > 2 * 1400, "the buffer was used: {most}");
    let rest = finished(&mut r);
    assert!(rest.len() <= capacity as u64 / 2, "{}", rest.len());
    assert_eq!(r.buffered(), 0);
    // Every position from the first sample to the last packet's end, once.
    assert_eq!(total + rest.len(), 15_999 + 1400);
}

#[test]
fn a_long_gap_is_silence_and_the_stream_resumes_sample_exact() {
    let t0 = Instant::now();
    // 1 s of audio, 5 s of nothing (timestamps run on, as on hold), 1 s more.
    let a1 = stream(8000, 45);
    let a2 = stream(8000, 47);
    let mut p = packets(&a1, &[160], 500, 1, t0, |_| 0);
    p.extend(packets(
        &a2,
        &[160],
        500 + 48_000,
        1,
        t0 + Duration::from_secs(6),
        |_| 0,
    ));
    let (frames, stats) = record(p, Vec::new(), 60);
    let left = channel(&frames, 0);
    let s1 = find(&left, &decode(&a1[..160]));
    let s2 = find(&left, &decode(&a2[..160]));
    assert_eq!(&left[s1..s1 + 8000], decode(&a1).as_slice());
    assert_eq!(s2 - s1, 48_000, "6 s after the first sample");
    assert!(
        left[s1 + 8000..s2].iter().all(|&x| x == 0),
        "the gap is silence"
    );
    assert_eq!(&left[s2..s2 + 8000], decode(&a2).as_slice());
    assert_eq!(stats, RecordStats::default());
}

#[test]
fn a_jump_beyond_the_buffer_borne_out_by_the_next_packet_restarts_the_stream_where_it_arrives() {
    let t0 = Instant::now();
    let mut r = Recorder::new(Duration::from_millis(60));
    r.push(t0, 0, &rtp(0, 1, 1000, 1, &[0x10; 160]));
    // Same SSRC, 20 ms later, but its timestamp says 2 s ahead: it would land past the
    // buffer while the first packet is still held. Alone, it is left out.
    let later = t0 + Duration::from_millis(20);
    r.push(later, 0, &rtp(0, 2, 1000 + 16_000, 1, &[0x20; 160]));
    assert_eq!((r.stats.strays, r.stats.restarts), (1, 0));
    // The next packet bears the jump out: the stream restarts where it arrived.
    let next = t0 + Duration::from_millis(40);
    r.push(next, 0, &rtp(0, 3, 1000 + 16_160, 1, &[0x30; 160]));
    assert_eq!(r.stats.restarts, 1);
    let frames: Vec<[i16; 2]> = finished(&mut r).into_iter().collect();
    let left = channel(&frames, 0);
    // Placed where it arrived (320 samples after the first), not 2 s later; the packet
    // left out is 20 ms of silence.
    assert_eq!(left.len(), 480);
    assert!(left[..160].iter().all(|&x| x == ulaw_to_linear(0x10)));
    assert!(left[160..320].iter().all(|&x| x == 0));
    assert!(left[320..].iter().all(|&x| x == ulaw_to_linear(0x30)));
}

/// One packet stamped seconds ahead, after a pause (the buffer empty) or in the middle of
/// a stream, costs only itself: before, it moved the stream (or the buffer's start) after
/// it, and the seconds of audio that followed were all counted late and lost.
#[test]
fn one_packet_stamped_seconds_ahead_costs_only_itself() {
    let t0 = Instant::now();
    // After a pause: 1 s of audio, silence, one stray packet 3 s ahead, then 4 s more.
    let a = stream(8000, 11);
    let b = stream(32_000, 12);
    let mut p = packets(&a, &[160], 0, 1, t0, |_| 0);
    let stray_at = t0 + Duration::from_millis(4999);
    p.push((stray_at, rtp(0, 999, 64_000, 1, &[0x20; 160])));
    p.extend(packets(
        &b,
        &[160],
        40_000,
        1,
        t0 + Duration::from_secs(5),
        |_| 0,
    ));
    p.sort_by_key(|(t, _)| *t);
    let (frames, stats) = record(p, Vec::new(), 60);
    let left = channel(&frames, 0);
    let sa = find(&left, &decode(&a[..160]));
    let sb = find(&left, &decode(&b[..160]));
    assert_eq!(sb - sa, 40_000);
    assert_eq!(&left[sb..sb + 32_000], decode(&b).as_slice());
    assert_eq!((stats.late, stats.strays), (0, 1));
    // In the middle of a stream: 3 s of audio, one packet 30,000 samples ahead at 1 s.
    let c = stream(24_000, 13);
    let mut p = packets(&c, &[160], 0, 1, t0, |_| 0);
    p.push((
        t0 + Duration::from_millis(1001),
        rtp(0, 999, 30_000, 1, &[0x20; 160]),
    ));
    p.sort_by_key(|(t, _)| *t);
    let (frames, stats) = record(p, Vec::new(), 60);
    let left = channel(&frames, 0);
    let sc = find(&left, &decode(&c[..160]));
    assert_eq!(&left[sc..sc + 24_000], decode(&c).as_slice());
    assert_eq!((stats.late, stats.strays), (0, 1));
}

/// A packet that overlaps audio already held, on both sides and across the ring's 64-slot
/// words, fills only the free slots: first come, first kept, sample for sample.
#[test]
fn an_overlapping_packet_fills_only_the_free_slots_across_words() {
    let (a, b, c) = (stream(10, 1), stream(150, 2), stream(60, 3));
    let mut r = Recorder::new(Duration::from_millis(60));
    let t0 = Instant::now();
    r.push(t0, 0, &rtp(0, 1, 1000, 5, &a));
    r.push(t0, 0, &rtp(0, 3, 1100, 5, &c));
    r.push(t0, 0, &rtp(0, 2, 1005, 5, &b));
    let mut want = decode(&a);
    want.extend(decode(&b[5..95]));
    want.extend(decode(&c));
    assert_eq!(
        channel(&finished(&mut r).into_iter().collect::<Vec<_>>(), 0),
        want
    );
    assert_eq!(r.stats.duplicates, 0);
}

#[test]
fn a_sender_whose_clock_runs_slow_stays_in_the_recording() {
    // Forty minutes: the callee's 8 kHz clock is 100 ppm slow, so its packets come
    // 20.002 ms apart and drift 0.8 samples a second behind the timeline. Packets come
    // in real time (built here, not collected: forty minutes are 240,000 of them).
    let t0 = Instant::now();
    let mut r = Recorder::new(Duration::from_millis(60));
    let payload = [0x55u8; 160];
    let (mut i0, mut i1) = (0u32, 0u32);
    let at = |i: u32, us: u64| t0 + Duration::from_micros(u64::from(i) * us);
    let mut next_drain = t0;
    let mut last_minute_heard = 0usize;
    let end = t0 + Duration::from_secs(40 * 60);
    let mut late_before = 0;
    loop {
        let (a, b) = (at(i0, 20_000), at(i1, 20_002));
        let now = a.min(b);
        if now >= end {
            break;
        }
        while next_drain <= now {
            let frames = r.drain(next_drain);
            if next_drain >= end - Duration::from_secs(60) {
                last_minute_heard += frames.frames.iter().filter(|f| f[1] != 0).count();
            }
            next_drain += Duration::from_millis(100);
        }
        if a <= b {
            r.push(a, 0, &rtp(0, i0 as u16, i0 * 160, 1, &payload));
            i0 += 1;
        } else {
            r.push(b, 1, &rtp(0, i1 as u16, i1 * 160, 2, &payload));
            i1 += 1;
        }
        if now < t0 + Duration::from_secs(60) {
            late_before = r.stats.late;
        }
    }
    assert_eq!(late_before, 0);
    // A slew every few minutes, each a few tens of milliseconds of silence, and (almost)
    // every sample of the last minute is there (it was silent from minute 28).
    assert!((5..=20).contains(&r.stats.slews), "{:?}", r.stats);
    assert!(r.stats.late < 100, "{:?}", r.stats);
    assert!(
        last_minute_heard > 59 * 8000,
        "callee heard for {last_minute_heard} samples of the last minute"
    );
}

#[test]
fn a_long_pause_is_drained_as_a_count_not_a_buffer() {
    let t0 = Instant::now();
    let mut r = Recorder::new(Duration::from_millis(60));
    let payload = [0x55u8; 160];
    r.push(t0, 0, &rtp(0, 1, 0, 1, &payload));
    assert_eq!(r.drain(t0 + Duration::from_secs(1)).len(), 160);
    // An hour on hold, timestamps running on; then the media comes back.
    let back = t0 + Duration::from_secs(3600);
    r.push(back, 0, &rtp(0, 2, 3600 * 8000, 1, &payload));
    let d = r.drain(back + Duration::from_millis(200));
    assert!(
        d.frames.len() <= 8000,
        "{} frames in one buffer",
        d.frames.len()
    );
    assert_eq!(d.silence + d.frames.len() as u64, 3600 * 8000);
    let rest = finished(&mut r);
    assert_eq!(d.len() + rest.len(), 3600 * 8000);
    assert!(rest.frames.iter().all(|f| f[0] != 0));
}

/// The writer stalls for five minutes (a disk or NFS hiccup) while the caller's channel
/// holds audio, and the callee's first packet comes during the stall: the drain after it
/// gives the caller's audio, and the five minutes up to the callee's as a count of silence
/// in the next, not as one buffer of 2.4 million zero frames (and hound a buffer as large
/// for the rest of the call). Every frame is still there once.
#[test]
fn a_stalled_writer_costs_no_buffer_of_the_stall() {
    let t0 = Instant::now();
    let mut r = Recorder::new(Duration::from_millis(60));
    let payload = [0x55u8; 160];
    r.push(t0, 0, &rtp(0, 1, 0, 1, &payload));
    let stall = Duration::from_secs(300);
    r.push(t0 + stall, 1, &rtp(0, 1, 0, 2, &payload));
    let after = t0 + stall + Duration::from_secs(1);
    let first = r.drain(after);
    let second = r.drain(after);
    let rest = finished(&mut r);
    let most = [&first, &second, &rest]
        .iter()
        .map(|d| d.frames.len())
        .max()
        .unwrap();
    assert!(most <= 2 * r.capacity(), "{most} frames in one buffer");
    assert_eq!(channel(&first.frames, 0), decode(&payload));
    let total = first.len() + second.len() + rest.len();
    assert_eq!(total, stall.as_millis() as u64 * 8 + 160);
}

/// A sender that resumes after a pause with its timestamp carried on from before the pause
/// (some endpoints do at hold and resume): its packets land seconds behind where they
/// arrive. The stream restarts where it arrived once the next packet bears that out, as
/// for a jump ahead. Before, with the other channel running, every packet was late until
/// the stream was slewed a second later: 1–2 s of the resumed audio were lost.
#[test]
fn a_stream_resumed_behind_real_time_restarts_where_it_arrives() {
    let t0 = Instant::now();
    let a1 = stream(8000, 51);
    let a2 = stream(16_000, 53);
    let b = stream(8 * 8000, 55);
    let mut p0 = packets(&a1, &[160], 500, 1, t0, |_| 0);
    p0.extend(packets(
        &a2,
        &[160],
        500 + 8000,
        1,
        t0 + Duration::from_secs(4),
        |_| 0,
    ));
    let p1 = packets(&b, &[160], 9000, 2, t0, |_| 0);
    let (frames, stats) = record(p0, p1, 60);
    let left = channel(&frames, 0);
    // Borne out by a packet 100 ms after the first at the same place: five packets (100 ms)
    // go, the rest is in the file.
    let from = 5 * 160;
    let s2 = find(&left, &decode(&a2[from..from + 160]));
    assert_eq!(
        &left[s2..s2 + a2.len() - from],
        &decode(&a2[from..])[..],
        "the resumed audio"
    );
    assert_eq!(stats.late, 0, "{stats:?}");
    assert_eq!((stats.strays, stats.restarts), (5, 1), "{stats:?}");
}

/// Packets held up in the network and then delivered in a burst arrive behind where they
/// belong by the same amount each, less a packet time per packet as they catch up: late,
/// and they must not move the stream (which would throw the audio after them out of place).
#[test]
fn a_burst_of_held_up_packets_stays_late_and_moves_nothing() {
    let t0 = Instant::now();
    let a = stream(5 * 8000, 57);
    // Packets 50..150 (1 s to 3 s) are held up and all arrive at 3.2 s, 1 ms apart.
    let held = |i: usize| (50..150).contains(&i);
    let p0 = packets(&a, &[160], 500, 1, t0, |i| {
        if held(i) {
            3200 - 20 * i as i64 + (i as i64 - 50)
        } else {
            0
        }
    });
    let (frames, stats) = record(p0, Vec::new(), 60);
    let left = channel(&frames, 0);
    let s = find(&left, &decode(&a[..160]));
    assert_eq!(stats.restarts, 0, "{stats:?}");
    // The audio before and after the hold-up is where it belongs.
    assert_eq!(&left[s..s + 50 * 160], &decode(&a[..50 * 160])[..]);
    let after = 170 * 160;
    assert_eq!(&left[s + after..s + a.len()], &decode(&a[after..])[..]);
}

/// What `finish` gives, as one piece: the first piece's silence a count, every later
/// piece's spelled out (the tests read frames, not how they were cut).
fn finished(r: &mut Recorder) -> Drained {
    let mut pieces = r.finish().into_iter();
    let mut all = pieces.next().unwrap_or_default();
    for p in pieces {
        all.frames.extend(p);
    }
    all
}

/// Twelve seconds each way, the callee's on time, the caller's packet `i` delayed by
/// `delay(i)` ms and none sent from 8 s to 9 s (silence suppression, its timestamps going
/// on): how much later than the callee's packet `i` the caller's packet `i` lands, as a
/// function of `i`, and the recorder's counts.
fn paused_caller(delay: impl Fn(usize) -> i64) -> (impl Fn(usize) -> i64, RecordStats) {
    let t0 = Instant::now();
    let (a, b) = (stream(12 * 8000, 61), stream(12 * 8000, 67));
    let p0: Vec<_> = packets(&a, &[160], 1000, 1, t0, delay)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !(400..450).contains(i))
        .map(|(_, p)| p)
        .collect();
    let (frames, stats) = record(p0, packets(&b, &[160], 5000, 2, t0, |_| 0), 60);
    let (left, right) = (channel(&frames, 0), channel(&frames, 1));
    let at = |hay: &[i16], data: &[u8], i: usize| {
        find(hay, &decode(&data[i * 160..(i + 1) * 160])) as i64
    };
    (move |i| at(&left, &a, i) - at(&right, &b, i), stats)
}

/// A delay that goes up (followed: the channel moves later) and comes down again: the
/// channel moves back at the sender's next pause, where nothing held is overwritten, and
/// the two channels line up again. Before, it stayed later for the rest of the call (200 ms
/// here), and every such spike added to it.
#[test]
fn a_channel_that_followed_a_delay_moves_back_at_the_senders_next_pause() {
    // The caller's packets 100..200 (2 s to 4 s) come 200 ms late.
    let (later, stats) = paused_caller(|i| if (100..200).contains(&i) { 200 } else { 0 });
    // Later while the delay lasts, and after it until the pause (every sample kept).
    assert!(
        (1500..=1700).contains(&later(300)),
        "{} {stats:?}",
        later(300)
    );
    // Lined up again after the pause.
    assert!(later(500).abs() <= 80, "{} {stats:?}", later(500));
    assert_eq!(stats.duplicates, 0, "{stats:?}");
}

/// The move back is only what the last second bore out: a delay that came down and then
/// went up again before the sender paused leaves nothing to move back at that pause. Before,
/// the stale move was made there and the packets after it fell behind the buffer (late,
/// lost) until the channel was followed later again a second on.
#[test]
fn a_move_back_the_delay_took_back_is_not_made_at_the_next_pause() {
    // Late by 200 ms at 2–4 s, on time at 4–6 s, late again from 6 s on.
    let (later, stats) = paused_caller(|i| {
        if (100..200).contains(&i) || i >= 300 {
            200
        } else {
            0
        }
    });
    // Only the first second of the first delay was lost; after the pause the channel is
    // where the delay has it, every packet kept.
    assert!(stats.late <= 60, "{stats:?}");
    assert!(
        (1500..=1700).contains(&later(460)),
        "{} {stats:?}",
        later(460)
    );
}

/// Sixty seconds each way, drained every 100 ms as the engine does; the callee never pauses
/// (G.711 without silence suppression) and its packets 100..225 (2 s to 4.5 s) come 405 ms
/// late, each with up to 19 ms of jitter. Followed, its channel moves 400 ms later; when the
/// delay comes down its packets land 400 ms ahead of where they arrive, too far for the ring
/// between drains. It moves back at once (within the second that shows it): a cut of about
/// the lead, once, and every later packet placed, the channels lined up again. Before, it
/// waited for a pause that never came, 400 ms behind the caller, and the last packet before
/// each drain was left out for the rest of the call (555 of the 2,775 after the delay).
#[test]
fn a_stream_far_ahead_that_never_pauses_moves_back_at_once() {
    let t0 = Instant::now();
    let (a, b) = (stream(60 * 8000, 71), stream(60 * 8000, 73));
    let jitter = |i: usize| (i * 7 % 20) as i64;
    let delay = move |i: usize| jitter(i) + if (100..225).contains(&i) { 405 } else { 0 };
    let (frames, stats) = record_draining(
        packets(&a, &[160], 1000, 1, t0, jitter),
        packets(&b, &[160], 5000, 2, t0, delay),
        60,
        100,
    );
    let (left, right) = (channel(&frames, 0), channel(&frames, 1));
    // Every callee packet from 8 s on is in the file, in line with the caller's.
    for i in (400..3000).step_by(50) {
        let at = |hay: &[i16], data: &[u8]| find(hay, &decode(&data[i * 160..(i + 1) * 160]));
        let apart = at(&right, &b) as i64 - at(&left, &a) as i64;
        assert!(
            apart.abs() <= 160,
            "packet {i}: {apart} samples apart, {stats:?}"
        );
    }
    // Only in the second before the move.
    assert!(stats.strays <= 50, "{stats:?}");
}

/// A stream 200 ms ahead (a delay that went up and came down, followed), which the ring
/// holds, waits for the sender's pause to move back without a cut; one that never pauses
/// moves back 10 s on. Before, it stayed 200 ms behind the other channel for the rest of the
/// call.
#[test]
fn a_stream_ahead_that_never_pauses_moves_back_after_ten_seconds() {
    let t0 = Instant::now();
    let (a, b) = (stream(40 * 8000, 79), stream(40 * 8000, 83));
    let delay = |i: usize| if (100..200).contains(&i) { 200 } else { 0 };
    let (frames, stats) = record_draining(
        packets(&a, &[160], 1000, 1, t0, |_| 0),
        packets(&b, &[160], 5000, 2, t0, delay),
        60,
        100,
    );
    let (left, right) = (channel(&frames, 0), channel(&frames, 1));
    let apart = |i: usize| {
        let at = |hay: &[i16], data: &[u8]| find(hay, &decode(&data[i * 160..(i + 1) * 160]));
        at(&right, &b) as i64 - at(&left, &a) as i64
    };
    // Still later (every sample kept) five seconds after the delay came down...
    assert!(
        (1500..=1700).contains(&apart(450)),
        "{} {stats:?}",
        apart(450)
    );
    // ...lined up from 10 s after it on.
    for i in (1000..2000).step_by(50) {
        assert!(apart(i).abs() <= 80, "packet {i}: {} {stats:?}", apart(i));
    }
}
