//! The block handler's waits on the archiver, each bounded by the proposal's deadline and woken
//! by the store's changes: the parent block, the parent checkpoint (for the fee check), the
//! block number free.

use tandem_archiver::{ArchiverError, StoredHeader};
use tandem_proto::{BlockId, BlockProposal, time::Timestamp};

use super::{BlockProposalProcessor, BlockRejection, Stop};
use crate::{
    fees::{FeeBasis, required_fee_per_mana},
    wait::wait_until,
};

impl BlockProposalProcessor {
    /// The parent by archive, waiting for the archiver to store it.
    pub(super) async fn await_parent(
        &self,
        proposal: &BlockProposal,
        deadline: Timestamp,
    ) -> Result<StoredHeader, Stop> {
        let context = &self.inner.context;
        let archive = proposal.header.last_archive_root;
        let reader = context.archive.reader();
        let mut found = None;
        let mut refused = None;
        let mut changes = (context.archive.watch_tips(), context.watch_verdicts());
        wait_until(context.clock.as_ref(), deadline, &mut changes, || {
            found = reader.view()?.header_by_archive(&archive)?;
            // A refused parent is never stored. An unsigned proposal's claimed archive proves
            // nothing, so its refusal does not count.
            if found.is_none()
                && let Some(Err(rejection)) = context.block_verdict(&archive)
                && !matches!(rejection, BlockRejection::InvalidSignature)
            {
                refused = Some(rejection.as_str());
            }
            Ok::<_, ArchiverError>(found.is_some() || refused.is_some())
        })
        .await?;
        match (found, refused) {
            (Some(found), _) => Ok(found),
            (None, Some(parent_reason)) => Err(BlockRejection::ParentBlockInvalid {
                last_archive_root: archive,
                parent_reason,
            }
            .into()),
            (None, None) => Err(BlockRejection::ParentBlockNotFound {
                last_archive_root: archive,
            }
            .into()),
        }
    }

    /// The first block's fee against L1's fee model after the parent checkpoint, which must be
    /// on L1 or stored as a proposed checkpoint (waited for until the deadline: its proposal
    /// may still be in the all-nodes handler).
    pub(super) async fn check_fee(
        &self,
        proposal: &BlockProposal,
        parent_checkpoint: u64,
        deadline: Timestamp,
    ) -> Result<(), Stop> {
        let context = &self.inner.context;
        let reader = context.archive.reader();
        let mut basis = None;
        let mut tips = context.archive.watch_tips();
        wait_until(context.clock.as_ref(), deadline, &mut tips, || {
            basis = FeeBasis::read(&reader.view()?, parent_checkpoint)?;
            Ok::<_, ArchiverError>(basis.is_some())
        })
        .await?;
        let Some(basis) = basis else {
            return Err(BlockRejection::ParentCheckpointNotFound {
                number: parent_checkpoint,
            }
            .into());
        };
        let claimed = proposal.header.fee_per_mana;
        match required_fee_per_mana(context.fees.as_ref(), &basis).await {
            Ok(expected) if expected == claimed => Ok(()),
            Ok(expected) => Err(BlockRejection::FeePerManaMismatch { expected, claimed }.into()),
            // Not the proposer's fault that we cannot tell, but a verdict all the same: the
            // node says (log, metric) why it does not validate this checkpoint.
            Err(unknown) => {
                tracing::warn!(target: "validator::block", slot = proposal.header.slot, number = proposal.header.block_number, error = %unknown, "cannot derive the required fee; block refused as fee_unavailable");
                crate::metrics::fee_unavailable();
                Err(BlockRejection::FeeUnavailable(unknown).into())
            }
        }
    }

    /// Waits until no other block holds the proposal's number (a prune may remove it); the
    /// same block stored already stops processing as done.
    pub(super) async fn await_number_free(
        &self,
        proposal: &BlockProposal,
        deadline: Timestamp,
    ) -> Result<(), Stop> {
        let context = &self.inner.context;
        let number = proposal.header.block_number;
        let hash = proposal.header.hash();
        let reader = context.archive.reader();
        let mut stored = None;
        let mut tips = context.archive.watch_tips();
        wait_until(context.clock.as_ref(), deadline, &mut tips, || {
            stored = reader.view()?.block_hash(number)?;
            Ok::<_, ArchiverError>(stored.is_none_or(|stored| stored == hash))
        })
        .await?;
        match stored {
            None => Ok(()),
            Some(stored) if stored == hash => Err(Stop::AlreadyStored(BlockId { number, hash })),
            Some(stored) => Err(BlockRejection::BlockNumberAlreadyExists { number, stored }.into()),
        }
    }
}
