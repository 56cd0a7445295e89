//! Helpers shared by the state tests: keys, a funded genesis, transfers, block globals and
//! limits, a pool, and building a block on a fork.

#![allow(dead_code, unreachable_pub)]

use tandem_proto::{
    Address, RecoveredTx, SigningDomain, SigningKey, Tx, TxPayload,
    time::{ManualClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, ChainSpec, ExecutedBlock, Fork, PoolConfig, TX_MANA, TxPool,
    WorldState, WorldStateConfig, build_block,
};

pub const DOMAIN: SigningDomain = SigningDomain {
    chain_id: 31,
    rollup: Address::ZERO,
};
pub const FEE: u128 = 3;
pub const FEE_RECIPIENT: Address = Address::repeat_byte(0xfe);

pub fn key(i: u64) -> SigningKey {
    let mut secret = [7u8; 32];
    secret[24..].copy_from_slice(&(i + 1).to_be_bytes());
    SigningKey::from_bytes(&secret).unwrap()
}

pub fn spec(accounts: u64) -> ChainSpec {
    ChainSpec {
        chain_id: DOMAIN.chain_id,
        rollup_version: 1,
        genesis_allocation: (0..accounts)
            .map(|i| (key(i).address(), 1_000_000_000))
            .collect(),
    }
}

pub fn transfer(from: &SigningKey, nonce: u64, to: Address, amount: u128) -> RecoveredTx {
    let payload = TxPayload {
        chain_id: DOMAIN.chain_id,
        nonce,
        to,
        amount,
        max_fee_per_mana: FEE,
        mana_limit: TX_MANA,
    };
    Tx::sign(payload, &DOMAIN, from)
        .into_recovered(&DOMAIN)
        .unwrap()
}

pub fn globals(index: u32) -> BlockGlobals {
    BlockGlobals {
        checkpoint_number: 1,
        index_within_checkpoint: index,
        slot: 10,
        timestamp: 1_000,
        coinbase: Address::repeat_byte(0xcb),
        fee_recipient: FEE_RECIPIENT,
        fee_per_mana: FEE,
    }
}

pub fn limits() -> BuildLimits {
    BuildLimits {
        max_txs: 1_000,
        max_mana: u64::MAX,
        max_body_bytes: usize::MAX,
        deadline: Timestamp(u64::MAX),
    }
}

pub fn open(path: &std::path::Path, spec: ChainSpec) -> WorldState {
    WorldState::open(path, spec, WorldStateConfig::default()).unwrap()
}

pub fn clock() -> ManualClock {
    ManualClock::new(Timestamp(0))
}

pub fn pool_with(state: &WorldState, txs: &[RecoveredTx]) -> TxPool {
    let mut pool = TxPool::new(PoolConfig::default());
    for tx in txs {
        pool.add(tx.clone(), &state.account(&tx.sender())).unwrap();
    }
    pool
}

/// Builds one block on `fork` from `pool` and commits it.
pub fn build(fork: &mut Fork, pool: &TxPool, index: u32) -> (ExecutedBlock, Vec<RecoveredTx>) {
    build_with(fork, pool, index, &limits())
}

pub fn build_with(
    fork: &mut Fork,
    pool: &TxPool,
    index: u32,
    limits: &BuildLimits,
) -> (ExecutedBlock, Vec<RecoveredTx>) {
    let mut best = pool.best(|address| fork.account(address).nonce);
    let built = build_block(fork, &globals(index), &mut best, limits, &clock()).unwrap();
    assert!(built.failed.is_empty(), "{:?}", built.failed);
    drop(best);
    fork.commit(built).unwrap()
}

/// A clock that moves 1 ms every time it is read: time passes as the builder works.
pub struct Ticking(pub std::sync::atomic::AtomicU64);

impl tandem_proto::time::Clock for Ticking {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    }
}

pub fn many_transfers(state: &WorldState, count: u64) -> TxPool {
    let txs: Vec<RecoveredTx> = (0..count)
        .map(|i| transfer(&key(i % 8), i / 8, Address::repeat_byte(0x77), 1))
        .collect();
    let mut pool = TxPool::new(PoolConfig {
        max_txs_per_sender: 1_000,
        max_nonce_gap: 1_000,
        ..PoolConfig::default()
    });
    for tx in txs {
        pool.add(tx.clone(), &state.account(&tx.sender())).unwrap();
    }
    pool
}
