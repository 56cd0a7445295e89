//! The world state on a real RocksDB: blocks on a proposed base and rollbacks (with the pool),
//! reopen, the genesis archive, and history bounded by finality.

mod common;

use common::*;
use tandem_proto::{Address, RecoveredTx};
use tandem_state::{Account, StateError, WorldState, WorldStateConfig};

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
