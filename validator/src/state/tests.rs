//! The state service's reaction to a failed reconcile step (a unit test: the failure is
//! injected, the stores are real).

use std::sync::Arc;

use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{
    Added, ArchiverError, ArchiverReader, ArchiverResult, ArchiverStore, ProposedBlock,
    ProposedCheckpoint, ProposedCheckpointInput, PruneEvent, StoredHeader,
};
use tandem_proto::{
    Address, L2Tips, SigningDomain,
    time::{Slot, Timestamp},
};
use tandem_state::{ChainSpec, WorldState, WorldStateConfig};
use tokio::sync::{broadcast, watch};

use super::{FollowerStatus, Settled, StateService, StateServiceConfig};
use crate::{archive::ChainArchive, error::ValidatorError};

/// A store without an actor: the follower only reads it here.
struct StoreOnly {
    reader: ArchiverReader,
    tips: watch::Sender<L2Tips>,
    prunes: broadcast::Sender<PruneEvent>,
}

impl ChainArchive for StoreOnly {
    fn reader(&self) -> &ArchiverReader {
        &self.reader
    }

    fn watch_tips(&self) -> watch::Receiver<L2Tips> {
        self.tips.subscribe()
    }

    fn subscribe_prunes(&self) -> broadcast::Receiver<PruneEvent> {
        self.prunes.subscribe()
    }

    fn add_block(&self, _: ProposedBlock) -> BoxFuture<'_, ArchiverResult<Added<StoredHeader>>> {
        async { Err(ArchiverError::Stopped) }.boxed()
    }

    fn add_proposed_checkpoint(
        &self,
        _: ProposedCheckpointInput,
    ) -> BoxFuture<'_, ArchiverResult<Added<ProposedCheckpoint>>> {
        async { Err(ArchiverError::Stopped) }.boxed()
    }

    fn note_checkpoint_proposal_seen(&self, _: Slot) -> BoxFuture<'_, ArchiverResult<()>> {
        async { Ok(()) }.boxed()
    }

    fn hold_orphans(&self, _: Slot, _: Timestamp) -> BoxFuture<'_, ArchiverResult<()>> {
        async { Err(ArchiverError::Stopped) }.boxed()
    }
}

#[tokio::test]
async fn a_failed_reconcile_step_makes_the_node_not_ready_until_a_step_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let domain = SigningDomain {
        chain_id: 7,
        rollup: Address::repeat_byte(1),
    };
    let spec = ChainSpec {
        chain_id: domain.chain_id,
        rollup_version: 1,
        genesis_allocation: vec![],
    };
    let store =
        ArchiverStore::open(&dir.path().join("archiver"), &spec.genesis_header(), domain).unwrap();
    let archive = StoreOnly {
        reader: store.reader(),
        tips: watch::channel(store.reader().tips().unwrap()).0,
        prunes: broadcast::channel(1).0,
    };
    let world =
        WorldState::open(&dir.path().join("world"), spec, WorldStateConfig::default()).unwrap();
    let (handle, mut service) =
        StateService::new(world, StateServiceConfig::new(domain), Arc::new(archive));
    let step = service.follower.step().await;
    assert_eq!(service.settle(step).unwrap(), Settled::Done);
    assert!(
        handle.readiness().is_ready(),
        "{:?}",
        handle.readiness().status()
    );

    // A non-fatal failure: not ready, with the reason.
    let failure = Err(ValidatorError::Archiver(ArchiverError::Stopped));
    assert_eq!(service.settle(failure).unwrap(), Settled::Failed);
    let status = handle.readiness().status();
    assert!(
        matches!(&status, FollowerStatus::ReconcileFailed { error } if error.contains("stopped")),
        "{status:?}"
    );
    assert!(!handle.readiness().is_ready());

    // The next step succeeds: ready again.
    let step = service.follower.step().await;
    assert_eq!(service.settle(step).unwrap(), Settled::Done);
    assert!(
        handle.readiness().is_ready(),
        "{:?}",
        handle.readiness().status()
    );
}

/// Pruned txs go back to the pool after a complete reconcile, not after a failed step (the
/// world state may still hold the pruned blocks then, and their txs would look mined).
#[tokio::test]
async fn pruned_txs_return_to_the_pool_only_after_a_step_that_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let domain = SigningDomain {
        chain_id: 7,
        rollup: Address::repeat_byte(1),
    };
    let key = tandem_proto::SigningKey::from_bytes(&[9u8; 32]).unwrap();
    let spec = ChainSpec {
        chain_id: domain.chain_id,
        rollup_version: 1,
        genesis_allocation: vec![(key.address(), 1_000_000_000)],
    };
    let store =
        ArchiverStore::open(&dir.path().join("archiver"), &spec.genesis_header(), domain).unwrap();
    let archive = StoreOnly {
        reader: store.reader(),
        tips: watch::channel(store.reader().tips().unwrap()).0,
        prunes: broadcast::channel(1).0,
    };
    let world =
        WorldState::open(&dir.path().join("world"), spec, WorldStateConfig::default()).unwrap();
    let (handle, mut service) =
        StateService::new(world, StateServiceConfig::new(domain), Arc::new(archive));
    let tx = tandem_proto::Tx::sign(
        tandem_proto::TxPayload {
            chain_id: domain.chain_id,
            nonce: 0,
            to: Address::repeat_byte(0x55),
            amount: 1,
            max_fee_per_mana: 1,
            mana_limit: tandem_state::TX_MANA,
        },
        &domain,
        &key,
    )
    .into_recovered(&domain)
    .unwrap();
    let hash = tx.hash();
    service.follower.on_prune(PruneEvent {
        seq: 1,
        kind: tandem_archiver::PruneKind::Orphan,
        first_removed_block: 1,
        removed_blocks: 1,
        evicted_checkpoints: vec![],
        txs: vec![tx],
    });
    let pooled = || {
        handle
            .reader()
            .with_pool(|pool, _| pool.get(&hash).is_some())
    };

    let failure = Err(ValidatorError::Archiver(ArchiverError::Stopped));
    let settled = service.settle(failure).unwrap();
    service.finish_step(settled);
    assert!(!pooled(), "pruned txs returned after a failed step");

    let step = service.follower.step().await;
    let settled = service.settle(step).unwrap();
    assert_eq!(settled, Settled::Done);
    service.finish_step(settled);
    assert!(
        pooled(),
        "pruned txs not returned after a complete reconcile"
    );
}
