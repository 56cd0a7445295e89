//! An in-memory chain provider for req/resp tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};

use futures::{FutureExt, future::BoxFuture};
use tandem_p2p::reqresp::{
    BlockQuery, ChainPoint, ChainProvider, CheckpointCommitment, ProviderError, ServedBlock,
};
use tandem_proto::{B256, Tx};

/// An in-memory chain behind req/resp (stands in for the archiver and the pool).
#[derive(Default)]
pub struct MemoryProvider {
    pub txs: HashMap<B256, Tx>,
    pub blocks: BTreeMap<u64, ServedBlock>,
    pub checkpoints: HashMap<u64, CheckpointCommitment>,
    /// Block-proposal queries that reached the store (recent gossip did not answer them).
    pub proposal_queries: std::sync::atomic::AtomicUsize,
}

impl MemoryProvider {
    pub fn with_blocks(blocks: impl IntoIterator<Item = ServedBlock>) -> Self {
        let mut provider = Self::default();
        for block in blocks {
            provider
                .blocks
                .insert(block.block.header.block_number, block);
        }
        provider
    }
}

impl ChainProvider for MemoryProvider {
    fn txs_by_hash(&self, hashes: Vec<B256>) -> BoxFuture<'static, Result<Vec<Tx>, ProviderError>> {
        let found: Vec<Tx> = hashes
            .iter()
            .filter_map(|hash| self.txs.get(hash).cloned())
            .collect();
        async move { Ok(found) }.boxed()
    }

    fn blocks_by_range(
        &self,
        from: u64,
        count: u32,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>> {
        let found: Vec<ServedBlock> = (from..from + u64::from(count))
            .map_while(|number| self.blocks.get(&number).cloned())
            .collect();
        async move { Ok(found) }.boxed()
    }

    fn block_proposals(
        &self,
        query: BlockQuery,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>> {
        self.proposal_queries
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let found: Vec<ServedBlock> = self
            .blocks
            .values()
            .filter(|served| served.proposer_signature.is_some())
            .filter(|served| match query {
                BlockQuery::SlotIndex { slot, index } => {
                    served.block.header.slot == slot.0
                        && served.block.header.index_within_checkpoint == index
                }
                BlockQuery::Archive(archive) => served.archive_root == archive,
            })
            .cloned()
            .collect();
        async move { Ok(found) }.boxed()
    }

    fn proposed_chain(
        &self,
        after: ChainPoint,
        max_blocks: u32,
    ) -> BoxFuture<'static, Result<Option<Vec<ServedBlock>>, ProviderError>> {
        let on_chain = after.number == 0
            || self
                .blocks
                .get(&after.number)
                .is_some_and(|served| served.archive_root == after.archive);
        let found = on_chain.then(|| {
            self.blocks
                .range(after.number + 1..)
                .take(max_blocks as usize)
                .map(|(_, served)| served.clone())
                .collect()
        });
        async move { Ok(found) }.boxed()
    }

    fn l1_checkpoint(
        &self,
        number: u64,
    ) -> BoxFuture<'static, Result<Option<CheckpointCommitment>, ProviderError>> {
        let found = self.checkpoints.get(&number).copied();
        async move { Ok(found) }.boxed()
    }
}
