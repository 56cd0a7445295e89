//! World state, pool, builder and re-executor on a real RocksDB in a temp dir.

use std::{collections::HashMap, num::NonZeroUsize};

use proptest::prelude::*;
use tandem_proto::{
    Address, B256, BlockHeader, RecoveredTx, SigningDomain, SigningKey, Tx, TxPayload,
    time::{ManualClock, Timestamp},
};
use tandem_state::{
    Account, BlockGlobals, BuildLimits, BuildStop, ChainSpec, CheckpointBodyBudget, ExecutedBlock,
    Fork, PoolConfig, ReexecutionError, StateError, TX_MANA, TxError, TxPool, WorldState,
    WorldStateConfig, block_body_bytes, build_block, recover_txs, reexecute,
};

const DOMAIN: SigningDomain = SigningDomain {
    chain_id: 31,
    rollup: Address::ZERO,
};
const FEE: u128 = 3;
const FEE_RECIPIENT: Address = Address::repeat_byte(0xfe);

fn key(i: u64) -> SigningKey {
    let mut secret = [7u8; 32];
    secret[24..].copy_from_slice(&(i + 1).to_be_bytes());
    SigningKey::from_bytes(&secret).unwrap()
}

fn spec(accounts: u64) -> ChainSpec {
    ChainSpec {
        chain_id: DOMAIN.chain_id,
        rollup_version: 1,
        genesis_allocation: (0..accounts)
            .map(|i| (key(i).address(), 1_000_000_000))
            .collect(),
    }
}

fn transfer(from: &SigningKey, nonce: u64, to: Address, amount: u128) -> RecoveredTx {
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

fn globals(index: u32) -> BlockGlobals {
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

fn limits() -> BuildLimits {
    BuildLimits {
        max_txs: 1_000,
        max_mana: u64::MAX,
        max_body_bytes: usize::MAX,
        deadline: Timestamp(u64::MAX),
    }
}

fn open(path: &std::path::Path, spec: ChainSpec) -> WorldState {
    WorldState::open(path, spec, WorldStateConfig::default()).unwrap()
}

fn clock() -> ManualClock {
    ManualClock::new(Timestamp(0))
}

fn pool_with(state: &WorldState, txs: &[RecoveredTx]) -> TxPool {
    let mut pool = TxPool::new(PoolConfig::default());
    for tx in txs {
        pool.add(tx.clone(), &state.account(&tx.sender())).unwrap();
    }
    pool
}

/// Builds one block on `fork` from `pool` and commits it.
fn build(fork: &mut Fork, pool: &TxPool, index: u32) -> (ExecutedBlock, Vec<RecoveredTx>) {
    build_with(fork, pool, index, &limits())
}

fn build_with(
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

#[test]
fn reexecution_reproduces_the_built_header_and_names_each_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path(), spec(8));
    let txs: Vec<RecoveredTx> = (0..8)
        .map(|i| transfer(&key(i), 0, key((i + 1) % 8).address(), 100 + u128::from(i)))
        .collect();
    let pool = pool_with(&state, &txs);
    let mut builder_fork = state.fork(0).unwrap();
    let (executed, included) = build(&mut builder_fork, &pool, 0);
    assert_eq!(included.len(), 8);
    let header = executed.block().header.clone();
    assert_eq!(header.total_mana_used, 8 * TX_MANA);
    assert_eq!(header.total_fees, 8 * TX_MANA as u128 * FEE);

    let mut validator_fork = state.fork(0).unwrap();
    let again = reexecute(
        &mut validator_fork,
        &header,
        &included,
        Some(&globals(0)),
        Timestamp(u64::MAX),
        &clock(),
    )
    .unwrap();
    assert_eq!(again.block().header, header);
    assert_eq!(again.archive_root(), executed.archive_root());
    assert_eq!(validator_fork.state_root(), builder_fork.state_root());

    let verdict = |header: &BlockHeader, txs: &[RecoveredTx], expected: Option<&BlockGlobals>| {
        let mut fork = state.fork(0).unwrap();
        let before = fork.state_root();
        let err = reexecute(
            &mut fork,
            header,
            txs,
            expected,
            Timestamp(u64::MAX),
            &clock(),
        )
        .unwrap_err();
        assert_eq!(
            fork.state_root(),
            before,
            "a failed re-execution must leave the fork unchanged"
        );
        assert_eq!(fork.block_number(), 0);
        err
    };
    let tamper = |change: &dyn Fn(&mut BlockHeader)| {
        let mut h = header.clone();
        change(&mut h);
        h
    };
    assert!(matches!(
        verdict(
            &tamper(&|h| h.state_root = B256::repeat_byte(1)),
            &included,
            None
        ),
        ReexecutionError::StateMismatch { .. }
    ));
    assert!(matches!(
        verdict(
            &tamper(&|h| h.last_archive_root = B256::repeat_byte(1)),
            &included,
            None
        ),
        ReexecutionError::InitialStateMismatch { .. }
    ));
    assert_eq!(
        verdict(&tamper(&|h| h.block_number = 2), &included, None),
        ReexecutionError::GlobalVariablesMismatch {
            field: "block_number"
        }
    );
    assert_eq!(
        verdict(&tamper(&|h| h.chain_id = 1), &included, None),
        ReexecutionError::GlobalVariablesMismatch { field: "chain_id" }
    );
    assert_eq!(
        verdict(&tamper(&|h| h.slot = 11), &included, Some(&globals(0))),
        ReexecutionError::GlobalVariablesMismatch { field: "slot" }
    );
    assert_eq!(
        verdict(
            &tamper(&|h| h.coinbase = Address::ZERO),
            &included,
            Some(&globals(0))
        ),
        ReexecutionError::GlobalVariablesMismatch { field: "coinbase" }
    );
    assert_eq!(
        verdict(&header, &included, Some(&globals(1))),
        ReexecutionError::GlobalVariablesMismatch {
            field: "index_within_checkpoint"
        }
    );
    assert!(matches!(
        verdict(&tamper(&|h| h.total_fees += 1), &included, None),
        ReexecutionError::AccountingMismatch {
            field: "total_fees",
            ..
        }
    ));
    assert!(matches!(
        verdict(&tamper(&|h| h.total_mana_used += 1), &included, None),
        ReexecutionError::AccountingMismatch {
            field: "total_mana_used",
            ..
        }
    ));
    // A fee above the txs' caps makes the first tx fail.
    assert_eq!(
        verdict(&tamper(&|h| h.fee_per_mana = FEE + 1), &included, None),
        ReexecutionError::FailedTxs {
            index: 0,
            reason: TxError::FeeTooLow {
                required: FEE + 1,
                max: FEE
            }
        }
    );

    // Tampered tx lists.
    let mut reordered = included.clone();
    reordered.swap(0, 1);
    assert_eq!(
        verdict(&header, &reordered, None),
        ReexecutionError::BodyHashMismatch
    );
    let replaced: Vec<RecoveredTx> = included
        .iter()
        .cloned()
        .chain([transfer(&key(0), 0, Address::ZERO, 1)])
        .collect();
    assert_eq!(
        verdict(&header, &replaced, None),
        ReexecutionError::BodyHashMismatch
    );
    // A failing tx whose hash is committed by the header: a double spend of nonce 0.
    let double = vec![included[0].clone(), transfer(&key(0), 0, Address::ZERO, 1)];
    let hashes: Vec<B256> = double.iter().map(RecoveredTx::hash).collect();
    let h = tamper(&|h| h.body_hash = tandem_proto::block_body_hash(&hashes));
    assert_eq!(
        verdict(&h, &double, None),
        ReexecutionError::FailedTxs {
            index: 1,
            reason: TxError::NonceTooLow {
                expected: 1,
                got: 0
            }
        }
    );
    // Past the deadline.
    let mut fork = state.fork(0).unwrap();
    let late = ManualClock::new(Timestamp(100));
    assert_eq!(
        reexecute(&mut fork, &header, &included, None, Timestamp(50), &late).unwrap_err(),
        ReexecutionError::Timeout {
            processed: 0,
            total: 8
        }
    );
}

#[test]
fn blocks_on_a_proposed_base_then_rollback_restores_state_and_pool() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = open(dir.path(), spec(4));
    let genesis_root = state.tip().state_root;
    let genesis_accounts: Vec<Account> = (0..4).map(|i| state.account(&key(i).address())).collect();

    // Block 1 is proposed (applied locally, not on L1 yet).
    let first: Vec<RecoveredTx> = (0..4)
        .map(|i| transfer(&key(i), 0, key(3 - i).address(), 10))
        .collect();
    let mut pool = pool_with(&state, &first);
    let mut fork = state.fork(0).unwrap();
    let (block1, mined1) = build(&mut fork, &pool, 0);
    state.apply_block(&block1).unwrap();
    pool.on_block_applied(&mined1, |a| state.account(a).nonce);
    assert!(pool.is_empty());

    // The next proposer builds N+1 and N+2 on a fork of the proposed block 1.
    let second: Vec<RecoveredTx> = (0..4)
        .map(|i| transfer(&key(i), 1, Address::repeat_byte(0x55), 1))
        .collect();
    let third: Vec<RecoveredTx> = (0..4)
        .map(|i| transfer(&key(i), 2, Address::repeat_byte(0x56), 1))
        .collect();
    for tx in second.iter().chain(&third) {
        pool.add(tx.clone(), &state.account(&tx.sender())).unwrap();
    }
    let mut fork = state.fork(1).unwrap();
    let mut limited = limits();
    limited.max_txs = 4;
    let block2 = build_with(&mut fork, &pool, 1, &limited);
    let block3 = build_with(&mut fork, &pool, 2, &limited);
    assert_eq!(block2.1.len(), 4);
    assert_eq!(block3.1.len(), 4);
    assert_eq!(fork.block_number(), 3);
    // Only the fork moved.
    assert_eq!(state.tip().number, 1);
    state.apply_block(&block2.0).unwrap();
    state.apply_block(&block3.0).unwrap();
    pool.on_block_applied(block2.1.iter().chain(&block3.1), |a| state.account(a).nonce);
    assert_eq!(state.tip().state_root, fork.state_root());
    assert_eq!(state.account(&key(0).address()).nonce, 3);

    // Block 1's checkpoint never lands: roll back to genesis and re-insert the pruned txs.
    let tip = state.rollback_to(0).unwrap();
    assert_eq!(tip.state_root, genesis_root);
    for (i, account) in genesis_accounts.iter().enumerate() {
        assert_eq!(state.account(&key(i as u64).address()), *account);
    }
    assert_eq!(
        state.account(&Address::repeat_byte(0x55)),
        Account::default()
    );
    let pruned = mined1.iter().chain(&block2.1).chain(&block3.1).cloned();
    assert_eq!(pool.reinsert(pruned, |a| state.account(a)), 12);
    assert_eq!(pool.best(|a| state.account(a).nonce).count(), 12);

    // A stale executed block cannot be applied on the rolled-back tip.
    assert!(matches!(
        state.apply_block(&block2.0),
        Err(StateError::NotNext { tip: 0, got: 2 })
    ));
    drop(state);
    let state = open(dir.path(), spec(4));
    assert_eq!(state.tip().state_root, genesis_root);
}

#[test]
fn reopen_gives_the_same_root_history_and_refuses_another_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = open(dir.path(), spec(3));
    let mut roots = vec![state.tip().state_root];
    for round in 0..3u64 {
        let txs: Vec<RecoveredTx> = (0..3)
            .map(|i| transfer(&key(i), round, Address::repeat_byte(round as u8 + 1), 5))
            .collect();
        let pool = pool_with(&state, &txs);
        let mut fork = state.fork(state.tip().number).unwrap();
        let (block, _) = build(&mut fork, &pool, round as u32);
        state.apply_block(&block).unwrap();
        roots.push(state.tip().state_root);
    }
    let tip = state.tip();
    drop(state);

    let mut state = open(dir.path(), spec(3));
    assert_eq!(state.tip(), tip);
    for (block, root) in roots.iter().enumerate() {
        assert_eq!(
            state.state_root_at(block as u64),
            Some(*root),
            "block {block}"
        );
    }
    // History can be forgotten; forks before it are then refused.
    state.prune_history(2).unwrap();
    assert!(matches!(
        state.fork(1),
        Err(StateError::NotRetained {
            block: 1,
            oldest: 2,
            tip: 3
        })
    ));
    assert_eq!(state.fork(2).unwrap().state_root(), roots[2]);
    drop(state);
    let state = open(dir.path(), spec(3));
    assert_eq!(state.oldest_retained(), 2);
    drop(state);

    assert!(matches!(
        WorldState::open(dir.path(), spec(4), WorldStateConfig::default()),
        Err(StateError::GenesisMismatch { .. })
    ));
}

#[test]
fn genesis_archive_matches_the_genesis_block() {
    let spec = spec(2);
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path(), spec.clone());
    assert_eq!(state.tip().archive_root, spec.genesis_archive_root());
    assert_eq!(state.tip().hash, spec.genesis_header().hash());
}

#[test]
fn parallel_recovery_uses_the_cache_and_names_the_bad_tx() {
    let txs: Vec<Tx> = (0..40)
        .map(|i| transfer(&key(i), 0, Address::ZERO, 1).into_tx())
        .collect();
    let cached: HashMap<B256, RecoveredTx> = txs[..10]
        .iter()
        .map(|tx| (tx.hash(), tx.clone().into_recovered(&DOMAIN).unwrap()))
        .collect();
    let known = |hash: &B256| cached.get(hash).cloned();
    let threads = NonZeroUsize::new(2).unwrap();
    let recovered = recover_txs(txs.clone(), &DOMAIN, &known, threads).unwrap();
    assert_eq!(recovered.len(), 40);
    for (i, tx) in recovered.iter().enumerate() {
        assert_eq!(tx.sender(), key(i as u64).address());
    }
    let mut bad = txs;
    bad[33].signature = tandem_proto::Signature::default();
    assert!(matches!(
        recover_txs(bad, &DOMAIN, &known, threads),
        Err((33, TxError::BadSignature(_)))
    ));
}

/// A trivial model: balances and nonces in a map, same rules.
#[derive(Default)]
struct Model(HashMap<Address, Account>);

impl Model {
    fn apply(&mut self, tx: &RecoveredTx) -> bool {
        let p = &tx.tx().payload;
        let fee = FEE * u128::from(TX_MANA);
        let sender = self.0.get(&tx.sender()).copied().unwrap_or_default();
        if sender.nonce != p.nonce || sender.balance < p.amount + fee {
            return false;
        }
        self.0.insert(
            tx.sender(),
            Account {
                balance: sender.balance - p.amount - fee,
                nonce: sender.nonce + 1,
            },
        );
        for (to, credit) in [(p.to, p.amount), (FEE_RECIPIENT, fee)] {
            let mut account = self.0.get(&to).copied().unwrap_or_default();
            account.balance += credit;
            self.0.insert(to, account);
        }
        true
    }
}

impl Model {
    fn nonce(&self, address: &Address) -> u64 {
        self.0.get(address).map_or(0, |account| account.nonce)
    }

    /// What pool admission and the builder do with `chunk`, submitted in order into an empty
    /// pool (all fees equal, so the pool orders by arrival) and built into one block: the txs
    /// that must be included, in order. Applies them.
    fn block(&mut self, chunk: &[RecoveredTx], config: &PoolConfig) -> Vec<B256> {
        use std::collections::{BTreeMap, BinaryHeap, HashSet};
        let mut pool: HashMap<Address, BTreeMap<u64, (usize, RecoveredTx)>> = HashMap::new();
        for (seq, tx) in chunk.iter().enumerate() {
            let sender = tx.sender();
            let nonce = tx.tx().payload.nonce;
            let account_nonce = self.nonce(&sender);
            let held = pool.entry(sender).or_default();
            if nonce < account_nonce
                || held.contains_key(&nonce)
                || held.len() >= config.max_txs_per_sender
            {
                continue;
            }
            let present = held.range(account_nonce..nonce).count() as u64;
            if nonce - account_nonce - present > config.max_nonce_gap {
                continue;
            }
            held.insert(nonce, (seq, tx.clone()));
        }
        let mut ready: BinaryHeap<std::cmp::Reverse<(usize, Address, u64)>> = pool
            .iter()
            .filter_map(|(sender, held)| {
                held.get(&self.nonce(sender))
                    .map(|(seq, _)| std::cmp::Reverse((*seq, *sender, self.nonce(sender))))
            })
            .collect();
        let mut skipped = HashSet::new();
        let mut included = Vec::new();
        while let Some(std::cmp::Reverse((_, sender, nonce))) = ready.pop() {
            if skipped.contains(&sender) {
                continue;
            }
            if let Some((seq, _)) = pool[&sender].get(&(nonce + 1)) {
                ready.push(std::cmp::Reverse((*seq, sender, nonce + 1)));
            }
            let tx = &pool[&sender][&nonce].1;
            if self.apply(tx) {
                included.push(tx.hash());
            } else {
                skipped.insert(sender);
            }
        }
        included
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The builder (with the pool's admission and order) includes exactly the txs the model
    /// includes, in the model's order, and the states agree: a builder that drops or adds a
    /// tx fails this.
    #[test]
    fn builder_matches_a_trivial_model(
        transfers in proptest::collection::vec((0u64..6, 0u64..8, 0u128..400_000_000, any::<bool>()), 1..60),
    ) {
        let mut nonces = [0u64; 6];
        let mut txs = Vec::new();
        for (from, to, amount, skip_nonce) in &transfers {
            let to = if *to < 6 { key(*to).address() } else { Address::repeat_byte(*to as u8) };
            // Sometimes a nonce is left out: later txs of that sender wait behind the gap.
            if *skip_nonce && nonces[*from as usize] % 5 == 4 {
                nonces[*from as usize] += 1;
            }
            txs.push(transfer(&key(*from), nonces[*from as usize], to, *amount));
            nonces[*from as usize] += 1;
        }
        let config = PoolConfig::default();
        let mut roots = Vec::new();
        for reverse_genesis in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut chain = spec(6);
            if reverse_genesis {
                // Accounts first touched in another order: the root must not care.
                chain.genesis_allocation.reverse();
            }
            let mut state = open(dir.path(), chain);
            let mut model = Model::default();
            for i in 0..6 {
                model.0.insert(key(i).address(), state.account(&key(i).address()));
            }
            // Blocks from chunks of up to 7 submitted txs; failures happen mid-block and must
            // change nothing.
            for (index, chunk) in txs.chunks(7).enumerate() {
                let mut fork = state.fork(state.tip().number).unwrap();
                let mut pool = TxPool::new(config);
                for tx in chunk {
                    let account = Account { balance: u128::MAX / 4, nonce: fork.account(&tx.sender()).nonce };
                    let _ = pool.add(tx.clone(), &account);
                }
                let mut best = pool.best(|a| fork.account(a).nonce);
                let built = build_block(&fork, &globals(index as u32), &mut best, &limits(), &clock()).unwrap();
                drop(best);
                let expected = model.block(chunk, &config);
                let got: Vec<B256> = built.txs.iter().map(RecoveredTx::hash).collect();
                prop_assert_eq!(got, expected, "block {}", index);
                let (executed, _) = fork.commit(built).unwrap();
                state.apply_block(&executed).unwrap();
            }
            for (address, account) in &model.0 {
                prop_assert_eq!(state.account(address), *account);
            }
            roots.push(state.tip().state_root);
        }
        prop_assert_eq!(roots[0], roots[1]);
    }
}

/// A clock that moves 1 ms every time it is read: time passes as the builder works.
struct Ticking(std::sync::atomic::AtomicU64);

impl tandem_proto::time::Clock for Ticking {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    }
}

fn many_transfers(state: &WorldState, count: u64) -> TxPool {
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

#[test]
fn a_built_block_touches_the_fork_only_when_committed() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path(), spec(8));
    let pool = many_transfers(&state, 16);
    let mut fork = state.fork(0).unwrap();
    let before = (fork.state_root(), fork.block_number(), fork.archive_root());
    let mut best = pool.best(|a| fork.account(a).nonce);
    let small = build_block(&fork, &globals(0), &mut best, &limits(), &clock()).unwrap();
    drop(best);
    assert_eq!(small.txs.len(), 16);
    assert_eq!(
        (fork.state_root(), fork.block_number(), fork.archive_root()),
        before
    );
    assert_eq!(fork.account(&key(0).address()).nonce, 0);
    // Dropped (too small, say); built again and committed.
    drop(small);
    let mut best = pool.best(|a| fork.account(a).nonce);
    let built = build_block(&fork, &globals(0), &mut best, &limits(), &clock()).unwrap();
    drop(best);
    let stale = build_block(
        &fork,
        &globals(0),
        &mut pool.best(|_| 0),
        &limits(),
        &clock(),
    )
    .unwrap();
    let header = built.header.clone();
    let (executed, txs) = fork.commit(built).unwrap();
    assert_eq!(txs.len(), 16);
    assert_eq!(executed.block().header, header);
    assert_eq!(fork.block_number(), 1);
    assert_eq!(fork.state_root(), header.state_root);
    // A block built before the fork moved cannot be committed on it.
    assert!(matches!(
        fork.commit(stale),
        Err(StateError::ParentMismatch { block: 1 })
    ));
}

#[test]
fn the_builder_honours_its_deadline_including_sealing() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path(), spec(8));
    let pool = many_transfers(&state, 200);
    let fork = state.fork(0).unwrap();
    let clock = Ticking(std::sync::atomic::AtomicU64::new(1_000));
    let deadline = Timestamp(1_005);
    let built = build_block(
        &fork,
        &globals(0),
        &mut pool.best(|a| fork.account(a).nonce),
        &BuildLimits {
            deadline,
            ..limits()
        },
        &clock,
    )
    .unwrap();
    // The clock moves 1 ms per read, so the run is exact: read at 1,000 (start) and after
    // chunks of 1, 1 and 2 txs at 1,001, 1,002, 1,003 (1 ms per tx at worst). The next chunk of
    // 4 would end at 1,007, past 1,005: it stops with 4 txs and seals at 1,004.
    assert_eq!(built.stop, BuildStop::Deadline);
    assert_eq!(
        (built.txs.len(), built.finished_at),
        (4, Timestamp(1_004)),
        "sealed at {:?}, deadline {deadline:?}",
        built.finished_at
    );
    // Called past its deadline: nothing is executed.
    let late = build_block(
        &fork,
        &globals(0),
        &mut pool.best(|a| fork.account(a).nonce),
        &BuildLimits {
            deadline: Timestamp(10),
            ..limits()
        },
        &clock,
    )
    .unwrap();
    assert_eq!((late.stop, late.txs.len()), (BuildStop::Deadline, 0));
}

#[test]
fn the_builder_honours_tx_mana_and_body_limits() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path(), spec(8));
    let pool = many_transfers(&state, 40);
    let fork = state.fork(0).unwrap();
    let build = |limits: BuildLimits| {
        build_block(
            &fork,
            &globals(0),
            &mut pool.best(|a| fork.account(a).nonce),
            &limits,
            &clock(),
        )
    };
    let by_txs = build(BuildLimits {
        max_txs: 5,
        ..limits()
    })
    .unwrap();
    assert_eq!((by_txs.stop, by_txs.txs.len()), (BuildStop::TxLimit, 5));
    let by_mana = build(BuildLimits {
        max_mana: 3 * TX_MANA + TX_MANA / 2,
        ..limits()
    })
    .unwrap();
    assert_eq!((by_mana.stop, by_mana.txs.len()), (BuildStop::ManaLimit, 3));
    assert_eq!(by_mana.header.total_mana_used, 3 * TX_MANA);
    // A checkpoint body budget with room for this block's header and exactly 7 txs.
    let mut budget = CheckpointBodyBudget::new(0);
    let limit = budget.used() + block_body_bytes(7);
    budget = CheckpointBodyBudget::new(limit);
    let by_body = build(BuildLimits {
        max_body_bytes: budget.remaining(),
        ..limits()
    })
    .unwrap();
    assert_eq!(
        (by_body.stop, by_body.txs.len()),
        (BuildStop::BodyBudget, 7)
    );
    assert_eq!(by_body.body_bytes, budget.remaining());
    budget.add_block(by_body.txs.len());
    assert_eq!(budget.remaining(), 0);
    assert!(matches!(
        build(BuildLimits {
            max_body_bytes: budget.remaining(),
            ..limits()
        }),
        Err(StateError::BodyBudgetExhausted { remaining: 0, .. })
    ));
    let all = build(limits()).unwrap();
    assert_eq!((all.stop, all.txs.len()), (BuildStop::OutOfTxs, 40));
}

#[test]
fn the_body_budget_counts_what_the_checkpoint_body_encoding_writes() {
    let tx = transfer(&key(0), 0, Address::ZERO, 1).into_tx();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    runner
        .run(&proptest::collection::vec(0usize..5, 1..6), |tx_counts| {
            let blocks: Vec<tandem_proto::Block> = tx_counts
                .iter()
                .map(|count| tandem_proto::Block {
                    header: BlockHeader::default(),
                    txs: vec![tx.clone(); *count],
                })
                .collect();
            let mut budget = CheckpointBodyBudget::new(usize::MAX);
            for count in &tx_counts {
                budget.add_block(*count);
            }
            prop_assert_eq!(
                budget.used(),
                tandem_proto::encode_checkpoint_body(&blocks).len()
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn history_is_bounded_by_the_finalized_block_and_hashes_survive_reopen_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let config = WorldStateConfig { history_margin: 10 };
    let mut state = WorldState::open(dir.path(), spec(2), config).unwrap();
    let mut hashes = vec![state.tip().hash];
    for n in 0..40u64 {
        let pool = pool_with(
            &state,
            &[transfer(&key(n % 2), n / 2, Address::repeat_byte(9), 1)],
        );
        let mut fork = state.fork(state.tip().number).unwrap();
        let (block, _) = build(&mut fork, &pool, n as u32);
        hashes.push(block.block().hash());
        state.apply_block(&block).unwrap();
        // Finality trails the tip by 5 blocks.
        state
            .set_finalized(state.tip().number.saturating_sub(5))
            .unwrap();
    }
    // Tip 40, finalized 35, margin 10: versions 25..=40.
    assert_eq!(state.finalized(), 35);
    assert_eq!(state.oldest_retained(), 25);
    assert_eq!(state.retained(), 16);
    assert!(matches!(
        state.fork(24),
        Err(StateError::NotRetained { block: 24, .. })
    ));
    for (n, hash) in hashes.iter().enumerate() {
        assert_eq!(
            state.block_hash_at(n as u64).unwrap(),
            Some(*hash),
            "block {n}"
        );
    }
    assert_eq!(state.block_hash_at(41).unwrap(), None);
    // Final blocks are never rolled back.
    assert!(matches!(
        state.rollback_to(30),
        Err(StateError::BelowFinalized {
            block: 30,
            finalized: 35
        })
    ));
    let tip = state.tip();
    drop(state);
    // Reopen rebuilds only the retained versions; hashes of older blocks are still there.
    let mut state = WorldState::open(dir.path(), spec(2), config).unwrap();
    assert_eq!(state.tip(), tip);
    assert_eq!(
        (state.oldest_retained(), state.retained(), state.finalized()),
        (25, 16, 35)
    );
    assert_eq!(state.block_hash_at(3).unwrap(), Some(hashes[3]));
    // A rollback drops the undone blocks' hashes, and they stay dropped after a reopen.
    state.rollback_to(37).unwrap();
    assert_eq!(state.block_hash_at(37).unwrap(), Some(hashes[37]));
    assert_eq!(state.block_hash_at(38).unwrap(), None);
    drop(state);
    let state = WorldState::open(dir.path(), spec(2), config).unwrap();
    assert_eq!(state.tip().number, 37);
    assert_eq!(state.block_hash_at(38).unwrap(), None);
    assert_eq!(state.block_hash_at(36).unwrap(), Some(hashes[36]));
}
