//! World state, pool, builder and re-executor on a real RocksDB in a temp dir.

use std::{collections::HashMap, num::NonZeroUsize};

use proptest::prelude::*;
use tandem_proto::{
    Address, B256, BlockHeader, RecoveredTx, SigningDomain, SigningKey, Tx, TxPayload,
    time::{ManualClock, Timestamp},
};
use tandem_state::{
    Account, BlockGlobals, BuildLimits, ChainSpec, ExecutedBlock, Fork, PoolConfig,
    ReexecutionError, StateError, TX_MANA, TxError, TxPool, WorldState, build_block, recover_txs,
    reexecute,
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
        deadline: Timestamp(u64::MAX),
    }
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

/// Builds one block on `fork` from `pool`.
fn build(fork: &mut Fork, pool: &TxPool, index: u32) -> (ExecutedBlock, Vec<RecoveredTx>) {
    let snapshot = fork.clone();
    let mut best = pool.best(|address| snapshot.account(address).nonce);
    let built = build_block(fork, &globals(index), &mut best, &limits(), &clock());
    assert!(built.failed.is_empty(), "{:?}", built.failed);
    (built.executed, built.txs)
}

#[test]
fn reexecution_reproduces_the_built_header_and_names_each_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let state = WorldState::open(dir.path(), spec(8)).unwrap();
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
    let mut state = WorldState::open(dir.path(), spec(4)).unwrap();
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
    let snapshot = fork.clone();
    let mut best = pool.best(|a| snapshot.account(a).nonce);
    let block2 = build_block(&mut fork, &globals(1), &mut best, &limited, &clock());
    let snapshot = fork.clone();
    let mut best = pool.best(|a| snapshot.account(a).nonce);
    let block3 = build_block(&mut fork, &globals(2), &mut best, &limited, &clock());
    assert_eq!(block2.txs.len(), 4);
    assert_eq!(block3.txs.len(), 4);
    assert_eq!(fork.block_number(), 3);
    // Only the fork moved.
    assert_eq!(state.tip().number, 1);
    state.apply_block(&block2.executed).unwrap();
    state.apply_block(&block3.executed).unwrap();
    pool.on_block_applied(block2.txs.iter().chain(&block3.txs), |a| {
        state.account(a).nonce
    });
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
    let pruned = mined1.iter().chain(&block2.txs).chain(&block3.txs).cloned();
    assert_eq!(pool.reinsert(pruned, |a| state.account(a)), 12);
    assert_eq!(pool.best(|a| state.account(a).nonce).count(), 12);

    // A stale executed block cannot be applied on the rolled-back tip.
    assert!(matches!(
        state.apply_block(&block2.executed),
        Err(StateError::NotNext { tip: 0, got: 2 })
    ));
    drop(state);
    let state = WorldState::open(dir.path(), spec(4)).unwrap();
    assert_eq!(state.tip().state_root, genesis_root);
}

#[test]
fn reopen_gives_the_same_root_history_and_refuses_another_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = WorldState::open(dir.path(), spec(3)).unwrap();
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

    let mut state = WorldState::open(dir.path(), spec(3)).unwrap();
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
    let state = WorldState::open(dir.path(), spec(3)).unwrap();
    assert_eq!(state.oldest_retained(), 2);
    drop(state);

    assert!(matches!(
        WorldState::open(dir.path(), spec(4)),
        Err(StateError::GenesisMismatch { .. })
    ));
}

#[test]
fn genesis_archive_matches_the_genesis_block() {
    let spec = spec(2);
    let dir = tempfile::tempdir().unwrap();
    let state = WorldState::open(dir.path(), spec.clone()).unwrap();
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn builder_matches_a_trivial_model(
        transfers in proptest::collection::vec((0u64..6, 0u64..8, 0u128..400_000_000), 1..60),
    ) {
        let mut nonces = [0u64; 6];
        let mut txs = Vec::new();
        for (from, to, amount) in &transfers {
            let to = if *to < 6 { key(*to).address() } else { Address::repeat_byte(*to as u8) };
            txs.push(transfer(&key(*from), nonces[*from as usize], to, *amount));
            nonces[*from as usize] += 1;
        }
        let mut roots = Vec::new();
        for reverse_genesis in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut chain = spec(6);
            if reverse_genesis {
                // Accounts first touched in another order: the root must not care.
                chain.genesis_allocation.reverse();
            }
            let mut state = WorldState::open(dir.path(), chain).unwrap();
            let mut model = Model::default();
            let mut included = 0;
            for i in 0..6 {
                model.0.insert(key(i).address(), state.account(&key(i).address()));
            }
            // Blocks of up to 7 txs; failures happen mid-block and must change nothing.
            for (index, chunk) in txs.chunks(7).enumerate() {
                let mut fork = state.fork(state.tip().number).unwrap();
                let mut pool = TxPool::new(PoolConfig::default());
                for tx in chunk {
                    let _ = pool.add(tx.clone(), &Account { balance: u128::MAX / 4, nonce: 0 });
                }
                let snapshot = fork.clone();
                let mut best = pool.best(|a| snapshot.account(a).nonce);
                let built = build_block(&mut fork, &globals(index as u32), &mut best, &limits(), &clock());
                for tx in &built.txs {
                    prop_assert!(model.apply(tx), "builder included a tx the model refuses");
                }
                included += built.txs.len();
                state.apply_block(&built.executed).unwrap();
            }
            // Every sender starts with 1e9 and amounts stay below 4e8: the first tx always fits.
            prop_assert!(included > 0);
            for (address, account) in &model.0 {
                prop_assert_eq!(state.account(address), *account);
            }
            roots.push(state.tip().state_root);
        }
        prop_assert_eq!(roots[0], roots[1]);
    }
}
