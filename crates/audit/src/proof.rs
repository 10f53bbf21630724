//! Inclusion and consistency proofs: generation from stored perfect
//! subtrees, and verification exactly as RFC 9162 §2.1.3.2 and §2.1.4.2.

use crate::hash::{node_hash, Hash};
use crate::tree::{fold_range, range_nodes, read_all, HashReader, NodeId, Tree};
use crate::Error;

/// Largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The leaf ranges `[lo, hi)` whose MTHs form PATH(index, D[0:size]),
/// leaf to root (RFC 9162 §2.1.3.1).
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
        }
    }
    out.reverse();
    out
}

/// The leaf ranges whose MTHs form PROOF(old, D[0:new]) for 0 < old < new
/// (RFC 9162 §2.1.4.1, SUBPROOF unrolled).
fn consistency_ranges(old: u64, new: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut lo, mut hi, mut m, mut whole) = (0, new, old, true);
    loop {
        let len = hi - lo;
        if m == len {
            if !whole {
                out.push((lo, hi));
            }
            break;
        }
        let k = split_point(len);
        if m <= k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
            m -= k;
            whole = false;
        }
    }
    out.reverse();
    out
}

/// Reads every range's nodes in one batch and folds each into its MTH.
fn hash_ranges<R: HashReader + ?Sized>(reader: &R, ranges: &[(u64, u64)]) -> Result<Vec<Hash>, Error> {
    let mut ids: Vec<NodeId> = Vec::new();
    let mut bounds = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let start = ids.len();
        range_nodes(lo, hi, &mut ids);
        bounds.push(start..ids.len());
    }
    let hashes = read_all(reader, &ids)?;
    Ok(bounds.into_iter().map(|b| fold_range(&hashes[b])).collect())
}

/// The inclusion proof of entry `index` in the tree of `size` leaves, read
/// from stored nodes: O(log n) node reads in one call.
pub fn inclusion_proof<R: HashReader + ?Sized>(
    reader: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, Error> {
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    hash_ranges(reader, &inclusion_ranges(index, size))
}

/// The inclusion proofs of any number of entries under one tree head,
/// sharing the work they have in common (the same proofs as
/// [`inclusion_proof`]).
///
/// A range of a path that is not one perfect subtree always ends at the
/// tree's size, and starts where one of the frontier's subtrees starts
/// (the recursion only passes whole subtrees of the size's binary
/// decomposition on its way right), so its hash is a fold of the
/// frontier's tail. Those folds are made here once per head, one hash per
/// frontier subtree, instead of once per proof; every other range is read
/// from the store as [`inclusion_proof`] reads it, in one call per proof
/// (with the entry's leaf hash when a receipt wants it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InclusionPaths {
    size: u64,
    /// `(start, MTH(D[start:size]))` at the start of every frontier
    /// subtree but the first, ascending.
    tails: Vec<(u64, Hash)>,
}

impl InclusionPaths {
    /// The shared part of every inclusion proof under `tree`'s head: its
    /// frontier's tails, O(log n) hashing and no reads.
    pub fn of_tree(tree: &Tree) -> Self {
        let ids = Tree::frontier_ids(tree.size());
        let mut tails = Vec::with_capacity(ids.len().saturating_sub(1));
        let mut folded: Option<Hash> = None;
        for (id, hash) in ids.iter().zip(tree.frontier()).rev() {
            let tail = match folded {
                None => *hash,
                Some(right) => node_hash(hash, &right),
            };
            folded = Some(tail);
            let start = id.index << id.level;
            if start > 0 {
                tails.push((start, tail));
            }
        }
        tails.reverse();
        InclusionPaths {
            size: tree.size(),
            tails,
        }
    }

    /// The tree size these proofs are for.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The inclusion proof of entry `index`, equal to
    /// `inclusion_proof(reader, index, self.size())`.
    pub fn prove<R: HashReader + ?Sized>(&self, reader: &R, index: u64) -> Result<Vec<Hash>, Error> {
        self.prove_reading(reader, index, None).map(|(proof, _)| proof)
    }

    /// The proof of entry `index` and, in the same read, the hash of node
    /// `also` when given.
    pub(crate) fn prove_reading<R: HashReader + ?Sized>(
        &self,
        reader: &R,
        index: u64,
        also: Option<NodeId>,
    ) -> Result<(Vec<Hash>, Option<Hash>), Error> {
        if index >= self.size {
            return Err(Error::IndexOutOfRange {
                index,
                size: self.size,
            });
        }
        let ranges = inclusion_ranges(index, self.size);
        // Each slot: a tail's hash, or the span of `ids` its range folds.
        let mut slots: Vec<Result<Hash, (usize, usize)>> = Vec::with_capacity(ranges.len());
        let mut ids: Vec<NodeId> = Vec::with_capacity(ranges.len() + 1);
        for &(lo, hi) in &ranges {
            if hi == self.size {
                if let Ok(at) = self.tails.binary_search_by_key(&lo, |(start, _)| *start) {
                    slots.push(Ok(self.tails[at].1));
                    continue;
                }
            }
            let start = ids.len();
            range_nodes(lo, hi, &mut ids);
            slots.push(Err((start, ids.len())));
        }
        let proof_ids = ids.len();
        ids.extend(also);
        let hashes = read_all(reader, &ids)?;
        let proof = slots
            .into_iter()
            .map(|slot| match slot {
                Ok(hash) => hash,
                Err((start, end)) => fold_range(&hashes[start..end]),
            })
            .collect();
        Ok((proof, hashes.get(proof_ids).copied()))
    }
}

/// The consistency proof from the tree of `old` leaves to the tree of `new`
/// leaves: empty when `old` is 0 or equals `new`.
pub fn consistency_proof<R: HashReader + ?Sized>(reader: &R, old: u64, new: u64) -> Result<Vec<Hash>, Error> {
    if old > new {
        return Err(Error::SizeDecreased { old, new });
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    hash_ranges(reader, &consistency_ranges(old, new))
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size`
/// leaves (index < size): one per level where the paths to `index` and to
/// the last leaf part, plus one per left sibling above that.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    debug_assert!(index < size);
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Number of hashes in the consistency proof between sizes 0 < old < new.
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    debug_assert!(0 < old && old < new);
    // The proof is the inclusion path of leaf old-1 in the new tree, less the
    // levels inside the old tree's rightmost perfect subtree, plus that
    // subtree's own hash unless it is the whole old tree.
    let shift = old.trailing_zeros();
    let full = inclusion_proof_len(old - 1, new) - shift as usize;
    if old.is_power_of_two() {
        full
    } else {
        full + 1
    }
}

/// Verifies that `leaf_hash` is entry `index` of the tree of `size` leaves
/// whose head is `root` (RFC 9162 §2.1.3.2).
///
/// As in the RFC, the proof binds the leaf to the root and position, not the
/// size: a size whose path has the same shape (e.g. 7 and 8 for leaf 0)
/// verifies too. Take `size` and `root` from one signed checkpoint.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), Error> {
    // Step 1.
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    // Not in the RFC's steps, which catch it later: refuse a proof of the
    // wrong length up front, with a clearer error.
    let want = inclusion_proof_len(index, size);
    if proof.len() != want {
        return Err(Error::ProofLength {
            got: proof.len(),
            want,
        });
    }
    // Step 2.
    let (mut f_n, mut s_n, mut r) = (index, size - 1, *leaf_hash);
    // Step 3.
    for p in proof {
        if s_n == 0 {
            return Err(Error::RootMismatch);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 4.
    if s_n == 0 && r == *root {
        Ok(())
    } else {
        Err(Error::RootMismatch)
    }
}

/// Verifies that the tree of `new_size` leaves with head `new_root` extends
/// the tree of `old_size` leaves with head `old_root` (RFC 9162 §2.1.4.2).
///
/// Sizes the RFC leaves to the caller: `old_size == new_size` needs an empty
/// proof and equal roots; `old_size == 0` needs an empty proof and
/// `old_root` the empty tree's head.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), Error> {
    if old_size > new_size {
        return Err(Error::SizeDecreased {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(Error::ProofLength {
                got: proof.len(),
                want: 0,
            });
        }
        let expected_old = if old_size == 0 {
            crate::hash::empty_root()
        } else {
            *new_root
        };
        return if *old_root == expected_old {
            Ok(())
        } else {
            Err(Error::RootMismatch)
        };
    }
    let want = consistency_proof_len(old_size, new_size);
    if proof.len() != want {
        return Err(Error::ProofLength {
            got: proof.len(),
            want,
        });
    }
    // Steps 1-2: a non-empty path, with the old root in front when the old
    // tree is itself a perfect subtree of the new one.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(Error::ProofLength { got: 0, want });
    };
    // Step 3.
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    // Step 4.
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (*first, *first);
    // Step 6.
    for c in rest {
        if s_n == 0 {
            return Err(Error::RootMismatch);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 7.
    if fr == *old_root && sr == *new_root && s_n == 0 {
        Ok(())
    } else {
        Err(Error::RootMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_the_ranges() {
        for size in 1..300u64 {
            for index in 0..size {
                assert_eq!(
                    inclusion_proof_len(index, size),
                    inclusion_ranges(index, size).len(),
                    "inclusion {index} {size}"
                );
            }
            for old in 1..size {
                assert_eq!(
                    consistency_proof_len(old, size),
                    consistency_ranges(old, size).len(),
                    "consistency {old} {size}"
                );
            }
        }
        // Near the top of the range: no overflow.
        for (a, b) in [(u64::MAX - 2, u64::MAX), (0, u64::MAX), (1 << 63, u64::MAX)] {
            assert_eq!(inclusion_proof_len(a, b), inclusion_ranges(a, b).len());
            assert_eq!(
                consistency_proof_len(a + 1, b),
                consistency_ranges(a + 1, b).len()
            );
        }
        assert_eq!(inclusion_proof_len(0, u64::MAX), 64);
    }

    #[test]
    fn degenerate_consistency() {
        let r = crate::hash::leaf_hash(b"x");
        let e = crate::hash::empty_root();
        assert!(verify_consistency(0, 5, &e, &r, &[]).is_ok());
        assert!(verify_consistency(0, 5, &r, &r, &[]).is_err());
        assert!(verify_consistency(0, 5, &e, &r, &[r]).is_err());
        assert!(verify_consistency(3, 3, &r, &r, &[]).is_ok());
        assert!(verify_consistency(3, 3, &r, &e, &[]).is_err());
        assert!(verify_consistency(3, 3, &r, &r, &[r]).is_err());
        assert!(matches!(
            verify_consistency(4, 3, &r, &r, &[]),
            Err(Error::SizeDecreased { .. })
        ));
        assert!(verify_inclusion(&r, 0, 0, &[], &r).is_err());
        assert!(verify_inclusion(&r, u64::MAX, u64::MAX, &[], &r).is_err());
    }
}
