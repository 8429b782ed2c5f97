use super::*;

const AS: Signer = Signer::As;

fn keys() -> Keys {
    Keys::parse("0123456789abcdef-current\n\n  0123456789abcdef-old  \n").unwrap()
}

#[test]
fn keys_are_lines_of_at_least_16_characters_and_never_printed() {
    let k = keys();
    assert_eq!(k.0[1].0, b"0123456789abcdef-old");
    assert_eq!(format!("{k:?}"), "Keys(2 hidden)");
    assert!(Keys::parse("").is_err());
    assert!(Keys::parse("short\n").is_err());
    assert!(Keys::parse(&"0123456789abcdef\n".repeat(5)).is_err());
}

#[test]
fn what_we_sign_verifies_and_gives_back_the_message() {
    let k = keys();
    let s = sign(b"STATUS: id=a\n", AS, &k, 1_000);
    let text = String::from_utf8(s.clone()).unwrap();
    assert!(text.starts_with("STATUS: id=a;ts=1000;sig="), "{text}");
    assert!(text.ends_with('\n'));
    let v = verify(&s, AS, &k, 1_010).unwrap();
    assert_eq!(v.message, b"STATUS: id=a");
    // Upper-case hex is the same MAC; a CRLF line end is one too.
    let (signed, hex) = text.trim_end().split_once(";sig=").unwrap();
    let upper = format!("{signed};sig={}\r\n", hex.to_ascii_uppercase());
    assert_eq!(verify(upper.as_bytes(), AS, &k, 1_000).unwrap().mac, v.mac);
}

#[test]
fn a_known_mac_matches_an_independent_implementation() {
    // Computed with Python's hmac module over "as:" and the signed text: the vector an
    // application server can check its own code against (README, "Signed datagrams").
    let k = Keys::parse("0123456789abcdef").unwrap();
    let s = sign(b"CANCEL: id=x", AS, &k, 1_764_500_000);
    assert_eq!(
        String::from_utf8(s).unwrap(),
        "CANCEL: id=x;ts=1764500000;sig=fa0d6e439dd9a11b10160679d3a997e45bca7e1eafe0874e99e8182dbf4616c2"
    );
}

#[test]
fn a_datagram_cannot_be_sent_back_to_its_signer() {
    let k = keys();
    let ours = sign(b"RESPONSE: id=a;result=connected", Signer::Gateway, &k, 5);
    assert!(verify(&ours, Signer::Gateway, &k, 5).is_ok());
    assert_eq!(verify(&ours, AS, &k, 5), Err(SigError::BadSignature));
}

#[test]
fn a_message_signed_by_an_older_key_is_taken() {
    let old = Keys::parse("0123456789abcdef-old").unwrap();
    let s = sign(b"STATUS: id=a", AS, &old, 50);
    assert!(verify(&s, AS, &keys(), 50).is_ok());
}

#[test]
fn forged_unsigned_stale_and_malformed_are_told_apart() {
    let k = keys();
    let s = sign(b"REQUEST: id=a;user1=1;user2=2", AS, &k, 10_000);
    let v = |b: &[u8], now| verify(b, AS, &k, now).map(|v| v.ts);
    // Any byte changed breaks the MAC: the number, the ts, the MAC itself.
    let forged = String::from_utf8(s.clone())
        .unwrap()
        .replace("user2=2", "user2=3");
    assert_eq!(v(forged.as_bytes(), 10_000), Err(SigError::BadSignature));
    let moved = String::from_utf8(s.clone())
        .unwrap()
        .replace("ts=10000", "ts=10001");
    assert_eq!(v(moved.as_bytes(), 10_000), Err(SigError::BadSignature));
    let other = Keys::parse("another-key-of-16-chars").unwrap();
    assert_eq!(verify(&s, AS, &other, 10_000), Err(SigError::BadSignature));
    assert_eq!(v(&s, 10_000 + MAX_SKEW_S + 1), Err(SigError::Stale));
    assert_eq!(v(&s, 10_000 - MAX_SKEW_S - 1), Err(SigError::Stale));
    assert!(v(&s, 10_000 + MAX_SKEW_S).is_ok());
    assert_eq!(v(b"STATUS: id=a", 0), Err(SigError::Unsigned));
    assert_eq!(v(b"STATUS: id=a;sig=00", 0), Err(SigError::Unsigned));
    for bad in [
        "STATUS: id=a;ts=1;sig=",
        "STATUS: id=a;ts=1;sig=zz",
        "STATUS: id=a;ts=1;sig=\u{e9}\u{e9}",
        ";ts=;sig=0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert_eq!(v(bad.as_bytes(), 1), Err(SigError::BadSignature), "{bad}");
    }
    assert_eq!(v(b"", 0), Err(SigError::Unsigned));
    assert_eq!(v(b";sig=", 0), Err(SigError::Unsigned));
}

const AS_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

#[test]
fn what_became_of_a_request_is_kept_while_its_ts_is_good_and_bounded() {
    let mut r = Replays::default();
    let t0 = Instant::now();
    let later = t0 + Replays::HOLD;
    assert_eq!(r.seen(t0, 1_000, &[1; 32]), None);
    r.remember(t0, (1_000, AS_IP), [1; 32], Seen::Refused("over_rate"));
    r.remember(t0, (1_000, AS_IP), [1; 32], Seen::Placed);
    // A copy refused afterwards (its id taken, from another source) changes nothing.
    r.remember(t0, (1_000, AS_IP), [1; 32], Seen::Refused("duplicate_id"));
    assert_eq!(r.len(), 1);
    assert_eq!(
        r.seen(later, 1_000 + MAX_SKEW_S, &[1; 32]),
        Some(Seen::Placed)
    );
    // A wall clock set back keeps it (its ts would be good again).
    assert_eq!(r.seen(later, 900, &[1; 32]), Some(Seen::Placed));
    // Once no reading could take its ts, it goes.
    assert_eq!(r.seen(later, 1_001 + MAX_SKEW_S, &[1; 32]), None);
    assert!(r.is_empty());
    // Twenty sources: each takes its share (a sixteenth, with so many), the whole table;
    // the last ones find no room.
    for i in 0..Replays::MAX + 10 {
        let mut mac = [0; 32];
        mac[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let src = IpAddr::from([192, 0, 2, 1 + (i % 20) as u8]);
        r.remember(t0, (5_000, src), mac, Seen::Placed);
    }
    assert_eq!(r.len(), Replays::MAX);
    assert!(r.is_full());
    // The burst over, a later look forgets it all and gives its room back: nothing of the
    // peak is kept through the quiet after it.
    r.forget(later, 5_001 + MAX_SKEW_S);
    assert!(r.is_empty());
    assert!(r.arrival_capacity() <= 1024, "{}", r.arrival_capacity());
}

/// One source holds at most its share: the others still find room, and its own
/// entries, once gone, give it room again.
#[test]
fn one_source_holds_at_most_its_share() {
    let mut r = Replays::default();
    let t0 = Instant::now();
    let mac = |i: usize| {
        let mut m = [0; 32];
        m[..8].copy_from_slice(&(i as u64).to_le_bytes());
        m
    };
    for i in 0..Replays::SHARE + 10 {
        r.remember(t0, (1_000, AS_IP), mac(i), Seen::Placed);
    }
    assert_eq!(r.held_by(AS_IP), Replays::SHARE);
    assert!(r.is_full_for(AS_IP) && !r.is_full());
    let other = IpAddr::from([192, 0, 2, 99]);
    assert!(!r.is_full_for(other));
    r.remember(t0, (1_000, other), mac(usize::MAX), Seen::Placed);
    assert_eq!((r.held_by(other), r.len()), (1, Replays::SHARE + 1));
    // A share is half of what the others leave: the second source, flooding too, takes a
    // quarter beside the first's half, and a third source still finds an eighth. (Failed
    // before: each had half, and two filled the table.)
    assert!(r.is_full_for(AS_IP));
    for i in 0..Replays::MAX {
        r.remember(t0, (1_000, other), mac(1 << 40 | i), Seen::Placed);
    }
    assert_eq!(r.held_by(other), Replays::MAX / 4);
    let third = IpAddr::from([192, 0, 2, 100]);
    assert!(!r.is_full_for(third) && !r.is_full());
    assert_eq!(r.share_for(third), Replays::MAX / 8);
    // A minute later all are gone, and so is the count.
    r.seen(t0 + Replays::HOLD, 1_000 + MAX_SKEW_S + 1, &[0xff; 32]);
    assert!(r.is_empty());
    assert_eq!((r.held_by(AS_IP), r.held_by(other)), (0, 0));
}

/// Requests whose `ts` lags (a sender's clock 25 s behind) among ones on time: each goes
/// the window's width after it was seen, so a steady rate never fills the table.
#[test]
fn a_lagging_senders_requests_go_as_soon_as_the_others() {
    let mut r = Replays::default();
    let t0 = Instant::now();
    for i in 0..10u64 {
        let mut mac = [0; 32];
        mac[0] = i as u8;
        let lag = if i % 2 == 0 { 25 } else { 0 };
        r.remember(
            t0 + Duration::from_secs(i),
            (1_000 + i - lag, AS_IP),
            mac,
            Seen::Placed,
        );
    }
    // 61 s after the fifth was seen: the first five are gone, lagging or not.
    r.seen(
        t0 + Duration::from_secs(4) + Replays::HOLD,
        1_000 + 4 + 61,
        &[0xff; 32],
    );
    assert_eq!(r.len(), 5);
}

/// A wall clock stepped an hour forward and set back 10 s later: what was seen before
/// the step is still known after it, so a capture cannot be sent again.
#[test]
fn a_wall_clock_jump_forward_and_back_forgets_nothing_within_the_window() {
    let mut r = Replays::default();
    let t0 = Instant::now();
    r.remember(t0, (1_000, AS_IP), [2; 32], Seen::Placed);
    // Stepped forward: by the wall clock it could go, but it has not been held long.
    assert_eq!(
        r.seen(t0 + Duration::from_secs(5), 4_600, &[2; 32]),
        Some(Seen::Placed)
    );
    // Set back: the capture's ts is good again, and it is still known.
    assert_eq!(
        r.seen(t0 + Duration::from_secs(10), 1_010, &[2; 32]),
        Some(Seen::Placed)
    );
    // Held for the window and out of it by the wall clock: gone.
    assert_eq!(
        r.seen(t0 + Replays::HOLD, 1_000 + 2 * MAX_SKEW_S, &[2; 32]),
        None
    );
}
