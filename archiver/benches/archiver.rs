//! Archiver figures. Run: `cargo bench -p tandem-archiver` (needs `.tools/bin/anvil` for the L1
//! sync figure; run `scripts/install-tools.sh` first).
//!
//! - proposed-block insertion through the actor: 100 distinct txs per block, a proposed
//!   checkpoint every 10 blocks and its promotion by (in-memory) L1 through the actor's own sync,
//!   so the in-memory tx index grows and moves to disk as it really would;
//! - reads through `ArchiverReader` (block by archive root) while that writer inserts;
//! - the L1 path (a node that never saw the blocks, store-level);
//! - tips read latency through the handle and L1 sync speed from a local anvil.

#[path = "../tests/common/mod.rs"]
#[allow(missing_docs)]
mod common;

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::primitives::Bytes;
use common::{BuiltCheckpoint, Chain, DOMAIN, FakeL1, open_store};
use tandem_archiver::{ArchiverActor, ArchiverTiming, SyncConfig};
use tandem_l1::{L1Reader, RollupParams, harness::AnvilHarness};
use tandem_proto::{
    Address, RecoveredTx, SigningKey, Tx, TxPayload,
    time::{ConsensusWindows, ManualClock, PipeliningMode, SlotClock, SystemClock, Timestamp},
};

const TXS_PER_BLOCK: usize = 100;
const BLOCKS: usize = 3_000;
const BLOCKS_PER_CHECKPOINT: usize = 10;

/// `count` distinct txs, cheaply: one valid signature over varying payloads recovers to a
/// different (random) sender each time, which is all the archiver sees. Recovery runs on two
/// threads (it is the slow part of the preparation, not of the measurement).
fn distinct_txs(count: usize) -> Vec<RecoveredTx> {
    let key = SigningKey::from_bytes(&[5; 32]).expect("key");
    let template = Tx::sign(
        TxPayload {
            chain_id: 1,
            nonce: 0,
            to: Address::repeat_byte(2),
            amount: 1,
            max_fee_per_mana: 1,
            mana_limit: 10_000,
        },
        &DOMAIN,
        &key,
    );
    let make = |range: std::ops::Range<usize>| -> Vec<RecoveredTx> {
        range
            .filter_map(|i| {
                let mut tx = template.clone();
                tx.payload.amount = i as u128 + 1;
                tx.into_recovered(&DOMAIN).ok()
            })
            .collect()
    };
    // Ask for a few more: a payload whose digest does not recover is skipped.
    let total = count + count / 100 + 10;
    let mut txs = std::thread::scope(|scope| {
        let half = total / 2;
        let first = scope.spawn(move || make(0..half));
        let second = make(half..total);
        let mut all = first.join().expect("thread");
        all.extend(second);
        all
    });
    txs.truncate(count);
    assert_eq!(txs.len(), count);
    txs
}

fn prepare_chain() -> Vec<BuiltCheckpoint> {
    let mut txs = distinct_txs(BLOCKS * TXS_PER_BLOCK).into_iter();
    let mut chain = Chain::new();
    (1..=(BLOCKS / BLOCKS_PER_CHECKPOINT) as u64)
        .map(|number| {
            let per_block = (0..BLOCKS_PER_CHECKPOINT)
                .map(|_| txs.by_ref().take(TXS_PER_BLOCK).collect())
                .collect();
            chain.checkpoint_with_txs(number, number, per_block, 1)
        })
        .collect()
}

fn timing(clock: Arc<dyn tandem_proto::time::Clock>, genesis: u64, slot: u64) -> ArchiverTiming {
    let slot_clock = SlotClock::new(
        Timestamp::from_secs(genesis),
        Duration::from_secs(slot),
        Duration::from_secs(1),
        32,
    )
    .expect("clock");
    ArchiverTiming {
        clock,
        slot_clock,
        windows: ConsensusWindows::new(
            slot_clock,
            Duration::from_secs(1),
            PipeliningMode::Pipelined,
            Duration::from_secs(1),
        ),
        poll_interval: Duration::from_millis(5),
    }
}

/// CPU time this process used so far (all threads, user + system), from `/proc/self/stat`
/// (clock ticks of 10 ms): the figure other processes on the machine do not inflate.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("ticks");
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU time of the calling thread, from `/proc/thread-self/schedstat` (nanoseconds).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse::<u64>().ok())
        .expect("schedstat format");
    Duration::from_nanos(ns)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Blocks through the actor's queue, one at a time as a gossip handler sends them; a proposed
/// checkpoint after every 10th, landed on the in-memory L1 right away and promoted by the actor's
/// own sync (every 5 ms) between queued blocks. With `reads`, another thread reads blocks by
/// archive root through `ArchiverReader` the whole time.
/// Signed block proposals, checkpoint proposal and L1 event of each checkpoint.
type Inputs = Vec<(
    Vec<tandem_archiver::ProposedBlock>,
    tandem_archiver::ProposedCheckpointInput,
    tandem_archiver::L1CheckpointEvent,
)>;

fn inputs(prepared: &[BuiltCheckpoint]) -> Inputs {
    prepared
        .iter()
        .map(|cp| {
            let blocks: Vec<_> = (0..cp.blocks.len()).map(|i| cp.proposed_block(i)).collect();
            (blocks, cp.proposed(), cp.event(true))
        })
        .collect()
}

/// A store for the insertion benches: they put 300 slots' worth of checkpoints into seconds, so
/// the cap on checkpoints above the checkpointed tip (a bound per slot of L1 lag) is lifted.
fn bench_store(path: &std::path::Path) -> tandem_archiver::ArchiverStore {
    let mut store = open_store(path);
    store.set_max_proposed_depth(u64::MAX);
    store
}

async fn actor_insertion(prepared: &[BuiltCheckpoint], inputs: Inputs, reads: bool) {
    let dir = tempfile::tempdir().expect("dir");
    let store = bench_store(dir.path());
    // L1 timestamps stay before genesis: L1 time never prunes anything here.
    let l1 = FakeL1::new(1, |_| 900);
    let clock: Arc<dyn tandem_proto::time::Clock> =
        Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
    let config = SyncConfig {
        deployment_block: 1,
        confirmations: 0,
        batch_size: 1_000,
        max_batches_per_step: 4,
        orphan_prune_tolerance: Duration::from_secs(1),
    };
    let (handle, actor) = ArchiverActor::new(
        store,
        Arc::new(l1.clone()),
        None,
        config,
        timing(clock, 1_000, 1),
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(actor.run(cancel.clone()));

    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicUsize::new(0));
    let reader_thread = reads.then(|| {
        let reader = handle.reader().clone();
        let roots: Vec<_> = prepared
            .iter()
            .flat_map(|cp| cp.archive_roots.clone())
            .collect();
        let stop = stop.clone();
        let inserted = inserted.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::with_capacity(1 << 20);
            let mut i = 0usize;
            let cpu_before = thread_cpu();
            while !stop.load(Ordering::Relaxed) {
                let available = inserted.load(Ordering::Relaxed);
                if available == 0 {
                    std::thread::yield_now();
                    continue;
                }
                // Spread over what is stored, a step that visits old and new blocks.
                i = (i + 7_919) % available;
                let started = Instant::now();
                let block = reader
                    .view()
                    .expect("view")
                    .block_by_archive(&roots[i])
                    .expect("read");
                latencies.push(started.elapsed());
                assert_eq!(block.expect("stored").block.txs.len(), TXS_PER_BLOCK);
            }
            (latencies, thread_cpu() - cpu_before)
        })
    });

    let started = Instant::now();
    let cpu_before = cpu_seconds();
    for (blocks, proposed, event) in inputs {
        for block in blocks {
            let added = handle.add_block(block).await.expect("block");
            black_box(added);
            inserted.fetch_add(1, Ordering::Relaxed);
        }
        handle
            .add_proposed_checkpoint(proposed)
            .await
            .expect("proposed checkpoint");
        l1.mine_at(900, vec![event]);
    }
    let blocks_done = started.elapsed();
    let last = prepared.last().expect("checkpoints").number;
    let mut tips = handle.watch_tips();
    tips.wait_for(|tips| tips.checkpointed.checkpoint.number == last)
        .await
        .expect("promoted");
    let all_done = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let blocks = prepared.len() * BLOCKS_PER_CHECKPOINT;
    println!(
        "actor, proposed blocks{}: {blocks} blocks x {TXS_PER_BLOCK} distinct txs in {:.2} s = {:>6.0} blocks/s ({:.2} s until the last promotion: {:>6.0} blocks/s; {:.2} CPU-s, {:>6.0} blocks per CPU-s)",
        if reads { " + concurrent reads" } else { "" },
        blocks_done.as_secs_f64(),
        blocks as f64 / blocks_done.as_secs_f64(),
        all_done.as_secs_f64(),
        blocks as f64 / all_done.as_secs_f64(),
        cpu,
        blocks as f64 / cpu,
    );
    if let Some(thread) = reader_thread {
        let (mut latencies, cpu) = thread.join().expect("reader");
        latencies.sort();
        println!(
            "reader, block by archive (100 txs) while the writer inserts: {} reads, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs; {:.1} µs of the reader thread's CPU per read",
            latencies.len(),
            percentile(&latencies, 0.5).as_secs_f64() * 1e6,
            percentile(&latencies, 0.99).as_secs_f64() * 1e6,
            latencies.last().expect("reads").as_secs_f64() * 1e6,
            cpu.as_secs_f64() * 1e6 / latencies.len() as f64,
        );
    }
    if reads {
        // The same reads with the writer idle, for comparison.
        let reader = handle.reader();
        let roots: Vec<_> = prepared
            .iter()
            .flat_map(|cp| cp.archive_roots.clone())
            .collect();
        let mut latencies = Vec::with_capacity(roots.len());
        for root in roots.iter().step_by(3) {
            let started = Instant::now();
            let block = reader
                .view()
                .expect("view")
                .block_by_archive(root)
                .expect("read");
            latencies.push(started.elapsed());
            assert!(block.is_some());
        }
        latencies.sort();
        println!(
            "reader, block by archive (100 txs), writer idle: {} reads, p50 {:.1} µs, p99 {:.1} µs",
            latencies.len(),
            percentile(&latencies, 0.5).as_secs_f64() * 1e6,
            percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        );
    }
    cancel.cancel();
    task.await.expect("join").expect("actor");
}

/// The same blocks and proposed checkpoints straight into the store (no actor, no L1): the
/// store's own cost.
fn store_proposed_path(prepared: &[BuiltCheckpoint], inputs: Inputs) {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = bench_store(dir.path());
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    for (blocks, proposed, _) in inputs {
        for block in blocks {
            black_box(store.add_proposed_block(block).expect("block"));
        }
        black_box(store.add_proposed_checkpoint(proposed).expect("checkpoint"));
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let blocks = prepared.len() * BLOCKS_PER_CHECKPOINT;
    println!(
        "store, proposed path: {blocks} blocks x {TXS_PER_BLOCK} txs in {:.2} s = {:>6.0} blocks/s, {:>6.0} blocks per CPU-s (a proposed checkpoint every {BLOCKS_PER_CHECKPOINT}, none promoted)",
        elapsed.as_secs_f64(),
        blocks as f64 / elapsed.as_secs_f64(),
        blocks as f64 / cpu,
    );
}

/// A node that never saw the blocks: every checkpoint inserted from its L1 body (fsynced).
fn l1_path(prepared: &[BuiltCheckpoint]) {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = open_store(dir.path());
    let inputs: Vec<_> = prepared.iter().map(|cp| cp.l1(cp.number)).collect();
    let started = Instant::now();
    for input in inputs {
        store.add_l1_checkpoint(input).expect("insert");
    }
    let elapsed = started.elapsed();
    let blocks = prepared.len() * BLOCKS_PER_CHECKPOINT;
    println!(
        "store, L1 path:       {blocks} blocks x {TXS_PER_BLOCK} txs in {:.2} s = {:>6.0} blocks/s (fsynced write per checkpoint of {BLOCKS_PER_CHECKPOINT})",
        elapsed.as_secs_f64(),
        blocks as f64 / elapsed.as_secs_f64()
    );
}

async fn tips_latency_and_l1_sync() {
    const CHECKPOINTS: u64 = 60;
    let harness = AnvilHarness::start(None);
    let now = harness.latest_timestamp().await.expect("timestamp");
    let mut params = RollupParams::with_genesis(now);
    params.slot_duration = 2;
    params.l1_slot_duration = 1;
    // Sub-slot timing within the 2 s slot (the contract checks both are shorter than a slot).
    params.block_duration_ms = 500;
    params.last_block_reexecution_budget_ms = 500;
    params.committee_size = 4;
    params.l2_chain_id = 1;
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]).expect("key"))
        .collect();
    let addresses: Vec<Address> = keys.iter().map(SigningKey::address).collect();
    params.genesis_archive = Chain::new().archive.root();
    let deployment = harness.deploy(&params, &addresses).await.expect("deploy");
    let reader = L1Reader::new(harness.provider(), deployment.rollup);
    let genesis_time = deployment.params.genesis_time;
    let mut chain = Chain {
        genesis_time,
        slot_duration: 2,
        ..Chain::new()
    };
    let mut txs = distinct_txs(CHECKPOINTS as usize * 40).into_iter();
    for number in 1..=CHECKPOINTS {
        // The fee follows the mana the previous checkpoints used.
        chain.fee_per_mana = reader
            .mana_min_fee(None, alloy::eips::BlockId::latest())
            .await
            .expect("fee");
        let per_block = (0..4).map(|_| txs.by_ref().take(10).collect()).collect();
        let checkpoint = chain.checkpoint_with_txs(number, number + 1, per_block, 1);
        let body = Bytes::from(tandem_proto::encode_checkpoint_body(&checkpoint.blocks));
        harness
            .land_checkpoint(&deployment, &keys, number, checkpoint.payload, body, 3)
            .await
            .expect("land");
    }

    let dir = tempfile::tempdir().expect("dir");
    let store = open_store(dir.path());
    let config = SyncConfig {
        deployment_block: deployment.deployment_block,
        confirmations: 0,
        batch_size: 1_000,
        max_batches_per_step: 1_000,
        orphan_prune_tolerance: Duration::from_secs(1),
    };
    let mut timing = timing(Arc::new(SystemClock), genesis_time, 2);
    timing.poll_interval = Duration::from_secs(3600);
    // The actor syncs on its first tick at start: time from before it starts.
    let started = Instant::now();
    let (handle, actor) = ArchiverActor::new(store, Arc::new(reader), None, config, timing);
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
        "L1 sync from anvil:   {CHECKPOINTS} checkpoints ({} blocks) in {:.2} s = {:>6.0} checkpoints/s",
        CHECKPOINTS * 4,
        elapsed.as_secs_f64(),
        CHECKPOINTS as f64 / elapsed.as_secs_f64()
    );

    let reads = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..reads {
        black_box(handle.tips());
    }
    println!(
        "tips read (handle):   {:>7.1} ns",
        started.elapsed().as_nanos() as f64 / f64::from(reads)
    );
    cancel.cancel();
    let _ = task.await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let prepared = prepare_chain();
    // Signed proposals and L1 events are made before any clock starts.
    let inputs = inputs(&prepared);
    println!(
        "(prepared {BLOCKS} blocks of {TXS_PER_BLOCK} distinct txs in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    // `TANDEM_ARCHIVER_BENCH=store|actor` runs only that part (for profiling).
    let only = std::env::var("TANDEM_ARCHIVER_BENCH").unwrap_or_default();
    if only != "actor" && only != "actor1" {
        store_proposed_path(&prepared, inputs.clone());
    }
    if only == "store" {
        return;
    }
    if only == "reads" {
        // Profiling the read path: blocks stored, then reads only.
        let dir = tempfile::tempdir().expect("dir");
        let mut store = bench_store(dir.path());
        for (blocks, proposed, _) in inputs {
            for block in blocks {
                store.add_proposed_block(block).expect("block");
            }
            store.add_proposed_checkpoint(proposed).expect("checkpoint");
        }
        let reader = store.reader();
        let roots: Vec<_> = prepared
            .iter()
            .flat_map(|cp| cp.archive_roots.clone())
            .collect();
        let started = Instant::now();
        for round in 0..400 {
            for root in roots.iter().skip(round % 7).step_by(7) {
                black_box(
                    reader
                        .view()
                        .expect("view")
                        .block_by_archive(root)
                        .expect("read"),
                );
            }
        }
        let reads = 400 * roots.len() / 7;
        println!(
            "reader, idle: {:.1} µs per block by archive",
            started.elapsed().as_secs_f64() * 1e6 / reads as f64
        );
        return;
    }
    if only == "actor1" {
        let single = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        single.block_on(actor_insertion(&prepared, inputs, false));
        return;
    }
    runtime.block_on(actor_insertion(&prepared, inputs.clone(), false));
    if only == "actor" {
        return;
    }
    runtime.block_on(actor_insertion(&prepared, inputs, true));
    l1_path(&prepared);
    runtime.block_on(tips_latency_and_l1_sync());
}
