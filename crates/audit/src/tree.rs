//! The append-only tree: node addressing, the storage trait and the compact
//! frontier that makes appends and roots O(log n).
//!
//! # Stored layout
//!
//! Only *perfect* subtrees are ever stored. [`NodeId`] `{ level, index }`
//! names the perfect subtree over leaves `[index·2^level, (index+1)·2^level)`;
//! level 0 are the leaf hashes. Such a node is complete once the tree has
//! `(index+1)·2^level` leaves and never changes after that, so a store writes
//! each node exactly once (in the same transaction as the leaf that completes
//! it) and can serve proofs for *every* earlier tree size from the same rows.
//! Appending leaf `n` completes `trailing_ones(n) + 1` nodes: on average two.
//!
//! Why not `ct-merkle`: its tree keeps every node, including the parents of
//! incomplete subtrees, in one in-order array whose entries are rewritten as
//! the tree grows, so a row stored at size n is wrong for size n+1 and proofs
//! for old sizes need the old values; it also expects the whole tree in
//! memory (or panics on bad indices in its index helpers) and is built on
//! `digest` 0.11 while the workspace's `sha2` is 0.10. The tree math here is
//! short and checked against the RFC's recursive definitions by proptest.

use std::fmt;

use crate::hash::{empty_root, leaf_hash, node_hash, Hash};
use crate::Error;

/// The perfect subtree over leaves `[index << level, (index + 1) << level)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId {
    /// Height above the leaves: 0 for a leaf hash.
    pub level: u8,
    /// Position among the nodes of that level, from the left.
    pub index: u64,
}

impl NodeId {
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// The leaf hash of entry `index`.
    pub const fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.level, self.index)
    }
}

/// Read access to stored node hashes, implemented by the service's store.
///
/// Proof and root computations ask for all the nodes they need in one call
/// (O(log n) ids), so a database can answer with one query. They only ask
/// for nodes that are complete in a tree of the size in question.
pub trait HashReader {
    /// The store's own error, passed on as [`Error::Store`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// The hash of each node in `ids`, in the same order; `None` when the
    /// store does not have it.
    fn node_hashes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, Self::Error>;
}

/// Reads `ids`, turning a missing node into [`Error::MissingNode`].
pub(crate) fn read_all<R: HashReader + ?Sized>(reader: &R, ids: &[NodeId]) -> Result<Vec<Hash>, Error> {
    let found = reader.node_hashes(ids).map_err(|e| Error::Store(Box::new(e)))?;
    if found.len() != ids.len() {
        return Err(Error::Store(
            format!("store returned {} hashes for {} nodes", found.len(), ids.len()).into(),
        ));
    }
    ids.iter()
        .zip(found)
        .map(|(id, h)| h.ok_or(Error::MissingNode(*id)))
        .collect()
}

/// The perfect nodes that cover leaves `[lo, hi)`, left to right, largest
/// aligned node first. For the ranges that arise in RFC 9162's recursion
/// (`lo` a multiple of the largest power of two below `hi - lo`, or the
/// range itself perfect) folding their hashes from the right gives
/// `MTH(D[lo:hi])`.
pub(crate) fn range_nodes(mut lo: u64, hi: u64, out: &mut Vec<NodeId>) {
    while lo < hi {
        let len = hi - lo;
        let fits = 63 - len.leading_zeros(); // floor(log2(len))
        let aligned = lo.trailing_zeros(); // 64 when lo == 0
        let level = fits.min(aligned);
        out.push(NodeId::new(level as u8, lo >> level));
        lo += 1u64 << level;
    }
}

/// Folds the hashes of a range's perfect nodes (left to right) into its MTH.
pub(crate) fn fold_range(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// The RFC 9162 Merkle tree head of size `size`, from stored nodes: reads
/// one node per set bit of `size`.
pub fn root_at<R: HashReader + ?Sized>(reader: &R, size: u64) -> Result<Hash, Error> {
    let mut ids = Vec::new();
    range_nodes(0, size, &mut ids);
    let hashes = read_all(reader, &ids)?;
    Ok(fold_range(&hashes))
}

/// The nodes a store writes when a leaf is appended, in order from the leaf
/// up: the leaf hash, then every perfect subtree that leaf completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The new entry's index (= the tree size before the append).
    pub index: u64,
    /// The new entry's leaf hash.
    pub leaf_hash: Hash,
    /// `(node, hash)` for every node completed by this append, leaf first.
    pub nodes: Vec<(NodeId, Hash)>,
}

/// The tree's compact frontier: its size and the roots of the perfect
/// subtrees that make it up (one per set bit of the size, largest first).
///
/// This is all the state an appender needs: O(log n) hashes. A service
/// restarts it from its store with [`Tree::load`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Tree {
    size: u64,
    frontier: Vec<Hash>,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Self {
        Tree::default()
    }

    /// The node ids of the frontier of a tree of `size` leaves, largest first.
    pub fn frontier_ids(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::new();
        range_nodes(0, size, &mut ids);
        ids
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes.
    pub fn load<R: HashReader + ?Sized>(reader: &R, size: u64) -> Result<Self, Error> {
        let frontier = read_all(reader, &Self::frontier_ids(size))?;
        Ok(Tree { size, frontier })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier hashes, largest subtree first (see [`Tree::frontier_ids`]).
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// The Merkle tree head, `MTH(D[0:size])`: O(log n) hashing, no reads.
    pub fn root(&self) -> Hash {
        fold_range(&self.frontier)
    }

    /// Appends the entry whose exact bytes are `leaf` (hashed with the 0x00 prefix).
    pub fn append(&mut self, leaf: &[u8]) -> Result<Appended, Error> {
        self.append_hash(leaf_hash(leaf))
    }

    /// Appends an entry by its leaf hash. Returns the nodes to store.
    pub fn append_hash(&mut self, leaf_hash: Hash) -> Result<Appended, Error> {
        let index = self.size;
        if index == u64::MAX {
            return Err(Error::TreeFull);
        }
        let mut nodes = Vec::with_capacity(1 + index.trailing_ones() as usize);
        let mut hash = leaf_hash;
        nodes.push((NodeId::leaf(index), hash));
        // Each trailing one bit of the old size is a perfect subtree of the
        // same height just left of the new leaf's: merge them.
        let mut level: u8 = 0;
        while (index >> level) & 1 == 1 {
            let Some(left) = self.frontier.pop() else {
                // The frontier always has one hash per set bit of the size.
                return Err(Error::Store("frontier does not match tree size".into()));
            };
            hash = node_hash(&left, &hash);
            level += 1;
            nodes.push((NodeId::new(level, index >> level), hash));
        }
        self.frontier.push(hash);
        self.size = index + 1;
        Ok(Appended {
            index,
            leaf_hash,
            nodes,
        })
    }
}

/// An in-memory node store: for tests, benchmarks and small tools.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    /// `levels[l][i]` is node (l, i).
    levels: Vec<Vec<Hash>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores the nodes of one append. Appends must be applied in order,
    /// each once (a database enforces this with its primary key).
    pub fn apply(&mut self, appended: &Appended) {
        for (id, hash) in &appended.nodes {
            let level = usize::from(id.level);
            if self.levels.len() <= level {
                self.levels.resize_with(level + 1, Vec::new);
            }
            let row = &mut self.levels[level];
            // Append order means each level fills left to right.
            debug_assert_eq!(row.len() as u64, id.index);
            row.push(*hash);
        }
    }

    /// Number of leaves stored.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |row| row.len() as u64)
    }
}

impl HashReader for MemoryStore {
    type Error = std::convert::Infallible;

    fn node_hashes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, Self::Error> {
        Ok(ids
            .iter()
            .map(|id| {
                let row = self.levels.get(usize::from(id.level))?;
                usize::try_from(id.index).ok().and_then(|i| row.get(i)).copied()
            })
            .collect())
    }
}

/// A tree together with its in-memory store: appends go to both.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    pub tree: Tree,
    pub store: MemoryStore,
}

impl MemoryLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn append(&mut self, leaf: &[u8]) -> Result<Appended, Error> {
        let appended = self.tree.append(leaf)?;
        self.store.apply(&appended);
        Ok(appended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_completes_trailing_ones_plus_one_nodes() {
        let mut log = MemoryLog::new();
        for n in 0u64..64 {
            let a = log.append(&n.to_be_bytes()).unwrap();
            assert_eq!(a.index, n);
            assert_eq!(a.nodes.len() as u32, n.trailing_ones() + 1);
            assert_eq!(log.tree.frontier().len() as u32, (n + 1).count_ones());
        }
    }

    #[test]
    fn load_restores_the_frontier() {
        let mut log = MemoryLog::new();
        for n in 0u64..37 {
            log.append(&n.to_be_bytes()).unwrap();
            let loaded = Tree::load(&log.store, n + 1).unwrap();
            assert_eq!(loaded, log.tree);
            assert_eq!(root_at(&log.store, n + 1).unwrap(), log.tree.root());
        }
    }

    #[test]
    fn missing_node_is_an_error_not_a_panic() {
        let store = MemoryStore::new();
        assert!(matches!(
            root_at(&store, 5),
            Err(Error::MissingNode(NodeId { level: 2, index: 0 }))
        ));
        assert_eq!(root_at(&store, 0).unwrap(), empty_root());
    }
}
