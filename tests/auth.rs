//! Trunk credentials through the real binary, against SIPp carriers that check them with
//! SIPp's own digest verification (`verifyauth`): a carrier behind a proxy that challenges
//! the INVITE twice (407, then 401), one that challenges the BYE, and a registrar that
//! challenges, grants 10 s, expects the refresh in time and the unregistration at SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// carrier-a's `[auth]`: what the SIPp scenarios verify.
const AUTH: &str = "[auth]\nusername = \"trunkuser\"\npassword = \"trunk-secret\"\n";

fn with_auth(extra: &str) -> GwOpts {
    GwOpts {
        single_carrier: true,
        ..GwOpts::carrier_a(&format!("{AUTH}{extra}"))
    }
}

#[test]
fn an_invite_challenged_by_a_proxy_and_its_server_completes() {
    let gw = Gateway::start(Ports::new(), with_auth(""));
    let tmp = tempfile::tempdir().unwrap();
    call_succeeds(
        &gw,
        tmp.path(),
        "auth-invite-407/carrier.xml",
        "basic-call/phone.xml",
        Transport::Udp,
    );
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(c["call_tag"], "caller_bye", "{c}");
    assert!(c.get("events").is_none(), "{c}");
    assert!(
        !gw.log().contains("trunk-secret"),
        "the secret reached the log"
    );
}

#[test]
fn a_challenged_bye_is_answered() {
    let gw = Gateway::start(Ports::new(), with_auth(""));
    let tmp = tempfile::tempdir().unwrap();
    call_succeeds(
        &gw,
        tmp.path(),
        "auth-bye-401/carrier.xml",
        "basic-call/phone.xml",
        Transport::Udp,
    );
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
}

#[test]
fn without_credentials_the_caller_gets_403_and_the_cdr_says_why() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            single_carrier: true,
            ..GwOpts::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    // The carrier challenges once; with nothing to answer it with, the gateway ACKs the 407,
    // sends no second INVITE, and the phone gets 403, never the challenge.
    let carrier = Sipp::uas(
        "auth-invite-407/carrier-once.xml",
        CARRIER_A_IP,
        gw.ports.carrier_a,
        tmp.path(),
    );
    let phone = Sipp::uac(
        "auth-invite-407/phone-refused.xml",
        PHONE_IP,
        gw.ports.phone,
        tmp.path(),
        gw.addr(),
        "+8610123",
    );
    phone.expect_success(&gw);
    carrier.expect_success(&gw);
    let c = &gw.wait_cdrs(1)[0];
    assert_eq!(
        (c["status"].as_u64(), c["cause"].as_u64()),
        (Some(403), Some(21)),
        "{c}"
    );
    assert_eq!(c["reason_sip"], "SIP;cause=407");
    assert_eq!(c["events"][0], "auth_failed", "{c}");
}

#[test]
fn the_gateway_registers_refreshes_in_time_and_unregisters_on_sigterm() {
    let ports = Ports::new();
    let tmp = tempfile::tempdir().unwrap();
    // The registrar listens before the gateway starts: the first REGISTER goes out at once.
    let registrar = Sipp::spawn_args(
        "register/registrar.xml",
        CARRIER_A_IP,
        ports.carrier_a,
        tmp.path(),
        None,
        None,
        &["-m", "1", "-timeout", "60s", "-timeout_error"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut gw = Gateway::start(
        ports,
        with_auth("\n[register]\nenabled = true\nexpires_s = 600\n"),
    );
    let series = "trunkgate_registration_up{peer=\"carrier-a\"}";
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut up = None;
    while Instant::now() < deadline && up != Some(1.0) {
        std::thread::sleep(Duration::from_millis(200));
        up = Gateway::metric_value(&gw.metrics(), series);
    }
    assert_eq!(up, Some(1.0), "{}", gw.log());
    // The grant is 10 s: the refresh comes at 7.5–8.5 s; then stop the gateway.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(Gateway::metric_value(&gw.metrics(), series), Some(1.0));
    assert!(gw.stop().success());
    registrar.expect_success(&gw);
    let log = gw.log();
    assert!(log.contains("unregistered"), "{log}");
    assert!(!log.contains("trunk-secret"));
}
