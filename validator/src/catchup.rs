//! Catching up from peers: a node that starts late (or lost gossip) asks a peer for the
//! proposed chain after its archiver's tip and runs every block through the block handler —
//! re-executed, stored as a proposed block, applied — so it can validate the next proposals
//! before L1 has the blocks. Blocks a peer knows from L1 only (no proposer signature) are left
//! to the archiver's L1 sync.

use std::time::Duration;

use tandem_p2p::reqresp::{ChainPoint, MAX_BLOCKS_PER_REQUEST};

use crate::{
    block::BlockProposalProcessor,
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
    /// Why it stopped early, if it did: a peer's block refused, or blocks only on L1.
    pub stopped: Option<&'static str>,
}

/// Asks peers for the proposed chain after this node's tip until they have nothing more.
pub async fn catch_up(
    context: &ValidatorContext,
    blocks: &BlockProposalProcessor,
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
        let chain = match context
            .network
            .request_proposed_chain(after, MAX_BLOCKS_PER_REQUEST)
            .await
        {
            Ok(chain) => chain,
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
        for block in chain {
            let Some(proposal) = block.into_served().into_proposal() else {
                report.stopped = Some("checkpointed_on_l1");
                return Ok(report);
            };
            let deadline = context.clock.now().saturating_add(CATCH_UP_BLOCK_BUDGET);
            match blocks.process_unverified(&proposal, None, deadline).await {
                BlockOutcome::Stored(_) => report.stored += 1,
                BlockOutcome::AlreadyStored(_) => report.known += 1,
                BlockOutcome::Refused(rejection) => {
                    report.stopped = Some(rejection.as_str());
                    return Ok(report);
                }
                BlockOutcome::Failed => {
                    report.stopped = Some("failed");
                    return Ok(report);
                }
            }
        }
        if !full_round {
            break;
        }
    }
    tracing::info!(target: "validator::catch_up", stored = report.stored, known = report.known, "caught up with the peers' proposed chain");
    Ok(report)
}
