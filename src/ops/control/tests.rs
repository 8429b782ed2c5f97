use super::client::pid_file_error;
use super::result_file::RESULT_ROOM;
use super::*;

#[test]
fn a_gateway_is_found_after_its_binary_was_upgraded_or_run_from_elsewhere() {
    let ours = Path::new("/usr/local/bin/trunkgate");
    for theirs in [
        "/usr/local/bin/trunkgate",
        "/usr/local/bin/trunkgate (deleted)",
        "/opt/trunkgate/target/release/trunkgate",
    ] {
        assert!(same_program(Path::new(theirs), ours), "{theirs}");
    }
    for theirs in ["/usr/bin/python3", "/usr/bin/python3 (deleted)", "/"] {
        assert!(!same_program(Path::new(theirs), ours), "{theirs}");
    }
}

#[test]
fn results_are_read_back_line_by_line_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    let mut c = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    let pid = std::fs::read_to_string(pid_file(&cfg)).unwrap();
    assert_eq!(first_line_pid(&pid), Some(std::process::id() as i32));
    c.reloaded(
        boot_ms(),
        "applied",
        "4 profiles, 2 routes;\nchanged: carrier-a",
    );
    c.settle();
    let r = read_result(&result_file(&cfg)).unwrap();
    assert_eq!(r.sequence, 1);
    assert_eq!(r.result, "applied");
    assert_eq!(r.detail, "4 profiles, 2 routes; changed: carrier-a");
    drop(c);
    assert!(!pid_file(&cfg).exists(), "the pid file goes at exit");
    // A restarted process continues the sequence, so a waiting `reload` sees a change.
    let mut c = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    c.reloaded(boot_ms(), "invalid", "x");
    c.settle();
    assert_eq!(read_result(&result_file(&cfg)).unwrap().sequence, 2);
}

/// When no new result file can be written (a full disk; here its temporary name is
/// taken), the result is written over the last one in place, and `trunkgate reload`
/// sees it. Before, it waited 10 s and reported a failure for a reload that was applied.
#[test]
fn a_result_is_written_in_place_when_no_new_file_can_be() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    let mut c = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    std::fs::create_dir(dir.path().join("cdr.jsonl.reload.tmp")).unwrap();
    c.reloaded(boot_ms(), "applied", "4 profiles, 2 routes");
    c.settle();
    let r = read_result(&result_file(&cfg)).unwrap();
    assert_eq!((r.sequence, r.result.as_str()), (1, "applied"));
    assert_eq!(r.detail, "4 profiles, 2 routes");
    // A long detail is cut to the room, on a character boundary, and says so.
    c.reloaded(boot_ms(), "invalid", &"é".repeat(3000));
    c.settle();
    let r = read_result(&result_file(&cfg)).unwrap();
    assert_eq!(r.sequence, 2);
    assert!(
        r.detail.ends_with("é…") && r.detail.len() < RESULT_ROOM,
        "{}",
        r.detail
    );
    // Written in place over a longer file (one an older gateway left), the old tail
    // does not stay.
    std::fs::write(
        result_file(&cfg),
        "9 applied ".to_string() + &"x".repeat(9000),
    )
    .unwrap();
    c.reloaded(boot_ms(), "applied", "short");
    c.settle();
    let r = read_result(&result_file(&cfg)).unwrap();
    assert_eq!((r.sequence, r.detail.as_str()), (3, "short"));
    assert_eq!(
        std::fs::metadata(result_file(&cfg)).unwrap().len(),
        RESULT_ROOM as u64
    );
}

#[test]
fn reload_without_a_running_gateway_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    let err = reload(&cfg, Path::new("gateway.toml"), Duration::from_millis(10)).unwrap_err();
    assert!(matches!(err, ReloadError::NoPidFile { .. }));
    // An operator who moved the CDR file is told why the gateway is not found.
    assert!(err.to_string().contains("[cdr] path changed"), "{err}");
    std::fs::write(pid_file(&cfg), "1\n").unwrap();
    // pid 1 is init, not a trunkgate.
    assert!(matches!(
        reload(&cfg, Path::new("gateway.toml"), Duration::from_millis(10)),
        Err(ReloadError::NotRunning { pid: 1, .. })
    ));
}

/// Two instances whose CDR files share a folder (scaling out on one host) have pid and
/// result files of their own. Before, both wrote `trunkgate.pid` and `trunkgate.reload`
/// there: `trunkgate reload` for the first signalled the second and printed its answer.
#[test]
fn instances_sharing_a_cdr_folder_have_control_files_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut one = crate::call::tests::config();
    one.cdr_path = dir.path().join("cdr-1.jsonl");
    let mut two = crate::call::tests::config();
    two.cdr_path = dir.path().join("cdr-2.jsonl");
    assert_ne!(pid_file(&one), pid_file(&two));
    assert_ne!(result_file(&one), result_file(&two));
    assert_eq!(pid_file(&one), dir.path().join("cdr-1.jsonl.pid"));
    let mut a = Control::start(&one, Path::new("gateway.toml")).unwrap();
    let _b = Control::start(&two, Path::new("gateway.toml")).unwrap();
    // Results handed to the writing threads land in order.
    for i in 0..20 {
        a.reloaded(boot_ms(), "applied", &format!("reload {i}"));
    }
    a.settle();
    let r = read_result(&result_file(&one)).unwrap();
    assert_eq!((r.sequence, r.detail.as_str()), (20, "reload 19"));
    assert!(read_result(&result_file(&two)).is_some_and(|r| r.sequence == 0));
}

/// The pid file is held while its gateway runs: a second gateway on the same CDR file
/// is refused it, and a file left by a gateway that died is known as stale whatever pid
/// it names. Before, a pid given to another trunkgate since made a stale file look live.
#[test]
fn the_pid_file_is_held_while_its_gateway_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    let first = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    let open = || std::fs::File::open(pid_file(&cfg)).unwrap();
    assert!(held(&open()));
    let second = Control::start(&cfg, Path::new("gateway.toml"))
        .err()
        .expect("the file is held");
    assert!(
        second.to_string().contains("held by a running trunkgate"),
        "{second}"
    );
    drop(first);
    // Left behind by a gateway that died (no lock): not held.
    std::fs::write(pid_file(&cfg), "4242\n").unwrap();
    assert!(!held(&open()));
    assert!(matches!(
        reload(&cfg, Path::new("gateway.toml"), Duration::from_millis(10)),
        Err(ReloadError::NotRunning { pid: 4242, .. })
    ));
    let _again = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    assert_eq!(
        first_line_pid(&std::fs::read_to_string(pid_file(&cfg)).unwrap()),
        Some(std::process::id() as i32)
    );
}

/// Between an upgrade and the restart the running gateway has only its old pid file:
/// `trunkgate reload` looks for that when there is no new one.
#[test]
fn a_gateway_from_before_the_new_names_is_still_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    std::fs::write(dir.path().join("trunkgate.pid"), "1\n").unwrap();
    // (pid 1 is init: not a trunkgate, or, where its program may not be read, not known
    // to be one; either way the old file was the one looked at.)
    match reload(&cfg, Path::new("gateway.toml"), Duration::from_millis(10)) {
        Err(ReloadError::NotRunning { pid: 1, path })
        | Err(ReloadError::CannotTell { pid: 1, path, .. }) => {
            assert!(path.ends_with("trunkgate.pid"), "{}", path.display());
        }
        other => panic!("{other:?}"),
    }
}

/// A stalled disk (a write of the result held until let go) gets one writing thread however many reloads come, and the newest result is
/// the one written when it frees. Before, each reload started a thread waiting on the one
/// before: a SIGHUP an hour on a hung mount piled up threads for as long as it lasted.
#[test]
fn a_stalled_disk_holds_one_writing_thread_and_gets_the_newest_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("stall.jsonl");
    let mut c = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    super::result_file::stalled::hold(&result_file(&cfg));
    c.reloaded(boot_ms(), "applied", "reload 1");
    // Its thread took it, and is blocked writing it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.pending.lock().unwrap().line.is_some() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 2..=30 {
        c.reloaded(boot_ms(), "applied", &format!("reload {i}"));
    }
    // One thread holds the pending line's handle besides the gateway's: no second started.
    assert_eq!(std::sync::Arc::strong_count(&c.pending), 2);
    // The disk comes back: the first result is written, then the newest.
    super::result_file::stalled::release(&result_file(&cfg));
    c.settle();
    let r = read_result(&result_file(&cfg)).unwrap();
    assert_eq!((r.sequence, r.detail.as_str()), (30, "reload 30"));
}

/// A result file left with the highest sequence does not stop the count: a `trunkgate
/// reload` waits for any other number. Before, the gateway's `+= 1` overflowed (a panic in
/// a debug build, every call dropped) and the client waited for a higher one for ever.
#[test]
fn a_sequence_at_the_top_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("top.jsonl");
    std::fs::write(result_file(&cfg), format!("{} applied -\n", u64::MAX)).unwrap();
    let mut c = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    c.reloaded(boot_ms(), "applied", "x");
    c.settle();
    assert_eq!(read_result(&result_file(&cfg)).unwrap().sequence, 0);
}

/// A pid file the user may not read says so, and how to reload instead. Before, it read
/// "no running gateway" while the gateway ran.
#[test]
fn a_pid_file_not_ours_to_read_is_not_a_gateway_gone() {
    let path = Path::new("/var/lib/trunkgate/cdr.jsonl.pid");
    let denied = pid_file_error(path, io::Error::from(io::ErrorKind::PermissionDenied));
    assert!(matches!(denied, ReloadError::NoPermission { .. }));
    assert!(
        denied.to_string().contains("systemctl reload trunkgate"),
        "{denied}"
    );
    let gone = pid_file_error(path, io::Error::from(io::ErrorKind::NotFound));
    assert!(matches!(gone, ReloadError::NoPidFile { .. }));
}

/// A gateway run by another user cannot be told from a stranger's process (its program
/// may not be read): said so, with how to reload, not "not a running trunkgate".
#[test]
fn a_process_whose_program_cannot_be_read_is_not_called_a_stranger() {
    let e = ReloadError::CannotTell {
        pid: 4242,
        path: "/var/lib/trunkgate/cdr.jsonl.pid".into(),
        source: io::Error::from(io::ErrorKind::PermissionDenied),
    };
    let said = e.to_string();
    assert!(
        said.contains("may be the gateway") && said.contains("systemctl reload"),
        "{said}"
    );
}

/// `trunkgate reload` takes only the answer to a load begun after its SIGHUP: another's
/// SIGHUP loading as it came (its own is loaded after it), or an answer an earlier client
/// gave up waiting for, is not its answer. Before, it printed the first new result,
/// `reloaded` for an edit then refused. A gateway of before the start time is taken at
/// its word.
#[test]
fn the_answer_is_the_one_to_a_load_begun_after_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    let mut c = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    let sent_ms = boot_ms();
    let earlier = sent_ms - 300;
    c.reloaded(earlier, "applied", "another's edit");
    c.settle();
    let r = read_result(&result_file(&cfg)).unwrap();
    assert_eq!(r.started_ms, Some(earlier));
    assert!(!r.answers(0, sent_ms), "{r:?}");
    c.reloaded(sent_ms + 2, "restart_required", "[sip] advertise");
    c.settle();
    let r = read_result(&result_file(&cfg)).unwrap();
    assert!(r.answers(0, sent_ms), "{r:?}");
    assert_eq!((r.sequence, r.result.as_str()), (2, "restart_required"));
    // An older gateway's line, without the start.
    std::fs::write(result_file(&cfg), "7 applied 1 profiles\n").unwrap();
    let r = read_result(&result_file(&cfg)).unwrap();
    assert_eq!((r.sequence, r.started_ms), (7, None));
    assert!(r.answers(0, sent_ms) && !r.answers(7, sent_ms));
}

/// A symbolic link put at the result's temporary name (by whoever may write the CDR folder)
/// is not written through: the CDR file it names keeps its lines. Before, a SIGHUP
/// truncated it to the result's 4 KiB.
#[test]
fn a_link_at_the_results_temporary_name_is_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    std::fs::write(&cfg.cdr_path, "{\"call_id\":\"a\"}\n").unwrap();
    let mut c = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    std::os::unix::fs::symlink(&cfg.cdr_path, dir.path().join("cdr.jsonl.reload.tmp")).unwrap();
    c.reloaded(boot_ms(), "applied", "reload 1");
    c.settle();
    assert_eq!(
        std::fs::read_to_string(&cfg.cdr_path).unwrap(),
        "{\"call_id\":\"a\"}\n"
    );
}

/// A hard link at a control file's name (the result's temporary name, the result itself
/// with the temporary name taken by a folder, the pid file) is not written through:
/// `O_NOFOLLOW` stops symbolic links only. Before, a reload or a start emptied the CDR file.
#[test]
fn a_hard_link_at_a_control_files_name_is_not_written_through() {
    let cdr_line = "{\"call_id\":\"a\"}\n";
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    std::fs::write(&cfg.cdr_path, cdr_line).unwrap();
    // The pid file, linked before the start.
    std::fs::hard_link(&cfg.cdr_path, dir.path().join("cdr.jsonl.pid")).unwrap();
    let mut c = Control::start(&cfg, Path::new("gateway.toml")).unwrap();
    assert_eq!(std::fs::read_to_string(&cfg.cdr_path).unwrap(), cdr_line);
    assert_eq!(
        first_line_pid(&std::fs::read_to_string(dir.path().join("cdr.jsonl.pid")).unwrap()),
        Some(std::process::id() as i32)
    );
    // The result's temporary name.
    std::fs::hard_link(&cfg.cdr_path, dir.path().join("cdr.jsonl.reload.tmp")).unwrap();
    c.reloaded(boot_ms(), "applied", "reload 1");
    c.settle();
    assert_eq!(std::fs::read_to_string(&cfg.cdr_path).unwrap(), cdr_line);
    // The result itself, its temporary name a folder (the in-place fallback).
    let _ = std::fs::remove_file(dir.path().join("cdr.jsonl.reload.tmp"));
    std::fs::create_dir(dir.path().join("cdr.jsonl.reload.tmp")).unwrap();
    std::fs::remove_file(dir.path().join("cdr.jsonl.reload")).unwrap();
    std::fs::hard_link(&cfg.cdr_path, dir.path().join("cdr.jsonl.reload")).unwrap();
    c.reloaded(boot_ms(), "applied", "reload 2");
    c.settle();
    assert_eq!(std::fs::read_to_string(&cfg.cdr_path).unwrap(), cdr_line);
}

/// `trunkgate reload -c` with another file than the running gateway's is refused, naming
/// both: the gateway reloads the file it was started with, and the check of another file
/// reported "reloaded" for a change that never ran. The same path, or another path to the
/// file it names now (a symbolic link, followed), goes on to signal the gateway (here this
/// process: not a gateway); a link the gateway was started by that now points elsewhere (a
/// release switched, a mounted ConfigMap updated) is still its file.
#[test]
fn reload_with_another_file_than_the_running_gateways_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.cdr_path = dir.path().join("cdr.jsonl");
    let first = dir.path().join("gateway.toml");
    let staged = dir.path().join("staged.toml");
    let link = dir.path().join("link.toml");
    std::fs::write(&first, "").unwrap();
    std::fs::write(&staged, "").unwrap();
    std::os::unix::fs::symlink(&first, &link).unwrap();
    let _c = Control::start(&cfg, &link).unwrap();
    let text = std::fs::read_to_string(pid_file(&cfg)).unwrap();
    assert_eq!(first_line_pid(&text), Some(std::process::id() as i32));
    let not_a_gateway = |given: &Path| {
        matches!(
            reload(&cfg, given, Duration::from_millis(10)),
            Err(ReloadError::NotRunning { .. })
        )
    };
    let err = reload(&cfg, &staged, Duration::from_millis(10)).unwrap_err();
    assert!(matches!(err, ReloadError::OtherConfig { .. }), "{err}");
    let said = err.to_string();
    assert!(
        said.contains("link.toml") && said.contains("staged.toml"),
        "{said}"
    );
    assert!(not_a_gateway(&link) && not_a_gateway(&first));
    // The link moved on: it names the staged file, which is the gateway's now.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&staged, &link).unwrap();
    assert!(not_a_gateway(&link) && not_a_gateway(&staged));
    assert!(matches!(
        reload(&cfg, &first, Duration::from_millis(10)),
        Err(ReloadError::OtherConfig { .. })
    ));
}
