//! Trunk credentials on the fake clock: carrier-a challenges (401/407) and the gateway
//! answers from carrier-a's `[auth]`, once per challenge, and carries the credentials on.

use super::*;
use crate::auth::{Algorithm, Credentials, Secret};

fn with_credentials(names: &[&str]) -> Config {
    config_with(|name, p| {
        if names.contains(&name) {
            p.auth = Some(Arc::new(Credentials {
                username: "trunkuser".into(),
                password: Secret::new("trunk-secret"),
                realm: None,
                algorithms: Algorithm::ALL.to_vec(),
                in_dialog: Default::default(),
            }));
        }
    })
}

/// `status` with a digest challenge for `nonce` (`stale` when asked).
fn challenge(inv: &Request, status: u16, nonce: &str, stale: bool) -> Message {
    let (hdr, realm) = match status {
        407 => (Hdr::named("Proxy-Authenticate"), "proxy.carrier.example"),
        _ => (Hdr::named("WWW-Authenticate"), "carrier.example"),
    };
    let value = format!(
        "Digest realm=\"{realm}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5{}",
        if stale { ", stale=true" } else { "" }
    );
    reply(inv, status, "proxy1", &[(hdr, value.as_str())], None)
}

/// The phone's call whose INVITE carrier-a authenticated ([`authenticate_invite`]): the
/// INVITE sent last.
fn authenticated_invite(h: &mut H) -> Request {
    let inv = phone_invites(h);
    authenticate_invite(h, &inv)
}

fn phone_invites(h: &mut H) -> Request {
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKa1", "+8610123", ""),
    );
    h.take(PHONE);
    h.one_request(CARRIER_A, Method::Invite)
}

#[test]
fn a_challenged_invite_is_answered_once_and_the_dialog_carries_the_credentials() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let inv = phone_invites(&mut h);
    assert!(inv.header(&Hdr::PROXY_AUTHORIZATION).is_none());
    h.recv_msg(CARRIER_A, challenge(&inv, 407, "n1", false));
    let again = h.one_request(CARRIER_A, Method::Invite);
    // The ACK for the 407 came first (the transaction's), then the new INVITE.
    let cred = again
        .header(&Hdr::PROXY_AUTHORIZATION)
        .expect("credentials");
    for want in [
        "Digest ",
        "username=\"trunkuser\"",
        "realm=\"proxy.carrier.example\"",
        "nonce=\"n1\"",
        "qop=auth",
        "nc=00000001",
    ] {
        assert!(cred.contains(want), "{want} not in {cred}");
    }
    assert!(!cred.contains("trunk-secret"));
    assert_eq!(again.cseq().unwrap(), (2, Method::Invite));
    assert_eq!(again.call_id(), inv.call_id());
    assert_eq!(again.from_tag(), inv.from_tag());
    assert_eq!(again.to_tag(), None);
    assert_ne!(
        again.header(&Hdr::VIA),
        inv.header(&Hdr::VIA),
        "a new branch"
    );
    assert_eq!(again.body(), inv.body());
    assert!(h.statuses(PHONE).is_empty(), "the caller sees no challenge");

    h.recv_msg(
        CARRIER_A,
        reply(
            &again,
            200,
            "carrier1",
            &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let ok = h.take_responses(PHONE).remove(0);
    assert_eq!(ok.status(), 200);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKack1", ""));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap().0, 2);
    assert_eq!(
        ack.header(&Hdr::PROXY_AUTHORIZATION),
        Some(cred.clone()),
        "the INVITE's credentials"
    );

    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKbye1"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    let up_front = bye
        .header(&Hdr::PROXY_AUTHORIZATION)
        .expect("credentials up front");
    assert!(up_front.contains("nc=00000002"), "{up_front}");
    assert_eq!(bye.cseq().unwrap().0, 3);
    h.recv_msg(CARRIER_A, reply(&bye, 200, "carrier1", &[], None));
    assert!(h.cdrs[0].events.is_empty(), "{:?}", h.cdrs[0].events);
    assert_idle(&mut h);
}

#[test]
fn a_second_challenge_for_the_same_nonce_fails_over() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let inv = phone_invites(&mut h);
    h.recv_msg(CARRIER_A, challenge(&inv, 401, "n1", false));
    let again = h.one_request(CARRIER_A, Method::Invite);
    assert!(again.header(&Hdr::AUTHORIZATION).is_some());
    h.recv_msg(CARRIER_A, challenge(&again, 401, "n1", false));
    // carrier-b, next on the route, gets the call.
    h.one_request(CARRIER_B, Method::Invite);
    assert!(
        h.take(CARRIER_A)
            .iter()
            .all(|m| matches!(m, Message::Request(r) if r.method() == Method::Ack))
    );
    assert!(h.statuses(PHONE).is_empty());
}

#[test]
fn without_credentials_or_after_a_refusal_the_caller_gets_403_not_the_challenge() {
    // No [auth] anywhere: carrier-a's challenge fails the attempt, carrier-b's too.
    let mut h = H::with(config());
    let inv = phone_invites(&mut h);
    h.recv_msg(CARRIER_A, challenge(&inv, 407, "n1", false));
    let inv_b = h.one_request(CARRIER_B, Method::Invite);
    h.recv_msg(CARRIER_B, challenge(&inv_b, 401, "n2", false));
    let resp = h.take_responses(PHONE);
    let last = resp.last().unwrap();
    assert_eq!(last.status(), 403);
    assert!(last.header(&Hdr::named("Proxy-Authenticate")).is_none());
    assert!(last.header(&Hdr::named("WWW-Authenticate")).is_none());
    let c = &h.cdrs[0];
    assert_eq!((c.status, c.cause), (403, 21));
    assert_eq!(c.reason_sip.as_deref(), Some("SIP;cause=401"));
    assert!(
        c.events.iter().filter(|e| *e == "auth_failed").count() == 2,
        "{:?}",
        c.events
    );
}

#[test]
fn a_challenge_that_could_not_be_answered_leaves_a_later_peers_silence_its_own_failure() {
    // carrier-a's challenge fails the attempt; carrier-b never answers (Timer B): the phone
    // gets 408 for that silence, as without the challenge, not 403.
    let mut h = H::with(config());
    let inv = phone_invites(&mut h);
    h.recv_msg(CARRIER_A, challenge(&inv, 407, "n1", false));
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
    h.advance(Duration::from_secs(33));
    let last = h.statuses(PHONE).into_iter().rfind(|s| *s >= 300);
    assert_eq!(last, Some(408), "the last final response");
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
}

#[test]
fn a_stale_nonce_is_answered_again_without_failing() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let inv = phone_invites(&mut h);
    h.recv_msg(CARRIER_A, challenge(&inv, 401, "n1", false));
    let again = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, challenge(&again, 401, "n2", true));
    let third = h.one_request(CARRIER_A, Method::Invite);
    let cred = third.header(&Hdr::AUTHORIZATION).unwrap();
    assert!(cred.contains("nonce=\"n2\""), "{cred}");
    assert_eq!(third.cseq().unwrap().0, 3);
    assert!(h.take(CARRIER_B).is_empty());
}

#[test]
fn a_challenged_bye_is_sent_again_with_credentials() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let (_inv, ok) = authenticated_call(&mut h);
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKbye1"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    // The INVITE's proxy credentials up front; the proxy wants a nonce per request.
    let up_front = bye.header(&Hdr::PROXY_AUTHORIZATION).unwrap();
    assert!(up_front.contains("nonce=\"ip1\""), "{up_front}");
    h.recv_msg(CARRIER_A, challenge(&bye, 407, "b1", false));
    let again = h.one_request(CARRIER_A, Method::Bye);
    assert!(
        again
            .header(&Hdr::PROXY_AUTHORIZATION)
            .unwrap()
            .contains("nonce=\"b1\"")
    );
    assert_eq!(again.cseq().unwrap().0, bye.cseq().unwrap().0 + 1);
    // Refused again: given up (recorded), and the call is gone all the same.
    h.recv_msg(CARRIER_A, challenge(&again, 407, "b1", false));
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    assert_eq!(h.cdrs.len(), 1);
    assert_idle(&mut h);
}

/// A password (here the user too) changed and reloaded while a call is up: the call keeps
/// the configuration it began with, but its leg's credentials are the running ones, up
/// front and in the answer to a new challenge. Before, the old ones went on: the carrier
/// refused them, and the call's BYE (or refresh) was given up with the carrier's leg up.
#[test]
fn credentials_changed_by_a_reload_are_used_by_the_calls_up() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let (_inv, ok) = authenticated_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let renewed = config_with(|name, p| {
        if name == "carrier-a" {
            p.auth = Some(Arc::new(Credentials {
                username: "trunkuser2".into(),
                password: Secret::new("new-secret"),
                realm: None,
                algorithms: Algorithm::ALL.to_vec(),
                in_dialog: Default::default(),
            }));
        }
    });
    h.reload(Arc::new(renewed));
    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKbye1"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    let up_front = bye.header(&Hdr::PROXY_AUTHORIZATION).unwrap();
    assert!(up_front.contains("username=\"trunkuser2\""), "{up_front}");
    h.recv_msg(CARRIER_A, challenge(&bye, 407, "b1", false));
    let again = h.one_request(CARRIER_A, Method::Bye);
    let answer = again.header(&Hdr::PROXY_AUTHORIZATION).unwrap();
    assert!(answer.contains("username=\"trunkuser2\"") && answer.contains("nonce=\"b1\""));

    // A reload that removes `[auth]`, or gives the name to another carrier (another
    // address): the call's own credentials go on, never the new carrier's.
    for reload in [
        config_with(|_, _| {}),
        config_with(|name, p| {
            if name == "carrier-a" {
                p.address = Target::udp(addr("192.0.2.77:5060"));
                p.auth = Some(Arc::new(Credentials {
                    username: "othertrunk".into(),
                    password: Secret::new("other-secret"),
                    realm: None,
                    algorithms: Algorithm::ALL.to_vec(),
                    in_dialog: Default::default(),
                }));
            }
        }),
    ] {
        let mut h = H::with(with_credentials(&["carrier-a"]));
        let (_inv, ok) = authenticated_call(&mut h);
        h.reload(Arc::new(reload));
        h.recv(PHONE, &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKbye2"));
        let bye = h.one_request(CARRIER_A, Method::Bye);
        h.recv_msg(CARRIER_A, challenge(&bye, 407, "b2", false));
        let again = h.one_request(CARRIER_A, Method::Bye);
        let answer = again.header(&Hdr::PROXY_AUTHORIZATION).unwrap();
        assert!(answer.contains("username=\"trunkuser\""), "{answer}");
    }
}

fn registering() -> Config {
    let mut cfg = with_credentials(&["carrier-a"]);
    let p = cfg.profiles.get_mut(&PeerName("carrier-a".into())).unwrap();
    let mut q = (**p).clone();
    q.register = Some(crate::auth::RegisterPolicy {
        expires: Duration::from_secs(3600),
        user: None,
        contact_user: "trunkuser".into(),
        transport: Transport::Udp,
    });
    *p = Arc::new(q);
    cfg
}

fn registrar_ok(req: &Request, expires: u32) -> Message {
    let contact = format!("<sip:trunkuser@127.0.0.1:5060>;expires={expires}");
    reply(req, 200, "reg1", &[(Hdr::CONTACT, contact.as_str())], None)
}

#[test]
fn the_gateway_registers_answers_the_challenge_refreshes_and_unregisters_at_shutdown() {
    let mut h = H::with(registering());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    assert!(reg.header(&Hdr::AUTHORIZATION).is_none());
    assert_eq!(
        h.core.registrations(),
        vec![(PeerName("carrier-a".into()), false)]
    );
    h.recv_msg(CARRIER_A, challenge(&reg, 401, "r1", false));
    let again = h.one_request(CARRIER_A, Method::Register);
    assert!(
        again
            .header(&Hdr::AUTHORIZATION)
            .unwrap()
            .contains("nonce=\"r1\"")
    );
    assert_eq!(again.call_id(), reg.call_id());
    h.recv_msg(CARRIER_A, registrar_ok(&again, 10));
    assert_eq!(
        h.core.registrations(),
        vec![(PeerName("carrier-a".into()), true)]
    );
    // Refreshed between 75 % and 85 % of the 10 s granted, with credentials up front.
    h.advance(Duration::from_millis(7400));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    let mut waited = 0;
    let refresh = loop {
        h.advance(Duration::from_millis(50));
        waited += 50;
        if let Some(r) = h.take_requests(CARRIER_A, Method::Register).pop() {
            break r;
        }
        assert!(waited <= 1150, "no refresh by 85 %");
    };
    assert!(
        refresh
            .header(&Hdr::AUTHORIZATION)
            .unwrap()
            .contains("nc=00000002")
    );
    h.recv_msg(CARRIER_A, registrar_ok(&refresh, 3600));
    // Shutdown: Expires 0, and the core is busy until the registrar answers.
    h.input(Input::Drain);
    let bye = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(bye.header(&Hdr::named("Expires")).as_deref(), Some("0"));
    assert!(h.core.busy());
    h.recv_msg(CARRIER_A, registrar_ok(&bye, 0));
    assert!(!h.core.busy());
    assert!(h.core.registrations().is_empty());
}

/// At shutdown, a REGISTER still unanswered is waited for 2 s, then given up (its
/// retransmissions stop: one REGISTER at a time, and a late copy must not bind the contact
/// again) and the `Expires: 0` goes. Before, the removal went at once beside the
/// REGISTER's retransmissions, and then (6587800) waited for its 32 s, past a short drain.
#[test]
fn at_shutdown_an_unanswered_register_is_given_up_for_the_removal() {
    let mut h = H::with(registering());
    h.apply();
    let first = h.one_request(CARRIER_A, Method::Register);
    h.input(Input::Drain);
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    h.advance(Duration::from_millis(2100));
    let sent = h.take_requests(CARRIER_A, Method::Register);
    let removal = sent
        .iter()
        .find(|r| r.header(&Hdr::named("Expires")).as_deref() == Some("0"))
        .expect("the removal after 2 s")
        .clone();
    assert!(removal.cseq().unwrap().0 > first.cseq().unwrap().0);
    // From now on only the removal is retransmitted.
    for _ in 0..10 {
        h.advance(Duration::from_secs(1));
        for r in h.take_requests(CARRIER_A, Method::Register) {
            assert_eq!(r.cseq(), removal.cseq(), "the first REGISTER was given up");
        }
    }
    h.recv_msg(CARRIER_A, registrar_ok(&removal, 0));
    assert!(!h.core.busy());
}

/// The TCP connection a registered binding rides on closes (the registrar closed it, or it
/// broke): a registrar reaching a gateway behind NAT over it could not until the next
/// refresh, so the binding is renewed within 5 s on a new connection. Before, it waited for
/// its refresh (some 45 minutes of a 3600 s grant). A connection to another address
/// changes nothing.
#[test]
fn a_registered_bindings_tcp_connection_closing_renews_it_soon() {
    let mut h = H::with(registering_over_tcp());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&reg, 3600));
    let other: std::net::SocketAddr = CARRIER_B.parse().expect("an address");
    h.input(Input::TcpClosed(other));
    h.advance(Duration::from_secs(6));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    h.input(Input::TcpClosed(CARRIER_A.parse().expect("an address")));
    h.advance(Duration::from_secs(6));
    let again = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(
        again.call_id(),
        reg.call_id(),
        "the same registration, refreshed"
    );
    assert_ne!(again.cseq(), reg.cseq());
    // A registrar that closes after every transaction (or idles connections out): the next
    // close within 5 minutes of that renewal has the binding renewed 5 minutes after it, not
    // at once, and not left to the refresh (no later close would come to ask again).
    h.recv_msg(CARRIER_A, registrar_ok(&again, 3600));
    h.input(Input::TcpClosed(CARRIER_A.parse().expect("an address")));
    h.advance(Duration::from_secs(6));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    h.advance(Duration::from_secs(300));
    let third = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(third.call_id(), reg.call_id());
}

/// A REGISTER whose TCP connection closed after it was written, before any answer, may
/// have bound: at shutdown its binding is removed (`Expires: 0`). One that could not be sent
/// at all bound nothing, and shutdown sends nothing. Before, both were taken for unsent.
/// (The first loss sends the REGISTER once more on a new connection; it is lost again.)
#[test]
fn a_register_lost_with_its_connection_may_have_bound() {
    for lost in [true, false] {
        let mut h = H::with(registering_over_tcp());
        h.apply();
        let first = h.one_request(CARRIER_A, Method::Register);
        let id = h.txn_to(CARRIER_A);
        if lost {
            h.input(Input::ConnectionLost(id));
            let again = h.one_request(CARRIER_A, Method::Register);
            assert_eq!(again.to_bytes(), first.to_bytes(), "sent once more");
            h.input(Input::ConnectionLost(id));
        } else {
            h.input(Input::SendFailed(id));
        }
        h.input(Input::Drain);
        let sent = h.take_requests(CARRIER_A, Method::Register);
        let removals = (sent.iter())
            .filter(|r| r.header(&Hdr::named("Expires")).as_deref() == Some("0"))
            .count();
        assert_eq!(
            removals,
            usize::from(lost),
            "lost with its connection: {lost}"
        );
    }
}

#[test]
fn a_silent_registrar_is_retried_with_back_off_and_counted_down() {
    let mut h = H::with(registering());
    h.apply();
    h.one_request(CARRIER_A, Method::Register);
    // Timer F (32 s): down, retried after the first back-off (10 s).
    h.advance(Duration::from_secs(33));
    h.take(CARRIER_A);
    assert_eq!(
        h.core.registrations(),
        vec![(PeerName("carrier-a".into()), false)]
    );
    // Failed at 32 s; the retry comes 5–10 s later (half to all of the first step).
    h.advance(Duration::from_secs(3));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    h.advance(Duration::from_secs(7));
    // One new REGISTER (and its UDP retransmissions): one CSeq.
    let mut cseqs: Vec<u32> = h
        .take_requests(CARRIER_A, Method::Register)
        .iter()
        .map(|r| r.cseq().unwrap().0)
        .collect();
    cseqs.dedup();
    assert_eq!(cseqs.len(), 1, "{cseqs:?}");
}

/// `registering()` with carrier-a's registration changed by `f`.
fn registering_with(f: impl FnOnce(&mut crate::auth::RegisterPolicy)) -> Config {
    let mut cfg = registering();
    let p = cfg.profiles.get_mut(&PeerName("carrier-a".into())).unwrap();
    let mut q = (**p).clone();
    if let Some(r) = q.register.as_mut() {
        f(r);
    }
    *p = Arc::new(q);
    cfg
}

/// `registering()` over TCP, the gateway listening on TCP too.
fn registering_over_tcp() -> Config {
    let mut cfg = registering_with(|r| r.transport = Transport::Tcp);
    cfg.listen.push(crate::config::Listen {
        transport: Transport::Tcp,
        addr: "127.0.0.1:5060".parse().expect("an address"),
    });
    cfg
}

/// Carrier-a registered (its first REGISTER answered for 3600 s), then `cfg` reloaded: the
/// harness and that first REGISTER.
fn registered_then_reloaded(cfg: Config) -> (H, Request) {
    let mut h = H::with(registering());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&reg, 3600));
    h.reload(Arc::new(cfg));
    (h, reg)
}

/// After a reload, the REGISTER toward carrier-a's address is a new registration (not
/// `reg`'s) for `expires` seconds, which the registrar takes.
fn registers_anew(h: &mut H, reg: &Request, expires: u32) {
    let again = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(
        again.header(&Hdr::named("Expires")).as_deref(),
        Some(expires.to_string().as_str())
    );
    assert_ne!(again.call_id(), reg.call_id(), "a new registration");
    h.recv_msg(CARRIER_A, registrar_ok(&again, expires));
}

/// A reload that changes only the expiry keeps the contact: the new REGISTER replaces the
/// binding, and no `Expires: 0` is sent that could reach the registrar after it and remove it.
#[test]
fn a_reload_of_the_same_contact_registers_anew_without_removing_it() {
    let (mut h, reg) = registered_then_reloaded(registering_with(|r| {
        r.expires = Duration::from_secs(1800);
    }));
    registers_anew(&mut h, &reg, 1800);
    assert_eq!(
        h.core.registrations(),
        vec![(PeerName("carrier-a".into()), true)]
    );
}

/// `cfg` with carrier-a renamed carrier-z (its registration otherwise the same), sending to
/// `to`.
fn carrier_a_renamed(cfg: Config, to: &str) -> Config {
    let mut cfg = carrier_a_copied(cfg, "carrier-z", to);
    cfg.profiles.remove(&PeerName("carrier-a".into()));
    cfg
}

/// `cfg` with a copy of carrier-a's profile named `name`, at address `to`.
fn carrier_a_copied(mut cfg: Config, name: &str, to: &str) -> Config {
    let mut q = (*cfg.profiles[&PeerName("carrier-a".into())]).clone();
    q.name = PeerName(name.into());
    q.address.addr = to.parse().unwrap();
    cfg.profiles.insert(q.name.clone(), Arc::new(q));
    cfg
}

/// A registering peer renamed by a reload (the profile's `name`, nothing else) registers the
/// same binding anew under its new name, and sends no `Expires: 0`: one sent beside the new
/// REGISTER (or after it, once a refresh out is answered) would remove the new binding at
/// the registrar (RFC 3261 §10.3), with the peer shown registered. Before, the old name's
/// binding was removed and the new REGISTER not held back for it.
#[test]
fn a_renamed_peer_registers_the_same_binding_without_removing_it() {
    let (mut h, reg) = registered_then_reloaded(carrier_a_renamed(registering(), CARRIER_A));
    registers_anew(&mut h, &reg, 3600);
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    assert_eq!(
        h.core.registrations(),
        vec![(PeerName("carrier-z".into()), true)]
    );
}

/// A reload that moves the registrar's address keeps the contact but sends the removal first,
/// to the old address, and the new REGISTER only once it is answered: two SBCs sharing one
/// location database could otherwise take them in either order. The same when the peer is
/// renamed too: the new name's REGISTER waits for the removal of the same contact (before,
/// only the same name waited).
#[test]
fn a_reload_that_moves_the_registrar_removes_the_old_binding_first() {
    let mut moved = registering();
    let p = moved
        .profiles
        .get_mut(&PeerName("carrier-a".into()))
        .unwrap();
    let mut q = (**p).clone();
    q.address.addr = CARRIER_B.parse().unwrap();
    *p = Arc::new(q);
    for cfg in [moved, carrier_a_renamed(registering(), CARRIER_B)] {
        let (mut h, _reg) = registered_then_reloaded(cfg);
        let un = h.one_request(CARRIER_A, Method::Register);
        assert_eq!(un.header(&Hdr::named("Expires")).as_deref(), Some("0"));
        assert!(h.take_requests(CARRIER_B, Method::Register).is_empty());
        h.recv_msg(CARRIER_A, registrar_ok(&un, 0));
        let again = h.one_request(CARRIER_B, Method::Register);
        assert_eq!(
            again.header(&Hdr::named("Expires")).as_deref(),
            Some("3600")
        );
    }
}

/// The binding handed over stays the gateway's: the new REGISTER refused (a password the
/// carrier has not taken yet), the peer shows down, but the registrar may still hold the old
/// binding, and shutdown removes it.
#[test]
fn a_binding_handed_over_is_removed_at_shutdown_even_if_the_new_register_is_refused() {
    let mut h = H::with(registering());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&reg, 3600));
    h.reload(Arc::new(registering_with(|r| {
        r.expires = Duration::from_secs(1800);
    })));
    let again = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, reply(&again, 403, "reg1", &[], None));
    assert_eq!(
        h.core.registrations(),
        vec![(PeerName("carrier-a".into()), false)]
    );
    h.input(Input::Drain);
    let un = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(un.header(&Hdr::named("Expires")).as_deref(), Some("0"));
    assert_eq!(
        un.contact_uri().as_deref(),
        Some("sip:trunkuser@127.0.0.1:5060")
    );
}

/// A reload that hands the binding over while its REGISTER is still unanswered gives that
/// REGISTER up (its retransmissions stop) and counts its contact as possibly bound: the new
/// REGISTER refused, shutdown still removes it. Before, the old REGISTER went on being
/// retransmitted, its late 200 reached no one, and shutdown sent no removal: the registrar
/// kept sending the trunk's calls to a gateway that was gone, for an hour.
#[test]
fn a_register_out_when_a_reload_hands_over_is_given_up_and_its_binding_removed() {
    let mut h = H::with(registering());
    h.apply();
    let out = h.one_request(CARRIER_A, Method::Register);
    h.reload(Arc::new(registering_with(|r| {
        r.expires = Duration::from_secs(1800);
    })));
    let again = h.one_request(CARRIER_A, Method::Register);
    assert_ne!(again.call_id(), out.call_id());
    // Possibly bound, not known to work: down.
    assert_eq!(
        h.core.registrations(),
        vec![(PeerName("carrier-a".into()), false)]
    );
    for _ in 0..6 {
        h.advance(Duration::from_secs(1));
        for r in h.take_requests(CARRIER_A, Method::Register) {
            assert_eq!(
                r.call_id(),
                again.call_id(),
                "the old REGISTER was given up"
            );
        }
    }
    h.recv_msg(CARRIER_A, registrar_ok(&out, 3600));
    h.recv_msg(CARRIER_A, reply(&again, 403, "reg1", &[], None));
    h.input(Input::Drain);
    let un = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(un.header(&Hdr::named("Expires")).as_deref(), Some("0"));
}

/// A reload that moves the contact removes the old binding first and registers the new
/// contact once that removal is answered. One that moves it back while the removal still
/// waits for its answer: the contact never registered is just dropped, and the restored one
/// registers when the answer comes (not before, as the two could cross), and registers at
/// all (before, the unregistering one was taken for it and the peer stayed unregistered).
#[test]
fn a_reload_reverted_while_unregistering_registers_again_after_the_removal() {
    let mut h = H::with(registering());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&reg, 3600));
    h.reload(Arc::new(registering_with(|r| {
        r.contact_user = "other".into();
    })));
    let un = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(un.header(&Hdr::named("Expires")).as_deref(), Some("0"));
    h.reload(Arc::new(registering()));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    h.recv_msg(CARRIER_A, registrar_ok(&un, 0));
    let again = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(
        again.header(&Hdr::named("Expires")).as_deref(),
        Some("3600")
    );
    assert_eq!(
        again.contact_uri().as_deref(),
        Some("sip:trunkuser@127.0.0.1:5060")
    );
    h.recv_msg(CARRIER_A, registrar_ok(&again, 3600));
    assert!(
        h.core
            .registrations()
            .contains(&(PeerName("carrier-a".into()), true))
    );
}

/// Carrier-a registering as [`registering`] does, and a second profile binding the same
/// contact and address of record at carrier-b's address (a carrier's second SBC, sharing
/// the first's location database).
fn two_sbcs() -> Config {
    carrier_a_copied(registering(), "carrier-a2", CARRIER_B)
}

/// Both SBCs registered, then a reload drops the second: the harness, the first one's
/// REGISTER, and the second one's removal.
fn second_sbc_dropped() -> (H, Request, Request) {
    let mut h = H::with(two_sbcs());
    h.apply();
    let a = h.one_request(CARRIER_A, Method::Register);
    let b = h.one_request(CARRIER_B, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&a, 3600));
    h.recv_msg(CARRIER_B, registrar_ok(&b, 3600));
    h.advance(Duration::from_secs(60));
    h.reload(Arc::new(registering()));
    let un = h.one_request(CARRIER_B, Method::Register);
    (h, a, un)
}

/// A reload that drops one of two registrations of the same contact at two registrar
/// addresses sharing one location database sends the dropped one's `Expires: 0`, which
/// removes the binding both share (RFC 3261 §10.3): the kept one registers again once that
/// removal is answered. Before, it stayed unbound, shown up, until its next refresh.
#[test]
fn a_removal_of_a_shared_binding_is_followed_by_the_kept_ones_register() {
    let (mut h, a, un) = second_sbc_dropped();
    assert_eq!(un.header(&Hdr::named("Expires")).as_deref(), Some("0"));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    h.recv_msg(CARRIER_B, registrar_ok(&un, 0));
    let again = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(
        again.call_id(),
        a.call_id(),
        "the kept registration, refreshed"
    );
    assert_eq!(
        again.header(&Hdr::named("Expires")).as_deref(),
        Some("3600")
    );
    h.recv_msg(CARRIER_A, registrar_ok(&again, 3600));
    assert_eq!(
        h.core.registrations(),
        vec![(PeerName("carrier-a".into()), true)]
    );
}

/// A removal of a shared binding that failed (503) and will be tried again may have
/// reached the registrar all the same: the kept registration of the same contact registers
/// again at once, and again after the retry.
#[test]
fn a_failed_try_of_a_shared_bindings_removal_is_followed_by_the_kept_ones_register() {
    let (mut h, a, un) = second_sbc_dropped();
    h.recv_msg(CARRIER_B, reply(&un, 503, "reg1", &[], None));
    let again = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(again.call_id(), a.call_id(), "the kept one, at once");
    h.recv_msg(CARRIER_A, registrar_ok(&again, 3600));
    h.advance(Duration::from_secs(10));
    let un2 = h.one_request(CARRIER_B, Method::Register);
    assert_eq!(un2.header(&Hdr::named("Expires")).as_deref(), Some("0"));
    h.recv_msg(CARRIER_B, registrar_ok(&un2, 0));
    h.one_request(CARRIER_A, Method::Register);
}

/// No rebind where nothing was removed, nor against a registrar's back-off: a dropped
/// registration that never bound sends no `Expires: 0` and sets the kept one off nothing;
/// a kept one backing off after a refusal keeps its wait when the other's removal ends.
#[test]
fn a_rebind_follows_only_a_removal_sent_and_keeps_a_back_off() {
    // The dropped one never bound (its REGISTER refused).
    let mut h = H::with(two_sbcs());
    h.apply();
    let a = h.one_request(CARRIER_A, Method::Register);
    let b = h.one_request(CARRIER_B, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&a, 3600));
    h.recv_msg(CARRIER_B, reply(&b, 403, "reg1", &[], None));
    h.reload(Arc::new(registering()));
    assert!(h.take_requests(CARRIER_B, Method::Register).is_empty());
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    // The kept one backing off (refused), the dropped one bound and removed.
    let mut h = H::with(two_sbcs());
    h.apply();
    let a = h.one_request(CARRIER_A, Method::Register);
    let b = h.one_request(CARRIER_B, Method::Register);
    h.recv_msg(CARRIER_A, reply(&a, 403, "reg1", &[], None));
    h.recv_msg(CARRIER_B, registrar_ok(&b, 3600));
    h.reload(Arc::new(registering()));
    let un = h.one_request(CARRIER_B, Method::Register);
    h.recv_msg(CARRIER_B, registrar_ok(&un, 0));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
}

/// A registration over TCP names its registrar's connection among those the shell keeps
/// open however quiet (a registrar reaching a gateway behind NAT sends its calls back over
/// it); once the registration is removed, no more. Before, the connection the gateway
/// opened was closed after 5 idle minutes, and the binding pointed at nothing until the
/// next refresh.
#[test]
fn a_registration_over_tcp_keeps_its_connection_named() {
    let mut h = H::with(registering_over_tcp());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&reg, 3600));
    let named: Vec<Target> = h.core.tcp_targets().collect();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0].addr.to_string(), CARRIER_A);
    assert_eq!(named[0].transport, Transport::Tcp);
    h.reload(Arc::new(with_credentials(&["carrier-a"])));
    let un = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&un, 0));
    assert_eq!(h.core.tcp_targets().count(), 0, "no registration left");
    // Over UDP, nothing to keep.
    let mut h = H::with(registering());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&reg, 3600));
    assert_eq!(h.core.tcp_targets().count(), 0);
}

#[test]
fn a_reload_that_drops_register_unregisters() {
    let mut h = H::with(registering());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&reg, 3600));
    h.reload(Arc::new(with_credentials(&["carrier-a"])));
    let un = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(un.header(&Hdr::named("Expires")).as_deref(), Some("0"));
    h.recv_msg(CARRIER_A, registrar_ok(&un, 0));
    assert!(h.core.registrations().is_empty());
}

#[test]
fn a_relayed_reinvite_is_answered_or_refused_with_403_never_with_the_challenge() {
    for creds in [true, false] {
        let names: &[&str] = if creds { &["carrier-a"] } else { &[] };
        let mut h = H::with(with_credentials(names));
        let (_inv, ok) = match creds {
            true => authenticated_call(&mut h),
            false => answered_call(&mut h),
        };
        let tag = ok.to_tag().unwrap();
        h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre1", SDP));
        let re = h.one_request(CARRIER_A, Method::Invite);
        h.take(PHONE);
        h.recv_msg(CARRIER_A, challenge(&re, 407, "m1", false));
        if creds {
            let again = h.one_request(CARRIER_A, Method::Invite);
            assert!(again.header(&Hdr::PROXY_AUTHORIZATION).is_some());
            assert_eq!(again.cseq().unwrap().0, re.cseq().unwrap().0 + 1);
            assert!(h.statuses(PHONE).is_empty());
        } else {
            assert_eq!(h.statuses(PHONE), vec![403]);
        }
    }
}

/// The ACK of a re-INVITE's 2xx carries that re-INVITE's credentials (RFC 3261 §13.2.2.4),
/// whether they were asked for by a challenge or sent up front. Before, only the first
/// INVITE's ACK had them, and a proxy checking every request in the dialog dropped the ACK.
#[test]
fn the_ack_of_a_reinvite_carries_its_credentials() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let (_inv, ok) = authenticated_call(&mut h);
    let tag = ok.to_tag().unwrap();
    // Challenged: the credentials of the INVITE sent again.
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre1", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    h.take(PHONE);
    h.recv_msg(CARRIER_A, challenge(&re, 407, "m1", false));
    let again = h.one_request(CARRIER_A, Method::Invite);
    let cred = again
        .header(&Hdr::PROXY_AUTHORIZATION)
        .expect("credentials");
    h.recv_msg(CARRIER_A, reply(&again, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(h.statuses(PHONE), vec![200]);
    h.recv(PHONE, &from_phone("ACK", &tag, 2, "z9hG4bKack2", ""));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap().0, again.cseq().unwrap().0);
    assert_eq!(ack.header(&Hdr::PROXY_AUTHORIZATION), Some(cred));
    // Up front: the next re-INVITE carries credentials from the start, and so does its ACK.
    h.recv(PHONE, &from_phone("INVITE", &tag, 3, "z9hG4bKre2", SDP));
    let re = h.one_request(CARRIER_A, Method::Invite);
    let cred = re
        .header(&Hdr::PROXY_AUTHORIZATION)
        .expect("credentials up front");
    h.take(PHONE);
    h.recv_msg(CARRIER_A, reply(&re, 200, "carrier1", &[], Some(SDP)));
    assert_eq!(h.statuses(PHONE), vec![200]);
    h.recv(PHONE, &from_phone("ACK", &tag, 3, "z9hG4bKack3", ""));
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(ack.cseq().unwrap().0, re.cseq().unwrap().0);
    assert_eq!(ack.header(&Hdr::PROXY_AUTHORIZATION), Some(cred));
}

/// An ITSP that challenges every request in the dialog challenges our PRACK: it is sent
/// again with credentials, and later PRACKs carry them up front. Before, the challenge
/// counted as a refusal of PRACK (`on_405`): no more PRACKs, or the call failed with 502.
#[test]
fn a_challenged_prack_is_sent_again_with_credentials() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let inv = authenticated_invite(&mut h);
    let reliable = |status: u16, rseq: &str| {
        reply(
            &inv,
            status,
            "c1",
            &[
                (Hdr::REQUIRE, "100rel"),
                (Hdr::RSEQ, rseq),
                (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
            ],
            None,
        )
    };
    h.recv_msg(CARRIER_A, reliable(180, "1"));
    let pr = h.one_request(CARRIER_A, Method::Prack);
    let up_front = pr.header(&Hdr::PROXY_AUTHORIZATION).unwrap();
    assert!(up_front.contains("nonce=\"ip1\""), "{up_front}");
    h.recv_msg(CARRIER_A, challenge(&pr, 407, "p1", false));
    let again = h.one_request(CARRIER_A, Method::Prack);
    let creds = again
        .header(&Hdr::PROXY_AUTHORIZATION)
        .expect("credentials");
    assert!(creds.contains("nonce=\"p1\""), "{creds}");
    assert_eq!(again.cseq().unwrap().0, pr.cseq().unwrap().0 + 1);
    assert_eq!(again.header(&Hdr::RACK), pr.header(&Hdr::RACK));
    h.recv_msg(CARRIER_A, reply(&again, 200, "c1", &[], None));
    // Not given up: the next reliable provisional is PRACKed, with credentials up front.
    h.recv_msg(CARRIER_A, reliable(183, "2"));
    let next = h.one_request(CARRIER_A, Method::Prack);
    assert!(next.header(&Hdr::PROXY_AUTHORIZATION).is_some());
    let rack = format!("2 {} INVITE", inv.seq());
    assert_eq!(next.header(&Hdr::RACK), Some(rack));
}

/// Two forked branches PRACKed in turn, both PRACKs in flight: a challenge to the first is
/// answered as well as one to the second. Before, only the last PRACK sent was kept for
/// that, and the first one's challenge counted as the peer refusing PRACK.
#[test]
fn a_challenge_to_either_of_two_branches_pracks_is_answered() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let inv = authenticated_invite(&mut h);
    let reliable = |tag: &str| {
        reply(
            &inv,
            180,
            tag,
            &[
                (Hdr::REQUIRE, "100rel"),
                (Hdr::RSEQ, "1"),
                (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
            ],
            None,
        )
    };
    h.recv_msg(CARRIER_A, reliable("c1"));
    let first = h.one_request(CARRIER_A, Method::Prack);
    h.recv_msg(CARRIER_A, reliable("c2"));
    let second = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(second.to_tag().as_deref(), Some("c2"));
    h.recv_msg(CARRIER_A, challenge(&first, 407, "p1", false));
    let again = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(again.to_tag().as_deref(), Some("c1"));
    assert!(again.header(&Hdr::PROXY_AUTHORIZATION).is_some());
    h.recv_msg(CARRIER_A, challenge(&second, 407, "p2", false));
    let again = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(again.to_tag().as_deref(), Some("c2"));
    assert!(h.cdrs.is_empty(), "no refusal of PRACK failed the call");
}

/// A relayed REFER the carrier challenges goes again with credentials and a new CSeq: the
/// transferee's NOTIFYs name that CSeq, and still reach the referrer naming its own REFER.
#[test]
fn a_challenged_refer_is_known_by_the_cseq_it_went_again_with() {
    let mut h = H::with(config_with(|name, p| {
        if name == "carrier-a" {
            p.auth = Some(Arc::new(Credentials {
                username: "trunkuser".into(),
                password: Secret::new("trunk-secret"),
                realm: None,
                algorithms: Algorithm::ALL.to_vec(),
                in_dialog: Default::default(),
            }));
        }
        if name == "pbx" {
            p.transfer = crate::interop::transfer::TransferMode::Relay;
            p.transfer_to_trunks = true;
        }
    }));
    let (inv, ok) = authenticated_call(&mut h);
    let tag = ok.to_tag().unwrap();
    let refer = from_phone("REFER", &tag, 2, "z9hG4bKrf2", "").replace(
        "Content-Length: 0",
        "Refer-To: <sip:+8610456@10.0.0.9>\r\nContent-Length: 0",
    );
    h.recv(PHONE, &refer);
    let first = h.one_request(CARRIER_A, Method::Refer);
    h.recv_msg(CARRIER_A, challenge(&first, 407, "r1", false));
    let again = h.one_request(CARRIER_A, Method::Refer);
    assert!(again.seq() > first.seq());
    h.recv_msg(CARRIER_A, reply(&again, 202, "carrier1", &[], None));
    let event = format!("refer;id={}", again.seq());
    let notify = carrier_notify(&inv, 1, "z9hG4bKrn1", &event, "active;expires=60");
    h.recv(CARRIER_A, &notify);
    let n = h.one_request(PHONE, Method::Notify);
    assert_eq!(n.header(&Hdr::EVENT).as_deref(), Some("refer;id=2"));
}

/// An INVITE sent again with credentials gets its peer's `[sip] invite_timeout_s` afresh:
/// a peer that challenges and then says nothing is given up then. Before, the challenge
/// disarmed the timer and the caller waited for Timer B.
#[test]
fn an_invite_sent_again_with_credentials_is_given_up_if_unheard() {
    let mut cfg = with_credentials(&["carrier-a"]);
    let mut p = (**cfg.profile(&PeerName("carrier-a".into())).unwrap()).clone();
    p.invite_timeout = Some(Duration::from_secs(3));
    cfg.profiles.insert(p.name.clone(), Arc::new(p));
    let mut h = H::with(cfg);
    let inv = phone_invites(&mut h);
    h.advance(Duration::from_secs(2));
    h.take(CARRIER_A);
    h.recv_msg(CARRIER_A, challenge(&inv, 407, "n1", false));
    let again = h.one_request(CARRIER_A, Method::Invite);
    assert!(again.header(&Hdr::named("Proxy-Authorization")).is_some());
    h.advance(Duration::from_millis(2900));
    assert!(h.take_requests(CARRIER_B, Method::Invite).is_empty());
    h.advance(Duration::from_millis(200));
    assert_eq!(h.take_requests(CARRIER_B, Method::Invite).len(), 1);
}

/// A relayed re-INVITE sent again after the carrier's 422 carries fresh credentials (the
/// next nonce count), not the first send's again under a new CSeq: a server that checks
/// nonce counts takes that for a replay.
#[test]
fn a_request_sent_again_after_422_is_signed_afresh() {
    let mut cfg = with_credentials(&["carrier-a"]);
    if let Some(p) = cfg.profiles.get_mut(&PeerName("carrier-a".into())) {
        Arc::make_mut(p).session_timer = crate::interop::session_timer::SessionTimerPolicy {
            mode: crate::interop::session_timer::TimerMode::Require,
            expires: Duration::from_secs(300),
            min_se: Duration::from_secs(90),
        };
    }
    let mut h = H::with(cfg);
    let inv = phone_invites(&mut h);
    h.recv_msg(CARRIER_A, challenge(&inv, 407, "n1", false));
    let again = h.one_request(CARRIER_A, Method::Invite);
    let ok = [
        (Hdr::CONTACT, "<sip:c@127.0.0.3>"),
        (Hdr::SESSION_EXPIRES, "300;refresher=uac"),
    ];
    h.recv_msg(CARRIER_A, reply(&again, 200, "carrier1", &ok, Some(SDP)));
    let tag = h.response_with(PHONE, 200, "200").to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKack1", ""));
    h.take(CARRIER_A);
    let hold = SDP
        .replace("o=- 1 1 ", "o=- 1 2 ")
        .replace("PCMU/8000\r\n", "PCMU/8000\r\na=sendonly\r\n");
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKre2", &hold));
    let re = h.one_request(CARRIER_A, Method::Invite);
    let first = re.header(&Hdr::PROXY_AUTHORIZATION).expect("credentials");
    h.recv_msg(
        CARRIER_A,
        reply(&re, 422, "carrier1", &[(Hdr::MIN_SE, "1800")], None),
    );
    let sent_again = h.one_request(CARRIER_A, Method::Invite);
    let cred = sent_again
        .header(&Hdr::PROXY_AUTHORIZATION)
        .expect("credentials");
    assert_ne!(cred, first);
    assert!(cred.contains("nc=00000003"), "{cred}");
}

/// Branches t1 and t2 rang, then the proxy's 407 ended them: the INVITE sent again with
/// credentials has branches of its own. Before, side B kept t1 and t2: an INFO in their
/// dialogs went on to the caller (now 481, those dialogs are gone), and the new branch t3
/// was taken for one of several.
#[test]
fn an_invite_sent_again_after_a_challenge_forgets_the_branches_of_the_first() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let inv = phone_invites(&mut h);
    for tag in ["t1", "t2"] {
        let contact = format!("<sip:{tag}@127.0.0.3>");
        let ring = reply(&inv, 180, tag, &[(Hdr::CONTACT, contact.as_str())], None);
        h.recv_msg(CARRIER_A, ring);
    }
    h.take(PHONE);
    h.recv_msg(CARRIER_A, challenge(&inv, 407, "n1", false));
    let again = h.one_request(CARRIER_A, Method::Invite);
    let ring = reply(
        &again,
        180,
        "t3",
        &[(Hdr::CONTACT, "<sip:t3@127.0.0.4>")],
        None,
    );
    h.recv_msg(CARRIER_A, ring);
    h.take(PHONE);
    for (tag, branch) in [("t1", "z9hG4bKgone1"), ("t2", "z9hG4bKgone2")] {
        h.recv(
            CARRIER_A,
            &from_carrier_in(&again, "INFO", tag, 7, branch, ""),
        );
        assert_eq!(
            h.statuses(CARRIER_A),
            [481],
            "{tag}'s dialog ended with the 407"
        );
        assert!(
            h.take(PHONE).is_empty(),
            "nothing of {tag} reaches the caller"
        );
    }
    h.recv(
        CARRIER_A,
        &from_carrier_in(&again, "INFO", "t3", 7, "z9hG4bKlive", ""),
    );
    h.one_request(PHONE, Method::Info);
}

/// A second branch's 2xx to the challenged INVITE (a forking proxy) is ACKed with the
/// INVITE's credentials (RFC 3261 §13.2.2.4) and hung up with a BYE carrying them up front.
/// Before, both went without: a carrier that challenges its dialogs' requests refused the
/// BYE, and that branch stayed up and billed.
#[test]
fn a_second_branchs_2xx_is_acked_and_hung_up_with_credentials() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let inv = phone_invites(&mut h);
    h.recv_msg(CARRIER_A, challenge(&inv, 407, "n1", false));
    let again = h.one_request(CARRIER_A, Method::Invite);
    h.carrier_answers(&again, "t1", SDP);
    h.take(CARRIER_A);
    h.recv_msg(
        CARRIER_A,
        reply(
            &again,
            200,
            "t2",
            &[(Hdr::CONTACT, "<sip:t2@127.0.0.3>")],
            Some(SDP),
        ),
    );
    let sent = h.requests_to(CARRIER_A);
    let of = |m: Method| sent.iter().find(|r| r.method() == m).cloned();
    let ack = of(Method::Ack).expect("the second branch's 2xx is ACKed");
    let bye = of(Method::Bye).expect("and hung up");
    assert_eq!(ack.to_tag().as_deref(), Some("t2"));
    assert!(ack.header(&Hdr::PROXY_AUTHORIZATION).is_some(), "{ack:?}");
    assert!(bye.header(&Hdr::PROXY_AUTHORIZATION).is_some(), "{bye:?}");
}

/// A second branch's 2xx hung up, and its BYE challenged (a registrar-style nonce per
/// request): answered with credentials, to that branch and in its dialog, or the branch
/// stays up at the carrier and billed. Answered once; the call's own dialog is untouched.
#[test]
fn a_challenge_to_a_second_branchs_bye_is_answered() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let (inv, ok) = authenticated_call(&mut h);
    second_fork_answers(&mut h, &inv);
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(bye.to_tag().as_deref(), Some("fork2"));
    h.recv_msg(CARRIER_A, challenge(&bye, 401, "f1", false));
    let again = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(again.to_tag().as_deref(), Some("fork2"));
    assert_eq!(again.uri(), bye.uri());
    assert_eq!(again.call_id(), bye.call_id());
    assert_eq!(again.cseq().unwrap().0, bye.cseq().unwrap().0 + 1);
    let creds = again.header(&Hdr::AUTHORIZATION).unwrap();
    assert!(creds.contains("nonce=\"f1\""), "{creds}");
    // Refused again: given up.
    h.recv_msg(CARRIER_A, challenge(&again, 401, "f1", false));
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    // The call goes on, and ends as usual.
    assert!(h.cdrs.is_empty());
    let tag = ok.to_tag().unwrap();
    h.recv(PHONE, &phone_bye(&tag, 2, "z9hG4bKfb1"));
    let b = h.one_request(CARRIER_A, Method::Bye);
    assert_eq!(b.to_tag().as_deref(), Some("carrier1"));
    h.recv_msg(CARRIER_A, reply(&b, 200, "carrier1", &[], None));
    assert_eq!(h.cdrs.len(), 1);
    assert_idle(&mut h);
}

/// Challenges inside a dialog are answered only on a leg whose INVITE the peer
/// authenticated. Such a request goes to the far end's Contact through the peer: a 407 to
/// it may be the far end's own, relayed, which would take home a digest of the trunk's
/// password (or a re-INVITE's, for a URI of its choosing, to spend on the carrier as the
/// trunk). So a call the carrier sent us, and a call it took without a challenge, answer no
/// challenge inside their dialogs: the request ends there, and the call as it would.
#[test]
fn a_challenge_inside_a_dialog_the_peer_never_authenticated_is_not_answered() {
    // A call from carrier-a, answered by the PBX and ACKed.
    let mut h = H::with(with_credentials(&["carrier-a"]));
    h.recv(CARRIER_A, &invite_text("in1", "z9hG4bKin1", "1000", ""));
    let inv = h.one_request(PHONE, Method::Invite);
    let contact = [(Hdr::CONTACT, "<sip:1000@127.0.0.2>")];
    h.recv_msg(PHONE, reply(&inv, 200, "pbx1", &contact, Some(SDP)));
    let ok = h.response_with(CARRIER_A, 200, "the carrier's call is answered");
    let our_tag = ok.to_tag().unwrap();
    let ack = in_dialog(
        "ACK",
        "sip:127.0.0.1:5060",
        "\"Alice\" <sip:1000@127.0.0.2>;tag=alice1",
        &format!("<sip:1000@127.0.0.1>;tag={our_tag}"),
        "in1",
        1,
        "z9hG4bKin1ack",
        "127.0.0.3:5060",
        "",
    );
    h.recv(CARRIER_A, &ack);
    h.take(PHONE);
    // Its probe challenged: not answered (the leg is asked again at the next interval).
    h.advance(crate::config::DEFAULT_PROBE + Duration::from_secs(1));
    let probe = h.take_requests(CARRIER_A, Method::Options).remove(0);
    h.recv_msg(CARRIER_A, challenge(&probe, 407, "x1", false));
    assert!(h.take_requests(CARRIER_A, Method::Options).is_empty());
    // The PBX hangs up; the BYE challenged is not answered either, and the call ends.
    let bye = in_dialog(
        "BYE",
        "sip:127.0.0.1:5060",
        &format!("{};tag=pbx1", inv.header(&Hdr::TO).unwrap()),
        &inv.header(&Hdr::FROM).unwrap(),
        &inv.call_id().unwrap(),
        1,
        "z9hG4bKin1bye",
        "127.0.0.2:5060",
        "",
    );
    h.recv(PHONE, &bye);
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, challenge(&bye, 407, "x2", false));
    let again = h.requests_to(CARRIER_A);
    assert!(
        again
            .iter()
            .all(|r| !r.has_header(&Hdr::PROXY_AUTHORIZATION)),
        "{again:?}"
    );
    assert_eq!(h.cdrs.len(), 1);

    // A call to carrier-a that it took without a challenge: its BYE challenged is not
    // answered, unless the profile says the carrier challenges only inside calls.
    for always in [false, true] {
        let mut cfg = with_credentials(&["carrier-a"]);
        let name = PeerName("carrier-a".into());
        let mut p = (**cfg.profile(&name).unwrap()).clone();
        let mut creds = (**p.auth.as_ref().unwrap()).clone();
        if always {
            creds.in_dialog = crate::auth::InDialog::Always;
        }
        p.auth = Some(Arc::new(creds));
        cfg.profiles.insert(name, Arc::new(p));
        let mut h = H::with(cfg);
        let (_inv, ok) = answered_call(&mut h);
        h.recv(PHONE, &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKnb1"));
        let bye = h.one_request(CARRIER_A, Method::Bye);
        h.recv_msg(CARRIER_A, challenge(&bye, 407, "x3", false));
        let again = h.take_requests(CARRIER_A, Method::Bye);
        assert_eq!(
            again.len(),
            usize::from(always),
            "in_dialog always: {always}"
        );
        assert!(
            again
                .iter()
                .all(|r| r.has_header(&Hdr::PROXY_AUTHORIZATION))
        );
    }
    // A call whose INVITE it authenticated: a challenge inside it for a realm the INVITE
    // was never challenged with (the far end's own, say) is not answered.
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let (_inv, ok) = authenticated_call(&mut h);
    h.recv(PHONE, &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKnb2"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    let far = "Digest realm=\"far.end.example\", nonce=\"f1\", qop=\"auth\", algorithm=MD5";
    let far = [(Hdr::named("WWW-Authenticate"), far)];
    h.recv_msg(CARRIER_A, reply(&bye, 401, "carrier1", &far, None));
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
    assert_eq!(h.cdrs.len(), 1);
}

/// After a failover, a late 2xx from the earlier peer is ACKed and hung up without the
/// credentials the call holds: they are the next peer's. Before, its ACK and BYE carried
/// the second carrier's Authorization to the first. Its ACK carries what its own INVITE
/// carried (before, nothing), its BYE its own credentials for the nonce it gave (before,
/// nothing: a carrier that challenges its dialogs' requests kept that call up, billed), and
/// a challenge to that BYE is answered with them, once; one for a realm it never challenged
/// the INVITE with is not.
#[test]
fn a_late_answer_from_an_earlier_peer_gets_none_of_the_next_peers_credentials_but_its_own() {
    let mut cfg = with_credentials(&["carrier-a", "carrier-b"]);
    given_up_after(&mut cfg, &["carrier-a"]);
    let mut h = H::with(cfg);
    let (a_again, b_again) = challenged_by_a_then_b(&mut h);
    assert_eq!(b_again.seq(), a_again.seq(), "the same CSeq on both");
    // carrier-a answers late, to the INVITE it challenged.
    let contact = [(Hdr::CONTACT, "<sip:late@127.0.0.3>")];
    h.recv_msg(
        CARRIER_A,
        reply(&a_again, 200, "late1", &contact, Some(SDP)),
    );
    let sent = h.requests_to(CARRIER_A);
    let of = |m: Method| sent.iter().find(|r| r.method() == m).cloned();
    let ack = of(Method::Ack).expect("the late 2xx is ACKed");
    let bye = of(Method::Bye).expect("and hung up");
    // The ACK carries what carrier-a's own INVITE carried (RFC 3261 §13.2.2.4), the BYE
    // carrier-a's own for the nonce it gave: carrier-b's credentials go to neither.
    let theirs = a_again
        .header(&Hdr::AUTHORIZATION)
        .expect("a's INVITE signed");
    assert_eq!(
        ack.header(&Hdr::AUTHORIZATION),
        Some(theirs.clone()),
        "{ack:?}"
    );
    assert_ne!(b_again.header(&Hdr::AUTHORIZATION), Some(theirs));
    let signed = |r: &Request| r.header(&Hdr::AUTHORIZATION).unwrap_or_default();
    assert!(signed(&bye).contains("nonce=\"a1\""), "{bye:?}");
    assert!(!signed(&bye).contains("b1") && !bye.has_header(&Hdr::PROXY_AUTHORIZATION));
    // carrier-a challenges the BYE anew (its nonce went stale): answered with its own.
    h.recv_msg(CARRIER_A, challenge(&bye, 401, "a2", true));
    let again = h.one_request(CARRIER_A, Method::Bye);
    assert!(signed(&again).contains("nonce=\"a2\""), "{again:?}");
    assert_eq!(again.seq(), bye.seq() + 1);
    assert!(h.requests_to(CARRIER_B).is_empty(), "nothing to carrier-b");
    // A challenge for a realm carrier-a never gave is not answered.
    h.recv_msg(CARRIER_A, challenge(&again, 407, "a3", false));
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
}

/// The same for an earlier peer that let the call in without a challenge but challenges
/// inside calls (`in_dialog = "always"`, a carrier that admits by address): a challenge to
/// the BYE of its late 2xx is answered with its own credentials. Before, only a peer that
/// challenged the INVITE was kept, and this BYE's 401 was ignored (the call stayed up there).
#[test]
fn a_late_answer_from_an_earlier_peer_that_challenges_inside_calls_is_hung_up() {
    let mut cfg = with_credentials(&["carrier-a"]);
    given_up_after(&mut cfg, &["carrier-a"]);
    challenges_inside_calls(&mut cfg, "carrier-a");
    let mut h = H::with(cfg);
    let inv = phone_invites(&mut h);
    h.advance(Duration::from_secs(4));
    h.take(CARRIER_A);
    assert!(
        !h.take_requests(CARRIER_B, Method::Invite).is_empty(),
        "failed over"
    );
    let contact = [(Hdr::CONTACT, "<sip:late@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "late2", &contact, Some(SDP)));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    assert!(
        !bye.has_header(&Hdr::AUTHORIZATION),
        "no challenge seen yet"
    );
    h.recv_msg(CARRIER_A, challenge(&bye, 401, "a9", false));
    let again = h.one_request(CARRIER_A, Method::Bye);
    let signed = again.header(&Hdr::AUTHORIZATION).unwrap_or_default();
    assert!(signed.contains("nonce=\"a9\""), "{again:?}");
    assert!(
        h.requests_to(CARRIER_B)
            .iter()
            .all(|r| r.method() != Method::Bye)
    );
}

/// `name`'s `[auth] in_dialog` is `"always"`: it challenges requests inside calls whether
/// or not it challenged their INVITE.
fn challenges_inside_calls(cfg: &mut Config, name: &str) {
    let name = PeerName(name.into());
    let mut p = (**cfg.profile(&name).unwrap()).clone();
    let mut creds = (**p.auth.as_ref().unwrap()).clone();
    creds.in_dialog = crate::auth::InDialog::Always;
    p.auth = Some(Arc::new(creds));
    cfg.profiles.insert(name, Arc::new(p));
}

/// `names`' INVITEs are given up after 3 s of silence (`invite_timeout`).
fn given_up_after(cfg: &mut Config, names: &[&str]) {
    for name in names {
        let mut p = (**cfg.profile(&PeerName((*name).into())).unwrap()).clone();
        p.invite_timeout = Some(Duration::from_secs(3));
        cfg.profiles.insert(p.name.clone(), Arc::new(p));
    }
}

/// The phone's call: carrier-a challenges, is answered, then says nothing and is given up;
/// carrier-b, tried next, challenges too and is answered. Both INVITEs sent again.
fn challenged_by_a_then_b(h: &mut H) -> (Request, Request) {
    let inv = phone_invites(h);
    h.recv_msg(CARRIER_A, challenge(&inv, 401, "a1", false));
    let a_again = h.one_request(CARRIER_A, Method::Invite);
    h.advance(Duration::from_secs(4));
    h.take(CARRIER_A);
    let b_inv = h.take_requests(CARRIER_B, Method::Invite).remove(0);
    h.recv_msg(CARRIER_B, challenge(&b_inv, 401, "b1", false));
    let b_again = h.one_request(CARRIER_B, Method::Invite);
    (a_again, b_again)
}

/// A callee that answered without a To tag (RFC 2543) gets our re-INVITEs without one
/// too: such a re-INVITE challenged is no call's first INVITE, and is not answered when
/// the peer took the call without a challenge (the far end behind a carrier that passes
/// its answers on could otherwise get a digest of the trunk's password for a URI of its
/// choosing). Before, a re-INVITE without a To tag passed for the first INVITE.
#[test]
fn a_reinvite_to_a_tagless_callee_is_no_first_invite_to_a_challenge() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKtl9", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, tagless_2xx(&inv, "<sip:c@127.0.0.3>", SDP));
    let tag = h.response_with(PHONE, 200, "answered").to_tag().unwrap();
    h.recv(PHONE, &from_phone("ACK", &tag, 1, "z9hG4bKtl9a", ""));
    h.take(CARRIER_A);
    let hold = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv(PHONE, &from_phone("INVITE", &tag, 2, "z9hG4bKtl9r", &hold));
    let re = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(re.to_tag(), None);
    h.recv_msg(CARRIER_A, challenge(&re, 401, "t9", false));
    let again = h.requests_to(CARRIER_A);
    assert!(
        again.iter().all(|r| !r.has_header(&Hdr::AUTHORIZATION)),
        "{again:?}"
    );
    assert_eq!(
        h.statuses(PHONE),
        vec![100, 403],
        "refused, never the challenge"
    );
}

/// Two earlier peers that both challenged, each given up in turn: a late 2xx from the
/// first is ACKed with what its own INVITE carried. Before, only the last earlier peer's
/// credentials were kept, and the first one's ACK carried none.
#[test]
fn a_late_answer_from_the_first_of_two_earlier_peers_gets_its_own_credentials() {
    let mut cfg = with_credentials(&["carrier-a", "carrier-b"]);
    given_up_after(&mut cfg, &["carrier-a", "carrier-b"]);
    let (name, c) = profile("carrier-c", Role::Trunk, "127.0.0.5");
    cfg.profiles.insert(name, c);
    cfg.routes[0].to.push(PeerName("carrier-c".into()));
    let mut h = H::with(cfg);
    let (a_again, _) = challenged_by_a_then_b(&mut h);
    h.advance(Duration::from_secs(4));
    h.take(CARRIER_B);
    assert!(
        !h.take_requests("127.0.0.5:5060", Method::Invite).is_empty(),
        "carrier-c tried"
    );
    let contact = [(Hdr::CONTACT, "<sip:late@127.0.0.3>")];
    h.recv_msg(
        CARRIER_A,
        reply(&a_again, 200, "late1", &contact, Some(SDP)),
    );
    let ack = h.one_request(CARRIER_A, Method::Ack);
    assert_eq!(
        ack.header(&Hdr::AUTHORIZATION),
        a_again.header(&Hdr::AUTHORIZATION),
        "{ack:?}"
    );
    assert!(ack.header(&Hdr::AUTHORIZATION).is_some());
}

/// A reload's `[auth] in_dialog` reaches the calls up, as its password does: a call carrier-a
/// took without a challenge, whose BYE it challenges after a reload to `in_dialog =
/// "always"`, is answered. Before, the mode was read from the profile the call began with.
#[test]
fn a_reloaded_in_dialog_mode_reaches_the_calls_up() {
    let mut h = H::with(with_credentials(&["carrier-a"]));
    let (_inv, ok) = answered_call(&mut h);
    let mut cfg = with_credentials(&["carrier-a"]);
    challenges_inside_calls(&mut cfg, "carrier-a");
    h.reload(Arc::new(cfg));
    h.recv(PHONE, &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKrl1"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.recv_msg(CARRIER_A, challenge(&bye, 407, "r1", false));
    let again = h.one_request(CARRIER_A, Method::Bye);
    assert!(again.has_header(&Hdr::PROXY_AUTHORIZATION));
}

/// Behind a front, the registration binds the front's address (where the carrier reaches
/// the gateway, and the front spreads its calls over the instances), and an instance that
/// stops leaves that binding to the others' refreshes: no `Expires: 0`. Before, each
/// instance bound its own address (private, behind a front, or one the carrier's calls
/// would reach around the front), and a stopping one removed what it bound.
#[test]
fn behind_a_front_the_registration_binds_the_fronts_address_and_outlives_an_instance() {
    let mut cfg = registering();
    cfg.front = Some(Target::udp(addr("127.0.0.10:5060")));
    let mut h = H::with(cfg);
    h.apply();
    let reg = h.one_request("127.0.0.10:5060", Method::Register);
    let contact = reg.header(&Hdr::CONTACT).unwrap();
    assert!(contact.contains("@127.0.0.10:5060"), "{contact}");
    h.recv_msg("127.0.0.10:5060", registrar_ok(&reg, 3600));
    h.input(Input::Drain);
    assert!(
        h.take_requests("127.0.0.10:5060", Method::Register)
            .is_empty(),
        "no Expires: 0"
    );
    assert!(!h.core.busy());
}

/// A registrar that never answered (its REGISTER timed out, so its binding may hold) is
/// moved by a reload to another address: the removal goes to the old one, and the new
/// REGISTER goes at once, not after that removal's 32 s (one that answered is waited for:
/// the test above). Before, the corrected registration waited for it, and the trunk's
/// calls kept failing meanwhile.
#[test]
fn a_registrar_moved_by_a_reload_is_registered_at_once() {
    let mut h = H::with(registering());
    h.apply();
    h.one_request(CARRIER_A, Method::Register);
    h.advance(Duration::from_secs(33));
    h.take(CARRIER_A);
    let mut moved = registering();
    let p = moved
        .profiles
        .get_mut(&PeerName("carrier-a".into()))
        .unwrap();
    let mut q = (**p).clone();
    q.address = Target::udp(addr("127.0.0.9:5060"));
    *p = Arc::new(q);
    h.reload(Arc::new(moved));
    let removal = h.take_requests(CARRIER_A, Method::Register);
    assert_eq!(
        removal
            .iter()
            .map(|r| r.header(&Hdr::named("Expires")))
            .collect::<Vec<_>>(),
        [Some("0".to_string())],
        "the old binding removed where it may be"
    );
    assert_eq!(h.take_requests("127.0.0.9:5060", Method::Register).len(), 1);
}

/// Behind a front, a reload of one instance that drops the registration (or moves it: a new
/// contact user) leaves the binding to the other instances, as a stop does. Before, the
/// instance reloaded first sent `Expires: 0` for the binding all of them share, and the
/// trunk's calls failed until another's next refresh (some 45 minutes at 3,600 s).
#[test]
fn behind_a_front_a_reload_that_drops_the_registration_leaves_the_binding() {
    let fronted = |mut cfg: Config| {
        cfg.front = Some(Target::udp(addr("127.0.0.10:5060")));
        cfg
    };
    let mut h = H::with(fronted(registering()));
    h.apply();
    let reg = h.one_request("127.0.0.10:5060", Method::Register);
    h.recv_msg("127.0.0.10:5060", registrar_ok(&reg, 3600));
    let moved = fronted(registering_with(|r| r.contact_user = "other".into()));
    h.reload(Arc::new(moved));
    let sent = h.take_requests("127.0.0.10:5060", Method::Register);
    let expires: Vec<_> = (sent.iter())
        .map(|r| r.header(&Hdr::named("Expires")))
        .collect();
    assert_eq!(
        expires,
        [Some("3600".to_string())],
        "the new one only, no Expires: 0"
    );
    let mut dropped = fronted(registering());
    let p = dropped
        .profiles
        .get_mut(&PeerName("carrier-a".into()))
        .unwrap();
    let mut q = (**p).clone();
    q.register = None;
    *p = Arc::new(q);
    h.reload(Arc::new(dropped));
    assert!(
        h.take_requests("127.0.0.10:5060", Method::Register)
            .is_empty(),
        "no Expires: 0"
    );
}

/// A challenge to a request sent before a reload and answered after it is judged with the
/// credentials that would answer it, the reload's: here they allow SHA-256 as well as MD5,
/// and a second challenge of the far end's realm in SHA-256 is refused with the first.
/// Before, the realms were judged with the old credentials (MD5 only: the far end's
/// challenge was not among those they would answer, so the check passed) and the new ones
/// then answered both, the far end's too.
#[test]
fn a_challenge_across_a_reload_is_judged_with_the_credentials_that_answer_it() {
    let creds = |algorithms: &[Algorithm]| {
        let algorithms = algorithms.to_vec();
        config_with(move |name, p| {
            if name == "carrier-a" {
                p.auth = Some(Arc::new(Credentials {
                    username: "trunkuser".into(),
                    password: Secret::new("trunk-secret"),
                    realm: None,
                    algorithms: algorithms.clone(),
                    in_dialog: Default::default(),
                }));
            }
        })
    };
    let mut h = H::with(creds(&[Algorithm::Md5]));
    let (_inv, ok) = authenticated_call(&mut h);
    h.recv(PHONE, &phone_bye(&ok.to_tag().unwrap(), 2, "z9hG4bKrx1"));
    let bye = h.one_request(CARRIER_A, Method::Bye);
    h.reload(Arc::new(creds(&Algorithm::ALL)));
    let both = [
        (
            Hdr::named("Proxy-Authenticate"),
            "Digest realm=\"proxy.carrier.example\", nonce=\"p9\", qop=\"auth\", algorithm=MD5",
        ),
        (
            Hdr::named("Proxy-Authenticate"),
            "Digest realm=\"far.end.example\", nonce=\"chosen\", qop=\"auth\", algorithm=SHA-256",
        ),
    ];
    h.recv_msg(CARRIER_A, reply(&bye, 407, "carrier1", &both, None));
    assert!(h.take_requests(CARRIER_A, Method::Bye).is_empty());
}

/// A reload that drops a registration sends its `Expires: 0` again when the registrar
/// answers it 5xx (after the back-off, as long as the binding may be held); one that wants
/// the binding back meanwhile sends no more removal, and registers it anew at once.
#[test]
fn a_dropped_registrations_failed_removal_is_tried_again_unless_it_is_wanted_back() {
    let (mut h, reg) = registered_then_reloaded(with_credentials(&["carrier-a"]));
    let un = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(un.header(&Hdr::named("Expires")).as_deref(), Some("0"));
    h.recv_msg(CARRIER_A, reply(&un, 503, "reg1", &[], None));
    h.advance(Duration::from_secs(9));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    h.advance(Duration::from_secs(1));
    let again = h.one_request(CARRIER_A, Method::Register);
    assert_eq!(again.header(&Hdr::named("Expires")).as_deref(), Some("0"));
    assert_eq!(again.call_id(), reg.call_id());
    h.recv_msg(CARRIER_A, registrar_ok(&again, 0));
    h.advance(Duration::from_secs(600));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    assert!(h.core.registrations().is_empty());

    // Wanted back while the next try waits: registered anew, the removal not sent.
    let (mut h, reg) = registered_then_reloaded(with_credentials(&["carrier-a"]));
    let un = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, reply(&un, 500, "reg1", &[], None));
    h.reload(Arc::new(registering()));
    let fresh = h.one_request(CARRIER_A, Method::Register);
    assert_ne!(fresh.call_id(), reg.call_id());
    registered_anew(&mut h, &fresh);

    // Wanted back while the removal is still out: the new registration waits for its
    // answer, and the failed removal is not tried again over it. Before, it was, 10 s
    // later, and removed the binding just registered.
    let (mut h, _reg) = registered_then_reloaded(with_credentials(&["carrier-a"]));
    let un = h.one_request(CARRIER_A, Method::Register);
    h.reload(Arc::new(registering()));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    h.recv_msg(CARRIER_A, reply(&un, 503, "reg1", &[], None));
    let fresh = h.one_request(CARRIER_A, Method::Register);
    registered_anew(&mut h, &fresh);
}

/// `fresh` registers carrier-a anew (for an hour): the registrar takes it, and a minute
/// later nothing more has gone (no removal tried over it) and carrier-a is registered.
fn registered_anew(h: &mut H, fresh: &Request) {
    assert_eq!(
        fresh.header(&Hdr::named("Expires")).as_deref(),
        Some("3600")
    );
    h.recv_msg(CARRIER_A, registrar_ok(fresh, 3600));
    h.advance(Duration::from_secs(60));
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    assert_eq!(
        h.core.registrations(),
        vec![(PeerName("carrier-a".into()), true)]
    );
}

/// A registration's timer whose handling panics (a defect, caught) rests a second before
/// the next look, and the refresh goes once the defect is gone. Before, the look stayed due
/// at once: the shell's loop fired it for ever, its SIP queues unread.
#[test]
fn a_registration_timer_that_panics_rests_rather_than_firing_for_ever() {
    use crate::call::router::FaultPlace;
    use crate::call::router::fault::test_fault;
    let mut h = H::with(registering());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    h.recv_msg(CARRIER_A, registrar_ok(&reg, 10));
    test_fault::arm(FaultPlace::Core, u32::MAX);
    // Ten seconds of the core's timers: the refresh comes due at 75-85 % of the 10 s.
    let end = h.now + Duration::from_secs(10);
    let mut looks = 0;
    while let Some(at) = h.core.poll_timeout().filter(|at| *at <= end) {
        looks += 1;
        assert!(
            looks < 100,
            "the registration's timer fires at once, again and again"
        );
        h.now = h.now.max(at);
        h.core.handle_timeout(h.now);
        h.apply();
    }
    h.now = end;
    assert!(
        looks >= 2,
        "the faulting timer was looked at again ({looks})"
    );
    assert!(h.take_requests(CARRIER_A, Method::Register).is_empty());
    test_fault::arm(FaultPlace::Core, 0);
    h.advance(Duration::from_secs(2));
    // (With its retransmissions: the stand-in registrar does not answer it.)
    assert!(!h.take_requests(CARRIER_A, Method::Register).is_empty());
}

/// An IMS registrar's `Service-Route` (RFC 3608) in its 200 to our REGISTER: the peer's
/// calls' INVITEs (and their CANCELs) carry it as their Route, in order; the next 200
/// without one leaves them without. One the gateway will not preload (a strict router, no
/// `lr`) is not taken. Before, it was ignored and an S-CSCF that enforces it refused the
/// calls.
#[test]
fn a_registrars_service_route_is_the_route_of_the_peers_invites() {
    let routes = |r: &Request| r.header_lines(&Hdr::ROUTE);
    let mut h = H::with(registering());
    h.apply();
    let reg = h.one_request(CARRIER_A, Method::Register);
    let contact = "<sip:trunkuser@127.0.0.1:5060>;expires=3600";
    let sr = [
        (Hdr::CONTACT, contact),
        (
            Hdr::named("Service-Route"),
            "<sip:orig@scscf1.ims.example;lr>, <sip:x@icscf.ims.example;lr>",
        ),
    ];
    h.recv_msg(CARRIER_A, reply(&reg, 200, "reg1", &sr, None));
    h.recv(PHONE, &invite_text("sr1", "z9hG4bKsr1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert_eq!(
        routes(&inv).join(", "),
        "<sip:orig@scscf1.ims.example;lr>, <sip:x@icscf.ims.example;lr>"
    );
    h.recv_msg(CARRIER_A, reply(&inv, 180, "c1", &[], None));
    h.recv(PHONE, &cancel_text("sr1", "z9hG4bKsr1"));
    let cancel = h.one_request(CARRIER_A, Method::Cancel);
    assert_eq!(routes(&cancel), routes(&inv));
    // The refresh's 200 names a strict router (its `lr` outside the URI, the header's):
    // nothing is preloaded any more.
    h.advance(Duration::from_secs(3100));
    let refresh = h.take_requests(CARRIER_A, Method::Register).pop().unwrap();
    let strict = [
        (Hdr::CONTACT, contact),
        (Hdr::named("Service-Route"), "<sip:scscf2.ims.example>;lr"),
    ];
    h.recv_msg(CARRIER_A, reply(&refresh, 200, "reg1", &strict, None));
    h.take(CARRIER_A);
    h.recv(PHONE, &invite_text("sr2", "z9hG4bKsr2", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(routes(&inv).is_empty(), "{inv:?}");
}
