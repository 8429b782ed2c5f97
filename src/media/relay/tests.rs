use super::*;

#[test]
fn a_leg_over_its_packet_rate_is_cut_for_the_rest_of_the_second() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let src = sa("192.0.2.10:4000");
    let mut accepted = 0;
    let mut over = 0;
    for _ in 0..1500 {
        match r.route(t0(), Dir::AtoB, false, src, &rtp(7)) {
            Route::Accept(_) => accepted += 1,
            Route::OverRate => over += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((accepted, over), (1000, 500));
    // The other direction has its own count.
    let back = r.route(t0(), Dir::BtoA, false, sa("198.51.100.20:5000"), &rtp(9));
    assert!(matches!(back, Route::Accept(_)), "{back:?}");
    // The next second the leg is relayed again.
    let later = t0() + std::time::Duration::from_secs(1);
    let next = r.route(later, Dir::AtoB, false, src, &rtp(7));
    assert!(matches!(next, Route::Accept(_)), "{next:?}");
}

/// An offer/answer, even one that changes nothing (an UPDATE a peer sends after each
/// answer), does not give the leg a fresh second: before, each one reset the count and a
/// peer relayed about 1,000 packets per exchange, tens of thousands a second.
#[test]
fn an_offer_answer_does_not_reset_the_legs_packet_rate() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let src = sa("192.0.2.10:4000");
    let mut accepted = 0;
    for round in 0..5 {
        // The same SDP again, and one that moves the leg's port: neither resets the count.
        let mut p = pair(Latch::Any);
        if round % 2 == 1 {
            p.a_remote = Some(sa("192.0.2.10:4002"));
        }
        r.update(&p, t0());
        for _ in 0..1000 {
            if matches!(
                r.route(t0(), Dir::AtoB, false, src, &rtp(7)),
                Route::Accept(_)
            ) {
                accepted += 1;
            }
        }
    }
    assert_eq!(
        accepted, 1000,
        "one second's allowance, whatever the signalling"
    );
}

#[test]
fn strangers_packets_do_not_use_up_the_legs_rate() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let real = sa("192.0.2.10:4000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, real, &rtp(1)),
        Route::Accept(_)
    ));
    // A stranger sprays the port with another SSRC: dropped, and not counted.
    for _ in 0..1500 {
        assert_eq!(
            r.route(t0(), Dir::AtoB, false, sa("203.0.113.66:9999"), &rtp(0xbad)),
            Route::Drop
        );
    }
    let next = r.route(t0(), Dir::AtoB, false, real, &rtp(1));
    assert!(matches!(next, Route::Accept(_)), "{next:?}");
}

#[test]
fn sdp_ip_without_a_usable_address_keeps_the_last_one_and_never_opens_up() {
    // A leg whose SDP never named a usable address: nobody is its source.
    let mut blind = pair(Latch::SdpIp);
    blind.a_remote = None;
    let mut r = StreamRoute::new(&blind, t0());
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("203.0.113.66:9999"), &rtp(1)),
        Route::Drop
    );
    // Old-style hold (`c=0.0.0.0`, so no address) after a real one: still that IP only.
    let mut r = StreamRoute::new(&pair(Latch::SdpIp), t0());
    r.update(&blind, t0());
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("203.0.113.66:9999"), &rtp(1)),
        Route::Drop
    );
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, sa("192.0.2.10:4000"), &rtp(1)),
        Route::Accept(_)
    ));
}

/// A packet that claims one of this host's own IPv6 addresses is no remote leg's source,
/// whatever the latch would take and whatever the leg's SDP names (a caller may name our
/// address, then spoof it): from outside it is a spoof (the kernel drops IPv4 ones, not
/// IPv6), and the relay would answer into whatever listens there. A leg on this host (its
/// signalling from one of our addresses, or over loopback) is heard from any of them: its
/// packets to our media address come from an address of ours.
#[test]
fn a_source_on_an_address_of_this_host_is_taken_only_for_a_leg_on_this_host() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut p = pair(Latch::Any);
    // The caller's SDP names our address; its signalling comes from outside.
    p.a_remote = Some(sa("[2001:db8::1]:53"));
    p.a_signalling = Some(ip("2001:db8::10"));
    p.host_ips = [ip("2001:db8::1"), ip("2001:db8::2"), ip("198.51.100.7")].into();
    p.b_signalling = Some(ip("2001:db8::2"));
    let mut r = StreamRoute::new(&p, t0());
    for ours in ["[2001:db8::1]:53", "[2001:db8::2]:5060"] {
        assert_eq!(
            r.route(t0(), Dir::AtoB, false, sa(ours), &rtp(1)),
            Route::Drop,
            "{ours}"
        );
    }
    let phone = sa("[2001:db8::10]:4000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, phone, &rtp(1)),
        Route::Accept(_)
    ));
    // The callee signals from an address of ours: its RTP to our media address comes from
    // another of them, not the one its SDP names.
    let pbx = sa("[2001:db8::1]:7000");
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, pbx, &rtp(2)),
        Route::Accept(Some(phone))
    );
    // Over loopback too; and an IPv4 source is the kernel's to judge.
    let mut lo = p.clone();
    lo.a_signalling = Some(ip("::1"));
    let mut r = StreamRoute::new(&lo, t0());
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, sa("[2001:db8::2]:7000"), &rtp(1)),
        Route::Accept(_)
    ));
    let mut r = StreamRoute::new(&p, t0());
    assert!(matches!(
        r.route(
            t0(),
            Dir::AtoB,
            false,
            sa("[::ffff:198.51.100.7]:7000"),
            &rtp(1)
        ),
        Route::Accept(_)
    ));
}

fn t0() -> Instant {
    thread_local!(static T0: Instant = Instant::now());
    T0.with(|t| *t)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn rtp(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0u8; 172];
    p[0] = 0x80;
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// An RTCP receiver report without report blocks.
const RR: [u8; 8] = [0x80, 201, 0, 1, 0, 0, 0, 7];

/// A receiver report from the sender of stream `ssrc`.
fn rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

fn pair(latch: Latch) -> RelayPair {
    RelayPair {
        a_rebind_after: crate::media::MOVE_AFTER_SILENCE,
        b_rebind_after: crate::media::MOVE_AFTER_SILENCE,
        ..RelayPair::plain(
            30000,
            30002,
            (Some(sa("192.0.2.10:4000")), Some(sa("198.51.100.20:5000"))),
            latch,
        )
    }
}

#[test]
fn rtp_goes_to_the_far_legs_sdp_until_it_latches_then_to_its_source() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let a_nat = sa("203.0.113.7:61000");
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a_nat, &rtp(1)),
        Route::Accept(Some(sa("198.51.100.20:5000")))
    );
    // The callee answers: toward the caller's latched (NAT) address, not its SDP.
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, sa("198.51.100.20:5000"), &rtp(2)),
        Route::Accept(Some(a_nat))
    );
    // A stranger with the latched SSRC is dropped.
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("203.0.113.99:1234"), &rtp(1)),
        Route::Drop
    );
}

/// A leg with `latch = "sdp-ip"` that waits for its source (its SDP names an address that is
/// no destination, one of this host's) is sent nothing first; its packets from its SDP's IP
/// are taken, and the far leg's go where they came from.
#[test]
fn an_sdp_ip_leg_that_waits_for_its_source_is_heard_from_its_sdp_ip() {
    let mut p = pair(Latch::SdpIp);
    p.b_remote = Some(sa("192.0.2.99:5000"));
    p.b_wait_for_source = true;
    let mut r = StreamRoute::new(&p, t0());
    let a = sa("192.0.2.10:4000");
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a, &rtp(1)),
        Route::Accept(None)
    );
    let b = sa("192.0.2.99:5002");
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, b, &rtp(2)),
        Route::Accept(Some(a))
    );
    assert_eq!(
        r.route(
            t0() + std::time::Duration::from_millis(20),
            Dir::AtoB,
            false,
            a,
            &rtp(1)
        ),
        Route::Accept(Some(b))
    );
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, sa("192.0.2.98:5000"), &rtp(3)),
        Route::Drop,
        "not from another IP"
    );
}

/// A leg on an address the relay does not send to first (this host's: an SBC beside the
/// gateway) is still one host: when a re-INVITE moves only its SDP port and it goes on
/// sending from the old one, its packets are taken at once. Before, it was judged as a
/// private address behind NAT (no host), and its packets were dropped for 3 s.
#[test]
fn a_leg_on_an_address_of_this_host_keeps_its_source_when_only_its_port_moves() {
    let mut p = pair(Latch::SdpIp);
    p.b_remote = Some(sa("192.0.2.99:5000"));
    p.b_wait_for_source = true;
    p.b_signalling = Some("192.0.2.99".parse().unwrap());
    let mut r = StreamRoute::new(&p, t0());
    let b = sa("192.0.2.99:5000");
    let a = sa("192.0.2.10:4000");
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, b, &rtp(2)),
        Route::Accept(Some(a))
    );
    let later = t0() + std::time::Duration::from_secs(20);
    p.b_remote = Some(sa("192.0.2.99:5004"));
    r.update(&p, later);
    assert_eq!(
        r.route(
            later + std::time::Duration::from_millis(20),
            Dir::BtoA,
            false,
            b,
            &rtp(2)
        ),
        Route::Accept(Some(a))
    );
}

/// A leg whose SDP names an address that is no destination (127.0.0.1) while its
/// signalling comes from elsewhere (a remote phone) names no host of its own: a packet from
/// that address does not outrank the source latched from its signalling's IP. Before, the
/// SDP's exact address was preferred, and whatever sent from it there took the leg.
#[test]
fn a_remote_legs_sdp_naming_an_address_of_ours_is_no_source_to_prefer() {
    let mut p = pair(Latch::Any);
    p.b_remote = Some(sa("127.0.0.1:5000"));
    p.b_wait_for_source = true;
    p.b_signalling = Some("203.0.113.9".parse().unwrap());
    let mut r = StreamRoute::new(&p, t0());
    let real = sa("203.0.113.9:6000");
    let a = sa("192.0.2.10:4000");
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, real, &rtp(2)),
        Route::Accept(Some(a))
    );
    let later = t0() + std::time::Duration::from_millis(100);
    assert_eq!(
        r.route(later, Dir::BtoA, false, sa("127.0.0.1:5000"), &rtp(3)),
        Route::Drop
    );
}

/// A PBX on this host that signals over loopback and names the host's address in its SDP
/// (no destination: not sent to first) is that host: its RTP is taken from that address
/// even when it starts after the first seconds. Judged as a stranger's address instead, it
/// was never taken then, and the leg stayed silent.
#[test]
fn a_pbx_on_this_host_signalling_over_loopback_is_heard_from_its_sdp_address() {
    let mut p = pair(Latch::SdpIp);
    p.b_remote = Some(sa("192.0.2.99:5000"));
    p.b_wait_for_source = true;
    p.b_signalling = Some("127.0.0.1".parse().unwrap());
    let mut r = StreamRoute::new(&p, t0());
    let late = t0() + crate::media::latch::OPEN_TO_ANYONE + std::time::Duration::from_secs(5);
    assert_eq!(
        r.route(late, Dir::BtoA, false, sa("192.0.2.99:5000"), &rtp(2)),
        Route::Accept(Some(sa("192.0.2.10:4000")))
    );
}

/// A leg that waits for its source (behind NAT, its SDP private) is sent nothing, RTP or
/// RTCP, until its own packets come; then everything goes to where they came from.
#[test]
fn a_leg_that_waits_for_its_source_gets_nothing_before_it_latches() {
    let mut p = pair(Latch::Any);
    p.b_remote = Some(sa("10.1.2.3:5000"));
    p.b_wait_for_source = true;
    p.rtcp_mux = false;
    let mut r = StreamRoute::new(&p, t0());
    let a = sa("192.0.2.10:4000");
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a, &rtp(1)),
        Route::Accept(None)
    );
    assert!(matches!(
        r.route(t0(), Dir::AtoB, true, sa("192.0.2.10:4001"), &rr(1)),
        Route::Control(None) | Route::Forward { to: None, .. }
    ));
    let b_nat = sa("198.51.100.20:61000");
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, b_nat, &rtp(2)),
        Route::Accept(Some(sa("192.0.2.10:4000")))
    );
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a, &rtp(1)),
        Route::Accept(Some(b_nat))
    );
}

#[test]
fn sdp_ip_latch_drops_other_ips_and_rtcp_follows_the_rtp_ip() {
    let mut r = StreamRoute::new(&pair(Latch::SdpIp), t0());
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("203.0.113.7:4000"), &rtp(1)),
        Route::Drop
    );
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("192.0.2.10:4002"), &rtp(1)),
        Route::Accept(Some(sa("198.51.100.20:5000")))
    );
    // RTCP from the latched IP goes to the far leg's SDP port + 1 until it sends RTCP.
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, sa("192.0.2.10:4003"), &rr(1)),
        Route::Control(Some(sa("198.51.100.20:5001")))
    );
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, sa("192.0.2.11:4003"), &RR),
        Route::Drop
    );
}

#[test]
fn an_update_that_moves_a_leg_relearns_it_and_one_that_does_not_keeps_its_source() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let first = sa("203.0.113.7:61000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, first, &rtp(1)),
        Route::Accept(_)
    ));
    // A refresh with the same SDP while the source sends: whoever sprays the port
    // afterwards gets nothing (learning is long over), the latched source goes on.
    let later = t0() + std::time::Duration::from_secs(10);
    let just_before = later - std::time::Duration::from_millis(20);
    assert!(matches!(
        r.route(just_before, Dir::AtoB, false, first, &rtp(1)),
        Route::Accept(_)
    ));
    r.update(&pair(Latch::Any), just_before);
    let stranger = sa("198.51.100.66:7000");
    assert_eq!(
        r.route(later, Dir::AtoB, false, stranger, &rtp(50)),
        Route::Drop
    );
    assert!(matches!(
        r.route(later, Dir::AtoB, false, first, &rtp(2)),
        Route::Accept(_)
    ));
    // A NATed phone back from a long hold on a new public port, with a new SSRC: the
    // kept source has been silent, so the new one takes over (its SDP did not change).
    let held = RelayPair {
        flowing: false,
        ..pair(Latch::Any)
    };
    r.update(&held, later + std::time::Duration::from_secs(1));
    let resumed = t0() + std::time::Duration::from_secs(300);
    r.update(&pair(Latch::Any), resumed);
    let new_port = sa("203.0.113.7:61002");
    assert!(matches!(
        r.route(resumed, Dir::AtoB, false, new_port, &rtp(77)),
        Route::Accept(_)
    ));
    // Past the window a stranger is not taken, silent source or not.
    let quiet = resumed + std::time::Duration::from_secs(30);
    assert_eq!(
        r.route(quiet, Dir::AtoB, false, stranger, &rtp(99)),
        Route::Drop
    );
    // The leg's SDP moves: learnt again.
    let mut moved_sdp = pair(Latch::Any);
    moved_sdp.a_remote = Some(sa("192.0.2.99:4100"));
    r.update(&moved_sdp, quiet);
    let moved = sa("203.0.113.8:62000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, moved, &rtp(1)),
        Route::Accept(_)
    ));
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, sa("198.51.100.20:5000"), &rtp(2)),
        Route::Accept(Some(moved))
    );
}

/// A leg already latched is reopened (a better-ranked source may take it for a while) by a
/// resume only: the other party's re-INVITEs, and this leg's answers to them, leave its
/// latch as it was. Before, every update reopened it, so the other party could keep it open
/// with a re-INVITE every few seconds.
#[test]
fn only_a_resume_reopens_a_latched_leg() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let first = sa("203.0.113.7:61000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, first, &rtp(1)),
        Route::Accept(_)
    ));
    // Silent for a while (a hold without music, DTX); then the far party re-INVITEs and
    // the leg answers it with the same SDP.
    let later = t0() + std::time::Duration::from_secs(300);
    r.update(&pair(Latch::Any), later);
    r.update(&pair(Latch::Any), later);
    let same_ip = sa("203.0.113.7:61002");
    assert_eq!(
        r.route(later, Dir::AtoB, false, same_ip, &rtp(77)),
        Route::Drop,
        "not opened by the other party's offer"
    );
    assert!(matches!(
        r.route(later, Dir::AtoB, false, first, &rtp(2)),
        Route::Accept(_)
    ));
    // On hold, then resumed, its source quiet: opened.
    let quiet = later + std::time::Duration::from_secs(60);
    let held = RelayPair {
        flowing: false,
        ..pair(Latch::Any)
    };
    r.update(&held, quiet);
    r.update(&pair(Latch::Any), quiet);
    assert!(matches!(
        r.route(quiet, Dir::AtoB, false, same_ip, &rtp(77)),
        Route::Accept(_)
    ));
}

#[test]
fn malformed_packets_are_dropped_before_latching() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let src = sa("192.0.2.10:4000");
    // The audit's packet: an extension header that claims more than the packet holds.
    let mut bad = rtp(1)[..12].to_vec();
    bad[0] = 0x90;
    bad.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x1F, 0x00, 0x00, 0x00]);
    assert_eq!(r.route(t0(), Dir::AtoB, false, src, &bad), Route::Malformed);
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, src, &[0x80, 0]),
        Route::Malformed
    );
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, src, &[0x80, 201, 0, 9]),
        Route::Malformed
    );
    // Nothing was latched by them: the first good packet still decides.
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, src, &rtp(1)),
        Route::Accept(_)
    ));
}

#[test]
fn srtp_passes_with_what_rtp_checks_would_refuse_and_is_forwarded_unread() {
    let mut p = pair(Latch::Any);
    p.kind = StreamKind::Srtp;
    let mut r = StreamRoute::new(&p, t0());
    let src = sa("192.0.2.10:4000");
    // P set, and the last byte (ciphertext or the authentication tag) is no padding count.
    let mut srtp = rtp(7);
    srtp[0] |= 0x20;
    *srtp.last_mut().unwrap() = 0xff;
    assert!(check_rtp(&srtp).is_err());
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, src, &srtp),
        Route::Forward {
            to: Some(sa("198.51.100.20:5000")),
            rtcp: false
        }
    );
    // SRTCP: an encrypted compound, the E flag and index, a 10-byte tag after the first
    // packet's length; plain RTCP checks refuse it.
    let mut srtcp = RR.to_vec();
    srtcp.extend_from_slice(&[0x12; 20]);
    srtcp.extend_from_slice(&[0x80, 0, 0, 1]);
    srtcp.extend_from_slice(&[0xab; 10]);
    assert!(check_rtcp(&srtcp).is_err());
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, sa("192.0.2.10:4001"), &srtcp),
        Route::Forward {
            to: Some(sa("198.51.100.20:5001")),
            rtcp: true
        }
    );
    // A header that lies about its extension is still refused, and a stranger is still
    // not the leg's source.
    let mut bad = rtp(7)[..12].to_vec();
    bad[0] = 0x90;
    bad.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x09]);
    assert_eq!(r.route(t0(), Dir::AtoB, false, src, &bad), Route::Malformed);
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("203.0.113.66:9999"), &rtp(0xbad)),
        Route::Drop
    );
    assert_eq!(
        r.route(
            t0(),
            Dir::AtoB,
            true,
            src,
            &[0x80, 201, 0, 9, 0, 0, 0, 7, 0, 0, 0, 1]
        ),
        Route::Malformed
    );
}

#[test]
fn t38_datagrams_are_latched_by_address_and_never_move_after_a_silence() {
    let mut p = pair(Latch::Any);
    p.kind = StreamKind::Datagram;
    let mut r = StreamRoute::new(&p, t0());
    let fax = sa("192.0.2.10:4000");
    // UDPTL: a sequence number, then the IFP; no RTP version bits.
    let udptl = [0x00, 0x01, 0x06, 0xd0, 0x02, 0x00, 0x00, 0x00];
    assert!(check_rtp(&udptl).is_err());
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, fax, &udptl),
        Route::Forward {
            to: Some(sa("198.51.100.20:5000")),
            rtcp: false
        }
    );
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, sa("198.51.100.20:5000"), &udptl),
        Route::Forward {
            to: Some(fax),
            rtcp: false
        }
    );
    // Long after a silence, a stranger sending the same bytes is no continuation.
    let later = t0() + std::time::Duration::from_secs(60);
    assert_eq!(
        r.route(later, Dir::AtoB, false, sa("203.0.113.66:9999"), &udptl),
        Route::Drop
    );
    assert_eq!(r.route(later, Dir::AtoB, false, fax, &[]), Route::Malformed);
    assert_eq!(
        r.route(
            later,
            Dir::AtoB,
            false,
            fax,
            &[0u8; crate::media::MAX_PACKET + 1]
        ),
        Route::Malformed
    );
    // A re-INVITE back to audio: the same ports read RTP again.
    r.update(&pair(Latch::Any), later);
    assert_eq!(
        r.route(later, Dir::AtoB, false, fax, &udptl),
        Route::Malformed
    );
    assert!(matches!(
        r.route(later, Dir::AtoB, false, fax, &rtp(7)),
        Route::Accept(_)
    ));
}

#[test]
fn rtcp_multiplexed_on_the_rtp_port_is_sent_on_as_rtcp_toward_the_far_rtp_port() {
    let mut muxed = pair(Latch::Any);
    muxed.rtcp_mux = true;
    let mut r = StreamRoute::new(&muxed, t0());
    let a = sa("192.0.2.10:4000");
    let b = sa("198.51.100.20:5000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, a, &rtp(7)),
        Route::Accept(_)
    ));
    // A receiver report on the RTP port: RTCP, toward the far leg's RTP address.
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a, &RR),
        Route::Control(Some(b))
    );
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, b, &RR),
        Route::Control(Some(a))
    );
    // It is checked as RTCP: a report whose length runs past the datagram is refused.
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a, &[0x80, 201, 0, 9, 0, 0, 0, 7]),
        Route::Malformed
    );
    // From another IP than the latched RTP source: not the leg's.
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("203.0.113.66:4000"), &RR),
        Route::Drop
    );
    // Multiplexed SRTCP on an SRTP stream passes unread.
    let mut p = muxed.clone();
    p.kind = StreamKind::Srtp;
    let mut r = StreamRoute::new(&p, t0());
    let mut srtcp = RR.to_vec();
    srtcp.extend_from_slice(&[0x80, 0, 0, 1, 0xab, 0xab, 0xab, 0xab]);
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a, &srtcp),
        Route::Forward {
            to: Some(b),
            rtcp: true
        }
    );
    // Without multiplexing agreed, RTCP's packet types on the RTP port are neither RTCP
    // nor RTP: RFC 3551 reserves payload types 72-76 against that very confusion, so a
    // report a phone sends there is dropped, not relayed as media with its fields taken
    // for the stream's (before, payload type 72 with the marker bit passed as RTP). The
    // rest of the range RFC 5761 keeps from RTP only when muxing is RTP here.
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let mut marked = rtp(7);
    marked[1] = 0x80 | 72;
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a, &marked),
        Route::Malformed
    );
    assert_eq!(r.route(t0(), Dir::AtoB, false, a, &RR), Route::Malformed);
    marked[1] = 0x80 | 77;
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a, &marked),
        Route::Accept(Some(b))
    );
}

#[test]
fn the_rtcp_port_of_a_datagram_stream_relays_only_beside_its_latched_source() {
    let mut p = pair(Latch::Any);
    p.kind = StreamKind::Datagram;
    let mut r = StreamRoute::new(&p, t0());
    let stranger = sa("203.0.113.66:9999");
    // Before the leg's first packet nobody can use the RTCP port (and set where the far
    // leg's packets to it go).
    assert_eq!(r.route(t0(), Dir::AtoB, true, stranger, &RR), Route::Drop);
    let fax = sa("192.0.2.10:4000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, fax, &[0, 1, 2]),
        Route::Forward { rtcp: false, .. }
    ));
    assert_eq!(r.route(t0(), Dir::AtoB, true, stranger, &RR), Route::Drop);
    assert!(matches!(
        r.route(t0(), Dir::AtoB, true, sa("192.0.2.10:4001"), &RR),
        Route::Forward { rtcp: true, .. }
    ));
}

#[test]
fn a_new_callee_is_learnt_from_nothing() {
    // SdpIp: a failover's next callee, whose SDP is not known yet, is not the failed
    // callee's IP.
    let mut r = StreamRoute::new(&pair(Latch::SdpIp), t0());
    let failed = sa("198.51.100.20:5000");
    assert!(matches!(
        r.route(t0(), Dir::BtoA, false, failed, &rtp(1)),
        Route::Accept(_)
    ));
    let mut next = pair(Latch::SdpIp);
    next.b_remote = None;
    next.callee = 1;
    r.update(&next, t0());
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, failed, &rtp(2)),
        Route::Drop
    );
    // Any: the failed callee's packets, latched while its SDP was already forgotten, are
    // not kept as the next callee's source.
    let mut forgotten = pair(Latch::Any);
    forgotten.b_remote = None;
    let mut r = StreamRoute::new(&forgotten, t0());
    assert!(matches!(
        r.route(t0(), Dir::BtoA, false, failed, &rtp(1)),
        Route::Accept(_)
    ));
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("192.0.2.10:4000"), &rtp(9)),
        Route::Accept(Some(failed))
    );
    forgotten.callee = 1;
    forgotten.b_heard = false;
    r.update(&forgotten, t0());
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("192.0.2.10:4000"), &rtp(10)),
        Route::Accept(None),
        "the caller's RTP goes to no one until the next callee is known"
    );
    // The failed callee's last packets take nothing before the next callee's SDP.
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, failed, &rtp(3)),
        Route::Drop
    );
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("192.0.2.10:4000"), &rtp(11)),
        Route::Accept(None)
    );
    // Its SDP came (with no address the gateway may send to): its packets are learnt.
    forgotten.b_heard = true;
    r.update(&forgotten, t0());
    let next = sa("198.51.100.30:6000");
    assert!(matches!(
        r.route(t0(), Dir::BtoA, false, next, &rtp(7)),
        Route::Accept(_)
    ));
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, sa("192.0.2.10:4000"), &rtp(12)),
        Route::Accept(Some(next))
    );
}

/// A leg on hold (its SDP kept, silent since) is not taken by a stranger's packet minutes
/// later.
#[test]
fn a_silent_leg_kept_by_an_offer_answer_is_not_taken_later() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let phone = sa("203.0.113.7:61000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, phone, &rtp(1)),
        Route::Accept(_)
    ));
    r.update(&pair(Latch::Any), t0() + std::time::Duration::from_secs(1));
    let later = t0() + std::time::Duration::from_secs(300);
    assert_eq!(
        r.route(later, Dir::AtoB, false, sa("198.51.100.66:7000"), &rtp(50)),
        Route::Drop
    );
}

/// RTCP before the leg's RTP is latched comes only from its SDP's IP: a stranger's would
/// set where the far leg's reports go.
#[test]
fn rtcp_before_the_rtp_latch_is_taken_only_from_the_sdps_ip() {
    let p = pair(Latch::Any);
    let mut r = StreamRoute::new(&p, t0());
    let stranger = sa("198.51.100.66:7001");
    assert_eq!(r.route(t0(), Dir::AtoB, true, stranger, &RR), Route::Drop);
    let a_sdp = p.a_remote.expect("the pair's A address");
    let own = SocketAddr::new(a_sdp.ip(), a_sdp.port() + 1);
    assert!(matches!(
        r.route(t0(), Dir::AtoB, true, own, &RR),
        Route::Control(_)
    ));
    // The far leg's reports go to the leg's own RTCP address, not the stranger's.
    let b_sdp = p.b_remote.expect("the pair's B address");
    let b_rtcp = SocketAddr::new(b_sdp.ip(), b_sdp.port() + 1);
    assert_eq!(
        r.route(t0(), Dir::BtoA, true, b_rtcp, &RR),
        Route::Control(Some(own))
    );
}

/// A leg whose SDP names its RTCP port (`a=rtcp`, RFC 3605) gets the far leg's reports
/// there until its own show where it is, even on the last port (no RTP + 1 needed); before,
/// they went to the RTP port + 1, where it does not listen.
#[test]
fn rtcp_goes_to_the_port_the_legs_sdp_named_until_its_own_is_heard() {
    let mut p = pair(Latch::Any);
    p.b_remote = Some(sa("198.51.100.20:65535"));
    p.b_rtcp_port = Some(5099);
    let mut r = StreamRoute::new(&p, t0());
    let a_rtcp = sa("192.0.2.10:4001");
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, a_rtcp, &RR),
        Route::Control(Some(sa("198.51.100.20:5099")))
    );
    // Its own reports, from the port it named, are taken and are where its next go.
    let b_rtcp = sa("198.51.100.20:5099");
    assert_eq!(
        r.route(t0(), Dir::BtoA, true, b_rtcp, &RR),
        Route::Control(Some(a_rtcp))
    );
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, a_rtcp, &RR),
        Route::Control(Some(b_rtcp))
    );
}

/// An old-style hold (the leg's SDP names no address) does not empty its latch: a stranger
/// sending first is not taken.
#[test]
fn an_old_style_hold_keeps_the_legs_source() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let phone = sa("192.0.2.10:4000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, phone, &rtp(1)),
        Route::Accept(_)
    ));
    let mut held = pair(Latch::Any);
    held.a_remote = None;
    let later = t0() + std::time::Duration::from_secs(20);
    r.update(&held, later);
    assert_eq!(
        r.route(
            later + std::time::Duration::from_secs(11),
            Dir::AtoB,
            false,
            sa("198.51.100.66:7000"),
            &rtp(50)
        ),
        Route::Drop
    );
    // The resume names the address of before: still the phone's leg.
    let resumed = later + std::time::Duration::from_secs(60);
    r.update(&pair(Latch::Any), resumed);
    assert_eq!(
        r.route(
            resumed + std::time::Duration::from_secs(11),
            Dir::AtoB,
            false,
            sa("198.51.100.66:7000"),
            &rtp(51)
        ),
        Route::Drop
    );
    assert!(matches!(
        r.route(
            resumed + std::time::Duration::from_secs(12),
            Dir::AtoB,
            false,
            phone,
            &rtp(1)
        ),
        Route::Accept(_)
    ));
}

/// A stream turned off relays nothing, whoever sends; what it drops is counted as
/// `inactive`, not as a stranger's (`foreign_source`): a peer's own packets sent before it
/// heard the call's BYE come there, and were read as spoofing.
#[test]
fn a_stream_turned_off_relays_nothing() {
    let mut off = pair(Latch::Any);
    off.active = false;
    let mut r = StreamRoute::new(&off, t0());
    for (dir, src) in [
        (Dir::AtoB, "192.0.2.10:4000"),
        (Dir::BtoA, "198.51.100.20:5000"),
    ] {
        assert_eq!(r.route(t0(), dir, false, sa(src), &rtp(1)), Route::Inactive);
        assert_eq!(r.route(t0(), dir, true, sa(src), &RR), Route::Inactive);
    }
}

/// RTCP toward a leg whose SDP put RTP on port 65535 goes nowhere (there is no port above
/// it), never to port 0.
#[test]
fn rtcp_toward_rtp_on_the_last_port_goes_nowhere() {
    let mut p = pair(Latch::Any);
    p.b_remote = Some(sa("198.51.100.20:65535"));
    let mut r = StreamRoute::new(&p, t0());
    let a_sdp = p.a_remote.unwrap();
    let own = SocketAddr::new(a_sdp.ip(), a_sdp.port() + 1);
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, own, &RR),
        Route::Control(None)
    );
}

/// RTCP from another port on the leg's IP (a second phone behind the same NAT): it neither
/// uses up the leg's RTP allowance nor takes where the far leg's reports go once the leg's
/// own RTCP source is learnt. Before, 1,000 such reports a second silenced the leg's RTP
/// (`OverRate`), and each one moved the far leg's reports to its port.
#[test]
fn rtcp_from_another_port_on_the_legs_ip_neither_silences_nor_redirects_it() {
    let p = pair(Latch::Any);
    let mut r = StreamRoute::new(&p, t0());
    let phone = sa("203.0.113.7:61000");
    let phone_rtcp = sa("203.0.113.7:61001");
    let neighbour = sa("203.0.113.7:5555");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, phone, &rtp(1)),
        Route::Accept(_)
    ));
    assert!(matches!(
        r.route(t0(), Dir::AtoB, true, phone_rtcp, &rr(1)),
        Route::Control(_)
    ));
    for _ in 0..1000 {
        assert_eq!(r.route(t0(), Dir::AtoB, true, neighbour, &RR), Route::Drop);
    }
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, phone, &rtp(1)),
        Route::Accept(_)
    ));
    let b_sdp = p.b_remote.expect("the pair's B address");
    let b_rtcp = SocketAddr::new(b_sdp.ip(), b_sdp.port() + 1);
    assert_eq!(
        r.route(t0(), Dir::BtoA, true, b_rtcp, &RR),
        Route::Control(Some(phone_rtcp))
    );
    // The leg's own RTCP has an allowance of its own, which a flood of it uses up, not
    // the RTP's.
    let mut flood = StreamRoute::new(&p, t0());
    assert!(matches!(
        flood.route(t0(), Dir::AtoB, false, phone, &rtp(1)),
        Route::Accept(_)
    ));
    let over = (0..1000)
        .filter(|_| flood.route(t0(), Dir::AtoB, true, phone_rtcp, &rr(1)) == Route::OverRate)
        .count();
    assert_eq!(over, 1000 - MAX_RTCP_PER_SECOND as usize);
    assert!(matches!(
        flood.route(t0(), Dir::AtoB, false, phone, &rtp(1)),
        Route::Accept(_)
    ));
}

/// A NAT that rebinds the leg's RTP maps its RTCP anew: the RTCP source is learnt again
/// (the leg's reports, named by its SSRC, are taken from whichever port).
#[test]
fn rtcp_is_learnt_again_when_the_rtp_source_moves() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let t = t0();
    let (rtp1, rtcp1) = (sa("203.0.113.7:61000"), sa("203.0.113.7:61001"));
    assert!(matches!(
        r.route(t, Dir::AtoB, false, rtp1, &rtp(1)),
        Route::Accept(_)
    ));
    assert!(matches!(
        r.route(t, Dir::AtoB, true, rtcp1, &rr(1)),
        Route::Control(_)
    ));
    // Silent, then the same stream from a new mapping.
    let later = t + crate::media::MOVE_AFTER_SILENCE;
    let mut moved = rtp(1);
    moved[2..4].copy_from_slice(&3u16.to_be_bytes());
    let (rtp2, rtcp2) = (sa("203.0.113.7:62000"), sa("203.0.113.7:62007"));
    assert!(matches!(
        r.route(later, Dir::AtoB, false, rtp2, &moved),
        Route::Accept(_)
    ));
    assert!(matches!(
        r.route(later, Dir::AtoB, true, rtcp2, &rr(1)),
        Route::Control(_)
    ));
    assert_eq!(
        r.route(later, Dir::BtoA, true, sa("198.51.100.20:5001"), &RR),
        Route::Control(Some(rtcp2))
    );
}

/// A neighbour behind the same NAT that sends RTCP before the leg's first report (which
/// comes seconds in, from a port that is rarely RTP + 1) does not keep the far leg's
/// reports: it does not know the leg's SSRC. Before, the first RTCP sender on the IP kept
/// the route for the rest of the call, and the leg's own reports were dropped.
#[test]
fn rtcp_is_the_legs_by_its_ssrc_whoever_sends_first() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let phone = sa("203.0.113.7:61000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, phone, &rtp(1)),
        Route::Accept(_)
    ));
    let neighbour = sa("203.0.113.7:5555");
    assert_eq!(r.route(t0(), Dir::AtoB, true, neighbour, &RR), Route::Drop);
    let phone_rtcp = sa("203.0.113.7:61234");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, true, phone_rtcp, &rr(1)),
        Route::Control(_)
    ));
    assert_eq!(
        r.route(t0(), Dir::BtoA, true, sa("198.51.100.20:5001"), &RR),
        Route::Control(Some(phone_rtcp))
    );
}

/// A video leg sends retransmissions (RTX) or FEC under SSRCs of their own from the same
/// port: a report naming any SSRC the source sent lately is the leg's, whichever SSRC its
/// last packet had. Before, a report naming the media SSRC was dropped whenever an RTX
/// packet came last. One naming an SSRC the source never sent is still not taken, nor one
/// it sent before the last few others.
#[test]
fn rtcp_naming_any_ssrc_the_source_sent_lately_is_the_legs() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let phone = sa("203.0.113.7:61000");
    for ssrc in [1, 2, 1, 2] {
        assert!(matches!(
            r.route(t0(), Dir::AtoB, false, phone, &rtp(ssrc)),
            Route::Accept(_)
        ));
    }
    let phone_rtcp = sa("203.0.113.7:61001");
    for ssrc in [1, 2] {
        assert!(
            matches!(
                r.route(t0(), Dir::AtoB, true, phone_rtcp, &rr(ssrc)),
                Route::Control(_)
            ),
            "{ssrc}"
        );
    }
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, phone_rtcp, &rr(3)),
        Route::Drop
    );
    // Three others since: the oldest is forgotten (bounded, as a latch is copied per packet).
    for ssrc in [3, 4, 5, 6] {
        r.route(t0(), Dir::AtoB, false, phone, &rtp(ssrc));
    }
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, phone_rtcp, &rr(1)),
        Route::Drop
    );
}

/// A transfer: the leg's SDP moves to another phone while the old one still sends until
/// its BYE. The old phone's packets do not take the emptied latch from the new one.
#[test]
fn after_a_move_the_old_phone_does_not_take_the_leg_from_the_new_one() {
    let p = pair(Latch::Any);
    let mut r = StreamRoute::new(&p, t0());
    let (x, y) = (sa("203.0.113.7:61000"), sa("198.51.100.77:40000"));
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, x, &rtp(1)),
        Route::Accept(_)
    ));
    let mut moved = p.clone();
    moved.a_remote = Some(sa("10.1.1.50:40000"));
    r.update(&moved, t0());
    assert_eq!(r.route(t0(), Dir::AtoB, false, x, &rtp(1)), Route::Drop);
    let soon = t0() + std::time::Duration::from_millis(300);
    assert!(matches!(
        r.route(soon, Dir::AtoB, false, y, &rtp(9)),
        Route::Accept(_)
    ));
    assert_eq!(r.route(soon, Dir::AtoB, false, x, &rtp(1)), Route::Drop);
}

/// An offer/answer that changes only the SDP's port (a trunk's 200 naming another port than
/// its 183), from an SBC that sends from one port whatever its SDP says: its packets go on
/// being taken at once. (The old-source rule is for a leg moved to another host.)
#[test]
fn a_port_only_move_does_not_hold_up_the_same_sender() {
    let p = pair(Latch::Any);
    let mut r = StreamRoute::new(&p, t0());
    let sbc = sa("192.0.2.10:7000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, sbc, &rtp(1)),
        Route::Accept(_)
    ));
    let mut moved = p.clone();
    moved.a_remote = Some(sa("192.0.2.10:4002"));
    r.update(&moved, t0());
    let soon = t0() + std::time::Duration::from_millis(20);
    assert!(matches!(
        r.route(soon, Dir::AtoB, false, sbc, &rtp(1)),
        Route::Accept(_)
    ));
}

/// A port-only move to a new stream on the same IP (a media server that now sends from
/// another port, with a new SSRC) while the old stream still runs: the old stream latches
/// first and keeps the leg while it sends (a sender that reaches the port cannot take it),
/// but once it has gone quiet the new one, on the new SDP's IP, takes it for good. Before
/// the old stream kept the leg for the rest of the call once it had latched.
#[test]
fn a_new_stream_after_a_port_only_move_takes_the_leg_once_the_old_one_is_quiet() {
    let p = pair(Latch::Any);
    let mut r = StreamRoute::new(&p, t0());
    let (old, new) = (sa("192.0.2.10:7000"), sa("192.0.2.10:7002"));
    let stranger = sa("203.0.113.66:9999");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, old, &rtp(1)),
        Route::Accept(_)
    ));
    let mut moved = p.clone();
    moved.a_remote = Some(sa("192.0.2.10:4002"));
    r.update(&moved, t0());
    let ms = std::time::Duration::from_millis;
    assert!(matches!(
        r.route(t0() + ms(5), Dir::AtoB, false, old, &rtp(1)),
        Route::Accept(_)
    ));
    assert_eq!(
        r.route(t0() + ms(20), Dir::AtoB, false, new, &rtp(2)),
        Route::Drop
    );
    for at in [25, 45] {
        assert!(matches!(
            r.route(t0() + ms(at), Dir::AtoB, false, old, &rtp(1)),
            Route::Accept(_)
        ));
    }
    // A sender on the SDP's IP (spoofed, say) takes nothing while the old stream runs (a
    // packet every 20 ms: no spray's).
    let spoof = sa("192.0.2.10:9999");
    assert_eq!(
        r.route(t0() + ms(500), Dir::AtoB, false, spoof, &rtp(9)),
        Route::Drop
    );
    assert!(matches!(
        r.route(t0() + ms(1000), Dir::AtoB, false, old, &rtp(1)),
        Route::Accept(_)
    ));
    // The old stream ended at 1 s; quiet long enough, a stranger is still not taken.
    let quiet = t0() + ms(1000) + crate::media::MOVE_AFTER_SILENCE;
    assert_eq!(
        r.route(quiet, Dir::AtoB, false, stranger, &rtp(9)),
        Route::Drop
    );
    assert!(matches!(
        r.route(quiet, Dir::AtoB, false, new, &rtp(2)),
        Route::Accept(_)
    ));
    assert_eq!(
        r.route(quiet + ms(20), Dir::AtoB, false, old, &rtp(1)),
        Route::Drop
    );
    assert!(matches!(
        r.route(quiet + ms(40), Dir::AtoB, false, new, &rtp(2)),
        Route::Accept(_)
    ));
}

/// A leg behind NAT (its SDP names a private address, `wait_for_source`): a packet from that
/// private address can only be a spoof (or a host of our own network), so it is not
/// preferred over the NAT's address, and the far leg's media never goes there. Before, it
/// ranked first while the latch learnt and took the leg from the real endpoint.
#[test]
fn a_natted_legs_private_sdp_address_is_no_source_to_prefer() {
    let mut p = pair(Latch::Any);
    let private = sa("10.1.2.3:4000");
    p.a_remote = Some(private);
    p.a_wait_for_source = true;
    p.a_signalling = Some("203.0.113.7".parse().unwrap());
    let mut r = StreamRoute::new(&p, t0());
    let nat = sa("203.0.113.7:61000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, nat, &rtp(1)),
        Route::Accept(_)
    ));
    let soon = t0() + std::time::Duration::from_millis(100);
    assert_eq!(
        r.route(soon, Dir::AtoB, false, private, &rtp(9)),
        Route::Drop
    );
    // The far leg's media still goes to the NAT's address.
    assert_eq!(
        r.route(soon, Dir::BtoA, false, sa("198.51.100.20:5000"), &rtp(2)),
        Route::Accept(Some(nat))
    );
}

/// The answer opens a leg that has sent nothing to a first source from anywhere again (an
/// endpoint that starts sending once answered, after a long ring); without it, after the
/// window only the SDP's or the signalling's IP would be taken.
#[test]
fn the_answer_opens_a_leg_that_has_sent_nothing() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let sbc = sa("203.0.113.50:7000");
    let ring = t0() + std::time::Duration::from_secs(60);
    assert_eq!(r.route(ring, Dir::BtoA, false, sbc, &rtp(3)), Route::Drop);
    r.answered(ring);
    assert!(matches!(
        r.route(ring, Dir::BtoA, false, sbc, &rtp(3)),
        Route::Accept(_)
    ));
}

/// An update that does not move a leg (the other leg's re-INVITE, a refresh, a refused
/// offer) leaves a leg that has sent nothing as open as it was: a silent leg is not opened
/// to the next sprayer at every refresh. Before, each update reopened it for 10 s.
#[test]
fn an_update_that_keeps_a_silent_leg_does_not_reopen_it() {
    let p = pair(Latch::Any);
    let mut r = StreamRoute::new(&p, t0());
    let s = std::time::Duration::from_secs;
    r.update(&p, t0() + s(20));
    let sprayer = sa("203.0.113.66:9999");
    assert_eq!(
        r.route(t0() + s(21), Dir::BtoA, false, sprayer, &rtp(3)),
        Route::Drop
    );
    // A move of the leg (its SDP names another host) opens it afresh.
    let mut moved = p.clone();
    moved.b_remote = Some(sa("198.51.100.30:5000"));
    r.update(&moved, t0() + s(22));
    assert!(matches!(
        r.route(t0() + s(23), Dir::BtoA, false, sprayer, &rtp(3)),
        Route::Accept(_)
    ));
}

/// The answer makes a leg latched while ringing learn afresh: a sprayer that sent first
/// during the ring loses the leg to the endpoint's own packets at its SDP's address.
#[test]
fn the_answer_lets_the_endpoint_take_back_a_leg_a_sprayer_latched_while_ringing() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    let sprayer = sa("203.0.113.66:9999");
    let real = sa("192.0.2.10:4000");
    let ms = std::time::Duration::from_millis;
    assert!(matches!(
        r.route(t0() + ms(10), Dir::AtoB, false, sprayer, &rtp(9)),
        Route::Accept(_)
    ));
    let answer = t0() + ms(30_000);
    assert_eq!(
        r.route(answer, Dir::AtoB, false, real, &rtp(1)),
        Route::Drop
    );
    r.answered(answer);
    assert!(matches!(
        r.route(answer + ms(20), Dir::AtoB, false, real, &rtp(1)),
        Route::Accept(_)
    ));
}

/// A NATed leg's RTCP before its RTP latches is not taken from its private SDP address
/// either: a spoof from there would send the far leg's reports into our own network.
#[test]
fn a_natted_legs_private_sdp_address_sends_no_rtcp_that_is_taken() {
    let mut p = pair(Latch::Any);
    p.a_remote = Some(sa("10.1.2.3:4000"));
    p.a_wait_for_source = true;
    let mut r = StreamRoute::new(&p, t0());
    let sr = [
        0x80u8, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(
        r.route(t0(), Dir::AtoB, true, sa("10.1.2.3:4001"), &sr),
        Route::Drop
    );
}

/// A stream whose media flows both ways again (a resume from hold at the same address)
/// opens a leg that has sent nothing: a phone answered on hold behind a proxy, its RTP
/// from an address neither its SDP nor its signalling names, is latched once it resumes.
/// Updates that change nothing of it do not open it (above).
#[test]
fn a_legs_resume_opens_it_again() {
    let mut p = pair(Latch::Any);
    p.flowing = false;
    let mut r = StreamRoute::new(&p, t0());
    let s = std::time::Duration::from_secs;
    let nat = sa("203.0.113.80:41000");
    assert_eq!(
        r.route(t0() + s(30), Dir::BtoA, false, nat, &rtp(3)),
        Route::Drop
    );
    // The same SDP again (a refresh of the hold) opens nothing.
    r.update(&p, t0() + s(30));
    assert_eq!(
        r.route(t0() + s(31), Dir::BtoA, false, nat, &rtp(3)),
        Route::Drop
    );
    let mut resumed = p.clone();
    resumed.flowing = true;
    r.update(&resumed, t0() + s(31));
    assert!(matches!(
        r.route(t0() + s(32), Dir::BtoA, false, nat, &rtp(3)),
        Route::Accept(_)
    ));
}

/// A move holds its old source off through the next update too: the offer that moved the
/// leg, then the other leg's answer a moment later. Before, the answer's update kept the
/// emptied latch without the hold-off, and the old phone, still sending until its BYE,
/// took the leg from the new one.
#[test]
fn a_move_holds_its_old_source_off_across_the_answers_update() {
    let p = pair(Latch::Any);
    let mut r = StreamRoute::new(&p, t0());
    let old = sa("192.0.2.10:4000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, old, &rtp(1)),
        Route::Accept(_)
    ));
    let ms = std::time::Duration::from_millis;
    let mut moved = p.clone();
    moved.a_remote = Some(sa("192.0.2.77:4000"));
    r.update(&moved, t0() + ms(100));
    r.update(&moved, t0() + ms(120));
    assert_eq!(
        r.route(t0() + ms(140), Dir::AtoB, false, old, &rtp(1)),
        Route::Drop
    );
    assert!(matches!(
        r.route(
            t0() + ms(150),
            Dir::AtoB,
            false,
            sa("192.0.2.77:4000"),
            &rtp(5)
        ),
        Route::Accept(_)
    ));
}

/// A leg behind NAT (its SDP private) whose SDP moves to another port of the same private
/// address: a private address names no host (two phones behind two NATs may both be
/// 192.168.1.100), so the old source is held off as after any move, for the learning
/// window, and then latches again. The cost of telling two such phones apart: a NATed
/// phone that changes only its SDP's port loses up to that window of audio.
#[test]
fn a_natted_legs_port_only_move_holds_its_old_source_off_for_the_window() {
    let mut p = pair(Latch::Any);
    p.a_remote = Some(sa("192.168.1.100:4000"));
    p.a_wait_for_source = true;
    // (Behind NAT: its signalling comes from a public address.)
    p.a_signalling = Some("203.0.113.7".parse().unwrap());
    let mut r = StreamRoute::new(&p, t0());
    let nat = sa("203.0.113.7:61000");
    assert!(matches!(
        r.route(t0(), Dir::AtoB, false, nat, &rtp(1)),
        Route::Accept(_)
    ));
    let mut moved = p.clone();
    moved.a_remote = Some(sa("192.168.1.100:4002"));
    let ms = std::time::Duration::from_millis;
    r.update(&moved, t0() + ms(100));
    assert_eq!(
        r.route(t0() + ms(200), Dir::AtoB, false, nat, &rtp(1)),
        Route::Drop
    );
    let after = t0() + ms(100) + crate::media::latch::LEARNING;
    assert!(matches!(
        r.route(after, Dir::AtoB, false, nat, &rtp(1)),
        Route::Accept(_)
    ));
}

/// A leg whose peer's media networks are set (`[media] networks`) takes no packet from
/// outside them, whatever its latch would: with `latch = "any"` the first sender from
/// elsewhere does not become the leg, one from inside does, and once it is latched a source
/// outside them is refused before the latch is asked (its NAT-rebind rule included).
#[test]
fn a_leg_with_media_networks_takes_no_source_outside_them() {
    let mut p = pair(Latch::Any);
    p.a_networks = Some(std::sync::Arc::from(vec![
        "192.0.2.0/24".parse::<ipnet::IpNet>().unwrap(),
    ]));
    let mut r = StreamRoute::new(&p, t0());
    for outsider in ["203.0.113.66:9999", "[2001:db8::66]:4000"] {
        let from = sa(outsider);
        let rtp_out = r.route(t0(), Dir::AtoB, false, from, &rtp(0xbad));
        assert_eq!(rtp_out, Route::OutsideNetworks, "{outsider}");
        // Nor its RTCP.
        let rtcp_out = r.route(t0(), Dir::AtoB, true, from, &rr(0xbad));
        assert_eq!(rtcp_out, Route::OutsideNetworks, "{outsider}");
    }
    // From inside (another port than its SDP's: a NAT).
    let inside = sa("192.0.2.77:6000");
    let first = r.route(t0(), Dir::AtoB, false, inside, &rtp(1));
    assert_eq!(first, Route::Accept(Some(sa("198.51.100.20:5000"))));
    let later = t0() + std::time::Duration::from_secs(5);
    let moved = r.route(later, Dir::AtoB, false, sa("203.0.113.66:6000"), &rtp(1));
    assert_eq!(moved, Route::OutsideNetworks);
    assert!(matches!(
        r.route(later, Dir::AtoB, false, inside, &rtp(1)),
        Route::Accept(_)
    ));
    // The other leg has no networks: anyone may still be its first source.
    assert!(matches!(
        r.route(t0(), Dir::BtoA, false, sa("203.0.113.5:7000"), &rtp(2)),
        Route::Accept(_)
    ));
}

/// A source that is no destination (the unspecified address, which the kernel sends to as
/// loopback; multicast; port 0) is never latched, on an open leg, before its first packet:
/// the far leg's packets would go there. Before, `[::]:p` became the leg's source and the
/// relay sent the far leg's RTP into a service on this host's `[::1]:p`.
#[test]
fn a_source_that_is_no_destination_is_never_latched() {
    let mut r = StreamRoute::new(&pair(Latch::Any), t0());
    for bad in [
        "[::]:40000",
        "0.0.0.0:40000",
        "[2001:db8::1]:0",
        "224.0.0.1:4000",
        "[ff02::1]:4000",
    ] {
        assert_eq!(
            r.route(t0(), Dir::AtoB, false, sa(bad), &rtp(1)),
            Route::Drop,
            "{bad}"
        );
    }
    // The leg's own first packet is then taken, and the far leg's go to it.
    let a = sa("203.0.113.7:61000");
    assert_eq!(
        r.route(t0(), Dir::AtoB, false, a, &rtp(1)),
        Route::Accept(Some(sa("198.51.100.20:5000")))
    );
    assert_eq!(
        r.route(t0(), Dir::BtoA, false, sa("198.51.100.20:5000"), &rtp(2)),
        Route::Accept(Some(a))
    );
}
