use super::*;

/// A peer a reload removed is forgotten once it carries no call; with a call up it keeps
/// counting it. Before, every removed peer's gate (and its refusal-CDR bucket) stayed
/// for the life of the process.
#[test]
fn a_removed_peer_is_forgotten_once_its_calls_end() {
    let cfg = crate::call::tests::config();
    let mut l = Limits::new(&cfg);
    let gone = PeerName("carrier-b".into());
    let now = Instant::now();
    assert!(l.admit_call(now, &gone, 0).is_ok());
    assert!(l.record_refusal(now, &gone));
    let mut without = cfg.clone();
    without.profiles.retain(|n, _| *n != gone);
    l.reconfigure(&cfg, &without);
    assert_eq!(l.active(&gone), 1, "its call still counts");
    assert!(!l.refusal_cdrs.contains_key(&gone));
    l.release(&gone);
    l.reconfigure(&without, &without);
    assert!(!l.peers.contains_key(&gone));
    assert!(l.peers.contains_key(&PeerName("carrier-a".into())));
}

/// `cfg` with carrier-b named `to` and at most `max` calls.
fn carrier_b_as(cfg: &Config, to: &str, max: u32) -> Config {
    let mut c = cfg.clone();
    let mut p = (*c.profiles[&PeerName("carrier-b".into())]).clone();
    c.profiles.retain(|n, _| n.0.as_ref() != "carrier-b");
    p.name = PeerName(to.into());
    p.limits.calls.max_calls = Some(max);
    c.profiles.insert(p.name.clone(), std::sync::Arc::new(p));
    c
}

/// A peer a reload renames (its profile gone, one new to the configuration with its
/// address) keeps its calls up counted against `max_calls` under the new name, until
/// they end. Before, the new name started from none: the peer carried its calls twice.
#[test]
fn a_renamed_peers_calls_count_under_its_new_name() {
    let base = crate::call::tests::config();
    let before = carrier_b_as(&base, "carrier-b", 2);
    let after = carrier_b_as(&base, "carrier-z", 2);
    let (old, new) = (PeerName("carrier-b".into()), PeerName("carrier-z".into()));
    let (mut l, mut now) = two_calls_of(&before, &old);
    l.reconfigure(&before, &after);
    now += std::time::Duration::from_secs(1);
    assert_eq!(l.admit_call(now, &new, 2), Err(Over::MaxCalls));
    assert_eq!(l.active(&new), 2);
    // One of the old name's calls ends: room for one under the new name.
    l.release(&old);
    assert!(l.admit_call(now, &new, 1).is_ok());
    assert_eq!(l.admit_call(now, &new, 2), Err(Over::MaxCalls));
    l.release(&old);
    assert!(
        l.renamed.is_empty(),
        "forgotten with the old name's last call"
    );
    assert!(!l.peers.contains_key(&old));
    assert_eq!(l.active(&new), 1);
    // Another customer behind the same address (other networks) is a new peer.
    let mut other = carrier_b_as(&base, "carrier-w", 2);
    let mut w = (*other.profiles[&PeerName("carrier-w".into())]).clone();
    w.matches = vec!["192.0.2.128/25".parse().unwrap()];
    other
        .profiles
        .insert(w.name.clone(), std::sync::Arc::new(w));
    let mut l = Limits::new(&before);
    assert!(l.admit_call(now, &old, 0).is_ok());
    l.reconfigure(&before, &other);
    assert_eq!(l.active(&PeerName("carrier-w".into())), 0);
    assert_eq!(l.active(&old), 1, "its call still counts for it");
}

/// A rename over two reloads (the peer removed at one, back under a new name at the next)
/// still counts its calls up against the new name's `max_calls`; and the removed peer's
/// profile is forgotten with its last call. Before, only a rename within one reload was
/// seen: the new name started from none, the peer over its limit.
#[test]
fn a_rename_over_two_reloads_counts_the_calls_under_the_new_name() {
    let base = crate::call::tests::config();
    let before = carrier_b_as(&base, "carrier-b", 2);
    let mut between = before.clone();
    between.profiles.retain(|n, _| n.0.as_ref() != "carrier-b");
    let after = carrier_b_as(&base, "carrier-z", 2);
    let (old, new) = (PeerName("carrier-b".into()), PeerName("carrier-z".into()));
    let (mut l, mut now) = two_calls_of(&before, &old);
    l.reconfigure(&before, &between);
    l.reconfigure(&between, &after);
    now += std::time::Duration::from_secs(1);
    assert_eq!(l.admit_call(now, &new, 2), Err(Over::MaxCalls));
    l.release(&old);
    l.release(&old);
    l.reconfigure(&after, &after);
    assert!(l.departed.is_empty() && l.renamed.is_empty());
    assert!(l.admit_call(now, &new, 0).is_ok());
}

/// Renamed twice, and back: the calls follow each name, and count once.
#[test]
fn a_peer_renamed_and_back_counts_each_call_once() {
    let base = crate::call::tests::config();
    let b = carrier_b_as(&base, "carrier-b", 3);
    let y = carrier_b_as(&base, "carrier-y", 3);
    let z = carrier_b_as(&base, "carrier-z", 3);
    let name = |n: &str| PeerName(n.into());
    let mut l = Limits::new(&b);
    let now = Instant::now();
    assert!(l.admit_call(now, &name("carrier-b"), 0).is_ok());
    l.reconfigure(&b, &y);
    assert!(l.admit_call(now, &name("carrier-y"), 1).is_ok());
    l.reconfigure(&y, &z);
    assert_eq!(l.active(&name("carrier-z")), 2);
    assert_eq!(l.active(&name("carrier-b")), 2, "the oldest name follows");
    // Each name's own calls, for the per-peer gauge: they add up to the two there are.
    // Before, each name showed the gate's two.
    let named = |l: &Limits, n: &str| l.calls_named(&name(n));
    assert_eq!(
        (
            named(&l, "carrier-b"),
            named(&l, "carrier-y"),
            named(&l, "carrier-z")
        ),
        (1, 1, 0)
    );
    // Back to the first name: its one call counts for it, the other for carrier-z.
    let mut zb = z.clone();
    let p = (*b.profiles[&name("carrier-b")]).clone();
    zb.profiles.insert(p.name.clone(), std::sync::Arc::new(p));
    l.reconfigure(&z, &zb);
    assert_eq!(l.active(&name("carrier-b")), 1);
    assert_eq!(l.active(&name("carrier-z")), 1);
    l.release(&name("carrier-b"));
    l.release(&name("carrier-y"));
    assert_eq!(l.active(&name("carrier-b")), 0);
    assert_eq!(l.active(&name("carrier-z")), 0);
    assert!(l.renamed.is_empty());
}

/// `cfg`'s limits with two calls of `peer` admitted a second apart; the last one's time.
fn two_calls_of(cfg: &Config, peer: &PeerName) -> (Limits, Instant) {
    let mut l = Limits::new(cfg);
    let mut now = Instant::now();
    for _ in 0..2 {
        now += std::time::Duration::from_secs(1);
        assert!(l.admit_call(now, peer, 0).is_ok());
    }
    (l, now)
}
