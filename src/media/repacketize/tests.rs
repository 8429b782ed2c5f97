use super::*;
use webrtc_util::marshal::Unmarshal;

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn parse(b: &Bytes) -> rtp::packet::Packet {
    rtp::packet::Packet::unmarshal(&mut b.clone()).unwrap()
}

#[test]
fn thirty_in_twenty_out_with_identical_content() {
    let t0 = Instant::now();
    let data: Vec<u8> = (0..4800u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut r = Repacketizer::new(20);
    let mut out = Vec::new();
    for (i, chunk) in data.chunks(240).enumerate() {
        out.extend(r.push(t0, &rtp(0, 100 + i as u16, 5000 + (i * 240) as u32, chunk)));
    }
    let pkts: Vec<_> = out.iter().map(parse).collect();
    assert!(
        pkts.iter().all(|p| p.payload.len() == 160),
        "every packet 20 ms"
    );
    let joined: Vec<u8> = pkts.iter().flat_map(|p| p.payload.to_vec()).collect();
    assert_eq!(joined, data, "content identical");
    for (i, p) in pkts.iter().enumerate() {
        assert_eq!(p.header.sequence_number, 100 + i as u16);
        assert_eq!(p.header.timestamp, 5000 + 160 * i as u32);
    }
}

#[test]
fn loss_and_events_flush_and_keep_numbering_continuous() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    let mut out = Vec::new();
    out.extend(r.push(t0, &rtp(0, 1, 0, &[1; 240])));
    // 240 samples lost, then the stream goes on, then a telephone-event.
    out.extend(r.push(t0, &rtp(0, 3, 480, &[2; 240])));
    out.extend(r.push(t0, &rtp(101, 4, 720, &[5, 0x80, 0, 160])));
    let pkts: Vec<_> = out.iter().map(parse).collect();
    let sizes: Vec<usize> = pkts.iter().map(|p| p.payload.len()).collect();
    assert_eq!(sizes, vec![160, 80, 160, 80, 4]);
    let ts: Vec<u32> = pkts.iter().map(|p| p.header.timestamp).collect();
    assert_eq!(ts, vec![0, 160, 480, 640, 720]);
    let seqs: Vec<u16> = pkts.iter().map(|p| p.header.sequence_number).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(pkts[4].header.payload_type, 101);
}

/// Started mid-stream (a re-INVITE turned it on; the packets before went as they came),
/// its numbers go on from the stream's, across the wrap; restarted toward another
/// callee, from its own. Before, they began at 0: a jump the far end's jitter buffer
/// takes for a new stream.
#[test]
fn numbering_goes_on_from_the_stream() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    let mut out = r.push(t0, &rtp(0, 65535, 800, &[1; 160]));
    out.extend(r.push(t0, &rtp(0, 0, 960, &[1; 160])));
    r.restart(20);
    out.extend(r.push(t0, &rtp(0, 9000, 1120, &[1; 160])));
    let seqs: Vec<u16> = out
        .iter()
        .map(|p| parse(p).header.sequence_number)
        .collect();
    assert_eq!(seqs, vec![65535, 0, 1]);
}

/// Audio taken already goes out once: a duplicate is dropped, a packet overtaken by a
/// later one is dropped, and a sender whose clock restarted is a new stream (far back at
/// once; a little back after three packets). Before, each went out again under new
/// sequence numbers, after the audio that follows it: the far end played it twice.
#[test]
fn audio_taken_already_is_not_sent_again() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    assert_eq!(r.push(t0, &rtp(0, 1, 0, &[1; 160])).len(), 1);
    assert!(r.push(t0, &rtp(0, 1, 0, &[1; 160])).is_empty(), "duplicate");
    // 3 overtakes 2: 2 comes late, its audio's place is past.
    assert_eq!(r.push(t0, &rtp(0, 3, 320, &[3; 160])).len(), 1);
    assert!(r.push(t0, &rtp(0, 2, 160, &[2; 160])).is_empty(), "late");
    assert_eq!(r.stats.stale, 2);
    // A clock restarted 10 s back: taken whole.
    let back = 480u32.wrapping_sub(80_000);
    assert_eq!(r.push(t0, &rtp(0, 4, back, &[4; 160])).len(), 1);
    // Restarted half a second back: two packets dropped, then it is the stream.
    let back = back.wrapping_sub(4000);
    assert!(r.push(t0, &rtp(0, 5, back, &[5; 160])).is_empty());
    assert!(r.push(t0, &rtp(0, 6, back + 160, &[6; 160])).is_empty());
    assert_eq!(r.push(t0, &rtp(0, 7, back + 320, &[7; 160])).len(), 1);
    assert_eq!(r.push(t0, &rtp(0, 8, back + 480, &[8; 160])).len(), 1);
}

/// A sender whose timestamps run slower than its audio (each packet overlapping the
/// last) goes out whole, as before: only audio taken in full is dropped.
#[test]
fn a_slow_clock_loses_no_audio() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    let sent: usize = (0..10u32)
        .map(|k| r.push(t0, &rtp(0, k as u16, k * 20, &[1; 160])).len())
        .sum();
    assert_eq!(r.stats.stale, 0);
    assert!(sent >= 9, "{sent}");
}

#[test]
fn malformed_packets_are_dropped_and_counted_and_the_stream_goes_on() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    let mut out = r.push(t0, &rtp(0, 1, 0, &[1; 160]));
    // The audit's packet: a one-byte extension element claiming 16 bytes of 4.
    let mut hostile = rtp(0, 2, 160, &[0xBE, 0xDE, 0x00, 0x01, 0x1F, 0x00, 0x00, 0x00]);
    hostile[0] |= 0x10;
    assert!(r.push(t0, &hostile).is_empty());
    assert!(r.push(t0, &[0x80, 0, 0]).is_empty());
    out.extend(r.push(t0, &rtp(0, 3, 160, &[2; 160])));
    assert_eq!(r.stats.malformed, 2);
    let pkts: Vec<_> = out.iter().map(parse).collect();
    assert_eq!(pkts.len(), 2);
    assert_eq!(&pkts[1].payload[..], &[2; 160]);
    assert_eq!(pkts[1].header.sequence_number, 2);
}

#[test]
fn one_big_packet_cannot_become_fifty() {
    let t0 = Instant::now();
    // 5 ms out (40 bytes a packet): a 1400-byte payload would be 35 packets.
    let mut r = Repacketizer::new(5);
    assert!(r.push(t0, &rtp(0, 1, 0, &[1; 1400])).is_empty());
    assert_eq!(r.stats.oversize, 1);
    // The most one packet may carry: MAX_CHUNKS packets out, plus the held remainder of
    // the previous stream when this one breaks it.
    let mut r = Repacketizer::new(5);
    assert!(r.push(t0, &rtp(0, 1, 0, &[1; 20])).is_empty());
    let out = r.push(t0, &rtp(0, 2, 9_999, &[2; MAX_CHUNKS * 40]));
    assert_eq!(out.len(), MAX_CHUNKS + 1);
    assert_eq!(r.stats, RepackStats::default());
    // Whatever arrives, each input gives at most MAX_CHUNKS + 1 outputs and the buffer
    // keeps less than one packet.
    let mut r = Repacketizer::new(5);
    for i in 0..2000u32 {
        let len = (i as usize * 37) % 1489;
        let out = r.push(t0, &rtp(0, i as u16, i * 7, &vec![3; len]));
        assert!(out.len() <= MAX_CHUNKS + 1, "{} for {len}", out.len());
        assert!(r.buf.len() < r.size);
    }
    // A ptime of 0 would never finish a packet: it is clamped.
    let mut r = Repacketizer::new(0);
    assert_eq!(r.push(t0, &rtp(0, 1, 0, &[1; 80])).len(), 2);
}

#[test]
fn no_packet_sent_is_larger_than_a_relay_accepts() {
    let t0 = Instant::now();
    // The longest ptime asked for is cut to what fits MAX_PACKET: what the repacketiser
    // sends passes the relay's own check (a gateway of ours downstream drops the rest).
    for ms in [MAX_PTIME_MS, MAX_PTIME_MS + 1, 200, u16::MAX] {
        let mut r = Repacketizer::new(ms);
        let mut out = Vec::new();
        for i in 0..20u16 {
            out.extend(r.push(t0, &rtp(0, i, u32::from(i) * 1_480, &[5; 1_480])));
        }
        // A gap flushes what is held; an event passes through as it came.
        out.extend(r.push(t0, &rtp(0, 20, 99_999, &[6; 1_000])));
        out.extend(r.push(t0, &rtp(101, 21, 99_999, &[7; 1_488])));
        assert!(!out.is_empty());
        for p in &out {
            assert!(p.len() <= MAX_PACKET, "{} bytes at {ms} ms", p.len());
            assert!(check_rtp(p).is_ok());
        }
    }
}

/// A leg flooding within the relay's packet rate, each packet 120 ms of G.711 toward a
/// 10 ms leg: what goes out is 2 s of audio at once and then 5/4 of real time. Before,
/// 1,000 packets a second in went out as 12,000.
#[test]
fn a_flood_goes_out_at_little_more_than_real_time() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(10);
    let mut sent = 0;
    for i in 0..1000u32 {
        let at = t0 + Duration::from_millis(u64::from(i));
        let out = r.push(at, &rtp(0, i as u16, i * 960, &[1; 960]));
        sent += out.iter().map(|p| p.len() - 12).sum::<usize>();
    }
    // 16,000 bytes at once, then 10 a millisecond for 999 ms: 80-byte packets.
    assert_eq!(sent, (16_000 + 9_990) / 80 * 80);
    assert_eq!(r.stats.over_rate, 12_000 - sent as u64 / 80);
    // Once it runs dry, telephone-events still pass.
    let at = t0 + Duration::from_millis(999);
    assert!(r.push(at, &rtp(0, 1000, 960_000, &[1; 960])).is_empty());
    assert_eq!(r.push(at, &rtp(101, 1001, 0, &[5, 0x80, 0, 160])).len(), 1);
}

/// A stream after a stall: 1.8 s of audio at once, then live 20 ms packets for a minute
/// from a sender whose clock runs 1 % fast. Every byte goes out: the budget holds back a
/// flood, not a stream that catches up.
#[test]
fn a_stream_catching_up_after_a_stall_goes_out_whole() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    let mut sent = 0;
    for i in 0..15u32 {
        let out = r.push(t0, &rtp(0, i as u16, i * 960, &[1; 960]));
        sent += out.iter().map(|p| p.len() - 12).sum::<usize>();
    }
    assert_eq!(sent, 15 * 960);
    for i in 0..3000u32 {
        let at = t0 + Duration::from_micros(u64::from(i) * 19_800);
        let out = r.push(at, &rtp(0, 15 + i as u16, 14_400 + i * 160, &[2; 160]));
        sent += out.iter().map(|p| p.len() - 12).sum::<usize>();
    }
    assert_eq!(sent, 15 * 960 + 3000 * 160);
    assert_eq!(r.stats.over_rate, 0);
}

/// A 100 ms talkspurt of 20 ms packets toward a 30 ms leg, then silence (a sender without
/// comfort noise): three 30 ms packets go as the audio comes, and the last 10 ms goes on its
/// own once the next packet is overdue (20 ms, then 30 ms of outgoing ptime and 40 ms of
/// jitter after it came), numbered and stamped in line, rather than wait for the next
/// talkspurt (before, it went out seconds later, stale, just before it).
#[test]
fn the_end_of_a_talkspurt_goes_out_within_two_ptimes() {
    let t0 = Instant::now();
    let data: Vec<u8> = (0..800u32).map(|i| (i * 3 % 251) as u8).collect();
    let mut r = Repacketizer::new(30);
    let mut out = Vec::new();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    for (i, chunk) in data.chunks(160).enumerate() {
        let at = ms(20 * i as u64);
        out.extend(r.push(at, &rtp(0, 10 + i as u16, 1000 + (i * 160) as u32, chunk)));
        assert_eq!(r.flush_due(at), None, "nothing due while packets come");
    }
    assert_eq!(out.len(), 3);
    // The last 80 samples came with the packet at 80 ms: due at 170 ms.
    assert_eq!(r.due(), Some(ms(170)));
    assert_eq!(r.flush_due(ms(169)), None);
    let last = parse(&r.flush_due(ms(170)).expect("the rest goes"));
    assert_eq!(last.payload.as_ref(), &data[720..]);
    assert_eq!(last.header.sequence_number, 13);
    assert_eq!(last.header.timestamp, 1000 + 720);
    assert_eq!((r.due(), r.flush_due(ms(1000))), (None, None));
    // The next talkspurt starts clean, numbered on.
    let next = r.push(ms(2000), &rtp(0, 15, 1000 + 16_000, &data[..240]));
    let next: Vec<_> = next.iter().map(parse).collect();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].header.sequence_number, 14);
    assert_eq!(next[0].header.timestamp, 17_000);
}

/// Packets 5, 6 and 7 held up on the way arrive after 8, 9 and 10 (a path change): all
/// three are late and dropped, and the stream goes on numbered in order. Before, the third
/// late one in a row was taken for a restarted clock and went out after 10, its audio 60 ms
/// in the past under a newer sequence number. A clock that really restarted (its packets
/// numbered on, stamped back) is still followed after three.
/// 30 ms packets toward a 20 ms leg, each 10 ms of it held until the next comes 30 ms on,
/// some 35 ms late: no short packet goes mid-talkspurt while they come within the jitter
/// allowance. (The first version of the flush, due two outgoing ptimes on, cut a 10 ms
/// packet at every packet more than 10 ms late.)
#[test]
fn held_audio_waits_for_a_sender_of_longer_packets() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    let mut sizes = Vec::new();
    for i in 0..20u32 {
        let late = if i % 3 == 0 { 35 } else { 0 };
        let at = t0 + Duration::from_millis(u64::from(30 * i + late));
        let out = r.push(at, &rtp(0, i as u16, 1000 + 240 * i, &[0x55; 240]));
        sizes.extend(out.iter().map(|p| parse(p).payload.len()));
        // A look of the relay's 33 ms after the next packet's time, before it comes (when
        // it is late).
        let look = t0 + Duration::from_millis(u64::from(30 * (i + 1)) + 33);
        if let Some(p) = r.flush_due(look) {
            sizes.push(parse(&p).payload.len());
        }
    }
    assert!(sizes.iter().all(|&s| s == 160), "{sizes:?}");
}

#[test]
fn a_burst_of_late_packets_is_no_restarted_clock() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    let pkt = |seq: u16, ts_index: u32| rtp(0, seq, 1000 + 160 * ts_index, &[0x55; 160]);
    let mut out = Vec::new();
    for i in [0u16, 1, 2, 3, 4, 8, 9, 10, 5, 6, 7, 11] {
        out.extend(r.push(t0, &pkt(i, u32::from(i))));
    }
    let stamps: Vec<u32> = out.iter().map(|p| parse(p).header.timestamp).collect();
    let want: Vec<u32> = [0, 1, 2, 3, 4, 8, 9, 10, 11]
        .iter()
        .map(|i| 1000 + 160 * i)
        .collect();
    assert_eq!(stamps, want);
    assert_eq!(r.stats.stale, 3);
    // A restarted clock: numbered on (12, 13, 14), stamped 2 s back: the third is followed.
    let mut restarted = Vec::new();
    for (k, seq) in [12u16, 13, 14].into_iter().enumerate() {
        restarted.extend(r.push(t0, &pkt(seq, k as u32)));
    }
    assert_eq!(restarted.len(), 1, "followed at the third");
}

#[test]
fn what_was_sent_is_counted_per_stream_across_restarts_until_forgotten() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    assert_eq!(r.sent(), None);
    // 40 ms in: two 20 ms packets out, 320 payload octets; a held half packet is not sent.
    r.push(t0, &rtp(0, 1, 0, &[0xd5; 320]));
    r.push(t0, &rtp(0, 2, 320, &[0xd5; 80]));
    let sent = |ssrc, packets, octets| {
        Some(Sent {
            ssrc,
            packets,
            octets,
        })
    };
    assert_eq!(r.sent(), sent(7, 2, 320));
    // The held audio goes out when due: counted.
    assert!(r.flush_due(t0 + Duration::from_secs(1)).is_some());
    assert_eq!(r.sent(), sent(7, 3, 400));
    // Another ptime for the same leg (a re-INVITE): the leg's stream goes on.
    r.restart(10);
    r.push(t0, &rtp(0, 3, 400, &[0xd5; 160]));
    assert_eq!(r.sent(), sent(7, 5, 560));
    // Renumbered after repacketising stops: counted as sent, whole payload.
    r.stop();
    assert!(r.renumber(&rtp(0, 4, 560, &[0xd5; 240])).is_some());
    assert_eq!(r.sent(), sent(7, 6, 800));
    // A new SSRC starts anew; another peer (a failover) too.
    let mut other = rtp(0, 5, 0, &[0xd5; 160]);
    other[8..12].copy_from_slice(&8u32.to_be_bytes());
    r.renumber(&other);
    assert_eq!(r.sent(), sent(8, 1, 160));
    r.forget_sent();
    assert_eq!(r.sent(), None);
}

#[test]
fn the_highest_number_that_came_is_extended_over_wraps_and_kept_per_stream() {
    let t0 = Instant::now();
    let mut r = Repacketizer::new(20);
    assert_eq!(r.came(), None);
    r.push(t0, &rtp(0, 65_534, 0, &[0xd5; 160]));
    r.push(t0, &rtp(0, 65_535, 160, &[0xd5; 160]));
    r.push(t0, &rtp(0, 1, 480, &[0xd5; 160])); // 0 lost, over the wrap
    assert_eq!(r.came(), Some((7, 65_537)));
    // A late packet from before the wrap does not move it back.
    r.push(t0, &rtp(0, 0, 320, &[0xd5; 160]));
    assert_eq!(r.came(), Some((7, 65_537)));
    // After repacketising stops, the stream numbered on still counts; another does not
    // belong to it.
    r.stop();
    let next = rtp(0, 2, 640, &[0xd5; 160]);
    assert!(r.numbers_on(&next));
    r.renumber(&next);
    assert_eq!(r.came(), Some((7, 65_538)));
    let mut other = rtp(0, 9, 0, &[0xd5; 160]);
    other[8..12].copy_from_slice(&8u32.to_be_bytes());
    assert!(!r.numbers_on(&other));
}
