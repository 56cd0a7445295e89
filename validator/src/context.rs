//! What the handlers share: the stores, the network, the clock and the windows, the block
//! verdicts the checkpoint handler reads, and the event stream.

use std::sync::{Arc, Mutex, PoisonError};

use tandem_proto::{
    Address, B256, BlockId, SigningDomain,
    time::{Clock, ConsensusWindows, Slot},
};
use tokio::sync::{broadcast, watch};

use crate::{
    archive::{ChainArchive, PeerNetwork},
    block::BlockRejection,
    checkpoint::{CheckpointAccepted, CheckpointRejection},
    fees::FeeOracle,
    recent::RecentBySlot,
    state::StateHandle,
};

/// Capacity of the event broadcast; a subscriber that lags past it misses events (`Lagged`).
pub const VALIDATOR_EVENTS_CAPACITY: usize = 1024;
/// Slots of block verdicts kept behind the newest slot seen.
const VERDICT_RETAINED_SLOTS: u64 = 4;

/// What a block handler decided.
#[derive(Debug, Clone)]
pub enum BlockOutcome {
    /// Re-executed and stored now.
    Stored(BlockId),
    /// The same block was stored already (own block, a copy): nothing done.
    AlreadyStored(BlockId),
    /// Refused.
    Refused(BlockRejection),
    /// Not decided: a store or the state service failed (logged; not the proposal's fault).
    Failed,
}

/// What a handler did, for the node's logs and RPC, and for tests to wait on.
#[derive(Debug, Clone)]
pub enum ValidatorEvent {
    /// A block proposal was handled.
    Block {
        /// Its slot.
        slot: Slot,
        /// Index within its checkpoint.
        index: u32,
        /// Archive root after it (how its checkpoint names it).
        archive: B256,
        /// The proposer.
        proposer: Address,
        /// The verdict.
        outcome: BlockOutcome,
    },
    /// A checkpoint proposal was validated (or recognised as own).
    Checkpoint {
        /// Its slot.
        slot: Slot,
        /// Hash of its consensus payload.
        payload_hash: B256,
        /// The proposer.
        proposer: Address,
        /// The verdict.
        outcome: Result<CheckpointAccepted, CheckpointRejection>,
    },
    /// The validator handler attested (or decided not to) with one local key.
    Attestation {
        /// The slot.
        slot: Slot,
        /// The local key.
        attester: Address,
        /// `None`: attested; else why not (a metric label).
        skipped: Option<&'static str>,
    },
}

/// Block verdicts by the archive root after the block, so a checkpoint whose last block was
/// refused fails at once instead of waiting for it until the deadline.
type BlockVerdicts = RecentBySlot<Result<BlockId, BlockRejection>>;

/// Shared by the handlers; build one per node with [`ValidatorContext::new`].
#[derive(Clone)]
pub struct ValidatorContext {
    pub(crate) archive: Arc<dyn ChainArchive>,
    pub(crate) state: StateHandle,
    pub(crate) network: Arc<dyn PeerNetwork>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) windows: ConsensusWindows,
    pub(crate) domain: SigningDomain,
    pub(crate) fees: Arc<dyn FeeOracle>,
    verdicts: Arc<Mutex<BlockVerdicts>>,
    verdicts_changed: Arc<watch::Sender<u64>>,
    events: broadcast::Sender<ValidatorEvent>,
}

impl std::fmt::Debug for ValidatorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatorContext")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl ValidatorContext {
    /// The context of one node: its archiver, its state service, its p2p handle, the clock
    /// deadlines are read on, the network's windows and signing domain, and L1's fee model
    /// (the fee every checkpoint's first block must carry is checked against it).
    pub fn new(
        archive: Arc<dyn ChainArchive>,
        state: StateHandle,
        network: Arc<dyn PeerNetwork>,
        clock: Arc<dyn Clock>,
        windows: ConsensusWindows,
        domain: SigningDomain,
        fees: Arc<dyn FeeOracle>,
    ) -> Self {
        let (events, _) = broadcast::channel(VALIDATOR_EVENTS_CAPACITY);
        Self {
            archive,
            state,
            network,
            clock,
            windows,
            domain,
            fees,
            verdicts: Arc::new(Mutex::new(RecentBySlot::new(VERDICT_RETAINED_SLOTS))),
            verdicts_changed: Arc::new(watch::channel(0).0),
            events,
        }
    }

    /// The handlers' events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ValidatorEvent> {
        self.events.subscribe()
    }

    /// The state service.
    pub const fn state(&self) -> &StateHandle {
        &self.state
    }

    pub(crate) fn emit(&self, event: ValidatorEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    pub(crate) fn record_block(
        &self,
        slot: Slot,
        archive: B256,
        verdict: Result<BlockId, BlockRejection>,
    ) {
        self.verdicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(slot, archive, verdict);
        self.verdicts_changed.send_modify(|generation| {
            *generation = generation.wrapping_add(1);
        });
    }

    pub(crate) fn block_verdict(&self, archive: &B256) -> Option<Result<BlockId, BlockRejection>> {
        self.verdicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(archive)
    }

    pub(crate) fn watch_verdicts(&self) -> watch::Receiver<u64> {
        self.verdicts_changed.subscribe()
    }
}
