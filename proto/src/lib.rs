//! The tandem protocol: domain types with canonical hashing and signing, the wire format, the
//! archive tree and the time model. Every other crate depends on this one; it depends on none of
//! them.
//!
//! Hashes are keccak256 over the ABI encoding of the header structs, so the L1 contract computes
//! the same values; signatures are secp256k1 over digests bound to (kind, L2 chain id, rollup
//! address), in the `r || s || v` form Solidity's `ecrecover` checks.

pub mod archive;
mod block;
mod checkpoint;
mod proposal;
mod signing;
pub mod time;
mod tips;
mod tx;
mod wire;

pub use alloy_primitives::{Address, B256, keccak256};
pub use block::{Block, BlockHeader, block_body_hash};
pub use checkpoint::{
    CHECKPOINT_BODY_BYTES_PER_BLOCK, CHECKPOINT_BODY_BYTES_PER_TX, CHECKPOINT_BODY_PREFIX_BYTES,
    CHECKPOINT_BODY_VERSION, Checkpoint, CheckpointBodyError, CheckpointHeader, ConsensusPayload,
    DEFAULT_MAX_CHECKPOINT_BODY_BYTES, MAX_FEE_ASSET_PRICE_MODIFIER_BPS, block_headers_hash,
    checkpoint_body_len, checkpoint_header_of, decode_checkpoint_body, encode_checkpoint_body,
    max_txs_in_checkpoint_body,
};
pub use proposal::{BlockProposal, CheckpointAttestation, CheckpointProposal, ProposalTxsError};
pub use signing::{
    InvalidPrivateKey, SIGNATURE_LENGTH, Signature, SignatureError, SignatureKind, SigningDomain,
    SigningKey,
};
pub use tips::{BlockId, CheckpointId, L2TipId, L2Tips, TipsInvariantError};
pub use tx::{PACKED_TX_LENGTH, RecoveredTx, Tx, TxPayload};
pub use wire::{
    MAX_ATTESTATION_SIZE, MAX_BLOCK_SIZE, MAX_BLOCKS_PER_CHECKPOINT, MAX_CHECKPOINT_SIZE,
    MAX_PROPOSAL_SIZE, MAX_TIPS_SIZE, MAX_TX_SIZE, MAX_TXS_PER_BLOCK, WireError, WireMessage,
};
