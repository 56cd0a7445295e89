//! Checkpoints: all blocks of one slot, attested by the committee and posted to L1 in one tx.
//!
//! The body codec reads L1 calldata, so its arithmetic is checked
//! (`clippy::arithmetic_side_effects` is denied here).

#![deny(clippy::arithmetic_side_effects)]

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

/// The checkpoint header `blocks` (in order, all of one checkpoint) make on top of the block
/// whose archive is `parent_archive`, with the body it commits to: every field of a checkpoint
/// header derives from its blocks (globals from the first block, which all share; mana and
/// fees summed). `None` without blocks, or when mana or fees overflow. What a proposer puts in
/// its header and what validators and the archiver compare a header with.
pub fn checkpoint_header_of(
    parent_archive: B256,
    blocks: &[Block],
) -> Option<(CheckpointHeader, Vec<u8>)> {
    let first = &blocks.first()?.header;
    let mut mana: u64 = 0;
    let mut fees: u128 = 0;
    for block in blocks {
        mana = mana.checked_add(block.header.total_mana_used)?;
        fees = fees.checked_add(block.header.total_fees)?;
    }
    let hashes: Vec<B256> = blocks.iter().map(Block::hash).collect();
    let body = encode_checkpoint_body(blocks);
    let header = CheckpointHeader {
        last_archive_root: parent_archive,
        block_headers_hash: block_headers_hash(&hashes),
        body_hash: keccak256(&body),
        slot: first.slot,
        timestamp: first.timestamp,
        coinbase: first.coinbase,
        fee_recipient: first.fee_recipient,
        fee_per_mana: first.fee_per_mana,
        total_mana_used: mana,
        accumulated_fees: fees,
    };
    Some((header, body))
}

/// Largest fee-asset price modifier, in basis points, either way (±1 % per checkpoint). Decoders,
/// the fee model and the contract all refuse anything outside.
pub const MAX_FEE_ASSET_PRICE_MODIFIER_BPS: i64 = 100;

/// Default of the protocol constant `max_checkpoint_body_bytes`: the largest checkpoint body one
/// `propose` tx may carry. Public mempools accept txs of at most 128 KiB; 120 KiB leaves 8 KiB
/// for the tx envelope and the rest of the `propose` calldata (header, signatures). Each
/// deployment stores its own value in the contract, which enforces it, as do block builders and
/// validators. Blobs (EIP-4844) will lift this limit later.
pub const DEFAULT_MAX_CHECKPOINT_BODY_BYTES: usize = 120 * 1024;

/// Bytes of a checkpoint body before its blocks: version (1) and block count (4).
pub const CHECKPOINT_BODY_PREFIX_BYTES: usize = 5;
/// Bytes each block adds to a checkpoint body besides its txs: ABI header (480) and tx count (4).
pub const CHECKPOINT_BODY_BYTES_PER_BLOCK: usize = BODY_HEADER_LENGTH + 4;
/// Bytes each tx adds to a checkpoint body (its packed encoding).
pub const CHECKPOINT_BODY_BYTES_PER_TX: usize = PACKED_TX_LENGTH;

/// Length of the body of a checkpoint with `blocks` blocks carrying `txs` txs in total
/// (saturating): what a builder compares with `max_checkpoint_body_bytes` before adding a tx.
pub const fn checkpoint_body_len(blocks: usize, txs: usize) -> usize {
    CHECKPOINT_BODY_PREFIX_BYTES
        .saturating_add(blocks.saturating_mul(CHECKPOINT_BODY_BYTES_PER_BLOCK))
        .saturating_add(txs.saturating_mul(CHECKPOINT_BODY_BYTES_PER_TX))
}

/// Most txs a checkpoint of `blocks` blocks can carry within a body cap of `max_body_bytes`.
pub const fn max_txs_in_checkpoint_body(max_body_bytes: usize, blocks: usize) -> usize {
    // The divisor is a non-zero constant.
    max_body_bytes.saturating_sub(checkpoint_body_len(blocks, 0)) / CHECKPOINT_BODY_BYTES_PER_TX
}

/// What proposer and attesters agree on for one checkpoint, and what L1 verifies signatures over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConsensusPayload {
    /// The checkpoint header.
    pub header: CheckpointHeader,
    /// Archive root after the checkpoint's last block.
    pub archive: B256,
    /// Fee-asset price change proposed with the checkpoint, in basis points, within
    /// ±[`MAX_FEE_ASSET_PRICE_MODIFIER_BPS`] (decoders refuse anything else).
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
///
/// Block and tx counts travel as u32: callers keep them far below (see
/// [`crate::MAX_BLOCKS_PER_CHECKPOINT`], [`crate::MAX_TXS_PER_BLOCK`]); larger counts saturate
/// and would fail to decode rather than wrap.
pub fn encode_checkpoint_body(blocks: &[Block]) -> Vec<u8> {
    let tx_count = blocks
        .iter()
        .fold(0usize, |sum, block| sum.saturating_add(block.txs.len()));
    let mut out = Vec::with_capacity(checkpoint_body_len(blocks.len(), tx_count));
    out.push(CHECKPOINT_BODY_VERSION);
    out.extend_from_slice(&count_u32(blocks.len()).to_be_bytes());
    for block in blocks {
        out.extend_from_slice(&block.header.abi_encode());
        out.extend_from_slice(&count_u32(block.txs.len()).to_be_bytes());
        for tx in &block.txs {
            tx.encode_packed(&mut out);
        }
    }
    out
}

fn count_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
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
    let version = reader.take(1)?.first().copied().unwrap_or_default();
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
    let trailing = body.len().saturating_sub(reader.at);
    if trailing != 0 {
        return Err(CheckpointBodyError::TrailingBytes(trailing));
    }
    Ok(blocks)
}

struct BodyReader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> BodyReader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], CheckpointBodyError> {
        let rest = self.body.get(self.at..).unwrap_or_default();
        let Some(slice) = rest.get(..len) else {
            return Err(CheckpointBodyError::Truncated {
                at: self.at,
                needed: len.saturating_sub(rest.len()),
            });
        };
        self.at = self.at.saturating_add(len);
        Ok(slice)
    }

    fn u32(&mut self) -> Result<usize, CheckpointBodyError> {
        let bytes: [u8; 4] =
            self.take(4)?
                .try_into()
                .map_err(|_| CheckpointBodyError::Truncated {
                    at: self.at,
                    needed: 4,
                })?;
        Ok(usize::try_from(u32::from_be_bytes(bytes)).unwrap_or(usize::MAX))
    }
}
