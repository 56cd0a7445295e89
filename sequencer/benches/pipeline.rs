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
use tandem_sequencer::SequencerConfig;

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
        figures.record(&event);
    }
    for node in nodes {
        node.stop().await;
    }
    (figures, max)
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
        figures.print("pipelined", max);
        let (figures, max) = run(
            PipeliningMode::NonPipelined,
            slots,
            None,
            two_per_block,
            (16, 60),
        )
        .await;
        figures.print("non-pipelined", max);
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
