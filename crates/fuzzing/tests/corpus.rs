//! Replays every fuzz target's corpus on stable (CI has no nightly for
//! libFuzzer): each file of `fuzz/corpus/<target>/`, and prefixes of it
//! (a cut-off input is the classic crasher of a parser), through the
//! target's body. A failure names the target and the file.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use deconflict_fuzzing::TARGETS;

/// Each target's corpus holds at least this many seeds: an empty or
/// missing directory would make the replay pass without testing anything.
const MIN_SEEDS: usize = 8;
/// Prefixes replayed per file at most (evenly spaced; every prefix of a
/// short file).
const MAX_PREFIXES: usize = 256;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn prefix_lengths(len: usize) -> Vec<usize> {
    if len <= MAX_PREFIXES {
        return (0..len).collect();
    }
    (0..MAX_PREFIXES).map(|i| i * len / MAX_PREFIXES).collect()
}

#[test]
fn every_corpus_input_and_its_prefixes_pass_its_target() {
    let mut failures = Vec::new();
    let (mut files, mut runs) = (0, 0);
    for (target, body) in TARGETS {
        let dir = corpus_dir(target);
        let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no corpus for {target} at {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        seeds.sort();
        assert!(
            seeds.len() >= MIN_SEEDS,
            "{target}: {} seeds in {}, at least {MIN_SEEDS} expected",
            seeds.len(),
            dir.display()
        );
        for path in &seeds {
            let data = std::fs::read(path).unwrap();
            files += 1;
            for len in prefix_lengths(data.len()).into_iter().chain([data.len()]) {
                runs += 1;
                if catch_unwind(AssertUnwindSafe(|| body(&data[..len]))).is_err() {
                    failures.push(format!(
                        "{target}: {} (first {len} of {} bytes)",
                        path.display(),
                        data.len()
                    ));
                    break;
                }
            }
        }
    }
    println!(
        "fuzz corpus replay: {} targets, {files} files, {runs} inputs (files and prefixes), {} failures",
        TARGETS.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "inputs that fail their target:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_fuzz_target_has_its_function_and_its_corpus() {
    let targets_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    let mut on_disk: Vec<String> = std::fs::read_dir(&targets_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|(name, _)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "fuzz/fuzz_targets and deconflict_fuzzing::TARGETS differ"
    );
    for name in &listed {
        let source = std::fs::read_to_string(targets_dir.join(format!("{name}.rs"))).unwrap();
        assert!(
            source.contains(&format!("deconflict_fuzzing::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs does not call deconflict_fuzzing::{name}"
        );
        assert!(corpus_dir(name).is_dir(), "no fuzz/corpus/{name}");
    }
}
