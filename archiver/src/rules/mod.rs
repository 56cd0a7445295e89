//! The insertion rules, as pure functions over the chain state and what is stored (passed in as
//! values or lookups), so they can be tested without RocksDB. They decide; the store writes.

use tandem_proto::{B256, BlockHeader, ConsensusPayload, block_headers_hash};

use crate::{
    chain::ChainState,
    error::{ArchiverError, ArchiverResult},
    records::{AwaitingCheckpoint, CheckpointRecord, ProposedCheckpoint},
    tables::{AwaitingCheckpoints, Checkpoints, ProposedCheckpoints, Reads},
};

/// Default of [`Limits::max_proposed_depth`]: under pipelining two checkpoints sit above the
/// checkpointed tip (the one on its way to L1 and the one built on it), plus one slot of L1
/// sync lag.
pub const DEFAULT_MAX_PROPOSED_DEPTH: u64 = 3;

/// Bounds on what the store holds above the checkpointed tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most checkpoints (proposed, or only blocks) above the checkpointed tip: while L1 cannot
    /// be followed, nothing settles, so what stacks up is capped here.
    pub(crate) max_proposed_depth: u64,
}

impl Limits {
    /// Refuses (retry later) checkpoint `checkpoint` if it is too far above the checkpointed
    /// tip; `block` names the block that claims it, if any.
    pub(crate) fn check_depth(
        &self,
        chain: &ChainState,
        checkpoint: u64,
        block: Option<u64>,
    ) -> ArchiverResult<()> {
        let checkpointed = chain.checkpointed.number;
        if checkpoint.saturating_sub(checkpointed) > self.max_proposed_depth {
            return Err(ArchiverError::TooFarAboveCheckpointed {
                checkpoint,
                block,
                checkpointed,
                max_depth: self.max_proposed_depth,
            });
        }
        Ok(())
    }
}

/// The stored records the checkpoint rules compare a claim with.
pub(crate) trait StoredCheckpoints {
    /// The L1 checkpoint `number`.
    fn l1_checkpoint(&self, number: u64) -> ArchiverResult<Option<CheckpointRecord>>;
    /// The proposed checkpoint `number`.
    fn proposed_checkpoint(&self, number: u64) -> ArchiverResult<Option<ProposedCheckpoint>>;
    /// The L1 checkpoint `number` awaiting its body.
    fn awaiting_checkpoint(&self, number: u64) -> ArchiverResult<Option<AwaitingCheckpoint>>;
}

impl<T: Reads> StoredCheckpoints for T {
    fn l1_checkpoint(&self, number: u64) -> ArchiverResult<Option<CheckpointRecord>> {
        self.get::<Checkpoints>(&number)
    }
    fn proposed_checkpoint(&self, number: u64) -> ArchiverResult<Option<ProposedCheckpoint>> {
        self.get::<ProposedCheckpoints>(&number)
    }
    fn awaiting_checkpoint(&self, number: u64) -> ArchiverResult<Option<AwaitingCheckpoint>> {
        self.get::<AwaitingCheckpoints>(&number)
    }
}

/// The chain every stored block must belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainIdentity {
    pub(crate) chain_id: u64,
    pub(crate) rollup_version: u32,
}

impl ChainIdentity {
    pub(crate) fn check(&self, header: &BlockHeader) -> ArchiverResult<()> {
        if header.chain_id != self.chain_id || header.rollup_version != self.rollup_version {
            return Err(ArchiverError::WrongChain {
                block: header.block_number,
                chain_id: header.chain_id,
                rollup_version: header.rollup_version,
            });
        }
        Ok(())
    }
}

/// What to do with a proposed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockDecision {
    /// Append it after the latest block.
    Append,
    /// The identical block is stored.
    AlreadyStored,
}

/// Rules for a proposed block (reference §5.3), in order. `stored_hash(n)` is the hash of the
/// stored block `n` (asked only for `n ≤` the latest block).
pub(crate) fn check_proposed_block(
    chain: &ChainState,
    identity: &ChainIdentity,
    limits: &Limits,
    header: &BlockHeader,
    hash: B256,
    body_matches: bool,
    stored_hash: impl FnOnce(u64) -> ArchiverResult<Option<B256>>,
) -> ArchiverResult<BlockDecision> {
    let number = header.block_number;
    let latest = chain.last.number();
    if number <= latest {
        let stored = stored_hash(number)?.ok_or(ArchiverError::Corrupt(
            "a block below the proposed tip is missing",
        ))?;
        return if stored == hash {
            Ok(BlockDecision::AlreadyStored)
        } else if number <= chain.checkpointed.last_block.number {
            Err(ArchiverError::CannotOverwriteCheckpointedBlock { number })
        } else if number <= chain.proposed_checkpoint_last_block() {
            Err(ArchiverError::BlockNumberAlreadyExists { number })
        } else {
            // No proposed checkpoint covers the stored block: if its proposal never comes it is
            // an orphan, pruned at its deadline, and this block may then fit.
            Err(ArchiverError::BlockNumberHeldByUncovered { number })
        };
    }
    if number != latest + 1 {
        return Err(ArchiverError::ParentNotStored { number, latest });
    }
    identity.check(header)?;
    let checkpoint = header.checkpoint_number;
    let parent_ok = checkpoint == chain.checkpointed.number + 1
        || (checkpoint > 0 && chain.proposed.contains_key(&(checkpoint - 1)));
    if !parent_ok {
        return Err(ArchiverError::BlockCheckpointNumberNotSequential {
            block: number,
            checkpoint,
            previous: chain.proposed_checkpoint_number(),
        });
    }
    limits.check_depth(chain, checkpoint, Some(number))?;
    if header.index_within_checkpoint as usize >= tandem_proto::MAX_BLOCKS_PER_CHECKPOINT {
        return Err(ArchiverError::CheckpointTooManyBlocks {
            block: number,
            max: tandem_proto::MAX_BLOCKS_PER_CHECKPOINT,
        });
    }
    if chain.proposed.contains_key(&checkpoint) {
        // A proposed checkpoint's blocks are fixed: nothing can be appended to it.
        return Err(ArchiverError::CheckpointAlreadyProposed {
            block: number,
            checkpoint,
        });
    }
    let previous = &chain.last.header;
    if header.last_archive_root != chain.last.archive_root() {
        return Err(ArchiverError::BlockArchiveNotConsistent { block: number });
    }
    let same_checkpoint = previous.checkpoint_number == checkpoint;
    let expected_index = if same_checkpoint {
        previous.index_within_checkpoint + 1
    } else {
        0
    };
    if header.index_within_checkpoint != expected_index {
        return Err(ArchiverError::BlockIndexNotSequential {
            block: number,
            expected: expected_index,
            got: header.index_within_checkpoint,
        });
    }
    // Blocks of one checkpoint share its globals; a new checkpoint is for a later slot.
    let globals_ok = if same_checkpoint {
        header.shares_checkpoint_globals(previous)
    } else {
        header.slot > previous.slot || number == 1
    };
    if !globals_ok {
        return Err(ArchiverError::BlockGlobalsNotConsistent { block: number });
    }
    if !body_matches {
        return Err(ArchiverError::BodyMismatch { block: number });
    }
    Ok(BlockDecision::Append)
}

/// What to do with a proposed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckpointDecision {
    /// Store it; blocks `end..` (stored but outside the proposal) go in the same batch.
    Add {
        /// First block after the checkpoint's blocks.
        end: u64,
    },
    /// It is stored already (proposed, or on L1).
    AlreadyStored(Box<ProposedCheckpoint>),
}

/// The part of a proposed checkpoint the rules look at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointClaim<'a> {
    pub(crate) number: u64,
    pub(crate) payload: &'a ConsensusPayload,
    pub(crate) start_block: u64,
    pub(crate) block_count: u64,
}

/// Rules for a proposed checkpoint (reference §5.2) up to, not including, the check of its
/// blocks against it ([`verify_checkpoint_blocks`]); `stored` has what is stored at its number.
pub(crate) fn check_proposed_checkpoint(
    chain: &ChainState,
    limits: &Limits,
    claim: CheckpointClaim<'_>,
    stored: &impl StoredCheckpoints,
) -> ArchiverResult<CheckpointDecision> {
    let number = claim.number;
    let same = |payload: &ConsensusPayload, start: u64, count: u64| {
        payload == claim.payload && start == claim.start_block && count == claim.block_count
    };
    if number <= chain.checkpointed.number {
        let record = stored.l1_checkpoint(number)?.ok_or(ArchiverError::Corrupt(
            "a checkpoint below the tip is missing",
        ))?;
        // L1 may know the payload under another modifier only if the calldata was unreadable;
        // header hash and archive are what L1 checked.
        if record.payload.header.hash() == claim.payload.header.hash()
            && record.payload.archive == claim.payload.archive
            && record.start_block == claim.start_block
            && record.block_count == claim.block_count
        {
            return Ok(CheckpointDecision::AlreadyStored(Box::new(
                ProposedCheckpoint {
                    number,
                    payload: record.payload.clone(),
                    start_block: record.start_block,
                    block_count: record.block_count,
                    total_mana_used: record.payload.header.total_mana_used,
                    proposer_signature: Default::default(),
                },
            )));
        }
        return Err(ArchiverError::ProposedCheckpointConflict { number });
    }
    if chain.proposed.contains_key(&number) {
        let record = stored
            .proposed_checkpoint(number)?
            .ok_or(ArchiverError::Corrupt(
                "a proposed checkpoint in memory is not stored",
            ))?;
        if same(&record.payload, record.start_block, record.block_count) {
            return Ok(CheckpointDecision::AlreadyStored(Box::new(record)));
        }
        return Err(ArchiverError::ProposedCheckpointConflict { number });
    }
    let expected = chain.proposed_checkpoint_number() + 1;
    if number != expected {
        return Err(ArchiverError::ProposedCheckpointNotSequential {
            expected,
            got: number,
        });
    }
    limits.check_depth(chain, number, None)?;
    // L1 already fixed this checkpoint (it only lacks a usable body): a proposal that is not
    // L1's can never land, and nothing may build on it.
    if chain.awaiting.contains(&number) {
        let fact = stored
            .awaiting_checkpoint(number)?
            .ok_or(ArchiverError::Corrupt("an awaiting checkpoint is missing"))?;
        if fact.event.header_hash != claim.payload.header.hash()
            || fact.event.archive != claim.payload.archive
        {
            return Err(ArchiverError::ProposedCheckpointConflict { number });
        }
    }
    let fail = |reason| Err(ArchiverError::ProposedCheckpointBlocks { number, reason });
    let Some(end) = claim.start_block.checked_add(claim.block_count) else {
        return fail("start block + block count overflows");
    };
    if claim.block_count == 0 {
        return fail("a checkpoint has at least one block");
    }
    if claim.start_block != chain.proposed_checkpoint_last_block() + 1 {
        return fail("blocks must start right after the parent checkpoint's last block");
    }
    let latest = chain.last.number();
    if end - 1 > latest {
        return Err(ArchiverError::ProposedCheckpointBlockMissing {
            number,
            block: latest + 1,
        });
    }
    Ok(CheckpointDecision::Add { end })
}

/// Checks that `blocks` (header and archive after each) form checkpoint `number` with
/// `payload` on top of the block whose archive is `parent_archive`; returns the mana they used.
/// Every block must carry the header's slot, timestamp, coinbase, fee recipient and fee, and
/// the chain's identity.
pub(crate) fn verify_checkpoint_blocks<'a>(
    number: u64,
    payload: &ConsensusPayload,
    parent_archive: B256,
    identity: &ChainIdentity,
    blocks: impl IntoIterator<Item = (&'a BlockHeader, B256)>,
) -> Result<u64, &'static str> {
    let header = &payload.header;
    if header.last_archive_root != parent_archive {
        return Err("header's last archive is not the parent checkpoint's archive");
    }
    let mut mana: u64 = 0;
    let mut fees: u128 = 0;
    let mut hashes: Vec<B256> = Vec::new();
    let mut last_archive = None;
    for (index, (h, archive_root)) in blocks.into_iter().enumerate() {
        if h.checkpoint_number != number || h.index_within_checkpoint as usize != index {
            return Err("blocks are not indexed 0.. within the checkpoint");
        }
        if h.chain_id != identity.chain_id || h.rollup_version != identity.rollup_version {
            return Err("a block is for another chain or rollup version");
        }
        if h.slot != header.slot
            || h.timestamp != header.timestamp
            || h.coinbase != header.coinbase
            || h.fee_recipient != header.fee_recipient
            || h.fee_per_mana != header.fee_per_mana
        {
            return Err(
                "a block's slot, timestamp, coinbase, fee recipient or fee differs from the header",
            );
        }
        mana = mana
            .checked_add(h.total_mana_used)
            .ok_or("mana overflows")?;
        fees = fees.checked_add(h.total_fees).ok_or("fees overflow")?;
        hashes.push(h.hash());
        last_archive = Some(archive_root);
    }
    let Some(last_archive) = last_archive else {
        return Err("a checkpoint has at least one block");
    };
    if last_archive != payload.archive {
        return Err("archive after the last block is not the checkpoint's archive");
    }
    if block_headers_hash(&hashes) != header.block_headers_hash {
        return Err("block headers hash mismatch");
    }
    if mana != header.total_mana_used || fees != header.accumulated_fees {
        return Err("mana or fees do not add up");
    }
    Ok(mana)
}

/// How L1's blocks of a checkpoint relate to the local ones from the first block after the
/// checkpointed tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct L1Plan {
    /// First local block that disagrees with L1 (or a local extra block of this checkpoint):
    /// it and everything after it go.
    pub(crate) first_conflict: Option<u64>,
}

/// Compares L1's block hashes (`l1_hashes[i]` is block `start + i`) with the local ones
/// (`local(n)`: hash and checkpoint number of stored block `n`, for `n ≤ latest`).
pub(crate) fn plan_l1_checkpoint(
    number: u64,
    start: u64,
    l1_hashes: &[B256],
    latest: u64,
    mut local: impl FnMut(u64) -> ArchiverResult<(B256, u64)>,
) -> ArchiverResult<L1Plan> {
    let l1_last = start + l1_hashes.len() as u64 - 1;
    for block in start..=latest.max(l1_last) {
        let local = if block <= latest {
            Some(local(block)?)
        } else {
            None
        };
        let l1 = l1_hashes.get((block - start) as usize);
        match (local, l1) {
            (Some((local, _)), Some(l1)) if local == *l1 => {}
            // A later checkpoint's block after L1's last: local speculation on top, kept.
            (Some((_, checkpoint)), None) if checkpoint != number => break,
            (None, _) => break,
            _ => {
                return Ok(L1Plan {
                    first_conflict: Some(block),
                });
            }
        }
    }
    Ok(L1Plan {
        first_conflict: None,
    })
}

#[cfg(test)]
mod tests;
