//! A whole network in one process on real parts: anvil (`--block-time 1`) with the Rollup
//! deployed at the `ci` profile (S 12 s, E 1 s, D 1 s, 4-slot epochs, committee 3 of 4),
//! and nodes on RocksDB in temp dirs (archiver following anvil, world state and its state
//! service, the epoch cache reading L1, libp2p on 127.0.0.1 with every handler) — validators
//! with their slashing-protected signer, publisher and sequencer.
//!
//! The validator crate's test fixtures drive a `ManualClock` over an empty L1 with a static
//! committee; these nodes run on the wall clock against anvil, so they are built here.
#![allow(dead_code, unreachable_pub)]

use std::{collections::BTreeSet, path::Path, sync::Arc, time::Duration};

use alloy::{eips::BlockId, providers::DynProvider};
use tandem_archiver::{ArchiverActor, ArchiverHandle, ArchiverStore, ArchiverTiming, SyncConfig};
use tandem_l1::{Deployment, L1Reader, RollupParams, harness::AnvilHarness};
use tandem_p2p::{
    GossipKind, HandlersBuilder, Multiaddr, NetworkParams, P2pConfig, P2pDeps, P2pHandle,
    P2pService, TxRules,
};
use tandem_proto::{
    Address, L2Tips, SigningDomain, SigningKey, Tx, TxPayload,
    time::{
        ConsensusWindows, PipeliningMode, SequencerBudgets, SlotClock, SystemClock, Timestamp,
        Timetable,
    },
};
use tandem_publisher::{
    GWEI, Publisher, PublisherConfig, PublisherDeps, PublisherHandle, PublisherKeys,
};
use tandem_sequencer::{
    ArchiverChain, ProtocolParams, Sequencer, SequencerConfig, SequencerDeps, SequencerEvent,
    SequencerHandle,
};
use tandem_state::{ChainSpec, WorldState, WorldStateConfig};
use tandem_validator::{
    AllNodesCheckpointProcessor, ArchiverChainProvider, AttestingProcessor, BlockProposalProcessor,
    CheckpointRules, EpochCacheActor, EpochCacheConfig, L1FeeOracle, OpenMode, ProtectedSigner,
    StateHandle, StateService, StateServiceConfig, TxGossipHandler, ValidatorContext,
};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

mod figures;
pub use figures::Figures;
// Used by the pipeline bench only.
#[allow(unused_imports)]
pub use figures::percentile;

/// The ci profile.
pub const S: u64 = 12;
pub const E: u64 = 1;
pub const D_MS: u64 = 1_000;
pub const EPOCH: u64 = 4;
pub const COMMITTEE: u64 = 3;
pub const VALIDATORS: usize = 4;
/// Funded users in the genesis allocation.
pub const USERS: usize = 32;
/// Transfers preloaded by default: `(users, per user)`.
pub const PRELOAD: (usize, u64) = (8, 60);

pub fn validator_key(i: usize) -> SigningKey {
    let mut secret = [0x21u8; 32];
    secret[31] = i as u8 + 1;
    SigningKey::from_bytes(&secret).unwrap()
}

pub fn user_key(i: usize) -> SigningKey {
    let mut secret = [0x31u8; 32];
    secret[31] = i as u8 + 1;
    SigningKey::from_bytes(&secret).unwrap()
}

/// The deployment every node binds to.
pub struct Network {
    pub harness: AnvilHarness,
    pub deployment: Deployment,
    pub params: RollupParams,
    pub slot_clock: SlotClock,
    pub windows: ConsensusWindows,
    pub timetable: Timetable,
    pub domain: SigningDomain,
    pub spec: ChainSpec,
    pub reader: L1Reader<DynProvider>,
}

impl Network {
    /// Anvil mining every E, the Rollup in `mode` with genesis at anvil's latest block.
    pub async fn start(mode: PipeliningMode) -> Self {
        Self::start_capped(mode, None).await
    }

    /// [`Network::start`] with the proposers' blocks per checkpoint capped (a local setting).
    pub async fn start_capped(mode: PipeliningMode, blocks_cap: Option<u32>) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                std::env::var("RUST_LOG")
                    .unwrap_or_else(|_| "sequencer=info,publisher=warn".into()),
            )
            .with_test_writer()
            .try_init();
        let harness = AnvilHarness::start(Some(E as f64));
        let genesis = harness.latest_timestamp().await.unwrap();
        let mut params = RollupParams::with_genesis(genesis);
        let spec = ChainSpec {
            chain_id: params.l2_chain_id,
            rollup_version: params.rollup_version,
            genesis_allocation: (0..USERS)
                .map(|i| (user_key(i).address(), 1u128 << 100))
                .collect(),
        };
        params.slot_duration = S;
        params.l1_slot_duration = E;
        params.epoch_duration = EPOCH;
        params.committee_size = COMMITTEE;
        params.block_duration_ms = D_MS;
        params.last_block_reexecution_budget_ms = D_MS;
        params.pipelining_mode = mode;
        params.genesis_archive = spec.genesis_archive_root();
        let addresses: Vec<Address> = (0..VALIDATORS)
            .map(|i| validator_key(i).address())
            .collect();
        let deployment = harness.deploy(&params, &addresses).await.unwrap();
        let slot_clock = SlotClock::new(
            Timestamp::from_secs(genesis),
            Duration::from_secs(S),
            Duration::from_secs(E),
            EPOCH,
        )
        .unwrap();
        let windows = ConsensusWindows::new(
            slot_clock,
            Duration::from_millis(D_MS),
            mode,
            Duration::from_millis(D_MS),
        );
        let timetable = Timetable::new(windows, SequencerBudgets::default()).unwrap();
        let timetable = match blocks_cap {
            Some(cap) => timetable.with_max_blocks_cap(cap),
            None => timetable,
        };
        let domain = SigningDomain {
            chain_id: params.l2_chain_id,
            rollup: deployment.rollup,
        };
        let reader = L1Reader::new(harness.provider(), deployment.rollup);
        Self {
            harness,
            deployment,
            params,
            slot_clock,
            windows,
            timetable,
            domain,
            spec,
            reader,
        }
    }

    /// Transfer `nonce` of user `user`.
    pub fn transfer(&self, user: usize, nonce: u64) -> Tx {
        Tx::sign(
            TxPayload {
                chain_id: self.params.l2_chain_id,
                nonce,
                to: Address::repeat_byte(0x77),
                amount: 1,
                max_fee_per_mana: u128::from(u64::MAX),
                mana_limit: tandem_state::TX_MANA,
            },
            &self.domain,
            &user_key(user),
        )
    }

    /// L1's checkpointed tip.
    pub async fn l1_checkpointed(&self) -> u64 {
        self.reader.tips(BlockId::latest()).await.unwrap().0
    }

    /// The L1 proposer of `slot` (`None`: anyone).
    pub async fn l1_proposer(&self, slot: u64) -> Option<Address> {
        self.reader
            .proposer_of_slot(slot, BlockId::latest())
            .await
            .unwrap()
    }
}

/// Publisher settings fitted to 1 s L1 slots.
pub fn publisher_config() -> PublisherConfig {
    PublisherConfig {
        max_fee_per_gas: 100 * GWEI,
        stall_time: Duration::from_secs(2),
        max_speed_ups: 2,
        receipt_poll_interval: Duration::from_millis(100),
        send_wait_poll_interval: Duration::from_millis(50),
        tx_unseen_considered_dropped: Duration::from_secs(2),
        cancel_final_timeout: Duration::from_secs(6),
        ..Default::default()
    }
}

/// The sequencer settings of the runs: two txs per block, so a preloaded backlog gives every
/// sub-slot a block.
pub fn sequencer_config(skip: BTreeSet<u64>) -> SequencerConfig {
    SequencerConfig {
        poll_interval: Duration::from_millis(100),
        max_txs_per_block: Some(2),
        skip_publishing_slots: skip,
        ..SequencerConfig::default()
    }
}

/// One node.
pub struct Node {
    pub index: Option<usize>,
    pub archiver: ArchiverHandle,
    pub state: StateHandle,
    pub p2p: P2pHandle,
    pub addr: Multiaddr,
    pub sequencer: Option<SequencerHandle>,
    pub publisher: Option<PublisherHandle>,
    /// A validator's sequencer parts, until [`Node::start_sequencer`].
    sequencer_parts: Option<(SequencerDeps, ProtocolParams)>,
    pub cancel: CancellationToken,
    pub sequencer_cancel: CancellationToken,
    pub sequencer_task: Option<JoinHandle<tandem_sequencer::SequencerResult<()>>>,
    pub tasks: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Validator `index` (its sequencer not started yet: [`Node::start_sequencer`]), or a full
    /// node when `None`.
    pub async fn start(net: &Network, index: Option<usize>, bootnodes: Vec<Multiaddr>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let clock = Arc::new(SystemClock);
        // Archiver following anvil.
        let store = ArchiverStore::open(
            &dir.path().join("archiver"),
            &net.spec.genesis_header(),
            net.domain,
        )
        .unwrap();
        let timing = ArchiverTiming {
            clock: clock.clone(),
            slot_clock: net.slot_clock,
            windows: net.windows,
            poll_interval: Duration::from_millis(100),
        };
        let sync = SyncConfig {
            deployment_block: net.deployment.deployment_block,
            confirmations: 0,
            batch_size: 50,
            max_batches_per_step: 100,
            orphan_prune_tolerance: Duration::from_secs(1),
        };
        let (archiver, actor) =
            ArchiverActor::new(store, Arc::new(net.reader.clone()), None, sync, timing);
        let token = cancel.clone();
        tasks.push(tokio::spawn(async move {
            actor.run(token).await.unwrap();
        }));
        // World state and its state service.
        let world = WorldState::open(
            &dir.path().join("world"),
            net.spec.clone(),
            WorldStateConfig::default(),
        )
        .unwrap();
        let (state, service) = StateService::new(
            world,
            StateServiceConfig::new(net.domain),
            Arc::new(archiver.clone()),
        );
        let token = cancel.clone();
        tasks.push(tokio::spawn(async move {
            service.run(token).await.unwrap();
        }));
        // The epoch cache over L1.
        let (epochs, actor) = EpochCacheActor::new(
            EpochCacheConfig {
                poll_interval: Duration::from_secs(E),
                ..EpochCacheConfig::default()
            },
            net.slot_clock,
            clock.clone(),
            net.reader.clone(),
        )
        .unwrap();
        tasks.push(tokio::spawn(actor.run(cancel.clone())));
        tokio::time::timeout(
            Duration::from_secs(10),
            epochs.subscribe().wait_for(|s| s.is_ready()),
        )
        .await
        .expect("epoch cache ready")
        .unwrap();
        let committee = Arc::new(epochs.cache());
        // p2p with every handler.
        let p2p_config = P2pConfig {
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            heartbeat_interval: Duration::from_millis(200),
            maintenance_interval: Duration::from_millis(200),
            discovery: false,
            bootnodes,
            ..P2pConfig::default()
        };
        let params = NetworkParams::new(
            net.domain,
            net.windows,
            Duration::from_secs(S),
            TxRules {
                min_mana_limit: tandem_state::TX_MANA,
            },
        );
        let provider = Arc::new(ArchiverChainProvider::new(
            archiver.reader().clone(),
            state.reader().clone(),
        ));
        let (p2p, service) = P2pService::new(
            p2p_config,
            params,
            P2pDeps {
                committee: committee.clone(),
                provider,
                clock: clock.clone(),
            },
        )
        .unwrap();
        let context = ValidatorContext::new(
            Arc::new(archiver.clone()),
            state.clone(),
            Arc::new(p2p.clone()),
            clock.clone(),
            net.windows,
            net.domain,
            Arc::new(L1FeeOracle::from_l1(net.reader.clone()).await.unwrap()),
        );
        let key = index.map(validator_key);
        let own: Vec<Address> = key.iter().map(SigningKey::address).collect();
        let rules = CheckpointRules {
            max_blocks_per_checkpoint: u64::from(net.timetable.max_blocks_per_checkpoint()),
            max_body_bytes: net.params.max_checkpoint_body_bytes as usize,
        };
        let blocks = BlockProposalProcessor::new(&context);
        let all_nodes = AllNodesCheckpointProcessor::new(&context, rules, own);
        let mut handlers = HandlersBuilder::default()
            .block_proposal(Arc::new(blocks))
            .all_nodes_checkpoint(Arc::new(all_nodes.clone()))
            .tx(Arc::new(TxGossipHandler::new(state.clone())));
        let signer = key.as_ref().map(|key| {
            ProtectedSigner::open(
                &dir.path().join("slashing-protection"),
                net.domain,
                [key.clone()],
                OpenMode::Initialize {
                    first_slot: tandem_proto::time::Slot(0),
                },
            )
            .unwrap()
        });
        if let Some(signer) = &signer {
            handlers = handlers.validator_checkpoint(Arc::new(AttestingProcessor::new(
                &context,
                &all_nodes,
                Arc::new(signer.clone()),
                committee.clone(),
            )));
        }
        let token = cancel.clone();
        let handlers = handlers.build().unwrap();
        tasks.push(tokio::spawn(async move {
            service.run(handlers, token).await.unwrap();
        }));
        let listen = p2p.listen_addrs().await.unwrap();
        let addr = listen[0]
            .clone()
            .with(tandem_p2p::Protocol::P2p(p2p.local_peer_id()));

        // A validator's publisher and sequencer.
        let sequencer_cancel = CancellationToken::new();
        let (mut publisher, mut sequencer_parts) = (None, None);
        if let (Some(index), Some(signer)) = (index, signer) {
            let attesters: Vec<Address> = (0..VALIDATORS)
                .map(|i| validator_key(i).address())
                .collect();
            let (handle, actor) = Publisher::open(PublisherDeps {
                config: publisher_config(),
                keys: PublisherKeys::new(vec![net.harness.dev_key(1 + index)], &attesters).unwrap(),
                provider: net.harness.provider(),
                rollup: net.deployment.rollup,
                slot_clock: net.slot_clock,
                clock: clock.clone(),
                store_path: dir.path().join("publisher"),
                hooks: None,
            })
            .await
            .unwrap();
            let token = cancel.clone();
            tasks.push(tokio::spawn(async move {
                actor.run(token).await.unwrap();
            }));
            let deps = SequencerDeps {
                chain: Arc::new(ArchiverChain::new(archiver.clone(), net.slot_clock)),
                world: Arc::new(state.clone()),
                l1: Arc::new(handle.simulator()),
                publisher: Arc::new(handle.clone()),
                gossip: Arc::new(p2p.clone()),
                committee: committee.clone(),
                signer: Arc::new(signer),
                clock: clock.clone(),
            };
            let protocol = ProtocolParams {
                timetable: net.timetable,
                domain: net.domain,
                fees: net.params.fee_params(),
                mana_limit: net.params.mana_limit,
                max_body_bytes: net.params.max_checkpoint_body_bytes as usize,
            };
            publisher = Some(handle);
            sequencer_parts = Some((deps, protocol));
        }
        Self {
            index,
            archiver,
            state,
            p2p,
            addr,
            sequencer: None,
            publisher,
            sequencer_parts,
            cancel,
            sequencer_cancel,
            sequencer_task: None,
            tasks,
            _dir: dir,
        }
    }

    /// Starts a validator's sequencer with `config` (a full node has none).
    pub fn start_sequencer(&mut self, config: SequencerConfig) {
        if let Some((deps, protocol)) = self.sequencer_parts.take() {
            let (handle, actor) = Sequencer::new(config, protocol, deps).unwrap();
            self.sequencer = Some(handle);
            self.sequencer_task = Some(tokio::spawn(actor.run(self.sequencer_cancel.clone())));
        }
    }

    pub fn tips(&self) -> L2Tips {
        self.archiver.tips()
    }

    /// Stops the sequencer first (it awaits its pending submission, at most
    /// `SHUTDOWN_GRACE`), then everything else.
    pub async fn stop(mut self) {
        self.sequencer_cancel.cancel();
        if let Some(task) = self.sequencer_task.take() {
            let bound = tandem_sequencer::SHUTDOWN_GRACE + Duration::from_millis(500);
            tokio::time::timeout(bound, task)
                .await
                .expect("the sequencer stopped within its grace")
                .expect("the sequencer task did not panic")
                .expect("the sequencer ended cleanly");
        }
        self.cancel.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Waits until this node's mesh has `count` peers on every topic.
    pub async fn wait_for_mesh(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.p2p.status().await.unwrap();
            if GossipKind::ALL
                .iter()
                .all(|kind| status.mesh_peers(*kind) >= count)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "mesh did not form: {status:?}"
            );
            // Gossipsub grafts on its heartbeat; there is no event to wait on.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every sequencer's events, merged into one stream.
pub type Events = mpsc::UnboundedReceiver<(usize, SequencerEvent)>;

/// 4 validators and a full node in a star around validator 0, meshes formed, the txs preloaded
/// in every pool, the sequencers started with `config`.
pub async fn start_network(net: &Network, config: SequencerConfig) -> (Vec<Node>, Events) {
    start_network_with(net, config, PRELOAD).await
}

/// [`start_network`] with `(users, txs per user)` preloaded.
pub async fn start_network_with(
    net: &Network,
    config: SequencerConfig,
    preload: (usize, u64),
) -> (Vec<Node>, Events) {
    let mut nodes = start_nodes(net, preload).await;
    let events = start_sequencers(&mut nodes, &config);
    (nodes, events)
}

/// [`start_network_with`] without starting the sequencers.
pub async fn start_nodes(net: &Network, (users, per_user): (usize, u64)) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for index in (0..VALIDATORS).map(Some).chain([None]) {
        let bootnodes = nodes
            .first()
            .map(|hub| vec![hub.addr.clone()])
            .unwrap_or_default();
        nodes.push(Node::start(net, index, bootnodes).await);
    }
    nodes[0].wait_for_mesh(1).await;
    for node in &nodes[1..] {
        node.wait_for_mesh(1).await;
    }
    for user in 0..users {
        for nonce in 0..per_user {
            let tx = net.transfer(user, nonce);
            for node in &nodes {
                node.state.submit_tx(tx.clone()).await.unwrap();
            }
        }
    }
    nodes
}

/// Starts every validator's sequencer with `config`; their events merged into one stream.
pub fn start_sequencers(nodes: &mut [Node], config: &SequencerConfig) -> Events {
    let (events_tx, events) = mpsc::unbounded_channel();
    for node in nodes.iter_mut() {
        node.start_sequencer(config.clone());
        if let (Some(index), Some(sequencer)) = (node.index, &node.sequencer) {
            let mut stream = sequencer.subscribe();
            let events_tx = events_tx.clone();
            tokio::spawn(async move {
                while let Ok(event) = stream.recv().await {
                    if events_tx.send((index, event)).is_err() {
                        return;
                    }
                }
            });
        }
    }
    events
}

/// Path of a node's data (for debugging).
pub fn describe(dir: &Path) -> String {
    dir.display().to_string()
}
