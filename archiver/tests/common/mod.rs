//! Builders shared by the archiver's tests: chains of blocks and checkpoints as a proposer
//! would build them.

#![allow(dead_code, unreachable_pub)]

use tandem_archiver::{L1CheckpointInput, L1Ref, ProposedCheckpointInput};
use tandem_proto::{
    Address, B256, Block, BlockHeader, CheckpointHeader, ConsensusPayload, archive::ArchiveTree,
    block_body_hash, block_headers_hash, encode_checkpoint_body, keccak256,
};

pub fn genesis() -> BlockHeader {
    BlockHeader {
        chain_id: 1,
        rollup_version: 1,
        last_archive_root: ArchiveTree::new().root(),
        ..Default::default()
    }
}

/// Builds chains of blocks and checkpoints the way a proposer would, tracking the archive.
#[derive(Clone)]
pub struct Chain {
    pub archive: ArchiveTree,
    pub last_block: u64,
    pub last_checkpoint_archive: B256,
    /// Fee per mana every block and header carries.
    pub fee_per_mana: u128,
    /// Timestamps are `genesis_time + slot * slot_duration`.
    pub genesis_time: u64,
    /// Slot duration, seconds.
    pub slot_duration: u64,
    /// Txs to put in the next block built (then cleared).
    pub next_txs: Vec<tandem_proto::Tx>,
}

pub struct BuiltCheckpoint {
    pub number: u64,
    pub blocks: Vec<Block>,
    pub payload: ConsensusPayload,
}

impl Chain {
    pub fn new() -> Self {
        let mut archive = ArchiveTree::new();
        let root = archive.append(genesis().hash()).unwrap();
        Self {
            archive,
            last_block: 0,
            last_checkpoint_archive: root,
            fee_per_mana: 0,
            genesis_time: 1_000,
            slot_duration: 1,
            next_txs: Vec::new(),
        }
    }

    /// `count` blocks of checkpoint `number` in `slot`; `salt` makes a different (conflicting) chain.
    pub fn checkpoint(&mut self, number: u64, slot: u64, count: u32, salt: u8) -> BuiltCheckpoint {
        let mut blocks = Vec::new();
        let parent_archive = self.archive.root();
        for index in 0..count {
            self.last_block += 1;
            let txs = std::mem::take(&mut self.next_txs);
            let tx_hashes: Vec<B256> = txs.iter().map(tandem_proto::Tx::hash).collect();
            let header = BlockHeader {
                last_archive_root: self.archive.root(),
                state_root: B256::repeat_byte(salt),
                body_hash: block_body_hash(&tx_hashes),
                chain_id: 1,
                rollup_version: 1,
                block_number: self.last_block,
                checkpoint_number: number,
                index_within_checkpoint: index,
                slot,
                timestamp: self.genesis_time + slot * self.slot_duration,
                coinbase: Address::repeat_byte(1),
                total_mana_used: 100,
                total_fees: 7,
                fee_per_mana: self.fee_per_mana,
                ..Default::default()
            };
            self.archive.append(header.hash()).unwrap();
            blocks.push(Block { header, txs });
        }
        let hashes: Vec<B256> = blocks.iter().map(Block::hash).collect();
        let header = CheckpointHeader {
            last_archive_root: parent_archive,
            block_headers_hash: block_headers_hash(&hashes),
            body_hash: keccak256(encode_checkpoint_body(&blocks)),
            slot,
            timestamp: self.genesis_time + slot * self.slot_duration,
            coinbase: Address::repeat_byte(1),
            total_mana_used: 100 * u64::from(count),
            accumulated_fees: 7 * u128::from(count),
            fee_per_mana: self.fee_per_mana,
            ..Default::default()
        };
        self.last_checkpoint_archive = self.archive.root();
        let payload = ConsensusPayload {
            header,
            archive: self.archive.root(),
            fee_asset_price_modifier: -75,
        };
        BuiltCheckpoint {
            number,
            blocks,
            payload,
        }
    }
}

impl BuiltCheckpoint {
    pub fn proposed(&self) -> ProposedCheckpointInput {
        ProposedCheckpointInput {
            number: self.number,
            payload: self.payload.clone(),
            start_block: self.blocks[0].header.block_number,
            block_count: self.blocks.len() as u64,
        }
    }

    pub fn l1(&self, l1_block: u64) -> L1CheckpointInput {
        L1CheckpointInput {
            number: self.number,
            payload: self.payload.clone(),
            l1: L1Ref {
                number: l1_block,
                hash: B256::with_last_byte(l1_block as u8),
                timestamp: 2_000 + l1_block,
            },
            attestations: Vec::new(),
            blocks: self.blocks.clone(),
        }
    }
}
