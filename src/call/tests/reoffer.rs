//! The gateway's own offer to a caller shown, in the 2xx, another session than the one it
//! took in a reliable provisional (`call/reoffer.rs`).

use super::prack::invite_100rel;
use super::*;

/// The callee's SDP with PCMA at another address and session: a second branch's.
fn second_branch_sdp() -> String {
    SDP.replace("o=- 1 1 IN IP4 192.0.2.10", "o=- 7 7 IN IP4 198.51.100.7")
        .replace("c=IN IP4 192.0.2.10", "c=IN IP4 198.51.100.7")
        .replace(
            "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000",
            "m=audio 5000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000",
        )
}

/// The phone's answer to our offer of PCMA: from a new port, its session's next version.
fn phone_takes_pcma() -> String {
    SDP.replace(
        "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000",
        "m=audio 4100 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000",
    )
    .replace("o=- 1 1", "o=- 1 2")
}

/// The phone's INVITE (offering 100rel) and branch b1's 183 with its answer, which reaches
/// the phone reliably: the carrier's INVITE, the 183's RSeq and our tag toward the phone.
fn first_branch_183(h: &mut H, call_id: &str) -> (Request, u32, String) {
    h.recv(PHONE, &invite_100rel(call_id, &format!("z9hG4bK{call_id}")));
    let inv = h.one_request(CARRIER_A, Method::Invite);
    let contact = [(Hdr::CONTACT, "<sip:b1@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 183, "b1", &contact, Some(SDP)));
    let r183 = h.response_with(PHONE, 183, "the first branch's answer, reliably");
    let rseq = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    (inv, rseq, r183.to_tag().unwrap())
}

/// An anchored call whose phone PRACKed branch b1's 183 answer, answered by `answer` from
/// branch `tag`: the phone's 200 and our tag toward it, once it has ACKed.
fn taken_early_then_answered(
    h: &mut H,
    call_id: &str,
    tag: &str,
    answer: &str,
) -> (Response, String) {
    let (inv, rseq, ours) = first_branch_183(h, call_id);
    h.recv(PHONE, &phone_prack(call_id, &ours, 2, rseq, ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    let contact = [(Hdr::CONTACT, "<sip:b2@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, tag, &contact, Some(answer)));
    let ok = h.response_with(PHONE, 200, "the phone gets the 200");
    h.recv(
        PHONE,
        &from_phone_in(call_id, "ACK", &ours, 1, "z9hG4bKack", ""),
    );
    assert_eq!(h.take_requests(CARRIER_A, Method::Ack).len(), 1);
    (ok, ours)
}

/// An anchored call whose phone took b1's answer early and got b2's (PCMA) in the 200:
/// the harness, the 200, our tag toward the phone, and our re-INVITE offering b2's session.
fn offered_b2s_session(call_id: &str) -> (H, Response, String, Request) {
    let mut h = anchored();
    let (ok, ours) = taken_early_then_answered(&mut h, call_id, "b2", &second_branch_sdp());
    let re = h.one_request(PHONE, Method::Invite);
    (h, ok, ours, re)
}

/// A forking callee: branch b1's 183 (PCMU) is the answer the phone took reliably, branch
/// b2 answers with PCMA. The phone, done with its offer/answer, ignores the 200's SDP
/// (RFC 3261 §13.2.1) and would go on sending PCMU to a callee that takes PCMA: after its
/// ACK the gateway offers it the 200's session in a re-INVITE, and the relay follows the
/// phone's answer. Before, nothing was offered.
#[test]
fn a_caller_that_took_another_branchs_answer_early_is_offered_the_answered_session() {
    let (mut h, ok, ours, re) = offered_b2s_session("ro1");
    assert_eq!(
        re.body(),
        ok.body(),
        "the session the 200 showed, its o= as the 200's"
    );
    assert!(String::from_utf8_lossy(re.body()).contains("RTP/AVP 8\r\n"));
    assert_eq!(re.from_tag().as_deref(), Some(ours.as_str()));
    assert_eq!(re.to_tag().as_deref(), Some("alice1"));
    assert_eq!(re.cseq().unwrap().1, Method::Invite);
    // The phone answers from a new port: our ACK, and the relay sends to it.
    let phone_answer = phone_takes_pcma();
    h.recv_msg(PHONE, reply(&re, 200, "alice1", &[], Some(&phone_answer)));
    assert_eq!(h.take_requests(PHONE, Method::Ack).len(), 1);
    assert_eq!(
        h.relay_pairs()[0].a_remote,
        Some("192.0.2.10:4100".parse().unwrap())
    );
    assert!(h.take(CARRIER_A).is_empty(), "the callee never hears of it");
    // The call goes on: the phone's BYE ends it.
    h.recv(
        PHONE,
        &from_phone_in("ro1", "BYE", &ours, 3, "z9hG4bKbye", ""),
    );
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
}

/// The same answer in the 200 as in the 183 the phone took, or a refusal of our offer:
/// nothing more, and the call stays up.
#[test]
fn the_same_session_is_not_offered_again_and_a_refused_offer_leaves_the_call() {
    let mut h = anchored();
    taken_early_then_answered(&mut h, "ro2", "b1", SDP);
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
    let (mut h, _, ours, re) = offered_b2s_session("ro3");
    h.recv_msg(PHONE, reply(&re, 488, "alice1", &[], None));
    assert_eq!(
        h.take_requests(PHONE, Method::Ack).len(),
        1,
        "the 488's ACK"
    );
    assert!(h.take(CARRIER_A).is_empty());
    assert!(h.cdrs.is_empty(), "the call is still up");
    h.recv(
        PHONE,
        &from_phone_in("ro3", "BYE", &ours, 3, "z9hG4bKbye", ""),
    );
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
}

/// A caller whose dialog is gone (481 to our offer) ends the call: the callee gets its BYE.
#[test]
fn a_caller_gone_when_offered_ends_the_call() {
    let (mut h, _, _, re) = offered_b2s_session("ro4");
    h.recv_msg(PHONE, reply(&re, 481, "alice1", &[], None));
    assert_eq!(h.take_requests(CARRIER_A, Method::Bye).len(), 1);
    assert_eq!(h.cdrs.len(), 1);
    assert_eq!(h.cdrs[0].call_tag, CallTag::PeerUnreachable);
    assert_eq!(h.cdrs[0].events, ["dialog_gone_caller"]);
}

/// The other branch's 200 comes before the phone's PRACK of the first branch's 183: it is
/// held for that PRACK (RFC 3262), and the phone still agreed to the 183's session, which
/// its PRACK acknowledges, not to the 200's: it is offered the 200's after its ACK. Before
/// (the agreed session read when the PRACK came), nothing was offered. A stray ACK from the
/// phone before its ACK of the 200 (one of nothing we sent) changes none of that: before,
/// it cleared what the phone had agreed to, and nothing was offered.
#[test]
fn a_2xx_held_for_the_prack_of_another_branchs_answer_is_offered_after_the_ack() {
    for stray in [false, true] {
        held_for_the_prack_then_offered(stray);
    }
}

fn held_for_the_prack_then_offered(stray: bool) {
    let mut h = anchored();
    let (inv, rseq, ours) = first_branch_183(&mut h, "ro5");
    h.recv_msg(
        CARRIER_A,
        reply(
            &inv,
            200,
            "b2",
            &[(Hdr::CONTACT, "<sip:b2@127.0.0.3>")],
            Some(&second_branch_sdp()),
        ),
    );
    assert!(h.take(PHONE).is_empty(), "the 200 waits for the PRACK");
    h.recv(PHONE, &phone_prack("ro5", &ours, 2, rseq, ""));
    let ok = (h.take(PHONE).into_iter())
        .find_map(|m| match m {
            Message::Response(r) if r.cseq().is_some_and(|c| c.1 == Method::Invite) => Some(r),
            _ => None,
        })
        .expect("the held 200");
    assert_eq!(ok.status(), 200);
    if stray {
        h.recv(
            PHONE,
            &from_phone_in("ro5", "ACK", &ours, 7, "z9hG4bKstray", ""),
        );
        assert!(h.take(CARRIER_A).is_empty(), "nothing to pass on");
    }
    h.recv(
        PHONE,
        &from_phone_in("ro5", "ACK", &ours, 1, "z9hG4bKack", ""),
    );
    let re = h.one_request(PHONE, Method::Invite);
    assert_eq!(re.body(), ok.body());
}

/// Our re-INVITE answered only with a provisional is cancelled 64·T1 after it, and given up
/// 64·T1 after a CANCEL nobody answers: the dialog takes INVITEs again (the phone's own is
/// relayed, not refused with 491). Before, it waited for ever, and every re-INVITE of
/// either side got 491.
#[test]
fn our_reinvite_that_only_rings_is_cancelled_then_given_up() {
    for answers_cancel in [true, false] {
        let (mut h, _, ours, re) = offered_b2s_session("ro6");
        h.recv_msg(PHONE, reply(&re, 180, "alice1", &[], None));
        h.advance(Duration::from_secs(31));
        assert!(h.take_requests(PHONE, Method::Cancel).is_empty());
        h.advance(Duration::from_millis(1_100));
        let cancel = h.one_request(PHONE, Method::Cancel);
        assert_eq!(cancel.cseq().unwrap().0, re.cseq().unwrap().0);
        if answers_cancel {
            h.recv_msg(PHONE, reply(&cancel, 200, "alice1", &[], None));
            h.recv_msg(PHONE, reply(&re, 487, "alice1", &[], None));
            assert_eq!(h.take_requests(PHONE, Method::Ack).len(), 1);
        } else {
            h.advance(Duration::from_millis(32_100));
        }
        let hold = SDP.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n";
        h.recv(
            PHONE,
            &from_phone_in("ro6", "INVITE", &ours, 3, "z9hG4bKhold", &hold),
        );
        assert_eq!(
            h.take_requests(CARRIER_A, Method::Invite).len(),
            1,
            "answers_cancel {answers_cancel}: the phone's re-INVITE goes on"
        );
        assert!(h.cdrs.is_empty());
    }
}

/// Branch b2 answers reliably too (its 183, which the phone PRACKs but ignores: it took
/// b1's) and then sends its 200 without SDP: the phone's 200 carries b2's answer, and after
/// the ACK it is offered to the phone. Before, the 200 went without SDP and nothing was
/// offered: the phone went on sending b1's PCMU to b2.
#[test]
fn a_2xx_without_sdp_after_another_branchs_reliable_answer_is_offered_too() {
    let mut h = anchored();
    let (inv, rseq, ours) = first_branch_183(&mut h, "ro7");
    h.recv(PHONE, &phone_prack("ro7", &ours, 2, rseq, ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    let b2 = second_branch_sdp();
    h.recv_msg(
        CARRIER_A,
        super::prack::reliable_183_from(&inv, "b2", 1, "<sip:b2@127.0.0.3>", &b2),
    );
    h.take_requests(CARRIER_A, Method::Prack);
    let r183 = h.response_with(PHONE, 183, "b2's answer, reliably");
    let rseq2 = r183.header(&Hdr::RSEQ).unwrap().parse().unwrap();
    h.recv(PHONE, &phone_prack("ro7", &ours, 3, rseq2, ""));
    assert_eq!(h.statuses(PHONE), vec![200]);
    let contact = [(Hdr::CONTACT, "<sip:b2@127.0.0.3>")];
    h.recv_msg(CARRIER_A, reply(&inv, 200, "b2", &contact, None));
    let ok = h.response_with(PHONE, 200, "the phone gets the 200");
    assert!(
        String::from_utf8_lossy(ok.body()).contains("RTP/AVP 8\r\n"),
        "b2's answer"
    );
    h.recv(
        PHONE,
        &from_phone_in("ro7", "ACK", &ours, 1, "z9hG4bKack", ""),
    );
    let re = h.one_request(PHONE, Method::Invite);
    assert_eq!(re.body(), ok.body());
}

/// Glare: the phone answers our offer 491 (its own request crossed ours). The offer is made
/// again after the wait RFC 3261 §14.1 gives the party that does not own the Call-ID
/// (0–2 s), at the next `o=` version, and the relay follows its answer; the phone's own
/// offer answered in the meantime settles the session instead, and nothing is sent. Before,
/// a 491 was taken as a refusal: the phone went on sending b1's PCMU to b2.
#[test]
fn a_reoffer_met_by_glare_is_made_again_unless_the_phone_settled_the_session() {
    for phone_offers in [false, true] {
        let (mut h, ok, ours, re) = offered_b2s_session("ro8");
        h.recv_msg(PHONE, reply(&re, 491, "alice1", &[], None));
        assert_eq!(h.take_requests(PHONE, Method::Ack).len(), 1);
        if phone_offers {
            // The phone's own re-INVITE offering PCMA, answered through the carrier.
            let pcma = SDP.replace("o=- 1 1", "o=- 1 2").replace(
                "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000",
                "RTP/AVP 8\r\na=rtpmap:8 PCMA/8000",
            );
            h.recv(
                PHONE,
                &from_phone_in("ro8", "INVITE", &ours, 2, "z9hG4bKre2", &pcma),
            );
            let fwd = h.one_request(CARRIER_A, Method::Invite);
            h.recv_msg(
                CARRIER_A,
                reply(
                    &fwd,
                    200,
                    "b2",
                    &[],
                    Some(&second_branch_sdp().replace("o=- 7 7", "o=- 7 8")),
                ),
            );
            h.take_requests(CARRIER_A, Method::Ack);
            assert_eq!(h.statuses(PHONE), vec![100, 200]);
            h.recv(
                PHONE,
                &from_phone_in("ro8", "ACK", &ours, 2, "z9hG4bKack2", ""),
            );
            h.advance(Duration::from_secs(5));
            assert!(
                h.take_requests(PHONE, Method::Invite).is_empty(),
                "the phone's own offer settled the session"
            );
            continue;
        }
        h.advance(Duration::from_millis(2_010));
        // Sent once the wait was over, and retransmitted since (UDP) if it was short.
        let sent = h.take_requests(PHONE, Method::Invite);
        assert!(
            !sent.is_empty()
                && sent
                    .iter()
                    .all(|r| r.cseq() == sent[0].cseq() && r.body() == sent[0].body())
        );
        let again = sent[0].clone();
        assert!(again.cseq().unwrap().0 > re.cseq().unwrap().0);
        let body = String::from_utf8_lossy(again.body()).into_owned();
        assert_eq!(
            origin_version(again.body()),
            origin_version(ok.body()) + 1,
            "{body}"
        );
        assert!(body.contains("RTP/AVP 8\r\n"), "{body}");
        let phone_answer = phone_takes_pcma();
        h.recv_msg(
            PHONE,
            reply(&again, 200, "alice1", &[], Some(&phone_answer)),
        );
        assert_eq!(h.take_requests(PHONE, Method::Ack).len(), 1);
        assert_eq!(
            h.relay_pairs()[0].a_remote,
            Some("192.0.2.10:4100".parse().unwrap())
        );
        h.advance(Duration::from_secs(5));
        assert!(h.take_requests(PHONE, Method::Invite).is_empty(), "once");
        assert!(h.cdrs.is_empty());
    }
}

/// A phone that meets every one of our offers with glare is offered three more times, then
/// left with the session it has; the call goes on.
#[test]
fn glare_without_end_is_tried_three_more_times() {
    let mut h = anchored();
    taken_early_then_answered(&mut h, "ro9", "b2", &second_branch_sdp());
    let mut offers = 0;
    for _ in 0..6 {
        if let Some(re) = h.take_requests(PHONE, Method::Invite).first().cloned() {
            offers += 1;
            h.recv_msg(PHONE, reply(&re, 491, "alice1", &[], None));
        }
        h.advance(Duration::from_secs(4));
    }
    assert_eq!(offers, 4);
    assert!(h.cdrs.is_empty());
}

/// Our offer to the phone, left ringing, cancelled, given up, then answered after all: the
/// phone took the session offered, so the relay follows its answer, and nothing is offered
/// again (another offer could meet the same fate, and so on for the whole call).
#[test]
fn a_late_answer_to_our_given_up_offer_moves_the_relay_and_offers_nothing_more() {
    let (mut h, _, _, re) = offered_b2s_session("ro10");
    h.recv_msg(PHONE, reply(&re, 180, "alice1", &[], None));
    h.advance(Duration::from_millis(32_100));
    h.one_request(PHONE, Method::Cancel);
    h.advance(Duration::from_millis(32_100));
    h.take(PHONE);
    let phone_answer = phone_takes_pcma();
    h.recv_msg(PHONE, reply(&re, 200, "alice1", &[], Some(&phone_answer)));
    let sent = h.requests_to(PHONE);
    let methods: Vec<Method> = sent.iter().map(|r| r.method()).collect();
    assert_eq!(methods, vec![Method::Ack], "its ACK, and no offer again");
    assert_eq!(
        h.relay_pairs()[0].a_remote,
        Some("192.0.2.10:4100".parse().unwrap())
    );
    h.advance(Duration::from_secs(10));
    assert!(h.take_requests(PHONE, Method::Invite).is_empty());
    assert!(h.cdrs.is_empty());
}

/// Glare, then the phone's own re-INVITE, still with the carrier when our wait is over: our
/// offer waits for it. Answered, it settles the session and ours is never sent; refused, the
/// phone's session is as before and ours goes.
#[test]
fn a_glare_retry_waits_for_the_phones_own_offer_and_goes_only_if_it_failed() {
    for carrier_takes in [true, false] {
        let (mut h, _, ours, re) = offered_b2s_session("ro11");
        h.recv_msg(PHONE, reply(&re, 491, "alice1", &[], None));
        h.take(PHONE);
        let hold = SDP.replace("o=- 1 1", "o=- 1 2") + "a=sendonly\r\n";
        h.recv(
            PHONE,
            &from_phone_in("ro11", "INVITE", &ours, 2, "z9hG4bKre2", &hold),
        );
        let fwd = h.one_request(CARRIER_A, Method::Invite);
        h.recv_msg(CARRIER_A, reply(&fwd, 100, "b2", &[], None));
        // Our wait (at most 2 s) is over while the carrier thinks.
        h.advance(Duration::from_secs(3));
        assert!(h.take_requests(PHONE, Method::Invite).is_empty());
        if carrier_takes {
            let held = second_branch_sdp().replace("o=- 7 7", "o=- 7 8") + "a=recvonly\r\n";
            h.recv_msg(CARRIER_A, reply(&fwd, 200, "b2", &[], Some(&held)));
        } else {
            h.recv_msg(CARRIER_A, reply(&fwd, 488, "b2", &[], None));
        }
        h.take(CARRIER_A);
        h.take(PHONE);
        h.recv(
            PHONE,
            &from_phone_in("ro11", "ACK", &ours, 2, "z9hG4bKack2", ""),
        );
        h.advance(Duration::from_secs(10));
        let offers = h.take_requests(PHONE, Method::Invite);
        if carrier_takes {
            assert!(offers.is_empty(), "the phone's hold stands");
        } else {
            assert!(!offers.is_empty(), "the phone's offer failed: ours goes");
            assert!(String::from_utf8_lossy(offers[0].body()).contains("RTP/AVP 8\r\n"));
        }
        assert!(h.cdrs.is_empty());
    }
}
