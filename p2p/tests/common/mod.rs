//! Shared fixtures for the p2p tests: a network whose slot-10 proposal window is open at a fixed
//! instant of a shared `ManualClock`, keys, message builders, recording handlers, an in-memory
//! chain provider and a node spawner.
#![allow(dead_code, unreachable_pub)]

mod nodes;
mod provider;
mod recording;

// Each test crate uses a part of these.
#[allow(unused_imports)]
pub use nodes::*;
#[allow(unused_imports)]
pub use provider::*;
#[allow(unused_imports)]
pub use recording::*;

use std::sync::Arc;
use std::time::Duration;

use tandem_p2p::{
    GossipPipeline, GossipValidator, NetworkParams, StaticCommittee, TxRules, reqresp::ServedBlock,
};
use tandem_proto::{
    Address, B256, BlockHeader, BlockProposal, CheckpointAttestation, CheckpointProposal,
    ConsensusPayload, SigningDomain, SigningKey, Tx, TxPayload, block_body_hash,
    time::{ConsensusWindows, ManualClock, PipeliningMode, Slot, SlotClock, Timestamp},
};

pub const CHAIN_ID: u64 = 31_337;
/// The slot whose proposal window is open at [`START`].
pub const TARGET: Slot = Slot(10);
pub const SLOT: Duration = Duration::from_secs(60);
pub const L1_SLOT: Duration = Duration::from_secs(12);
pub const BLOCK: Duration = Duration::from_secs(6);
/// When every test network starts: 40 s before slot 10 does, inside its proposal window
/// (`[T − 72.5 s, T − 17.5 s]`). The clock only moves when a test moves it.
pub const START: Timestamp = Timestamp(1_000_000_000);
/// Longest wait for a network event before a test fails (events, not slack: tests never sleep
/// to synchronise).
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Net {
    pub params: NetworkParams,
    pub committee: Arc<StaticCommittee>,
    pub keys: Vec<SigningKey>,
    pub outsider: SigningKey,
    pub domain: SigningDomain,
    pub windows: ConsensusWindows,
    pub clock: ManualClock,
}

impl Net {
    /// A network whose clock reads [`START`].
    pub fn new() -> Self {
        Self::at(START)
    }

    /// A network where `now` is 40 s before slot 10 starts.
    pub fn at(now: Timestamp) -> Self {
        let genesis = Timestamp(now.as_millis() + 40_000 - 10 * SLOT.as_millis() as u64);
        let clock = SlotClock::new(genesis, SLOT, L1_SLOT, 32).unwrap();
        let windows = ConsensusWindows::new(clock, BLOCK, PipeliningMode::Pipelined, BLOCK);
        let domain = SigningDomain {
            chain_id: CHAIN_ID,
            rollup: Address::repeat_byte(0xaa),
        };
        let keys: Vec<SigningKey> = (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]).unwrap())
            .collect();
        let committee = Arc::new(StaticCommittee::new(
            keys.iter().map(SigningKey::address).collect::<Vec<_>>(),
        ));
        Self {
            params: NetworkParams::new(
                domain,
                windows,
                SLOT,
                TxRules {
                    min_mana_limit: 10_000,
                },
            ),
            committee,
            keys,
            outsider: SigningKey::from_bytes(&[99; 32]).unwrap(),
            domain,
            windows,
            clock: ManualClock::new(now),
        }
    }

    /// A gossip pipeline (validator + empty pools) for this network.
    pub fn pipeline(&self) -> GossipPipeline {
        GossipPipeline::new(self.validator())
    }

    pub fn validator(&self) -> GossipValidator {
        GossipValidator::new(
            self.domain,
            self.windows,
            self.committee.clone(),
            self.params.tx_rules,
            self.params.max_txs_per_block,
        )
    }

    /// Moves the shared clock to `offset` from slot `slot`'s start.
    pub fn set_clock(&self, slot: Slot, offset_ms: i64) {
        let start = self.windows.slot_clock().slot_start(slot).as_millis() as i64;
        self.clock.set(Timestamp((start + offset_ms) as u64));
    }

    /// The proposer of `slot` (round robin over the committee).
    pub fn proposer(&self, slot: Slot) -> &SigningKey {
        &self.keys[(slot.0 % self.keys.len() as u64) as usize]
    }

    /// Committee members other than `slot`'s proposer.
    pub fn attesters(&self, slot: Slot) -> Vec<SigningKey> {
        let proposer = self.proposer(slot).address();
        self.keys
            .iter()
            .filter(|key| key.address() != proposer)
            .cloned()
            .collect()
    }

    pub fn tx(&self, nonce: u64) -> Tx {
        Tx::sign(
            TxPayload {
                chain_id: CHAIN_ID,
                nonce,
                to: Address::repeat_byte(7),
                amount: 1,
                max_fee_per_mana: 10,
                mana_limit: 10_000,
            },
            &self.domain,
            &self.outsider,
        )
    }

    pub fn header(&self, slot: Slot, index: u32, txs: &[Tx]) -> BlockHeader {
        let hashes: Vec<B256> = txs.iter().map(Tx::hash).collect();
        BlockHeader {
            chain_id: CHAIN_ID,
            block_number: 100 + u64::from(index),
            checkpoint_number: 5,
            index_within_checkpoint: index,
            slot: slot.0,
            body_hash: block_body_hash(&hashes),
            ..BlockHeader::default()
        }
    }

    pub fn block(&self, slot: Slot, index: u32, txs: Vec<Tx>, key: &SigningKey) -> BlockProposal {
        let header = self.header(slot, index, &txs);
        BlockProposal::sign(
            header,
            B256::repeat_byte(index as u8 + 1),
            txs,
            &self.domain,
            key,
        )
    }

    pub fn checkpoint(
        &self,
        slot: Slot,
        last_block: BlockProposal,
        modifier: i64,
        key: &SigningKey,
    ) -> CheckpointProposal {
        let mut payload = ConsensusPayload {
            archive: last_block.archive_root,
            fee_asset_price_modifier: modifier,
            ..ConsensusPayload::default()
        };
        payload.header.slot = slot.0;
        CheckpointProposal::sign(payload, Some(last_block), &self.domain, key)
    }

    /// A checkpoint proposal whose last block, at `last_index`, holds no txs.
    pub fn bare_checkpoint(
        &self,
        slot: Slot,
        last_index: u32,
        key: &SigningKey,
    ) -> CheckpointProposal {
        self.checkpoint(slot, self.block(slot, last_index, vec![], key), 0, key)
    }

    pub fn attestation(
        &self,
        proposal: &CheckpointProposal,
        key: &SigningKey,
    ) -> CheckpointAttestation {
        CheckpointAttestation::sign(proposal, &self.domain, key)
    }

    /// A proposed chain of `count` blocks after `parent_archive`, block `first` onwards, one per
    /// slot from `first_slot`, each signed by its slot's proposer.
    pub fn chain(
        &self,
        first: u64,
        first_slot: u64,
        parent_archive: B256,
        count: u64,
    ) -> Vec<ServedBlock> {
        let mut previous = parent_archive;
        (0..count)
            .map(|offset| {
                let slot = Slot(first_slot + offset);
                let txs = vec![self.tx(first + offset)];
                let hashes: Vec<B256> = txs.iter().map(Tx::hash).collect();
                let header = BlockHeader {
                    chain_id: CHAIN_ID,
                    block_number: first + offset,
                    checkpoint_number: first + offset,
                    slot: slot.0,
                    last_archive_root: previous,
                    body_hash: block_body_hash(&hashes),
                    ..BlockHeader::default()
                };
                let archive = tandem_proto::keccak256((first + offset).to_be_bytes());
                previous = archive;
                let proposal =
                    BlockProposal::sign(header, archive, txs, &self.domain, self.proposer(slot));
                ServedBlock::from_proposal(&proposal)
            })
            .collect()
    }
}
