//! Any bytes through the CoT parser: no panic, and every accepted event
//! survives writing (what is written parses, and writing it again gives the
//! same bytes).
//! The body is `deconflict_fuzzing::cot_event`, which the stable test
//! `crates/fuzzing/tests/corpus.rs` replays over `fuzz/corpus/cot_event/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deconflict_fuzzing::cot_event(data));
