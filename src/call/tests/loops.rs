//! Our own INVITE come back through a proxy (`incoming::loops_back`): a loop when it would
//! go where it went, for the same number (482); a spiral otherwise, set up as any call.

use super::*;

/// The standard configuration with carrier-a's calls for `+86` routed to `to`.
fn carrier_routes_86_to(to: &str) -> Config {
    routes_86_in(config(), &[to])
}

/// `cfg` with carrier-a's calls for `+86` routed to the peers `to`.
fn routes_86_in(mut cfg: Config, to: &[&str]) -> Config {
    cfg.routes.insert(
        0,
        Route {
            from: RouteFrom::Peer(PeerName("carrier-a".into())),
            prefix: "+86".into(),
            to: to.iter().map(|p| PeerName((*p).into())).collect(),
            ring_timeout: None,
        },
    );
    cfg
}

/// The phone dials `number`; the INVITE the gateway sends carrier-a for it.
fn phone_dials(h: &mut H, number: &str) -> Request {
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKa1", number, ""),
    );
    h.one_request(CARRIER_A, Method::Invite)
}

/// `inv` as a proxy at carrier-a hands it back to the gateway: its Via on top, the
/// Request-URI retargeted, `number` as the user; the rest (Call-ID, our From tag) kept.
fn handed_back(inv: &Request, number: &str) -> String {
    let text = String::from_utf8(inv.to_bytes().to_vec()).unwrap();
    let (_, rest) = text.split_once("\r\n").unwrap();
    format!(
        "INVITE sip:{number}@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bKproxy1;rport\r\n{rest}"
    )
}

#[test]
fn our_invite_routed_back_to_the_same_carrier_is_a_loop() {
    let mut h = H::with(carrier_routes_86_to("carrier-a"));
    let inv = phone_dials(&mut h, "+8610123");
    // The carrier's proxy sends it straight back: 482, and no second INVITE to it.
    h.recv(CARRIER_A, &handed_back(&inv, "+8610123"));
    let out = h.take(CARRIER_A);
    let statuses: Vec<u16> = out
        .iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status()),
            Message::Request(_) => None,
        })
        .collect();
    assert_eq!(statuses, [482]);
    assert_eq!(out.len(), 1, "nothing else toward the carrier: {out:?}");
    let cdr = &h.cdrs[0];
    assert_eq!((cdr.call_tag, cdr.cause), (CallTag::CallerRejected, 25));
    // The proxy gives our INVITE the 482: the phone's route tries its next peer (the path
    // through carrier-a loops); the caller hears nothing of it yet.
    h.recv_msg(CARRIER_A, reply(&inv, 482, "proxy1", &[], None));
    h.one_request(CARRIER_B, Method::Invite);
    let fails = h.failures(PHONE);
    assert!(fails.is_empty(), "{fails:?}");
    assert_eq!(h.cdrs.len(), 1);
}

#[test]
fn our_invite_routed_back_elsewhere_is_a_spiral_and_a_call() {
    // The carrier hands the number back and it routes to the PBX (a hairpin): a call.
    let mut h = H::with(carrier_routes_86_to("pbx"));
    let inv = phone_dials(&mut h, "+8610123");
    h.recv(CARRIER_A, &handed_back(&inv, "+8610123"));
    assert_eq!(h.failures(CARRIER_A), Vec::<u16>::new());
    h.one_request(PHONE, Method::Invite);
    // And one routed back to the same carrier for another number (forwarded on the way).
    let mut h = H::with(carrier_routes_86_to("carrier-a"));
    let inv = phone_dials(&mut h, "+8610123");
    h.recv(CARRIER_A, &handed_back(&inv, "+8610999"));
    let again = h.take_requests(CARRIER_A, Method::Invite);
    assert_eq!(again.len(), 1, "a new call to the carrier");
    assert!(again[0].uri().contains("+8610999"));
}

/// The number compared is the one we sent the peer, as its `[uri]` wrote it (E.164 here,
/// the phone dialled it nationally), not the one the caller dialled: a loop all the same.
#[test]
fn a_loop_is_found_on_the_number_as_written_to_the_peer() {
    use crate::interop::uri::NumberFormat;
    let cfg = config_with(|name, p| {
        p.uri.country_code = Some("86".into());
        if name == "carrier-a" {
            p.uri.number = NumberFormat::E164;
        }
    });
    let mut h = H::with(routes_86_in(cfg, &["carrier-a"]));
    let inv = phone_dials(&mut h, "01012345678");
    assert!(inv.uri().contains("+861012345678"), "{}", inv.uri());
    h.recv(CARRIER_A, &handed_back(&inv, "+861012345678"));
    assert_eq!(h.failures(CARRIER_A), [482]);
}

/// A loop whose route names other peers than the one it came back from goes to them: that
/// peer is skipped, not the call refused.
#[test]
fn a_loop_skips_the_peer_it_came_back_from_and_tries_the_routes_others() {
    let mut h = H::with(routes_86_in(config(), &["carrier-a", "pbx"]));
    let inv = phone_dials(&mut h, "+8610123");
    h.recv(CARRIER_A, &handed_back(&inv, "+8610123"));
    assert!(h.take_requests(CARRIER_A, Method::Invite).is_empty());
    assert_eq!(h.failures(CARRIER_A), Vec::<u16>::new());
    h.one_request(PHONE, Method::Invite);
}
