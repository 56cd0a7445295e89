//! World-state figures on one core. Run: `cargo bench -p tandem-state`.
//!
//! For 10k- and 1M-account states: building a 1,000-transfer block (pool admission excluded and
//! included), re-executing it, and applying then rolling back 10 blocks of 1,000 txs.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use tandem_proto::{
    Address, RecoveredTx, SigningDomain, SigningKey, Tx, TxPayload,
    time::{ManualClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, ChainSpec, PoolConfig, TX_MANA, TxPool, WorldState, build_block,
    reexecute,
};

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

fn main() {
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
        let mut state = WorldState::open(dir.path(), spec.clone()).expect("open");
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
            let snapshot = fork.clone();
            let mut best = pool.best(|a| snapshot.account(a).nonce);
            let built = build_block(&mut fork, &globals(0), &mut best, &limits(), &clock);
            build_times.push(started.elapsed());
            assert_eq!(built.txs.len(), TXS_PER_BLOCK);
            header = Some((built.executed.block().header.clone(), built.txs));
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
            let snapshot = fork.clone();
            let mut best = pool.best(|a| snapshot.account(a).nonce);
            black_box(build_block(
                &mut fork,
                &globals(0),
                &mut best,
                &limits(),
                &clock,
            ));
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
            let snapshot = fork.clone();
            let mut best = pool.best(|a| snapshot.account(a).nonce);
            let built = build_block(
                &mut fork,
                &globals(nonce as u32),
                &mut best,
                &limits(),
                &clock,
            );
            state.apply_block(&built.executed).expect("applies");
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
        let reopened = WorldState::open(dir.path(), spec).expect("reopen");
        println!(
            "reopen (rebuild tree from RocksDB):       {:>7.0} ms",
            ms(started.elapsed())
        );
        black_box(reopened.tip());
    }
}
