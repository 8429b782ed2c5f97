//! The shell's own small pieces: what `GET /health` says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn health_is_not_ready_while_draining_or_while_cdrs_refuse_new_calls() {
    let draining = Arc::new(AtomicBool::new(false));
    let cdr_ok = Arc::new(AtomicBool::new(true));
    let ready = super::ready(&draining, {
        let cdr_ok = Arc::clone(&cdr_ok);
        move || cdr_ok.load(Ordering::Acquire)
    });
    assert_eq!(ready(), Ok(()));
    cdr_ok.store(false, Ordering::Release);
    assert_eq!(
        ready(),
        Err("CDRs cannot be written: new calls are refused")
    );
    cdr_ok.store(true, Ordering::Release);
    assert_eq!(ready(), Ok(()));
    draining.store(true, Ordering::Release);
    assert_eq!(ready(), Err("draining: new calls are refused"));
    // Draining is the reason given when both hold: it does not pass.
    cdr_ok.store(false, Ordering::Release);
    assert_eq!(ready(), Err("draining: new calls are refused"));
}
