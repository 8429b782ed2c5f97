use super::*;
use crate::cdr::fs::{CdrFile, FileId};

/// A disk that is always full.
struct FullFs;
struct FullFile;

impl CdrFs for FullFs {
    fn open(&mut self, _: &Path) -> std::io::Result<Box<dyn CdrFile>> {
        Ok(Box::new(FullFile))
    }
    fn id_of(&mut self, _: &Path) -> std::io::Result<FileId> {
        Ok(FileId { dev: 1, ino: 1 })
    }
}

impl CdrFile for FullFile {
    fn id(&self) -> FileId {
        FileId { dev: 1, ino: 1 }
    }
    fn size(&mut self) -> std::io::Result<u64> {
        Ok(0)
    }
    fn last_byte(&mut self) -> std::io::Result<Option<u8>> {
        Ok(None)
    }
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::StorageFull.into())
    }
    fn truncate(&mut self, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn sync_handle(&self) -> std::io::Result<Box<dyn crate::cdr::fs::SyncHandle>> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

#[test]
fn queue_depth_and_write_errors_are_exported() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let shared = Shared::new(true);
    shared.depth.store(2, Ordering::Release);
    let mut sink = Sink::new(Box::new(FullFs), Path::new("cdr.jsonl"));
    sink.push("{\"call_id\":\"a\"}".into());
    sink.push("{\"call_id\":\"b\"}".into());
    metrics::with_local_recorder(&recorder, || {
        describe_metrics();
        step(&mut sink, &shared, Instant::now(), &mut Default::default());
    });
    let text = handle.render();
    assert!(text.contains("trunkgate_cdr_queue_depth 2\n"), "{text}");
    assert!(
        text.contains("trunkgate_cdr_write_errors_total 1\n"),
        "{text}"
    );
    assert!(shared.failing.load(Ordering::Acquire));
    assert_eq!(shared.write_errors.load(Ordering::Relaxed), 1);
}
