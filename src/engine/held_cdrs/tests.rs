//! A recorded call's CDR held until its recording is finished.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{HeldCdrs, MAX_HELD, WAIT};
use crate::cdr::CdrRecord;
use crate::media::RecordingNews;

fn recorded(id: &str) -> Box<CdrRecord> {
    let mut cdr = crate::cdr::tests::rec(id);
    cdr.recording = Some(format!("/rec/{id}.wav"));
    Box::new(cdr)
}

#[test]
fn a_cdr_waits_for_its_recording_and_says_what_its_last_write_did() {
    let now = Instant::now();
    let mut held = HeldCdrs::default();
    assert!(
        held.hold(7, recorded("a"), now).is_none(),
        "held, not written"
    );
    assert!(held.hold(8, recorded("b"), now).is_none());
    // News of a call whose CDR is not held goes to the core (the call is still up).
    assert_eq!(
        held.news(9, RecordingNews::Stopped),
        Err(RecordingNews::Stopped)
    );
    // The file got another name; then the disk refused its last write.
    let renamed = PathBuf::from("/rec/a-1.wav");
    assert_eq!(held.news(7, RecordingNews::Renamed(renamed)), Ok(None));
    assert_eq!(held.news(7, RecordingNews::Stopped), Ok(None));
    let a = held.news(7, RecordingNews::Finished).unwrap().unwrap();
    assert_eq!(a.recording.as_deref(), Some("/rec/a-1.wav"));
    assert_eq!(a.events, ["recording_stopped"]);
    // A file that held nothing was removed: the CDR names none.
    assert_eq!(held.news(8, RecordingNews::Removed), Ok(None));
    let b = held.news(8, RecordingNews::Finished).unwrap().unwrap();
    assert_eq!(
        (b.recording, b.events),
        (None, vec!["recording_removed".to_string()])
    );
    assert!(held.is_empty());
    assert_eq!(
        held.news(8, RecordingNews::Finished),
        Err(RecordingNews::Finished)
    );
}

#[test]
fn a_writer_that_does_not_finish_holds_a_cdr_at_most_its_wait() {
    let now = Instant::now();
    let mut held = HeldCdrs::default();
    held.hold(1, recorded("first"), now);
    held.hold(2, recorded("second"), now + Duration::from_secs(1));
    assert!(
        held.overdue(now + WAIT - Duration::from_millis(1))
            .is_empty()
    );
    let late = held.overdue(now + WAIT);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].call_id, "first");
    assert_eq!(late[0].events, ["recording_unfinished"]);
    // A stop writes the rest, unfinished, in the order their calls ended.
    held.hold(3, recorded("third"), now + Duration::from_secs(2));
    let rest: Vec<String> = held.all().into_iter().map(|c| c.call_id).collect();
    assert_eq!(rest, ["second", "third"]);
    assert!(held.is_empty());
}

#[test]
fn past_its_bound_a_cdr_is_written_at_once_as_unfinished() {
    let now = Instant::now();
    let mut held = HeldCdrs::default();
    for call in 0..MAX_HELD as u64 {
        assert!(held.hold(call, recorded("x"), now).is_none());
    }
    let at_once = held.hold(u64::MAX, recorded("over"), now).unwrap();
    assert_eq!(at_once.call_id, "over");
    assert_eq!(at_once.events, ["recording_unfinished"]);
}
