//! The L1 reads the epoch cache needs, as a narrow trait (so the actor's logic is testable
//! without anvil) and its implementation over the rollup reader.

use std::future::Future;

use alloy::{eips::BlockNumberOrTag, providers::Provider};
use tandem_l1::{EpochCommittee, L1BlockRef, L1Error, L1Reader, L1Result};
use tandem_proto::{B256, time::Epoch};

/// What the epoch cache reads from L1.
pub trait CommitteeL1: Send + Sync + 'static {
    /// The latest L1 block.
    fn head(&self) -> impl Future<Output = L1Result<L1BlockRef>> + Send;

    /// The latest finalized L1 block, if the node reports one.
    fn finalized(&self) -> impl Future<Output = L1Result<Option<L1BlockRef>>> + Send;

    /// Hash of the canonical L1 block at `number`, if there is one.
    fn canonical_hash(&self, number: u64) -> impl Future<Output = L1Result<Option<B256>>> + Send;

    /// The committee and seed of `epoch`, read at exactly `block` (by hash). Fails with
    /// [`L1Error::BlockGone`] when `block` left the chain before the read.
    fn committee_at(
        &self,
        epoch: Epoch,
        block: L1BlockRef,
    ) -> impl Future<Output = L1Result<EpochCommittee>> + Send;
}

fn block_ref(header: &alloy::rpc::types::Header) -> L1BlockRef {
    L1BlockRef {
        number: header.number,
        hash: header.hash,
        timestamp: header.timestamp,
    }
}

impl<P: Provider + Clone + 'static> CommitteeL1 for L1Reader<P> {
    async fn head(&self) -> L1Result<L1BlockRef> {
        let block = self
            .provider()
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await?
            .ok_or(L1Error::Unexpected("the L1 node has no latest block"))?;
        Ok(block_ref(&block.header))
    }

    async fn finalized(&self) -> L1Result<Option<L1BlockRef>> {
        self.finalized_block().await
    }

    async fn canonical_hash(&self, number: u64) -> L1Result<Option<B256>> {
        Ok(self.block(number).await?.map(|block| block.hash))
    }

    async fn committee_at(&self, epoch: Epoch, block: L1BlockRef) -> L1Result<EpochCommittee> {
        match self.committee(epoch.0, block.id()).await {
            Ok(committee) => Ok(committee),
            // A read pinned to a block that was reorged away fails with the node's "unknown
            // block" answer, which says nothing transient; name the real cause so it is
            // retried at once.
            Err(err) => match self.block_by_hash(block.hash).await {
                Ok(None) => Err(L1Error::BlockGone(block.hash)),
                Ok(Some(_)) | Err(_) => Err(err),
            },
        }
    }
}
