//! Protections of pooled txs, counted per hash and held by guards: a tx is protected (from
//! eviction and replacement) while at least one guard names it, and every guard releases what
//! it holds exactly once, when dropped — whichever way its holder ends (stored, refused,
//! failed, or its future cancelled). Two proposals using one tx (equivocating twins, or a
//! pruned tx re-included) hold two counts, so the first to end cannot unprotect the other's.
//!
//! The table is shared between the pool (which reads it) and the guards (which update it), so
//! a guard releases without a message to the pool's owner and without its lock. It holds an
//! entry only while a guard names the hash, so it is bounded by the live guards.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tandem_proto::B256;

/// The protection counts of one pool; cheap to clone (clones share the table).
#[derive(Debug, Clone, Default)]
pub struct Protections {
    counts: Arc<Mutex<HashMap<B256, u32>>>,
}

impl Protections {
    fn lock(&self) -> MutexGuard<'_, HashMap<B256, u32>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Protects `hashes` (pooled now or later) until the guard is dropped.
    pub fn protect(&self, hashes: Vec<B256>) -> ProtectionGuard {
        let mut counts = self.lock();
        for hash in &hashes {
            let count = counts.entry(*hash).or_insert(0);
            *count = count.saturating_add(1);
        }
        drop(counts);
        ProtectionGuard {
            table: self.clone(),
            hashes,
        }
    }

    /// Whether some guard protects `hash`.
    pub fn contains(&self, hash: &B256) -> bool {
        self.lock().contains_key(hash)
    }

    /// Hashes with at least one protection.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn release(&self, hashes: &[B256]) {
        let mut counts = self.lock();
        for hash in hashes {
            if let Some(count) = counts.get_mut(hash) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(hash);
                }
            }
        }
    }
}

/// One holder's protection of some txs; released on drop.
#[derive(Debug)]
#[must_use = "the protection ends when the guard is dropped"]
pub struct ProtectionGuard {
    table: Protections,
    hashes: Vec<B256>,
}

impl ProtectionGuard {
    /// The protected hashes.
    pub fn hashes(&self) -> &[B256] {
        &self.hashes
    }
}

impl Drop for ProtectionGuard {
    fn drop(&mut self) {
        self.table.release(&self.hashes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protections_are_counted_per_holder_and_released_on_drop() {
        let table = Protections::default();
        let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let first = table.protect(vec![a, b]);
        let twin = table.protect(vec![a]);
        drop(first);
        assert!(table.contains(&a), "the twin still holds a");
        assert!(!table.contains(&b));
        drop(twin);
        assert!(table.is_empty());
        // Repeated in one guard: counted twice, released twice.
        drop(table.protect(vec![a, a]));
        assert!(table.is_empty());
    }
}
