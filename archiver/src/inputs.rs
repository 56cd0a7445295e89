//! What the store takes in and what it says it did.

use tandem_proto::{Block, BlockHeader, ConsensusPayload, RecoveredTx, Signature};

use crate::{prune::PruneEvent, records::L1Ref};

/// The outcome of storing something that may already be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added<T> {
    /// Newly stored.
    Stored(T),
    /// The identical item was already stored (nothing written): callers treat it as success.
    AlreadyStored(T),
}

impl<T> Added<T> {
    /// The item.
    pub fn into_inner(self) -> T {
        match self {
            Self::Stored(item) | Self::AlreadyStored(item) => item,
        }
    }

    /// The item.
    pub const fn get(&self) -> &T {
        match self {
            Self::Stored(item) | Self::AlreadyStored(item) => item,
        }
    }

    /// Whether it was newly stored.
    pub const fn is_new(&self) -> bool {
        matches!(self, Self::Stored(_))
    }
}

/// A block received in a validated block proposal (or built here), executed: its txs' senders
/// and hashes are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedBlock {
    /// The header.
    pub header: BlockHeader,
    /// The txs, in order, with senders.
    pub txs: Vec<RecoveredTx>,
    /// The proposer's signature from the block proposal (stored, so the block can be served to
    /// peers as a verifiable proposal).
    pub proposer_signature: Signature,
}

/// A proposed checkpoint to store: its blocks must already be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedCheckpointInput {
    /// Number.
    pub number: u64,
    /// Header, archive, fee modifier.
    pub payload: ConsensusPayload,
    /// First block.
    pub start_block: u64,
    /// Number of blocks.
    pub block_count: u64,
    /// The proposer's signature over the payload.
    pub proposer_signature: Signature,
}

/// A checkpoint as published on L1, with its blocks decoded from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1CheckpointInput {
    /// Number.
    pub number: u64,
    /// Header, archive, fee modifier.
    pub payload: ConsensusPayload,
    /// The including L1 block.
    pub l1: L1Ref,
    /// Attestations.
    pub attestations: Vec<(u32, Signature)>,
    /// Blocks from the body.
    pub blocks: Vec<Block>,
}

/// What adding an L1 checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L1Outcome {
    /// The matching proposed checkpoint was promoted; its blocks were already stored.
    Promoted,
    /// Blocks were written from the body (none or some were known); local blocks that disagreed
    /// with L1 were removed first.
    Inserted {
        /// Blocks written from L1.
        new_blocks: u64,
        /// What had to be removed, if anything.
        pruned: Option<PruneEvent>,
    },
}
