//! Any bytes as a TAK stream, cut into reads at places the input chooses: no
//! panic, buffered bytes stay bounded, and the frames are the same as for one
//! read.
//! The body is `deconflict_fuzzing::tak_stream`, which the stable test
//! `crates/fuzzing/tests/corpus.rs` replays over `fuzz/corpus/tak_stream/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deconflict_fuzzing::tak_stream(data));
