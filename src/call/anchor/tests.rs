use super::addresses::deliverable;
use crate::config::net::behind_nat;

/// Which SDP addresses count as behind NAT, seen from which signalling addresses.
#[test]
fn private_sdp_behind_public_signalling_is_behind_nat() {
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    for (sdp, signalling, natted) in [
        ("10.0.0.5", "203.0.113.7", true),
        ("172.16.9.9", "203.0.113.7", true),
        ("192.168.1.20", "::ffff:203.0.113.7", true),
        ("100.127.0.1", "203.0.113.7", true),
        ("169.254.1.1", "203.0.113.7", true),
        ("fd00::5", "2001:db8::7", true),
        ("fe80::1", "2001:db8::7", true),
        ("::ffff:10.0.0.5", "203.0.113.7", true),
        // Public SDP, or a peer as private as its SDP (on our LAN), or on loopback.
        ("198.51.100.7", "203.0.113.7", false),
        ("100.128.0.1", "203.0.113.7", false),
        ("10.0.0.5", "10.9.9.9", false),
        ("10.0.0.5", "127.0.0.1", false),
        ("2001:db8::5", "2001:db8::7", false),
    ] {
        assert_eq!(
            behind_nat(ip(sdp), ip(signalling)),
            natted,
            "{sdp} from {signalling}"
        );
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is judged as the address it
/// reaches: a dual-stack relay socket would send to it.
#[test]
fn a_mapped_address_is_judged_as_what_it_reaches() {
    let with_media_ip = |ip: &str| {
        let mut cfg = crate::call::tests::config();
        cfg.media_ip = ip.parse().unwrap();
        cfg
    };
    let gw = &with_media_ip("2001:db8::1");
    for bad in [
        "::ffff:127.0.0.1",
        "::ffff:224.0.0.1",
        "::ffff:0.0.0.0",
        "::ffff:255.255.255.255",
    ] {
        assert!(!deliverable(bad.parse().unwrap(), gw), "{bad}");
    }
    assert!(deliverable("::ffff:192.0.2.10".parse().unwrap(), gw));
    let v4gw = &with_media_ip("192.0.2.1");
    assert!(
        !deliverable("::ffff:192.0.2.1".parse().unwrap(), v4gw),
        "our own"
    );
}

/// The gateway's own listening addresses are no RTP destination either: the relay would
/// send one leg's datagrams, from our media address, into our own SIP or call-back
/// listener (or whatever else on this host a peer's SDP names). Before, only the media
/// address was refused.
#[test]
fn the_gateways_listening_addresses_are_no_destination() {
    let mut cfg = crate::call::tests::config();
    cfg.media_ip = "192.0.2.1".parse().unwrap();
    cfg.listen[0].addr = "192.0.2.2:5060".parse().unwrap();
    cfg.callback.listen = Some("192.0.2.3:5080".parse().unwrap());
    for ours in ["192.0.2.2", "192.0.2.3", "::ffff:192.0.2.2"] {
        assert!(!deliverable(ours.parse().unwrap(), &cfg), "{ours}");
    }
    assert!(deliverable("192.0.2.4".parse().unwrap(), &cfg));
}

/// The host's other interfaces are no RTP destination: a listener on `0.0.0.0` (the
/// gateway's SIP listener, or another service on this host) hears them all, so a peer's
/// SDP naming one would have the relay send into it. Before, only the media address and
/// the listeners' own addresses were refused.
#[test]
fn the_hosts_other_addresses_are_no_destination() {
    let mut cfg = crate::call::tests::config();
    cfg.media_ip = "192.0.2.1".parse().unwrap();
    cfg.listen[0].addr = "0.0.0.0:5060".parse().unwrap();
    cfg.host_ips = ["10.9.8.7".parse().unwrap(), "2001:db8::7".parse().unwrap()].into();
    for ours in ["10.9.8.7", "::ffff:10.9.8.7", "2001:db8::7"] {
        assert!(!deliverable(ours.parse().unwrap(), &cfg), "{ours}");
    }
    assert!(deliverable("10.9.8.6".parse().unwrap(), &cfg));
}
