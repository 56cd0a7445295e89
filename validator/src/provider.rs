//! p2p's [`ChainProvider`] over the archiver and the pool: what this node serves to peers
//! (txs, blocks, block proposals, the proposed chain) and what it checks their answers against
//! (L1's checkpoint commitments). Reads run on the blocking pool: a range of blocks is several
//! RocksDB reads.

use futures::{FutureExt, future::BoxFuture};
use std::collections::HashMap;

use tandem_archiver::{ArchiverReader, ArchiverResult, ProposedCheckpoint, ReadView, StoredBlock};
use tandem_p2p::reqresp::{
    BlockQuery, ChainPoint, ChainProvider, CheckpointCommitment, MAX_BLOCKS_PER_REQUEST,
    ProviderError, ServedBlock,
};
use tandem_proto::{B256, CheckpointProposal, RecoveredTx, Tx};

use crate::state::StateReader;

/// Serves this node's archiver and pool to peers.
#[derive(Debug, Clone)]
pub struct ArchiverChainProvider {
    archive: ArchiverReader,
    state: StateReader,
}

impl ArchiverChainProvider {
    /// A provider over `archive` and `state`'s pool.
    pub const fn new(archive: ArchiverReader, state: StateReader) -> Self {
        Self { archive, state }
    }

    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&ArchiverReader) -> ArchiverResult<T> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, ProviderError>> {
        let archive = self.archive.clone();
        async move {
            tokio::task::spawn_blocking(move || read(&archive))
                .await
                .map_err(|_| ProviderError)?
                .map_err(|err| {
                    tracing::warn!(target: "validator::provider", error = %err, "could not serve a peer's request");
                    ProviderError
                })
        }
        .boxed()
    }
}

fn served(block: StoredBlock) -> ServedBlock {
    ServedBlock {
        block: block.block,
        archive_root: block.archive_root,
        proposer_signature: block.proposer_signature,
        checkpoint: None,
    }
}

/// Consecutive blocks from `from` (at most `count`) as served, the last block of each
/// proposed checkpoint carrying that checkpoint's proposal (a late node stores it after the
/// blocks, so they are not orphan-pruned).
fn served_range(view: &ReadView<'_>, from: u64, count: u32) -> ArchiverResult<Vec<ServedBlock>> {
    let proposed: HashMap<u64, ProposedCheckpoint> = view
        .proposed_checkpoints()?
        .into_iter()
        .map(|checkpoint| (checkpoint.last_block(), checkpoint))
        .collect();
    let mut blocks = Vec::new();
    for number in (from..).take(count as usize) {
        let Some(block) = view.block(number)? else {
            break;
        };
        let mut block = served(block);
        if let Some(checkpoint) = proposed.get(&number)
            && checkpoint.payload.archive == block.archive_root
            && block.proposer_signature.is_some()
        {
            block.checkpoint = Some(CheckpointProposal {
                payload: checkpoint.payload.clone(),
                signature: checkpoint.proposer_signature,
                last_block: None,
            });
        }
        blocks.push(block);
    }
    Ok(blocks)
}

impl ChainProvider for ArchiverChainProvider {
    fn txs_by_hash(&self, hashes: Vec<B256>) -> BoxFuture<'static, Result<Vec<Tx>, ProviderError>> {
        let (pooled, rest): (Vec<Option<RecoveredTx>>, Vec<B256>) = {
            let mut rest = Vec::new();
            let pooled = hashes
                .iter()
                .map(|hash| {
                    let found = self.state.pooled_tx(hash);
                    if found.is_none() {
                        rest.push(*hash);
                    }
                    found
                })
                .collect();
            (pooled, rest)
        };
        let from_pool: Vec<Tx> = pooled
            .into_iter()
            .flatten()
            .map(RecoveredTx::into_tx)
            .collect();
        let from_chain = self.read(move |archive| {
            let view = archive.view()?;
            let mut found = Vec::new();
            for hash in rest {
                if let Some(tx) = view.tx(&hash)? {
                    found.push(tx.tx);
                }
            }
            Ok(found)
        });
        async move {
            let mut txs = from_pool;
            txs.extend(from_chain.await?);
            Ok(txs)
        }
        .boxed()
    }

    fn blocks_by_range(
        &self,
        from: u64,
        count: u32,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>> {
        let count = count.min(MAX_BLOCKS_PER_REQUEST);
        self.read(move |archive| served_range(&archive.view()?, from, count))
    }

    fn block_proposals(
        &self,
        query: BlockQuery,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>> {
        self.read(move |archive| {
            let view = archive.view()?;
            let blocks: Vec<StoredBlock> = match query {
                BlockQuery::SlotIndex { slot, index } => view
                    .blocks_of_slot(slot.0)?
                    .into_iter()
                    .filter(|block| block.block.header.index_within_checkpoint == index)
                    .collect(),
                BlockQuery::Archive(archive) => {
                    view.block_by_archive(&archive)?.into_iter().collect()
                }
            };
            Ok(blocks
                .into_iter()
                .filter(|block| block.proposer_signature.is_some())
                .map(served)
                .collect())
        })
    }

    fn proposed_chain(
        &self,
        after: ChainPoint,
        max_blocks: u32,
    ) -> BoxFuture<'static, Result<Option<Vec<ServedBlock>>, ProviderError>> {
        let max_blocks = max_blocks.min(MAX_BLOCKS_PER_REQUEST);
        self.read(move |archive| {
            let view = archive.view()?;
            let on_chain = view
                .header(after.number)?
                .is_some_and(|header| header.archive_root == after.archive);
            if !on_chain {
                return Ok(None);
            }
            Ok(Some(served_range(
                &view,
                after.number.saturating_add(1),
                max_blocks,
            )?))
        })
    }

    fn l1_checkpoint(
        &self,
        number: u64,
    ) -> BoxFuture<'static, Result<Option<CheckpointCommitment>, ProviderError>> {
        self.read(move |archive| {
            Ok(archive
                .view()?
                .checkpoint(number)?
                .map(|record| CheckpointCommitment {
                    block_headers_hash: record.payload.header.block_headers_hash,
                    archive: record.payload.archive,
                }))
        })
    }
}
