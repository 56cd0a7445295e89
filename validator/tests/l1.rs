//! A full node with no peers follows L1 alone (a real anvil with the Rollup): its archiver
//! takes the blocks from the checkpoint bodies, its chain follower executes them, and its
//! world-state root equals the proposer's (the root every validator re-executed to) at every
//! checkpoint.

mod common;

use std::time::Duration;

use alloy::{eips::BlockId, primitives::Bytes};
use common::anvil::{L1_VALIDATORS as VALIDATORS, L1Chain};
use tandem_proto::{
    Address, ConsensusPayload, DEFAULT_MAX_CHECKPOINT_BODY_BYTES, Tx, TxPayload,
    encode_checkpoint_body,
    time::{SystemClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, CheckpointBodyBudget, PoolConfig, TxPool, WorldState,
    WorldStateConfig, build_block, validate_stateless,
};
use tandem_validator::FollowerStatus;

const SLOT: u64 = 4;
const CHECKPOINTS: u64 = 6;

#[tokio::test]
async fn a_full_node_with_no_peers_follows_l1_and_its_state_root_matches_at_every_checkpoint() {
    // The full node: archiver on the L1 reader, world state, state service. No p2p at all.
    let chain = L1Chain::start(0x31, 4, SLOT, 1_000, Duration::from_secs(1), |_| {}).await;
    let (harness, params, spec, deployment, domain, reader) = (
        &chain.harness,
        &chain.params,
        &chain.spec,
        &chain.deployment,
        chain.domain,
        &chain.reader,
    );
    let (users, validators, archiver, state) = (
        &chain.users,
        &chain.validators,
        &chain.archiver,
        &chain.state,
    );

    // The proposer builds real blocks on its own world state and lands them on L1.
    let builder_dir = tempfile::tempdir().unwrap();
    let mut builder = WorldState::open(
        builder_dir.path(),
        spec.clone(),
        WorldStateConfig::default(),
    )
    .unwrap();
    let mut nonces = [0u64; 4];
    let mut checkpoint_tips = Vec::new();
    for number in 1..=CHECKPOINTS {
        let slot = 1 + number;
        let fee = reader.mana_min_fee(None, BlockId::latest()).await.unwrap();
        let timestamp = params.genesis_time + slot * SLOT;
        let mut budget = CheckpointBodyBudget::new(DEFAULT_MAX_CHECKPOINT_BODY_BYTES);
        let mut blocks = Vec::new();
        for index in 0..(1 + number % 2) as u32 {
            let tip = builder.tip().number;
            let mut fork = builder.fork(tip).unwrap();
            let mut pool = TxPool::new(PoolConfig::default());
            for (user, signer) in users.iter().enumerate().take(2 + (number as usize % 3)) {
                let tx = Tx::sign(
                    TxPayload {
                        chain_id: domain.chain_id,
                        nonce: nonces[user],
                        to: Address::repeat_byte(0x70 + number as u8),
                        amount: u128::from(number) * 1_000 + user as u128,
                        max_fee_per_mana: fee.max(1) * 2,
                        mana_limit: tandem_state::TX_MANA,
                    },
                    &domain,
                    signer,
                );
                nonces[user] += 1;
                let tx = validate_stateless(tx, &domain).unwrap();
                pool.add(tx.clone(), &fork.account(&tx.sender())).unwrap();
            }
            let globals = BlockGlobals {
                checkpoint_number: number,
                index_within_checkpoint: index,
                slot,
                timestamp,
                coinbase: Address::repeat_byte(1),
                fee_recipient: Address::repeat_byte(2),
                fee_per_mana: fee,
            };
            let limits = BuildLimits {
                max_txs: 100,
                max_mana: u64::MAX,
                max_body_bytes: budget.remaining(),
                deadline: Timestamp(u64::MAX),
            };
            let built = {
                let mut best = pool.best(|address| fork.account(address).nonce);
                build_block(&fork, &globals, &mut best, &limits, &SystemClock).unwrap()
            };
            assert!(built.failed.is_empty(), "{:?}", built.failed);
            budget.add_block(built.txs.len());
            let (executed, _) = fork.commit(built).unwrap();
            builder.apply_block(&executed).unwrap();
            blocks.push(executed.block().clone());
        }
        let (header, body) =
            tandem_proto::checkpoint_header_of(blocks[0].header.last_archive_root, &blocks)
                .unwrap();
        assert_eq!(body, encode_checkpoint_body(&blocks));
        let payload = ConsensusPayload {
            header,
            archive: builder.tip().archive_root,
            fee_asset_price_modifier: 0,
        };
        harness
            .land_checkpoint(
                deployment,
                validators,
                number,
                payload,
                Bytes::from(body),
                VALIDATORS * 2 / 3 + 1,
            )
            .await
            .unwrap();
        checkpoint_tips.push(builder.tip());

        // The full node catches up from L1 and executes what it read.
        let mut report = archiver.sync_now().await.unwrap();
        while report.behind {
            report = archiver.sync_now().await.unwrap();
        }
        assert_eq!(archiver.tips().checkpointed.checkpoint.number, number);
        let expected = builder.tip();
        let status = tokio::time::timeout(
            Duration::from_secs(30),
            state.readiness().wait_for(|status| {
                matches!(status, FollowerStatus::InSync { tip } if tip.number == expected.number)
            }),
        )
        .await
        .expect("the full node's world state follows L1");
        assert!(status.is_some());
        assert_eq!(
            state.reader().tip(),
            expected,
            "world state after checkpoint {number} equals the proposer's"
        );
    }
    // Every block was executed by the follower (no gossip ever gave it one).
    let counts = state.follower_counts();
    assert_eq!(counts.given, 0);
    assert_eq!(counts.executed_here, checkpoint_tips.last().unwrap().number);
    // The history at each checkpoint is the proposer's too.
    for tip in &checkpoint_tips {
        let root = state
            .reader()
            .fork(tip.number)
            .map(|fork| fork.state_root())
            .unwrap();
        assert_eq!(root, tip.state_root);
    }
    chain.stop().await;
}
