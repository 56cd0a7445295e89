//! [`StateReader`]: cheap reads of the world state and the pool from any task. Only the state
//! service holds the write side; every lock here is held for the duration of one read.
//!
//! Lock order: world, then pool — the follower holds the world's write lock while it takes the
//! pool's (apply, rollback). A reader taking pool then world could deadlock with it (std's
//! `RwLock` queues readers behind a waiting writer), so the only method holding both,
//! [`StateReader::with_pool`], takes them in that order and hands both to its closure.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use tandem_proto::{
    Address, B256, RecoveredTx,
    time::{Clock, Timestamp},
};
use tandem_state::{Account, Fork, StateError, StateTip, TxPool, WorldState};
use tokio::sync::watch;

use crate::wait::wait_until;

/// Read access to the world state and the tx pool; cloneable.
#[derive(Clone)]
pub struct StateReader {
    pub(crate) world: Arc<RwLock<WorldState>>,
    pub(crate) pool: Arc<RwLock<TxPool>>,
    pub(crate) tip: watch::Receiver<StateTip>,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader")
            .field("tip", &*self.tip.borrow())
            .finish_non_exhaustive()
    }
}

/// A read lock; a writer that panicked leaves a state no worse than a crash would (every write
/// is one atomic batch, applied to memory after it landed), so reads go on.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

impl StateReader {
    /// The world-state tip (no lock).
    pub fn tip(&self) -> StateTip {
        *self.tip.borrow()
    }

    /// A receiver that changes with every applied block and rollback.
    pub fn watch_tip(&self) -> watch::Receiver<StateTip> {
        self.tip.clone()
    }

    /// A fork on top of retained block `number` (O(1)).
    pub fn fork(&self, number: u64) -> Result<Fork, StateError> {
        read(&self.world).fork(number)
    }

    /// A fork on top of the tip, with the tip it sits on.
    pub fn fork_tip(&self) -> Result<(Fork, StateTip), StateError> {
        let world = read(&self.world);
        let tip = world.tip();
        Ok((world.fork(tip.number)?, tip))
    }

    /// Hash of applied block `number` (`None` above the tip).
    pub fn block_hash_at(&self, number: u64) -> Result<Option<B256>, StateError> {
        read(&self.world).block_hash_at(number)
    }

    /// An account at the tip.
    pub fn account(&self, address: &Address) -> Account {
        read(&self.world).account(address)
    }

    /// A pooled tx (sender recovered).
    pub fn pooled_tx(&self, hash: &B256) -> Option<RecoveredTx> {
        read(&self.pool).get(hash).cloned()
    }

    /// Number of pooled txs.
    pub fn pool_len(&self) -> usize {
        read(&self.pool).len()
    }

    /// Runs `f` on the pool and the world state under their read locks, taken in the one lock
    /// order (world, then pool). The state service cannot change either meanwhile: keep `f`
    /// short — a block build is the longest it should be. Read the world through the
    /// `&WorldState` given, never through this reader inside `f` (a second read lock on the
    /// world behind a waiting writer deadlocks).
    pub fn with_pool<R>(&self, f: impl FnOnce(&TxPool, &WorldState) -> R) -> R {
        let world = read(&self.world);
        let pool = read(&self.pool);
        f(&pool, &world)
    }

    /// Waits until the world state holds block `number` with `hash` (its parent chain applied),
    /// or `deadline` of `clock` passes (`false`).
    pub async fn wait_for_block(
        &self,
        number: u64,
        hash: B256,
        clock: &dyn Clock,
        deadline: Timestamp,
    ) -> Result<bool, StateError> {
        let mut tip = self.tip.clone();
        wait_until(clock, deadline, &mut tip, || {
            Ok(self.block_hash_at(number)? == Some(hash))
        })
        .await
    }
}
