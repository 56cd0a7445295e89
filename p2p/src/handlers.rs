//! The handler registry: what the node does with accepted gossip.
//!
//! Order for a checkpoint proposal: its embedded last block goes through the block handler
//! first, then the all-nodes checkpoint handler (every node: validate, then store the proposed
//! checkpoint), then the validator handler (validators: attest). Handlers run on the
//! dispatcher task, never on the swarm task.

use std::sync::Arc;

use futures::future::BoxFuture;
use tandem_proto::{BlockProposal, CheckpointAttestation, CheckpointProposal, RecoveredTx};

use crate::{error::P2pError, verified::Verified};

/// Receives every accepted, non-equivocating block proposal (including embedded last blocks).
pub trait BlockProposalHandler: Send + Sync + 'static {
    /// Handles one block proposal; the next waits for it to finish.
    fn on_block_proposal(&self, proposal: Verified<BlockProposal>) -> BoxFuture<'static, ()>;
}

/// Receives every accepted, non-equivocating checkpoint proposal, on every node.
pub trait AllNodesCheckpointHandler: Send + Sync + 'static {
    /// Handles one checkpoint proposal, after its last block went through the block handler.
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
    ) -> BoxFuture<'static, ()>;
}

/// Receives checkpoint proposals on validators, after the all-nodes handler; returns this
/// node's attestations (none when it does not attest), which p2p pools and gossips.
pub trait ValidatorCheckpointHandler: Send + Sync + 'static {
    /// Handles one checkpoint proposal.
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
    ) -> BoxFuture<'static, Vec<CheckpointAttestation>>;
}

/// Receives accepted gossiped txs (signature recovered, stateless rules passed).
pub trait TxHandler: Send + Sync + 'static {
    /// Handles one tx; should be quick (a pool insertion).
    fn on_tx(&self, tx: Verified<RecoveredTx>);
}

/// The registered handlers. Built with [`HandlersBuilder`]; the all-nodes checkpoint handler is
/// mandatory.
#[derive(Clone)]
pub struct Handlers {
    pub(crate) block: Option<Arc<dyn BlockProposalHandler>>,
    pub(crate) all_nodes: Arc<dyn AllNodesCheckpointHandler>,
    pub(crate) validator: Option<Arc<dyn ValidatorCheckpointHandler>>,
    pub(crate) tx: Option<Arc<dyn TxHandler>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("block", &self.block.is_some())
            .field("validator", &self.validator.is_some())
            .field("tx", &self.tx.is_some())
            .finish_non_exhaustive()
    }
}

/// Collects handlers; [`HandlersBuilder::build`] refuses a registry without the all-nodes
/// checkpoint handler.
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
    /// Sets the block proposal handler.
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

    /// The registry, or [`P2pError::MissingAllNodesHandler`].
    pub fn build(self) -> Result<Handlers, P2pError> {
        Ok(Handlers {
            block: self.block,
            all_nodes: self.all_nodes.ok_or(P2pError::MissingAllNodesHandler)?,
            validator: self.validator,
            tx: self.tx,
        })
    }
}
