//! What the p2p service tells other components, on a broadcast channel.

use libp2p::PeerId;
use tandem_proto::{Address, time::Slot};

use crate::{error::PublishError, evidence::Equivocation};

/// Which handler a dispatch event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandlerKind {
    /// [`crate::BlockProposalHandler`].
    BlockProposal,
    /// [`crate::AllNodesCheckpointHandler`].
    AllNodesCheckpoint,
    /// [`crate::ValidatorCheckpointHandler`].
    ValidatorCheckpoint,
}

impl HandlerKind {
    /// Metric label.
    pub const fn label(self) -> &'static str {
        match self {
            Self::BlockProposal => "block_proposal",
            Self::AllNodesCheckpoint => "all_nodes_checkpoint",
            Self::ValidatorCheckpoint => "validator_checkpoint",
        }
    }
}

/// Something this node learned from gossip that other components may care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum P2pEvent {
    /// Someone signed two different messages for one duty: verifiable evidence.
    Equivocation(Box<Equivocation>),
    /// A valid checkpoint proposal for `slot` was seen (the archiver's orphan prune waits
    /// longer for the blocks of such slots).
    CheckpointProposalSeen(Slot),
    /// A handler call did not finish before its slot's attestation deadline and was cancelled.
    HandlerDeadlineMissed {
        /// The handler.
        handler: HandlerKind,
        /// The slot.
        slot: Slot,
    },
    /// A slot's deadline passed with accepted proposals never handed to a handler (a missing
    /// earlier block that could not be fetched, or a handler that overran).
    Unhandled {
        /// The slot.
        slot: Slot,
        /// Its proposer.
        proposer: Address,
        /// Block proposals never handled.
        blocks: usize,
        /// Whether its checkpoint proposal was never handled.
        checkpoint: bool,
    },
    /// An attestation the validator handler returned could not be gossiped (it is still pooled
    /// here and counts towards this node's quorum collection).
    AttestationNotPublished {
        /// The slot.
        slot: Slot,
        /// Why.
        error: PublishError,
    },
    /// A missing block proposal was fetched from `peer` and handed to the block lane.
    BlockFetched {
        /// The slot.
        slot: Slot,
        /// Its index within the checkpoint.
        index: u32,
        /// The peer that served it.
        peer: PeerId,
    },
}
