use super::shedder::WINDOW;
use super::*;

/// Overload thresholds of 100 ms (refuse) and 500 ms (drop), whatever the defaults.
fn thresholds() -> Protect {
    Protect {
        overload_delay: Duration::from_millis(100),
        overload_drop: Duration::from_millis(500),
        ..Protect::default()
    }
}

/// Feed the shedder `n` requests a millisecond apart, each having waited `delay`;
/// returns how many were refused and dropped.
fn run(sh: &mut Shedder, t: &mut Instant, n: u32, delay: Duration, p: &Protect) -> (u32, u32) {
    let (mut refused, mut dropped) = (0, 0);
    for _ in 0..n {
        *t += Duration::from_millis(1);
        match sh.decide(*t, (delay, Stage::CoreUdp), (false, 0), p) {
            Shed::Admit => {}
            Shed::Refuse => refused += 1,
            Shed::Drop => dropped += 1,
        }
    }
    (refused, dropped)
}

/// Requests are refused only once a queue has stood a whole window: bursts over the
/// threshold that drain within a window (a stall's backlog, a peer's batch) are served
/// late, not refused. Before, every request that waited the threshold was refused: a
/// 100 ms hiccup of the machine sent 503s with Retry-After, and carriers then sent us
/// nothing for seconds.
#[test]
fn a_queue_that_drains_within_a_window_is_served_late_not_refused() {
    let p = thresholds();
    let (mut sh, mut t) = (Shedder::default(), Instant::now());
    assert_eq!(
        run(&mut sh, &mut t, 5000, Duration::from_millis(5), &p),
        (0, 0)
    );
    let mut refused = 0;
    for _ in 0..20 {
        refused += run(&mut sh, &mut t, 90, Duration::from_millis(300), &p).0;
        refused += run(&mut sh, &mut t, 10, Duration::ZERO, &p).0;
    }
    assert_eq!(refused, 0);
    assert_eq!(sh.share(), 0.0);
    // A stall: nothing decided for 400 ms, then its backlog drains in 60 ms.
    t += Duration::from_millis(400);
    assert_eq!(
        run(&mut sh, &mut t, 60, Duration::from_millis(400), &p),
        (0, 0)
    );
    run(&mut sh, &mut t, 10, Duration::ZERO, &p);
    // A queue that stands longer than a window: what waited too long after the first
    // window is refused.
    let (refused, _) = run(&mut sh, &mut t, 150, Duration::from_millis(300), &p);
    assert!((49..=52).contains(&refused), "{refused}");
}

#[test]
fn a_standing_queue_raises_the_refused_share_and_its_end_lowers_it_again() {
    let p = thresholds();
    let (mut sh, mut t) = (Shedder::default(), Instant::now());
    let standing = Duration::from_millis(150);
    // One second of standing queue: every one of those waited too long, those after the
    // first window are refused, and nine windows close, each raising the share a step.
    let (refused, _) = run(&mut sh, &mut t, 1000, standing, &p);
    assert!((898..=902).contains(&refused), "{refused}");
    assert!(sh.share() > 0.85, "{}", sh.share());
    // The queue is gone: the share still refuses most of what comes next (the overload
    // has not gone away because the queue did) and comes down a little per window.
    let (refused, _) = run(&mut sh, &mut t, 100, Duration::from_millis(1), &p);
    assert!((80..=95).contains(&refused), "refused {refused} of 100");
    run(&mut sh, &mut t, 900, Duration::from_millis(1), &p);
    assert!(sh.share() < 0.9 && sh.share() > 0.5, "{}", sh.share());
    run(&mut sh, &mut t, 5000, Duration::from_millis(1), &p);
    assert_eq!(sh.share(), 0.0);
    // And then nothing is refused.
    assert_eq!(
        run(&mut sh, &mut t, 1000, Duration::from_millis(1), &p),
        (0, 0)
    );
}

/// After a storm, quiet time brings the share down by itself: the calls that come
/// after a quiet spell are not refused. Before, the share fell only as requests closed
/// windows, so ten calls 5 s apart after ten quiet minutes were nearly all refused.
#[test]
fn quiet_time_after_a_storm_lowers_the_share() {
    let p = thresholds();
    let (mut sh, mut t) = (Shedder::default(), Instant::now());
    run(&mut sh, &mut t, 1000, Duration::from_millis(150), &p);
    assert!(sh.share() > 0.85, "{}", sh.share());
    t += Duration::from_secs(600);
    let mut refused = 0;
    for _ in 0..10 {
        t += Duration::from_secs(5);
        if sh.decide(t, (Duration::ZERO, Stage::CoreUdp), (false, 0), &p) != Shed::Admit {
            refused += 1;
        }
    }
    assert_eq!(refused, 0);
    // Two seconds of quiet after the storm: the share came down by a step a window.
    let (mut sh, mut t) = (Shedder::default(), Instant::now());
    run(&mut sh, &mut t, 1000, Duration::from_millis(150), &p);
    let before = sh.share();
    t += Duration::from_secs(2);
    sh.decide(t, (Duration::ZERO, Stage::CoreUdp), (false, 0), &p);
    assert!(sh.share() < before - 0.3, "{before} -> {}", sh.share());
    // But a stall is no quiet time: the request that ends two seconds without decisions
    // waited 1.9 s of them, and the share does not come down.
    let (mut sh, mut t) = (Shedder::default(), Instant::now());
    run(&mut sh, &mut t, 1000, Duration::from_millis(150), &p);
    let before = sh.share();
    t += Duration::from_secs(2);
    sh.decide(
        t,
        (Duration::from_millis(1900), Stage::CoreUdp),
        (false, 0),
        &p,
    );
    assert!(sh.share() >= before, "{before} -> {}", sh.share());
}

/// Quiet time brings the share down with no request to close a window: housekeeping asks
/// once a second, so the share's metric, and the rules that drop junk while it is above 0,
/// do not show a storm long over. Before, the share stood at its last value until the next
/// new request, however long the quiet (an hour of it, with peers honouring Retry-After).
#[test]
fn quiet_time_lowers_the_share_with_no_request_to_show_it() {
    let p = thresholds();
    let (mut sh, mut t) = (Shedder::default(), Instant::now());
    run(&mut sh, &mut t, 1000, Duration::from_millis(150), &p);
    let before = sh.share();
    assert!(before > 0.85, "{before}");
    sh.decay_idle(t + Duration::from_millis(50), &p);
    assert_eq!(sh.share(), before, "not a whole quiet window yet");
    // (The window open at the storm's end closes as it stood, a step up.)
    sh.decay_idle(t + Duration::from_secs(3), &p);
    assert!(sh.share() < before - 0.3, "{before} -> {}", sh.share());
    assert_eq!(sh.last_min, Duration::ZERO, "no queue stands");
    sh.decay_idle(t + Duration::from_secs(60), &p);
    assert_eq!(sh.share(), 0.0);
    // The next request opens a window of its own and is let in.
    let next = t + Duration::from_secs(61);
    assert_eq!(
        sh.decide(next, (Duration::ZERO, Stage::CoreUdp), (false, 0), &p),
        Shed::Admit
    );
}

#[test]
fn the_share_settles_where_the_queue_stops_growing() {
    // A fake core serving 1000 requests/s offered 2000/s: what it admits is queued;
    // the delay is the queue's length over the service rate.
    let p = thresholds();
    let (mut sh, mut t) = (Shedder::default(), Instant::now());
    let mut queue = 0.0f64;
    let mut admitted_last_5s = 0;
    for ms in 0..20_000u32 {
        t += Duration::from_micros(500);
        let delay = Duration::from_secs_f64(queue / 1000.0);
        if sh.decide(t, (delay, Stage::CoreUdp), (false, 0), &p) == Shed::Admit {
            queue += 1.0;
            if ms >= 10_000 {
                admitted_last_5s += 1;
            }
        }
        queue = (queue - 0.5).max(0.0);
    }
    // About the service rate gets in (5 s × 1000/s), the rest is refused.
    assert!(
        (4000..=5600).contains(&admitted_last_5s),
        "{admitted_last_5s}"
    );
}

#[test]
fn an_invite_the_reader_let_in_is_still_refused_if_it_then_waited_too_long_inside() {
    let p = thresholds();
    let mut sh = Shedder::default();
    let mut t = Instant::now();
    assert_eq!(sh.screened(t, Duration::from_millis(10), &p), Shed::Admit);
    // Long waits inside, for a whole window: refused, whatever the reader saw.
    for _ in 0..100 {
        t += Duration::from_millis(1);
        sh.screened(t, Duration::from_millis(150), &p);
        sh.decide(
            t,
            (Duration::from_millis(1), Stage::Reader(0)),
            (false, 0),
            &p,
        );
    }
    t += Duration::from_millis(1);
    assert_eq!(sh.screened(t, Duration::from_millis(100), &p), Shed::Refuse);
    assert_eq!(sh.screened(t, Duration::from_millis(500), &p), Shed::Drop);
    // The reader keeping up says nothing of the core's queue, nor the other way round.
    assert_eq!(
        sh.decide(
            t,
            (Duration::from_millis(100), Stage::Reader(0)),
            (false, 0),
            &p
        ),
        Shed::Admit
    );
}

/// An INVITE let in is remembered until four later ones fall in its set, not the
/// first: its retransmission is never refused while the core has its call. Before, one
/// later INVITE in its slot was enough.
/// Refusals never push out an INVITE let through: spoofed in a peer's name, a flood of
/// refused INVITEs would otherwise make a call's retransmission look new, and refuse it
/// while the core goes on with the call. A refusal takes an empty slot or an older
/// refusal's; an INVITE let through takes a refusal's before one let through.
#[test]
fn refusals_never_push_out_an_invite_let_through() {
    let ov = Overload::new(&thresholds());
    let t0 = Instant::now();
    let key = |n: u64| ((n * (RECENT / WAYS) as u64 + 7) << 16) | 1;
    let at = |s: u64| t0 + Duration::from_secs(s);
    ov.remember(key(0), at(0));
    ov.remember(key(1), at(1));
    for n in 2..40 {
        ov.remember_refused(key(n), at(n));
    }
    assert_eq!(ov.refused_here(key(0), at(60)), Some(false));
    assert_eq!(ov.refused_here(key(1), at(60)), Some(false));
    assert_eq!(
        ov.refused_here(key(39), at(60)),
        Some(true),
        "the newest refusal kept"
    );
    assert_eq!(
        ov.refused_here(key(2), at(60)),
        None,
        "older refusals made room"
    );
    // Let through: a refusal's slot goes first.
    ov.remember(key(50), at(50));
    ov.remember(key(51), at(51));
    assert!(
        [0, 1, 50, 51]
            .iter()
            .all(|&n| ov.refused_here(key(n), at(60)) == Some(false))
    );
    // A set full of INVITEs let through takes no refusal at all.
    ov.remember_refused(key(60), at(60));
    assert_eq!(ov.refused_here(key(60), at(60)), None);
    assert!(
        [0, 1, 50, 51]
            .iter()
            .all(|&n| ov.refused_here(key(n), at(60)) == Some(false))
    );
}

#[test]
fn an_invite_let_in_is_forgotten_only_after_a_set_of_later_ones() {
    let ov = Overload::new(&thresholds());
    let t0 = Instant::now();
    // Keys of one set (same bits above the stamp bits, modulo the sets).
    let key = |n: u64| ((n * (RECENT / WAYS) as u64 + 7) << 16) | 1;
    ov.remember(key(0), t0);
    for n in 1..WAYS as u64 {
        ov.remember(key(n), t0 + Duration::from_secs(n));
        assert!(ov.seen(key(0)), "after {n} later in its set");
    }
    assert!((0..WAYS as u64).all(|n| ov.seen(key(n))));
    // A fifth takes the oldest's place.
    ov.remember(key(WAYS as u64), t0 + Duration::from_secs(9));
    assert!(!ov.seen(key(0)));
    assert!((1..=WAYS as u64).all(|n| ov.seen(key(n))));
    // Seen again, an INVITE is the newest of its set.
    ov.remember(key(1), t0 + Duration::from_secs(10));
    ov.remember(key(9), t0 + Duration::from_secs(11));
    assert!(ov.seen(key(1)) && !ov.seen(key(2)));
    // A burst: one a tenth of a second, the set full and then turning over: each
    // newcomer takes the oldest's place, never a newer one's (before, with stamps by
    // the second, the newest of one second was taken as readily as the oldest).
    // Entries of different ages far apart: the oldest goes, whatever the spans (before,
    // stamps of 64 ms wrapped at 8.2 s, and one just over that looked newest).
    let ov = Overload::new(&thresholds());
    for n in 0..3u64 {
        ov.remember(key(n), t0);
    }
    ov.remember(key(3), t0 + Duration::from_millis(8000));
    ov.remember(key(4), t0 + Duration::from_millis(8500));
    assert!(ov.seen(key(3)) && ov.seen(key(4)) && !ov.seen(key(0)));
    let ov = Overload::new(&thresholds());
    let tenth = |n: u64| t0 + Duration::from_millis(100 * n);
    for n in 0..12u64 {
        ov.remember(key(n), tenth(n));
        let kept: Vec<u64> = (0..=n).filter(|&k| ov.seen(key(k))).collect();
        let want: Vec<u64> = (n.saturating_sub(WAYS as u64 - 1)..=n).collect();
        assert_eq!(kept, want, "after {n}");
    }
}

/// The table of INVITEs let in exists only while INVITEs come: retransmissions are
/// recognised until it has been idle for [`RECENT_IDLE`], then it is dropped (so the
/// allocator can give its megabyte back) and made again by the next INVITE.
#[test]
fn the_table_of_invites_let_in_is_dropped_when_idle_and_made_again() {
    let ov = Overload::new(&thresholds());
    let t0 = Instant::now();
    let invite = "INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
    let crate::sip::fast::Peek::NewInvite { head, branch } =
        crate::sip::fast::peek(invite.as_bytes())
    else {
        panic!("not a new INVITE")
    };
    let (a, b) = (
        ov.invite_key(IpAddr::from([127, 0, 0, 2]), branch, &head),
        3,
    );
    assert!(!ov.seen(a));
    ov.release_if_idle(t0 + RECENT_IDLE * 2);
    assert!(
        ov.recent.load().is_none(),
        "no table before the first INVITE"
    );
    ov.remember(a, t0);
    assert!(ov.seen(a) && !ov.seen(b));
    ov.release_if_idle(t0 + RECENT_IDLE - Duration::from_millis(1));
    assert!(ov.seen(a), "kept while an INVITE was remembered lately");
    ov.release_if_idle(t0 + RECENT_IDLE);
    assert!(ov.recent.load().is_none() && !ov.seen(a));
    ov.remember(b, t0 + RECENT_IDLE * 2);
    assert!(ov.seen(b) && !ov.seen(a));
    // A later INVITE keeps it: idleness counts from the last one remembered.
    ov.release_if_idle(t0 + RECENT_IDLE * 2 + RECENT_IDLE / 2);
    assert!(ov.seen(b));
}

#[test]
fn thresholds_refuse_then_drop_over_udp_and_always_answer_over_tcp() {
    let p = thresholds();
    let mut sh = Shedder::default();
    let mut t = Instant::now();
    let core = |d| (Duration::from_millis(d), Stage::CoreUdp);
    // Past the drop threshold, at once: dropped over UDP, refused over TCP.
    assert_eq!(sh.decide(t, core(500), (false, 0), &p), Shed::Drop);
    assert_eq!(sh.decide(t, core(500), (true, 0), &p), Shed::Refuse);
    // Past the refusal threshold, once the queue has stood a window.
    assert_eq!(sh.decide(t, core(499), (false, 0), &p), Shed::Admit);
    t += WINDOW;
    assert_eq!(sh.decide(t, core(499), (false, 0), &p), Shed::Refuse);
    assert_eq!(sh.decide(t, core(99), (false, 0), &p), Shed::Admit);
}

/// Each queue's wait is counted apart: a TCP peer's requests or a quiet listener's, which
/// wait little, do not hide a UDP queue that stands. (With one count per stage, one quick
/// TCP request every window kept the core's UDP backlog from ever being refused.)
#[test]
fn a_queue_that_keeps_up_does_not_hide_one_that_stands() {
    let p = thresholds();
    let (mut sh, mut t) = (Shedder::default(), Instant::now());
    let mut refused = 0;
    for i in 0..300 {
        t += Duration::from_millis(1);
        if i % 10 == 0 {
            // (Refused or not by the share the standing queue raises: what counts here is
            // that they do not hide it.)
            let quick = Duration::from_millis(1);
            sh.decide(t, (quick, Stage::CoreTcp), (true, 0), &p);
            sh.decide(t, (quick, Stage::Reader(1)), (false, 0), &p);
        }
        if sh.screened(t, Duration::from_millis(150), &p) == Shed::Refuse {
            refused += 1;
        }
    }
    assert!((199..=201).contains(&refused), "{refused}");
}

/// The share of new work refused grows while one queue stands, however quickly another
/// keeps up: each queue's shortest wait of a window is its own. Before, one minimum over
/// all queues was taken, and one quick TCP request per window held the share at 0 (so
/// INVITEs were refused only after each had waited past the threshold, and the share
/// metric read 0 through the overload).
#[test]
fn the_share_grows_while_one_queue_stands_whatever_another_does() {
    let p = thresholds();
    let (mut sh, mut t) = (Shedder::default(), Instant::now());
    for i in 0..1000 {
        t += Duration::from_millis(1);
        if i % 50 == 0 {
            let quick = Duration::from_millis(1);
            sh.decide(t, (quick, Stage::CoreTcp), (true, 0), &p);
        }
        sh.decide(
            t,
            (Duration::from_millis(150), Stage::CoreUdp),
            (false, 0),
            &p,
        );
    }
    assert!(sh.share() >= 0.5, "share {}", sh.share());
    assert!(sh.last_min >= Duration::from_millis(150));
}

/// An INVITE let through (or refused) is taken for a retransmission only as long as one can
/// come: after `RECENT_IDLE` the same bytes are a replay, and are decided on afresh. Before,
/// an INVITE let through long ago, replayed during overload, passed the shedder untouched
/// for as long as its slot lasted.
#[test]
fn a_remembered_invite_is_a_retransmission_only_while_one_can_come() {
    let ov = Overload::new(&thresholds());
    let t0 = Instant::now();
    let (let_in, refused) = ((7u64 << 16) | 1, (9u64 << 32) | 1);
    ov.remember(let_in, t0);
    ov.remember_refused(refused, t0);
    let before = t0 + RECENT_IDLE - Duration::from_millis(200);
    assert_eq!(ov.refused_here(let_in, before), Some(false));
    assert_eq!(ov.refused_here(refused, before), Some(true));
    let after = t0 + RECENT_IDLE;
    assert_eq!(ov.refused_here(let_in, after), None);
    assert_eq!(ov.refused_here(refused, after), None);
}

/// A slot's stamp wraps every ~35 minutes, and a busy gateway never lets the table go idle:
/// an entry left that long would read young again, and a replay of its INVITE pass the
/// shedder as a retransmission. The once-a-second sweep clears every entry within
/// `RECENT_IDLE` and 32 s; one written by a reader whose clock was read just after the
/// sweep's is not taken for stale.
#[test]
fn a_remembered_invite_is_swept_before_its_stamp_can_wrap() {
    let ov = Overload::new(&thresholds());
    let t0 = Instant::now();
    let old = (7u64 << 16) | 1;
    ov.remember(old, t0);
    // An INVITE a second (in other sets) keeps the table; the sweep runs once a second.
    for s in 1..=RECENT_IDLE.as_secs() + 32 {
        let now = t0 + Duration::from_secs(s);
        ov.remember(((s + 1000) << 20) | 1, now);
        ov.release_if_idle(now);
    }
    assert!(ov.recent.load().is_some(), "never idle");
    assert!(!ov.seen(old), "swept");
    let at = t0 + Duration::from_secs(200);
    let ahead = (9u64 << 32) | 1;
    ov.remember(ahead, at + Duration::from_millis(100));
    for _ in 0..32 {
        ov.release_if_idle(at);
    }
    assert!(ov.seen(ahead));
    assert_eq!(ov.refused_here(ahead, at), Some(false));
}

/// The share overload control refuses falls on the peer sending the most: with a carrier
/// sending nine in ten new requests and the PBX one, the PBX loses none to the share. Before,
/// each lost the same part of what it sent.
#[test]
fn the_share_refused_falls_on_the_peer_sending_the_most() {
    let ov = Overload::new(&Protect::default());
    let (big, small) = (Some(0), Some(1));
    let ip = IpAddr::from([127, 0, 0, 3]);
    assert_ne!(Overload::slot(big, ip), Overload::slot(small, ip));
    let t = ov.stand_for(Instant::now(), 350);
    let share = ov.share();
    assert!(share > 0.1 && share < 0.9, "{share}");
    // Four windows of 100 ms, a request a millisecond, none of them waiting.
    let mut refused = [0, 0];
    for i in 0..400u64 {
        let now = t + Duration::from_millis(i);
        let (peer, k) = if i % 10 == 0 { (small, 1) } else { (big, 0) };
        let from = (false, Overload::slot(peer, ip));
        let shed = ov.decide(now, (Duration::ZERO, Stage::CoreUdp), from);
        if shed != Shed::Admit {
            refused[k] += 1;
        }
    }
    assert_eq!(refused[1], 0, "the PBX lost {} of 40", refused[1]);
    assert!(refused[0] >= 40, "the carrier lost {} of 360", refused[0]);
}

/// A refusal takes a slot whose let-through is stale (past `RECENT_IDLE`, not yet swept):
/// at a carrier's steady load many sets hold only those, and a refusal written nowhere
/// let the refused INVITE's retransmission in as new once the queue drained.
#[test]
fn a_refusal_takes_a_stale_let_through_slot() {
    let ov = Overload::new(&thresholds());
    let t0 = Instant::now();
    let in_set = |n: u64| ((n * 32_768 + 5) << 16) | 1;
    for n in 0..WAYS as u64 {
        ov.remember(in_set(n), t0);
    }
    let later = t0 + RECENT_IDLE + Duration::from_secs(1);
    ov.remember_refused(in_set(9), later);
    assert_eq!(ov.refused_here(in_set(9), later), Some(true));
    // A fresh let-through is never pushed out by a refusal.
    let fresh = later + Duration::from_secs(1);
    for n in 10..10 + WAYS as u64 {
        ov.remember(in_set(n), fresh);
    }
    ov.remember_refused(in_set(20), fresh);
    assert_eq!(ov.refused_here(in_set(20), fresh), None);
    assert_eq!(ov.refused_here(in_set(10), fresh), Some(false));
}

/// Each peer has a fair-share slot of its own by its place in name order: two peers no
/// longer share one by a hash of their names (`carrier-a` and `trunk2` did), and a
/// source no profile matches lands in the slots kept for addresses.
#[test]
fn each_peer_has_a_fair_slot_of_its_own() {
    let ip = IpAddr::from([127, 0, 0, 3]);
    let slots: std::collections::HashSet<usize> = (0..fair::PEER_SLOTS)
        .map(|n| Overload::slot(Some(n), ip))
        .collect();
    assert_eq!(slots.len(), fair::PEER_SLOTS);
    // An operator's 2,000 profiles: a count each (with 224 slots, nine shared each one).
    let two_thousand: std::collections::HashSet<usize> =
        (0..2000).map(|n| Overload::slot(Some(n), ip)).collect();
    assert_eq!(two_thousand.len(), 2000);
    assert!(Overload::slot(None, ip) >= fair::PEER_SLOTS);
    assert!(Overload::slot(None, ip) < fair::SLOTS);
}
