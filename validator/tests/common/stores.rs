//! One node's stores (archiver, world state, state service) on RocksDB in a temp dir, and
//! waits on them.

use super::*;

/// Archiver, world state and state service of one node, over RocksDB in `dir`.
pub struct Stores {
    pub archiver: ArchiverHandle,
    pub state: StateHandle,
    pub cancel: CancellationToken,
    pub archiver_task: JoinHandle<tandem_archiver::ArchiverResult<()>>,
    pub state_task: JoinHandle<ValidatorResult<()>>,
    pub state_cancel: CancellationToken,
    _guards: (tokio_util::sync::DropGuard, tokio_util::sync::DropGuard),
}

pub fn archiver_timing(net: &Net) -> ArchiverTiming {
    ArchiverTiming {
        clock: Arc::new(net.clock.clone()),
        slot_clock: *net.windows.slot_clock(),
        windows: net.windows,
        poll_interval: Duration::from_millis(50),
    }
}

pub fn sync_config() -> SyncConfig {
    SyncConfig {
        deployment_block: 0,
        confirmations: 0,
        batch_size: 100,
        max_batches_per_step: 10,
        orphan_prune_tolerance: Duration::from_secs(1),
    }
}

pub fn open_archiver(net: &Net, dir: &Path) -> ArchiverStore {
    ArchiverStore::open(
        &dir.join("archiver"),
        &net.spec.genesis_header(),
        net.domain,
    )
    .unwrap()
}

pub fn open_world(net: &Net, dir: &Path) -> WorldState {
    WorldState::open(
        &dir.join("world"),
        net.spec.clone(),
        WorldStateConfig::default(),
    )
    .unwrap()
}

/// Starts a state service over `world` following `archiver`.
pub fn start_state(
    net: &Net,
    world: WorldState,
    archiver: &ArchiverHandle,
) -> (
    StateHandle,
    CancellationToken,
    JoinHandle<ValidatorResult<()>>,
) {
    let (state, service) = StateService::new(
        world,
        StateServiceConfig::new(net.domain),
        Arc::new(archiver.clone()),
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn(service.run(cancel.clone()));
    (state, cancel, task)
}

/// Hands every block of `proposal` to a block handler on `stores` (no peers) and asserts it
/// stored them.
pub async fn receive_all(net: &Net, stores: &Stores, proposal: &Proposal) {
    let processor = BlockProposalProcessor::new(&stores.context(net));
    let deadline = net
        .windows
        .attestation_deadline(Slot(proposal.blocks[0].header.slot));
    for block in &proposal.blocks {
        let outcome = processor.process_unverified(block, None, deadline).await;
        assert!(
            matches!(outcome, tandem_validator::BlockOutcome::Stored(_)),
            "{outcome:?}"
        );
    }
}

/// A proposer's and a validator's stores, each in its own temp dir (the dirs go last).
pub fn two_stores(net: &Net) -> (Stores, Stores, (tempfile::TempDir, tempfile::TempDir)) {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let proposer = Stores::start(net, dirs.0.path());
    let validator = Stores::start(net, dirs.1.path());
    (proposer, validator, dirs)
}

impl Stores {
    /// Stores following an empty L1.
    pub fn start(net: &Net, dir: &Path) -> Self {
        let source = Arc::new(EmptyL1 {
            genesis_secs: net.windows.slot_clock().genesis().as_secs(),
        });
        Self::start_with(net, dir, source, sync_config())
    }

    pub fn start_with(net: &Net, dir: &Path, source: Arc<dyn L1Source>, sync: SyncConfig) -> Self {
        let (archiver, actor) = ArchiverActor::new(
            open_archiver(net, dir),
            source,
            None,
            sync,
            archiver_timing(net),
        );
        let cancel = CancellationToken::new();
        let archiver_task = tokio::spawn(actor.run(cancel.clone()));
        let (state, state_cancel, state_task) = start_state(net, open_world(net, dir), &archiver);
        Self {
            archiver,
            state,
            _guards: (
                cancel.clone().drop_guard(),
                state_cancel.clone().drop_guard(),
            ),
            cancel,
            archiver_task,
            state_task,
            state_cancel,
        }
    }

    /// Stops the state service (closing the world state), runs `meanwhile`, and starts a new
    /// one over the reopened world state.
    pub async fn restart_state<F: std::future::Future<Output = ()>>(
        self,
        net: &Net,
        dir: &Path,
        meanwhile: impl FnOnce(ArchiverHandle) -> F,
    ) -> Self {
        let Self {
            archiver,
            state,
            cancel,
            archiver_task,
            state_task,
            state_cancel,
            _guards: (archiver_guard, _),
        } = self;
        state_cancel.cancel();
        state_task.await.unwrap().unwrap();
        drop(state);
        meanwhile(archiver.clone()).await;
        let (state, state_cancel, state_task) = start_state(net, open_world(net, dir), &archiver);
        Self {
            archiver,
            state,
            _guards: (archiver_guard, state_cancel.clone().drop_guard()),
            cancel,
            archiver_task,
            state_task,
            state_cancel,
        }
    }

    /// Stores an honest proposal the way a sequencer does: executed blocks to the state
    /// service, blocks and the checkpoint to the archiver.
    pub async fn store_own(&self, proposal: &Proposal) {
        for (index, (executed, txs)) in proposal.executed.iter().enumerate() {
            self.state
                .submit_executed(executed.clone(), txs.clone())
                .await
                .unwrap();
            self.archiver
                .add_block(proposal.stored_block(index))
                .await
                .unwrap();
        }
        let last = proposal.blocks.last().unwrap();
        self.archiver
            .add_proposed_checkpoint(ProposedCheckpointInput {
                number: last.header.checkpoint_number,
                payload: proposal.checkpoint.payload.clone(),
                start_block: proposal.blocks[0].header.block_number,
                block_count: proposal.blocks.len() as u64,
                proposer_signature: proposal.checkpoint.signature,
            })
            .await
            .unwrap();
    }

    /// A handler context without peers.
    pub fn context(&self, net: &Net) -> ValidatorContext {
        self.context_with_fees(net, net.fees())
    }

    /// A handler context without peers whose fee reads go to `fees`.
    pub fn context_with_fees(&self, net: &Net, fees: Arc<dyn FeeOracle>) -> ValidatorContext {
        ValidatorContext::new(
            Arc::new(self.archiver.clone()),
            self.state.clone(),
            Arc::new(NoPeers),
            Arc::new(net.clock.clone()),
            net.windows,
            net.domain,
            fees,
        )
    }

    /// Waits until the world state is in sync with the archiver at block `number`.
    pub async fn wait_synced_at(&self, number: u64) {
        let status = tokio::time::timeout(
            PATIENCE,
            self.state.readiness().wait_for(|status| {
                matches!(status, tandem_validator::FollowerStatus::InSync { tip } if tip.number == number)
            }),
        )
        .await;
        assert!(
            matches!(status, Ok(Some(_))),
            "world state never in sync at {number}: {:?} (archiver at {})",
            self.state.readiness().status(),
            self.archiver.tips().proposed.block.number
        );
    }
}

/// Runs `f` until it returns `true`, waking on every tip change of `stores`'s world state or
/// archiver, and every 20 ms for what no tip announces (the pool); fails after [`PATIENCE`].
pub async fn until(stores: &Stores, what: &str, mut f: impl FnMut() -> bool) {
    let mut state = stores.state.reader().watch_tip();
    let mut tips = stores.archiver.watch_tips();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        state.borrow_and_update();
        tips.borrow_and_update();
        if f() {
            return;
        }
        tokio::select! {
            _ = state.changed() => {}
            _ = tips.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
            () = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}"),
        }
    }
}

pub fn clock_now(net: &Net) -> Timestamp {
    net.clock.now()
}
