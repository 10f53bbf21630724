//! Log-level flows: checkpoints signed and verified, "only grew" between
//! checkpoints, the signer refusing forks, receipts verified offline.

use deconflict_audit::{
    check_growth, consistency_proof, inclusion_proof, leaf_hash, root_at, sign_checkpoint, verify_checkpoint,
    verify_growth, verify_receipt, Checkpoint, CheckpointSigner, Error, Hash, LeafEvent, MemoryLog,
    NoteSigner, Receipt,
};
use serde_json::json;

const ORIGIN: &str = "deconflict.example/log";

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[42; 32]).unwrap()
}

fn event(i: u64) -> Vec<u8> {
    let payload = json!({"activity": format!("a{i}"), "party": "blue"});
    LeafEvent {
        kind: "activity.notified",
        at_ms: 1_700_000_000_000 + i as i64,
        payload: &payload,
    }
    .encode()
    .unwrap()
}

fn log_of(n: u64) -> MemoryLog {
    let mut log = MemoryLog::new();
    for i in 0..n {
        log.append(&event(i)).unwrap();
    }
    log
}

#[test]
fn checkpoint_sign_verify_round_trip() {
    let log = log_of(5);
    let cp = Checkpoint::of_tree(ORIGIN, &log.tree);
    let note = sign_checkpoint(&cp, &signer()).unwrap();
    assert!(note.starts_with(&format!("{ORIGIN}\n5\n{}\n\n\u{2014} {ORIGIN} ", cp.root_hash)));
    assert_eq!(verify_checkpoint(&note, &signer().verifier()).unwrap(), cp);

    // Another log's origin under our key is refused, on both sides.
    let other = Checkpoint::new("other.example/log", 5, cp.root_hash);
    assert!(matches!(
        sign_checkpoint(&other, &signer()),
        Err(Error::OriginMismatch { .. })
    ));
    let forged_text = other.to_text().unwrap();
    let forged = signer().sign(&forged_text).unwrap();
    assert!(matches!(
        verify_checkpoint(&forged, &signer().verifier()),
        Err(Error::OriginMismatch { .. })
    ));
    // A note whose body is not a checkpoint.
    let junk = signer().sign("hello\n").unwrap();
    assert!(matches!(
        verify_checkpoint(&junk, &signer().verifier()),
        Err(Error::MalformedCheckpoint(_))
    ));
    // Tampered size or root.
    let tampered = note.replacen("\n5\n", "\n6\n", 1);
    assert!(verify_checkpoint(&tampered, &signer().verifier()).is_err());
    let other_root = leaf_hash(b"x").to_base64();
    let tampered = note.replacen(&cp.root_hash.to_base64(), &other_root, 1);
    assert!(verify_checkpoint(&tampered, &signer().verifier()).is_err());
}

#[test]
fn only_grew_between_checkpoints() {
    let v = signer().verifier();
    let mut log = MemoryLog::new();
    let mut saved = Checkpoint::of_tree(ORIGIN, &log.tree);
    for n in 1..=40u64 {
        log.append(&event(n)).unwrap();
        if n % 7 != 0 {
            continue;
        }
        let note = sign_checkpoint(&Checkpoint::of_tree(ORIGIN, &log.tree), &signer()).unwrap();
        let proof = consistency_proof(&log.store, saved.size, n).unwrap();
        let new = verify_growth(&saved, &note, &proof, &v).unwrap();
        assert_eq!(new.size, n);

        // The same pair with any proof hash altered, or the sizes swapped, is refused.
        for k in 0..proof.len() {
            let mut bad = proof.clone();
            bad[k].0[0] ^= 1;
            assert!(matches!(
                verify_growth(&saved, &note, &bad, &v),
                Err(Error::Inconsistent { .. })
            ));
        }
        if saved.size > 0 {
            assert!(matches!(
                check_growth(&new, &saved, &proof),
                Err(Error::Inconsistent { .. })
            ));
        }
        saved = new;
    }

    // A split view: a log (misbehaving, same key) that shares the first
    // 20 entries, then shows this client other entries. The client saved
    // the honest head at 35; the forked head at 40, with the forked store's
    // own proof, is refused.
    assert_eq!(saved.size, 35);
    let mut fork = MemoryLog::new();
    for n in 1..=20u64 {
        fork.append(&event(n)).unwrap();
    }
    for n in 21..=40u64 {
        fork.append(format!("fork {n}").as_bytes()).unwrap();
    }
    assert_eq!(
        root_at(&fork.store, 20).unwrap(),
        root_at(&log.store, 20).unwrap()
    );
    let fork_note = sign_checkpoint(&Checkpoint::of_tree(ORIGIN, &fork.tree), &signer()).unwrap();
    let fork_proof = consistency_proof(&fork.store, 35, 40).unwrap();
    assert!(matches!(
        verify_growth(&saved, &fork_note, &fork_proof, &v),
        Err(Error::Inconsistent { .. })
    ));
    // Yet a client that saved the shared head at 20 sees the fork as growth:
    // only gossip between clients can catch that, which is why heads are
    // saved and compared.
    let at20 = Checkpoint::new(ORIGIN, 20, root_at(&log.store, 20).unwrap());
    let proof20 = consistency_proof(&fork.store, 20, 40).unwrap();
    verify_growth(&at20, &fork_note, &proof20, &v).unwrap();
}

#[test]
fn same_size_different_root_is_inconsistent() {
    let a = Checkpoint::new(ORIGIN, 3, leaf_hash(b"a"));
    let b = Checkpoint::new(ORIGIN, 3, leaf_hash(b"b"));
    assert!(matches!(
        check_growth(&a, &b, &[]),
        Err(Error::Inconsistent { .. })
    ));
    check_growth(&a, &a, &[]).unwrap();
    let other = Checkpoint::new("other.example/log", 3, leaf_hash(b"a"));
    assert!(matches!(
        check_growth(&a, &other, &[]),
        Err(Error::OriginMismatch { .. })
    ));
}

#[test]
fn signer_refuses_inconsistent_tree_heads() {
    let mut log = log_of(10);
    let mut cs = CheckpointSigner::new(signer());
    let first = cs.sign_tree(&log.store, &log.tree).unwrap();
    assert_eq!(cs.last_signed().unwrap().size, 10);

    for i in 10..25 {
        log.append(&event(i)).unwrap();
    }
    // Honest growth, with the proof from the store or given explicitly.
    cs.sign_tree(&log.store, &log.tree).unwrap();
    cs.sign_tree(&log.store, &log.tree).unwrap(); // same head again is fine
    log.append(&event(25)).unwrap();
    let next = Checkpoint::of_tree(ORIGIN, &log.tree);
    let proof = consistency_proof(&log.store, 25, 26).unwrap();
    cs.sign(next.clone(), &proof).unwrap();

    // A head that rewrote history: same size as the last, another root.
    let forged = Checkpoint::new(ORIGIN, 26, leaf_hash(b"rewritten"));
    assert!(matches!(cs.sign(forged, &[]), Err(Error::Inconsistent { .. })));
    // A bigger head from another history, with that history's own proof.
    let mut fork = MemoryLog::new();
    for i in 0..26 {
        fork.append(format!("other {i}").as_bytes()).unwrap();
    }
    fork.append(b"more").unwrap();
    let fork_proof = consistency_proof(&fork.store, 26, 27).unwrap();
    let fork_head = Checkpoint::of_tree(ORIGIN, &fork.tree);
    assert!(matches!(
        cs.sign(fork_head, &fork_proof),
        Err(Error::Inconsistent { .. })
    ));
    assert!(matches!(
        cs.sign_tree(&fork.store, &fork.tree),
        Err(Error::Inconsistent { .. })
    ));
    // A smaller head (rollback).
    let old = log_of(10);
    assert!(matches!(
        cs.sign_tree(&old.store, &old.tree),
        Err(Error::Inconsistent { .. })
    ));
    // A proof for the wrong sizes.
    log.append(&event(26)).unwrap();
    let wrong = consistency_proof(&log.store, 24, 27).unwrap();
    assert!(cs.sign(Checkpoint::of_tree(ORIGIN, &log.tree), &wrong).is_err());
    // Refusals leave the last signed head alone.
    assert_eq!(cs.last_signed(), Some(&next));

    // After a restart the guard still holds.
    let last_note = cs.sign_tree(&log.store, &log.tree).unwrap();
    let mut resumed = CheckpointSigner::resume(signer(), &last_note).unwrap();
    assert_eq!(resumed.last_signed().unwrap().size, 27);
    assert!(matches!(
        resumed.sign(Checkpoint::new(ORIGIN, 27, leaf_hash(b"z")), &[]),
        Err(Error::Inconsistent { .. })
    ));
    // Resuming from someone else's note is refused.
    let stranger = NoteSigner::from_seed(ORIGIN, &[1; 32]).unwrap();
    assert!(CheckpointSigner::resume(stranger, &first).is_err());
}

#[test]
fn receipts_verify_offline() {
    let log = log_of(13);
    let v = signer().verifier();
    let cp = Checkpoint::of_tree(ORIGIN, &log.tree);
    let note = sign_checkpoint(&cp, &signer()).unwrap();
    for i in 0..13u64 {
        let r = Receipt::build(&log.store, i, &cp, note.clone()).unwrap();
        assert_eq!(r.leaf_hash, leaf_hash(&event(i)));
        // Through JSON, as the service sends it.
        let json = serde_json::to_string(&r).unwrap();
        let r: Receipt = serde_json::from_str(&json).unwrap();
        let ok = verify_receipt(&r, Some(&event(i)), &v).unwrap();
        assert_eq!((ok.log_index, ok.checkpoint.size), (i, 13));
        verify_receipt(&r, None, &v).unwrap();

        // Other bytes, another index, a tampered proof or checkpoint, another key.
        assert!(matches!(
            verify_receipt(&r, Some(&event(i + 1)), &v),
            Err(Error::LeafMismatch)
        ));
        let mut bad = r.clone();
        bad.log_index = (i + 1) % 13;
        assert!(verify_receipt(&bad, None, &v).is_err());
        for k in 0..r.inclusion_proof.len() {
            let mut bad = r.clone();
            bad.inclusion_proof[k].0[31] ^= 0x80;
            assert!(verify_receipt(&bad, None, &v).is_err());
        }
        let mut bad = r.clone();
        bad.inclusion_proof.push(Hash::default());
        assert!(verify_receipt(&bad, None, &v).is_err());
        let mut bad = r.clone();
        bad.checkpoint = bad.checkpoint.replacen("\n13\n", "\n14\n", 1);
        assert!(verify_receipt(&bad, None, &v).is_err());
        let stranger = NoteSigner::from_seed(ORIGIN, &[1; 32]).unwrap();
        assert!(verify_receipt(&r, None, &stranger.verifier()).is_err());
    }
    // Out of range.
    assert!(matches!(
        Receipt::build(&log.store, 13, &cp, note.clone()),
        Err(Error::IndexOutOfRange { .. })
    ));
}

#[test]
fn receipt_json_shape_matches_the_contract() {
    let log = log_of(3);
    let cp = Checkpoint::of_tree(ORIGIN, &log.tree);
    let note = sign_checkpoint(&cp, &signer()).unwrap();
    let r = Receipt::build(&log.store, 1, &cp, note.clone()).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["log_index"], 1);
    assert_eq!(v["leaf_hash"], leaf_hash(&event(1)).to_base64());
    assert_eq!(v["checkpoint"], note);
    let proof = inclusion_proof(&log.store, 1, 3).unwrap();
    let want: Vec<String> = proof.iter().map(Hash::to_base64).collect();
    assert_eq!(v["inclusion_proof"], json!(want));

    // The contract's form without the proof still parses (and verifies only
    // with a proof fetched separately).
    let old = json!({"log_index": 1, "leaf_hash": v["leaf_hash"], "checkpoint": note});
    let r: Receipt = serde_json::from_value(old).unwrap();
    assert!(r.inclusion_proof.is_empty());
    assert!(verify_receipt(&r, None, &signer().verifier()).is_err());
    // Bad base64 in a hash is a parse error, not a panic.
    let bad = json!({"log_index": 1, "leaf_hash": "AAAA", "checkpoint": ""});
    assert!(serde_json::from_value::<Receipt>(bad).is_err());
}
