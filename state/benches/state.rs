//! World-state figures on one core. Run: `cargo bench -p tandem-state`.
//!
//! For 10k- and 1M-account states: building a 1,000-transfer block (pool admission excluded and
//! included), re-executing it, and applying then rolling back 10 blocks of 1,000 txs. Then, at
//! 1M accounts, 10,000 blocks applied with finality trailing the tip: heap held by the world
//! state (counted by a global allocator wrapper) and reopen time, with bounded history (the
//! default margin of 64 blocks below the finalized block) and without (margin = everything).

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use tandem_proto::{
    Address, RecoveredTx, SigningDomain, SigningKey, Tx, TxPayload,
    time::{ManualClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, ChainSpec, PoolConfig, TX_MANA, TxPool, WorldState,
    WorldStateConfig, build_block, reexecute,
};

/// Counts live heap bytes, to report what the world state holds.
struct CountingAllocator;

static LIVE_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, std::sync::atomic::Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_mib() -> f64 {
    LIVE_BYTES.load(std::sync::atomic::Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

const DOMAIN: SigningDomain = SigningDomain {
    chain_id: 9,
    rollup: Address::ZERO,
};
const TXS_PER_BLOCK: usize = 1_000;
const ROUNDS: usize = 5;

fn sender_key(i: usize) -> SigningKey {
    let mut secret = [3u8; 32];
    secret[24..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    SigningKey::from_bytes(&secret).expect("valid key")
}

fn filler(i: usize) -> Address {
    let mut bytes = [0u8; 20];
    bytes[12..].copy_from_slice(&(i as u64).to_be_bytes());
    bytes[0] = 0xaa;
    Address::from(bytes)
}

fn globals(index: u32) -> BlockGlobals {
    BlockGlobals {
        checkpoint_number: 1,
        index_within_checkpoint: index,
        slot: 1,
        timestamp: 1,
        coinbase: Address::repeat_byte(1),
        fee_recipient: Address::repeat_byte(2),
        fee_per_mana: 1,
    }
}

fn limits() -> BuildLimits {
    BuildLimits {
        max_txs: TXS_PER_BLOCK,
        max_mana: u64::MAX,
        max_body_bytes: usize::MAX,
        deadline: Timestamp(u64::MAX),
    }
}

/// One transfer per sender at `nonce`, to pseudo-random existing accounts.
fn signed_block(senders: &[SigningKey], nonce: u64, accounts: usize) -> Vec<Tx> {
    senders
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let to = filler((i * 7919 + nonce as usize * 104_729) % accounts);
            let payload = TxPayload {
                chain_id: DOMAIN.chain_id,
                nonce,
                to,
                amount: 1,
                max_fee_per_mana: 1,
                mana_limit: TX_MANA,
            };
            Tx::sign(payload, &DOMAIN, key)
        })
        .collect()
}

fn recover(txs: &[Tx]) -> Vec<RecoveredTx> {
    txs.iter()
        .map(|tx| tx.clone().into_recovered(&DOMAIN).expect("valid"))
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// 10,000 blocks of `HISTORY_TXS` transfers at 1M accounts, finality `FINALITY_LAG` blocks
/// behind the tip; then memory held and reopen time, for `config`.
fn long_history(config: WorldStateConfig, label: &str) {
    const BLOCKS: u64 = 10_000;
    const HISTORY_TXS: usize = 20;
    const FINALITY_LAG: u64 = 32;
    const ACCOUNTS: usize = 1_000_000;
    let clock = ManualClock::new(Timestamp(0));
    let senders: Vec<SigningKey> = (0..HISTORY_TXS).map(sender_key).collect();
    // Signed up front (not measured): one tx per sender per block.
    let txs: Vec<Vec<RecoveredTx>> = (0..BLOCKS)
        .map(|nonce| recover(&signed_block(&senders, nonce, ACCOUNTS)))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut allocation: Vec<(Address, u128)> = (0..ACCOUNTS).map(|i| (filler(i), 1_000)).collect();
    allocation.extend(senders.iter().map(|key| (key.address(), 1_000_000_000_000)));
    let spec = ChainSpec {
        chain_id: DOMAIN.chain_id,
        rollup_version: 1,
        genesis_allocation: allocation,
    };
    let before = live_mib();
    let mut state = WorldState::open(dir.path(), spec.clone(), config).expect("open");
    let at_genesis = live_mib();
    let started = Instant::now();
    for (number, block_txs) in txs.iter().enumerate() {
        let mut pool = TxPool::new(PoolConfig::default());
        for tx in block_txs {
            pool.add(tx.clone(), &state.account(&tx.sender()))
                .expect("admitted");
        }
        let mut fork = state.fork(state.tip().number).expect("fork");
        let mut best = pool.best(|a| fork.account(a).nonce);
        let built = build_block(&fork, &globals(number as u32), &mut best, &limits(), &clock)
            .expect("built");
        drop(best);
        let (executed, _) = fork.commit(built).expect("commit");
        state.apply_block(&executed).expect("applies");
        state
            .set_finalized(state.tip().number.saturating_sub(FINALITY_LAG))
            .expect("finalized");
    }
    let applied = started.elapsed();
    let held = live_mib();
    println!(
        "\n== {label}: {BLOCKS} blocks x {HISTORY_TXS} txs at 1M accounts, finality {FINALITY_LAG} behind"
    );
    println!(
        "applied in {:.1} s; {} versions retained; heap: genesis tree {:.0} MiB, after the blocks {:.0} MiB (+{:.0} MiB)",
        applied.as_secs_f64(),
        state.retained(),
        at_genesis - before,
        held - before,
        held - at_genesis
    );
    drop(state);
    let started = Instant::now();
    let reopened = WorldState::open(dir.path(), spec, config).expect("reopen");
    println!(
        "reopen: {:.2} s ({} versions rebuilt); heap {:.0} MiB",
        started.elapsed().as_secs_f64(),
        reopened.retained(),
        live_mib() - before
    );
}

fn main() {
    // `TANDEM_STATE_BENCH=history|blocks` runs only those figures.
    let only = std::env::var("TANDEM_STATE_BENCH").unwrap_or_default();
    if only != "blocks" {
        long_history(WorldStateConfig::default(), "bounded history (margin 64)");
        long_history(
            WorldStateConfig {
                history_margin: u64::MAX,
            },
            "unbounded history (what open walked before)",
        );
    }
    if only == "history" {
        return;
    }
    let clock = ManualClock::new(Timestamp(0));
    let senders: Vec<SigningKey> = (0..TXS_PER_BLOCK).map(sender_key).collect();
    for accounts in [10_000usize, 1_000_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut allocation: Vec<(Address, u128)> =
            (0..accounts).map(|i| (filler(i), 1_000)).collect();
        allocation.extend(senders.iter().map(|key| (key.address(), 1_000_000_000)));
        let spec = ChainSpec {
            chain_id: DOMAIN.chain_id,
            rollup_version: 1,
            genesis_allocation: allocation,
        };
        let started = Instant::now();
        let mut state =
            WorldState::open(dir.path(), spec.clone(), WorldStateConfig::default()).expect("open");
        let genesis_time = started.elapsed();
        println!(
            "\n== {accounts} accounts (+{TXS_PER_BLOCK} senders); genesis {:.0} ms",
            ms(genesis_time)
        );

        let block_txs = signed_block(&senders, 0, accounts);
        let recovered = recover(&block_txs);

        // Build, admission excluded: the pool is filled before the clock starts.
        let mut build_times = Vec::new();
        let mut header = None;
        for _ in 0..ROUNDS {
            let mut pool = TxPool::new(PoolConfig::default());
            for tx in &recovered {
                pool.add(tx.clone(), &state.account(&tx.sender()))
                    .expect("admitted");
            }
            let started = Instant::now();
            let mut fork = state.fork(0).expect("fork");
            let mut best = pool.best(|a| fork.account(a).nonce);
            let built =
                build_block(&fork, &globals(0), &mut best, &limits(), &clock).expect("built");
            drop(best);
            let (executed, txs) = fork.commit(built).expect("commit");
            build_times.push(started.elapsed());
            assert_eq!(txs.len(), TXS_PER_BLOCK);
            header = Some((executed.block().header.clone(), txs));
        }
        let build = median(build_times);
        println!(
            "build 1000-tx block (admission excluded): {:>7.1} ms  ({:>8.0} txs/s)",
            ms(build),
            TXS_PER_BLOCK as f64 / build.as_secs_f64()
        );

        // Build, admission included: signature recovery + stateful checks + pool insert.
        let mut times = Vec::new();
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let mut pool = TxPool::new(PoolConfig::default());
            for tx in &block_txs {
                let recovered =
                    tandem_state::validate_stateless(tx.clone(), &DOMAIN).expect("valid");
                let account = state.account(&recovered.sender());
                pool.add(recovered, &account).expect("admitted");
            }
            let mut fork = state.fork(0).expect("fork");
            let mut best = pool.best(|a| fork.account(a).nonce);
            let built =
                build_block(&fork, &globals(0), &mut best, &limits(), &clock).expect("built");
            drop(best);
            black_box(fork.commit(built).expect("commit"));
            times.push(started.elapsed());
        }
        let with_admission = median(times);
        println!(
            "build 1000-tx block (admission included): {:>7.1} ms  ({:>8.0} txs/s)",
            ms(with_admission),
            TXS_PER_BLOCK as f64 / with_admission.as_secs_f64()
        );

        // Re-execute with senders pre-verified.
        let (header, txs) = header.expect("built");
        let mut times = Vec::new();
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let mut fork = state.fork(0).expect("fork");
            let executed = reexecute(&mut fork, &header, &txs, None, Timestamp(u64::MAX), &clock)
                .expect("valid");
            times.push(started.elapsed());
            black_box(executed);
        }
        println!(
            "re-execute 1000-tx block:                 {:>7.1} ms",
            ms(median(times))
        );

        // Apply 10 blocks of 1000 txs, then fork at the base and roll back to it.
        let mut apply_time = Duration::ZERO;
        for nonce in 0..10u64 {
            let txs = recover(&signed_block(&senders, nonce, accounts));
            let mut pool = TxPool::new(PoolConfig::default());
            for tx in &txs {
                pool.add(tx.clone(), &state.account(&tx.sender()))
                    .expect("admitted");
            }
            let started = Instant::now();
            let mut fork = state.fork(state.tip().number).expect("fork");
            let mut best = pool.best(|a| fork.account(a).nonce);
            let built = build_block(&fork, &globals(nonce as u32), &mut best, &limits(), &clock)
                .expect("built");
            drop(best);
            let (executed, _) = fork.commit(built).expect("commit");
            state.apply_block(&executed).expect("applies");
            apply_time += started.elapsed();
        }
        let started = Instant::now();
        let fork = state.fork(0).expect("fork at base");
        let fork_time = started.elapsed();
        black_box(fork);
        let started = Instant::now();
        state.rollback_to(0).expect("rollback");
        let rollback_time = started.elapsed();
        println!(
            "build+apply 10 blocks of 1000 txs:        {:>7.1} ms",
            ms(apply_time)
        );
        println!(
            "fork at a block 10 blocks back:           {:>7.3} ms",
            ms(fork_time)
        );
        println!(
            "rollback of 10 blocks of 1000 txs:        {:>7.1} ms",
            ms(rollback_time)
        );
        drop(state);
        let started = Instant::now();
        let reopened =
            WorldState::open(dir.path(), spec, WorldStateConfig::default()).expect("reopen");
        println!(
            "reopen (rebuild tree from RocksDB):       {:>7.0} ms",
            ms(started.elapsed())
        );
        black_box(reopened.tip());
    }
}
