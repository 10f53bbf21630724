//! Property tests: the frontier, the stored nodes and the proofs against
//! RFC 9162's recursive definitions computed naively.

use deconflict_audit::proof::{consistency_proof_len, inclusion_proof_len};
use deconflict_audit::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root_at, verify_consistency,
    verify_inclusion, Checkpoint, Hash, InclusionPaths, MemoryLog, Receipt, Tree,
};
use proptest::prelude::*;

/// MTH exactly as RFC 9162 §2.1.1 writes it.
fn naive_mth(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&naive_mth(&leaves[..k]), &naive_mth(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]), RFC 9162 §2.1.3.1.
fn naive_path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
    if m < k {
        let mut p = naive_path(m, &leaves[..k]);
        p.push(naive_mth(&leaves[k..]));
        p
    } else {
        let mut p = naive_path(m - k, &leaves[k..]);
        p.push(naive_mth(&leaves[..k]));
        p
    }
}

/// SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1.
fn naive_subproof(m: usize, leaves: &[Vec<u8>], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole {
            Vec::new()
        } else {
            vec![naive_mth(leaves)]
        };
    }
    let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
    if m <= k {
        let mut p = naive_subproof(m, &leaves[..k], whole);
        p.push(naive_mth(&leaves[k..]));
        p
    } else {
        let mut p = naive_subproof(m - k, &leaves[k..], false);
        p.push(naive_mth(&leaves[..k]));
        p
    }
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

fn build(leaves: &[Vec<u8>]) -> MemoryLog {
    let mut log = MemoryLog::new();
    for l in leaves {
        log.append(l).unwrap();
    }
    log
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut b = h.0;
    b[(bit / 8) % 32] ^= 1 << (bit % 8);
    Hash(b)
}

/// Exhaustive on small trees: every size, index and pair, against the
/// naive definitions.
#[test]
fn exhaustive_small_trees() {
    let all = leaves(70);
    let log = build(&all);
    for n in 0..=all.len() {
        let root = naive_mth(&all[..n]);
        assert_eq!(root_at(&log.store, n as u64).unwrap(), root, "root {n}");
        assert_eq!(
            Tree::load(&log.store, n as u64).unwrap().root(),
            root,
            "frontier {n}"
        );
        let paths = InclusionPaths::of_tree(&Tree::load(&log.store, n as u64).unwrap());
        for i in 0..n {
            let p = inclusion_proof(&log.store, i as u64, n as u64).unwrap();
            assert_eq!(p, naive_path(i, &all[..n]), "path {i} {n}");
            assert_eq!(
                paths.prove(&log.store, i as u64).unwrap(),
                p,
                "shared path {i} {n}"
            );
            assert_eq!(p.len(), inclusion_proof_len(i as u64, n as u64));
            verify_inclusion(&leaf_hash(&all[i]), i as u64, n as u64, &p, &root).unwrap();
        }
        for m in 1..n {
            let p = consistency_proof(&log.store, m as u64, n as u64).unwrap();
            assert_eq!(p, naive_subproof(m, &all[..n], true), "subproof {m} {n}");
            assert_eq!(p.len(), consistency_proof_len(m as u64, n as u64));
            let old = naive_mth(&all[..m]);
            verify_consistency(m as u64, n as u64, &old, &root, &p).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The frontier's root equals the naive MTH after every append.
    #[test]
    fn frontier_root_is_mth(data in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..150)) {
        let mut tree = Tree::new();
        for (n, leaf) in data.iter().enumerate() {
            tree.append(leaf).unwrap();
            prop_assert_eq!(tree.root(), naive_mth(&data[..=n]));
        }
        prop_assert_eq!(tree.root(), naive_mth(&data));
    }

    /// Generated inclusion proofs verify, and any single-bit flip in the
    /// proof, the root or the leaf hash is rejected.
    #[test]
    fn inclusion_roundtrip_and_bit_flips(n in 1usize..600, i_seed in any::<u64>(), bit in 0usize..256, which in any::<usize>()) {
        let all = leaves(n);
        let log = build(&all);
        let i = (i_seed % n as u64) as usize;
        let root = log.tree.root();
        let leaf = leaf_hash(&all[i]);
        let p = inclusion_proof(&log.store, i as u64, n as u64).unwrap();
        prop_assert!(verify_inclusion(&leaf, i as u64, n as u64, &p, &root).is_ok());
        prop_assert!(verify_inclusion(&leaf, i as u64, n as u64, &p, &flip(&root, bit)).is_err());
        prop_assert!(verify_inclusion(&flip(&leaf, bit), i as u64, n as u64, &p, &root).is_err());
        if !p.is_empty() {
            let mut bad = p.clone();
            let k = which % bad.len();
            bad[k] = flip(&bad[k], bit);
            prop_assert!(verify_inclusion(&leaf, i as u64, n as u64, &bad, &root).is_err());
        }
        // Another index in the same tree is another path from the root: the
        // same leaf hash and proof cannot reach the root along it. (The size
        // is not bound by the proof; the signed checkpoint binds it.)
        if i + 1 < n {
            prop_assert!(verify_inclusion(&leaf, i as u64 + 1, n as u64, &p, &root).is_err());
        }
        if i > 0 {
            prop_assert!(verify_inclusion(&leaf, i as u64 - 1, n as u64, &p, &root).is_err());
        }
    }

    /// The proofs and receipts of one head built with its shared
    /// [`InclusionPaths`] are those of `inclusion_proof` and
    /// `Receipt::build`, for trees of every scale up to a few thousand
    /// leaves (many frontier subtrees) and entries anywhere, most near the
    /// end where a batch's receipts are; paths of another size than the
    /// checkpoint's are not used, and an entry past the tree is refused.
    #[test]
    fn shared_paths_prove_as_inclusion_proof(n in 1usize..5000, seeds in prop::collection::vec(any::<u64>(), 1..40), other in 0usize..5000) {
        let log = build(&leaves(n));
        let size = n as u64;
        let paths = InclusionPaths::of_tree(&log.tree);
        prop_assert_eq!(paths.size(), size);
        let checkpoint = Checkpoint::of_tree("paths.test", &log.tree);
        let note = format!("note of {n}");
        for seed in seeds {
            let i = if seed % 2 == 0 { size - 1 - (seed / 2) % size.min(300) } else { (seed / 2) % size };
            let p = inclusion_proof(&log.store, i, size).unwrap();
            prop_assert_eq!(paths.prove(&log.store, i).unwrap(), p, "entry {} of {}", i, n);
            let receipt = Receipt::build(&log.store, i, &checkpoint, note.clone()).unwrap();
            let shared = Receipt::build_with(&paths, &log.store, i, &checkpoint, note.clone()).unwrap();
            prop_assert_eq!(
                serde_json::to_vec(&shared).unwrap(),
                serde_json::to_vec(&receipt).unwrap()
            );
            // Another head's paths: the receipt is still the checkpoint's.
            let other_size = (other as u64 % size) + 1;
            let stale = InclusionPaths::of_tree(&Tree::load(&log.store, other_size).unwrap());
            prop_assert_eq!(
                Receipt::build_with(&stale, &log.store, i, &checkpoint, note.clone()).unwrap(),
                receipt
            );
        }
        prop_assert!(paths.prove(&log.store, size).is_err());
        prop_assert!(Receipt::build_with(&paths, &log.store, size, &checkpoint, note).is_err());
    }

    /// Generated consistency proofs verify for all (m, n), and any single-bit
    /// flip in the proof or either root is rejected.
    #[test]
    fn consistency_roundtrip_and_bit_flips(n in 1usize..600, m_seed in any::<u64>(), bit in 0usize..256, which in any::<usize>()) {
        let all = leaves(n);
        let log = build(&all);
        let m = (m_seed % (n as u64 + 1)) as usize;
        let old = root_at(&log.store, m as u64).unwrap();
        let new = log.tree.root();
        let p = consistency_proof(&log.store, m as u64, n as u64).unwrap();
        prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &p).is_ok());
        prop_assert!(verify_consistency(m as u64, n as u64, &flip(&old, bit), &new, &p).is_err());
        if m != 0 {
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &flip(&new, bit), &p).is_err());
        }
        if !p.is_empty() {
            let mut bad = p.clone();
            let k = which % bad.len();
            bad[k] = flip(&bad[k], bit);
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &bad).is_err());
            let mut short = p.clone();
            short.pop();
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &short).is_err());
        }
        let mut long = p.clone();
        long.push(new);
        prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &long).is_err());
        // A tree that rewrote one old leaf is not an extension.
        if m > 0 {
            let mut forged = all.clone();
            forged[which % m] = b"rewritten".to_vec();
            let forged_log = build(&forged);
            let forged_new = forged_log.tree.root();
            let fp = consistency_proof(&forged_log.store, m as u64, n as u64).unwrap();
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &forged_new, &fp).is_err());
        }
    }

    /// Untrusted sizes, indices and proofs never panic.
    #[test]
    fn verification_never_panics(index in any::<u64>(), size in any::<u64>(), m in any::<u64>(), len in 0usize..70, seed in any::<u8>()) {
        let proof: Vec<Hash> = (0..len).map(|k| leaf_hash(&[seed, k as u8])).collect();
        let r = leaf_hash(b"r");
        let _ = verify_inclusion(&r, index, size, &proof, &r);
        let _ = verify_consistency(m, size, &r, &r, &proof);
        let _ = verify_consistency(m.min(size), size, &r, &r, &proof);
    }
}
