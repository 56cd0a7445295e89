//! The tx index of uncheckpointed blocks, in memory and shared with readers.
//!
//! Proposed blocks come fast and are often pruned, so their txs are indexed here rather than in
//! RocksDB (100 index writes per block would cost more than the block itself); the index is
//! written to the `txs` table in the batch that checkpoints them, and rebuilt from the stored
//! uncheckpointed blocks at open.
//!
//! Readers hold RocksDB snapshots, and this index only shows the writer's latest state. A lookup
//! is exact for a snapshot as long as the index only *grew* since the snapshot was taken: a hit
//! is verified against the snapshot's block, and a miss is a miss. Entries are added before the
//! batch that writes their block, and entries are removed (or moved) only between
//! [`PendingTxIndex::begin_change`] and [`PendingTxIndex::end_change`], which make the generation
//! odd while in progress and bump it once more at the end; a reader whose generation is odd or
//! stale falls back to scanning its snapshot's uncheckpointed blocks.

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use tandem_proto::B256;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct PendingTxIndex {
    locations: RwLock<HashMap<B256, (u64, u32)>>,
    generation: AtomicU64,
}

impl PendingTxIndex {
    /// The current generation; read it *before* taking a snapshot.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Where `hash` is, in the writer's latest state.
    pub(crate) fn get(&self, hash: &B256) -> Option<(u64, u32)> {
        self.read().get(hash).copied()
    }

    /// Whether any of `hashes` is indexed (adding it again would move it).
    pub(crate) fn contains_any(&self, hashes: &[B256]) -> bool {
        let locations = self.read();
        hashes.iter().any(|hash| locations.contains_key(hash))
    }

    /// Indexes the txs of block `number` (call before writing it; see the module docs).
    pub(crate) fn insert(&self, number: u64, hashes: &[B256]) {
        let mut locations = self.write();
        locations.reserve(hashes.len());
        for (index, hash) in hashes.iter().enumerate() {
            // A block holds at most u32::MAX txs (the body encodes the count as u32).
            locations.insert(*hash, (number, index as u32));
        }
    }

    /// Starts a change that removes or moves entries.
    pub(crate) fn begin_change(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops the entries of block `number` (those still pointing at it).
    pub(crate) fn remove_block(&self, number: u64, hashes: &[B256]) {
        let mut locations = self.write();
        for hash in hashes {
            if locations.get(hash).is_some_and(|(at, _)| *at == number) {
                locations.remove(hash);
            }
        }
    }

    /// Ends a change started with [`Self::begin_change`].
    pub(crate) fn end_change(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<B256, (u64, u32)>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters (each entry is independent), so a poisoned lock is still usable.
        self.locations
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<B256, (u64, u32)>> {
        self.locations
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a snapshot taken at generation `at` can trust a miss in the index now.
pub(crate) fn miss_is_exact(at: u64, now: u64) -> bool {
    at.is_multiple_of(2) && at == now
}
