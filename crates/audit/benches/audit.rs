//! Audit log costs: appending 100k leaves and signing the head, proof
//! generation from stored nodes, and the client's verifications.
//!
//! `cargo bench -p deconflict-audit --bench audit`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use deconflict_audit::{
    consistency_proof, inclusion_proof, leaf_hash, sign_checkpoint, verify_checkpoint, verify_inclusion,
    verify_receipt, Checkpoint, LeafEvent, MemoryLog, NoteSigner, Receipt,
};
use serde_json::json;

const ORIGIN: &str = "deconflict.example/log";
const LEAVES: u64 = 100_000;

fn leaves(n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{{\"at_ms\":{i},\"kind\":\"activity.notified\",\"v\":1}}").into_bytes())
        .collect()
}

fn log_of(leaves: &[Vec<u8>]) -> MemoryLog {
    let mut log = MemoryLog::new();
    for l in leaves {
        log.append(l).unwrap();
    }
    log
}

/// Cheap deterministic index sequence (no RNG crate needed in the loop).
fn next_index(state: &mut u64, n: u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) % n
}

fn append(c: &mut Criterion) {
    let data = leaves(LEAVES);
    let signer = NoteSigner::from_seed(ORIGIN, &[1; 32]).unwrap();
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(LEAVES));
    g.sample_size(10);
    g.bench_function("100k leaves into tree and store, then sign the checkpoint", |b| {
        b.iter(|| {
            let log = log_of(&data);
            let cp = Checkpoint::of_tree(ORIGIN, &log.tree);
            black_box(sign_checkpoint(&cp, &signer).unwrap())
        })
    });
    g.bench_function("100k leaves into the frontier only", |b| {
        b.iter(|| {
            let mut tree = deconflict_audit::Tree::new();
            for l in &data {
                tree.append(l).unwrap();
            }
            black_box(tree.root())
        })
    });
    g.finish();

    let payload = json!({"activity": "7f1c", "party": "blue", "version": 3, "conflicts": ["c1", "c2"]});
    c.bench_function("encode one LeafEvent (JCS) and hash it", |b| {
        b.iter(|| {
            LeafEvent {
                kind: "activity.notified",
                at_ms: 1_700_000_000_000,
                payload: black_box(&payload),
            }
            .leaf_hash()
            .unwrap()
        })
    });
    c.bench_function("sign one checkpoint", |b| {
        let cp = Checkpoint::new(ORIGIN, LEAVES, leaf_hash(b"root"));
        b.iter(|| sign_checkpoint(black_box(&cp), &signer).unwrap())
    });
}

fn proofs(c: &mut Criterion) {
    let data = leaves(LEAVES);
    let log = log_of(&data);
    let signer = NoteSigner::from_seed(ORIGIN, &[1; 32]).unwrap();
    let verifier = signer.verifier();
    let cp = Checkpoint::of_tree(ORIGIN, &log.tree);
    let note = sign_checkpoint(&cp, &signer).unwrap();

    let mut g = c.benchmark_group("proofs at 100k");
    let mut state = 7u64;
    g.bench_function("inclusion proof generation", |b| {
        b.iter(|| {
            let i = next_index(&mut state, LEAVES);
            inclusion_proof(&log.store, i, LEAVES).unwrap()
        })
    });
    g.bench_function("consistency proof generation", |b| {
        b.iter(|| {
            let m = 1 + next_index(&mut state, LEAVES - 1);
            consistency_proof(&log.store, m, LEAVES).unwrap()
        })
    });
    g.bench_function("inclusion proof verification", |b| {
        b.iter_batched(
            || {
                let i = next_index(&mut state, LEAVES);
                (i, inclusion_proof(&log.store, i, LEAVES).unwrap())
            },
            |(i, p)| verify_inclusion(&leaf_hash(&data[i as usize]), i, LEAVES, &p, &cp.root_hash).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("checkpoint verification", |b| {
        b.iter(|| verify_checkpoint(black_box(&note), &verifier).unwrap())
    });
    g.bench_function("receipt build + offline verification", |b| {
        b.iter(|| {
            let i = next_index(&mut state, LEAVES);
            let r = Receipt::build(&log.store, i, &cp, note.clone()).unwrap();
            verify_receipt(&r, Some(&data[i as usize]), &verifier).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, append, proofs);
criterion_main!(benches);
