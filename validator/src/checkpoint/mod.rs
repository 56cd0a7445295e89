//! The all-nodes checkpoint handler (mandatory on every node; reference §6.5, §7.2): a
//! checkpoint proposal becomes a proposed checkpoint in the archiver only once it is valid.
//!
//! 1. this node's own proposal that its sequencer stored already: recognised, skipped;
//! 2. the modifier within ±100 bps;
//! 3. the last block (the one whose archive is the proposal's) stored — waiting for the block
//!    handler, bounded by the slot's attestation deadline; a last block the block handler
//!    refused fails at once;
//! 4. the slot not on L1 yet; the blocks of the checkpoint (the last block's index + 1 blocks
//!    ending at it) complete, consistent and at most the cap;
//! 5. the body within the body-size cap; the header and the archive rebuilt from the stored
//!    blocks equal the proposal's;
//! 6. `add_proposed_checkpoint` (waiting, within the deadline, for the previous checkpoint's
//!    proposal to be stored first).
//!
//! Verdicts are cached by payload hash for the validator handler. Invalid proposals become a
//! metric (`validator_checkpoint_validation_total{result}`) and a log line with the evidence,
//! and a slashable one is recorded against the proposer (never charged to the relaying peer,
//! which could not rebuild the header before forwarding); this handler takes no other action.

mod rebuild;
mod rejection;

pub use rejection::{CheckpointAccepted, CheckpointRejection};

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{Added, ArchiverError, Disposition, ProposedCheckpointInput, StoredHeader};
use tandem_p2p::{AllNodesCheckpointHandler, PeerId, Verified};
use tandem_proto::{
    Address, B256, Block, CheckpointProposal, DEFAULT_MAX_CHECKPOINT_BODY_BYTES,
    MAX_BLOCKS_PER_CHECKPOINT, MAX_FEE_ASSET_PRICE_MODIFIER_BPS, checkpoint_header_of,
    time::{Slot, Timestamp},
};

use crate::{
    context::{ValidatorContext, ValidatorEvent},
    metrics,
    recent::RecentBySlot,
    wait::{next_change, wait_until},
};
use rebuild::first_difference;

/// Slots of checkpoint verdicts kept behind the newest slot seen.
const VERDICT_RETAINED_SLOTS: u64 = 4;

/// The protocol limits a checkpoint is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointRules {
    /// Most blocks per checkpoint (the timetable's, at most [`MAX_BLOCKS_PER_CHECKPOINT`]).
    pub max_blocks_per_checkpoint: u64,
    /// The protocol's `max_checkpoint_body_bytes`.
    pub max_body_bytes: usize,
}

impl Default for CheckpointRules {
    fn default() -> Self {
        Self {
            max_blocks_per_checkpoint: MAX_BLOCKS_PER_CHECKPOINT as u64,
            max_body_bytes: DEFAULT_MAX_CHECKPOINT_BODY_BYTES,
        }
    }
}

/// A verdict of the all-nodes handler.
pub type CheckpointVerdict = Result<CheckpointAccepted, CheckpointRejection>;

/// Verdicts by payload hash, shared with the validator handler.
pub(crate) type CheckpointVerdicts = RecentBySlot<CheckpointVerdict>;

pub(crate) type SharedVerdicts = Arc<Mutex<CheckpointVerdicts>>;

pub(crate) fn lock(verdicts: &SharedVerdicts) -> std::sync::MutexGuard<'_, CheckpointVerdicts> {
    verdicts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Validates checkpoint proposals and stores the valid ones; cheap to clone. Register it with
/// p2p as the all-nodes checkpoint handler.
#[derive(Clone)]
pub struct AllNodesCheckpointProcessor {
    inner: Arc<Inner>,
}

struct Inner {
    context: ValidatorContext,
    rules: CheckpointRules,
    own: Vec<Address>,
    verdicts: SharedVerdicts,
}

impl std::fmt::Debug for AllNodesCheckpointProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllNodesCheckpointProcessor")
            .field("rules", &self.inner.rules)
            .finish_non_exhaustive()
    }
}

impl AllNodesCheckpointProcessor {
    /// A processor checking against `rules`; `own` are this node's validator addresses (its
    /// own proposals are recognised; empty on a full node).
    pub fn new(context: &ValidatorContext, rules: CheckpointRules, own: Vec<Address>) -> Self {
        Self {
            inner: Arc::new(Inner {
                context: context.clone(),
                rules,
                own,
                verdicts: Arc::new(Mutex::new(RecentBySlot::new(VERDICT_RETAINED_SLOTS))),
            }),
        }
    }

    pub(crate) fn verdicts(&self) -> SharedVerdicts {
        Arc::clone(&self.inner.verdicts)
    }

    /// The cached verdict of the proposal with this payload hash.
    pub fn verdict(&self, payload_hash: &B256) -> Option<CheckpointVerdict> {
        lock(&self.inner.verdicts).get(payload_hash)
    }

    /// Validates (once per payload) and stores a proposal signed by `proposer`.
    pub async fn process(
        &self,
        proposal: &CheckpointProposal,
        proposer: Address,
        source: Option<PeerId>,
        received_at: Timestamp,
        deadline: Timestamp,
    ) -> CheckpointVerdict {
        let payload_hash = proposal.payload.payload_hash();
        if let Some(verdict) = self.verdict(&payload_hash) {
            return verdict;
        }
        let context = &self.inner.context;
        let slot = Slot(proposal.payload.header.slot);
        // Its blocks are no orphans while it is being validated.
        let _ = context.archive.note_checkpoint_proposal_seen(slot).await;
        let started = Instant::now();
        let verdict = match self.validate(proposal, proposer, deadline).await {
            Ok(verdict) => verdict,
            Err(err) => {
                // A store failed: no verdict is cached, a later copy may be validated.
                tracing::error!(target: "validator::checkpoint", slot = slot.0, error = %err, "could not validate checkpoint proposal");
                metrics::checkpoint_validation("error");
                return Err(CheckpointRejection::StoreRefused(err));
            }
        };
        let label = match &verdict {
            Ok(CheckpointAccepted::Own) => "own",
            Ok(_) => "valid",
            Err(rejection) => rejection.as_str(),
        };
        metrics::checkpoint_validation(label);
        match &verdict {
            Ok(CheckpointAccepted::Own) => {}
            Ok(accepted) => {
                let now = context.clock.now();
                metrics::checkpoint_proposed(received_at.until(now));
                tracing::info!(target: "validator::checkpoint", slot = slot.0, ?accepted, archive = %proposal.payload.archive, elapsed_ms = started.elapsed().as_millis() as u64, "checkpoint proposal validated and stored");
            }
            Err(rejection) => {
                let header = &proposal.payload.header;
                tracing::warn!(
                    target: "validator::checkpoint",
                    reason = rejection.as_str(),
                    slashable = rejection.is_slashable(),
                    evidence = %rejection,
                    slot = slot.0,
                    %payload_hash,
                    archive = %proposal.payload.archive,
                    header_hash = %header.hash(),
                    last_archive = %header.last_archive_root,
                    block_headers_hash = %header.block_headers_hash,
                    body_hash = %header.body_hash,
                    fee_per_mana = %header.fee_per_mana,
                    modifier = proposal.payload.fee_asset_price_modifier,
                    %proposer,
                    peer = ?source,
                    "checkpoint proposal invalid"
                );
                // The proposer's fault, not the relaying peer's (it could not rebuild the
                // header before forwarding). One fault, one record: a refused last block was
                // recorded by the block handler.
                let recorded = matches!(rejection, CheckpointRejection::LastBlockInvalid { .. });
                if rejection.is_slashable() && !recorded {
                    metrics::proposer_fault("checkpoint", rejection.as_str());
                }
            }
        }
        lock(&self.inner.verdicts).insert(slot, payload_hash, verdict.clone());
        context.emit(ValidatorEvent::Checkpoint {
            slot,
            payload_hash,
            proposer,
            outcome: verdict.clone(),
        });
        verdict
    }

    async fn validate(
        &self,
        proposal: &CheckpointProposal,
        proposer: Address,
        deadline: Timestamp,
    ) -> Result<CheckpointVerdict, ArchiverError> {
        let context = &self.inner.context;
        let payload = &proposal.payload;
        let slot = payload.header.slot;
        let reader = context.archive.reader();
        if self.inner.own.contains(&proposer)
            && reader
                .view()?
                .proposed_checkpoint_by_slot(slot)?
                .is_some_and(|stored| stored.payload.archive == payload.archive)
        {
            return Ok(Ok(CheckpointAccepted::Own));
        }
        if payload.fee_asset_price_modifier.unsigned_abs()
            > MAX_FEE_ASSET_PRICE_MODIFIER_BPS.unsigned_abs()
        {
            return Ok(Err(CheckpointRejection::InvalidFeeAssetPriceModifier {
                modifier: payload.fee_asset_price_modifier,
            }));
        }
        // The last block and its blocks are read from one view: a prune between two views
        // could put other blocks at those numbers, and rebuilding from them would give a
        // wrong (slashable) header mismatch. If the chain moved since the block was found,
        // wait for it again.
        let (last, view) = loop {
            if let Err(rejection) = self.await_last_block(payload.archive, deadline).await? {
                return Ok(Err(rejection));
            }
            let view = reader.view()?;
            if let Some(last) = view.header_by_archive(&payload.archive)? {
                break (last, view);
            }
            drop(view);
            if context.clock.now() >= deadline {
                return Ok(Err(CheckpointRejection::LastBlockNotFound {
                    archive: payload.archive,
                }));
            }
        };
        if let Some(record) = view.checkpoint_by_slot(slot)? {
            return Ok(Err(CheckpointRejection::CheckpointAlreadyPublished {
                number: record.number,
            }));
        }
        if last.header.slot != slot {
            return Ok(Err(CheckpointRejection::NoBlocksForSlot {
                block_slot: last.header.slot,
            }));
        }
        let count = u64::from(last.header.index_within_checkpoint) + 1;
        if count > self.inner.rules.max_blocks_per_checkpoint {
            return Ok(Err(CheckpointRejection::TooManyBlocksInCheckpoint {
                count,
                max: self.inner.rules.max_blocks_per_checkpoint,
            }));
        }
        let last_number = last.header.block_number;
        let Some(start) = last_number
            .checked_sub(count - 1)
            .filter(|start| *start > 0)
        else {
            return Ok(Err(CheckpointRejection::BlocksInconsistent {
                number: last_number,
            }));
        };
        let mut blocks: Vec<Block> = Vec::new();
        for (index, number) in (start..=last_number).enumerate() {
            // One snapshot holds the last block, so it holds every block below it.
            let stored = view.block(number)?.ok_or(ArchiverError::Corrupt(
                "a block below a stored block is missing",
            ))?;
            let header = &stored.block.header;
            if header.checkpoint_number != last.header.checkpoint_number
                || u64::from(header.index_within_checkpoint) != index as u64
                || header.slot != slot
            {
                return Ok(Err(CheckpointRejection::BlocksInconsistent { number }));
            }
            blocks.push(stored.block);
        }
        drop(view);
        let parent_archive = blocks[0].header.last_archive_root;
        let Some((rebuilt, body)) = checkpoint_header_of(parent_archive, &blocks) else {
            // The blocks' mana or fees overflow: no header can claim them.
            return Ok(Err(CheckpointRejection::CheckpointHeaderMismatch {
                field: "total_mana_used",
            }));
        };
        if body.len() > self.inner.rules.max_body_bytes {
            return Ok(Err(CheckpointRejection::BodyTooLarge {
                size: body.len(),
                max: self.inner.rules.max_body_bytes,
            }));
        }
        if let Some(field) = first_difference(&payload.header, &rebuilt) {
            return Ok(Err(CheckpointRejection::CheckpointHeaderMismatch { field }));
        }
        if last.archive_root != payload.archive {
            return Ok(Err(CheckpointRejection::ArchiveMismatch {
                claimed: payload.archive,
                rebuilt: last.archive_root,
            }));
        }
        let input = ProposedCheckpointInput {
            number: last.header.checkpoint_number,
            payload: payload.clone(),
            start_block: start,
            block_count: count,
            proposer_signature: proposal.signature,
        };
        self.store(input, deadline).await
    }

    /// The stored block with archive `archive`, or why there is none: waits for the block
    /// handler until the deadline, and stops at once if it refused that block.
    async fn await_last_block(
        &self,
        archive: B256,
        deadline: Timestamp,
    ) -> Result<Result<StoredHeader, CheckpointRejection>, ArchiverError> {
        let context = &self.inner.context;
        let reader = context.archive.reader();
        let mut changes = (context.archive.watch_tips(), context.watch_verdicts());
        let mut found = None;
        let mut refused = None;
        wait_until(context.clock.as_ref(), deadline, &mut changes, || {
            found = reader.view()?.header_by_archive(&archive)?;
            if found.is_none()
                && let Some(Err(rejection)) = context.block_verdict(&archive)
            {
                refused = Some(rejection);
            }
            Ok::<_, ArchiverError>(found.is_some() || refused.is_some())
        })
        .await?;
        Ok(match (found, refused) {
            (Some(found), _) => Ok(found),
            (None, Some(rejection)) => Err(CheckpointRejection::LastBlockInvalid {
                reason: rejection.as_str(),
                slashable: rejection.is_slashable(),
            }),
            (None, None) => Err(CheckpointRejection::LastBlockNotFound { archive }),
        })
    }

    /// Stores the validated checkpoint, waiting (within the deadline) while the archiver says
    /// to retry (the previous checkpoint's proposal not stored yet).
    async fn store(
        &self,
        input: ProposedCheckpointInput,
        deadline: Timestamp,
    ) -> Result<CheckpointVerdict, ArchiverError> {
        let context = &self.inner.context;
        let mut tips = context.archive.watch_tips();
        loop {
            tips.borrow_and_update();
            match context.archive.add_proposed_checkpoint(input.clone()).await {
                Ok(Added::Stored(stored)) => {
                    return Ok(Ok(CheckpointAccepted::Stored {
                        number: stored.number,
                    }));
                }
                Ok(Added::AlreadyStored(stored)) => {
                    return Ok(Ok(CheckpointAccepted::AlreadyStored {
                        number: stored.number,
                    }));
                }
                Err(err) => match err.disposition() {
                    Disposition::Fatal => return Err(err),
                    Disposition::Reject => return Ok(Err(CheckpointRejection::StoreRefused(err))),
                    Disposition::RetryLater => {
                        if !next_change(context.clock.as_ref(), deadline, &mut tips).await {
                            return Ok(Err(CheckpointRejection::PreviousCheckpointMissing));
                        }
                    }
                },
            }
        }
    }
}

impl AllNodesCheckpointHandler for AllNodesCheckpointProcessor {
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
        deadline: Timestamp,
    ) -> BoxFuture<'static, ()> {
        let processor = self.clone();
        async move {
            let _ = processor
                .process(
                    &proposal,
                    proposal.signer(),
                    proposal.source(),
                    proposal.received_at(),
                    deadline,
                )
                .await;
        }
        .boxed()
    }
}
