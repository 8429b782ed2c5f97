use super::*;

#[test]
fn an_entrys_own_parameters_are_its_indexes_alone() {
    assert_eq!(
        entry_params(";index=1.1;rc=1;foo=bar;mp=1.2"),
        ";index=1.1;rc=1;mp=1.2"
    );
    // Not an index: left out, as is anything inside a quoted value, and a second of a name.
    assert_eq!(entry_params(";index=1..2;np=x;rc=1"), ";rc=1");
    assert_eq!(entry_params(";index=1;index=2;rc=1"), ";index=1;rc=1");
    assert_eq!(entry_params(";x=\"a;index=9\";index=2"), ";index=2");
    assert_eq!(entry_params(""), "");
}

#[test]
fn only_a_reason_and_a_privacy_ride_in_the_target_and_only_when_well_formed() {
    assert_eq!(
        embedded_headers("Reason=SIP%3Bcause%3D302%3Btext%3D%22Moved%22&X-Host=10.0.0.5"),
        vec![("Reason", "SIP%3Bcause%3D302%3Btext%3D%22Moved%22")]
    );
    // A value that would end the URI or the header (`>`, a space, a quote), or with a `%`
    // that escapes nothing, is dropped.
    assert!(embedded_headers("Reason=SIP;cause=302>").is_empty());
    assert!(embedded_headers("Reason=a b").is_empty());
    assert!(embedded_headers("Reason=SIP%zz").is_empty());
    assert!(embedded_headers("Reason=SIP%3").is_empty());
    assert_eq!(
        embedded_headers("privacy=history&Reason=Q.850%3Bcause%3D16"),
        vec![("Privacy", "history"), ("Reason", "Q.850%3Bcause%3D16")]
    );
}

/// Every Privacy the entry's URI carries is read, escapes decoded, and one that cannot be
/// read asks for privacy (failing closed).
#[test]
fn history_privacy_is_read_per_entry_and_for_the_request() {
    assert!(asks_history("Privacy=history"));
    assert!(asks_history("Privacy=id%3Bhistory"));
    assert!(asks_history("Privacy=none&Privacy=history"));
    assert!(asks_history("privacy=hist%6Fry"));
    assert!(asks_history("Privacy=%zz"));
    assert!(!asks_history("Privacy=id"));
    assert!(!asks_history("Reason=history"));
    assert!(asks_all_withheld(&["id; history".into()]));
    assert!(asks_all_withheld(&["header".into()]));
    assert!(!asks_all_withheld(&["id".into(), "none".into()]));
}

#[test]
fn a_diversion_cause_is_three_digits_after_the_host() {
    assert_eq!(
        diversion_cause("sip:+4930123@ims.example;user=phone;cause=302"),
        Some("302")
    );
    assert_eq!(diversion_cause("sip:+4930123;cause=302@ims.example"), None);
    assert_eq!(diversion_cause("sip:+4930123@ims.example;cause=30"), None);
    assert_eq!(diversion_cause("tel:+4930123;cause=302"), None);
}
