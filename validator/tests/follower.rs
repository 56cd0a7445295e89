//! The state service and its chain follower against a real archiver and world state (RocksDB):
//! executed blocks applied without executing again, blocks it was not given executed, prunes
//! rolled back with their txs back in the pool, a missed prune caught up after a restart, and a
//! block that does not execute to its header stopping the follower until it is pruned.

mod common;

use std::time::Duration;

use common::{Net, PATIENCE, Stores, TARGET, build, receive_all, two_stores};
use tandem_proto::{B256, time::Slot};
use tandem_validator::{BlockOutcome, BlockProposalProcessor, FollowerStatus, StallReason};

/// Moves the clock past slot `slot`'s orphan deadline (no checkpoint proposal was seen for
/// it) and makes the archiver sync, which prunes its blocks.
async fn orphan_prune(net: &Net, stores: &Stores, slot: Slot) {
    let deadline = net.windows.checkpoint_proposal_receive_deadline(slot);
    net.clock
        .set(deadline.saturating_add(Duration::from_secs(2)));
    // The actor's own sync may prune first; either way it is done after this one.
    stores.archiver.sync_now().await.unwrap();
    assert_eq!(stores.archiver.tips().proposed.block.number, 0, "pruned");
}

#[tokio::test]
async fn blocks_from_the_block_handler_are_applied_without_executing_again() {
    let net = Net::new();
    let (proposer, validator, _dirs) = two_stores(&net);
    proposer.wait_synced_at(0).await;
    let proposal = build(
        &net,
        &proposer,
        TARGET,
        vec![
            vec![net.transfer(0, 0, 5), net.transfer(1, 0, 7)],
            vec![net.transfer(0, 1, 9)],
            vec![],
        ],
    );
    proposer.store_own(&proposal).await;
    proposer.wait_synced_at(3).await;

    receive_all(&net, &validator, &proposal).await;
    validator.wait_synced_at(3).await;
    let counts = validator.state.follower_counts();
    assert_eq!((counts.given, counts.executed_here), (3, 0));
    assert_eq!(
        validator.state.reader().tip(),
        proposer.state.reader().tip(),
        "the validator's world state is the proposer's"
    );
    // The proposer's own blocks were never executed twice either.
    assert_eq!(proposer.state.follower_counts().executed_here, 0);
    // A copy of a stored block is recognised, not executed again.
    let again = BlockProposalProcessor::new(&validator.context(&net))
        .process_unverified(
            &proposal.blocks[1],
            None,
            net.windows.attestation_deadline(TARGET),
        )
        .await;
    assert!(matches!(again, BlockOutcome::AlreadyStored(_)), "{again:?}");
}

#[tokio::test]
async fn blocks_stored_without_their_executed_block_are_executed_by_the_follower() {
    let net = Net::new();
    let (proposer, follower, _dirs) = two_stores(&net);
    let proposal = build(
        &net,
        &proposer,
        TARGET,
        vec![
            vec![net.transfer(2, 0, 1), net.transfer(3, 0, 2)],
            vec![net.transfer(2, 1, 3)],
        ],
    );
    for index in 0..proposal.blocks.len() {
        follower
            .archiver
            .add_block(proposal.stored_block(index))
            .await
            .unwrap();
    }
    follower.wait_synced_at(2).await;
    let counts = follower.state.follower_counts();
    assert_eq!((counts.given, counts.executed_here), (0, 2));
    assert_eq!(
        follower.state.reader().tip().state_root,
        proposal.blocks[1].header.state_root
    );
}

#[tokio::test]
async fn a_prune_rolls_back_world_state_and_returns_txs_to_the_pool() {
    let net = Net::new();
    let (proposer, validator, _dirs) = two_stores(&net);
    let txs = vec![
        net.transfer(4, 0, 1),
        net.transfer(4, 1, 1),
        net.transfer(5, 0, 1),
    ];
    for tx in &txs {
        validator.state.submit_tx(tx.clone()).await.unwrap();
    }
    assert_eq!(validator.state.reader().pool_len(), 3);
    let proposal = build(
        &net,
        &proposer,
        TARGET,
        vec![txs[..2].to_vec(), txs[2..].to_vec()],
    );
    receive_all(&net, &validator, &proposal).await;
    validator.wait_synced_at(2).await;
    assert_eq!(
        validator.state.reader().pool_len(),
        0,
        "mined txs left the pool"
    );
    let sender = net.users[4].address();
    assert_eq!(validator.state.reader().account(&sender).nonce, 2);

    // No checkpoint proposal comes: the archiver prunes the slot's blocks as orphans.
    orphan_prune(&net, &validator, TARGET).await;
    validator.wait_synced_at(0).await;
    let reader = validator.state.reader();
    assert_eq!(
        reader.tip().state_root,
        net.spec.genesis_header().state_root
    );
    assert_eq!(reader.account(&sender).nonce, 0);
    for tx in &txs {
        assert!(
            reader.pooled_tx(&tx.hash()).is_some(),
            "pruned tx {} is back in the pool",
            tx.hash()
        );
    }
    assert_eq!(validator.state.follower_counts().rolled_back, 2);
}

#[tokio::test]
async fn the_follower_catches_up_after_a_missed_prune_event() {
    let net = Net::new();
    let (proposer, validator, dirs) = two_stores(&net);
    let proposal = build(
        &net,
        &proposer,
        TARGET,
        vec![vec![net.transfer(6, 0, 1)], vec![net.transfer(6, 1, 1)]],
    );
    receive_all(&net, &validator, &proposal).await;
    validator.wait_synced_at(2).await;
    let before = validator.state.reader().tip();
    assert_eq!(before.number, 2);

    // The state service is down while the archiver prunes: nobody receives the event.
    let (clock, windows) = (net.clock.clone(), net.windows);
    let validator = validator
        .restart_state(&net, dirs.1.path(), |archiver| async move {
            let deadline = windows.checkpoint_proposal_receive_deadline(TARGET);
            clock.set(deadline.saturating_add(Duration::from_secs(2)));
            archiver.sync_now().await.unwrap();
            assert_eq!(archiver.tips().proposed.block.number, 0);
        })
        .await;
    // The restarted service reconciles by block hash: world state back to genesis.
    validator.wait_synced_at(0).await;
    assert_eq!(
        validator.state.reader().tip().state_root,
        net.spec.genesis_header().state_root
    );
    assert_eq!(validator.state.follower_counts().rolled_back, 2);
    assert!(validator.state.readiness().is_ready());
}

#[tokio::test]
async fn a_block_that_does_not_execute_to_its_header_stalls_the_follower_until_pruned() {
    let net = Net::new();
    let (proposer, follower, _dirs) = two_stores(&net);
    follower.wait_synced_at(0).await;
    let proposal = build(&net, &proposer, TARGET, vec![vec![net.transfer(7, 0, 1)]]);
    let mut bad = proposal.clone();
    bad.blocks[0].header.state_root = B256::repeat_byte(0x66);
    bad.resign_block(&net, 0);
    let header = bad.blocks[0].header.clone();
    // The archiver does not execute: a block from a careless source (L1 with a bad body, a
    // bug) can reach it.
    follower
        .archiver
        .add_block(bad.stored_block(0))
        .await
        .unwrap();
    let status = tokio::time::timeout(
        PATIENCE,
        follower
            .state
            .readiness()
            .wait_for(|status| matches!(status, FollowerStatus::Stalled { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    let FollowerStatus::Stalled {
        number,
        hash,
        reason,
    } = status
    else {
        unreachable!()
    };
    assert_eq!((number, hash), (1, header.hash()));
    assert!(
        matches!(
            reason,
            StallReason::Mismatch(tandem_state::ReexecutionError::StateMismatch { .. })
        ),
        "{reason:?}"
    );
    assert!(!follower.state.readiness().is_ready());
    assert_eq!(follower.state.reader().tip().number, 0, "nothing applied");

    // Once the archiver drops the block the follower resumes.
    orphan_prune(&net, &follower, TARGET).await;
    follower.wait_synced_at(0).await;
    assert!(follower.state.readiness().is_ready());
}
