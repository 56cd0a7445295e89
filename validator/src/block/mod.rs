//! The block proposal handler (every node): the checks of reference §7.1 in its order, then
//! re-execution on a fork of the parent, then the executed block to the state service and the
//! block to the archiver as a proposed block.
//!
//! 1. duplicate tx hashes (`duplicate_txs`);
//! 2. the parent by `last_archive_root`, waiting (until the slot's attestation deadline) for it
//!    to be stored — woken by the archiver's tips, never by polling L1
//!    (`parent_block_not_found`; at once `parent_block_invalid` when that parent was refused
//!    here); its slot not after the proposal's (`parent_block_wrong_slot`);
//! 3. the block number free, or waiting for a prune (`block_number_already_exists`); the same
//!    block stored already is done;
//! 4. the embedded txs' senders recovered, the pool's known ones reused
//!    (`invalid_embedded_txs`);
//! 5. global variables from the parent: index 0 opens the next checkpoint in a later slot,
//!    others continue the parent's checkpoint with its globals; timestamp = slot start
//!    (`global_variables_mismatch`);
//!    and for a checkpoint's first block the fee per mana L1's fee model requires after the
//!    parent checkpoint (`fee_per_mana_mismatch`; `parent_checkpoint_not_found` when that
//!    checkpoint is neither on L1 nor proposed by the deadline);
//! 6. all the txs protected in the pool (a guard: released whichever way processing ends,
//!    cancellation included, or once a stored block is applied); the rest of the txs pooled,
//!    else fetched from the sending peer (`txs_not_available`);
//! 7. the world state at the parent (waiting for the follower to apply it), fork, re-execute
//!    with the deadline (`initial_state_mismatch`, `failed_txs`, `timeout`, `state_mismatch`);
//! 8. the executed block to the state service (so it is never executed twice), then the block
//!    to the archiver with its proposer signature.
//!
//! A slashable refusal is recorded against the proposer (metric, log with its address and the
//! evidence), not charged to the peer that relayed it: gossip forwards a correctly signed
//! proposal before re-execution, so an honest relay cannot have known. Every verdict is a metric, a log line with
//! the evidence and a [`crate::ValidatorEvent`].

mod rejection;
mod waits;

pub use rejection::{BlockRejection, StateMismatch};

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroUsize,
    sync::Arc,
    time::Instant,
};

use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{Added, ArchiverError, ProposedBlock};
use tandem_p2p::{BlockProposalHandler, PeerId, Verified};
use tandem_proto::{
    Address, B256, BlockId, BlockProposal, RecoveredTx, Tx,
    time::{Slot, Timestamp},
};
use tandem_state::{BlockGlobals, ExecutedBlock, recover_txs, reexecute};

use crate::{
    context::{BlockOutcome, ValidatorContext, ValidatorEvent},
    error::ValidatorError,
    metrics,
};

/// Handles block proposals; cheap to clone. Register it with p2p as the block proposal handler.
#[derive(Clone)]
pub struct BlockProposalProcessor {
    inner: Arc<Inner>,
}

struct Inner {
    context: ValidatorContext,
    threads: NonZeroUsize,
}

impl std::fmt::Debug for BlockProposalProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockProposalProcessor")
            .finish_non_exhaustive()
    }
}

/// Why processing stopped early, besides a verdict.
enum Stop {
    Refused(BlockRejection),
    AlreadyStored(BlockId),
    /// A store or the state service failed (not the proposal's fault).
    Failed(ValidatorError),
}

impl From<BlockRejection> for Stop {
    fn from(rejection: BlockRejection) -> Self {
        Self::Refused(rejection)
    }
}

impl From<ValidatorError> for Stop {
    fn from(err: ValidatorError) -> Self {
        Self::Failed(err)
    }
}

impl From<ArchiverError> for Stop {
    fn from(err: ArchiverError) -> Self {
        Self::Failed(err.into())
    }
}

impl From<tandem_state::StateError> for Stop {
    fn from(err: tandem_state::StateError) -> Self {
        Self::Failed(err.into())
    }
}

impl BlockProposalProcessor {
    /// A processor on `context`, recovering tx senders on one thread per core.
    pub fn new(context: &ValidatorContext) -> Self {
        Self {
            inner: Arc::new(Inner {
                context: context.clone(),
                threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            }),
        }
    }

    /// Processes a proposal whose proposer signature was not checked yet (fetched over
    /// req/resp, say): recovers it first.
    pub async fn process_unverified(
        &self,
        proposal: &BlockProposal,
        source: Option<PeerId>,
        deadline: Timestamp,
    ) -> BlockOutcome {
        match proposal.recover_proposer(&self.inner.context.domain) {
            Ok(signer) => self.process(proposal, signer, source, deadline).await,
            Err(_) => {
                let outcome = BlockOutcome::Refused(BlockRejection::InvalidSignature);
                self.report(proposal, Address::ZERO, source, &outcome, Instant::now())
                    .await;
                outcome
            }
        }
    }

    /// Processes a proposal signed by `proposer`, received from `source`, within `deadline`.
    pub async fn process(
        &self,
        proposal: &BlockProposal,
        proposer: Address,
        source: Option<PeerId>,
        deadline: Timestamp,
    ) -> BlockOutcome {
        let started = Instant::now();
        let outcome = match self.run(proposal, source, deadline).await {
            Ok(id) => BlockOutcome::Stored(id),
            Err(Stop::AlreadyStored(id)) => BlockOutcome::AlreadyStored(id),
            Err(Stop::Refused(rejection)) => BlockOutcome::Refused(rejection),
            Err(Stop::Failed(err)) => {
                // Not the proposal's fault: no verdict, no penalty; the chain follower or a
                // later copy will sort it out.
                tracing::error!(target: "validator::block", slot = proposal.header.slot, number = proposal.header.block_number, error = %err, "could not process block proposal");
                metrics::block_proposal("error", started.elapsed());
                return BlockOutcome::Failed;
            }
        };
        self.report(proposal, proposer, source, &outcome, started)
            .await;
        outcome
    }

    async fn report(
        &self,
        proposal: &BlockProposal,
        proposer: Address,
        source: Option<PeerId>,
        outcome: &BlockOutcome,
        started: Instant,
    ) {
        let context = &self.inner.context;
        let header = &proposal.header;
        let slot = Slot(header.slot);
        let (label, verdict) = match outcome {
            BlockOutcome::Stored(id) => ("valid", Ok(*id)),
            BlockOutcome::AlreadyStored(id) => ("already_stored", Ok(*id)),
            BlockOutcome::Refused(rejection) => (rejection.as_str(), Err(rejection.clone())),
            BlockOutcome::Failed => return,
        };
        metrics::block_proposal(label, started.elapsed());
        match outcome {
            BlockOutcome::Stored(id) => {
                tracing::debug!(target: "validator::block", slot = header.slot, index = header.index_within_checkpoint, number = id.number, hash = %id.hash, txs = proposal.tx_hashes.len(), elapsed_ms = started.elapsed().as_millis() as u64, "block proposal stored");
            }
            BlockOutcome::AlreadyStored(_) | BlockOutcome::Failed => {}
            BlockOutcome::Refused(rejection) => {
                let slashable = rejection.is_slashable();
                tracing::warn!(
                    target: "validator::block",
                    reason = rejection.as_str(),
                    slashable,
                    evidence = %rejection,
                    slot = header.slot,
                    index = header.index_within_checkpoint,
                    number = header.block_number,
                    hash = %header.hash(),
                    archive = %proposal.archive_root,
                    last_archive = %header.last_archive_root,
                    %proposer,
                    peer = ?source,
                    "block proposal refused"
                );
                // The fault is the proposer's (its signature is the evidence), found after
                // gossip accepted and relayed the proposal: the relaying peer could not have
                // re-executed before forwarding, so it is not charged (p2p charges what it
                // checks at gossip).
                if slashable {
                    metrics::proposer_fault("block", rejection.as_str());
                }
            }
        }
        context.record_block(slot, proposal.archive_root, verdict);
        context.emit(ValidatorEvent::Block {
            slot,
            index: header.index_within_checkpoint,
            archive: proposal.archive_root,
            proposer,
            outcome: outcome.clone(),
        });
    }

    async fn run(
        &self,
        proposal: &BlockProposal,
        source: Option<PeerId>,
        deadline: Timestamp,
    ) -> Result<BlockId, Stop> {
        let context = &self.inner.context;
        let header = &proposal.header;
        let mut seen = HashSet::with_capacity(proposal.tx_hashes.len());
        if let Some(hash) = proposal.tx_hashes.iter().find(|hash| !seen.insert(**hash)) {
            return Err(BlockRejection::DuplicateTxs { hash: *hash }.into());
        }

        let parent = self.await_parent(proposal, deadline).await?;
        if parent.header.slot > header.slot {
            return Err(BlockRejection::ParentBlockWrongSlot {
                parent_slot: parent.header.slot,
                slot: header.slot,
            }
            .into());
        }
        let number = parent.header.block_number.checked_add(1).ok_or(
            BlockRejection::GlobalVariablesMismatch {
                field: "block_number",
            },
        )?;
        if header.block_number != number {
            return Err(BlockRejection::GlobalVariablesMismatch {
                field: "block_number",
            }
            .into());
        }
        self.await_number_free(proposal, deadline).await?;

        // §7.1 order: the embedded txs (stateless), then the globals, and only then the fetch
        // of what is missing — a bad embedded tx is slashable whatever else is missing, and a
        // cheap globals refusal does not wait behind a req/resp round.
        let embedded = self.recover_embedded(proposal).await??;
        let expected = self.expected_globals(proposal, &parent.header)?;
        if let Some(field) = expected.first_mismatch(header) {
            return Err(BlockRejection::GlobalVariablesMismatch { field }.into());
        }
        if header.index_within_checkpoint == 0 {
            // Later blocks carry index 0's fee (a global, compared above).
            self.check_fee(proposal, parent.header.checkpoint_number, deadline)
                .await?;
        }
        // Protected from here (pooled ones cannot be evicted or replaced while the rest are
        // fetched) until the guard drops: on any early return or if this future is cancelled
        // at the lane deadline; a stored block hands it to the state service until applied.
        let protection = context.state.protect(proposal.tx_hashes.clone());
        let txs = self.collect_txs(proposal, source).await?;

        let parent_id = BlockId {
            number: parent.header.block_number,
            hash: parent.hash,
        };
        let reader = context.state.reader();
        if !reader
            .wait_for_block(
                parent_id.number,
                parent_id.hash,
                context.clock.as_ref(),
                deadline,
            )
            .await?
        {
            return Err(BlockRejection::InitialStateMismatch {
                parent: parent_id.number,
            }
            .into());
        }
        let fork =
            reader
                .fork(parent_id.number)
                .map_err(|_| BlockRejection::InitialStateMismatch {
                    parent: parent_id.number,
                })?;
        let (executed, recovered) = self
            .reexecute(fork, proposal, txs, embedded, expected, deadline)
            .await??;
        if executed.archive_root() != proposal.archive_root {
            return Err(BlockRejection::StateMismatch(StateMismatch::Archive {
                claimed: proposal.archive_root,
                computed: executed.archive_root(),
            })
            .into());
        }
        let id = BlockId {
            number,
            hash: executed.block().hash(),
        };
        // The state service first: when the archiver's change wakes the follower, the
        // executed block is already there.
        context
            .state
            .submit_executed(executed, recovered.clone())
            .await?;
        let stored = context
            .archive
            .add_block(ProposedBlock {
                header: header.clone(),
                txs: recovered,
                proposer_signature: proposal.signature,
            })
            .await;
        match stored {
            // Stored: the state service protects the txs until it applies the block. Every
            // other exit drops the guard here.
            Ok(Added::Stored(_)) => {
                context
                    .state
                    .hand_over_protection(id.hash, protection)
                    .await;
                Ok(id)
            }
            Ok(Added::AlreadyStored(_)) => Err(Stop::AlreadyStored(id)),
            Err(ArchiverError::BlockNumberAlreadyExists { number }) => {
                let stored = context
                    .archive
                    .reader()
                    .view()?
                    .block_hash(number)?
                    .unwrap_or_default();
                Err(BlockRejection::BlockNumberAlreadyExists { number, stored }.into())
            }
            Err(err) if err.is_fatal() => Err(err.into()),
            Err(err) => Err(BlockRejection::StoreRefused(err).into()),
        }
    }

    /// The proposal's txs in order: embedded, else pooled, else from the sending peer.
    async fn collect_txs(
        &self,
        proposal: &BlockProposal,
        source: Option<PeerId>,
    ) -> Result<Vec<Tx>, Stop> {
        if proposal.txs.len() == proposal.tx_hashes.len() {
            return Ok(proposal.txs.clone());
        }
        let context = &self.inner.context;
        let embedded: HashMap<B256, &Tx> = proposal.txs.iter().map(|tx| (tx.hash(), tx)).collect();
        let reader = context.state.reader();
        let mut txs: Vec<Option<Tx>> = proposal
            .tx_hashes
            .iter()
            .map(|hash| {
                embedded
                    .get(hash)
                    .map(|tx| (*tx).clone())
                    .or_else(|| reader.pooled_tx(hash).map(RecoveredTx::into_tx))
            })
            .collect();
        let missing: Vec<B256> = proposal
            .tx_hashes
            .iter()
            .zip(&txs)
            .filter(|(_, tx)| tx.is_none())
            .map(|(hash, _)| *hash)
            .collect();
        if !missing.is_empty() {
            let fetched = context
                .network
                .request_txs(source, missing)
                .await
                .unwrap_or_default();
            let fetched: HashMap<B256, Tx> =
                fetched.into_iter().map(|tx| (tx.hash(), tx)).collect();
            for (slot, hash) in txs.iter_mut().zip(&proposal.tx_hashes) {
                if slot.is_none() {
                    *slot = fetched.get(hash).cloned();
                }
            }
        }
        let missing = txs.iter().filter(|tx| tx.is_none()).count();
        if missing > 0 {
            return Err(BlockRejection::TxsNotAvailable { missing }.into());
        }
        Ok(txs.into_iter().flatten().collect())
    }

    /// The globals the parent and the slot make the block's: index 0 opens the next checkpoint
    /// in a later slot (the proposer picks coinbase, fee recipient and fee), any other index
    /// continues the parent's checkpoint with all its globals.
    fn expected_globals(
        &self,
        proposal: &BlockProposal,
        parent: &tandem_proto::BlockHeader,
    ) -> Result<BlockGlobals, BlockRejection> {
        let header = &proposal.header;
        let mismatch = |field| BlockRejection::GlobalVariablesMismatch { field };
        let slot_start = self
            .inner
            .context
            .windows
            .slot_clock()
            .slot_start(Slot(header.slot))
            .as_secs();
        if header.index_within_checkpoint == 0 {
            if header.slot <= parent.slot && parent.block_number != 0 {
                return Err(mismatch("slot"));
            }
            Ok(BlockGlobals {
                checkpoint_number: parent
                    .checkpoint_number
                    .checked_add(1)
                    .ok_or(mismatch("checkpoint_number"))?,
                index_within_checkpoint: 0,
                slot: header.slot,
                timestamp: slot_start,
                coinbase: header.coinbase,
                fee_recipient: header.fee_recipient,
                fee_per_mana: header.fee_per_mana,
            })
        } else {
            Ok(BlockGlobals {
                checkpoint_number: parent.checkpoint_number,
                index_within_checkpoint: parent
                    .index_within_checkpoint
                    .checked_add(1)
                    .ok_or(mismatch("index_within_checkpoint"))?,
                slot: parent.slot,
                timestamp: parent.timestamp,
                coinbase: parent.coinbase,
                fee_recipient: parent.fee_recipient,
                fee_per_mana: parent.fee_per_mana,
            })
        }
    }

    /// Recovers the senders of the embedded txs (the pool's known ones reused), off the async
    /// workers: `invalid_embedded_txs` with the tx's position in the block.
    async fn recover_embedded(
        &self,
        proposal: &BlockProposal,
    ) -> Result<Result<HashMap<B256, RecoveredTx>, BlockRejection>, Stop> {
        let context = &self.inner.context;
        // Senders the pool knows (gossiped txs) need no recovery; copied out so the pool is
        // not locked while the rest are recovered.
        let known: HashMap<B256, RecoveredTx> = context.state.reader().with_pool(|pool, _world| {
            proposal
                .txs
                .iter()
                .filter_map(|tx| {
                    let hash = tx.hash();
                    pool.get(&hash).map(|tx| (hash, tx.clone()))
                })
                .collect()
        });
        let txs = proposal.txs.clone();
        let positions = proposal.tx_hashes.clone();
        let domain = context.domain;
        let threads = self.inner.threads;
        tokio::task::spawn_blocking(move || {
            let hashes: Vec<B256> = txs.iter().map(Tx::hash).collect();
            match recover_txs(txs, &domain, &|hash| known.get(hash).cloned(), threads) {
                Ok(recovered) => Ok(hashes.into_iter().zip(recovered).collect()),
                Err((index, error)) => {
                    let position = hashes
                        .get(index)
                        .and_then(|hash| positions.iter().position(|h| h == hash))
                        .unwrap_or(index);
                    Err(BlockRejection::InvalidEmbeddedTxs {
                        index: Some(position),
                        error: Some(error),
                    })
                }
            }
        })
        .await
        .map_err(|_| Stop::Failed(ValidatorError::TaskFailed("embedded tx recovery")))
    }

    /// Recovers the senders of the txs not recovered yet (pooled and fetched ones) and
    /// re-executes on the fork, off the async workers.
    async fn reexecute(
        &self,
        mut fork: tandem_state::Fork,
        proposal: &BlockProposal,
        txs: Vec<Tx>,
        mut known: HashMap<B256, RecoveredTx>,
        expected: BlockGlobals,
        deadline: Timestamp,
    ) -> Result<Result<(ExecutedBlock, Vec<RecoveredTx>), BlockRejection>, Stop> {
        let context = &self.inner.context;
        // Pooled senders need no recovery either; copied out so the pool is not locked while
        // the rest are recovered.
        context.state.reader().with_pool(|pool, _world| {
            for hash in &proposal.tx_hashes {
                if !known.contains_key(hash)
                    && let Some(tx) = pool.get(hash)
                {
                    known.insert(*hash, tx.clone());
                }
            }
        });
        let domain = context.domain;
        let threads = self.inner.threads;
        let clock = Arc::clone(&context.clock);
        let header = proposal.header.clone();
        let parent = fork.block_number();
        tokio::task::spawn_blocking(move || {
            let recovered = recover_txs(txs, &domain, &|hash| known.get(hash).cloned(), threads);
            let recovered =
                recovered.map_err(|(index, error)| BlockRejection::InvalidEmbeddedTxs {
                    index: Some(index),
                    error: Some(error),
                })?;
            let executed = reexecute(
                &mut fork,
                &header,
                &recovered,
                Some(&expected),
                deadline,
                clock.as_ref(),
            )
            .map_err(|err| BlockRejection::from_reexecution(err, parent))?;
            Ok((executed, recovered))
        })
        .await
        .map_err(|_| Stop::Failed(ValidatorError::TaskFailed("block re-execution")))
    }
}

impl BlockProposalHandler for BlockProposalProcessor {
    fn on_block_proposal(
        &self,
        proposal: Verified<BlockProposal>,
        deadline: Timestamp,
    ) -> BoxFuture<'static, ()> {
        let processor = self.clone();
        async move {
            processor
                .process(&proposal, proposal.signer(), proposal.source(), deadline)
                .await;
        }
        .boxed()
    }
}
