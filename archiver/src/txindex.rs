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

use std::sync::{
    RwLock,
    atomic::{AtomicU64, Ordering},
};

use alloy::primitives::map::B256Map;
use tandem_proto::B256;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct PendingTxIndex {
    /// Keyed by tx hash with a hasher for fixed bytes (the keys are hashes already).
    locations: RwLock<B256Map<(u64, u32)>>,
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

    /// Indexes the txs of block `number` (call before writing it; see the module docs). If an
    /// entry moves (a tx indexed again) and no change is in progress (`in_change`), it starts
    /// one, before any reader can see the move; returns whether a change is now in progress.
    pub(crate) fn insert(&self, number: u64, hashes: &[B256], in_change: bool) -> bool {
        let mut in_change = in_change;
        let mut locations = self.write();
        locations.reserve(hashes.len());
        for (index, hash) in hashes.iter().enumerate() {
            // A block holds at most u32::MAX txs (the body encodes the count as u32).
            let moved = locations.insert(*hash, (number, index as u32)).is_some();
            if moved && !in_change {
                self.begin_change();
                in_change = true;
            }
        }
        in_change
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, B256Map<(u64, u32)>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters (each entry is independent), so a poisoned lock is still usable.
        self.locations
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, B256Map<(u64, u32)>> {
        self.locations
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a snapshot taken at generation `at` can trust a miss in the index now.
pub(crate) fn miss_is_exact(at: u64, now: u64) -> bool {
    at.is_multiple_of(2) && at == now
}
