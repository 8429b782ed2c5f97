use super::*;

/// Every series the gateway exports, by name.
const EXPORTED: &[&str] = &[
    PRACK_FAILURES,
    CALLS,
    ACTIVE_CALLS,
    RTP_PACKETS,
    RTP_DROPPED,
    RELAY_FAILURES,
    LIMIT_REFUSALS,
    REFUSED,
    SCRAPES_REFUSED,
    OVERLOAD_SHARE,
    QUEUE_DELAY,
    CALLS_OFFERED,
    CALLS_ANSWERED,
    SETUP,
    CAUSES,
    MESSAGES,
    PEER_ACTIVE,
    TRANSACTIONS,
    DIALOGS,
    RTP_STREAMS,
    RECORDINGS,
    RELOADS,
    BUILD_INFO,
    crate::cdr::CDR_QUEUE_DEPTH,
    crate::cdr::CDR_WRITE_ERRORS,
    crate::cdr::CDR_DROPPED,
    crate::cdr::CDR_UNLOGGED,
    cb::REQUESTS,
    cb::DROPPED,
    cb::RESULTS,
    cb::RESPONSES,
    cb::ACTIVE,
    REGISTRATION_UP,
    PEER_UP,
    RETRANSMISSIONS,
    REWRITES,
    RTP_BYTES,
    RECORDING_BYTES,
    RECORDING_FAILURES,
    RECORDING_LOST,
    SEND_DROPPED,
    SEND_FAILED,
    REFUSALS_UNRECORDED,
    TCP_PACED,
    FAULTS,
    LATE_ANSWERS,
    TRANSACTION_BYTES,
    HEAP_BYTES,
];

#[test]
fn the_grafana_dashboard_only_uses_series_the_gateway_exports() {
    let dash = include_str!("../../../contrib/grafana/trunkgate.json");
    let mut used = 0;
    for (i, _) in dash.match_indices("trunkgate_") {
        let name: String = dash[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_count"))
            .or_else(|| name.strip_suffix("_sum"))
            .unwrap_or(&name);
        assert!(
            EXPORTED.contains(&base),
            "the dashboard uses {name}, which nothing exports"
        );
        used += 1;
    }
    assert!(used > 20, "{used}");
}

#[test]
fn messages_are_counted_by_method_or_status_class() {
    let slot = SipCounters::slot;
    assert_eq!(slot(b"INVITE sip:x SIP/2.0"), 0);
    assert_eq!(slot(b"PUBLISH sip:x SIP/2.0"), METHODS.len() - 1);
    assert_eq!(slot(b"FOO sip:x SIP/2.0"), METHODS.len(), "other");
    assert_eq!(slot(b"SIP/2.0 100 Trying"), METHODS.len() + 1);
    assert_eq!(slot(b"SIP/2.0 603 Decline"), METHODS.len() + 6);
    // Nonsense status codes land in a class, never out of the table.
    assert_eq!(slot(b"SIP/2.0 999 x"), METHODS.len() + 6);
    assert_eq!(slot(b"SIP/2.0 "), METHODS.len() + 1);
    assert_eq!(slot(b""), METHODS.len());
}

/// A PRACK failure's status label comes from a fixed set: a peer that answers our PRACKs
/// with every status from 400 to 699 makes 16 series, not 300.
#[test]
fn a_prack_failures_status_label_is_from_a_fixed_set() {
    assert_eq!(prack_status("405"), "405");
    assert_eq!(prack_status("timeout"), "timeout");
    assert_eq!(prack_status("499"), "4xx");
    assert_eq!(prack_status("580"), "5xx");
    assert_eq!(prack_status("699"), "6xx");
    assert_eq!(prack_status("7"), "other");
    let labels: std::collections::BTreeSet<&str> =
        (400..700).map(|s| prack_status(&s.to_string())).collect();
    assert_eq!(labels.len(), 15, "{labels:?}");
}

/// A gauge nobody sets any more (a peer a reload removed: its `registration_up` stuck at
/// 0 until a restart) leaves the scrape once idle; one set each second stays, and counters
/// stay whatever happens.
#[test]
fn a_gauge_nobody_sets_leaves_the_scrape() {
    let recorder = builder(std::time::Duration::from_millis(200))
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        registration_up("gone", false);
        registration_up("kept", true);
        metrics::counter!(CALLS, "peer" => "gone").increment(1);
    });
    assert!(handle.render().contains("peer=\"gone\""));
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        metrics::with_local_recorder(&recorder, || registration_up("kept", true));
    }
    let text = handle.render();
    assert!(
        !text.contains(&format!("{REGISTRATION_UP}{{peer=\"gone\"}}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{REGISTRATION_UP}{{peer=\"kept\"}} 1")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{CALLS}{{peer=\"gone\"}}")),
        "{text}"
    );
}
