//! The archive: an append-only keccak Merkle tree whose leaves are block hashes.
//!
//! "Archive root after block X" identifies X and its whole history; L1 stores one root per
//! checkpoint. The tree has a fixed depth, so only the frontier (the left siblings of the next
//! leaf's path, one per level) is needed to append and to compute the root: `O(depth)` hashes per
//! append, `O(depth)` memory, and the frontier is what gets persisted. Empty subtrees hash to a
//! precomputed chain of zero hashes (`zero[0] = 0`, `zero[i+1] = keccak(zero[i] || zero[i])`).

#![deny(clippy::arithmetic_side_effects)]

use std::sync::OnceLock;

use alloy_primitives::{B256, keccak256};

/// Depth of the archive tree.
pub const ARCHIVE_TREE_DEPTH: usize = 32;

/// Most leaves the tree holds: 2^32 − 1. (The 2^32nd leaf would complete the tree and leave no
/// frontier level to park its root in; four billion blocks are far beyond any chain here.)
pub const ARCHIVE_TREE_CAPACITY: u64 = (1u64 << ARCHIVE_TREE_DEPTH) - 1;

/// Errors of the archive tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// All 2^depth leaves are used.
    #[error("archive tree is full ({0} leaves)")]
    Full(u64),
    /// A persisted frontier could not be restored.
    #[error("archive frontier encoding is invalid: {0}")]
    InvalidFrontier(&'static str),
}

fn zero_hashes() -> &'static [B256; ARCHIVE_TREE_DEPTH + 1] {
    static ZEROS: OnceLock<[B256; ARCHIVE_TREE_DEPTH + 1]> = OnceLock::new();
    ZEROS.get_or_init(|| {
        let mut zeros = [B256::ZERO; ARCHIVE_TREE_DEPTH + 1];
        for level in 1..=ARCHIVE_TREE_DEPTH {
            let below = zeros[level.saturating_sub(1)];
            zeros[level] = hash_pair(&below, &below);
        }
        zeros
    })
}

fn hash_pair(left: &B256, right: &B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left.as_slice());
    buf[32..].copy_from_slice(right.as_slice());
    keccak256(buf)
}

/// Bytes of the frontier nodes stored for a tree of `size` leaves (32 per set bit, at most 32).
fn frontier_len(size: u64) -> usize {
    usize::try_from(size.count_ones())
        .unwrap_or(usize::MAX)
        .saturating_mul(32)
}

/// The append-only archive tree, held as its frontier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveTree {
    /// Number of leaves appended so far (= index of the next leaf).
    size: u64,
    /// `frontier[level]`: root of the last complete left subtree at `level` on the path of the
    /// next leaf. Only meaningful where bit `level` of `size` is set.
    frontier: [B256; ARCHIVE_TREE_DEPTH],
    /// Root for the current size, kept so reads are free.
    root: B256,
}

impl Default for ArchiveTree {
    fn default() -> Self {
        Self::new()
    }
}

impl ArchiveTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            size: 0,
            frontier: [B256::ZERO; ARCHIVE_TREE_DEPTH],
            root: zero_hashes()[ARCHIVE_TREE_DEPTH],
        }
    }

    /// Number of leaves.
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// Root of the tree as it is now.
    pub const fn root(&self) -> B256 {
        self.root
    }

    /// Appends a block hash and returns the new root.
    pub fn append(&mut self, leaf: B256) -> Result<B256, ArchiveError> {
        if self.size >= ARCHIVE_TREE_CAPACITY {
            return Err(ArchiveError::Full(self.size));
        }
        let index = self.size;
        // Walk up from the leaf: where the index bit is 1 the node is a right child and merges
        // with the stored left sibling; the first 0 bit is where the new subtree is parked.
        let mut node = leaf;
        let mut level = 0;
        while (index >> level) & 1 == 1 {
            node = hash_pair(&self.frontier[level], &node);
            // Below the capacity, index has a zero bit under ARCHIVE_TREE_DEPTH.
            level = level.saturating_add(1);
        }
        self.frontier[level] = node;
        self.size = self.size.saturating_add(1);
        self.root = self.compute_root();
        Ok(self.root)
    }

    fn compute_root(&self) -> B256 {
        let zeros = zero_hashes();
        // Fold bottom-up along the path right of the last leaf: `node` is the subtree holding the
        // rightmost leaves at this level (None while that part is still empty). A set bit of
        // `size` means a complete subtree is parked in the frontier as a left sibling.
        let mut node: Option<B256> = None;
        for (level, (parked_node, zero)) in self.frontier.iter().zip(zeros).enumerate() {
            let parked = (self.size >> level) & 1 == 1;
            node = match (node, parked) {
                (None, false) => None,
                (None, true) => Some(hash_pair(parked_node, zero)),
                (Some(right), true) => Some(hash_pair(parked_node, &right)),
                (Some(left), false) => Some(hash_pair(&left, zero)),
            };
        }
        node.unwrap_or(zeros[ARCHIVE_TREE_DEPTH])
    }

    /// Serialises the frontier: `size (u64 BE) || the frontier nodes of the set bits of size`.
    pub fn frontier_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(frontier_len(self.size).saturating_add(8));
        out.extend_from_slice(&self.size.to_be_bytes());
        for level in 0..ARCHIVE_TREE_DEPTH {
            if (self.size >> level) & 1 == 1 {
                out.extend_from_slice(self.frontier[level].as_slice());
            }
        }
        out
    }

    /// Restores a tree from [`ArchiveTree::frontier_bytes`].
    pub fn from_frontier_bytes(bytes: &[u8]) -> Result<Self, ArchiveError> {
        let (size_bytes, mut nodes) =
            bytes
                .split_first_chunk::<8>()
                .ok_or(ArchiveError::InvalidFrontier(
                    "shorter than the 8-byte size",
                ))?;
        let size = u64::from_be_bytes(*size_bytes);
        if size > ARCHIVE_TREE_CAPACITY {
            return Err(ArchiveError::InvalidFrontier(
                "size exceeds the tree's capacity",
            ));
        }
        if nodes.len() != frontier_len(size) {
            return Err(ArchiveError::InvalidFrontier(
                "node count does not match the size",
            ));
        }
        let mut frontier = [B256::ZERO; ARCHIVE_TREE_DEPTH];
        for (level, slot) in frontier.iter_mut().enumerate() {
            if (size >> level) & 1 == 1 {
                let (node, rest) = nodes.split_at(32);
                *slot = B256::from_slice(node);
                nodes = rest;
            }
        }
        let mut tree = Self {
            size,
            frontier,
            root: B256::ZERO,
        };
        tree.root = tree.compute_root();
        Ok(tree)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// Reference: build the full bottom level and hash up naively (small trees only).
    fn naive_root(leaves: &[B256]) -> B256 {
        let zeros = zero_hashes();
        let mut level_nodes: Vec<B256> = leaves.to_vec();
        for level in 0..ARCHIVE_TREE_DEPTH {
            if level_nodes.is_empty() {
                return zeros[ARCHIVE_TREE_DEPTH];
            }
            if level_nodes.len() % 2 == 1 {
                level_nodes.push(zeros[level]);
            }
            level_nodes = level_nodes
                .chunks(2)
                .map(|pair| hash_pair(&pair[0], &pair[1]))
                .collect();
        }
        level_nodes[0]
    }

    #[test]
    fn roots_match_naive_computation_and_frontier_restores() {
        let mut tree = ArchiveTree::new();
        assert_eq!(tree.root(), naive_root(&[]));
        let mut leaves = Vec::new();
        for i in 0..70u8 {
            let leaf = keccak256([i]);
            leaves.push(leaf);
            let root = tree.append(leaf).unwrap();
            assert_eq!(root, naive_root(&leaves), "after {} leaves", leaves.len());
            let restored = ArchiveTree::from_frontier_bytes(&tree.frontier_bytes()).unwrap();
            assert_eq!(restored.root(), root);
            assert_eq!(restored.size(), tree.size());
        }
    }

    #[test]
    fn corrupt_frontiers_are_refused() {
        let mut tree = ArchiveTree::new();
        tree.append(B256::repeat_byte(1)).unwrap();
        let bytes = tree.frontier_bytes();
        assert!(ArchiveTree::from_frontier_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(ArchiveTree::from_frontier_bytes(&bytes[..4]).is_err());
        let mut too_big = bytes;
        too_big[..8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(ArchiveTree::from_frontier_bytes(&too_big).is_err());
    }

    #[test]
    fn a_full_tree_refuses_the_next_leaf_instead_of_panicking() {
        // A tree one leaf short of capacity: all 32 frontier levels parked.
        let mut bytes = ARCHIVE_TREE_CAPACITY.to_be_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(7u8, 32 * 32));
        let mut full = ArchiveTree::from_frontier_bytes(&bytes).unwrap();
        assert_eq!(
            full.append(B256::ZERO),
            Err(ArchiveError::Full(ARCHIVE_TREE_CAPACITY))
        );
        let mut almost = ARCHIVE_TREE_CAPACITY
            .saturating_sub(1)
            .to_be_bytes()
            .to_vec();
        almost.extend(std::iter::repeat_n(7u8, 31 * 32));
        let mut almost = ArchiveTree::from_frontier_bytes(&almost).unwrap();
        almost.append(B256::ZERO).unwrap();
        assert_eq!(almost.size(), ARCHIVE_TREE_CAPACITY);
    }
}
