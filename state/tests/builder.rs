//! The block builder and re-executor on a real RocksDB: a built block leaves its fork alone
//! until committed, honours its deadline (sealing included) and its tx, mana and body limits,
//! and re-execution reproduces it and names each tampering.

use proptest::prelude::*;
mod common;

use std::{collections::HashMap, num::NonZeroUsize};

use common::*;
use tandem_proto::{
    Address, B256, BlockHeader, RecoveredTx, Tx,
    time::{ManualClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, BuildStop, CheckpointBodyBudget, ReexecutionError, StateError,
    TX_MANA, TxError, block_body_bytes, build_block, recover_txs, reexecute,
};

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
fn candidates_copied_out_of_the_pool_build_the_same_block_without_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path(), spec(8));
    let pool = many_transfers(&state, 16);
    let fork = state.fork(0).unwrap();
    let mut best = pool.best(|a| fork.account(a).nonce);
    let from_pool = build_block(&fork, &globals(0), &mut best, &limits(), &clock()).unwrap();
    drop(best);
    let copied: Vec<RecoveredTx> = pool.best(|a| fork.account(a).nonce).collect();
    drop(pool);
    let mut candidates = tandem_state::CandidateTxs::new(copied);
    let from_copy = build_block(&fork, &globals(0), &mut candidates, &limits(), &clock()).unwrap();
    assert_eq!(from_copy.header, from_pool.header);
    assert!(candidates.is_empty());
}
