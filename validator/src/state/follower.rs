//! The chain follower's reconcile step and the state service's writes.
//!
//! One step: read the archiver's tips and compare block hashes with the world state from the
//! lower tip down to the common ancestor; roll back what the archiver no longer has (its txs
//! return to the pool); apply up to [`APPLY_BATCH`] of the archiver's blocks above it — the
//! executed block given for it if there is one, else executed here. The caller repeats steps
//! (serving its queue in between) until one reports nothing left.

use std::{
    collections::{BTreeMap, HashMap},
    num::NonZeroUsize,
    sync::{Arc, PoisonError, RwLock, RwLockWriteGuard},
};

use tandem_archiver::{ArchiverError, PruneEvent, StoredBlock};
use tandem_proto::{
    B256, BlockId, RecoveredTx, SigningDomain,
    time::{SystemClock, Timestamp},
};
use tandem_state::{
    AddOutcome, ExecutedBlock, PoolError, ProtectionGuard, StateTip, TxPool, WorldState,
    recover_txs, reexecute,
};
use tokio::sync::watch;

use super::{
    EXECUTED_BLOCKS_CAPACITY, StateServiceConfig,
    reader::read,
    status::{FollowerStats, FollowerStatus, StallReason},
};
use crate::{
    archive::ChainArchive,
    error::{ValidatorError, ValidatorResult},
    metrics,
};

/// Blocks applied per step before the service serves its queue again.
const APPLY_BATCH: u64 = 16;
/// Applied blocks whose txs are kept to return them to the pool on a rollback.
const TRACKED_BLOCKS: usize = 4096;
/// Executed blocks this far below the tip are dropped (a reorg deeper than this executes
/// again).
const EXECUTED_KEEP_BELOW_TIP: u64 = 64;

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// What one look at both stores says to do.
enum Plan {
    InSync {
        tip: BlockId,
        finalized: u64,
    },
    Stalled,
    Waiting {
        finalized: u64,
        archiver: u64,
    },
    Diverged {
        finalized: u64,
        number: u64,
        hash: B256,
    },
    Apply {
        rollback_to: Option<u64>,
        /// The archiver's blocks to apply: number and hash.
        blocks: Vec<BlockId>,
        archiver_tip: u64,
        finalized: u64,
    },
}

/// What applying one of the archiver's blocks did.
enum Applied {
    Yes,
    /// The archiver no longer holds the planned block.
    Moved,
    Stalled,
}

struct Executed {
    block: ExecutedBlock,
    txs: Vec<RecoveredTx>,
    /// The block handler's protection of the block's txs, held until the block is applied
    /// (then its txs leave the pool) or the entry is dropped (rolled back, evicted).
    protection: Option<ProtectionGuard>,
}

pub(super) struct Follower {
    world: Arc<RwLock<WorldState>>,
    pool: Arc<RwLock<TxPool>>,
    archive: Arc<dyn ChainArchive>,
    domain: SigningDomain,
    threads: NonZeroUsize,
    tip: watch::Sender<StateTip>,
    status: watch::Sender<FollowerStatus>,
    /// Executed blocks by hash, waiting for the archiver to store them.
    executed: HashMap<B256, Executed>,
    /// Txs of applied blocks by number, for rollbacks.
    block_txs: BTreeMap<u64, Vec<RecoveredTx>>,
    /// The archiver's block the follower could not apply (number, hash).
    stalled: Option<(u64, B256, StallReason)>,
    /// Txs of prune events, returned to the pool after the next complete reconcile.
    pruned_txs: Vec<RecoveredTx>,
    stats: Arc<FollowerStats>,
}

impl Follower {
    pub(super) fn new(
        world: Arc<RwLock<WorldState>>,
        pool: Arc<RwLock<TxPool>>,
        archive: Arc<dyn ChainArchive>,
        config: StateServiceConfig,
        tip: watch::Sender<StateTip>,
        status: watch::Sender<FollowerStatus>,
        stats: Arc<FollowerStats>,
    ) -> Self {
        Self {
            world,
            pool,
            archive,
            domain: config.domain,
            threads: config.recovery_threads,
            tip,
            status,
            executed: HashMap::new(),
            block_txs: BTreeMap::new(),
            stalled: None,
            pruned_txs: Vec::new(),
            stats,
        }
    }

    pub(super) fn status(&self) -> FollowerStatus {
        self.status.borrow().clone()
    }

    fn set_status(&self, status: FollowerStatus) {
        metrics::follower_status(&status);
        self.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            match &status {
                FollowerStatus::InSync { tip } => {
                    tracing::info!(target: "validator::state", block = tip.number, hash = %tip.hash, "world state in sync with the archiver");
                }
                FollowerStatus::Stalled {
                    number,
                    hash,
                    reason,
                } => {
                    tracing::error!(target: "validator::state", block = number, %hash, %reason, "chain follower stopped: the archiver's block does not execute to its header");
                }
                FollowerStatus::WaitingForArchiver {
                    finalized,
                    archiver,
                } => {
                    tracing::warn!(target: "validator::state", finalized, archiver, "archiver is behind the world state's final block; waiting");
                }
                FollowerStatus::ReconcileFailed { error } => {
                    tracing::warn!(target: "validator::state", %error, "reconcile failed; not ready until a step succeeds");
                }
                FollowerStatus::Starting | FollowerStatus::Syncing { .. } => {}
            }
            *current = status;
            true
        });
    }

    /// A reconcile step failed (not fatally): not ready until a step succeeds.
    pub(super) fn step_failed(&self, err: &ValidatorError) {
        metrics::reconcile_failed();
        self.set_status(FollowerStatus::ReconcileFailed {
            error: err.to_string(),
        });
    }

    fn publish_tip(&self, tip: StateTip) {
        self.tip.send_replace(tip);
    }

    /// One reconcile step; `true` when more work is left.
    pub(super) async fn step(&mut self) -> ValidatorResult<bool> {
        match self.plan()? {
            Plan::InSync { tip, finalized } => {
                self.set_finalized(finalized)?;
                self.set_status(FollowerStatus::InSync { tip });
                Ok(false)
            }
            Plan::Stalled => {
                // Still stalled on the same block: say so again (a failed step in between
                // replaced the status).
                if let Some((number, hash, reason)) = self.stalled.clone() {
                    self.set_status(FollowerStatus::Stalled {
                        number,
                        hash,
                        reason,
                    });
                }
                Ok(false)
            }
            Plan::Waiting {
                finalized,
                archiver,
            } => {
                self.set_status(FollowerStatus::WaitingForArchiver {
                    finalized,
                    archiver,
                });
                Ok(false)
            }
            Plan::Diverged {
                finalized,
                number,
                hash,
            } => {
                self.stall(number, hash, StallReason::DivergedBelowFinal { finalized });
                Ok(false)
            }
            Plan::Apply {
                rollback_to,
                blocks,
                archiver_tip,
                finalized,
            } => {
                self.stalled = None;
                if let Some(ancestor) = rollback_to {
                    self.rollback(ancestor)?;
                }
                for block in blocks {
                    match self.apply_stored(block).await? {
                        Applied::Yes => {}
                        // The archiver changed under the plan: look again.
                        Applied::Moved => return Ok(true),
                        Applied::Stalled => return Ok(false),
                    }
                }
                self.set_finalized(finalized)?;
                self.set_status(FollowerStatus::Syncing {
                    world: self.tip.borrow().number,
                    archiver: archiver_tip,
                });
                // Look again: the archiver may have moved, and the next step reports in sync.
                Ok(true)
            }
        }
    }

    fn plan(&self) -> ValidatorResult<Plan> {
        let reader = self.archive.reader();
        let view = reader.view()?;
        let tips = view.tips()?;
        let theirs = tips.proposed.block;
        let world = read(&self.world);
        let ours = world.tip();
        let finalized = world.finalized();
        // Hashes chain (each header commits to the archive before it): equal hashes at `n`
        // mean equal chains up to `n`.
        let mut number = ours.number.min(theirs.number);
        let ancestor = loop {
            let mine = world.block_hash_at(number)?;
            if mine.is_some() && mine == view.block_hash(number)? {
                break number;
            }
            if number <= finalized {
                let hash = view.block_hash(number)?.unwrap_or_default();
                return Ok(Plan::Diverged {
                    finalized,
                    number,
                    hash,
                });
            }
            number -= 1;
        };
        let tips_finalized = tips.finalized.block.number;
        if ancestor == ours.number && ancestor == theirs.number {
            return Ok(Plan::InSync {
                tip: BlockId {
                    number: ours.number,
                    hash: ours.hash,
                },
                finalized: tips_finalized,
            });
        }
        if let Some((number, hash, _)) = &self.stalled
            && *number == ancestor + 1
            && view.block_hash(*number)? == Some(*hash)
        {
            return Ok(Plan::Stalled);
        }
        let rollback_to = (ancestor < ours.number).then_some(ancestor);
        if rollback_to.is_some() && ancestor < finalized {
            return Ok(Plan::Waiting {
                finalized,
                archiver: theirs.number,
            });
        }
        let last = theirs.number.min(ancestor.saturating_add(APPLY_BATCH));
        let mut blocks = Vec::new();
        for number in ancestor + 1..=last {
            let hash = view.block_hash(number)?.ok_or(ValidatorError::Archiver(
                ArchiverError::Corrupt("a block below the proposed tip is missing"),
            ))?;
            blocks.push(BlockId { number, hash });
        }
        Ok(Plan::Apply {
            rollback_to,
            blocks,
            archiver_tip: theirs.number,
            finalized: tips_finalized,
        })
    }

    fn stall(&mut self, number: u64, hash: B256, reason: StallReason) {
        metrics::follower_mismatch(&reason);
        self.stalled = Some((number, hash, reason.clone()));
        self.set_status(FollowerStatus::Stalled {
            number,
            hash,
            reason,
        });
    }

    fn set_finalized(&self, finalized: u64) -> ValidatorResult<()> {
        let mut world = write(&self.world);
        // Only blocks on the common chain can be final here: the tip is on it.
        let block = finalized.min(world.tip().number);
        if block > world.finalized() {
            world.set_finalized(block)?;
        }
        Ok(())
    }

    fn rollback(&mut self, ancestor: u64) -> ValidatorResult<()> {
        let mut world = write(&self.world);
        let from = world.tip().number;
        let tip = world.rollback_to(ancestor)?;
        let undone: Vec<RecoveredTx> = self
            .block_txs
            .split_off(&(ancestor + 1))
            .into_values()
            .flatten()
            .collect();
        let returned = write(&self.pool).reinsert(undone, |address| world.account(address));
        drop(world);
        tracing::warn!(target: "validator::state", from, to = ancestor, returned, "rolled back to the archiver's chain");
        metrics::follower_rollback(from - ancestor);
        self.stats.rolled_back(from - ancestor);
        self.executed
            .retain(|_, executed| executed.block.block().header.block_number > ancestor);
        // Entries above the ancestor are the pruned blocks (kept: the archiver may store them
        // again); their txs are not in a stored block any more, so they lose the protection.
        for executed in self.executed.values_mut() {
            executed.protection = None;
        }
        self.publish_tip(tip);
        Ok(())
    }

    /// Applies the archiver's block `id` (the next one): the executed block given for it, or
    /// the stored block executed here (read only then).
    async fn apply_stored(&mut self, id: BlockId) -> ValidatorResult<Applied> {
        let tip = *self.tip.borrow();
        let cached = self
            .executed
            .remove(&id.hash)
            .filter(|executed| executed.block.block().header.last_archive_root == tip.archive_root);
        let (executed, source) = match cached {
            Some(executed) => (executed, "given"),
            None => {
                let stored = self.archive.reader().view()?.block(id.number)?;
                let Some(stored) = stored.filter(|stored| stored.block.hash() == id.hash) else {
                    return Ok(Applied::Moved);
                };
                match self.execute(stored).await? {
                    Ok(executed) => (executed, "executed_here"),
                    Err(reason) => {
                        self.stall(id.number, id.hash, reason);
                        return Ok(Applied::Stalled);
                    }
                }
            }
        };
        self.apply(executed)?;
        metrics::follower_applied(source);
        self.stats.applied(source == "given");
        Ok(Applied::Yes)
    }

    /// Executes a stored block on a fork of the tip (off the async workers).
    async fn execute(&self, stored: StoredBlock) -> ValidatorResult<Result<Executed, StallReason>> {
        let (fork, known) = {
            let world = read(&self.world);
            let fork = world.fork(world.tip().number)?;
            let pool = read(&self.pool);
            let known: HashMap<B256, RecoveredTx> = stored
                .block
                .txs
                .iter()
                .filter_map(|tx| {
                    pool.get(&tx.hash())
                        .map(|found| (found.hash(), found.clone()))
                })
                .collect();
            (fork, known)
        };
        let domain = self.domain;
        let threads = self.threads;
        tokio::task::spawn_blocking(move || {
            let block = stored.block;
            let txs = recover_txs(
                block.txs,
                &domain,
                &|hash| known.get(hash).cloned(),
                threads,
            )
            .map_err(|(index, error)| StallReason::InvalidTx { index, error })?;
            let mut fork = fork;
            // No deadline: a block of the chain is applied however long it takes.
            let executed = reexecute(
                &mut fork,
                &block.header,
                &txs,
                None,
                Timestamp(u64::MAX),
                &SystemClock,
            )
            .map_err(StallReason::Mismatch)?;
            Ok(Executed {
                protection: None,
                block: executed,
                txs,
            })
        })
        .await
        .map_err(|_| ValidatorError::TaskFailed("block execution"))
    }

    fn apply(&mut self, executed: Executed) -> ValidatorResult<()> {
        let number = executed.block.block().header.block_number;
        let mut world = write(&self.world);
        let tip = world.apply_block(&executed.block)?;
        write(&self.pool)
            .on_block_applied(executed.txs.iter(), |address| world.account(address).nonce);
        drop(world);
        self.block_txs.insert(number, executed.txs);
        while self.block_txs.len() > TRACKED_BLOCKS {
            self.block_txs.pop_first();
        }
        let keep_from = number.saturating_sub(EXECUTED_KEEP_BELOW_TIP);
        self.executed
            .retain(|_, executed| executed.block.block().header.block_number >= keep_from);
        self.publish_tip(tip);
        Ok(())
    }

    /// Keeps `protection` with the executed block `block` until it is applied or dropped;
    /// drops it at once when no such entry waits (applied already, evicted, never given).
    pub(super) fn keep_protection(&mut self, block: B256, protection: ProtectionGuard) {
        if let Some(executed) = self.executed.get_mut(&block) {
            executed.protection = Some(protection);
        }
    }

    pub(super) fn cache_executed(
        &mut self,
        block: ExecutedBlock,
        txs: Vec<RecoveredTx>,
        protection: Option<ProtectionGuard>,
    ) {
        let hash = block.block().hash();
        if self.executed.len() >= EXECUTED_BLOCKS_CAPACITY
            && !self.executed.contains_key(&hash)
            && let Some(lowest) = self
                .executed
                .iter()
                .min_by_key(|(_, executed)| executed.block.block().header.block_number)
                .map(|(hash, _)| *hash)
        {
            self.executed.remove(&lowest);
        }
        self.executed.insert(
            hash,
            Executed {
                block,
                txs,
                protection,
            },
        );
    }

    pub(super) fn on_prune(&mut self, event: PruneEvent) {
        self.pruned_txs.extend(event.txs);
    }

    /// Returns the txs of prune events to the pool (validated against the tip; those the new
    /// chain mined or that conflict are dropped).
    pub(super) fn return_pruned_txs(&mut self) {
        if self.pruned_txs.is_empty() {
            return;
        }
        let txs = std::mem::take(&mut self.pruned_txs);
        let world = read(&self.world);
        write(&self.pool).reinsert(txs, |address| world.account(address));
    }

    pub(super) fn add_tx(&mut self, tx: RecoveredTx) -> Result<AddOutcome, PoolError> {
        let world = read(&self.world);
        let account = world.account(&tx.sender());
        write(&self.pool).add(tx, &account)
    }

    pub(super) fn add_gossip_txs(&mut self, txs: Vec<RecoveredTx>) {
        let world = read(&self.world);
        let mut pool = write(&self.pool);
        for tx in txs {
            let account = world.account(&tx.sender());
            if let Err(err) = pool.add(tx, &account) {
                metrics::gossip_tx_refused(&err);
            }
        }
    }
}
