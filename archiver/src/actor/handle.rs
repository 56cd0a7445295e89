//! The actor's handle: the command queue, tips, prune events and the reader.

use futures::future::BoxFuture;
use tandem_proto::{
    B256, CheckpointHeader, L2Tips,
    time::{Slot, Timestamp},
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::{
    error::{ArchiverError, ArchiverResult},
    prune::PruneEvent,
    reader::ArchiverReader,
    records::{L1Ref, ProposedCheckpoint, StoredHeader},
    store::{Added, ProposedBlock, ProposedCheckpointInput},
    sync::SyncReport,
};

/// Capacity of the command queue; senders wait when it is full.
pub const COMMAND_QUEUE_CAPACITY: usize = 256;
/// Prune events kept for slow subscribers (they get `Lagged` beyond it, and reconcile against
/// the store: see [`PruneEvent`]).
pub const PRUNE_EVENTS_CAPACITY: usize = 64;

/// A checkpoint's header and body, as a peer sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedCheckpointBody {
    /// The checkpoint header.
    pub header: CheckpointHeader,
    /// The body.
    pub body: Vec<u8>,
    /// The fee-asset price modifier the peer reports (not checkable against L1's event).
    pub fee_asset_price_modifier: i64,
}

/// Where bodies of L1 checkpoints whose calldata could not be read come from (the node
/// implements it with p2p requests). Whatever it returns is checked against L1 before use.
pub trait CheckpointBodySource: Send + Sync + 'static {
    /// Header and body of L1 checkpoint `number` whose header hash is `header_hash`; `None`
    /// if no peer had it.
    fn fetch(&self, number: u64, header_hash: B256)
    -> BoxFuture<'_, Option<FetchedCheckpointBody>>;
}

pub(super) type Reply<T> = oneshot::Sender<Result<T, ArchiverError>>;

pub(super) enum Command {
    AddBlock(ProposedBlock, Reply<Added<StoredHeader>>),
    AddProposedCheckpoint(ProposedCheckpointInput, Reply<Added<ProposedCheckpoint>>),
    SyncNow(Reply<SyncReport>),
    ProposalSeen(u64),
    HoldOrphans {
        slot: u64,
        until: Timestamp,
        reply: Reply<()>,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AddBlock(..) => "AddBlock",
            Self::AddProposedCheckpoint(..) => "AddProposedCheckpoint",
            Self::SyncNow(..) => "SyncNow",
            Self::ProposalSeen(..) => "ProposalSeen",
            Self::HoldOrphans { .. } => "HoldOrphans",
        })
    }
}

/// Cloneable access to the archiver: writes through the queue, reads through the reader.
#[derive(Debug, Clone)]
pub struct ArchiverHandle {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) tips: watch::Receiver<L2Tips>,
    pub(super) l1_synced: watch::Receiver<Option<L1Ref>>,
    pub(super) prunes: broadcast::Sender<PruneEvent>,
    pub(super) reader: ArchiverReader,
}

impl ArchiverHandle {
    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ArchiverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ArchiverError::Stopped)?;
        metrics::gauge!("archiver_queue_depth")
            .set((COMMAND_QUEUE_CAPACITY - self.commands.capacity()) as f64);
        rx.await.map_err(|_| ArchiverError::Stopped)?
    }

    /// The current tips (no round trip).
    pub fn tips(&self) -> L2Tips {
        *self.tips.borrow()
    }

    /// A receiver that changes whenever the tips do.
    pub fn watch_tips(&self) -> watch::Receiver<L2Tips> {
        self.tips.clone()
    }

    /// A receiver that changes whenever the last synced L1 block does (also when the tips do
    /// not: an L1 block without a checkpoint).
    pub fn watch_l1_synced(&self) -> watch::Receiver<Option<L1Ref>> {
        self.l1_synced.clone()
    }

    /// Prune events from now on.
    pub fn subscribe_prunes(&self) -> broadcast::Receiver<PruneEvent> {
        self.prunes.subscribe()
    }

    /// Reads, off the writer's queue.
    pub const fn reader(&self) -> &ArchiverReader {
        &self.reader
    }

    /// Queues a block from a validated proposal, or built here.
    pub async fn add_block(&self, block: ProposedBlock) -> ArchiverResult<Added<StoredHeader>> {
        self.request(|reply| Command::AddBlock(block, reply)).await
    }

    /// Queues a validated proposed checkpoint (its blocks must be stored).
    pub async fn add_proposed_checkpoint(
        &self,
        input: ProposedCheckpointInput,
    ) -> ArchiverResult<Added<ProposedCheckpoint>> {
        self.request(|reply| Command::AddProposedCheckpoint(input, reply))
            .await
    }

    /// Runs a complete L1 sync started after this call and returns what it did.
    pub async fn sync_now(&self) -> ArchiverResult<SyncReport> {
        self.request(Command::SyncNow).await
    }

    /// Records that a valid checkpoint proposal for `slot` was seen on gossip: the blocks of that
    /// slot then get until the synced deadline before the orphan prune removes them.
    pub async fn note_checkpoint_proposal_seen(&self, slot: Slot) -> ArchiverResult<()> {
        self.commands
            .send(Command::ProposalSeen(slot.0))
            .await
            .map_err(|_| ArchiverError::Stopped)
    }

    /// Keeps the blocks of `slot` from the orphan prune until `until` (cut to
    /// [`MAX_ORPHAN_HOLD`](super::MAX_ORPHAN_HOLD) from now), for a caller that stores a
    /// checkpoint's blocks one by one before the checkpoint (catch-up). Commands run in order,
    /// so blocks queued after this returns are covered; the hold ends by itself.
    pub async fn hold_orphans(&self, slot: Slot, until: Timestamp) -> ArchiverResult<()> {
        self.request(|reply| Command::HoldOrphans {
            slot: slot.0,
            until,
            reply,
        })
        .await
    }
}
