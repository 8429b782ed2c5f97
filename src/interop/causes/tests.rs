use super::*;

#[test]
fn one_reason_value_per_protocol_goes_on_the_one_recorded() {
    let lines = vec![
        "Q.850;cause=17, q.850;cause=21".to_string(),
        "SIP;cause=486".to_string(),
        "SIP;cause=600".to_string(),
    ];
    let out = reasons_rebuilt(&lines);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[0].contains("cause=17") && out[1].contains("cause=486"),
        "{out:?}"
    );
    assert_eq!(parse_reason(&lines).q850, Some(Q850Cause(17)));
}

/// A preemption (RFC 4411) is cause 8 unless a Q.850 value says otherwise.
#[test]
fn a_preemption_reason_reads_as_cause_8() {
    let read = |l: &str| parse_reason(&[l.to_string()]).q850;
    assert_eq!(
        read("preemption ;cause=1 ;text=\"UA Preemption\""),
        Some(Q850Cause::PREEMPTION)
    );
    assert_eq!(
        read("Preemption;cause=3, Q.850;cause=17"),
        Some(Q850Cause(17))
    );
    assert_eq!(
        read("Q.850;cause=17, preemption;cause=2"),
        Some(Q850Cause(17))
    );
    assert_eq!(read("preemption"), Some(Q850Cause::PREEMPTION));
    assert_eq!(read("SIP;cause=200"), None);
}

/// A peer's Reason with thousands of values, each of a protocol of its own, or one
/// protocol name of kilobytes: a few values go on, each small.
#[test]
fn a_reason_of_endless_values_passes_a_few_small_ones() {
    let many: Vec<String> = (0..20_000).map(|i| format!("p{i}")).collect();
    let out = reasons_rebuilt(&[many.join(", ")]);
    assert_eq!(out, ["p0", "p1", "p2", "p3"]);
    let long = "x".repeat(5_000);
    assert_eq!(
        reasons_rebuilt(&[format!("{long}, Q.850;cause=16")]),
        ["Q.850;cause=16"]
    );
}

#[test]
fn a_sip_reason_is_written_anew_from_what_it_says() {
    let rebuilt = |v: &str| reason_rebuilt(v);
    assert_eq!(
        rebuilt("SIP;cause=200;text=\"Call completed elsewhere\"").as_deref(),
        Some("SIP;cause=200;text=\"Call completed elsewhere\"")
    );
    assert_eq!(
        rebuilt("sip ; cause=200 ; text=\"x").as_deref(),
        Some("SIP;cause=200;text=\"x\"")
    );
    assert_eq!(
        rebuilt("SIP;text=\"a\\\"b\";cause=486").as_deref(),
        Some("SIP;text=\"ab\";cause=486")
    );
    assert_eq!(rebuilt("SIP;cause=200").as_deref(), Some("SIP;cause=200"));
    assert_eq!(rebuilt("SIP;cause=20"), None);
    assert_eq!(rebuilt("SIP;text=\"no cause\""), None);
    assert_eq!(
        rebuilt("Q.850;cause=16;text=\"Normal").as_deref(),
        Some("Q.850;cause=16;text=\"Normal\"")
    );
    assert_eq!(rebuilt("Q.850;cause=200"), None);
    // Other parameters and protocols go on too, as tokens or texts written anew.
    assert_eq!(
        rebuilt("Q.850;cause=16;location=LN").as_deref(),
        Some("Q.850;cause=16;location=LN")
    );
    assert_eq!(
        rebuilt("preemption ;cause=1 ;text=\"UA Preemption").as_deref(),
        Some("preemption;cause=1;text=\"UA Preemption\"")
    );
    assert_eq!(
        rebuilt("Q.850;cause=16;bad=a b;x").as_deref(),
        Some("Q.850;cause=16;x")
    );
    assert_eq!(rebuilt("Bad Proto;cause=1"), None);
    // A text is quoted however it came; a cause is digits whatever the protocol; a
    // parameter counts once.
    assert_eq!(
        rebuilt("Q.850;cause=16;text=Normal;cause=17;text=\"x\"").as_deref(),
        Some("Q.850;cause=16;text=\"Normal\"")
    );
    assert_eq!(rebuilt("preemption;cause=abc"), None);
    let many: String = (0..50).map(|i| format!(";p{i}=v")).collect();
    let long = rebuilt(&format!("X{many}")).unwrap();
    assert!(long.len() < 64, "{long}");
    assert_eq!(
        reasons_rebuilt(&["Q.850;cause=16, SIP;cause=200".into(), "not one".into()]),
        ["Q.850;cause=16", "SIP;cause=200"]
    );
}

#[test]
fn table_spot_checks() {
    assert_eq!(rfc3398_cause(404), Q850Cause(1));
    assert_eq!(rfc3398_cause(486), Q850Cause(17));
    assert_eq!(rfc3398_cause(480), Q850Cause(18));
    assert_eq!(rfc3398_cause(408), Q850Cause(102));
    assert_eq!(rfc3398_cause(503), Q850Cause(41));
    assert_eq!(rfc3398_cause(603), Q850Cause(21));
    assert_eq!(rfc3398_cause(599), Q850Cause(41));
    assert_eq!(rfc3398_cause(499), Q850Cause(31));
    // Not in the RFC's table: by class. Before, 127 (interworking), which reports count
    // as a failure of the network.
    assert_eq!(rfc3398_cause(487), Q850Cause(31));
    // "By Warning header": a session refused.
    assert_eq!(rfc3398_cause(488), Q850Cause(65));
    assert_eq!(rfc3398_cause(606), Q850Cause(65));
}

#[test]
fn a_cause_inside_the_quoted_text_is_not_the_cause() {
    let lines = vec![r#"Q.850;text="x;cause=2;y";cause=16"#.to_string()];
    assert_eq!(parse_reason(&lines).q850, Some(Q850Cause(16)));
}

#[test]
fn q850_wins_and_sip_is_kept() {
    let lines = vec![
        "SIP;cause=486;text=\"Busy, really\"".to_string(),
        "Q.850;cause=17;text=\"User busy\"".to_string(),
    ];
    let r = parse_reason(&lines);
    assert_eq!(r.q850, Some(Q850Cause(17)));
    assert_eq!(
        r.sip.as_deref(),
        Some("SIP;cause=486;text=\"Busy, really\"")
    );
}

#[test]
fn peer_map_comes_before_rfc3398() {
    let mut p = CausePolicy::default();
    p.map.insert(503, Q850Cause(34));
    assert_eq!(
        cause_for_status(503, &[], &p),
        (Q850Cause(34), CauseSource::PeerMap, None)
    );
    assert_eq!(
        cause_for_status(404, &[], &p),
        (Q850Cause(1), CauseSource::Rfc3398, None)
    );
    let lines = vec!["Q.850;cause=42".to_string()];
    assert_eq!(
        cause_for_status(503, &lines, &p),
        (Q850Cause(42), CauseSource::ReasonHeader, None)
    );
}

#[test]
fn comma_joined_and_garbage() {
    let r = parse_reason(&["Q.850 ; cause = 34 , SIP;cause=503".to_string()]);
    assert_eq!(r.q850, Some(Q850Cause(34)));
    assert!(r.sip.is_some());
    let r = parse_reason(&["Q.850;cause=999".to_string(), "Q.850;cause=x".to_string()]);
    assert_eq!(r, ReasonInfo::default());
}

/// The CDR's cause is the one passed on to the other leg, whatever the peer wrote: a
/// `+17` is no cause to either (RFC 3326: digits), and a value with a bad `cause` is
/// left out whole by both, so a later value of the protocol speaks for it.
#[test]
fn the_cdr_reads_the_cause_the_other_leg_is_told() {
    for (line, told, cause) in [
        ("Q.850;cause=+17", None, None),
        ("Q.850;cause=x;cause=17", None, None),
        (
            "Q.850;cause=+17, Q.850;cause=18",
            Some("Q.850;cause=18"),
            Some(18),
        ),
        (
            "Q.850;text=\"a;cause=5\";cause=18",
            Some("Q.850;text=\"a;cause=5\";cause=18"),
            Some(18),
        ),
    ] {
        let lines = vec![line.to_string()];
        assert_eq!(reasons_rebuilt(&lines).first().map(String::as_str), told);
        assert_eq!(parse_reason(&lines).q850, cause.map(Q850Cause), "{line}");
    }
}
