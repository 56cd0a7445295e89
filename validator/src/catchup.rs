//! Catching up from peers: a node that starts late (or lost gossip) asks a peer for the
//! proposed chain after its archiver's tip and runs every block through the block handler —
//! re-executed, stored as a proposed block, applied — so it can validate the next proposals
//! before L1 has the blocks. A block served with the proposed checkpoint it ends (signed by
//! its proposer) is followed by that checkpoint through the all-nodes handler, so the caught-up
//! blocks belong to a stored proposed checkpoint and are not orphan-pruned, and the next
//! checkpoint's fee can be derived from it. Blocks a peer knows from L1 only (no proposer
//! signature) are left to the archiver's L1 sync.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use tandem_p2p::{
    reqresp::{ChainBlock, ChainPoint, MAX_BLOCKS_PER_REQUEST},
    scoring::PeerAction,
};
use tandem_proto::time::Slot;

use crate::{
    block::BlockProposalProcessor,
    checkpoint::{AllNodesCheckpointProcessor, CheckpointRejection},
    context::{BlockOutcome, ValidatorContext},
    error::ValidatorResult,
};

/// Most request rounds of one catch-up (each up to [`MAX_BLOCKS_PER_REQUEST`] blocks): the
/// proposed chain is a few checkpoints long at most.
pub const MAX_CATCH_UP_ROUNDS: usize = 16;

/// Time one caught-up block may take, from the moment catch-up hands it to the block handler:
/// waiting for the world state to reach its parent (the follower applies the block before it
/// asynchronously) and re-executing it. Catch-up is not bounded by attestation windows: the
/// blocks a late node fetches are normally of slots whose attestation deadline has passed.
/// A block filling the body cap re-executes in well under a second on a loaded machine.
pub const CATCH_UP_BLOCK_BUDGET: Duration = Duration::from_secs(10);

/// What a catch-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUpReport {
    /// Blocks re-executed and stored.
    pub stored: u64,
    /// Blocks that were stored already.
    pub known: u64,
    /// Proposed checkpoints validated and stored (or stored already) after their blocks.
    pub checkpoints: u64,
    /// Why it stopped early, if it did: a peer's block refused, or blocks only on L1.
    pub stopped: Option<&'static str>,
}

/// Asks peers for the proposed chain after this node's tip until they have nothing more.
///
/// Before the first block of a slot whose checkpoint the peer served, catch-up holds that
/// slot's blocks from the archiver's orphan prune (for the budget of its blocks and the
/// checkpoint): a caught-up checkpoint is normally the one in flight to L1, whose orphan
/// deadline has passed, and its blocks are stored one by one before it.
pub async fn catch_up(
    context: &ValidatorContext,
    blocks: &BlockProposalProcessor,
    checkpoints: &AllNodesCheckpointProcessor,
) -> ValidatorResult<CatchUpReport> {
    let mut report = CatchUpReport::default();
    for _ in 0..MAX_CATCH_UP_ROUNDS {
        let after = {
            let view = context.archive.reader().view()?;
            let tip = view.tips()?.proposed.block;
            let archive = view
                .header(tip.number)?
                .map(|header| header.archive_root)
                .unwrap_or_default();
            ChainPoint {
                number: tip.number,
                archive,
            }
        };
        let (server, chain) = match context
            .network
            .request_proposed_chain(after, MAX_BLOCKS_PER_REQUEST)
            .await
        {
            Ok(answer) => answer,
            Err(err) => {
                tracing::info!(target: "validator::catch_up", error = %err, after = after.number, "no peer served the proposed chain");
                report.stopped = Some("no_peer");
                return Ok(report);
            }
        };
        let full_round = chain.len() >= MAX_BLOCKS_PER_REQUEST as usize;
        if chain.is_empty() {
            return Ok(report);
        }
        let holds = checkpointed_slots(&chain);
        let mut held = None;
        for block in chain {
            let slot = block.block().header.slot;
            if held != Some(slot)
                && let Some(&count) = holds.get(&slot)
            {
                // One budget per block and one for the checkpoint.
                let budget = CATCH_UP_BLOCK_BUDGET.saturating_mul(count.saturating_add(1));
                let until = context.clock.now().saturating_add(budget);
                context.archive.hold_orphans(Slot(slot), until).await?;
                held = Some(slot);
            }
            let checkpoint = block.checkpoint().cloned();
            let proposer = block.proposer();
            let Some(proposal) = block.into_served().into_proposal() else {
                report.stopped = Some("checkpointed_on_l1");
                return Ok(report);
            };
            let deadline = context.clock.now().saturating_add(CATCH_UP_BLOCK_BUDGET);
            match blocks.process_unverified(&proposal, None, deadline).await {
                BlockOutcome::Stored(_) => report.stored += 1,
                BlockOutcome::AlreadyStored(_) => report.known += 1,
                BlockOutcome::Refused(rejection) => {
                    // The server stored and served a block that provably breaks a rule (an
                    // honest node serves only blocks it validated): unlike a gossip relay,
                    // it is charged.
                    if rejection.is_slashable() {
                        context
                            .network
                            .report_peer(server, PeerAction::MidToleranceError)
                            .await;
                    }
                    report.stopped = Some(rejection.as_str());
                    return Ok(report);
                }
                BlockOutcome::Failed => {
                    report.stopped = Some("failed");
                    return Ok(report);
                }
            }
            // p2p checked that the checkpoint ends at this block and that its signer is the
            // block's proposer.
            if let (Some(checkpoint), Some(proposer)) = (checkpoint, proposer) {
                let now = context.clock.now();
                let deadline = now.saturating_add(CATCH_UP_BLOCK_BUDGET);
                match checkpoints
                    .process(&checkpoint, proposer, None, now, deadline)
                    .await
                {
                    // L1 has it already: the archiver's L1 sync takes it from there.
                    Ok(_) | Err(CheckpointRejection::CheckpointAlreadyPublished { .. }) => {
                        report.checkpoints += 1;
                    }
                    Err(rejection) => {
                        report.stopped = Some(rejection.as_str());
                        return Ok(report);
                    }
                }
            }
        }
        if !full_round {
            break;
        }
    }
    tracing::info!(target: "validator::catch_up", stored = report.stored, known = report.known, checkpoints = report.checkpoints, "caught up with the peers' proposed chain");
    Ok(report)
}

/// Slots of `chain` whose served blocks end in a served checkpoint → their number of blocks.
/// (p2p checked that a served checkpoint is signed by its slot's proposer, so a hold cannot be
/// taken for another proposer's slot.)
fn checkpointed_slots(chain: &[ChainBlock]) -> BTreeMap<u64, u32> {
    let mut counts = BTreeMap::<u64, u32>::new();
    for block in chain {
        *counts.entry(block.block().header.slot).or_default() += 1;
    }
    let ending: BTreeSet<u64> = chain
        .iter()
        .filter(|block| block.checkpoint().is_some())
        .map(|block| block.block().header.slot)
        .collect();
    counts.retain(|slot, _| ending.contains(slot));
    counts
}
