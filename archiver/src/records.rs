//! The records the store holds (their encodings are in `codec`).

use tandem_proto::{B256, Block, BlockHeader, CheckpointHeader, ConsensusPayload, Signature};

/// A stored record does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stored {0} record does not decode")]
pub struct RecordError(pub &'static str);

/// An L1 block reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct L1Ref {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Timestamp, seconds.
    pub timestamp: u64,
}

/// A block as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// The block.
    pub block: Block,
    /// Archive root after the block.
    pub archive_root: B256,
    /// The proposer's signature from the block's proposal (none for blocks only known from L1,
    /// which are verified against L1's `blockHeadersHash` instead).
    pub proposer_signature: Option<Signature>,
}

/// A block header as stored, without the txs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHeader {
    /// The header.
    pub header: BlockHeader,
    /// Its hash.
    pub hash: B256,
    /// Archive root after the block.
    pub archive_root: B256,
}

/// Where a checkpoint record's payload and attestations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadSource {
    /// The `propose` calldata on L1: payload and attestations are L1's.
    L1Calldata,
    /// The calldata could not be read; our validated proposed checkpoint matched L1's header
    /// hash and archive. No attestations are known.
    LocalProposal,
    /// The calldata could not be read; the stored blocks of this checkpoint rebuild exactly L1's
    /// header hash and archive. The fee-asset price modifier is not known (stored as 0) and no
    /// attestations are known.
    LocalBlocks,
    /// The calldata could not be read; header and body came from a peer and were checked
    /// against L1's header hash and archive. The fee-asset price modifier is the peer's claim
    /// (L1's event does not carry it) and no attestations are known.
    Peer,
}

/// A checkpoint mined on L1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// Number.
    pub number: u64,
    /// Header, archive, fee modifier.
    pub payload: ConsensusPayload,
    /// First block.
    pub start_block: u64,
    /// Number of blocks.
    pub block_count: u64,
    /// The L1 block that included it (none for genesis).
    pub l1: L1Ref,
    /// Attestations with committee positions.
    pub attestations: Vec<(u32, Signature)>,
    /// Where payload and attestations come from.
    pub source: PayloadSource,
}

impl CheckpointRecord {
    /// Last block of the checkpoint (`block_count ≥ 1` is checked at decode).
    pub const fn last_block(&self) -> u64 {
        self.start_block + self.block_count - 1
    }
}

/// A checkpoint received over gossip and validated, not on L1 yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedCheckpoint {
    /// Number.
    pub number: u64,
    /// Header, archive, fee modifier.
    pub payload: ConsensusPayload,
    /// First block.
    pub start_block: u64,
    /// Number of blocks.
    pub block_count: u64,
    /// Mana used by its blocks (the next proposer's fee override needs it).
    pub total_mana_used: u64,
    /// The proposer's signature over the payload, so peers can verify it when served.
    pub proposer_signature: Signature,
}

impl ProposedCheckpoint {
    /// Last block of the checkpoint.
    pub const fn last_block(&self) -> u64 {
        self.start_block + self.block_count - 1
    }
}

/// Why an L1 checkpoint cannot be applied from L1 alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    /// The `propose` calldata could not be read: header and body must come from peers.
    CalldataMissing,
    /// The body on L1 does not decode (no peer can send another one: its hash is fixed).
    Undecodable,
    /// The body decodes but its blocks do not make up the header and archive L1 accepted.
    DoesNotMatchHeader,
}

/// The `propose` calldata of an L1 checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposeCalldata {
    /// The checkpoint header.
    pub header: CheckpointHeader,
    /// Fee-asset price modifier.
    pub fee_asset_price_modifier: i64,
    /// Attestations with committee positions.
    pub attestations: Vec<(u32, Signature)>,
    /// The checkpoint body.
    pub body: Vec<u8>,
}

/// What L1 says about one checkpoint: the event always, the calldata when it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1CheckpointEvent {
    /// Checkpoint number.
    pub number: u64,
    /// Header hash (from the event).
    pub header_hash: B256,
    /// Archive root after its last block (from the event).
    pub archive: B256,
    /// Slot (from the event).
    pub slot: u64,
    /// The including L1 block.
    pub l1: L1Ref,
    /// The L1 tx.
    pub tx_hash: B256,
    /// The decoded `propose` calldata; `None` when it could not be read.
    pub calldata: Option<ProposeCalldata>,
}

/// An L1 checkpoint stored as an L1 fact but not applied yet: the first one of the queue lacks
/// a usable body, the ones after it wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitingCheckpoint {
    /// The event (with its calldata, if any).
    pub event: L1CheckpointEvent,
    /// Why it could not be applied when last tried; `None` if it only waits for an earlier one.
    pub problem: Option<BodyProblem>,
}
