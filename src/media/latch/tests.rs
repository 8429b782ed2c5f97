use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], port))
}

/// A packet of stream `ssrc` numbered `seq`, its timestamp 20 ms of 8 kHz audio a packet.
fn head(ssrc: u32, seq: u16) -> Option<RtpHead> {
    head_at(ssrc, seq, u32::from(seq) * 160)
}

/// A sprayer's port and a NATed phone's media port on the phone's public IP (its
/// signalling's), and a latch opened at `t0` for that leg.
fn sprayer_and_phone_on_one_ip(t0: Instant) -> (SocketAddr, SocketAddr, SourceLatch) {
    let public = std::net::IpAddr::from([203, 0, 113, 7]);
    let latch = SourceLatch::default().opened(t0, Some(public));
    (
        SocketAddr::new(public, 1),
        SocketAddr::new(public, 61000),
        latch,
    )
}

fn head_at(ssrc: u32, seq: u16, ts: u32) -> Option<RtpHead> {
    Some(RtpHead { ssrc, seq, ts })
}

#[test]
fn first_packet_latches_and_other_sources_are_dropped() {
    let t0 = Instant::now();
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, addr(4000), head(7, 1), None));
    assert_eq!(l.source(), Some(addr(4000)));
    // Same SSRC from elsewhere (a reflected or spoofed copy) never takes over while the
    // source is alive.
    for i in 0..10 {
        assert!(!l.accept(t0, addr(5000), head(7, 2 + i), None));
    }
    assert!(l.accept(t0, addr(4000), head(7, 2), None));
}

#[test]
fn a_kept_source_may_be_replaced_from_its_own_ip_for_a_while() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, addr(4000), head(7, 1), None));
    // Early media from port 4000, then the answer (same SDP) from port 4002 on the
    // same IP with a new SSRC, while 4000 was still sending.
    let mut kept = SourceLatch::default();
    kept.keep_source(&l, t0 + ms(10));
    let other_ip = SocketAddr::from(([192, 0, 2, 66], 4000));
    assert!(
        !kept.accept(t0 + ms(20), other_ip, head(9, 1), None),
        "not from elsewhere"
    );
    assert!(kept.accept(t0 + ms(40), addr(4002), head(8, 1), None));
    assert_eq!(kept.source(), Some(addr(4002)));
    // A stream with 30 ms between packets is not taken 45 ms after its last one: that is
    // no end of it.
    let mut slow = SourceLatch::default();
    assert!(slow.accept(t0, addr(4000), head(7, 1), None));
    let before = slow;
    slow.keep_source(&before, t0 + ms(10));
    assert!(slow.accept(t0 + ms(30), addr(4000), head(7, 2), None));
    assert!(!slow.accept(t0 + ms(75), addr(4002), head(8, 1), None));
    assert!(slow.accept(t0 + ms(90), addr(4000), head(7, 3), None));
    assert_eq!(slow.source(), Some(addr(4000)));
    // Nor a 60 ms stream whose next packet was lost: it is back 120 ms after the last.
    let mut ptime60 = SourceLatch::default();
    assert!(ptime60.accept(t0, addr(4000), head(7, 1), None));
    let before = ptime60;
    ptime60.keep_source(&before, t0 + ms(10));
    assert!(ptime60.accept(t0 + ms(60), addr(4000), head(7, 2), None));
    assert!(!ptime60.accept(t0 + ms(165), addr(4002), head(8, 1), None));
    assert!(ptime60.accept(t0 + ms(180), addr(4000), head(7, 4), None));
    assert_eq!(ptime60.source(), Some(addr(4000)));
    // Early media still in flight after the answer holds the answer's stream up only
    // briefly (it stopped when the trunk answered): two packets, not the 100 ms a
    // stream still running waits.
    let mut tail = SourceLatch::default();
    tail.keep_source(&l, t0 + ms(10));
    assert!(tail.accept(t0 + ms(15), addr(4000), head(7, 2), None));
    assert!(!tail.accept(t0 + ms(20), addr(4002), head(8, 1), None));
    assert!(tail.accept(t0 + ms(15) + TAIL_QUIET, addr(4002), head(8, 2), None));
    assert_eq!(tail.source(), Some(addr(4002)));
    // Once taken, the window is closed: back to the strict rule.
    assert!(!kept.accept(t0 + ms(60), addr(4004), head(5, 1), None));
    // Without an offer/answer, nothing of the kind.
    assert!(!l.accept(t0 + ms(60), addr(4002), head(8, 1), None));
    // Past the window a silent source is kept too.
    let mut late = SourceLatch::default();
    late.keep_source(&l, t0 + ms(70));
    assert!(late.accept(t0 + ms(80), addr(4000), head(7, 2), None));
    assert!(!late.accept(t0 + ms(80) + REOPENED, other_ip, head(9, 1), None));
}

/// After an offer/answer that kept the source, a stream that goes on running is not
/// taken over by another sender on its IP while it runs: only once it pauses. Before,
/// any sender on that IP (or the SDP's) took the leg at once within the window, the
/// latched stream still running.
#[test]
fn a_kept_stream_that_goes_on_is_not_taken_while_it_runs() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, addr(4000), head(7, 1), None));
    let mut kept = SourceLatch::default();
    kept.keep_source(&l, t0 + ms(10));
    let sdp = Some(addr(4000));
    // While the stream runs (a packet every 20 ms), another sender on its IP is
    // refused, in the first 100 ms too.
    for k in 1..50u16 {
        let at = t0 + ms(10 + 20 * u64::from(k));
        assert!(kept.accept(at, addr(4000), head(7, 1 + k), sdp));
        assert!(
            !kept.accept(at + ms(5), addr(4002), head(0xbad, k), sdp),
            "packet {k}"
        );
    }
    assert_eq!(kept.source(), Some(addr(4000)));
    // The stream pauses: a new one on its IP takes the leg then (still in the window).
    let last = t0 + ms(10 + 20 * 49);
    assert!(!kept.accept(last + ms(60), addr(4002), head(8, 1), sdp));
    assert!(kept.accept(last + REOPEN_QUIET, addr(4002), head(8, 2), sdp));
}

/// A leg kept at an offer/answer and silent afterwards (on hold) is not open to whoever
/// sends first, however much later: the window counts from the offer/answer. Before,
/// it started at the next packet, the attacker's, and the leg was theirs.
#[test]
fn a_kept_source_silent_on_hold_is_not_taken_by_a_late_stranger() {
    let t0 = Instant::now();
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, addr(4000), head(7, 1), None));
    let mut held = SourceLatch::default();
    held.keep_source(&l, t0 + Duration::from_secs(1));
    let stranger = SocketAddr::from(([203, 0, 113, 66], 9999));
    let later = t0 + Duration::from_secs(600);
    assert!(!held.accept(later, stranger, head(0xbad, 1), None));
    assert_eq!(held.source(), Some(addr(4000)));
    // The phone itself, back from hold, is still its source.
    assert!(held.accept(later, addr(4000), head(7, 2), None));
}

#[test]
fn an_injector_with_its_own_ssrc_never_takes_the_leg() {
    // The audit's attack: three packets with a new SSRC, then one every 20 ms, for as
    // long as it likes, even while the real source is silent.
    let t0 = Instant::now();
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, addr(4000), head(7, 100), None));
    for i in 0..500u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(i));
        assert!(
            !l.accept(now, addr(6666), head(0xbad, i), None),
            "packet {i}"
        );
    }
    assert_eq!(l.source(), Some(addr(4000)));
}

#[test]
fn a_nat_rebinding_moves_the_latch_once_the_old_source_fell_silent() {
    let t0 = Instant::now();
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, addr(4000), head(7, 100), None));
    // Not yet silent long enough: the same stream from a new port is refused.
    let soon = t0 + MOVE_AFTER_SILENCE - Duration::from_millis(1);
    assert!(!l.accept(soon, addr(4100), head(7, 101), None));
    // Silent long enough, same SSRC, sequence a little ahead: the NAT moved.
    let later = t0 + MOVE_AFTER_SILENCE;
    assert!(
        !l.accept(later, addr(4100), head(8, 101), None),
        "another SSRC"
    );
    assert!(
        !l.accept(later, addr(4100), head(7, 100), None),
        "no progress"
    );
    // 500 lost, and 200 the 2 s of silence explain (a packet every 10 ms at most).
    assert!(
        !l.accept(later, addr(4100), head(7, 100 + 701), None),
        "too far ahead"
    );
    assert!(l.accept(later, addr(4100), head(7, 103), None));
    assert_eq!(l.source(), Some(addr(4100)));
    // Sequence numbers and timestamps wrap.
    let mut w = SourceLatch::default();
    assert!(w.accept(t0, addr(4000), head_at(7, 65535, u32::MAX - 159), None));
    assert!(w.accept(later, addr(4100), head_at(7, 2, 320), None));
}

/// The stream continued from a new address must go on in time too: its timestamp moved on
/// about as much as the silence explains (at any clock rate up to 96 kHz), not anywhere
/// in 32 bits. A sender that guessed the SSRC and a sequence number still needs that.
#[test]
fn a_continued_stream_must_continue_in_time_too() {
    let t0 = Instant::now();
    let later = t0 + MOVE_AFTER_SILENCE;
    let moved = |ts: u32| {
        let mut l = SourceLatch::default();
        assert!(l.accept(t0, addr(4000), head_at(7, 100, 1_000_000), None));
        l.accept(later, addr(4100), head_at(7, 103, ts), None)
    };
    assert!(moved(1_000_000 + 2 * 8000), "2 s of 8 kHz");
    assert!(moved(1_000_000 + 2 * 90_000), "2 s of 90 kHz video");
    assert!(moved(1_000_000 - 3000), "a video frame sent out of order");
    assert!(!moved(1_000_000 + 10_000_000), "20 minutes ahead");
    assert!(!moved(1_000_000 - 500_000), "far behind");
}

/// A long `rebind_after_silence_ms`: the endpoint sent from its new address all the
/// while the latch waited (those packets were dropped), so its sequence number is that
/// far ahead when the latch may move. Before, a gap over 500 was never a continuation,
/// and with a wait of 12 s at 20 ms the call stayed one-way for good.
#[test]
fn a_long_wait_before_a_move_allows_the_packets_sent_meanwhile() {
    let t0 = Instant::now();
    let mut l = SourceLatch::with_rebind_after(Duration::from_secs(12));
    assert!(l.accept(t0, addr(4000), head(7, 100), None));
    let mut moved = false;
    for k in 1..=700u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(k));
        moved = l.accept(now, addr(4100), head(7, 100 + k), None);
        if moved {
            assert_eq!(k, 600, "moved once the wait was over");
            break;
        }
    }
    assert!(moved && l.source() == Some(addr(4100)));
}

/// Within the window after an offer/answer that kept the source, a new source from
/// another IP is not taken, however long the leg was silent (a hold): only the latched
/// source's IP or the SDP's may take it. Before, any sender took a silent leg.
#[test]
fn a_kept_source_silent_on_hold_is_not_taken_from_another_ip_in_the_window() {
    let t0 = Instant::now();
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, addr(4000), head(7, 1), None));
    let mut held = SourceLatch::default();
    held.keep_source(&l, t0 + Duration::from_secs(100));
    let stranger = SocketAddr::from(([203, 0, 113, 66], 9999));
    let soon = t0 + Duration::from_secs(103);
    assert!(!held.accept(soon, stranger, head(0xbad, 1), None));
    assert_eq!(held.source(), Some(addr(4000)));
    // The SDP's IP may.
    let sdp = SocketAddr::from(([198, 51, 100, 9], 4000));
    assert!(held.accept(
        soon,
        SocketAddr::from(([198, 51, 100, 9], 5000)),
        head(8, 1),
        Some(sdp)
    ));
}

/// After an offer/answer that moved the leg (a transfer to another phone), the old
/// phone's packets, still coming until its BYE, do not take the emptied latch from the
/// new one for a while. Before, the old phone's next packet latched and the new one was
/// dropped for the rest of the call.
#[test]
fn the_source_a_leg_moved_from_does_not_take_it_back_at_once() {
    let t0 = Instant::now();
    let (x, y) = (addr(4000), SocketAddr::from(([192, 0, 2, 80], 7000)));
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, x, head(7, 1), None));
    let mut moved = SourceLatch::default();
    moved.moved_from(&l, t0 + Duration::from_secs(5), false);
    assert!(!moved.accept(t0 + Duration::from_secs(5), x, head(7, 2), None));
    assert!(moved.accept(t0 + Duration::from_millis(5200), y, head(9, 1), None));
    assert_eq!(moved.source(), Some(y));
    // Nobody else comes: the old source is taken again once the grace is over.
    let mut alone = SourceLatch::default();
    alone.moved_from(&l, t0, false);
    assert!(!alone.accept(
        t0 + LEARNING - Duration::from_millis(1),
        x,
        head(7, 3),
        None
    ));
    assert!(alone.accept(t0 + LEARNING, x, head(7, 4), None));
}

#[test]
fn the_silence_before_a_move_is_the_profiles() {
    let t0 = Instant::now();
    let after = Duration::from_millis(500);
    let mut l = SourceLatch::with_rebind_after(after);
    assert!(l.accept(t0, addr(4000), head(7, 100), None));
    assert!(!l.accept(
        t0 + after - Duration::from_millis(1),
        addr(4100),
        head(7, 101),
        None
    ));
    assert!(l.accept(t0 + after, addr(4100), head(7, 102), None));
    // A longer setting keeps the stream where it is for longer.
    let mut slow = SourceLatch::with_rebind_after(Duration::from_secs(10));
    assert!(slow.accept(t0, addr(4000), head(7, 100), None));
    assert!(!slow.accept(t0 + MOVE_AFTER_SILENCE, addr(4100), head(7, 101), None));
}

#[test]
fn while_learning_the_sdps_own_address_takes_the_latch_from_a_stranger() {
    let t0 = Instant::now();
    let sdp = addr(4000);
    let mut l = SourceLatch::default();
    // A stranger sprays the port right after the answer and gets the first packet in.
    let stranger = SocketAddr::from(([203, 0, 113, 66], 9999));
    assert!(l.accept(t0, stranger, head(0xbad, 1), Some(sdp)));
    // The endpoint starts from its SDP's address: the latch follows it, for good.
    let soon = t0 + Duration::from_millis(300);
    assert!(l.accept(soon, sdp, head(7, 100), Some(sdp)));
    assert_eq!(l.source(), Some(sdp));
    for i in 0..200u16 {
        let now = soon + Duration::from_millis(20 * u64::from(i));
        assert!(
            !l.accept(now, stranger, head(0xbad, 2 + i), Some(sdp)),
            "packet {i}"
        );
    }
    // The SDP's IP at another port beats a stranger too, and loses to the exact address.
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, stranger, head(0xbad, 1), Some(sdp)));
    assert!(l.accept(soon, addr(4100), head(7, 1), Some(sdp)));
    assert!(!l.accept(soon, stranger, head(0xbad, 2), Some(sdp)));
    assert!(l.accept(soon, sdp, head(7, 2), Some(sdp)));
    assert!(!l.accept(soon, addr(4100), head(7, 3), Some(sdp)));
}

#[test]
fn once_learnt_even_the_sdps_address_moves_the_latch_only_by_the_rules() {
    let t0 = Instant::now();
    let sdp = addr(4000);
    let nat = SocketAddr::from(([198, 51, 100, 7], 61000));
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, nat, head(7, 1), Some(sdp)));
    // The window is counted from the first packet, whatever the source sent since.
    let later = t0 + LEARNING;
    assert!(l.accept(later, nat, head(7, 2), Some(sdp)));
    assert!(!l.accept(later, sdp, head(9, 1), Some(sdp)));
    assert_eq!(l.source(), Some(nat));
    // Without an SDP address nobody is preferred: the first packet stays.
    let mut blind = SourceLatch::default();
    assert!(blind.accept(t0, nat, head(7, 1), None));
    assert!(!blind.accept(t0, sdp, head(9, 1), None));
}

#[test]
fn the_latched_source_may_restart_its_stream() {
    let t0 = Instant::now();
    let mut l = SourceLatch::default();
    assert!(l.accept(t0, addr(4000), head(7, 1), None));
    assert!(l.accept(t0, addr(4000), head(8, 5000), None));
    assert_eq!(l.source(), Some(addr(4000)));
}

/// An empty latch takes a first source from anywhere only for [`OPEN_TO_ANYONE`] after it
/// was opened (an offer/answer) or the call was answered; after that only a source on the
/// SDP's IP or the signalling's. Before, a leg that stayed silent (listen-only, camera
/// off, answered on hold) was the first sprayer's at any time.
#[test]
fn a_silent_leg_is_not_the_first_sprayers_after_the_window() {
    let t0 = Instant::now();
    let sdp = SocketAddr::from(([192, 0, 2, 10], 4000));
    let nat_ip = std::net::IpAddr::from([198, 51, 100, 7]);
    let stranger = SocketAddr::from(([203, 0, 113, 66], 9999));
    let late = t0 + OPEN_TO_ANYONE;
    let mut l = SourceLatch::default().opened(t0, Some(nat_ip));
    assert!(!l.accept(late, stranger, head(9, 1), Some(sdp)));
    assert_eq!(l.source(), None);
    // The SDP's IP, or the signalling's (an endpoint behind NAT), still latch.
    assert!(l.accept(late, SocketAddr::new(nat_ip, 61000), head(7, 1), Some(sdp)));
    let mut l = SourceLatch::default().opened(t0, Some(nat_ip));
    assert!(l.accept(
        late,
        SocketAddr::from(([192, 0, 2, 10], 4100)),
        head(7, 1),
        Some(sdp)
    ));
    // Within the window anyone may be first (an SBC sending from an address no SDP names).
    let mut l = SourceLatch::default().opened(t0, None);
    assert!(l.accept(
        late - Duration::from_millis(1),
        stranger,
        head(9, 1),
        Some(sdp)
    ));
    // The answer opens a leg that has sent nothing again; a latched one stays latched.
    let mut l = SourceLatch::default().opened(t0, None);
    l.answered(late + Duration::from_secs(60));
    assert!(l.accept(
        late + Duration::from_secs(61),
        stranger,
        head(9, 1),
        Some(sdp)
    ));
    l.answered(late + Duration::from_secs(62));
    let other = SocketAddr::from(([203, 0, 113, 67], 9999));
    assert!(!l.accept(late + Duration::from_secs(63), other, head(5, 1), Some(sdp)));
}

/// A source on the signalling's IP ranks with the SDP's IP: behind NAT it is the endpoint,
/// so within [`LEARNING`] it takes the latch back from a stranger that sent first, and the
/// old source a port-only move (same host) left is not held up (a NATed phone that changed
/// only its SDP's port); one a move to another host left is, even on the signalling's IP
/// (behind one NAT, the phone a transfer moved the leg away from).
#[test]
fn the_signalling_ip_ranks_as_the_endpoints() {
    let t0 = Instant::now();
    let sdp = SocketAddr::from(([10, 1, 2, 3], 4000));
    let nat = SocketAddr::from(([198, 51, 100, 7], 61000));
    let stranger = SocketAddr::from(([203, 0, 113, 66], 9999));
    let mut l = SourceLatch::default().opened(t0, Some(nat.ip()));
    assert!(l.accept(t0, stranger, head(9, 1), Some(sdp)));
    assert!(l.accept(t0 + Duration::from_millis(20), nat, head(7, 1), Some(sdp)));
    assert_eq!(l.source(), Some(nat));
    // The SDP moves to another private port: the NAT's address goes on at once.
    let mut moved = SourceLatch::default().opened(t0, Some(nat.ip()));
    moved.moved_from(&l, t0 + Duration::from_secs(1), true);
    let new_sdp = SocketAddr::from(([10, 1, 2, 3], 4002));
    let mut other_host = moved;
    other_host.moved_from(&l, t0 + Duration::from_secs(1), false);
    assert!(!other_host.accept(
        t0 + Duration::from_millis(1020),
        nat,
        head(7, 2),
        Some(SocketAddr::from(([10, 1, 2, 4], 4000)))
    ));
    assert!(moved.accept(
        t0 + Duration::from_millis(1020),
        nat,
        head(7, 2),
        Some(new_sdp)
    ));
}

/// A stream continued (same SSRC, sequence just ahead) after a silence moves the latch only
/// from the latched IP (a NAT's new port), the SDP's or the signalling's: the far peer is
/// relayed the stream's SSRC and sequence, and must not move this leg to itself or to a
/// victim of its choice. Before, any address continuing the stream took the leg.
#[test]
fn a_continued_stream_moves_the_latch_only_from_an_address_of_the_legs() {
    let t0 = Instant::now();
    let sdp = SocketAddr::from(([192, 0, 2, 10], 4000));
    let signalling = std::net::IpAddr::from([198, 51, 100, 7]);
    let mut l = SourceLatch::default().opened(t0, Some(signalling));
    assert!(l.accept(t0, sdp, head(7, 1), Some(sdp)));
    let silent = t0 + MOVE_AFTER_SILENCE;
    let far_peer = SocketAddr::from(([203, 0, 113, 66], 9999));
    assert!(!l.accept(silent, far_peer, head(7, 2), Some(sdp)));
    assert_eq!(l.source(), Some(sdp));
    // A new port on the latched IP, or the signalling's IP, continues it.
    assert!(l.accept(
        silent,
        SocketAddr::from(([192, 0, 2, 10], 4100)),
        head(7, 3),
        Some(sdp)
    ));
    let later = silent + MOVE_AFTER_SILENCE * 2;
    assert!(l.accept(
        later,
        SocketAddr::new(signalling, 5000),
        head(7, 4),
        Some(sdp)
    ));
}

/// A sprayer faking the NATed phone's public IP (its signalling's) from another port may
/// win the first packet; while learning, the phone's own stream takes the leg once the
/// sprayer's sparse packets pause, and keeps it: the sprayer's next packet is no stream's.
/// Before, equal rank kept the first sender for good: no audio either way for the call.
#[test]
fn a_stream_from_the_signallings_ip_takes_the_leg_from_a_sparse_sprayer_there() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let (sprayer, phone, mut l) = sprayer_and_phone_on_one_ip(t0);
    assert!(l.accept(t0 + ms(10), sprayer, head(99, 1), None));
    assert!(
        !l.accept(t0 + ms(30), phone, head(7, 1), None),
        "not at once"
    );
    assert!(l.accept(t0 + ms(130), phone, head(7, 2), None));
    for (i, at) in [150, 170, 190].into_iter().enumerate() {
        assert!(l.accept(t0 + ms(at), phone, head(7, 3 + i as u16), None));
    }
    assert!(!l.accept(t0 + ms(330), sprayer, head(99, 2), None));
    assert_eq!(l.source(), Some(phone));
    // A phone latched first and talking is not taken by a sprayer when it pauses briefly.
    let (_, _, mut l) = sprayer_and_phone_on_one_ip(t0);
    for (i, at) in [0, 20, 40].into_iter().enumerate() {
        assert!(l.accept(t0 + ms(at), phone, head(7, 1 + i as u16), None));
    }
    assert!(!l.accept(t0 + ms(200), sprayer, head(99, 1), None));
    assert_eq!(l.source(), Some(phone));
}

/// While open to anyone, an empty latch takes no source on a private network or loopback
/// for a leg whose signalling is public (a NATed phone: its packets come from its public
/// address): a spoof from there would have the far leg's media sent into our own network.
/// A leg on a private network itself still takes one.
#[test]
fn an_outside_legs_latch_takes_no_private_or_loopback_source() {
    let t0 = Instant::now();
    let public = std::net::IpAddr::from([203, 0, 113, 7]);
    let private = SocketAddr::from(([10, 0, 0, 5], 11211));
    let mut l = SourceLatch::default().opened(t0, Some(public));
    assert!(!l.accept(t0, private, head(9, 1), None));
    assert!(!l.accept(t0, SocketAddr::from(([127, 0, 0, 1], 9)), head(9, 1), None));
    assert!(!l.accept(t0, SocketAddr::from(([100, 64, 1, 1], 9)), head(9, 1), None));
    assert_eq!(l.source(), None);
    let elsewhere = SocketAddr::from(([198, 51, 100, 9], 40000));
    assert!(
        l.accept(t0, elsewhere, head(9, 1), None),
        "a public one, as before"
    );
    let mut lan = SourceLatch::default().opened(t0, Some("10.0.0.1".parse().unwrap()));
    assert!(lan.accept(t0, private, head(9, 1), None));
}

/// A source is judged sparse over its last three packets, not its last gap: a talking
/// phone's last two packets read in one batch (one instant) do not make it a sprayer whose
/// leg another port of its IP may take, and a sprayer sending each port a pair a few ms
/// apart does not pass for a voice stream that keeps the leg from the phone. Before, the
/// first was taken (a zero gap read as a single packet) and the second kept.
#[test]
fn sparseness_is_judged_over_three_packets_not_the_last_gap() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let (sprayer, phone, mut l) = sprayer_and_phone_on_one_ip(t0);
    for (i, at) in [0, 20, 40, 40].into_iter().enumerate() {
        assert!(l.accept(t0 + ms(at), phone, head(7, 1 + i as u16), None));
    }
    assert!(!l.accept(t0 + ms(200), sprayer, head(99, 1), None));
    assert_eq!(l.source(), Some(phone));
    let (_, _, mut l) = sprayer_and_phone_on_one_ip(t0);
    assert!(l.accept(t0 + ms(10), sprayer, head(99, 1), None));
    assert!(l.accept(t0 + ms(15), sprayer, head(99, 2), None));
    assert!(l.accept(t0 + ms(130), phone, head(7, 1), None));
    for (i, at) in [150, 170, 190].into_iter().enumerate() {
        assert!(l.accept(t0 + ms(at), phone, head(7, 2 + i as u16), None));
    }
    assert!(!l.accept(t0 + ms(1010), sprayer, head(99, 3), None));
    assert!(!l.accept(t0 + ms(1015), sprayer, head(99, 4), None));
    assert_eq!(l.source(), Some(phone));
}
