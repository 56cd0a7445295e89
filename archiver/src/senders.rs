//! Senders of txs the store holds only as bytes, recovered off the writer.
//!
//! A prune event carries its txs with their senders (the pool re-inserts them without
//! recovering). Proposed blocks come executed (senders known, kept with the uncheckpointed
//! blocks); blocks found at open are recovered in `open`, on every core; checkpointed blocks
//! keep no senders (they are removed only by an L1 reorg), so the L1 fetch recovers those a
//! planned rollback removes, on a blocking thread, and hands them over with the step. The writer
//! recovers only what nobody handed it (a direct store user's rollback), and counts it.

use std::{collections::BTreeMap, sync::Arc};

use tandem_proto::{B256, RecoveredTx, SigningDomain, Tx};

/// Txs of blocks with their senders, by block hash (what a planned rollback removes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredBlocks(Arc<BTreeMap<B256, Vec<RecoveredTx>>>);

impl RecoveredBlocks {
    /// The txs of the block with hash `hash`, if they were recovered.
    pub fn get(&self, hash: &B256) -> Option<&[RecoveredTx]> {
        self.0.get(hash).map(Vec::as_slice)
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no block is in it.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Txs whose senders the caller knows, by block hash.
    pub fn from_known(blocks: impl IntoIterator<Item = (B256, Vec<RecoveredTx>)>) -> Self {
        Self(Arc::new(blocks.into_iter().collect()))
    }

    /// Recovers the senders of `blocks` (block hash, txs) on every core.
    pub(crate) fn recover(blocks: Vec<(B256, Vec<Tx>)>, domain: &SigningDomain) -> Self {
        let hashes: Vec<B256> = blocks.iter().map(|(hash, _)| *hash).collect();
        let txs = recover_blocks(blocks.into_iter().map(|(_, txs)| txs).collect(), domain);
        Self(Arc::new(hashes.into_iter().zip(txs).collect()))
    }
}

/// Recovers the senders of each block's txs, spreading the blocks over the available cores.
/// A tx whose signature does not recover cannot re-enter a pool: it is left out and counted.
pub(crate) fn recover_blocks(
    blocks: Vec<Vec<Tx>>,
    domain: &SigningDomain,
) -> Vec<Vec<RecoveredTx>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(blocks.len())
        .max(1);
    let per_thread = blocks.len().div_ceil(threads).max(1);
    let mut chunks: Vec<Vec<Vec<Tx>>> = Vec::new();
    let mut blocks = blocks.into_iter().peekable();
    while blocks.peek().is_some() {
        chunks.push(blocks.by_ref().take(per_thread).collect());
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|txs| recover_txs(txs, domain))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            // A worker only recovers signatures; a panic there is a bug worth surfacing.
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Recovers the senders of `txs` on this thread (see [`recover_blocks`]).
pub(crate) fn recover_txs(txs: Vec<Tx>, domain: &SigningDomain) -> Vec<RecoveredTx> {
    txs.into_iter()
        .filter_map(|tx| match tx.into_recovered(domain) {
            Ok(recovered) => Some(recovered),
            Err(_) => {
                metrics::counter!("archiver_pruned_txs_unrecoverable_total").increment(1);
                None
            }
        })
        .collect()
}
