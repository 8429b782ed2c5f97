//! Replays every file under fuzz/corpus/<target>/ through the same function the libFuzzer
//! target calls (fuzz/src/lib.rs), on stable Rust. The corpora hold the seeds (RFC 4475,
//! the SIPp scenarios' messages, the example profiles), the minimised inputs the fuzz runs
//! kept, and every fixed crash, so a regression fails here in CI. Crashes not fixed yet are
//! in fuzz/regressions/ (listed in KNOWN.tsv) and must still fail exactly as recorded, so a
//! fix, or a change in how they fail, is noticed. No fuzzing happens here.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Run `f` on every corpus file of `target`; a panic names the file that caused it.
fn replay(target: &str, min_files: usize, f: fn(&[u8])) {
    let files = corpus(target);
    // Guards against an emptied or mis-named corpus folder passing silently.
    assert!(
        files.len() >= min_files,
        "{target}: {} corpus files, expected at least {min_files}",
        files.len()
    );
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            panic!(
                "{target}: {} panics (replay it with cargo fuzz run {target} <file>)",
                path.display()
            );
        }
    }
}

/// The panic message of `f(data)`, if it panics.
fn panic_message(f: fn(&[u8]), data: &[u8]) -> Option<String> {
    let payload = std::panic::catch_unwind(|| f(data)).err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

fn target_fn(target: &str) -> fn(&[u8]) {
    match target {
        "sip_datagram" => harness::sip_datagram,
        "sip_stream" => harness::sip_stream,
        "sdp" => harness::sdp,
        "config_toml" => harness::config_toml,
        "callback" => harness::callback,
        "core_message" => harness::core_message,
        "core_dialog" => harness::core_dialog,
        "rtp" => harness::rtp,
        other => panic!("unknown fuzz target {other:?} in KNOWN.tsv"),
    }
}

#[test]
fn known_findings_still_fail_as_recorded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let known = std::fs::read_to_string(dir.join("KNOWN.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = known
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    // An empty list is the goal: every finding fixed, its input kept in corpus/ (replayed
    // above). What stays checked is that no file in regressions/ goes unlisted.
    for row in &rows {
        let [target, file, expected, finding] = row[..] else {
            panic!("KNOWN.tsv row needs 4 columns: {row:?}");
        };
        let data = std::fs::read(dir.join(target).join(file)).unwrap();
        match panic_message(target_fn(target), &data) {
            Some(m) if m.contains(expected) => {}
            Some(m) => panic!("{finding} {target}/{file} now fails differently: {m}"),
            None => panic!(
                "{finding} {target}/{file} no longer fails: fixed? Delete its KNOWN.tsv row \
                 and move the file into fuzz/corpus/{target}/"
            ),
        }
    }
    // Every file in regressions/ is accounted for.
    for target in [
        "sip_datagram",
        "sip_stream",
        "sdp",
        "config_toml",
        "callback",
        "core_message",
        "core_dialog",
        "rtp",
    ] {
        for entry in std::fs::read_dir(dir.join(target)).into_iter().flatten() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                rows.iter().any(|r| r[0] == target && r[1] == name),
                "fuzz/regressions/{target}/{name} is not in KNOWN.tsv"
            );
        }
    }
}

#[test]
fn sip_datagram_corpus() {
    replay("sip_datagram", 50, harness::sip_datagram);
}

#[test]
fn sip_stream_corpus() {
    replay("sip_stream", 50, harness::sip_stream);
}

#[test]
fn core_message_corpus() {
    replay("core_message", 50, harness::core_message);
}

#[test]
fn core_dialog_corpus() {
    replay("core_dialog", 18, harness::core_dialog);
}

#[test]
fn rtp_corpus() {
    replay("rtp", 6, harness::rtp);
}

#[test]
fn callback_corpus() {
    replay("callback", 10, harness::callback);
}

#[test]
fn sdp_corpus() {
    replay("sdp", 10, harness::sdp);
}

#[test]
fn config_toml_corpus() {
    replay("config_toml", 5, harness::config_toml);
}
