//! L2 blocks: the header every node re-derives by execution, and the block (header + txs).

use alloy_primitives::{B256, keccak256};
use alloy_sol_types::{SolValue, sol};

use crate::tx::Tx;

sol! {
    /// Header of one L2 block. Its hash is `keccak256(abi.encode(header))`.
    ///
    /// All blocks of one checkpoint share chain id, version, slot, timestamp, coinbase, fee
    /// recipient and fee per mana; block number and index advance by one.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct BlockHeader {
        /// Archive root before this block (identifies the parent block).
        bytes32 last_archive_root;
        /// World-state root after this block.
        bytes32 state_root;
        /// `keccak256` of the concatenated hashes of the block's txs, in order.
        bytes32 body_hash;
        /// L2 chain id.
        uint64 chain_id;
        /// Rollup (protocol) version.
        uint32 rollup_version;
        /// Block number; genesis is 0.
        uint64 block_number;
        /// Checkpoint this block belongs to.
        uint64 checkpoint_number;
        /// 0-based position of the block inside its checkpoint.
        uint32 index_within_checkpoint;
        /// L2 slot of the checkpoint (the target slot).
        uint64 slot;
        /// Timestamp of the checkpoint: the slot's start, in L1 seconds.
        uint64 timestamp;
        /// L1 address credited for the checkpoint.
        address coinbase;
        /// L2 address receiving the fees.
        address fee_recipient;
        /// Fee per unit of mana paid by every tx of the block.
        uint128 fee_per_mana;
        /// Mana used by the block's txs.
        uint64 total_mana_used;
        /// Fees paid by the block's txs.
        uint128 total_fees;
    }
}

impl BlockHeader {
    /// The block hash: `keccak256(abi.encode(header))`, as the L1 contract computes it.
    pub fn hash(&self) -> B256 {
        keccak256(self.abi_encode())
    }

    /// Whether `other` carries the same per-checkpoint global variables as `self`.
    pub fn shares_checkpoint_globals(&self, other: &Self) -> bool {
        self.chain_id == other.chain_id
            && self.rollup_version == other.rollup_version
            && self.checkpoint_number == other.checkpoint_number
            && self.slot == other.slot
            && self.timestamp == other.timestamp
            && self.coinbase == other.coinbase
            && self.fee_recipient == other.fee_recipient
            && self.fee_per_mana == other.fee_per_mana
    }
}

/// `keccak256` of the concatenation of `tx_hashes`: the [`BlockHeader::body_hash`] of a block.
pub fn block_body_hash<'a>(tx_hashes: impl IntoIterator<Item = &'a B256>) -> B256 {
    keccak_of_concatenation(tx_hashes)
}

/// `keccak256(h0 || h1 || …)`, how lists of hashes are committed to.
pub(crate) fn keccak_of_concatenation<'a>(hashes: impl IntoIterator<Item = &'a B256>) -> B256 {
    let mut concatenated = Vec::new();
    for hash in hashes {
        concatenated.extend_from_slice(hash.as_slice());
    }
    keccak256(concatenated)
}

/// A block: its header and its txs in execution order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The txs, in execution order.
    pub txs: Vec<Tx>,
}

impl Block {
    /// The block hash.
    pub fn hash(&self) -> B256 {
        self.header.hash()
    }

    /// The hashes of the block's txs, in order.
    pub fn tx_hashes(&self) -> Vec<B256> {
        self.txs.iter().map(Tx::hash).collect()
    }

    /// Whether the header's body hash commits to exactly these txs.
    pub fn body_matches_header(&self) -> bool {
        block_body_hash(&self.tx_hashes()) == self.header.body_hash
    }
}
