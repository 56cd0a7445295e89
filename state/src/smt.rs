//! A compact sparse Merkle tree over 256-bit keys, as a persistent (immutable, structurally
//! shared) tree.
//!
//! Shape: a binary trie on the key bits where a subtree holding exactly one leaf is that leaf,
//! whatever its depth, and an empty subtree is `Empty`. The shape, and so the root, depends only on
//! the set of (key, value) pairs — never on the order they were inserted. Expected depth is
//! ~log2(n) (about 20 for a million accounts), so an update costs ~20 keccak hashes instead of
//! the 256 of a naive sparse tree.
//!
//! Hashes: empty = 0; leaf = keccak(0x00 || key || value); internal = keccak(0x01 || left || right).
//!
//! Nodes are `Arc`-shared: [`Smt::update`] copies only the paths it changes, so keeping the tree
//! of every retained block, or forking one, costs O(1) and each block's update O(changes · log n).

use std::sync::Arc;

use tandem_proto::{B256, keccak256};

#[derive(Debug)]
enum Node<V> {
    Empty,
    Leaf {
        key: B256,
        value: V,
        hash: B256,
    },
    Internal {
        left: Arc<Node<V>>,
        right: Arc<Node<V>>,
        hash: B256,
    },
}

/// A value stored in the tree: it defines its own hashable encoding.
pub(crate) trait LeafValue: Clone {
    /// Bytes hashed into the leaf.
    fn leaf_bytes(&self) -> Vec<u8>;
}

impl<V> Node<V> {
    fn hash(&self) -> B256 {
        match self {
            Self::Empty => B256::ZERO,
            Self::Leaf { hash, .. } | Self::Internal { hash, .. } => *hash,
        }
    }
}

fn bit(key: &B256, depth: usize) -> bool {
    (key[depth / 8] >> (7 - depth % 8)) & 1 == 1
}

fn leaf<V: LeafValue>(key: B256, value: V) -> Arc<Node<V>> {
    let bytes = value.leaf_bytes();
    let mut preimage = Vec::with_capacity(33 + bytes.len());
    preimage.push(0);
    preimage.extend_from_slice(key.as_slice());
    preimage.extend_from_slice(&bytes);
    Arc::new(Node::Leaf {
        key,
        value,
        hash: keccak256(preimage),
    })
}

/// Joins two subtrees, keeping the tree compact: a lone leaf moves up past empty siblings.
fn join<V>(left: Arc<Node<V>>, right: Arc<Node<V>>) -> Arc<Node<V>> {
    match (&*left, &*right) {
        (Node::Empty, Node::Empty) => Arc::new(Node::Empty),
        (Node::Empty, Node::Leaf { .. }) => right,
        (Node::Leaf { .. }, Node::Empty) => left,
        _ => {
            let mut preimage = [0u8; 65];
            preimage[0] = 1;
            preimage[1..33].copy_from_slice(left.hash().as_slice());
            preimage[33..].copy_from_slice(right.hash().as_slice());
            Arc::new(Node::Internal {
                hash: keccak256(preimage),
                left,
                right,
            })
        }
    }
}

/// The tree. Cloning is O(1).
#[derive(Debug)]
pub(crate) struct Smt<V> {
    root: Arc<Node<V>>,
    len: usize,
}

impl<V> Clone for Smt<V> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<V: LeafValue> Default for Smt<V> {
    fn default() -> Self {
        Self {
            root: Arc::new(Node::Empty),
            len: 0,
        }
    }
}

impl<V: LeafValue> Smt<V> {
    /// Root hash.
    pub(crate) fn root(&self) -> B256 {
        self.root.hash()
    }

    /// Number of leaves.
    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// The value at `key`.
    pub(crate) fn get(&self, key: &B256) -> Option<&V> {
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match &**node {
                Node::Empty => return None,
                Node::Leaf {
                    key: leaf_key,
                    value,
                    ..
                } => return (leaf_key == key).then_some(value),
                Node::Internal { left, right, .. } => {
                    node = if bit(key, depth) { right } else { left };
                    depth += 1;
                }
            }
        }
    }

    /// Applies a batch of changes (`None` deletes) and returns the new tree; `self` is unchanged.
    /// `changes` must be sorted by key without duplicates.
    pub(crate) fn update(&self, changes: &[(B256, Option<V>)]) -> Self {
        debug_assert!(
            changes.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "changes must be sorted"
        );
        let mut len = self.len;
        let root = update_node(&self.root, 0, changes, &mut len);
        Self { root, len }
    }
}

fn update_node<V: LeafValue>(
    node: &Arc<Node<V>>,
    depth: usize,
    changes: &[(B256, Option<V>)],
    len: &mut usize,
) -> Arc<Node<V>> {
    if changes.is_empty() {
        return node.clone();
    }
    match &**node {
        Node::Empty => {
            let inserted: Vec<(B256, V)> = changes
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
                .collect();
            *len += inserted.len();
            build(depth, &inserted)
        }
        Node::Leaf { key, value, .. } => {
            // Merge the existing leaf into the change set, unless a change replaces it.
            let mut entries: Vec<(B256, V)> = Vec::with_capacity(changes.len() + 1);
            let mut existing = Some((*key, value.clone()));
            for (k, v) in changes {
                if let Some((existing_key, _)) = &existing {
                    if existing_key < k {
                        entries.extend(existing.take());
                    } else if existing_key == k {
                        existing = None;
                        *len -= 1;
                    }
                }
                if let Some(v) = v {
                    entries.push((*k, v.clone()));
                    *len += 1;
                }
            }
            entries.extend(existing);
            build(depth, &entries)
        }
        Node::Internal { left, right, .. } => {
            let split = changes.partition_point(|(k, _)| !bit(k, depth));
            let new_left = update_node(left, depth + 1, &changes[..split], len);
            let new_right = update_node(right, depth + 1, &changes[split..], len);
            join(new_left, new_right)
        }
    }
}

/// Builds the subtree at `depth` holding exactly `entries` (sorted, unique).
fn build<V: LeafValue>(depth: usize, entries: &[(B256, V)]) -> Arc<Node<V>> {
    match entries {
        [] => Arc::new(Node::Empty),
        [(key, value)] => leaf(*key, value.clone()),
        _ => {
            let split = entries.partition_point(|(k, _)| !bit(k, depth));
            join(
                build(depth + 1, &entries[..split]),
                build(depth + 1, &entries[split..]),
            )
        }
    }
}

impl<V: LeafValue> Smt<V> {
    /// Builds a tree from unsorted entries (later duplicates win).
    pub(crate) fn from_entries(mut entries: Vec<(B256, V)>) -> Self {
        entries.sort_by_key(|entry| entry.0);
        entries.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        let len = entries.len();
        Self {
            root: build(0, &entries),
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    impl LeafValue for u64 {
        fn leaf_bytes(&self) -> Vec<u8> {
            self.to_be_bytes().to_vec()
        }
    }

    fn key(i: u64) -> B256 {
        keccak256(i.to_be_bytes())
    }

    fn apply(tree: &Smt<u64>, changes: &BTreeMap<B256, Option<u64>>) -> Smt<u64> {
        let changes: Vec<_> = changes.iter().map(|(k, v)| (*k, *v)).collect();
        tree.update(&changes)
    }

    #[test]
    fn empty_single_and_pair() {
        let empty = Smt::<u64>::default();
        assert_eq!(empty.root(), B256::ZERO);
        let one = empty.update(&[(key(1), Some(7))]);
        assert_eq!(one.get(&key(1)), Some(&7));
        assert_eq!(one.get(&key(2)), None);
        assert_eq!(one.len(), 1);
        assert_ne!(one.root(), B256::ZERO);
        // Deleting the only leaf gives the empty tree back.
        assert_eq!(one.update(&[(key(1), None)]).root(), B256::ZERO);
        // The original version is untouched by later updates.
        let _two = one.update(&[(key(2), Some(8))]);
        assert_eq!(one.get(&key(2)), None);
    }

    proptest! {
        #[test]
        fn root_depends_only_on_contents(
            batches in proptest::collection::vec(
                proptest::collection::btree_map(0u64..64, proptest::option::weighted(0.8, any::<u64>()), 0..16),
                1..8,
            ),
        ) {
            // Apply the batches one by one, tracking the expected contents.
            let mut tree = Smt::<u64>::default();
            let mut model: BTreeMap<B256, u64> = BTreeMap::new();
            for batch in &batches {
                let changes: BTreeMap<B256, Option<u64>> = batch.iter().map(|(i, v)| (key(*i), *v)).collect();
                tree = apply(&tree, &changes);
                for (k, v) in changes {
                    match v {
                        Some(v) => { model.insert(k, v); }
                        None => { model.remove(&k); }
                    }
                }
                prop_assert_eq!(tree.len(), model.len());
            }
            // Built in one go (any order) from the final contents: same root.
            let mut entries: Vec<(B256, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            entries.reverse();
            let rebuilt = Smt::from_entries(entries);
            prop_assert_eq!(rebuilt.root(), tree.root());
            for (k, v) in &model {
                prop_assert_eq!(tree.get(k), Some(v));
            }
        }
    }
}
