//! The archiver actor's queue, with a driven clock and an unreachable L1 (sync steps fail and
//! are retried; the queue keeps being served).

mod common;

use std::{sync::Arc, time::Duration};

use alloy::providers::{Provider, ProviderBuilder};
use common::{Chain, genesis};
use tandem_archiver::{ArchiverActor, ArchiverError, ArchiverStore, ArchiverTiming, SyncConfig};
use tandem_l1::L1Reader;
use tandem_proto::{
    Address,
    time::{ConsensusWindows, ManualClock, PipeliningMode, SlotClock, Timestamp},
};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn queue_refuses_items_of_ended_slots_and_serves_while_l1_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArchiverStore::open(dir.path(), &genesis()).unwrap();
    // Nothing listens on port 9 (discard): every sync step fails.
    let provider = ProviderBuilder::new()
        .connect_http("http://127.0.0.1:9".parse().unwrap())
        .erased();
    let reader = L1Reader::new(provider, Address::ZERO);
    // The test chain's slots are seconds after 1,000; the clock says slot 100 has started.
    let slot_clock = SlotClock::new(
        Timestamp::from_secs(1_000),
        Duration::from_secs(1),
        Duration::from_secs(1),
        32,
    )
    .unwrap();
    let clock = ManualClock::new(Timestamp::from_secs(1_100));
    let timing = ArchiverTiming {
        clock: Arc::new(clock.clone()),
        slot_clock,
        windows: ConsensusWindows::new(
            slot_clock,
            Duration::from_millis(500),
            PipeliningMode::Pipelined,
            Duration::from_millis(500),
        ),
        poll_interval: Duration::from_millis(50),
    };
    let config = SyncConfig {
        deployment_block: 1,
        confirmations: 0,
        batch_size: 10,
        max_batches_per_step: 1,
        orphan_prune_tolerance: Duration::from_secs(1),
    };
    let (archiver, actor) = ArchiverActor::new(store, reader, config, timing);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(actor.run(cancel.clone()));

    let mut chain = Chain::new();
    let ended = chain.clone().checkpoint(1, 50, 1, 1);
    let err = archiver
        .add_block(ended.blocks[0].clone())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::SlotExpired {
                slot: 50,
                current: 101
            }
        ),
        "{err}"
    );

    let current = chain.checkpoint(1, 102, 2, 1);
    for block in &current.blocks {
        archiver.add_block(block.clone()).await.unwrap();
    }
    archiver
        .add_proposed_checkpoint(current.proposed())
        .await
        .unwrap();
    assert_eq!(archiver.tips().proposed_checkpoint.checkpoint.number, 1);
    assert!(archiver.sync_now().await.is_err(), "L1 is unreachable");
    // Still serving after failed sync steps.
    assert_eq!(
        archiver
            .proposed_checkpoint(1)
            .await
            .unwrap()
            .unwrap()
            .block_count,
        2
    );

    cancel.cancel();
    task.await.unwrap().unwrap();
    assert!(matches!(
        archiver.block(1).await,
        Err(ArchiverError::Stopped)
    ));
}
