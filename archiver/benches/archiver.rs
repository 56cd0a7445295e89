//! Archiver figures. Run: `cargo bench -p tandem-archiver` (needs `.tools/bin/anvil` for the L1
//! sync figure; run `scripts/install-tools.sh` first).
//!
//! - insert throughput of blocks with 100 txs: proposed-block path and L1 path;
//! - tips read latency through the handle;
//! - L1 sync speed from a local anvil (checkpoints/s).

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::Bytes;
use tandem_archiver::{
    ArchiverActor, ArchiverStore, ArchiverTiming, L1CheckpointInput, L1Ref,
    ProposedCheckpointInput, SyncConfig,
};
use tandem_l1::{L1Reader, RollupParams, harness::AnvilHarness};
use tandem_proto::{
    Address, B256, Block, BlockHeader, CheckpointHeader, ConsensusPayload, RecoveredTx,
    SigningDomain, SigningKey, Tx, TxPayload,
    archive::ArchiveTree,
    block_body_hash, block_headers_hash, encode_checkpoint_body, keccak256,
    time::{ConsensusWindows, PipeliningMode, SlotClock, SystemClock, Timestamp},
};

const TXS_PER_BLOCK: usize = 100;
const BLOCKS: u64 = 5_000;
const BLOCKS_PER_CHECKPOINT: u64 = 4;

fn genesis() -> BlockHeader {
    BlockHeader {
        chain_id: 1,
        rollup_version: 1,
        last_archive_root: ArchiveTree::new().root(),
        ..Default::default()
    }
}

/// Block-producing state: the archive and counters.
struct Producer {
    archive: ArchiveTree,
    next_block: u64,
    txs: Vec<Tx>,
    fee: u128,
    slot_time: Box<dyn Fn(u64) -> u64>,
}

impl Producer {
    fn new(fee: u128, slot_time: Box<dyn Fn(u64) -> u64>) -> Self {
        let mut archive = ArchiveTree::new();
        archive.append(genesis().hash()).expect("room");
        let key = SigningKey::from_bytes(&[5; 32]).expect("key");
        let domain = SigningDomain {
            chain_id: 1,
            rollup: Address::ZERO,
        };
        let txs = (0..TXS_PER_BLOCK as u64)
            .map(|nonce| {
                let payload = TxPayload {
                    chain_id: 1,
                    nonce,
                    to: Address::repeat_byte(2),
                    amount: 1,
                    max_fee_per_mana: 1,
                    mana_limit: 10_000,
                };
                Tx::sign(payload, &domain, &key)
            })
            .collect();
        Self {
            archive,
            next_block: 1,
            txs,
            fee,
            slot_time,
        }
    }

    fn checkpoint(&mut self, number: u64, slot: u64, txs: usize) -> (Vec<Block>, ConsensusPayload) {
        let parent_archive = self.archive.root();
        let txs: Vec<Tx> = self.txs[..txs].to_vec();
        let body_hash = block_body_hash(&txs.iter().map(Tx::hash).collect::<Vec<_>>());
        let mut blocks = Vec::new();
        for index in 0..BLOCKS_PER_CHECKPOINT {
            let header = BlockHeader {
                last_archive_root: self.archive.root(),
                state_root: keccak256(self.next_block.to_be_bytes()),
                body_hash,
                chain_id: 1,
                rollup_version: 1,
                block_number: self.next_block,
                checkpoint_number: number,
                index_within_checkpoint: index as u32,
                slot,
                timestamp: (self.slot_time)(slot),
                coinbase: Address::repeat_byte(1),
                fee_per_mana: self.fee,
                ..Default::default()
            };
            self.archive.append(header.hash()).expect("room");
            self.next_block += 1;
            blocks.push(Block {
                header,
                txs: txs.clone(),
            });
        }
        let hashes: Vec<B256> = blocks.iter().map(Block::hash).collect();
        let header = CheckpointHeader {
            last_archive_root: parent_archive,
            block_headers_hash: block_headers_hash(&hashes),
            body_hash: keccak256(encode_checkpoint_body(&blocks)),
            slot,
            timestamp: (self.slot_time)(slot),
            coinbase: Address::repeat_byte(1),
            fee_per_mana: self.fee,
            ..Default::default()
        };
        (
            blocks,
            ConsensusPayload {
                header,
                archive: self.archive.root(),
                fee_asset_price_modifier: 0,
            },
        )
    }
}

fn insert_throughput() {
    // Pure proposed-block path: blocks of one long checkpoint, no checkpoint writes in between.
    {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = ArchiverStore::open(dir.path(), &genesis()).expect("open");
        let mut producer = Producer::new(0, Box::new(|slot| slot));
        let mut blocks = Vec::new();
        for _ in 0..BLOCKS / BLOCKS_PER_CHECKPOINT {
            let (mut more, _) = producer.checkpoint(1, 1, TXS_PER_BLOCK);
            blocks.append(&mut more);
        }
        for (index, block) in blocks.iter_mut().enumerate() {
            block.header.index_within_checkpoint = index as u32;
        }
        // Re-chain after renumbering the indices (they are part of the hash).
        let mut archive = ArchiveTree::new();
        archive.append(genesis().hash()).expect("room");
        for block in &mut blocks {
            block.header.last_archive_root = archive.root();
            archive.append(block.hash()).expect("room");
        }
        // Blocks arrive executed: their txs carry the hash computed at admission.
        let domain = SigningDomain {
            chain_id: 1,
            rollup: Address::ZERO,
        };
        let executed: Vec<(BlockHeader, Vec<RecoveredTx>)> = blocks
            .into_iter()
            .map(|block| {
                let txs = block
                    .txs
                    .into_iter()
                    .map(|tx| tx.into_recovered(&domain).expect("valid"))
                    .collect();
                (block.header, txs)
            })
            .collect();
        let started = Instant::now();
        for (header, txs) in executed {
            store
                .add_proposed_block_recovered(header, &txs)
                .expect("block");
        }
        let elapsed = started.elapsed();
        println!(
            "proposed-block path: {BLOCKS} blocks x {TXS_PER_BLOCK} txs in {:.2} s = {:>7.0} blocks/s (unsynced batches)",
            elapsed.as_secs_f64(),
            BLOCKS as f64 / elapsed.as_secs_f64()
        );
    }

    // Steady state: blocks, a proposed checkpoint every few blocks, and its synced promotion.
    let dir = tempfile::tempdir().expect("dir");
    let mut store = ArchiverStore::open(dir.path(), &genesis()).expect("open");
    let mut producer = Producer::new(0, Box::new(|slot| slot));
    let mut prepared = Vec::new();
    for number in 1..=BLOCKS / BLOCKS_PER_CHECKPOINT {
        prepared.push((number, producer.checkpoint(number, number, TXS_PER_BLOCK)));
    }
    let started = Instant::now();
    for (number, (blocks, payload)) in &prepared {
        let start_block = blocks[0].header.block_number;
        for block in blocks {
            store.add_proposed_block(block.clone()).expect("block");
        }
        store
            .add_proposed_checkpoint(ProposedCheckpointInput {
                number: *number,
                payload: payload.clone(),
                start_block,
                block_count: BLOCKS_PER_CHECKPOINT,
            })
            .expect("checkpoint");
        // Keep one proposed checkpoint at a time, as in steady state: promote it.
        let input = L1CheckpointInput {
            number: *number,
            payload: payload.clone(),
            l1: L1Ref {
                number: *number,
                hash: B256::ZERO,
                timestamp: 0,
            },
            attestations: Vec::new(),
            blocks: Vec::new(),
        };
        store.add_l1_checkpoint(input).expect("promote");
    }
    let elapsed = started.elapsed();
    println!(
        "steady state:        {BLOCKS} blocks x {TXS_PER_BLOCK} txs in {:.2} s = {:>7.0} blocks/s (+ proposed checkpoint and synced L1 promotion every {BLOCKS_PER_CHECKPOINT} blocks)",
        elapsed.as_secs_f64(),
        BLOCKS as f64 / elapsed.as_secs_f64()
    );

    // L1 path: a node that never saw the blocks.
    let dir = tempfile::tempdir().expect("dir");
    let mut store = ArchiverStore::open(dir.path(), &genesis()).expect("open");
    let started = Instant::now();
    for (number, (blocks, payload)) in prepared {
        let input = L1CheckpointInput {
            number,
            payload,
            l1: L1Ref {
                number,
                hash: B256::ZERO,
                timestamp: 0,
            },
            attestations: Vec::new(),
            blocks,
        };
        store.add_l1_checkpoint(input).expect("insert");
    }
    let elapsed = started.elapsed();
    println!(
        "L1 path:             {BLOCKS} blocks x {TXS_PER_BLOCK} txs in {:.2} s = {:>7.0} blocks/s (synced write per checkpoint)",
        elapsed.as_secs_f64(),
        BLOCKS as f64 / elapsed.as_secs_f64()
    );
}

async fn tips_latency_and_l1_sync() {
    const CHECKPOINTS: u64 = 60;
    let harness = AnvilHarness::start(None);
    let now = harness.latest_timestamp().await.expect("timestamp");
    let mut params = RollupParams::with_genesis(now);
    params.slot_duration = 2;
    params.l1_slot_duration = 1;
    params.committee_size = 4;
    params.l2_chain_id = 1;
    params.block_duration_ms = 1_000;
    params.last_block_reexecution_budget_ms = 1_000;
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]).expect("key"))
        .collect();
    let addresses: Vec<Address> = keys.iter().map(SigningKey::address).collect();
    let mut producer_archive = ArchiveTree::new();
    producer_archive.append(genesis().hash()).expect("room");
    params.genesis_archive = producer_archive.root();
    let deployment = harness.deploy(&params, &addresses).await.expect("deploy");
    let reader = L1Reader::new(harness.provider(), deployment.rollup);
    let fee = reader
        .mana_min_fee(None, alloy::eips::BlockId::latest())
        .await
        .expect("fee");
    let genesis_time = deployment.params.genesis_time;
    let mut producer = Producer::new(fee, Box::new(move |slot| genesis_time + 2 * slot));
    for number in 1..=CHECKPOINTS {
        let (blocks, payload) = producer.checkpoint(number, number + 1, 10);
        let body = Bytes::from(encode_checkpoint_body(&blocks));
        harness
            .land_checkpoint(&deployment, &keys, number, payload, body, 3)
            .await
            .expect("land");
    }

    let dir = tempfile::tempdir().expect("dir");
    let store = ArchiverStore::open(dir.path(), &genesis()).expect("open");
    let slot_clock = SlotClock::new(
        Timestamp::from_secs(genesis_time),
        Duration::from_secs(2),
        Duration::from_secs(1),
        32,
    )
    .expect("clock");
    let timing = ArchiverTiming {
        clock: Arc::new(SystemClock),
        slot_clock,
        windows: ConsensusWindows::new(
            slot_clock,
            Duration::from_secs(1),
            PipeliningMode::Pipelined,
            Duration::from_secs(1),
        ),
        poll_interval: Duration::from_secs(3600),
    };
    let config = SyncConfig {
        deployment_block: deployment.deployment_block,
        confirmations: 0,
        batch_size: 1_000,
        max_batches_per_step: 1_000,
        orphan_prune_tolerance: Duration::from_secs(1),
    };
    // The actor syncs on its first tick at start: time from before it starts.
    let started = Instant::now();
    let (handle, actor) = ArchiverActor::new(store, reader, config, timing);
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(actor.run(cancel.clone()));
    let mut report = handle.sync_now().await.expect("sync");
    while report.behind {
        report = handle.sync_now().await.expect("sync");
    }
    let elapsed = started.elapsed();
    let synced = handle.tips().checkpointed.checkpoint.number;
    assert_eq!(synced, CHECKPOINTS);
    println!(
        "L1 sync from anvil:  {CHECKPOINTS} checkpoints ({} blocks) in {:.2} s = {:>6.0} checkpoints/s",
        CHECKPOINTS * BLOCKS_PER_CHECKPOINT,
        elapsed.as_secs_f64(),
        CHECKPOINTS as f64 / elapsed.as_secs_f64()
    );

    let reads = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..reads {
        black_box(handle.tips());
    }
    println!(
        "tips read (handle):  {:>7.1} ns",
        started.elapsed().as_nanos() as f64 / f64::from(reads)
    );
    cancel.cancel();
    let _ = task.await;
}

fn main() {
    insert_throughput();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(tips_latency_and_l1_sync());
}
