//! Interop profiles against misbehaving peers played by SIPp (scenarios in `conformance/`).
//! Each behaviour runs twice: with the profile setting the call succeeds; without it the
//! peer's scenario fails. That second run is what proves the setting does the work.

mod common;

use common::*;
use std::time::Duration;

/// Run a carrier-a scenario and a phone scenario through a gateway configured by `opts`.
/// Returns (carrier passed, phone passed, gateway).
fn outbound(opts: GwOpts, carrier: &str, phone: &str, dialled: &str) -> (bool, bool, Gateway) {
    let (c, p, gw, _) = outbound_traced(opts, carrier, phone, dialled);
    (c, p, gw)
}

/// [`outbound`], with what SIPp's error files say (both scenarios'), for the runs without
/// the setting: they must fail on the check that shows the setting missing, not on
/// anything else (a crash, a refusal, a port SIPp could not bind).
fn outbound_traced(
    opts: GwOpts,
    carrier: &str,
    phone: &str,
    dialled: &str,
) -> (bool, bool, Gateway, String) {
    let gw = Gateway::start(Ports::new(), opts);
    let tmp = tempfile::tempdir().unwrap();
    let (c, p) = phone_calls_carrier(&gw, tmp.path(), carrier, phone, dialled, Transport::Udp);
    let phone_ok = p.passed();
    let carrier_ok = c.passed();
    (carrier_ok, phone_ok, gw, sipp_errors(tmp.path()))
}

/// The run without the setting failed, and on `check` (a piece of SIPp's error text).
fn failed_on(ok: bool, errors: &str, check: &str, why: &str) {
    assert!(!ok, "{why}");
    assert!(
        errors.contains(check),
        "{why}: it failed, but not on {check:?}:\n{errors}"
    );
}

const IMS: &str = "[uri]\nuser_phone = true\nrequest_uri_params = \"trunk-context=+86;tgrp=abc\"\nnumber = \"e164\"\ncountry_code = \"86\"\n";

#[test]
fn ims_trunk_gets_user_phone_e164_and_its_uri_parameters() {
    let opts = GwOpts {
        carrier_a_domain: "ims.example.com",
        ..GwOpts::carrier_a(IMS)
    };
    let (c, p, gw) = outbound(
        opts,
        "uri-ims/carrier.xml",
        "uri-ims/phone.xml",
        "01012345678",
    );
    assert!(c && p, "with [uri]: carrier {c}, phone {p}\n{}", gw.log());
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["call_tag"], "caller_bye");

    let opts = GwOpts {
        carrier_a_domain: "ims.example.com",
        ..GwOpts::default()
    };
    let (c, _, _gw, errors) = outbound_traced(
        opts,
        "uri-ims/carrier.xml",
        "uri-ims/phone.xml",
        "01012345678",
    );
    failed_on(
        c,
        &errors,
        r"with regexp '^INVITE sip:\+861012345678@ims",
        "without [uri] the IMS trunk must reject the Request-URI",
    );
}

#[test]
fn tel_uris_from_a_carrier_are_routed_on_their_number() {
    let gw = Gateway::start(Ports::new(), GwOpts::default());
    let tmp = tempfile::tempdir().unwrap();
    let pbx = Sipp::uas("tel-inbound/pbx.xml", PHONE_IP, gw.ports.phone, tmp.path());
    let carrier = Sipp::uac(
        "tel-inbound/carrier.xml",
        CARRIER_A_IP,
        gw.ports.carrier_a,
        tmp.path(),
        gw.addr(),
        "x",
    );
    carrier.expect_success(&gw);
    pbx.expect_success(&gw);
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["to"], "+8610123");
    assert_eq!(cdr["from"], "+8620555");
}

#[test]
fn carrier_answering_prack_with_405_still_completes_the_call() {
    let (c, p, gw) = outbound(
        GwOpts::carrier_a("[prack]\nmode = \"supported\"\non_405 = \"continue\"\n"),
        "prack-405/carrier.xml",
        "basic-call/phone.xml",
        "+8610123",
    );
    assert!(
        c && p,
        "on_405 = continue: carrier {c}, phone {p}\n{}",
        gw.log()
    );
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["call_tag"], "caller_bye");
    assert!(
        cdr["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "prack_405_ignored"),
        "{cdr}"
    );

    let (_, p, gw, errors) = outbound_traced(
        GwOpts::carrier_a("[prack]\nmode = \"supported\"\non_405 = \"fail\"\n"),
        "prack-405/carrier.xml",
        "basic-call/phone.xml",
        "+8610123",
    );
    failed_on(
        p,
        &errors,
        "received 'SIP/2.0 502",
        "on_405 = fail must fail the call",
    );
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["call_tag"], "prack_rejected");
}

#[test]
fn prack_disabled_peer_never_sees_100rel_or_prack() {
    let (c, p, gw) = outbound(
        GwOpts::carrier_a("[prack]\nmode = \"disabled\"\n"),
        "prack-disabled/carrier.xml",
        "prack-phone/phone.xml",
        "+8610123",
    );
    // The phone supports 100rel and its profile too: it gets reliable 18x from the gateway
    // even though the carrier leg has none (reliability is per leg).
    assert!(
        c && p,
        "mode = disabled: carrier {c}, phone {p}\n{}",
        gw.log()
    );

    let (c, _, _gw, errors) = outbound_traced(
        GwOpts::default(),
        "prack-disabled/carrier.xml",
        "basic-call/phone.xml",
        "+8610123",
    );
    failed_on(
        c,
        &errors,
        "with regexp '100rel'",
        "by default 100rel is offered, which this carrier refuses to see",
    );
}

#[test]
fn carrier_requiring_100rel_gets_it_only_when_the_profile_requires_it() {
    let (c, p, gw) = outbound(
        GwOpts::carrier_a("[prack]\nmode = \"required\"\n"),
        "prack-required/carrier.xml",
        "basic-call/phone.xml",
        "+8610123",
    );
    assert!(
        c && p,
        "mode = required: carrier {c}, phone {p}\n{}",
        gw.log()
    );

    let opts = GwOpts {
        single_carrier: true,
        ..GwOpts::default()
    };
    let (_, p, gw, errors) = outbound_traced(
        opts,
        "prack-required/carrier.xml",
        "basic-call/phone.xml",
        "+8610123",
    );
    failed_on(
        p,
        &errors,
        "received 'SIP/2.0 500",
        "without mode = required the carrier answers 420",
    );
    let cdr = &gw.wait_cdrs(1)[0];
    // The 420 is about our hop: the phone, which required nothing, gets 500 with the cause.
    assert_eq!(cdr["status"], 500);
    assert_eq!(cdr["reason_sip"], "SIP;cause=420");
    assert_eq!(cdr["call_tag"], "callee_reject");
    assert_eq!(cdr["cause"], 127);
}

/// A late offer with 100rel toward a carrier behind a forking proxy (SIPp plays both):
/// each branch offers in its own reliable 183, the phone answers once, and both branches
/// get that answer in our PRACK; the branch that answers gets an ACK without SDP.
#[test]
fn a_forked_late_offer_gets_the_phones_one_answer_in_every_branchs_prack() {
    let (c, p, gw, errors) = outbound_traced(
        GwOpts::default(),
        "prack-fork/carrier.xml",
        "prack-fork/phone.xml",
        "+8610123",
    );
    assert!(c && p, "carrier {c}, phone {p}\n{errors}\n{}", gw.log());
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["status"], 200);
}

/// `prack-update/phone.xml` (a new offer in its PRACK) calls the carrier scenario
/// `carrier`: both pass, the call is answered, and the offer was taken.
fn prack_offer_reaches_the_carrier(carrier: &str) {
    let (c, p, gw, errors) = outbound_traced(
        GwOpts::default(),
        carrier,
        "prack-update/phone.xml",
        "+8610123",
    );
    assert!(c && p, "carrier {c}, phone {p}\n{errors}\n{}", gw.log());
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["status"], 200);
    assert!(
        !cdr["events"].to_string().contains("prack_offer_ignored"),
        "{cdr}"
    );
}

/// A phone's new offer in its PRACK reaches a carrier that takes UPDATE as an UPDATE in its
/// early dialog, and the carrier's answer comes back in the PRACK's 200, before the 2xx.
#[test]
fn a_new_offer_in_the_phones_prack_reaches_the_carrier_in_an_update() {
    prack_offer_reaches_the_carrier("prack-update/carrier.xml");
}

/// The same, the carrier answering the INVITE before the UPDATE: its 2xx waits for the
/// UPDATE's answer, which the phone gets first in its PRACK's 200.
#[test]
fn a_carriers_2xx_crossing_the_update_waits_for_the_phones_prack_answer() {
    prack_offer_reaches_the_carrier("prack-update/carrier-crossing.xml");
}

#[test]
fn phone_supporting_100rel_gets_reliable_provisionals() {
    let (c, p, gw) = outbound(
        GwOpts::pbx("[prack]\nmode = \"supported\"\n"),
        "prack-phone/carrier.xml",
        "prack-phone/phone.xml",
        "+8610123",
    );
    assert!(
        c && p,
        "pbx supported: carrier {c}, phone {p}\n{}",
        gw.log()
    );

    let (_, p, _gw, errors) = outbound_traced(
        GwOpts::pbx("[prack]\nmode = \"disabled\"\n"),
        "prack-phone/carrier.xml",
        "prack-phone/phone.xml",
        "+8610123",
    );
    // Its PRACK for an 18x that was not reliable finds nothing to acknowledge.
    failed_on(
        p,
        &errors,
        "received 'SIP/2.0 481",
        "with the phone's profile disabled, its 18x are not reliable",
    );
}

#[test]
fn phone_without_100rel_gets_plain_provisionals_and_one_requiring_it_gets_421() {
    // plain-phone.xml offers no 100rel, and fails on a 180 with RSeq or Require: 100rel, or
    // on none: plain 180 even with the profile's default.
    let (c, p, gw) = outbound(
        GwOpts::default(),
        "basic-call/carrier.xml",
        "prack-phone/plain-phone.xml",
        "+8610123",
    );
    assert!(c && p, "{}", gw.log());
    // A profile that requires 100rel refuses such a phone with 421.
    let gw = Gateway::start(Ports::new(), GwOpts::pbx("[prack]\nmode = \"required\"\n"));
    let tmp = tempfile::tempdir().unwrap();
    let p = Sipp::uac(
        "basic-call/phone.xml",
        PHONE_IP,
        gw.ports.phone,
        tmp.path(),
        gw.addr(),
        "+8610123",
    );
    assert!(!p.passed());
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["status"], 421);
}

#[test]
fn ptime_is_rewritten_for_the_carrier() {
    let (c, p, gw) = outbound(
        GwOpts::carrier_a("[sdp]\nptime = 20\n"),
        "ptime/carrier.xml",
        "ptime/phone.xml",
        "+8610123",
    );
    assert!(c && p, "ptime = 20: carrier {c}, phone {p}\n{}", gw.log());
    let (c, _, _gw, errors) = outbound_traced(
        GwOpts::default(),
        "ptime/carrier.xml",
        "ptime/phone.xml",
        "+8610123",
    );
    failed_on(
        c,
        &errors,
        "with regexp 'a=ptime:20'",
        "without [sdp] ptime the carrier sees a=ptime:30",
    );
}

#[test]
fn failure_without_reason_gets_the_profiles_mapped_cause() {
    let opts = GwOpts {
        single_carrier: true,
        ..GwOpts::carrier_a("[causes.map]\n\"503\" = 34\n")
    };
    let (c, p, gw) = outbound(
        opts,
        "cause-map/carrier.xml",
        "cause-map/phone.xml",
        "+8610123",
    );
    assert!(c && p, "mapped: carrier {c}, phone {p}\n{}", gw.log());
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(
        (cdr["cause"].as_u64(), cdr["cause_source"].as_str()),
        (Some(34), Some("peer-map"))
    );

    let opts = GwOpts {
        single_carrier: true,
        ..GwOpts::default()
    };
    let (_, p, gw, errors) = outbound_traced(
        opts,
        "cause-map/carrier.xml",
        "cause-map/phone.xml",
        "+8610123",
    );
    failed_on(
        p,
        &errors,
        r"looking in ' Q.850;cause=41', with regexp 'Q\.850;cause=34'",
        "without the map the phone hears RFC 3398's 41, not 34",
    );
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(
        (cdr["cause"].as_u64(), cdr["cause_source"].as_str()),
        (Some(41), Some("rfc3398"))
    );
}

#[test]
fn send_reason_false_keeps_reason_away_from_the_phone() {
    let opts = GwOpts {
        single_carrier: true,
        carrier_a_extra: "[causes.map]\n\"503\" = 34\n".into(),
        pbx_extra: "[causes]\nsend_reason = false\n".into(),
        ..GwOpts::default()
    };
    let (_, p, gw, errors) = outbound_traced(
        opts,
        "cause-map/carrier.xml",
        "cause-map/phone.xml",
        "+8610123",
    );
    // The phone's scenario expects a Reason header in the 503; it must find none.
    failed_on(
        p,
        &errors,
        "header Reason: not found in message\nSIP/2.0 503",
        "the phone must get the 503 without a Reason header",
    );
    assert_eq!(gw.wait_cdrs(1)[0]["cause"], 34);
}

#[test]
fn tel_trunk_gets_tel_uris() {
    let (c, p, gw) = outbound(
        GwOpts::carrier_a("[uri]\nscheme = \"tel\"\nnumber = \"e164\"\ncountry_code = \"86\"\n"),
        "uri-tel/carrier.xml",
        "uri-ims/phone.xml",
        "01012345678",
    );
    assert!(c && p, "scheme = tel: carrier {c}, phone {p}\n{}", gw.log());
    let (c, _, _gw, errors) = outbound_traced(
        GwOpts::default(),
        "uri-tel/carrier.xml",
        "uri-ims/phone.xml",
        "01012345678",
    );
    failed_on(
        c,
        &errors,
        r"with regexp '^INVITE tel:\+861012345678 SIP/2\.0'",
        "without scheme = \"tel\" the trunk gets sip: URIs",
    );
}

/// A call of about a minute through `gw`: SIPp plays `folder`'s carrier.xml and phone.xml,
/// their files in `dir`; SIPp's own limit (20 s in the other tests) is 75 s.
fn minute_call(gw: &Gateway, dir: &std::path::Path, folder: &str) -> (Sipp, Sipp) {
    let args = ["-m", "1", "-timeout", "75s", "-timeout_error"];
    let c = Sipp::spawn_args(
        &format!("{folder}/carrier.xml"),
        CARRIER_A_IP,
        gw.ports.carrier_a,
        dir,
        None,
        None,
        &args,
    );
    let p = Sipp::spawn_args(
        &format!("{folder}/phone.xml"),
        PHONE_IP,
        gw.ports.phone,
        dir,
        Some(gw.addr()),
        Some("+8610123"),
        &args,
    );
    (c, p)
}

/// What SIPp's scenarios in `dir` logged as errors.
fn sipp_errors(dir: &std::path::Path) -> String {
    let mut errors = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().to_string_lossy().ends_with(".err.log") {
            errors.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    errors
}

/// RFC 4028 per leg, over a minute of a real call: the phone refreshes its own leg (its
/// UPDATE is answered by the gateway, never relayed), and the gateway refreshes the carrier
/// (which knows no timers) with a re-INVITE at half of `require`'s 90 s. Without the
/// carrier's `[session_timer] mode = "require"` the gateway asks the carrier for no session
/// timer, and nothing refreshes it: its scenario fails on the INVITE's missing
/// Session-Expires (found in SIPp's error log). Both runs go at once.
#[test]
fn session_timers_are_refreshed_per_leg() {
    let require = "[session_timer]\nmode = \"require\"\nexpires_s = 90\n";
    let with = Gateway::start(Ports::new(), GwOpts::carrier_a(require));
    let without = Gateway::start(Ports::new(), GwOpts::default());
    let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c1, p1) = minute_call(&with, t1.path(), "session-timer");
    let (c2, p2) = minute_call(&without, t2.path(), "session-timer");
    let limit = Duration::from_secs(80);
    p1.expect_success_within(&with, limit);
    c1.expect_success_within(&with, limit);
    let cdr = &with.wait_cdrs(1)[0];
    assert_eq!(cdr["call_tag"], "caller_bye");
    assert!(p2.passed_within(limit), "the phone's leg needs no setting");
    let c2_ok = c2.passed_within(limit);
    let errors = sipp_errors(t2.path());
    // The carrier's INVITE asks for no session timer, so nothing will refresh it.
    failed_on(
        c2_ok,
        &errors,
        "header Session-Expires: not found",
        "without `require` the carrier is never refreshed",
    );
}

/// A carrier that lost an answered call (a restart) is found out by the gateway's in-dialog
/// OPTIONS (`[sip] probe_s = 60` on its profile): it answers 481, and the phone gets a BYE
/// with cause 41 within the minute. With the default interval (30 minutes) nothing reaches
/// the phone within 75 s: its scenario fails waiting for the BYE. Both runs go at once.
#[test]
fn a_carrier_that_lost_the_call_is_found_by_the_probe() {
    let with = Gateway::start(Ports::new(), GwOpts::carrier_a("[sip]\nprobe_s = 60\n"));
    let without = Gateway::start(Ports::new(), GwOpts::default());
    let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c1, p1) = minute_call(&with, t1.path(), "probe");
    let (c2, p2) = minute_call(&without, t2.path(), "probe");
    let limit = Duration::from_secs(80);
    p1.expect_success_within(&with, limit);
    c1.expect_success_within(&with, limit);
    let cdr = &with.wait_cdrs(1)[0];
    assert_eq!(cdr["call_tag"], "peer_unreachable");
    assert_eq!(cdr["cause"], 41);
    let events = cdr["events"].to_string();
    assert!(events.contains("probe_failed_callee"), "{events}");
    // Without it the carrier is never asked, the phone never hears, and the gateway still
    // holds the call (no CDR) after both gave up.
    let c2_ok = c2.passed_within(limit);
    assert!(
        !p2.passed_within(limit),
        "without the probe the phone never hears"
    );
    failed_on(
        c2_ok,
        &sipp_errors(t2.path()),
        "carrier timed out",
        "without a probe the carrier waits for an OPTIONS that never comes",
    );
    assert!(without.cdrs().is_empty(), "{:?}", without.cdrs());
}
