//! The read phase of the L1 sync: what L1 has beyond the store's cursor, as steps to apply.
//!
//! Checks the cursor is still canonical (else walks back to the newest stored checkpoint whose
//! L1 block is, and plans a rollback), then reads ranges of `CheckpointProposed` events, pinning
//! each range's end block before and checking it after, and checking each event's block is the
//! canonical one of its number by hash (a reorg in between, or a log from another fork, voids
//! the range); then finality, by hash too (a failed read of it only omits it). A block the RPC
//! does not serve (it lags, or L1 reorganised to a chain that is not that long yet) is an error
//! to retry, never a reorg: once it is served, its hash tells. Senders of the checkpointed
//! blocks a planned rollback removes are recovered here, off the writer.

use crate::{
    awaiting::same_checkpoint,
    error::{ArchiverError, ArchiverResult},
    reader::ArchiverReader,
    records::{L1CheckpointEvent, L1Ref},
    senders::RecoveredBlocks,
    sync::{L1Block, L1Source, L1Step, L1Update, SyncConfig},
};

/// Reads what L1 has beyond the store's cursor; see the module docs.
pub async fn fetch_l1_update(
    reader: &ArchiverReader,
    source: &dyn L1Source,
    config: &SyncConfig,
) -> ArchiverResult<L1Update> {
    let mut steps = Vec::new();
    let head = source.latest_block().await?;
    let (stored_cursor, mut top) = {
        let view = reader.view()?;
        (
            view.l1_synced()?,
            view.tips()?.checkpointed.checkpoint.number,
        )
    };
    let mut cursor = stored_cursor;
    if let Some(synced) = stored_cursor {
        // A block the RPC does not serve (it lags, or L1 reorganised to a chain not that long
        // yet) is retried, never taken for a reorg: once served, its hash tells.
        if require_block(source, synced.number).await?.hash != synced.hash {
            let (keep, marker) = walk_back(reader, source, config).await?;
            tracing::warn!(target: "archiver", from = synced.number, keep, "L1 reorg: rolling back");
            metrics::counter!("archiver_l1_reorgs_total").increment(1);
            steps.push(L1Step::Rollback {
                keep,
                marker: Some(marker),
                recovered: recover_removed(reader, keep).await?,
            });
            top = top.min(keep);
            cursor = Some(marker);
        }
    }
    let confirmed = head.saturating_sub(config.confirmations);
    let mut behind = false;
    for _ in 0..config.max_batches_per_step {
        let from = match cursor {
            Some(c) => after(c.number)?,
            None => config.deployment_block,
        };
        if from > confirmed {
            break;
        }
        let to = confirmed.min(from.saturating_add(config.batch_size.max(1) - 1));
        let Some((events, end)) = read_range(source, cursor, from, to).await? else {
            metrics::counter!("archiver_l1_range_changed_total").increment(1);
            if steps.is_empty() {
                return Err(ArchiverError::L1RangeChanged { from, to });
            }
            // What was read before stays valid; the next fetch re-checks the cursor.
            behind = true;
            break;
        };
        for event in events {
            // A re-read checkpoint that differs from the stored one is a reorg: planned here, so
            // the senders of what it removes are recovered off the writer.
            if event.number <= top
                && let Some(keep) = event.number.checked_sub(1)
                && !reader
                    .view()?
                    .checkpoint(event.number)?
                    .is_some_and(|stored| same_checkpoint(&stored, &event))
            {
                steps.push(L1Step::Rollback {
                    keep,
                    marker: None,
                    recovered: recover_removed(reader, keep).await?,
                });
                top = keep;
            }
            steps.push(L1Step::Event(Box::new(event)));
        }
        steps.push(L1Step::Advance(end.reference()));
        cursor = Some(end.reference());
    }
    behind = behind || cursor.is_none_or(|c| c.number < confirmed);
    // Finality is worth a retry, never the ranges just read: a failed read only omits it.
    let rolled_back_to = steps
        .iter()
        .filter_map(|step| match step {
            L1Step::Rollback { keep, .. } => Some(*keep),
            _ => None,
        })
        .min();
    // Events of this fetch were checked canonical as they were read.
    let read: Vec<(u64, L1Ref)> = steps
        .iter()
        .filter_map(|step| match step {
            L1Step::Event(event) => Some((event.number, event.l1)),
            _ => None,
        })
        .collect();
    match finality(reader, source, rolled_back_to, &read).await {
        Ok(step) => steps.extend(step),
        Err(err) if err.is_fatal() => return Err(err),
        Err(err) => {
            metrics::counter!("archiver_l1_finalized_errors_total").increment(1);
            tracing::warn!(target: "archiver", error = %err, "L1 finalized block not read; finality waits");
        }
    }
    steps.push(L1Step::ResolveAwaiting);
    Ok(L1Update {
        steps,
        behind,
        head,
    })
}

/// Reads the events of blocks `from..=to`, the range right after `cursor`. The end block is
/// pinned before and checked after; each event's block must be the canonical block of its
/// number while the end is pinned (a load-balanced RPC may answer the log query from another
/// fork); the first block must chain on the cursor. `None` if any of it does not hold: nothing
/// of the range may be used.
async fn read_range(
    source: &dyn L1Source,
    cursor: Option<L1Ref>,
    from: u64,
    to: u64,
) -> ArchiverResult<Option<(Vec<L1CheckpointEvent>, L1Block)>> {
    let end = require_block(source, to).await?;
    let events = source.checkpoint_events(from, to).await?;
    let mut canonical = std::collections::BTreeMap::from([(to, end.hash)]);
    for event in &events {
        let number = event.l1.number;
        if number < from || number > to {
            return Err(
                tandem_l1::L1Error::Unexpected("an event outside the requested range").into(),
            );
        }
        let hash = match canonical.get(&number) {
            Some(hash) => *hash,
            None => {
                let hash = require_block(source, number).await?.hash;
                canonical.insert(number, hash);
                hash
            }
        };
        if event.l1.hash != hash {
            tracing::warn!(target: "archiver", checkpoint = event.number, l1_block = number, "an event's L1 block is not canonical");
            return Ok(None);
        }
    }
    let start = require_block(source, from).await?;
    let end_again = require_block(source, to).await?;
    let continues = cursor.is_none_or(|c| start.parent_hash == c.hash);
    Ok((end_again.hash == end.hash && continues).then_some((events, end)))
}

/// The finality step: checkpoints whose L1 block is at or below L1's finalized block *and* on
/// the finalized chain (by hash, not only by number), newest first: those of `read` (events of
/// this fetch, whose blocks were checked canonical as they were read) and the newest stored one
/// (at most `ceiling` when a rollback is planned), checked here. `None` if L1 reports no
/// finalized block or nothing new can be final.
async fn finality(
    reader: &ArchiverReader,
    source: &dyn L1Source,
    ceiling: Option<u64>,
    read: &[(u64, L1Ref)],
) -> ArchiverResult<Option<L1Step>> {
    let Some(finalized) = source.finalized_block().await? else {
        return Ok(None);
    };
    let mut candidates: Vec<(u64, L1Ref)> = read
        .iter()
        .rev()
        .filter(|(_, l1)| l1.number <= finalized.number)
        .copied()
        .collect();
    let stored = {
        let view = reader.view()?;
        let tips = view.tips()?;
        let floor = tips.finalized.checkpoint.number;
        let mut number = ceiling.map_or(tips.checkpointed.checkpoint.number, |keep| {
            keep.min(tips.checkpointed.checkpoint.number)
        });
        let mut found = None;
        while number > floor {
            let record = view.checkpoint(number)?.ok_or(ArchiverError::Corrupt(
                "a checkpoint below the tip is missing",
            ))?;
            if record.l1.number <= finalized.number {
                found = Some((number, record.l1));
                break;
            }
            number -= 1;
        }
        found
    };
    if let Some((checkpoint, l1)) = stored {
        let canonical = if l1.number == finalized.number {
            finalized.hash
        } else {
            require_block(source, l1.number).await?.hash
        };
        if canonical == l1.hash {
            candidates.push((checkpoint, l1));
        } else {
            // Not on L1's finalized chain: the cursor check will find the reorg; it must not
            // be marked final meanwhile.
            tracing::warn!(target: "archiver", checkpoint, l1_block = l1.number, "a checkpoint's L1 block is not on the finalized chain");
        }
    }
    Ok((!candidates.is_empty()).then_some(L1Step::Finalized { candidates }))
}

/// The txs, with senders, of the checkpointed blocks a rollback to checkpoint `keep` removes,
/// recovered on a blocking thread (the writer must not spend ~50 µs per tx on them).
async fn recover_removed(reader: &ArchiverReader, keep: u64) -> ArchiverResult<RecoveredBlocks> {
    let blocks = {
        let view = reader.view()?;
        let checkpointed = view.tips()?.checkpointed;
        if keep >= checkpointed.checkpoint.number {
            return Ok(RecoveredBlocks::default());
        }
        let kept = view.checkpoint(keep)?.ok_or(ArchiverError::Corrupt(
            "a checkpoint below the tip is missing",
        ))?;
        let mut blocks = Vec::new();
        for number in kept.last_block() + 1..=checkpointed.block.number {
            let stored = view
                .block(number)?
                .ok_or(ArchiverError::Corrupt("a checkpointed block is missing"))?;
            blocks.push((stored.block.hash(), stored.block.txs));
        }
        blocks
    };
    let domain = reader.domain();
    tokio::task::spawn_blocking(move || RecoveredBlocks::recover(blocks, &domain))
        .await
        .map_err(|_| ArchiverError::Corrupt("the sender recovery task failed"))
}

/// The L1 block number after `number` (checked: it comes from L1).
fn after(number: u64) -> ArchiverResult<u64> {
    number
        .checked_add(1)
        .ok_or_else(|| tandem_l1::L1Error::Unexpected("an L1 block number overflows").into())
}

async fn require_block(source: &dyn L1Source, number: u64) -> ArchiverResult<L1Block> {
    source
        .block(number)
        .await?
        .ok_or(ArchiverError::L1BlockUnavailable { number })
}

/// Finds the newest stored checkpoint (awaiting ones first) whose L1 block is still canonical:
/// `(its number, the cursor to rewind to)`. Fails if even the finalized checkpoint's block is
/// gone.
async fn walk_back(
    reader: &ArchiverReader,
    source: &dyn L1Source,
    config: &SyncConfig,
) -> ArchiverResult<(u64, L1Ref)> {
    let (awaiting, checkpointed, finalized) = {
        let view = reader.view()?;
        let tips = view.tips()?;
        let awaiting: Vec<(u64, L1Ref)> = view
            .awaiting_checkpoints()?
            .into_iter()
            .map(|a| (a.event.number, a.event.l1))
            .collect();
        (
            awaiting,
            tips.checkpointed.checkpoint.number,
            tips.finalized.checkpoint.number,
        )
    };
    let still_there = async |l1: L1Ref| -> ArchiverResult<bool> {
        Ok(require_block(source, l1.number).await?.hash == l1.hash)
    };
    for (number, l1) in awaiting.into_iter().rev() {
        if still_there(l1).await? {
            return Ok((number, l1));
        }
    }
    let mut number = checkpointed;
    while number > 0 {
        // One view per lookup: nothing is held across the awaits (L1 data does not change while
        // a fetch runs: the writer applies fetched steps only after the fetch).
        let record = reader
            .view()?
            .checkpoint(number)?
            .ok_or(ArchiverError::Corrupt(
                "a checkpoint below the tip is missing",
            ))?;
        if still_there(record.l1).await? {
            return Ok((number, record.l1));
        }
        if number <= finalized {
            return Err(ArchiverError::ReorgBelowFinalized {
                checkpoint: number,
                finalized,
            });
        }
        number -= 1;
    }
    let start = require_block(source, config.deployment_block.saturating_sub(1)).await?;
    Ok((0, start.reference()))
}
