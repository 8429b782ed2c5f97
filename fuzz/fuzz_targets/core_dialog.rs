#![no_main]
//! libFuzzer entry point; the body is in src/lib.rs, shared with tests/fuzz_corpus.rs.

libfuzzer_sys::fuzz_target!(|data: &[u8]| trunkgate_fuzz::core_dialog(data));
