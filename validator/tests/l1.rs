//! A full node with no peers follows L1 alone (a real anvil with the Rollup): its archiver
//! takes the blocks from the checkpoint bodies, its chain follower executes them, and its
//! world-state root equals the proposer's (the root every validator re-executed to) at every
//! checkpoint.

use std::{sync::Arc, time::Duration};

use alloy::{eips::BlockId, primitives::Bytes, providers::DynProvider};
use tandem_archiver::{ArchiverActor, ArchiverStore, ArchiverTiming, SyncConfig};
use tandem_l1::{L1Reader, RollupParams, harness::AnvilHarness};
use tandem_proto::{
    Address, ConsensusPayload, DEFAULT_MAX_CHECKPOINT_BODY_BYTES, SigningDomain, SigningKey, Tx,
    TxPayload, encode_checkpoint_body,
    time::{ConsensusWindows, PipeliningMode, SlotClock, SystemClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, ChainSpec, CheckpointBodyBudget, PoolConfig, TxPool, WorldState,
    WorldStateConfig, build_block, validate_stateless,
};
use tandem_validator::{FollowerStatus, StateService, StateServiceConfig};
use tokio_util::sync::CancellationToken;

const SLOT: u64 = 4;
const VALIDATORS: usize = 4;
const CHECKPOINTS: u64 = 6;

fn key(seed: u8, i: usize) -> SigningKey {
    let mut secret = [seed; 32];
    secret[31] = i as u8 + 1;
    SigningKey::from_bytes(&secret).unwrap()
}

#[tokio::test]
async fn a_full_node_with_no_peers_follows_l1_and_its_state_root_matches_at_every_checkpoint() {
    let harness = AnvilHarness::start(None);
    let now = harness.latest_timestamp().await.unwrap();
    let users: Vec<SigningKey> = (0..4).map(|i| key(0x31, i)).collect();
    let mut params = RollupParams::with_genesis(now);
    let spec = ChainSpec {
        chain_id: params.l2_chain_id,
        rollup_version: params.rollup_version,
        genesis_allocation: users.iter().map(|u| (u.address(), 1u128 << 100)).collect(),
    };
    params.slot_duration = SLOT;
    params.l1_slot_duration = 2;
    params.epoch_duration = 8;
    params.committee_size = VALIDATORS as u64;
    params.block_duration_ms = 1_000;
    params.last_block_reexecution_budget_ms = 1_000;
    params.genesis_archive = spec.genesis_archive_root();
    let validators: Vec<SigningKey> = (0..VALIDATORS).map(|i| key(0x21, i)).collect();
    let addresses: Vec<Address> = validators.iter().map(SigningKey::address).collect();
    let deployment = harness.deploy(&params, &addresses).await.unwrap();
    let domain = SigningDomain {
        chain_id: params.l2_chain_id,
        rollup: deployment.rollup,
    };
    let reader: L1Reader<DynProvider> = L1Reader::new(harness.provider(), deployment.rollup);

    // The full node: archiver on the L1 reader, world state, state service. No p2p at all.
    let dir = tempfile::tempdir().unwrap();
    let slot_clock = SlotClock::new(
        Timestamp::from_secs(params.genesis_time),
        Duration::from_secs(SLOT),
        Duration::from_secs(2),
        8,
    )
    .unwrap();
    let timing = ArchiverTiming {
        clock: Arc::new(SystemClock),
        slot_clock,
        windows: ConsensusWindows::new(
            slot_clock,
            Duration::from_secs(1),
            PipeliningMode::Pipelined,
            Duration::from_secs(1),
        ),
        poll_interval: Duration::from_millis(100),
    };
    let sync = SyncConfig {
        deployment_block: deployment.deployment_block,
        confirmations: 0,
        batch_size: 50,
        max_batches_per_step: 100,
        orphan_prune_tolerance: Duration::from_secs(1),
    };
    let store =
        ArchiverStore::open(&dir.path().join("archiver"), &spec.genesis_header(), domain).unwrap();
    let (archiver, actor) = ArchiverActor::new(store, Arc::new(reader.clone()), None, sync, timing);
    let cancel = CancellationToken::new();
    let _guard = cancel.clone().drop_guard();
    let archiver_task = tokio::spawn(actor.run(cancel.clone()));
    let world = WorldState::open(
        &dir.path().join("world"),
        spec.clone(),
        WorldStateConfig::default(),
    )
    .unwrap();
    let (state, service) = StateService::new(
        world,
        StateServiceConfig::new(domain),
        Arc::new(archiver.clone()),
    );
    let state_task = tokio::spawn(service.run(cancel.clone()));

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
                &deployment,
                &validators,
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
    cancel.cancel();
    archiver_task.await.unwrap().unwrap();
    state_task.await.unwrap().unwrap();
}
