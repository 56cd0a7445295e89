//! Checkpoints: all blocks of one slot, attested by the committee and posted to L1 in one tx.

use alloy_primitives::{B256, I256, keccak256};
use alloy_sol_types::{SolValue, sol};

use crate::{
    block::{Block, BlockHeader, keccak_of_concatenation},
    tx::{PACKED_TX_LENGTH, Tx},
};

sol! {
    /// Header of a checkpoint, posted to L1. Its hash is `keccak256(abi.encode(header))`.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct CheckpointHeader {
        /// Archive root after the previous checkpoint's last block; L1 checks it against
        /// `archives[tip]`.
        bytes32 last_archive_root;
        /// `keccak256` of the concatenated hashes of the checkpoint's blocks, in order.
        bytes32 block_headers_hash;
        /// `keccak256` of the checkpoint body (see [`encode_checkpoint_body`]), sent as calldata.
        bytes32 body_hash;
        /// Target slot: L1 must mine the checkpoint inside it.
        uint64 slot;
        /// The slot's start, in L1 seconds.
        uint64 timestamp;
        /// L1 address credited for the checkpoint.
        address coinbase;
        /// L2 address receiving the fees.
        address fee_recipient;
        /// Fee per mana; L1 checks it equals the minimum derived from the parent's fee header.
        uint128 fee_per_mana;
        /// Mana used by all blocks.
        uint64 total_mana_used;
        /// Fees paid by all blocks.
        uint128 accumulated_fees;
    }
}

impl CheckpointHeader {
    /// The header hash: `keccak256(abi.encode(header))`, as the L1 contract computes it.
    pub fn hash(&self) -> B256 {
        keccak256(self.abi_encode())
    }
}

/// `keccak256` of the concatenated block hashes: the [`CheckpointHeader::block_headers_hash`].
pub fn block_headers_hash<'a>(block_hashes: impl IntoIterator<Item = &'a B256>) -> B256 {
    keccak_of_concatenation(block_hashes)
}

/// What proposer and attesters agree on for one checkpoint, and what L1 verifies signatures over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConsensusPayload {
    /// The checkpoint header.
    pub header: CheckpointHeader,
    /// Archive root after the checkpoint's last block.
    pub archive: B256,
    /// Fee-asset price change proposed with the checkpoint, in basis points.
    pub fee_asset_price_modifier: i64,
}

impl ConsensusPayload {
    /// `keccak256(abi.encode(bytes32 archive, int256 feeAssetPriceModifier, bytes32 headerHash))`:
    /// the payload hash inside both the proposer's and the attesters' digests.
    pub fn payload_hash(&self) -> B256 {
        let encoded = (
            self.archive,
            I256::unchecked_from(self.fee_asset_price_modifier),
            self.header.hash(),
        )
            .abi_encode();
        keccak256(encoded)
    }
}

/// A checkpoint with its blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Checkpoint number (genesis is 0; L1 assigns tip + 1).
    pub number: u64,
    /// The header, archive and fee modifier.
    pub payload: ConsensusPayload,
    /// The blocks, in order.
    pub blocks: Vec<Block>,
}

impl Checkpoint {
    /// The body sent to L1 as calldata.
    pub fn body(&self) -> Vec<u8> {
        encode_checkpoint_body(&self.blocks)
    }
}

/// Version byte leading every encoded checkpoint body.
pub const CHECKPOINT_BODY_VERSION: u8 = 1;

/// Length of an ABI-encoded block header in a body.
const BODY_HEADER_LENGTH: usize = 15 * 32;

/// Encodes a checkpoint body: `version (1) || block_count (u32 BE) || for each block:
/// header (abi.encode, 480 bytes) || tx_count (u32 BE) || packed txs`. It carries everything a
/// full node needs to rebuild the blocks from L1 alone, and every hash it needs to check them
/// (block hashes against `block_headers_hash`, txs against each header's body hash).
pub fn encode_checkpoint_body(blocks: &[Block]) -> Vec<u8> {
    let tx_count: usize = blocks.iter().map(|block| block.txs.len()).sum();
    let mut out = Vec::with_capacity(
        5 + (BODY_HEADER_LENGTH + 4) * blocks.len() + tx_count * PACKED_TX_LENGTH,
    );
    out.push(CHECKPOINT_BODY_VERSION);
    out.extend_from_slice(&(blocks.len() as u32).to_be_bytes());
    for block in blocks {
        out.extend_from_slice(&block.header.abi_encode());
        out.extend_from_slice(&(block.txs.len() as u32).to_be_bytes());
        for tx in &block.txs {
            tx.encode_packed(&mut out);
        }
    }
    out
}

/// Why a checkpoint body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointBodyError {
    /// The body is larger than the caller's limit.
    #[error("checkpoint body is {size} bytes, limit {limit}")]
    TooLarge {
        /// Actual size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Unknown version byte.
    #[error("checkpoint body version {0} is not supported (expected {CHECKPOINT_BODY_VERSION})")]
    UnsupportedVersion(u8),
    /// The body ended before the announced content.
    #[error("checkpoint body truncated at byte {at}: needed {needed} more bytes")]
    Truncated {
        /// Offset where more bytes were needed.
        at: usize,
        /// How many were needed.
        needed: usize,
    },
    /// A block header is not a canonical ABI encoding.
    #[error("checkpoint body: header of block {0} is not a canonical ABI encoding")]
    InvalidHeader(usize),
    /// Bytes left over after the announced content.
    #[error("checkpoint body has {0} trailing bytes")]
    TrailingBytes(usize),
}

/// Decodes a body produced by [`encode_checkpoint_body`] into its blocks.
pub fn decode_checkpoint_body(
    body: &[u8],
    limit: usize,
) -> Result<Vec<Block>, CheckpointBodyError> {
    if body.len() > limit {
        return Err(CheckpointBodyError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let mut reader = BodyReader { body, at: 0 };
    let version = reader.take(1)?[0];
    if version != CHECKPOINT_BODY_VERSION {
        return Err(CheckpointBodyError::UnsupportedVersion(version));
    }
    let block_count = reader.u32()?;
    // Every block needs at least its header: bound the allocation by what is really there.
    let mut blocks = Vec::with_capacity(block_count.min(body.len() / BODY_HEADER_LENGTH));
    for index in 0..block_count {
        let header = BlockHeader::abi_decode_validate(reader.take(BODY_HEADER_LENGTH)?)
            .map_err(|_| CheckpointBodyError::InvalidHeader(index))?;
        let tx_count = reader.u32()?;
        let packed = reader.take(tx_count.saturating_mul(PACKED_TX_LENGTH))?;
        let txs = packed
            .chunks_exact(PACKED_TX_LENGTH)
            .filter_map(|chunk| chunk.try_into().ok())
            .map(Tx::decode_packed)
            .collect();
        blocks.push(Block { header, txs });
    }
    if reader.at != body.len() {
        return Err(CheckpointBodyError::TrailingBytes(body.len() - reader.at));
    }
    Ok(blocks)
}

struct BodyReader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> BodyReader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], CheckpointBodyError> {
        let remaining = self.body.len() - self.at;
        if len > remaining {
            return Err(CheckpointBodyError::Truncated {
                at: self.at,
                needed: len - remaining,
            });
        }
        let slice = &self.body[self.at..self.at + len];
        self.at += len;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<usize, CheckpointBodyError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    }
}
