//! Block build time for 1,000 transfers through the job's builder path: candidates copied out
//! of a real pool (`TxPool::best` against the fork's nonces), `build_block` with
//! `CandidateTxs` on a fork of a real world state on RocksDB (executing and sealing the state
//! and archive trees), then `Fork::commit`. Each block comes from 1,000 senders not touched before (their
//! accounts are read from RocksDB, not a cache) paying 1,000 recipients that do not exist yet
//! (tree inserts), so no block is cheaper for following another.
//!
//! Prints p50/p99 of the copy, the build, the commit, and the whole, over `ITERS` blocks
//! (default 30). Run in release: `cargo bench -p tandem-sequencer --bench block_build`.
//!
//! Leaves out: signature recovery (done when a tx enters the pool, not in the build), the
//! state service's apply (the follower applies the executed block without executing it
//! again), and a big state (the genesis holds `ITERS × 1,000` funded accounts only).

use std::time::{Duration, Instant};

use tandem_proto::{
    Address, SigningDomain, SigningKey, Tx, TxPayload,
    time::{SystemClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, CandidateTxs, ChainSpec, PoolConfig, TX_MANA, TxPool, WorldState,
    WorldStateConfig, build_block,
};

const TXS: usize = 1_000;
const CHAIN_ID: u64 = 31_337;
const FEE: u128 = 10;

fn key(n: usize) -> SigningKey {
    let mut secret = [0x11u8; 32];
    secret[24..].copy_from_slice(&(n as u64 + 1).to_be_bytes());
    SigningKey::from_bytes(&secret).unwrap()
}

fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let domain = SigningDomain {
        chain_id: CHAIN_ID,
        rollup: Address::repeat_byte(0xaa),
    };
    let keys: Vec<SigningKey> = (0..iters * TXS).map(key).collect();
    let spec = ChainSpec {
        chain_id: CHAIN_ID,
        rollup_version: 1,
        genesis_allocation: keys.iter().map(|k| (k.address(), 1u128 << 80)).collect(),
    };
    let world =
        WorldState::open(&dir.path().join("world"), spec, WorldStateConfig::default()).unwrap();
    let clock = SystemClock;
    let (mut copy, mut build, mut commit, mut total) = (vec![], vec![], vec![], vec![]);
    for iter in 0..iters {
        // This block's txs: one per fresh sender, to a fresh recipient.
        let mut pool = TxPool::new(PoolConfig::default());
        for (n, signer) in keys[iter * TXS..(iter + 1) * TXS].iter().enumerate() {
            let mut to = [0u8; 20];
            to[..8].copy_from_slice(&((iter * TXS + n) as u64).to_be_bytes());
            to[19] = 0xee;
            let tx = Tx::sign(
                TxPayload {
                    chain_id: CHAIN_ID,
                    nonce: 0,
                    to: Address::from(to),
                    amount: 1_000 + n as u128,
                    max_fee_per_mana: FEE,
                    mana_limit: TX_MANA,
                },
                &domain,
                signer,
            );
            let tx = tandem_state::validate_stateless(tx, &domain).unwrap();
            let account = world.account(&tx.sender());
            pool.add(tx, &account).unwrap();
        }
        let mut fork = world.fork(world.tip().number).unwrap();
        let globals = BlockGlobals {
            checkpoint_number: 1,
            index_within_checkpoint: 0,
            slot: 1,
            timestamp: 0,
            coinbase: Address::repeat_byte(0xc0),
            fee_recipient: Address::repeat_byte(0xfe),
            fee_per_mana: FEE,
        };
        let limits = BuildLimits {
            max_txs: TXS,
            max_mana: u64::MAX,
            max_body_bytes: usize::MAX,
            deadline: Timestamp(u64::MAX),
        };
        let started = Instant::now();
        let candidates: Vec<_> = pool
            .best(|address| fork.account(address).nonce)
            .take(TXS + 64)
            .collect();
        let copied = Instant::now();
        let built = build_block(
            &fork,
            &globals,
            &mut CandidateTxs::new(candidates),
            &limits,
            &clock,
        )
        .unwrap();
        let built_at = Instant::now();
        assert_eq!(built.txs.len(), TXS, "failed: {:?}", built.failed.first());
        let (executed, _) = fork.commit(built).unwrap();
        let done = Instant::now();
        assert_eq!(executed.block().txs.len(), TXS);
        copy.push(copied - started);
        build.push(built_at - copied);
        commit.push(done - built_at);
        total.push(done - started);
    }
    println!("== block of {TXS} transfers, {iters} blocks, world state on RocksDB");
    for (name, values) in [
        ("copy candidates", &copy),
        ("build_block", &build),
        ("commit", &commit),
        ("total", &total),
    ] {
        println!(
            "{name:>16}: p50 {:>8.2} ms, p99 {:>8.2} ms",
            percentile(values, 0.5).as_secs_f64() * 1e3,
            percentile(values, 0.99).as_secs_f64() * 1e3
        );
    }
}
