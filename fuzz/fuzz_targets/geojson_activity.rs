//! Any bytes through GeoJSON parsing and engine validation: no panic, and a
//! rejection always names at least one field.
//! The body is `deconflict_fuzzing::geojson_activity`, which the stable test
//! `crates/fuzzing/tests/corpus.rs` replays over `fuzz/corpus/geojson_activity/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deconflict_fuzzing::geojson_activity(data));
