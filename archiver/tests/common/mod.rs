//! Builders shared by the archiver's tests: chains of blocks and checkpoints as a proposer
//! would build them, and a programmable in-memory L1.

#![allow(dead_code, unreachable_pub)]

pub mod setup;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::{Arc, Mutex},
};

use futures::FutureExt;
use tandem_archiver::{
    ArchiverError, ArchiverStore, L1Block, L1CheckpointEvent, L1CheckpointInput, L1Future, L1Ref,
    L1Source, ProposeCalldata, ProposedBlock, ProposedCheckpointInput,
};
use tandem_proto::{
    Address, B256, Block, BlockHeader, CheckpointHeader, ConsensusPayload, RecoveredTx,
    SignatureKind, SigningDomain, SigningKey, Tx, TxPayload, archive::ArchiveTree, block_body_hash,
    block_headers_hash, encode_checkpoint_body, keccak256,
};

pub const DOMAIN: SigningDomain = SigningDomain {
    chain_id: 1,
    rollup: Address::ZERO,
};

pub fn genesis() -> BlockHeader {
    BlockHeader {
        chain_id: 1,
        rollup_version: 1,
        last_archive_root: ArchiveTree::new().root(),
        ..Default::default()
    }
}

pub fn open_store(path: &Path) -> ArchiverStore {
    ArchiverStore::open(path, &genesis(), DOMAIN).unwrap()
}

pub fn proposer() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32]).unwrap()
}

/// A signed transfer (distinct for every `(sender, nonce)`).
pub fn tx(sender: u8, nonce: u64) -> RecoveredTx {
    let key = SigningKey::from_bytes(&[sender.max(1); 32]).unwrap();
    let payload = TxPayload {
        chain_id: 1,
        nonce,
        to: Address::repeat_byte(0xee),
        amount: 1,
        max_fee_per_mana: 1,
        mana_limit: 10_000,
    };
    Tx::sign(payload, &DOMAIN, &key)
        .into_recovered(&DOMAIN)
        .unwrap()
}

/// Builds chains of blocks and checkpoints the way a proposer would, tracking the archive.
#[derive(Clone)]
pub struct Chain {
    pub archive: ArchiveTree,
    pub last_block: u64,
    /// Fee per mana every block and header carries.
    pub fee_per_mana: u128,
    /// Timestamps are `genesis_time + slot * slot_duration`.
    pub genesis_time: u64,
    /// Slot duration, seconds.
    pub slot_duration: u64,
    /// Txs to put in the next block built (then cleared).
    pub next_txs: Vec<RecoveredTx>,
}

#[derive(Clone, Debug)]
pub struct BuiltCheckpoint {
    pub number: u64,
    pub blocks: Vec<Block>,
    pub recovered: Vec<Vec<RecoveredTx>>,
    pub archive_roots: Vec<B256>,
    pub payload: ConsensusPayload,
}

impl Chain {
    pub fn new() -> Self {
        let mut archive = ArchiveTree::new();
        archive.append(genesis().hash()).unwrap();
        Self {
            archive,
            last_block: 0,
            fee_per_mana: 0,
            genesis_time: 1_000,
            slot_duration: 1,
            next_txs: Vec::new(),
        }
    }

    /// Continues from `store`'s block `number` (which must be stored).
    pub fn from_store(store: &ArchiverStore, number: u64) -> Self {
        Self::from_reader(&store.reader(), number)
    }

    /// Continues from block `number` as `reader` sees it.
    pub fn from_reader(reader: &tandem_archiver::ArchiverReader, number: u64) -> Self {
        let view = reader.view().unwrap();
        let mut archive = ArchiveTree::new();
        for n in 0..=number {
            archive
                .append(view.block_hash(n).unwrap().unwrap())
                .unwrap();
        }
        Self {
            archive,
            last_block: number,
            ..Self::new()
        }
    }

    /// `count` blocks of checkpoint `number` in `slot` (the first with `next_txs`); `salt` makes
    /// a different (conflicting) chain.
    pub fn checkpoint(&mut self, number: u64, slot: u64, count: u32, salt: u8) -> BuiltCheckpoint {
        let mut per_block = vec![Vec::new(); count as usize];
        per_block[0] = std::mem::take(&mut self.next_txs);
        self.checkpoint_with_txs(number, slot, per_block, salt)
    }

    /// A checkpoint whose block `i` holds `per_block[i]`.
    pub fn checkpoint_with_txs(
        &mut self,
        number: u64,
        slot: u64,
        per_block: Vec<Vec<RecoveredTx>>,
        salt: u8,
    ) -> BuiltCheckpoint {
        let count = per_block.len() as u32;
        let mut blocks = Vec::new();
        let mut recovered = Vec::new();
        let mut archive_roots = Vec::new();
        let parent_archive = self.archive.root();
        for (index, txs) in (0..count).zip(per_block) {
            self.last_block += 1;
            let tx_hashes: Vec<B256> = txs.iter().map(RecoveredTx::hash).collect();
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
                fee_recipient: Address::repeat_byte(2),
                total_mana_used: 100,
                total_fees: 7,
                fee_per_mana: self.fee_per_mana,
            };
            archive_roots.push(self.archive.append(header.hash()).unwrap());
            blocks.push(Block {
                header,
                txs: txs.iter().map(|tx| tx.tx().clone()).collect(),
            });
            recovered.push(txs);
        }
        let hashes: Vec<B256> = blocks.iter().map(Block::hash).collect();
        let header = CheckpointHeader {
            last_archive_root: parent_archive,
            block_headers_hash: block_headers_hash(&hashes),
            body_hash: keccak256(encode_checkpoint_body(&blocks)),
            slot,
            timestamp: self.genesis_time + slot * self.slot_duration,
            coinbase: Address::repeat_byte(1),
            fee_recipient: Address::repeat_byte(2),
            total_mana_used: 100 * u64::from(count),
            accumulated_fees: 7 * u128::from(count),
            fee_per_mana: self.fee_per_mana,
        };
        let payload = ConsensusPayload {
            header,
            archive: self.archive.root(),
            fee_asset_price_modifier: -75,
        };
        BuiltCheckpoint {
            number,
            blocks,
            recovered,
            archive_roots,
            payload,
        }
    }
}

impl BuiltCheckpoint {
    /// Block `i` as its (signed) proposal delivers it.
    pub fn proposed_block(&self, i: usize) -> ProposedBlock {
        let header = self.blocks[i].header.clone();
        let payload_hash = keccak256(alloy_sol_types::SolValue::abi_encode(&(
            header.hash(),
            self.archive_roots[i],
        )));
        ProposedBlock {
            proposer_signature: proposer().sign(
                &DOMAIN,
                SignatureKind::BlockProposal,
                payload_hash,
            ),
            header,
            txs: self.recovered[i].clone(),
        }
    }

    pub fn proposed(&self) -> ProposedCheckpointInput {
        ProposedCheckpointInput {
            number: self.number,
            payload: self.payload.clone(),
            start_block: self.blocks[0].header.block_number,
            block_count: self.blocks.len() as u64,
            proposer_signature: proposer().sign(
                &DOMAIN,
                SignatureKind::CheckpointProposal,
                self.payload.payload_hash(),
            ),
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

    /// Its `CheckpointProposed` event (L1 block filled in when mined), with or without readable
    /// calldata.
    pub fn event(&self, with_calldata: bool) -> L1CheckpointEvent {
        L1CheckpointEvent {
            number: self.number,
            header_hash: self.payload.header.hash(),
            archive: self.payload.archive,
            slot: self.payload.header.slot,
            l1: L1Ref::default(),
            tx_hash: B256::repeat_byte(self.number as u8),
            calldata: with_calldata.then(|| ProposeCalldata {
                header: self.payload.header.clone(),
                fee_asset_price_modifier: self.payload.fee_asset_price_modifier,
                attestations: vec![(0, tandem_proto::Signature::from_bytes([9; 65]))],
                body: encode_checkpoint_body(&self.blocks),
            }),
        }
    }
}

pub fn add_blocks(store: &mut ArchiverStore, checkpoint: &BuiltCheckpoint) {
    for i in 0..checkpoint.blocks.len() {
        assert!(
            store
                .add_proposed_block(checkpoint.proposed_block(i))
                .unwrap()
                .is_new()
        );
    }
}

/// An in-memory L1 with failure injection: a canonical chain of blocks carrying checkpoint
/// events, reorgs, a "lagging RPC" that does not serve some blocks, and calls that fail.
#[derive(Clone, Default)]
pub struct FakeL1 {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    blocks: Vec<L1Block>,
    events: BTreeMap<u64, Vec<L1CheckpointEvent>>,
    finalized: Option<u64>,
    calls: u64,
    fail_calls: BTreeSet<u64>,
    /// Every call fails (L1 unreachable).
    fail_all: bool,
    /// `finalized_block` fails (an RPC that errors on the `finalized` tag).
    finalized_fails: bool,
    missing: BTreeSet<u64>,
    /// Right after this call, the chain is replaced from this block with this salt (a reorg
    /// racing a sync).
    reorg_after_call: Option<(u64, u64, u8)>,
    /// While set, calls wait (a slow L1).
    paused: Option<tokio::sync::watch::Receiver<bool>>,
}

fn block_hash(number: u64, salt: u8) -> B256 {
    keccak256([number.to_be_bytes().as_slice(), &[salt]].concat())
}

impl FakeL1 {
    /// A chain of blocks `0..=first` with timestamps `timestamp_of(n)`.
    pub fn new(blocks: u64, timestamp: impl Fn(u64) -> u64) -> Self {
        let l1 = Self::default();
        for n in 0..=blocks {
            l1.mine_at(timestamp(n), Vec::new());
        }
        l1
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn head(&self) -> L1Block {
        self.with(|s| *s.blocks.last().unwrap())
    }

    /// Mines a block with these checkpoint events; returns its reference.
    pub fn mine_at(&self, timestamp: u64, events: Vec<L1CheckpointEvent>) -> L1Ref {
        self.mine_salted(timestamp, events, 0)
    }

    fn mine_salted(&self, timestamp: u64, events: Vec<L1CheckpointEvent>, salt: u8) -> L1Ref {
        self.with(|s| {
            let number = s.blocks.len() as u64;
            let parent_hash = s.blocks.last().map_or(B256::ZERO, |b| b.hash);
            let block = L1Block {
                number,
                hash: block_hash(number, salt),
                parent_hash,
                timestamp,
            };
            s.blocks.push(block);
            let reference = block.reference();
            let events: Vec<_> = events
                .into_iter()
                .map(|mut e| {
                    e.l1 = reference;
                    e
                })
                .collect();
            if !events.is_empty() {
                s.events.insert(number, events);
            }
            reference
        })
    }

    /// Mines a block one second after the head with `checkpoint`'s event.
    pub fn land(&self, checkpoint: &BuiltCheckpoint, with_calldata: bool) -> L1Ref {
        let timestamp = self.head().timestamp + 1;
        self.mine_at(timestamp, vec![checkpoint.event(with_calldata)])
    }

    /// Mines empty blocks one second apart until the head is at `timestamp` or later.
    pub fn mine_until(&self, timestamp: u64) {
        while self.head().timestamp < timestamp {
            self.mine_empty(self.head().timestamp + 1);
        }
    }

    /// Mines up to `timestamp` (a slot's start, say), then a block with `checkpoint`'s event.
    pub fn land_at(
        &self,
        timestamp: u64,
        checkpoint: &BuiltCheckpoint,
        with_calldata: bool,
    ) -> L1Ref {
        self.mine_until(timestamp);
        self.land(checkpoint, with_calldata)
    }

    /// Mines an empty block at `timestamp`.
    pub fn mine_empty(&self, timestamp: u64) -> L1Ref {
        self.mine_at(timestamp, Vec::new())
    }

    /// Drops blocks `from..` (a reorg); the next mined blocks get `salt`ed hashes.
    pub fn reorg_from(&self, from: u64) {
        self.with(|s| {
            s.blocks.truncate(from as usize);
            s.events.retain(|n, _| *n < from);
        });
    }

    /// Replaces blocks `from..` with blocks of the same timestamps but other hashes (and no
    /// events), right after the `after`-th call from now.
    pub fn reorg_during_sync(&self, after: u64, from: u64, salt: u8) {
        self.with(|s| s.reorg_after_call = Some((s.calls + after, from, salt)));
    }

    /// Makes every call wait until the returned sender sends `false`.
    pub fn pause(&self) -> tokio::sync::watch::Sender<bool> {
        let (tx, rx) = tokio::sync::watch::channel(true);
        self.with(|s| s.paused = Some(rx));
        tx
    }

    /// Mines blocks in place of the dropped ones, with `salt`ed hashes.
    pub fn remine(&self, timestamp: u64, events: Vec<L1CheckpointEvent>, salt: u8) -> L1Ref {
        self.mine_salted(timestamp, events, salt)
    }

    pub fn set_finalized(&self, number: Option<u64>) {
        self.with(|s| s.finalized = number);
    }

    /// The `n`-th call from now (1 = the next one) fails.
    pub fn fail_call_in(&self, n: u64) {
        self.with(|s| {
            let at = s.calls + n;
            s.fail_calls.insert(at);
        });
    }

    /// Reports `event` in block `number` as a log from another fork would come: with a block
    /// hash that is not the canonical one (a load-balanced RPC answering from a stale node).
    pub fn add_off_chain_event(&self, number: u64, mut event: L1CheckpointEvent) {
        self.with(|s| {
            let block = s.blocks[number as usize];
            event.l1 = L1Ref {
                hash: block_hash(number, 0xfe),
                ..block.reference()
            };
            s.events.entry(number).or_default().push(event);
        });
    }

    /// `finalized_block` fails while `fails`.
    pub fn fail_finalized(&self, fails: bool) {
        self.with(|s| s.finalized_fails = fails);
    }

    /// Every call fails while `down` (an unreachable L1 RPC).
    pub fn set_down(&self, down: bool) {
        self.with(|s| s.fail_all = down);
    }

    /// `block(number)` returns `None` (a lagging RPC) until cleared.
    pub fn hide_block(&self, number: u64, hidden: bool) {
        self.with(|s| {
            if hidden {
                s.missing.insert(number);
            } else {
                s.missing.remove(&number);
            }
        });
    }

    pub fn calls(&self) -> u64 {
        self.with(|s| s.calls)
    }

    async fn call(&self) -> Result<(), ArchiverError> {
        if let Some(mut paused) = self.with(|s| s.paused.clone()) {
            // A closed sender means "resumed" too.
            let _ = paused.wait_for(|paused| !paused).await;
        }
        let failed = self.with(|s| {
            s.calls += 1;
            s.fail_calls.remove(&s.calls) || s.fail_all
        });
        if failed {
            return Err(tandem_l1::L1Error::Unexpected("injected failure").into());
        }
        Ok(())
    }

    /// Applies a reorg planned to happen right after the current call.
    fn after_call(&self) {
        let reorg = self.with(|s| match s.reorg_after_call {
            Some((at, from, salt)) if s.calls == at => {
                s.reorg_after_call = None;
                Some((from, salt))
            }
            _ => None,
        });
        if let Some((from, salt)) = reorg {
            let timestamps: Vec<u64> = self.with(|s| {
                s.blocks[from as usize..]
                    .iter()
                    .map(|b| b.timestamp)
                    .collect()
            });
            self.reorg_from(from);
            for timestamp in timestamps {
                self.remine(timestamp, Vec::new(), salt);
            }
        }
    }
}

impl L1Source for FakeL1 {
    fn latest_block(&self) -> L1Future<'_, u64> {
        async move {
            self.call().await?;
            let head = self.head().number;
            self.after_call();
            Ok(head)
        }
        .boxed()
    }

    fn finalized_block(&self) -> L1Future<'_, Option<L1Block>> {
        async move {
            self.call().await?;
            if self.with(|s| s.finalized_fails) {
                return Err(tandem_l1::L1Error::Unexpected("finalized tag not supported").into());
            }
            let finalized =
                self.with(|s| s.finalized.and_then(|n| s.blocks.get(n as usize).copied()));
            self.after_call();
            Ok(finalized)
        }
        .boxed()
    }

    fn block(&self, number: u64) -> L1Future<'_, Option<L1Block>> {
        async move {
            self.call().await?;
            let block = self.with(|s| {
                if s.missing.contains(&number) {
                    None
                } else {
                    s.blocks.get(number as usize).copied()
                }
            });
            self.after_call();
            Ok(block)
        }
        .boxed()
    }

    fn checkpoint_events(&self, from: u64, to: u64) -> L1Future<'_, Vec<L1CheckpointEvent>> {
        async move {
            self.call().await?;
            let events = self.with(|s| {
                s.events
                    .range(from..=to)
                    .flat_map(|(_, events)| events.clone())
                    .collect()
            });
            self.after_call();
            Ok(events)
        }
        .boxed()
    }
}
