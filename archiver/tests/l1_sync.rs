//! The archiver following a real L1 (anvil): a full node syncing from L1 alone, and an L1 reorg.

mod common;

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::Bytes,
    providers::{DynProvider, ext::AnvilApi},
};
use common::{BuiltCheckpoint, Chain, genesis};
use tandem_archiver::{
    ArchiverActor, ArchiverHandle, ArchiverStore, ArchiverTiming, PruneKind, SyncConfig,
};
use tandem_l1::{Deployment, L1Reader, RollupParams, harness::AnvilHarness};
use tandem_proto::{
    SigningKey,
    time::{ConsensusWindows, PipeliningMode, SlotClock, SystemClock, Timestamp},
};
use tokio_util::sync::CancellationToken;

const SLOT: u64 = 4;
const VALIDATORS: usize = 4;

struct L1 {
    harness: AnvilHarness,
    deployment: Deployment,
    keys: Vec<SigningKey>,
    next_slot: u64,
}

fn key(i: usize) -> SigningKey {
    let mut secret = [0x21u8; 32];
    secret[31] = i as u8 + 1;
    SigningKey::from_bytes(&secret).unwrap()
}

async fn l1() -> L1 {
    let harness = AnvilHarness::start(None);
    let now = harness.latest_timestamp().await.unwrap();
    let mut params = RollupParams::with_genesis(now);
    params.slot_duration = SLOT;
    params.l1_slot_duration = 2;
    params.epoch_duration = 8;
    params.committee_size = VALIDATORS as u64;
    params.l2_chain_id = 1;
    params.block_duration_ms = 1_000;
    params.last_block_reexecution_budget_ms = 1_000;
    params.genesis_archive = Chain::new().archive.root();
    let keys: Vec<SigningKey> = (0..VALIDATORS).map(key).collect();
    let addresses: Vec<_> = keys.iter().map(SigningKey::address).collect();
    let deployment = harness.deploy(&params, &addresses).await.unwrap();
    L1 {
        harness,
        deployment,
        keys,
        next_slot: 2,
    }
}

impl L1 {
    /// Builds and lands the next checkpoint of `chain` (1–2 blocks) in the next slot.
    async fn land(&mut self, chain: &mut Chain, number: u64, salt: u8) -> BuiltCheckpoint {
        let reader = L1Reader::new(self.harness.provider(), self.deployment.rollup);
        chain.fee_per_mana = reader
            .mana_min_fee(None, alloy::eips::BlockId::latest())
            .await
            .unwrap();
        chain.genesis_time = self.deployment.params.genesis_time;
        chain.slot_duration = SLOT;
        let slot = self.next_slot;
        self.next_slot += 1;
        let checkpoint = chain.checkpoint(number, slot, 1 + (number % 2) as u32, salt);
        let body = Bytes::from(tandem_proto::encode_checkpoint_body(&checkpoint.blocks));
        let quorum = VALIDATORS * 2 / 3 + 1;
        self.harness
            .land_checkpoint(
                &self.deployment,
                &self.keys,
                number,
                checkpoint.payload.clone(),
                body,
                quorum,
            )
            .await
            .unwrap();
        checkpoint
    }

    fn archiver(
        &self,
        dir: &std::path::Path,
    ) -> (
        ArchiverHandle,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let store = ArchiverStore::open(dir, &genesis()).unwrap();
        let reader: L1Reader<DynProvider> =
            L1Reader::new(self.harness.provider(), self.deployment.rollup);
        let slot_clock = SlotClock::new(
            Timestamp::from_secs(self.deployment.params.genesis_time),
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
            // Long: the tests drive sync steps themselves.
            poll_interval: Duration::from_secs(3600),
        };
        let config = SyncConfig {
            deployment_block: self.deployment.deployment_block,
            confirmations: 0,
            batch_size: 7,
            max_batches_per_step: 100,
            orphan_prune_tolerance: Duration::from_secs(1),
        };
        let (handle, actor) = ArchiverActor::new(store, reader, config, timing);
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move { actor.run(cancel).await.unwrap() }
        });
        (handle, cancel, task)
    }
}

#[tokio::test]
async fn full_node_syncs_twenty_checkpoints_from_l1_alone() {
    let mut l1 = l1().await;
    let mut chain = Chain::new();
    let mut landed = Vec::new();
    for number in 1..=20 {
        landed.push(l1.land(&mut chain, number, 1).await);
    }

    let dir = tempfile::tempdir().unwrap();
    let (archiver, cancel, task) = l1.archiver(dir.path());
    // The first step consumes one tick of the interval; then ask for more until caught up.
    let mut report = archiver.sync_now().await.unwrap();
    while report.behind {
        report = archiver.sync_now().await.unwrap();
    }
    let tips = archiver.tips();
    assert_eq!(tips.checkpointed.checkpoint.number, 20);
    assert_eq!(tips.checkpointed.block.number, chain.last_block);
    assert_eq!(tips.proposed, tips.checkpointed);
    for checkpoint in &landed {
        for block in &checkpoint.blocks {
            let stored = archiver
                .block(block.header.block_number)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(stored.block.hash(), block.hash());
        }
        let record = archiver
            .checkpoint(checkpoint.number)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.payload, checkpoint.payload);
        assert_eq!(record.attestations.len(), VALIDATORS * 2 / 3 + 1);
    }
    // A node that already has everything finds nothing new.
    let again = archiver.sync_now().await.unwrap();
    assert_eq!(again.checkpoints, 0);

    // Gossip continues on top of the synced tip through the queue.
    let next = chain.checkpoint(21, l1.next_slot, 1, 1);
    let stored = archiver
        .add_recovered_block(next.blocks[0].header.clone(), Vec::new())
        .await
        .unwrap();
    assert_eq!(archiver.tips().proposed.block.hash, stored.block.hash());
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn l1_reorg_of_depth_three_rolls_back_and_resyncs() {
    let mut l1 = l1().await;
    let mut chain = Chain::new();
    for number in 1..=2 {
        l1.land(&mut chain, number, 1).await;
    }
    let fork_point = chain.clone();
    let snapshot = l1.harness.provider().anvil_snapshot().await.unwrap();
    let next_slot = l1.next_slot;
    for number in 3..=5 {
        l1.land(&mut chain, number, 1).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let (archiver, cancel, task) = l1.archiver(dir.path());
    let mut prunes = archiver.subscribe_prunes();
    archiver.sync_now().await.unwrap();
    assert_eq!(archiver.tips().checkpointed.checkpoint.number, 5);
    let first_of_three = archiver.checkpoint(3).await.unwrap().unwrap().start_block;

    // L1 drops the last three checkpoints' blocks; another checkpoint 3 lands instead.
    assert!(l1.harness.provider().anvil_revert(snapshot).await.unwrap());
    l1.next_slot = next_slot;
    let mut other = fork_point;
    let replacement = l1.land(&mut other, 3, 9).await;

    let report = archiver.sync_now().await.unwrap();
    assert!(
        report
            .prunes
            .iter()
            .any(|p| p.kind == PruneKind::L1Reorg && p.first_removed_block == first_of_three)
    );
    let tips = archiver.tips();
    assert_eq!(tips.checkpointed.checkpoint.number, 3);
    assert_eq!(
        tips.checkpointed.checkpoint.hash,
        replacement.payload.header.hash()
    );
    assert_eq!(
        tips.proposed.block.hash,
        replacement.blocks.last().unwrap().hash()
    );
    let event = prunes.recv().await.unwrap();
    assert_eq!(event.kind, PruneKind::L1Reorg);
    cancel.cancel();
    task.await.unwrap();
}
