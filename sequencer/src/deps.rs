//! What the sequencer needs from the rest of the node, as narrow traits it defines (so its logic
//! is unit-testable without RocksDB, L1 or libp2p), and their implementations over the real
//! parts: the archiver, the state service, the publisher's simulator and queue, and p2p.

use std::sync::Arc;

use alloy::{eips::BlockNumberOrTag, primitives::Bytes};
use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{
    ArchiverHandle, L1Ref, ProposedBlock, ProposedCheckpoint, ProposedCheckpointInput, StoredHeader,
};
use tandem_l1::{ProposeBundle, Rollup, SimulationBase, overrides::SimulationPlan};
use tandem_p2p::{CommitteeSource, P2pHandle};
use tandem_proto::{
    Address, B256, BlockProposal, CheckpointAttestation, CheckpointProposal, ConsensusPayload,
    L2Tips, RecoveredTx, SigningDomain,
    time::{Clock, Slot, SlotClock, Timestamp, Timetable},
};
use tandem_publisher::{
    ProposeSlot, PublisherHandle, SimulationAt, Simulator, SubmissionOutcome, ValidatedHeader,
};
use tandem_state::{ExecutedBlock, Fork, StateTip};
use tandem_validator::{DutySigner, StateHandle};
use tokio::sync::watch;

use crate::error::{SequencerError, SequencerResult};

/// A future of the sequencer's dependencies.
pub type DepFuture<'a, T> = BoxFuture<'a, SequencerResult<T>>;

/// Chain data: the node's archiver (reads off its queue, writes through it).
pub trait ChainStore: Send + Sync + 'static {
    /// The tips now.
    fn tips(&self) -> L2Tips;
    /// Changes with every tip change (the loop ticks on it).
    fn watch_tips(&self) -> watch::Receiver<L2Tips>;
    /// Changes with every newly synced L1 block (the loop ticks on it: the sync guard waits for
    /// one, and an L1 block without a checkpoint leaves the tips as they were).
    fn watch_l1_synced(&self) -> watch::Receiver<Option<L1Ref>>;
    /// A stored block header.
    fn header(&self, number: u64) -> SequencerResult<Option<StoredHeader>>;
    /// A proposed checkpoint by number.
    fn proposed_checkpoint(&self, number: u64) -> SequencerResult<Option<ProposedCheckpoint>>;
    /// Header hash of checkpoint `number` as L1 has it (`None` when it is not on L1).
    fn checkpointed_header_hash(&self, number: u64) -> SequencerResult<Option<B256>>;
    /// The L2 slot up to which the archiver has seen all L1 data.
    fn synced_l2_slot(&self) -> SequencerResult<Option<Slot>>;
    /// Stores a block built here (waits for the write).
    fn add_block(&self, block: ProposedBlock) -> DepFuture<'_, ()>;
    /// Stores the checkpoint built here as a proposed checkpoint (waits for the write).
    fn add_proposed_checkpoint(&self, input: ProposedCheckpointInput) -> DepFuture<'_, ()>;
}

/// World state and tx pool: the node's state service.
pub trait WorldView: Send + Sync + 'static {
    /// The world-state tip.
    fn tip(&self) -> StateTip;
    /// A fork on top of block `number`.
    fn fork(&self, number: u64) -> SequencerResult<Fork>;
    /// Up to `max` pool txs ready to run on `fork`, best first, copied out of the pool (the
    /// build then runs without the pool's lock).
    fn candidates(&self, fork: &Fork, max: usize) -> Vec<RecoveredTx>;
    /// Hands over a block built here, before it is stored in the archiver (the follower applies
    /// it without executing it again).
    fn submit_executed(&self, block: ExecutedBlock, txs: Vec<RecoveredTx>) -> DepFuture<'_, ()>;
}

/// L1 simulations under a plan (the publisher's simulator).
pub trait L1Simulator: Send + Sync + 'static {
    /// The L1 state a plan builds on, read at the latest L1 block.
    fn simulation_base(&self) -> DepFuture<'_, SimulationBase>;
    /// `canProposeAtTime` under `plan`.
    fn can_propose_at<'a>(
        &'a self,
        time: Timestamp,
        archive: B256,
        proposer: Address,
        base: &'a SimulationBase,
        plan: &'a SimulationPlan,
    ) -> DepFuture<'a, ProposeSlot>;
    /// The min fee per mana of the next checkpoint under `plan`.
    fn mana_min_fee<'a>(
        &'a self,
        base: &'a SimulationBase,
        plan: &'a SimulationPlan,
    ) -> DepFuture<'a, u128>;
    /// `validateHeader` under `plan`, as if mined at `time`.
    fn validate_header<'a>(
        &'a self,
        args: &'a Rollup::ProposeArgs,
        body: &'a Bytes,
        time: Timestamp,
        base: &'a SimulationBase,
        plan: &'a SimulationPlan,
    ) -> DepFuture<'a, ValidatedHeader>;
}

/// L1 submission (the publisher).
pub trait Submitter: Send + Sync + 'static {
    /// Queues `bundle` for `target`; resolves once queued, to a future of its outcome.
    fn enqueue(
        &self,
        bundle: ProposeBundle,
        target: Slot,
    ) -> DepFuture<'_, BoxFuture<'static, SubmissionOutcome>>;
    /// Stops every wait of the publisher (shutdown).
    fn interrupt(&self);
}

/// Gossip (p2p).
pub trait Gossip: Send + Sync + 'static {
    /// Gossips a block proposal (carrying its txs).
    fn publish_block_proposal(&self, proposal: BlockProposal) -> DepFuture<'_, ()>;
    /// Gossips a checkpoint proposal (carrying its last block).
    fn publish_checkpoint_proposal(&self, proposal: CheckpointProposal) -> DepFuture<'_, ()>;
    /// Gossips an attestation (it also counts in this node's pool).
    fn publish_attestation(&self, attestation: CheckpointAttestation) -> DepFuture<'_, ()>;
    /// Attestations of `payload` in committee order, at quorum or at `deadline` with whatever
    /// arrived.
    fn collect_attestations<'a>(
        &'a self,
        payload: &'a ConsensusPayload,
        quorum: usize,
        deadline: Timestamp,
    ) -> DepFuture<'a, Vec<CheckpointAttestation>>;
}

/// Everything the sequencer talks to.
#[derive(Clone)]
pub struct SequencerDeps {
    /// The archiver.
    pub chain: Arc<dyn ChainStore>,
    /// The state service.
    pub world: Arc<dyn WorldView>,
    /// L1 simulations.
    pub l1: Arc<dyn L1Simulator>,
    /// L1 submission.
    pub publisher: Arc<dyn Submitter>,
    /// Gossip.
    pub gossip: Arc<dyn Gossip>,
    /// Committee and proposer per slot (the epoch cache).
    pub committee: Arc<dyn CommitteeSource>,
    /// The slashing-protected signer (its addresses are this node's validator keys).
    pub signer: Arc<dyn DutySigner>,
    /// The local clock.
    pub clock: Arc<dyn Clock>,
}

/// The network's constants the sequencer builds with.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolParams {
    /// The proposer's schedule (the network's mode, the node's budgets).
    pub timetable: Timetable,
    /// Chain id and rollup address signatures are bound to.
    pub domain: SigningDomain,
    /// Fee parameters of the deployment (the simulation plan derives proposed fee headers).
    pub fees: tandem_l1::FeeParams,
    /// Most mana per checkpoint (`manaLimit` of the deployment).
    pub mana_limit: u64,
    /// Largest checkpoint body `propose` accepts.
    pub max_body_bytes: usize,
}

impl ProtocolParams {
    /// Genesis, S, E.
    pub const fn slot_clock(&self) -> &SlotClock {
        self.timetable.slot_clock()
    }
}

/// The archiver behind [`ChainStore`].
#[derive(Debug, Clone)]
pub struct ArchiverChain {
    handle: ArchiverHandle,
    slot_clock: SlotClock,
}

impl ArchiverChain {
    /// Wraps the node's archiver handle.
    pub const fn new(handle: ArchiverHandle, slot_clock: SlotClock) -> Self {
        Self { handle, slot_clock }
    }
}

impl ChainStore for ArchiverChain {
    fn tips(&self) -> L2Tips {
        self.handle.tips()
    }

    fn watch_tips(&self) -> watch::Receiver<L2Tips> {
        self.handle.watch_tips()
    }

    fn watch_l1_synced(&self) -> watch::Receiver<Option<L1Ref>> {
        self.handle.watch_l1_synced()
    }

    fn header(&self, number: u64) -> SequencerResult<Option<StoredHeader>> {
        Ok(self.handle.reader().view()?.header(number)?)
    }

    fn proposed_checkpoint(&self, number: u64) -> SequencerResult<Option<ProposedCheckpoint>> {
        Ok(self.handle.reader().view()?.proposed_checkpoint(number)?)
    }

    fn checkpointed_header_hash(&self, number: u64) -> SequencerResult<Option<B256>> {
        let view = self.handle.reader().view()?;
        if view.tips()?.checkpointed.checkpoint.number < number {
            return Ok(None);
        }
        Ok(view
            .checkpoint(number)?
            .map(|record| record.payload.header.hash()))
    }

    fn synced_l2_slot(&self) -> SequencerResult<Option<Slot>> {
        Ok(self
            .handle
            .reader()
            .view()?
            .synced_l2_slot(&self.slot_clock)?)
    }

    fn add_block(&self, block: ProposedBlock) -> DepFuture<'_, ()> {
        async move {
            self.handle.add_block(block).await?;
            Ok(())
        }
        .boxed()
    }

    fn add_proposed_checkpoint(&self, input: ProposedCheckpointInput) -> DepFuture<'_, ()> {
        async move {
            self.handle.add_proposed_checkpoint(input).await?;
            Ok(())
        }
        .boxed()
    }
}

impl WorldView for StateHandle {
    fn tip(&self) -> StateTip {
        self.reader().tip()
    }

    fn fork(&self, number: u64) -> SequencerResult<Fork> {
        Ok(self.reader().fork(number)?)
    }

    fn candidates(&self, fork: &Fork, max: usize) -> Vec<RecoveredTx> {
        // The fork is not the world state: reading it under the locks is fine.
        self.reader().with_pool(|pool, _world| {
            pool.best(|address| fork.account(address).nonce)
                .take(max)
                .collect()
        })
    }

    fn submit_executed(&self, block: ExecutedBlock, txs: Vec<RecoveredTx>) -> DepFuture<'_, ()> {
        async move { Ok(StateHandle::submit_executed(self, block, txs).await?) }.boxed()
    }
}

impl L1Simulator for Simulator {
    fn simulation_base(&self) -> DepFuture<'_, SimulationBase> {
        async move {
            self.reader()
                .simulation_base(BlockNumberOrTag::Latest)
                .await
                .map_err(|err| SequencerError::from(tandem_publisher::PublisherError::from(err)))
        }
        .boxed()
    }

    fn can_propose_at<'a>(
        &'a self,
        time: Timestamp,
        archive: B256,
        proposer: Address,
        base: &'a SimulationBase,
        plan: &'a SimulationPlan,
    ) -> DepFuture<'a, ProposeSlot> {
        async move {
            Ok(Simulator::can_propose_at(
                self,
                time,
                archive,
                proposer,
                SimulationAt::planned(base, plan),
            )
            .await?)
        }
        .boxed()
    }

    fn mana_min_fee<'a>(
        &'a self,
        base: &'a SimulationBase,
        plan: &'a SimulationPlan,
    ) -> DepFuture<'a, u128> {
        async move { Ok(Simulator::mana_min_fee(self, SimulationAt::planned(base, plan)).await?) }
            .boxed()
    }

    fn validate_header<'a>(
        &'a self,
        args: &'a Rollup::ProposeArgs,
        body: &'a Bytes,
        time: Timestamp,
        base: &'a SimulationBase,
        plan: &'a SimulationPlan,
    ) -> DepFuture<'a, ValidatedHeader> {
        async move {
            Ok(Simulator::validate_header(
                self,
                args,
                body,
                time,
                SimulationAt::planned(base, plan),
            )
            .await?)
        }
        .boxed()
    }
}

impl Submitter for PublisherHandle {
    fn enqueue(
        &self,
        bundle: ProposeBundle,
        target: Slot,
    ) -> DepFuture<'_, BoxFuture<'static, SubmissionOutcome>> {
        async move {
            let handle = PublisherHandle::enqueue(self, bundle, target, target).await?;
            Ok(handle.outcome().boxed())
        }
        .boxed()
    }

    fn interrupt(&self) {
        PublisherHandle::interrupt(self);
    }
}

impl Gossip for P2pHandle {
    fn publish_block_proposal(&self, proposal: BlockProposal) -> DepFuture<'_, ()> {
        async move { Ok(P2pHandle::publish_block_proposal(self, proposal).await?) }.boxed()
    }

    fn publish_checkpoint_proposal(&self, proposal: CheckpointProposal) -> DepFuture<'_, ()> {
        async move { Ok(P2pHandle::publish_checkpoint_proposal(self, proposal).await?) }.boxed()
    }

    fn publish_attestation(&self, attestation: CheckpointAttestation) -> DepFuture<'_, ()> {
        async move { Ok(P2pHandle::publish_attestation(self, attestation).await?) }.boxed()
    }

    fn collect_attestations<'a>(
        &'a self,
        payload: &'a ConsensusPayload,
        quorum: usize,
        deadline: Timestamp,
    ) -> DepFuture<'a, Vec<CheckpointAttestation>> {
        async move {
            let collected =
                P2pHandle::collect_attestations(self, payload, quorum, deadline).await?;
            Ok(collected
                .into_iter()
                .map(|collected| collected.attestation)
                .collect())
        }
        .boxed()
    }
}
