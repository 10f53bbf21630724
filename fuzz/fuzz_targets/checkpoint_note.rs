//! Any bytes as a signed checkpoint note: no panic, a parsed note is its
//! parts written back, and only the trusted key's own signature verifies.
//! The body is `deconflict_fuzzing::checkpoint_note`, which the stable test
//! `crates/fuzzing/tests/corpus.rs` replays over `fuzz/corpus/checkpoint_note/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deconflict_fuzzing::checkpoint_note(data));
