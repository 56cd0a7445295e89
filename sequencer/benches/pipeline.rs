//! Figures of the sequencer on real parts (the integration tests' network: anvil, RocksDB,
//! libp2p on loopback, 4 validators + a full node, `ci` profile), read from the sequencers'
//! events:
//! 1. pipelined, `SLOTS` slots (default 30): blocks per checkpoint realized vs the
//!    timetable's max, build start offset from the frame opening (p50/p99), attestation
//!    collection time (p50/p99), checkpoints landed;
//! 2. the same non-pipelined;
//! 3. the largest block the body cap allows (one block per checkpoint): its build time
//!    through the job (execution and sealing, on the node's real world state).
//!
//! Leaves out: a remote L1 (anvil is local), real network latency (loopback), a big state
//! (a handful of funded accounts), and the fsync of a busy disk (temp dirs on this VM).
//! Run: `cargo bench -p tandem-sequencer --bench pipeline` (`SLOTS=N` to shorten).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use tandem_proto::time::PipeliningMode;
use tandem_sequencer::{SequencerConfig, SequencerEvent};

#[derive(Default)]
struct Figures {
    blocks: Vec<usize>,
    frame_offsets_ms: Vec<u64>,
    attestation_ms: Vec<u64>,
    build_micros: Vec<(usize, u64)>,
    landed: usize,
    outcomes: usize,
}

fn percentile<T: Copy + Ord>(values: &[T], p: f64) -> Option<T> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied()
}

async fn run(
    mode: PipeliningMode,
    slots: u64,
    blocks_cap: Option<u32>,
    config: SequencerConfig,
    preload: (usize, u64),
) -> (Figures, usize) {
    let net = Network::start_capped(mode, blocks_cap).await;
    let max = net.timetable.max_blocks_per_checkpoint() as usize;
    let (nodes, mut events) = start_network_with(&net, config, preload).await;
    let mut figures = Figures::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(slots * S + 30);
    while (figures.outcomes as u64) < slots {
        let Ok(Some((_, event))) = tokio::time::timeout_at(deadline, events.recv()).await else {
            break;
        };
        match event {
            SequencerEvent::Preparing {
                frame_offset_ms, ..
            } => {
                figures.frame_offsets_ms.push(frame_offset_ms);
            }
            SequencerEvent::BlockProposed {
                txs, build_micros, ..
            } => figures.build_micros.push((txs, build_micros)),
            SequencerEvent::CheckpointProposed { blocks, .. } => figures.blocks.push(blocks),
            SequencerEvent::AttestationsCollected { elapsed_ms, .. } => {
                figures.attestation_ms.push(elapsed_ms);
            }
            SequencerEvent::CheckpointOutcome { result, .. } => {
                figures.outcomes += 1;
                if result == "landed" {
                    figures.landed += 1;
                }
            }
            _ => {}
        }
    }
    for node in nodes {
        node.stop().await;
    }
    (figures, max)
}

fn report(name: &str, figures: &Figures, max: usize) {
    let at_max = figures.blocks.iter().filter(|b| **b == max).count();
    println!("== {name}");
    println!(
        "checkpoints built {}, landed {} of {} finished",
        figures.blocks.len(),
        figures.landed,
        figures.outcomes
    );
    println!(
        "blocks per checkpoint: timetable max {max}; realized {:?}; at max {at_max}/{}; mean {:.2}",
        figures.blocks,
        figures.blocks.len(),
        figures.blocks.iter().sum::<usize>() as f64 / figures.blocks.len().max(1) as f64
    );
    println!(
        "build start offset from the frame opening: p50 {:?} ms, p99 {:?} ms",
        percentile(&figures.frame_offsets_ms, 0.5),
        percentile(&figures.frame_offsets_ms, 0.99)
    );
    println!(
        "attestation collection: p50 {:?} ms, p99 {:?} ms",
        percentile(&figures.attestation_ms, 0.5),
        percentile(&figures.attestation_ms, 0.99)
    );
}

fn main() {
    let slots: u64 = std::env::var("SLOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let two_per_block = sequencer_config(Default::default());
        let (figures, max) = run(
            PipeliningMode::Pipelined,
            slots,
            None,
            two_per_block.clone(),
            (16, 60),
        )
        .await;
        report("pipelined", &figures, max);
        let (figures, max) = run(
            PipeliningMode::NonPipelined,
            slots,
            None,
            two_per_block,
            (16, 60),
        )
        .await;
        report("non-pipelined", &figures, max);
        // One block per checkpoint, as many txs as the body cap allows.
        let big = SequencerConfig {
            poll_interval: Duration::from_millis(100),
            max_txs_per_block: Some(1_000),
            ..SequencerConfig::default()
        };
        let (figures, _) = run(PipeliningMode::Pipelined, 4, Some(1), big, (32, 60)).await;
        let big_blocks: Vec<&(usize, u64)> = figures
            .build_micros
            .iter()
            .filter(|(txs, _)| *txs >= 800)
            .collect();
        println!("== largest block the body cap allows, built through the job");
        for (txs, micros) in &big_blocks {
            println!(
                "block of {txs} txs: built in {:.1} ms",
                *micros as f64 / 1_000.0
            );
        }
        let micros: Vec<u64> = big_blocks.iter().map(|(_, m)| *m).collect();
        if let Some(p50) = percentile(&micros, 0.5) {
            let txs = big_blocks[0].0 as f64;
            println!(
                "p50 {:.1} ms for {txs} txs = {:.1} ms per 1,000 txs",
                p50 as f64 / 1_000.0,
                p50 as f64 / txs
            );
        }
    });
}
