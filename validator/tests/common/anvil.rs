//! A node following a real L1: anvil with a deployed Rollup (4 registered validators), an
//! archiver on the L1 reader, a world state and the state service, on RocksDB in a temp dir.

use super::*;
use alloy::providers::DynProvider;
use tandem_l1::{Deployment, L1Reader, RollupParams, harness::AnvilHarness};
use tandem_proto::time::SystemClock;

pub const L1_VALIDATORS: usize = 4;

/// Key `i` of a family of keys seeded `seed`.
pub fn seeded_key(seed: u8, i: usize) -> SigningKey {
    let mut secret = [seed; 32];
    secret[31] = i as u8 + 1;
    SigningKey::from_bytes(&secret).unwrap()
}

pub struct L1Chain {
    pub harness: AnvilHarness,
    pub params: RollupParams,
    pub spec: ChainSpec,
    pub deployment: Deployment,
    pub domain: SigningDomain,
    pub reader: L1Reader<DynProvider>,
    pub validators: Vec<SigningKey>,
    pub users: Vec<SigningKey>,
    pub slot_clock: SlotClock,
    pub windows: ConsensusWindows,
    pub archiver: ArchiverHandle,
    pub state: StateHandle,
    pub cancel: CancellationToken,
    pub archiver_task: JoinHandle<tandem_archiver::ArchiverResult<()>>,
    pub state_task: JoinHandle<ValidatorResult<()>>,
    _guard: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

impl L1Chain {
    /// Genesis now, `users` funded users (keys seeded `user_seed`), slots of `slot` seconds
    /// (2 s L1 slots, 8-slot epochs, D = R = `block_ms`), `tune` applied to the parameters
    /// last; the archiver follows the deployment with `orphan_tolerance`.
    pub async fn start(
        user_seed: u8,
        users: usize,
        slot: u64,
        block_ms: u64,
        orphan_tolerance: Duration,
        tune: impl FnOnce(&mut RollupParams),
    ) -> Self {
        let harness = AnvilHarness::start(None);
        let now = harness.latest_timestamp().await.unwrap();
        let users: Vec<SigningKey> = (0..users).map(|i| seeded_key(user_seed, i)).collect();
        let mut params = RollupParams::with_genesis(now);
        let spec = ChainSpec {
            chain_id: params.l2_chain_id,
            rollup_version: params.rollup_version,
            genesis_allocation: users.iter().map(|u| (u.address(), 1u128 << 100)).collect(),
        };
        params.slot_duration = slot;
        params.l1_slot_duration = 2;
        params.epoch_duration = 8;
        params.committee_size = L1_VALIDATORS as u64;
        params.block_duration_ms = block_ms;
        params.last_block_reexecution_budget_ms = block_ms;
        params.genesis_archive = spec.genesis_archive_root();
        tune(&mut params);
        let validators: Vec<SigningKey> = (0..L1_VALIDATORS).map(|i| seeded_key(0x21, i)).collect();
        let addresses: Vec<Address> = validators.iter().map(SigningKey::address).collect();
        let deployment = harness.deploy(&params, &addresses).await.unwrap();
        let domain = SigningDomain {
            chain_id: params.l2_chain_id,
            rollup: deployment.rollup,
        };
        let reader: L1Reader<DynProvider> = L1Reader::new(harness.provider(), deployment.rollup);
        let dir = tempfile::tempdir().unwrap();
        let slot_clock = SlotClock::new(
            Timestamp::from_secs(params.genesis_time),
            Duration::from_secs(slot),
            Duration::from_secs(2),
            8,
        )
        .unwrap();
        let block = Duration::from_millis(block_ms);
        let windows = ConsensusWindows::new(slot_clock, block, PipeliningMode::Pipelined, block);
        let timing = ArchiverTiming {
            clock: Arc::new(SystemClock),
            slot_clock,
            windows,
            poll_interval: Duration::from_millis(100),
        };
        let sync = SyncConfig {
            deployment_block: deployment.deployment_block,
            confirmations: 0,
            batch_size: 50,
            max_batches_per_step: 100,
            orphan_prune_tolerance: orphan_tolerance,
        };
        let store =
            ArchiverStore::open(&dir.path().join("archiver"), &spec.genesis_header(), domain)
                .unwrap();
        let (archiver, actor) =
            ArchiverActor::new(store, Arc::new(reader.clone()), None, sync, timing);
        let cancel = CancellationToken::new();
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
        Self {
            harness,
            params,
            spec,
            deployment,
            domain,
            reader,
            validators,
            users,
            slot_clock,
            windows,
            archiver,
            state,
            _guard: cancel.clone().drop_guard(),
            cancel,
            archiver_task,
            state_task,
            _dir: dir,
        }
    }

    /// Stops the archiver and the state service; both must end cleanly.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.archiver_task.await.unwrap().unwrap();
        self.state_task.await.unwrap().unwrap();
    }
}
