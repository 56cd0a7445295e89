//! [`L1Source`] for the L1 crate's reader: the one place that maps `tandem_l1` types to the
//! archiver's.
//!
//! The reader reports per event whether its `propose` calldata could be read; an event without
//! it keeps its place in the range with `calldata: None` (the archiver then waits for its body
//! from local blocks or peers), so one unreadable tx never stalls the range.

use alloy::{eips::BlockNumberOrTag, providers::Provider};
use futures::FutureExt;
use tandem_l1::{L1Checkpoint, L1Error, L1Reader};

use crate::{
    error::ArchiverResult,
    records::{L1CheckpointEvent, L1Ref, ProposeCalldata},
    sync::{L1Block, L1Future, L1Source},
};

impl<P: Provider + Clone + 'static> L1Source for L1Reader<P> {
    fn latest_block(&self) -> L1Future<'_, u64> {
        async move { Ok(self.latest_block().await?) }.boxed()
    }

    fn finalized_block(&self) -> L1Future<'_, Option<L1Block>> {
        async move { header(self, BlockNumberOrTag::Finalized).await }.boxed()
    }

    fn block(&self, number: u64) -> L1Future<'_, Option<L1Block>> {
        async move { header(self, BlockNumberOrTag::Number(number)).await }.boxed()
    }

    fn checkpoint_events(&self, from: u64, to: u64) -> L1Future<'_, Vec<L1CheckpointEvent>> {
        async move {
            let checkpoints = self.checkpoints_proposed(from, to).await?;
            Ok(checkpoints.into_iter().map(event_of).collect())
        }
        .boxed()
    }
}

async fn header<P: Provider + Clone>(
    reader: &L1Reader<P>,
    id: BlockNumberOrTag,
) -> ArchiverResult<Option<L1Block>> {
    let block = reader
        .provider()
        .get_block_by_number(id)
        .await
        .map_err(L1Error::from)?;
    Ok(block.map(|block| L1Block {
        number: block.header.number,
        hash: block.header.hash,
        parent_hash: block.header.parent_hash,
        timestamp: block.header.timestamp,
    }))
}

fn event_of(checkpoint: L1Checkpoint) -> L1CheckpointEvent {
    let slot = checkpoint.header.slot;
    let calldata = match checkpoint.calldata {
        Ok(calldata) => Some(ProposeCalldata {
            header: checkpoint.header,
            fee_asset_price_modifier: checkpoint.fee_asset_price_modifier,
            attestations: calldata.attestations,
            body: calldata.body.to_vec(),
        }),
        Err(missing) => {
            tracing::warn!(
                target: "archiver",
                checkpoint = checkpoint.number,
                tx = %checkpoint.tx_hash,
                %missing,
                "propose calldata unreadable: the checkpoint waits for its body"
            );
            metrics::counter!("archiver_l1_calldata_unreadable_total").increment(1);
            None
        }
    };
    L1CheckpointEvent {
        number: checkpoint.number,
        header_hash: checkpoint.header_hash,
        archive: checkpoint.archive,
        slot,
        l1: L1Ref {
            number: checkpoint.l1_block.number,
            hash: checkpoint.l1_block.hash,
            timestamp: checkpoint.l1_block.timestamp,
        },
        tx_hash: checkpoint.tx_hash,
        calldata,
    }
}
