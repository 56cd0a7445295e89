//! The handler registry: what the node does with accepted gossip.
//!
//! Dispatch (see `dispatch`): each (slot, proposer) has its own lane. A lane hands its blocks to
//! the block handler in index order, one at a time, then the checkpoint to the all-nodes handler
//! and after it the validator handler; lanes of different slots run concurrently. A checkpoint
//! that arrives before earlier blocks of its slot waits in its lane until they were handled, and
//! a missing block is fetched from peers. Every call gets the slot's attestation deadline and is
//! cancelled when it passes. Handlers run on their own tasks, never on the swarm or validation
//! tasks, and may wait (for a parent, for txs) without blocking any other lane.

use std::sync::Arc;

use futures::future::BoxFuture;
use tandem_proto::{
    BlockProposal, CheckpointAttestation, CheckpointProposal, RecoveredTx, time::Timestamp,
};

use crate::{error::P2pError, verified::Verified};

/// Receives every accepted, non-equivocating block proposal (embedded last blocks included), in
/// index order within its slot. Mandatory: a node without it stores no proposed blocks.
pub trait BlockProposalHandler: Send + Sync + 'static {
    /// Handles one block proposal; the next block of the slot waits for it. The call is
    /// cancelled at `deadline` (the slot's attestation deadline).
    fn on_block_proposal(
        &self,
        proposal: Verified<BlockProposal>,
        deadline: Timestamp,
    ) -> BoxFuture<'static, ()>;
}

/// Receives every accepted, non-equivocating checkpoint proposal, on every node. Mandatory.
pub trait AllNodesCheckpointHandler: Send + Sync + 'static {
    /// Handles one checkpoint proposal, after every block of its slot up to its last block went
    /// through the block handler. `proposal.last_block` is `None`: the last block was handed to
    /// the block handler (find it by `proposal.payload.archive`). Cancelled at `deadline`.
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
        deadline: Timestamp,
    ) -> BoxFuture<'static, ()>;
}

/// Receives checkpoint proposals on validators, after the all-nodes handler; returns this
/// node's attestations (none when it does not attest), which p2p pools and gossips.
pub trait ValidatorCheckpointHandler: Send + Sync + 'static {
    /// Handles one checkpoint proposal (as [`AllNodesCheckpointHandler`] receives it).
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
        deadline: Timestamp,
    ) -> BoxFuture<'static, Vec<CheckpointAttestation>>;
}

/// Receives accepted gossiped txs (signature recovered, stateless rules passed).
pub trait TxHandler: Send + Sync + 'static {
    /// Handles one tx; should be quick (a pool insertion).
    fn on_tx(&self, tx: Verified<RecoveredTx>);
}

/// The registered handlers. Built with [`HandlersBuilder`]; the block and all-nodes checkpoint
/// handlers are mandatory.
#[derive(Clone)]
pub struct Handlers {
    pub(crate) block: Arc<dyn BlockProposalHandler>,
    pub(crate) all_nodes: Arc<dyn AllNodesCheckpointHandler>,
    pub(crate) validator: Option<Arc<dyn ValidatorCheckpointHandler>>,
    pub(crate) tx: Option<Arc<dyn TxHandler>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("validator", &self.validator.is_some())
            .field("tx", &self.tx.is_some())
            .finish_non_exhaustive()
    }
}

/// Collects handlers; [`HandlersBuilder::build`] refuses a registry without the block or the
/// all-nodes checkpoint handler.
#[derive(Default)]
pub struct HandlersBuilder {
    block: Option<Arc<dyn BlockProposalHandler>>,
    all_nodes: Option<Arc<dyn AllNodesCheckpointHandler>>,
    validator: Option<Arc<dyn ValidatorCheckpointHandler>>,
    tx: Option<Arc<dyn TxHandler>>,
}

impl std::fmt::Debug for HandlersBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlersBuilder").finish_non_exhaustive()
    }
}

impl HandlersBuilder {
    /// Sets the block proposal handler (mandatory).
    pub fn block_proposal(mut self, handler: Arc<dyn BlockProposalHandler>) -> Self {
        self.block = Some(handler);
        self
    }

    /// Sets the all-nodes checkpoint handler (mandatory).
    pub fn all_nodes_checkpoint(mut self, handler: Arc<dyn AllNodesCheckpointHandler>) -> Self {
        self.all_nodes = Some(handler);
        self
    }

    /// Sets the validator checkpoint handler (validators only).
    pub fn validator_checkpoint(mut self, handler: Arc<dyn ValidatorCheckpointHandler>) -> Self {
        self.validator = Some(handler);
        self
    }

    /// Sets the tx handler.
    pub fn tx(mut self, handler: Arc<dyn TxHandler>) -> Self {
        self.tx = Some(handler);
        self
    }

    /// The registry, or [`P2pError::MissingBlockProposalHandler`] /
    /// [`P2pError::MissingAllNodesHandler`].
    pub fn build(self) -> Result<Handlers, P2pError> {
        Ok(Handlers {
            block: self.block.ok_or(P2pError::MissingBlockProposalHandler)?,
            all_nodes: self.all_nodes.ok_or(P2pError::MissingAllNodesHandler)?,
            validator: self.validator,
            tx: self.tx,
        })
    }
}
