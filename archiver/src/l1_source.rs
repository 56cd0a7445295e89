//! [`L1Source`] for the L1 crate's reader: the one place that maps `tandem_l1` types to the
//! archiver's.
//!
//! Today's reader fails a whole range with `NotProposeCalldata` when one checkpoint's calldata
//! cannot be read. Then this adapter reads the range's events itself and asks the reader again
//! block by block: events in blocks whose calldata reads keep it, events in a block that still
//! fails get `calldata: None` (the archiver then waits for their body from peers or local
//! blocks). Once the reader reports unreadable calldata per event, only that mapping changes.

use std::collections::BTreeMap;

use alloy::{eips::BlockNumberOrTag, providers::Provider, rpc::types::Filter, sol_types::SolEvent};
use futures::FutureExt;
use tandem_l1::{L1Checkpoint, L1Error, L1Reader, Rollup};

use crate::{
    error::{ArchiverError, ArchiverResult},
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
            match self.checkpoints_proposed(from, to).await {
                Ok(checkpoints) => Ok(checkpoints.into_iter().map(with_calldata).collect()),
                Err(L1Error::NotProposeCalldata { .. }) => {
                    events_block_by_block(self, from, to).await
                }
                Err(err) => Err(err.into()),
            }
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

fn with_calldata(checkpoint: L1Checkpoint) -> L1CheckpointEvent {
    L1CheckpointEvent {
        number: checkpoint.number,
        header_hash: checkpoint.header_hash,
        archive: checkpoint.archive,
        slot: checkpoint.header.slot,
        l1: L1Ref {
            number: checkpoint.l1_block.number,
            hash: checkpoint.l1_block.hash,
            timestamp: checkpoint.l1_block.timestamp,
        },
        tx_hash: checkpoint.tx_hash,
        calldata: Some(ProposeCalldata {
            header: checkpoint.header,
            fee_asset_price_modifier: checkpoint.fee_asset_price_modifier,
            attestations: checkpoint.attestations,
            body: checkpoint.body.to_vec(),
        }),
    }
}

/// The events of `from..=to` from the logs, with calldata for every block whose calldata reads.
async fn events_block_by_block<P: Provider + Clone>(
    reader: &L1Reader<P>,
    from: u64,
    to: u64,
) -> ArchiverResult<Vec<L1CheckpointEvent>> {
    let filter = Filter::new()
        .address(reader.rollup())
        .event_signature(Rollup::CheckpointProposed::SIGNATURE_HASH)
        .from_block(from)
        .to_block(to);
    let logs = reader
        .provider()
        .get_logs(&filter)
        .await
        .map_err(L1Error::from)?;
    let unexpected = |what| ArchiverError::from(L1Error::Unexpected(what));
    let mut by_block: BTreeMap<u64, Vec<L1CheckpointEvent>> = BTreeMap::new();
    for log in logs {
        let event = Rollup::CheckpointProposed::decode_log(&log.inner)
            .map_err(|_| unexpected("undecodable CheckpointProposed log"))?;
        let number = u64::try_from(event.checkpointNumber)
            .map_err(|_| unexpected("checkpoint number above u64"))?;
        let slot = u64::try_from(event.slot).map_err(|_| unexpected("slot above u64"))?;
        let block_number = log
            .block_number
            .ok_or(unexpected("log without block number"))?;
        let block_hash = log.block_hash.ok_or(unexpected("log without block hash"))?;
        let tx_hash = log
            .transaction_hash
            .ok_or(unexpected("log without tx hash"))?;
        let timestamp = match log.block_timestamp {
            Some(timestamp) => timestamp,
            None => {
                header(reader, BlockNumberOrTag::Number(block_number))
                    .await?
                    .ok_or(ArchiverError::L1BlockUnavailable {
                        number: block_number,
                    })?
                    .timestamp
            }
        };
        by_block
            .entry(block_number)
            .or_default()
            .push(L1CheckpointEvent {
                number,
                header_hash: event.headerHash,
                archive: event.archive,
                slot,
                l1: L1Ref {
                    number: block_number,
                    hash: block_hash,
                    timestamp,
                },
                tx_hash,
                calldata: None,
            });
    }
    let mut events = Vec::new();
    for (block, mut bare) in by_block {
        match reader.checkpoints_proposed(block, block).await {
            Ok(checkpoints) => {
                // The reader read the same logs: pair them by checkpoint number.
                for event in &mut bare {
                    if let Some(found) = checkpoints.iter().find(|c| c.number == event.number) {
                        *event = with_calldata(found.clone());
                    }
                }
            }
            Err(L1Error::NotProposeCalldata { checkpoint, .. }) => {
                tracing::warn!(
                    target: "archiver",
                    l1_block = block,
                    checkpoint,
                    "propose calldata unreadable: the block's checkpoints wait for their bodies"
                );
                metrics::counter!("archiver_l1_calldata_unreadable_total").increment(1);
            }
            Err(err) => return Err(err.into()),
        }
        events.extend(bare);
    }
    events.sort_by_key(|event| event.number);
    Ok(events)
}
