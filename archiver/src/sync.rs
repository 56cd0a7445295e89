//! One step of following L1: detect reorgs, fetch `CheckpointProposed` events in batches, write
//! what they say, track the finalized tip, and prune blocks whose checkpoint can no longer land.

use std::{collections::BTreeSet, time::Duration};

use alloy::providers::Provider;
use tandem_l1::{L1Checkpoint, L1Reader};
use tandem_proto::{
    MAX_CHECKPOINT_SIZE, decode_checkpoint_body,
    time::{ConsensusWindows, Slot, SlotClock, Timestamp},
};

use crate::{
    error::ArchiverError,
    records::L1Ref,
    store::{ArchiverStore, L1CheckpointInput, PruneEvent},
};

/// Settings of the L1 sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// L1 block the rollup was deployed in (sync starts there).
    pub deployment_block: u64,
    /// L1 blocks to wait before trusting a block's events.
    pub confirmations: u64,
    /// Most L1 blocks per log query.
    pub batch_size: u64,
    /// Most batches per step, so queued proposals are not starved during a long catch-up.
    pub max_batches_per_step: u32,
    /// Extra time after the checkpoint-proposal receive deadline before blocks without a
    /// proposal are pruned as orphans.
    pub orphan_prune_tolerance: Duration,
}

/// Errors of a sync step.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Reading L1 failed (retry next step).
    #[error(transparent)]
    L1(#[from] tandem_l1::L1Error),
    /// The store refused what L1 says, or failed.
    #[error(transparent)]
    Store(#[from] ArchiverError),
    /// A checkpoint's body on L1 does not decode. L1 accepted it (it only checks the body hash),
    /// so the chain cannot advance past it from L1 alone.
    #[error("L1 checkpoint {number}: undecodable body: {source}")]
    Body {
        /// Checkpoint number.
        number: u64,
        /// Why.
        source: tandem_proto::CheckpointBodyError,
    },
}

/// What a step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// L1 checkpoints written (promoted or inserted).
    pub checkpoints: u64,
    /// Last L1 block processed.
    pub synced_to: Option<u64>,
    /// Whether the step stopped before reaching the confirmed L1 head.
    pub behind: bool,
    /// Blocks removed, in order.
    pub prunes: Vec<PruneEvent>,
}

/// Runs one sync step at wall-clock time `now`.
pub async fn sync_step<P: Provider + Clone>(
    store: &mut ArchiverStore,
    reader: &L1Reader<P>,
    config: &SyncConfig,
    windows: &ConsensusWindows,
    slot_clock: &SlotClock,
    proposals_seen: &BTreeSet<u64>,
    now: Timestamp,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    if let Some(prune) = handle_reorg(store, reader, config).await? {
        report.prunes.push(prune);
    }
    let head = reader.latest_block().await?;
    let confirmed = head.saturating_sub(config.confirmations);
    for _ in 0..config.max_batches_per_step {
        let from = store
            .l1_synced()?
            .map_or(config.deployment_block, |synced| synced.number + 1);
        if from > confirmed {
            break;
        }
        let to = confirmed.min(from + config.batch_size.max(1) - 1);
        for checkpoint in reader.checkpoints_proposed(from, to).await? {
            if checkpoint.number <= store.tips().checkpointed.checkpoint.number {
                // Already written (a restart re-reads its last batch).
                continue;
            }
            let number = checkpoint.number;
            if let crate::store::L1Outcome::Inserted {
                pruned: Some(prune),
                ..
            } = store.add_l1_checkpoint(l1_input(checkpoint)?)?
            {
                report.prunes.push(prune);
            }
            report.checkpoints += 1;
            tracing::info!(target: "archiver", checkpoint = number, "checkpoint on L1");
        }
        let block = reader
            .block(to)
            .await?
            .ok_or(tandem_l1::L1Error::Unexpected("synced block vanished"))?;
        store.set_l1_synced(L1Ref {
            number: block.number,
            hash: block.hash,
            timestamp: block.timestamp,
        })?;
        report.synced_to = Some(to);
    }
    let synced = store.l1_synced()?;
    report.behind = synced.is_none_or(|synced| synced.number < confirmed);
    if let Some(synced) = synced {
        metrics::gauge!("archiver_l1_sync_lag_blocks")
            .set(head.saturating_sub(synced.number) as f64);
        metrics::gauge!("archiver_l1_sync_lag_seconds")
            .set(now.as_secs().saturating_sub(synced.timestamp) as f64);
    }

    if let Some(finalized) = reader.finalized_block().await? {
        let mut number = store.tips().checkpointed.checkpoint.number;
        while number > store.tips().finalized.checkpoint.number {
            let record = store
                .checkpoint(number)?
                .ok_or(ArchiverError::Corrupt("checkpoint below the tip missing"))?;
            if record.l1.number <= finalized.number {
                store.set_finalized(number)?;
                break;
            }
            number -= 1;
        }
    }

    // Prune only with a complete view of L1: a checkpoint may sit in a block not read yet.
    if !report.behind {
        if let Some(slot) = slot_clock.slot_at_next_l1_block(now)
            && let Some(prune) = store.prune_uncheckpointed(slot.0)?
        {
            report.prunes.push(prune);
        }
        let deadline = |slot: u64| {
            orphan_deadline(
                windows,
                config.orphan_prune_tolerance,
                proposals_seen.contains(&slot),
                Slot(slot),
            )
            .as_millis()
        };
        if let Some(prune) = store.prune_orphans(now.as_millis(), deadline)? {
            report.prunes.push(prune);
        }
    }
    Ok(report)
}

/// When the blocks of `slot` not covered by a proposed checkpoint become orphans. With a valid
/// checkpoint proposal seen on gossip they get until the synced deadline (its blocks may still be
/// re-executing); without one, a proposer withholding its checkpoint must not stall the next
/// proposer, so they go right after the receive deadline plus `tolerance`.
pub fn orphan_deadline(
    windows: &ConsensusWindows,
    tolerance: Duration,
    proposal_seen: bool,
    slot: Slot,
) -> Timestamp {
    if proposal_seen {
        windows.checkpoint_proposal_synced_deadline(slot)
    } else {
        windows
            .checkpoint_proposal_receive_deadline(slot)
            .saturating_add(tolerance)
    }
}

fn l1_input(checkpoint: L1Checkpoint) -> Result<L1CheckpointInput, SyncError> {
    // Until the archiver handles a checkpoint without calldata (issue 10), treat it as before.
    let calldata = checkpoint
        .calldata
        .map_err(|_| tandem_l1::L1Error::Unexpected("checkpoint calldata missing"))?;
    let blocks = decode_checkpoint_body(&calldata.body, MAX_CHECKPOINT_SIZE).map_err(|source| {
        SyncError::Body {
            number: checkpoint.number,
            source,
        }
    })?;
    Ok(L1CheckpointInput {
        number: checkpoint.number,
        payload: tandem_proto::ConsensusPayload {
            header: checkpoint.header,
            archive: checkpoint.archive,
            fee_asset_price_modifier: checkpoint.fee_asset_price_modifier,
        },
        l1: L1Ref {
            number: checkpoint.l1_block.number,
            hash: checkpoint.l1_block.hash,
            timestamp: checkpoint.l1_block.timestamp,
        },
        attestations: calldata.attestations,
        blocks,
    })
}

/// If the last synced L1 block is no longer canonical, rolls the store back to the highest
/// checkpoint whose L1 block still is, and rewinds the sync marker to it.
async fn handle_reorg<P: Provider + Clone>(
    store: &mut ArchiverStore,
    reader: &L1Reader<P>,
    config: &SyncConfig,
) -> Result<Option<PruneEvent>, SyncError> {
    let Some(synced) = store.l1_synced()? else {
        return Ok(None);
    };
    let canonical = reader.block(synced.number).await?;
    if canonical.is_some_and(|block| block.hash == synced.hash) {
        return Ok(None);
    }
    let mut keep = store.tips().checkpointed.checkpoint.number;
    let mut rewind_to = None;
    while keep > 0 {
        let record = store
            .checkpoint(keep)?
            .ok_or(ArchiverError::Corrupt("checkpoint below the tip missing"))?;
        if reader
            .block(record.l1.number)
            .await?
            .is_some_and(|block| block.hash == record.l1.hash)
        {
            rewind_to = Some(record.l1);
            break;
        }
        keep -= 1;
    }
    tracing::warn!(target: "archiver", from = synced.number, keep, "L1 reorg: rolling back");
    let prune = store.remove_checkpoints_after(keep)?;
    let marker = match rewind_to {
        Some(l1) => l1,
        None => {
            let start = config.deployment_block.saturating_sub(1);
            let block = reader
                .block(start)
                .await?
                .ok_or(tandem_l1::L1Error::Unexpected("deployment block missing"))?;
            L1Ref {
                number: block.number,
                hash: block.hash,
                timestamp: block.timestamp,
            }
        }
    };
    store.set_l1_synced(marker)?;
    metrics::counter!("archiver_l1_reorgs_total").increment(1);
    Ok(prune)
}
