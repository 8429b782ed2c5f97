//! A forking proxy's branches: each early dialog is its own (RFC 3261 §12.1.2, §13.2.2.4),
//! whichever branch spoke last.

use super::prack::{reliable_183_from, with_prack};
use super::*;
use crate::media::relay::{Dir, Route, StreamRoute};

/// Branch `tag`'s 180 to our INVITE `inv`, its Contact at `host`.
fn ring(inv: &Request, tag: &str, host: &str) -> Message {
    let contact = format!("<sip:{tag}@{host}>");
    reply(inv, 180, tag, &[(Hdr::CONTACT, contact.as_str())], None)
}

/// The phone's INVITE (Call-ID `call-1@127.0.0.2`, Via `branch`) rung by two branches of
/// the carrier's forking proxy, t1 then t2: our INVITE, and our tag toward the phone.
fn two_branches_ringing(h: &mut H, branch: &str) -> (Request, String) {
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", branch, "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    for (tag, host) in [("t1", "127.0.0.3"), ("t2", "127.0.0.4")] {
        h.recv_msg(CARRIER_A, ring(&inv, tag, host));
    }
    let ours = h
        .response_with(PHONE, 180, "180")
        .to_tag()
        .unwrap_or_default();
    h.take(PHONE);
    (inv, ours)
}

/// Our PRACK `pr` to branch t1 of `inv` answered 481: the call goes on, and branch t2's
/// reliable 183 is PRACKed, whatever `on_405`.
fn t1s_481_leaves_t2_pracked(
    h: &mut H,
    inv: &Request,
    pr: &Request,
    on_405: crate::interop::prack::On405,
) {
    h.recv_msg(CARRIER_A, reply(pr, 481, "t1", &[], None));
    assert!(h.cdrs.is_empty(), "{on_405:?}: the call goes on");
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(inv, "t2", 1, "<sip:t2@127.0.0.4>", SDP),
    );
    let pr = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(pr.to_tag().as_deref(), Some("t2"), "{on_405:?}");
}

/// The SDP of branch 1's new offer (its announcement moved).
fn moved_offer() -> String {
    SDP.replace("m=audio 5008", "m=audio 5010")
        .replace("o=carrier 1 1", "o=carrier 1 2")
}

/// Branch t1 sets up early media with a reliable 183 (PRACKed), branch t2 rings after it.
/// Before, t1's early UPDATE then got 481 (the gateway followed only the branch heard
/// last): t1 took its early dialog as gone, and the caller lost the early media it heard.
#[test]
fn an_early_update_from_the_branch_heard_before_is_taken() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fk1", "z9hG4bKfk1", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "t1", 1, "<sip:t1@127.0.0.3>", SDP),
    );
    let prack = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(prack.to_tag().as_deref(), Some("t1"));
    h.recv_msg(CARRIER_A, reply(&prack, 200, "t1", &[], None));
    h.recv_msg(CARRIER_A, ring(&inv, "t2", "127.0.0.4"));
    h.take(PHONE);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "t1", 5, "z9hG4bKfk1u", &moved_offer()),
    );
    assert!(
        !h.statuses(CARRIER_A).contains(&481),
        "t1's dialog is alive"
    );
    let update = h.one_request(PHONE, Method::Update);
    assert!(String::from_utf8_lossy(update.body()).contains("m=audio"));
}

/// An INFO in the earlier branch's dialog goes on too, and a request in the dialog of a
/// branch never heard from is still refused.
#[test]
fn an_early_info_from_an_earlier_branch_goes_on_and_a_strangers_does_not() {
    let mut h = H::new();
    let (inv, _) = two_branches_ringing(&mut h, "z9hG4bKfk2");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INFO", "t1", 7, "z9hG4bKfk2i", ""),
    );
    h.one_request(PHONE, Method::Info);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INFO", "t9", 7, "z9hG4bKfk2j", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), [481]);
}

/// Each branch's CSeq is its own: t1's requests numbered low after t2 sent a high one are
/// not taken as out of order (and t2's are still judged against t2's).
#[test]
fn each_branch_keeps_its_own_request_numbers() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fk3", "z9hG4bKfk3", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, ring(&inv, "t1", "127.0.0.3"));
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INFO", "t1", 2, "z9hG4bKfk3a", ""),
    );
    h.recv_msg(CARRIER_A, ring(&inv, "t2", "127.0.0.4"));
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INFO", "t2", 50, "z9hG4bKfk3b", ""),
    );
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INFO", "t1", 3, "z9hG4bKfk3c", ""),
    );
    assert_eq!(h.take_requests(PHONE, Method::Info).len(), 3);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INFO", "t2", 49, "z9hG4bKfk3d", ""),
    );
    assert!(h.statuses(CARRIER_A).contains(&500), "lower than t2's last");
}

/// A branch whose provisional has no Record-Route has no route set, whatever the branch
/// heard before it had (RFC 3261 §12.1.2): our PRACK to it carries no Route. Before, it
/// went by the other branch's proxy route.
#[test]
fn a_new_branch_does_not_take_the_route_of_the_branch_before() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fk4", "z9hG4bKfk4", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            180,
            "t1",
            &[
                (Hdr::CONTACT, "<sip:t1@127.0.0.3>"),
                (Hdr::RECORD_ROUTE, "<sip:proxy-of-t1.example;lr>"),
            ],
            None,
        ),
    );
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "t2", 1, "<sip:t2@127.0.0.4>", SDP),
    );
    let prack = h.one_request(CARRIER_A, Method::Prack);
    assert_eq!(prack.to_tag().as_deref(), Some("t2"));
    assert!(!prack.has_header(&Hdr::ROUTE), "{prack:?}");
}

/// Our PRACK to one branch answered 481 (that branch ended as it went) while another branch
/// was heard leaves PRACK on for the others, and fails nothing even where `on_405 =
/// "fail"`. Before, PRACK was given up for the whole call: the next branch's reliable 183
/// went unacknowledged, so it could not send its 2xx (RFC 3262 §3) and failed the call
/// after 32 s; with "fail", the call failed at once. (From the only branch heard, a 481 is
/// a refusal as before: `prack::prack_481_*`.)
#[test]
fn a_481_to_one_branchs_prack_leaves_the_other_branches_prack() {
    use crate::interop::prack::{On405, PrackMode};
    for on_405 in [On405::Continue, On405::Fail] {
        let mut h = with_prack("carrier-a", PrackMode::Supported, on_405);
        h.recv(PHONE, &invite_text("fk5", "z9hG4bKfk5", "+8610123", ""));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        h.recv_msg(
            CARRIER_A,
            reliable_183_from(&inv, "t1", 1, "<sip:t1@127.0.0.3>", SDP),
        );
        let pr = h.one_request(CARRIER_A, Method::Prack);
        h.recv_msg(CARRIER_A, ring(&inv, "t2", "127.0.0.4"));
        t1s_481_leaves_t2_pracked(&mut h, &inv, &pr, on_405);
    }
}

/// Two branches ringing; the one heard first sends BYE in its early dialog (RFC 3261 §15
/// forbids it, some announcement servers do it): that branch ends, the other rings on and
/// answers the call.
#[test]
fn a_bye_in_an_earlier_branchs_early_dialog_ends_that_branch_only() {
    let mut h = H::new();
    let (inv, _) = two_branches_ringing(&mut h, "z9hG4bKfk6");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "t1", 9, "z9hG4bKfk6b", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), [200]);
    assert!(h.take(PHONE).is_empty(), "the caller still hears ringing");
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    assert!(h.cdrs.is_empty());
    // Its dialog is gone: a second BYE in it is answered 481.
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "t1", 10, "z9hG4bKfk6c", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), [481]);
    let ok = h.carrier_answers(&inv, "t2", SDP);
    assert_eq!(ok.status(), 200);
}

/// With the transaction table full, a branch's BYE that ends only that branch takes the
/// call's share of the room kept for the calls up, as any request of a call up: branches
/// ringing again and again with the same tags, each then sending BYE, cannot grow the table
/// past it. Before, each such BYE passed as one that ends its call, one transaction held
/// for 32 s per two datagrams of the peer's (its 180 and BYE carry our checks, past the
/// source guard). Each branch here is new: one that ended does not ring again.
#[test]
fn a_branchs_bye_past_the_transaction_bound_takes_the_calls_share() {
    use crate::call::headroom::PER_CALL_HEADROOM;
    let mut h = H::new();
    let (inv, _) = two_branches_ringing(&mut h, "z9hG4bKfkx");
    let bound = 64;
    h.core.env.max_server_txns = bound;
    super::edge::fill_with_invites(&mut h, "forkfull", bound);
    assert_eq!(h.core.stats().server_txns, bound, "filled to the bound");
    for n in 0..40u32 {
        let tag = format!("t{}", n + 3);
        let branch = format!("z9hG4bKfkxb{n}");
        h.recv_msg(CARRIER_A, ring(&inv, &tag, "127.0.0.5"));
        h.recv(
            CARRIER_A,
            &from_carrier_in(&inv, "BYE", &tag, 10 + n, &branch, ""),
        );
    }
    let held = h.core.stats().server_txns;
    assert!(
        held <= bound + usize::from(PER_CALL_HEADROOM),
        "{held} held past a bound of {bound}"
    );
    let ours = |h: &H| h.cdrs.iter().any(|c| c.call_id == "call-1@127.0.0.2");
    assert!(!ours(&h), "the call rings on");
    // With its share spent, the BYE of the only branch left (the others, those whose BYE
    // was refused among them, ended by the proxy's 199s) still gets its transaction: it
    // ends the call.
    for n in 2..43 {
        h.recv_msg(CARRIER_A, reply(&inv, 199, &format!("t{n}"), &[], None));
    }
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "t1", 61, "z9hG4bKfkxy", ""),
    );
    assert!(ours(&h), "the call ended");
}

/// A branch that ended its early dialog by BYE rings again with the same tag: a dialog once
/// ended stays ended (RFC 3261 §12.3), so nothing of it reaches the caller and the branch left
/// stays the one followed, the only one. Before, the 180 brought the ended branch back as it
/// stood: the caller's next request went to it, and the other branch's BYE was taken as
/// one branch's of two, leaving the caller ringing on a callee that had let the call go.
#[test]
fn a_branch_whose_early_dialog_is_gone_does_not_come_back_with_a_provisional() {
    let mut h = H::new();
    let (inv, tag) = two_branches_ringing(&mut h, "z9hG4bKfkr");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "t1", 9, "z9hG4bKfkrb", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), [200]);
    h.recv_msg(CARRIER_A, ring(&inv, "t1", "127.0.0.3"));
    assert!(h.take(PHONE).is_empty(), "nothing of it reaches the caller");
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKfkrp", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    assert_eq!(info.to_tag().as_deref(), Some("t2"));
    h.take(CARRIER_A);
    h.take(PHONE);
    // The only branch left: its BYE ends the call (480 to the caller).
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "t2", 10, "z9hG4bKfkrc", ""),
    );
    assert!(h.statuses(PHONE).contains(&480));
}

/// The branch heard last (the one side B follows) sends BYE in its early dialog: it ends,
/// the branch heard before it is followed again, and the call goes on.
#[test]
fn a_bye_from_the_branch_heard_last_leaves_the_one_before() {
    let mut h = H::new();
    let (inv, tag) = two_branches_ringing(&mut h, "z9hG4bKfk8");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "t2", 9, "z9hG4bKfk8b", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), [200]);
    assert!(
        h.take_responses(PHONE).is_empty(),
        "the caller still hears ringing"
    );
    assert!(h.take_requests(CARRIER_A, Method::Cancel).is_empty());
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKfk8p", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    assert_eq!(info.to_tag().as_deref(), Some("t1"));
    // The only branch left: its BYE ends the call as ever (480 to the caller).
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "t1", 10, "z9hG4bKfk8c", ""),
    );
    assert!(h.statuses(PHONE).contains(&480));
}

/// Branch t1's UPDATE moves its target (Contact `sip:127.0.0.3:5060`); t2 speaks again
/// before the caller's 2xx comes back, then ends: t1, followed again, is sent the caller's
/// next request at its new target. Before, the refresh was dropped, as not side B's branch.
#[test]
fn a_target_refresh_of_a_branch_no_longer_followed_is_kept_for_it() {
    let mut h = H::new();
    let (inv, tag) = two_branches_ringing(&mut h, "z9hG4bKfkb");
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "UPDATE", "t1", 7, "z9hG4bKfkbu", ""),
    );
    let update = h.one_request(PHONE, Method::Update);
    h.recv_msg(CARRIER_A, ring(&inv, "t2", "127.0.0.4"));
    h.take(PHONE);
    h.recv_msg(PHONE, reply(&update, 200, &tag, &[], None));
    assert_eq!(h.statuses(CARRIER_A), [200]);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "t2", 9, "z9hG4bKfkbb", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), [200]);
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKfkbp", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    assert_eq!(info.to_tag().as_deref(), Some("t1"));
    assert_eq!(info.uri(), "sip:127.0.0.3:5060", "t1's new target");
}

/// A request from another branch that is refused here (Max-Forwards 0: 483) moves nothing:
/// the caller's next early request still goes to the branch followed before it.
#[test]
fn a_refused_request_from_another_branch_leaves_the_followed_one() {
    let mut h = H::new();
    let (inv, tag) = two_branches_ringing(&mut h, "z9hG4bKfk7");
    let hop = from_carrier_in(&inv, "INFO", "t1", 7, "z9hG4bKfk7i", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.recv(CARRIER_A, &hop);
    assert_eq!(h.statuses(CARRIER_A), [483]);
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKfk7p", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    assert_eq!(info.to_tag().as_deref(), Some("t2"));
}

/// A branch that said its dialog is gone (its BYE) answers our PRACK 481 afterwards: that
/// changes nothing for the branch that goes on, whatever `on_405` says. Before, with the
/// gone branch no longer counted, the 481 read as the only branch refusing PRACK: "fail"
/// failed the call, "continue" left the next branch's 183s unacknowledged.
#[test]
fn a_481_from_a_branch_already_gone_changes_nothing() {
    use crate::interop::prack::{On405, PrackMode};
    for on_405 in [On405::Continue, On405::Fail] {
        let mut h = with_prack("carrier-a", PrackMode::Supported, on_405);
        h.recv(PHONE, &invite_text("fk9", "z9hG4bKfk9", "+8610123", ""));
        let inv = h.one_request(CARRIER_A, Method::Invite);
        h.recv_msg(CARRIER_A, ring(&inv, "t2", "127.0.0.4"));
        h.recv_msg(
            CARRIER_A,
            reliable_183_from(&inv, "t1", 1, "<sip:t1@127.0.0.3>", SDP),
        );
        let pr = h.one_request(CARRIER_A, Method::Prack);
        h.recv(
            CARRIER_A,
            &from_carrier_in(&inv, "BYE", "t1", 9, "z9hG4bKfk9b", ""),
        );
        assert_eq!(h.statuses(CARRIER_A), [200]);
        t1s_481_leaves_t2_pracked(&mut h, &inv, &pr, on_405);
    }
}

/// The caller's early INFO goes to the branch followed, which is gone and answers 481: the
/// caller gets 500, not the 481 that would end its own early dialog, and with it the call
/// another branch still rings for.
#[test]
fn a_481_from_a_gone_branch_reaches_the_caller_as_500() {
    let mut h = H::new();
    let (_, tag) = two_branches_ringing(&mut h, "z9hG4bKfka");
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKfkap", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    assert_eq!(info.to_tag().as_deref(), Some("t2"));
    h.recv_msg(CARRIER_A, reply(&info, 481, "t2", &[], None));
    assert_eq!(h.statuses(PHONE), [500]);
    assert!(h.cdrs.is_empty());
    // The branch heard before is followed again.
    h.recv(PHONE, &from_phone("INFO", &tag, 3, "z9hG4bKfkaq", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    assert_eq!(info.to_tag().as_deref(), Some("t1"));
}

/// The only branch answers our PRACK 481 under a To tag of its own making: still a refusal
/// of the only branch (`on_405 = "fail"` fails the call), judged by where our PRACK went,
/// not by the tag the answer carries.
#[test]
fn a_481_is_judged_by_the_branch_our_prack_went_to() {
    use crate::interop::prack::{On405, PrackMode};
    let mut h = with_prack("carrier-a", PrackMode::Supported, On405::Fail);
    h.recv(PHONE, &invite_text("fkb", "z9hG4bKfkb", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(
        CARRIER_A,
        reliable_183_from(&inv, "t1", 1, "<sip:t1@127.0.0.3>", SDP),
    );
    let pr = h.one_request(CARRIER_A, Method::Prack);
    let answer = match reply(&pr, 481, "t1", &[], None) {
        Message::Response(r) => String::from_utf8(r.to_bytes().to_vec()).unwrap(),
        Message::Request(_) => unreachable!(),
    };
    let mangled = answer.replace(";tag=t1", ";tag=sbc-made-this");
    assert_ne!(mangled, answer);
    h.recv(CARRIER_A, &mangled);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::PrackRejected);
}

/// With several branches kept, the one followed after the followed one ends is the one
/// followed most lately before it. (A first version reordered the kept branches when one
/// was taken back, and followed an older one.)
#[test]
fn the_branch_followed_after_a_gone_one_is_the_latest_before_it() {
    let mut h = H::new();
    let (inv, tag) = two_branches_ringing(&mut h, "z9hG4bKfkc");
    for (t, host) in [("t3", "127.0.0.5"), ("t4", "127.0.0.6")] {
        h.recv_msg(CARRIER_A, ring(&inv, t, host));
    }
    h.take(PHONE);
    // t1 speaks (followed), then ends; then t4, followed after it, ends: t3 is next.
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "INFO", "t1", 5, "z9hG4bKfkc1", ""),
    );
    h.one_request(PHONE, Method::Info);
    for (t, b) in [("t1", "z9hG4bKfkc2"), ("t4", "z9hG4bKfkc3")] {
        h.recv(CARRIER_A, &from_carrier_in(&inv, "BYE", t, 9, b, ""));
        assert_eq!(h.statuses(CARRIER_A), [200], "{t}");
    }
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKfkcp", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    assert_eq!(info.to_tag().as_deref(), Some("t3"));
}

/// A forking proxy's 199 (RFC 6228), which the gateway asks for (`Supported: 199`): branch
/// t2, followed, ended its early dialog; t1 goes on, and the caller hears nothing of it (its
/// one early dialog is ours). Before, a 199 made the gateway follow the ended branch and was
/// relayed to the caller, whose early dialog a 199 ends.
#[test]
fn a_proxys_199_ends_one_branch_and_the_caller_hears_nothing_of_it() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("call-1@127.0.0.2", "z9hG4bKfk199", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    assert!(inv.header_has_token(&Hdr::SUPPORTED, "199"));
    for (tag, host) in [("t1", "127.0.0.3"), ("t2", "127.0.0.4")] {
        h.recv_msg(CARRIER_A, ring(&inv, tag, host));
    }
    let tag = h.response_with(PHONE, 180, "180").to_tag().unwrap();
    h.take(PHONE);
    h.recv_msg(CARRIER_A, reply(&inv, 199, "t2", &[], None));
    assert!(h.take(PHONE).is_empty(), "no 199 for the caller");
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKfk199i", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    assert_eq!(info.to_tag().as_deref(), Some("t1"));
    assert!(h.cdrs.is_empty());
}

/// Anchored: branch t1's early media, then its 199 (it rejected the call while t2 rings):
/// the caller's media goes to t1 no more, and t2's answer sets where it goes. Before, the
/// relay sent the caller's audio to t1 until the call was answered elsewhere.
#[test]
fn a_branch_that_ended_hears_the_caller_no_more() {
    let mut h = anchored();
    h.recv(
        PHONE,
        &invite_text("call-2@127.0.0.2", "z9hG4bKfk199m", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let early = [(Hdr::CONTACT, "<sip:t1@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "t1", &early, Some(SDP)));
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("192.0.2.10:4000".parse().unwrap())
    );
    // t1's announcement latches side B (the relay driven by what the core tells it).
    let now = std::time::Instant::now();
    let mut route = StreamRoute::new(&h.relay_pairs()[0], now);
    let t1: std::net::SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let phone: std::net::SocketAddr = "127.0.0.2:30000".parse().unwrap();
    let packet = |ssrc: u32| {
        let mut p = vec![0u8; 172];
        p[0] = 0x80;
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    };
    assert!(matches!(
        route.route(now, Dir::BtoA, false, t1, &packet(11)),
        Route::Accept(_)
    ));
    assert_eq!(
        route.route(now, Dir::AtoB, false, phone, &packet(22)),
        Route::Accept(Some(t1))
    );
    h.recv_msg(CARRIER_A, ring(&inv, "t2", "127.0.0.4"));
    h.recv_msg(CARRIER_A, reply(&inv, 199, "t1", &[], None));
    assert_eq!(h.relay_pairs()[0].b_remote, None, "nothing to t1");
    // The relay hears t1 no more and sends it nothing (before, the latch it had learnt
    // was kept, as for an old-style hold, and the caller went on to it until t2 answered).
    route.update(&h.relay_pairs()[0], now);
    assert_eq!(
        route.route(now, Dir::AtoB, false, phone, &packet(22)),
        Route::Accept(None)
    );
    assert_eq!(
        route.route(now, Dir::BtoA, false, t1, &packet(11)),
        Route::Drop
    );
    let t2 = SDP
        .replace("192.0.2.10", "198.51.100.7")
        .replace("m=audio 4000", "m=audio 5000");
    let contact = [(Hdr::CONTACT, "<sip:t2@127.0.0.4>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "t2", &contact, Some(&t2)));
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("198.51.100.7:5000".parse().unwrap())
    );
    assert!(h.cdrs.is_empty());
}

/// Branch `i`'s 2xx to our INVITE `inv` (To tag `fork{i}`).
fn fork_2xx(inv: &Request, i: usize) -> Message {
    reply(
        inv,
        200,
        &format!("fork{i}"),
        &[(Hdr::CONTACT, "<sip:c@127.0.0.3>")],
        Some(SDP),
    )
}

/// A callee that answers one INVITE with 2xx after 2xx, each with a To tag of its own,
/// once the call is up: each is ACKed (RFC 3261 §13.2.2.4), the first sixteen are hung up
/// by BYE, the rest ACKed only. Before, each got a BYE transaction of its own, retransmitted
/// for 32 s: thousands from one peer.
#[test]
fn only_so_many_unwanted_2xx_dialogs_are_hung_up() {
    let mut h = H::new();
    let (inv, _ok) = answered_call(&mut h);
    h.take(CARRIER_A);
    let n = usize::from(crate::call::forks::MAX_HUNG_UP_FORKS) + 10;
    for i in 0..n {
        h.recv_msg(CARRIER_A, fork_2xx(&inv, i));
    }
    let sent = h.take(CARRIER_A);
    let count = |m: Method| {
        (sent.iter())
            .filter(|s| matches!(s, Message::Request(r) if r.method() == m))
            .count()
    };
    assert_eq!(count(Method::Ack), n);
    assert_eq!(
        count(Method::Bye),
        usize::from(crate::call::forks::MAX_HUNG_UP_FORKS)
    );
    assert!(h.cdrs.is_empty(), "the call goes on");
}

/// The first unwanted 2xx dialog's 2xx retransmitted after fourteen more were hung up: it
/// is ACKed again, not hung up again. Before, the call remembered only the last eight it
/// had released: the first got a second BYE transaction, and the count of dialogs hung up
/// was spent on retransmissions.
#[test]
fn a_retransmitted_2xx_of_any_dialog_hung_up_is_not_hung_up_again() {
    let mut h = H::new();
    let (inv, _ok) = answered_call(&mut h);
    for i in 0..usize::from(crate::call::forks::MAX_HUNG_UP_FORKS) - 1 {
        h.recv_msg(CARRIER_A, fork_2xx(&inv, i));
    }
    h.take(CARRIER_A);
    h.recv_msg(CARRIER_A, fork_2xx(&inv, 0));
    let again: Vec<Method> = (h.requests_to(CARRIER_A).iter())
        .map(|r| r.method())
        .collect();
    assert_eq!(again, vec![Method::Ack]);
}

/// The caller's INFO went to the branch followed (t2); then t1 answers the call, and t2,
/// cancelled by its proxy, answers the INFO 481: that is t2's dialog gone, not the call's.
/// The caller gets 500 for its INFO and the call t1 answered goes on. Before, the 481
/// released the answered call, both legs hung up.
#[test]
fn a_losing_branchs_481_to_a_relayed_request_leaves_the_answered_call_up() {
    let mut h = H::new();
    let (inv, tag) = two_branches_ringing(&mut h, "z9hG4bKfkl");
    h.recv(PHONE, &from_phone("INFO", &tag, 2, "z9hG4bKfklp", ""));
    let info = h.one_request(CARRIER_A, Method::Info);
    let followed = info.to_tag().unwrap();
    let winner = if followed == "t1" { "t2" } else { "t1" };
    h.carrier_answers(&inv, winner, SDP);
    h.take(PHONE);
    h.take(CARRIER_A);
    h.recv_msg(CARRIER_A, reply(&info, 481, &followed, &[], None));
    assert!(
        h.take_requests(CARRIER_A, Method::Bye).is_empty(),
        "the winner is not hung up"
    );
    assert!(h.cdrs.is_empty(), "{:?}", h.cdrs);
    assert_eq!(h.statuses(PHONE), [500]);
}

/// Two branches completed their first offer/answer in reliable 183s: the caller's offer in
/// an early UPDATE would change one branch's session while the other may answer the call,
/// so it is answered here (500, Retry-After) and neither branch gets it. Before, it went to
/// the branch heard last.
#[test]
fn an_early_update_goes_to_no_branch_of_two() {
    let mut h = H::new();
    h.recv(PHONE, &invite_text("fk9", "z9hG4bKfk9", "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    for (tag, host) in [("t1", "127.0.0.3"), ("t2", "127.0.0.4")] {
        let contact = format!("<sip:{tag}@{host}>");
        h.recv_msg(CARRIER_A, reliable_183_from(&inv, tag, 1, &contact, SDP));
        let prack = h.one_request(CARRIER_A, Method::Prack);
        h.recv_msg(CARRIER_A, reply(&prack, 200, tag, &[], None));
    }
    let ours = h
        .response_with(PHONE, 183, "183")
        .to_tag()
        .unwrap_or_default();
    h.take(PHONE);
    let offer = SDP.replace("o=- 1 1", "o=- 1 2");
    h.recv(
        PHONE,
        &from_phone_in("fk9", "UPDATE", &ours, 2, "z9hG4bKfk9u", &offer),
    );
    assert_eq!(h.statuses(PHONE), [500]);
    assert!(h.take_requests(CARRIER_A, Method::Update).is_empty());
    // Once a branch answered, the caller's UPDATEs go to it again.
    h.carrier_answers(&inv, "t1", SDP);
    h.recv(
        PHONE,
        &from_phone_in("fk9", "ACK", &ours, 1, "z9hG4bKfk9a", ""),
    );
    let offer = SDP.replace("o=- 1 1", "o=- 1 3");
    h.recv(
        PHONE,
        &from_phone_in("fk9", "UPDATE", &ours, 3, "z9hG4bKfk9v", &offer),
    );
    assert!(
        !h.statuses(PHONE).contains(&500),
        "not refused once answered"
    );
    let sent = h.requests_to(CARRIER_A);
    assert!(
        sent.iter()
            .any(|r| matches!(r.method(), Method::Update | Method::Invite)),
        "{sent:?}"
    );
}

/// The phone's call `call_id` (its INVITE's `branch`) to a forking carrier whose branch t1
/// (SDP at 192.0.2.10:4000) and then branch t2 (198.51.100.7:5000) answer 183 with early
/// media: our INVITE.
fn two_branches_with_early_media(h: &mut H, call_id: &str, branch: &str) -> Request {
    h.recv(PHONE, &invite_text(call_id, branch, "+8610123", ""));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let t1 = [(Hdr::CONTACT, "<sip:t1@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "t1", &t1, Some(SDP)));
    let t2_sdp = SDP
        .replace("192.0.2.10", "198.51.100.7")
        .replace("m=audio 4000", "m=audio 5000");
    let t2 = [(Hdr::CONTACT, "<sip:t2@127.0.0.4>")];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "t2", &t2, Some(&t2_sdp)));
    inv
}

/// Two branches with early media, the later one's SDP followed; it ends (199): side B goes
/// back to the earlier branch, and so does the relay, with that branch's SDP as it left it
/// (the caller hears its ringback or announcement again at once). Before, the earlier
/// branch was heard again only with its next SDP or its answer; the ended one's media is
/// not taken up.
#[test]
fn the_branch_left_when_another_ends_is_heard_again_at_once() {
    let mut h = anchored();
    let inv = two_branches_with_early_media(&mut h, "call-3@127.0.0.2", "z9hG4bKfk2b");
    assert_eq!(
        h.relay_pairs()[0].b_remote,
        Some("198.51.100.7:5000".parse().unwrap())
    );
    let callee = h.relay_pairs()[0].callee;
    h.recv_msg(CARRIER_A, reply(&inv, 199, "t2", &[], None));
    let p = &h.relay_pairs()[0];
    assert_eq!(
        p.b_remote,
        Some("192.0.2.10:4000".parse().unwrap()),
        "t1's again"
    );
    assert!(p.b_heard && p.callee != callee, "{p:?}");
    // And when t1's early dialog ends too, the caller's media goes nowhere.
    h.recv_msg(CARRIER_A, reply(&inv, 199, "t1", &[], None));
    assert_eq!(h.relay_pairs()[0].b_remote, None);
}

/// The branch whose SDP plays ends while signalling follows another that sent SDP before
/// (t1's 183 with SDP, t2's, then t1's 180): t1's SDP is taken up again.
#[test]
fn the_followed_branchs_own_sdp_is_taken_up_when_the_one_playing_ends() {
    let mut h = anchored();
    let inv = two_branches_with_early_media(&mut h, "call-4@127.0.0.2", "z9hG4bKfk4");
    let t1 = [(Hdr::CONTACT, "<sip:t1@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 180, "t1", &t1, None));
    h.recv_msg(CARRIER_A, reply(&inv, 199, "t2", &[], None));
    let p = &h.relay_pairs()[0];
    assert_eq!(
        p.b_remote,
        Some("192.0.2.10:4000".parse().unwrap()),
        "{p:?}"
    );
    assert!(p.b_heard && p.active);
}

/// A stream added by a later branch's SDP, then that branch ended: the earlier branch
/// taken up has no such stream, which stays off.
#[test]
fn a_stream_only_the_ended_branch_had_is_off_when_another_is_taken_up() {
    // t1's SDP with one stream, kept as t2's takes over and adds a second.
    let mut media = crate::call::state::MediaState {
        pairs: vec![Some((30000, 30002))],
        b_branch: Some("t1".into()),
        ..Default::default()
    };
    media.remote.b = vec![None];
    media.directions.b = vec![(true, true)];
    media.uses = vec![Default::default()];
    media.keep_branch();
    media.pairs.push(Some((30004, 30006)));
    media.remote.b = vec![None, None];
    media.uses = vec![Default::default(); 2];
    media.b_branch = None;
    let kept = media.take_branch("t1").expect("t1's kept");
    media.take_up_branch(kept);
    assert_eq!(media.uses.len(), 2);
    assert!(!media.uses[0].off && media.uses[1].off);
    assert_eq!(media.directions.b.len(), 2);
    assert_eq!(media.b_branch.as_deref(), Some("t1"));
}

/// The phone offers RTCP multiplexing; a forking carrier's first branch answers it in its
/// 183 and the second does not. RTCP follows the branch whose SDP plays: multiplexed for
/// t1, on its own port for t2, multiplexed again when t2 ends and t1 is heard again.
/// Before, the second answer to the same offer was not read for it (the offer's
/// `a=rtcp-mux` went with the first answer), and t2's RTCP was looked for on its RTP port.
#[test]
fn each_branchs_answer_settles_rtcp_multiplexing_for_its_own_media() {
    let mut h = anchored();
    let muxed = format!("{SDP}a=rtcp-mux\r\n");
    let invite = invite_text("call-mux@127.0.0.2", "z9hG4bKmux1", "+8610123", "")
        .replace(SDP, &muxed)
        .replace(
            &format!("Content-Length: {}", SDP.len()),
            &format!("Content-Length: {}", muxed.len()),
        );
    h.recv(PHONE, &invite);
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let t1 = [(Hdr::CONTACT, "<sip:t1@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "t1", &t1, Some(&muxed)));
    assert!(h.relay_pairs()[0].rtcp_mux, "t1 answered it multiplexed");
    let t2_sdp = SDP
        .replace("192.0.2.10", "198.51.100.7")
        .replace("m=audio 4000", "m=audio 5000");
    let t2 = [(Hdr::CONTACT, "<sip:t2@127.0.0.4>")];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "t2", &t2, Some(&t2_sdp)));
    let p = &h.relay_pairs()[0];
    assert_eq!(p.b_remote, Some("198.51.100.7:5000".parse().unwrap()));
    assert!(!p.rtcp_mux, "t2 did not multiplex: {p:?}");
    h.recv_msg(CARRIER_A, reply(&inv, 199, "t2", &[], None));
    let p = &h.relay_pairs()[0];
    assert_eq!(p.b_remote, Some("192.0.2.10:4000".parse().unwrap()));
    assert!(p.rtcp_mux, "t1's again: {p:?}");
}

/// A sequential forking proxy: branch t1 rings, its target gives up and the proxy says so
/// with a 199 (RFC 6228 §6) before it tries the next, t2. t2 is then the only branch: a
/// BYE in its early dialog ends the call (480 to the caller). Before, t1 stayed kept as a branch beside t2: t2's BYE was taken as one
/// branch of two ending, and the call went on following t1's dead dialog.
#[test]
fn the_branch_after_the_only_one_ended_is_the_only_one() {
    let mut h = H::new();
    h.recv(
        PHONE,
        &invite_text("seq-1@127.0.0.2", "z9hG4bKseq1", "+8610123", ""),
    );
    let inv = h.one_request(CARRIER_A, Method::Invite);
    h.recv_msg(CARRIER_A, ring(&inv, "t1", "127.0.0.3"));
    h.recv_msg(CARRIER_A, reply(&inv, 199, "t1", &[], None));
    h.recv_msg(CARRIER_A, ring(&inv, "t2", "127.0.0.4"));
    h.take(PHONE);
    h.recv(
        CARRIER_A,
        &from_carrier_in(&inv, "BYE", "t2", 9, "z9hG4bKseq1b", ""),
    );
    assert_eq!(h.statuses(CARRIER_A), [200]);
    assert!(h.statuses(PHONE).contains(&480), "the only branch ended");
}
