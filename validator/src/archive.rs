//! What this crate needs from the archiver and from p2p, as narrow traits (implemented for
//! [`ArchiverHandle`] and [`P2pHandle`]), so handlers and the state service can be driven by
//! something else in a unit test.

use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{
    Added, ArchiverHandle, ArchiverReader, ArchiverResult, ProposedBlock, ProposedCheckpoint,
    ProposedCheckpointInput, PruneEvent, StoredHeader,
};
use tandem_p2p::{
    P2pHandle, PeerId, RequestError,
    reqresp::{ChainBlock, ChainPoint},
    scoring::PeerAction,
};
use tandem_proto::{
    B256, L2Tips, Tx,
    time::{Slot, Timestamp},
};
use tokio::sync::{broadcast, watch};

/// The chain store: reads off the writer's queue, change notifications, and the two writes the
/// handlers make.
pub trait ChainArchive: Send + Sync + 'static {
    /// Consistent reads of the store.
    fn reader(&self) -> &ArchiverReader;
    /// Changes whenever the store's tips do (every stored block, checkpoint and prune).
    fn watch_tips(&self) -> watch::Receiver<L2Tips>;
    /// Prune events from now on (a wake-up: the store stays the source of truth).
    fn subscribe_prunes(&self) -> broadcast::Receiver<PruneEvent>;
    /// Stores a validated proposed block.
    fn add_block(&self, block: ProposedBlock)
    -> BoxFuture<'_, ArchiverResult<Added<StoredHeader>>>;
    /// Stores a validated proposed checkpoint.
    fn add_proposed_checkpoint(
        &self,
        input: ProposedCheckpointInput,
    ) -> BoxFuture<'_, ArchiverResult<Added<ProposedCheckpoint>>>;
    /// Records that a checkpoint proposal for `slot` was seen (its blocks are no orphans yet).
    fn note_checkpoint_proposal_seen(&self, slot: Slot) -> BoxFuture<'_, ArchiverResult<()>>;
    /// Keeps the blocks of `slot` from the orphan prune until `until` (bounded by the
    /// archiver); writes queued after it returns are covered.
    fn hold_orphans(&self, slot: Slot, until: Timestamp) -> BoxFuture<'_, ArchiverResult<()>>;
}

impl ChainArchive for ArchiverHandle {
    fn reader(&self) -> &ArchiverReader {
        ArchiverHandle::reader(self)
    }

    fn watch_tips(&self) -> watch::Receiver<L2Tips> {
        ArchiverHandle::watch_tips(self)
    }

    fn subscribe_prunes(&self) -> broadcast::Receiver<PruneEvent> {
        ArchiverHandle::subscribe_prunes(self)
    }

    fn add_block(
        &self,
        block: ProposedBlock,
    ) -> BoxFuture<'_, ArchiverResult<Added<StoredHeader>>> {
        ArchiverHandle::add_block(self, block).boxed()
    }

    fn add_proposed_checkpoint(
        &self,
        input: ProposedCheckpointInput,
    ) -> BoxFuture<'_, ArchiverResult<Added<ProposedCheckpoint>>> {
        ArchiverHandle::add_proposed_checkpoint(self, input).boxed()
    }

    fn note_checkpoint_proposal_seen(&self, slot: Slot) -> BoxFuture<'_, ArchiverResult<()>> {
        ArchiverHandle::note_checkpoint_proposal_seen(self, slot).boxed()
    }

    fn hold_orphans(&self, slot: Slot, until: Timestamp) -> BoxFuture<'_, ArchiverResult<()>> {
        ArchiverHandle::hold_orphans(self, slot, until).boxed()
    }
}

/// The peers: fetch what a proposal lacks, catch up, and charge a peer for a fault found after
/// its gossip was accepted.
pub trait PeerNetwork: Send + Sync + 'static {
    /// Charges `peer` for a fault.
    fn report_peer(&self, peer: PeerId, action: PeerAction) -> BoxFuture<'_, ()>;
    /// Txs by hash from `peer` (or any peer): those it had.
    fn request_txs(
        &self,
        peer: Option<PeerId>,
        hashes: Vec<B256>,
    ) -> BoxFuture<'_, Result<Vec<Tx>, RequestError>>;
    /// The proposed chain after `after` from some peer, checked, with the peer that served it.
    fn request_proposed_chain(
        &self,
        after: ChainPoint,
        max_blocks: u32,
    ) -> BoxFuture<'_, Result<(PeerId, Vec<ChainBlock>), RequestError>>;
}

impl PeerNetwork for P2pHandle {
    fn report_peer(&self, peer: PeerId, action: PeerAction) -> BoxFuture<'_, ()> {
        async move {
            // A stopped service has no peers left to charge.
            let _ = P2pHandle::report_peer(self, peer, action).await;
        }
        .boxed()
    }

    fn request_txs(
        &self,
        peer: Option<PeerId>,
        hashes: Vec<B256>,
    ) -> BoxFuture<'_, Result<Vec<Tx>, RequestError>> {
        P2pHandle::request_txs(self, peer, hashes).boxed()
    }

    fn request_proposed_chain(
        &self,
        after: ChainPoint,
        max_blocks: u32,
    ) -> BoxFuture<'_, Result<(PeerId, Vec<ChainBlock>), RequestError>> {
        P2pHandle::request_proposed_chain_from(self, None, after, max_blocks).boxed()
    }
}
