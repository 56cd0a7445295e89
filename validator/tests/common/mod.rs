//! Shared fixtures for the validator's tests: a network on a shared `ManualClock` whose slot-10
//! proposal window is open at the start, funded users, nodes (real archiver and world state on
//! RocksDB in a temp dir, the state service, the handlers, optionally a real libp2p swarm on
//! 127.0.0.1), a proposer that builds real blocks on its own world state, the node's real
//! slashing-protected signer in a temp dir, and ([`duties`]) duties signed through it with a
//! chosen digest variant.
#![allow(dead_code, unreachable_pub)]

pub mod duties;

use std::{path::Path, sync::Arc, time::Duration};

use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{
    ArchiverActor, ArchiverHandle, ArchiverReader, ArchiverStore, ArchiverTiming, L1Block,
    L1CheckpointEvent, L1Future, L1Source, ProposedBlock, ProposedCheckpointInput, SyncConfig,
};
use tandem_p2p::{
    GossipKind, HandlersBuilder, Multiaddr, NetworkParams, P2pConfig, P2pDeps, P2pHandle,
    P2pService, PeerId, RequestError, StaticCommittee, TxRules,
    reqresp::{ChainBlock, ChainPoint},
    scoring::PeerAction,
};
use tandem_proto::{
    Address, B256, BlockProposal, CheckpointProposal, ConsensusPayload,
    DEFAULT_MAX_CHECKPOINT_BODY_BYTES, RecoveredTx, SignatureKind, SigningDomain, SigningKey, Tx,
    TxPayload,
    archive::ArchiveTree,
    time::{Clock, ConsensusWindows, ManualClock, PipeliningMode, Slot, SlotClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, ChainSpec, CheckpointBodyBudget, ExecutedBlock, PoolConfig, TxPool,
    WorldState, WorldStateConfig, build_block, validate_stateless,
};
use tandem_validator::{
    AllNodesCheckpointProcessor, ArchiverChainProvider, AttestingProcessor, BlockProposalProcessor,
    CheckpointRules, OpenMode, PeerNetwork, ProtectedSigner, StateHandle, StateService,
    StateServiceConfig, TxGossipHandler, ValidatorContext, ValidatorEvent, ValidatorResult,
};
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub const CHAIN_ID: u64 = 31_337;
pub const SLOT: Duration = Duration::from_secs(60);
pub const L1_SLOT: Duration = Duration::from_secs(12);
pub const BLOCK: Duration = Duration::from_secs(6);
/// The first slot tests propose for.
pub const TARGET: Slot = Slot(10);
/// The clock at the start: 40 s before slot 10 starts, inside its proposal window
/// (`[T − 72.5 s, T − 17.5 s]`).
pub const START: Timestamp = Timestamp(1_000_000_000);
/// Longest wait for an event before a test fails (tests never sleep to synchronise).
pub const PATIENCE: Duration = Duration::from_secs(30);
pub const USERS: usize = 8;
pub const BALANCE: u128 = 1_000_000_000_000_000_000;
pub const FEE: u128 = 10;

pub struct Net {
    pub domain: SigningDomain,
    pub windows: ConsensusWindows,
    pub clock: ManualClock,
    /// The validators (the committee, in order; the proposer of slot s is `keys[s % 4]`).
    pub keys: Vec<SigningKey>,
    pub committee: Arc<StaticCommittee>,
    pub spec: ChainSpec,
    pub users: Vec<SigningKey>,
    pub params: NetworkParams,
    /// The protocol's `max_checkpoint_body_bytes` (builders and the all-nodes handler).
    pub max_body_bytes: usize,
}

impl Net {
    pub fn new() -> Self {
        let genesis = Timestamp(START.as_millis() + 40_000 - 10 * SLOT.as_millis() as u64);
        let slot_clock = SlotClock::new(genesis, SLOT, L1_SLOT, 32).unwrap();
        let windows = ConsensusWindows::new(slot_clock, BLOCK, PipeliningMode::Pipelined, BLOCK);
        let domain = SigningDomain {
            chain_id: CHAIN_ID,
            rollup: Address::repeat_byte(0xaa),
        };
        let keys: Vec<SigningKey> = (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]).unwrap())
            .collect();
        let users: Vec<SigningKey> = (0..USERS as u8)
            .map(|i| SigningKey::from_bytes(&[0x50 + i; 32]).unwrap())
            .collect();
        let spec = ChainSpec {
            chain_id: CHAIN_ID,
            rollup_version: 1,
            genesis_allocation: users.iter().map(|key| (key.address(), BALANCE)).collect(),
        };
        Self {
            committee: Arc::new(StaticCommittee::new(
                keys.iter().map(SigningKey::address).collect::<Vec<_>>(),
            )),
            params: NetworkParams::new(
                domain,
                windows,
                SLOT,
                TxRules {
                    min_mana_limit: tandem_state::TX_MANA,
                },
            ),
            domain,
            windows,
            clock: ManualClock::new(START),
            keys,
            users,
            spec,
            max_body_bytes: DEFAULT_MAX_CHECKPOINT_BODY_BYTES,
        }
    }

    /// Moves the clock to 40 s before `slot` starts (inside its proposal window).
    pub fn enter(&self, slot: Slot) {
        let start = self.windows.slot_clock().slot_start(slot);
        self.clock
            .set(start.saturating_sub(Duration::from_secs(40)));
    }

    pub fn proposer(&self, slot: Slot) -> &SigningKey {
        &self.keys[(slot.0 % self.keys.len() as u64) as usize]
    }

    /// A transfer of `amount` from user `user`.
    pub fn transfer(&self, user: usize, nonce: u64, amount: u128) -> Tx {
        Tx::sign(
            TxPayload {
                chain_id: CHAIN_ID,
                nonce,
                to: Address::repeat_byte(0x77),
                amount,
                max_fee_per_mana: FEE,
                mana_limit: tandem_state::TX_MANA,
            },
            &self.domain,
            &self.users[user],
        )
    }

    pub fn checkpoint_rules(&self) -> CheckpointRules {
        CheckpointRules {
            max_body_bytes: self.max_body_bytes,
            ..CheckpointRules::default()
        }
    }
}

/// An L1 that never has anything: the archiver follows it without events, so nothing is ever
/// checkpointed and the uncheckpointed-slot prune never fires.
pub struct EmptyL1 {
    pub genesis_secs: u64,
}

impl L1Source for EmptyL1 {
    fn latest_block(&self) -> L1Future<'_, u64> {
        async { Ok(0) }.boxed()
    }

    fn finalized_block(&self) -> L1Future<'_, Option<L1Block>> {
        async { Ok(None) }.boxed()
    }

    fn block(&self, number: u64) -> L1Future<'_, Option<L1Block>> {
        let genesis = self.genesis_secs;
        async move {
            Ok((number == 0).then_some(L1Block {
                number: 0,
                hash: B256::repeat_byte(0x11),
                parent_hash: B256::ZERO,
                timestamp: genesis,
            }))
        }
        .boxed()
    }

    fn checkpoint_events(&self, _from: u64, _to: u64) -> L1Future<'_, Vec<L1CheckpointEvent>> {
        async { Ok(Vec::new()) }.boxed()
    }
}

/// A network without peers (for processors driven directly).
pub struct NoPeers;

impl PeerNetwork for NoPeers {
    fn report_peer(&self, _peer: PeerId, _action: PeerAction) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }

    fn request_txs(
        &self,
        _peer: Option<PeerId>,
        _hashes: Vec<B256>,
    ) -> BoxFuture<'_, Result<Vec<Tx>, RequestError>> {
        async { Err(RequestError::Stopped) }.boxed()
    }

    fn request_proposed_chain(
        &self,
        _after: ChainPoint,
        _max_blocks: u32,
    ) -> BoxFuture<'_, Result<Vec<ChainBlock>, RequestError>> {
        async { Err(RequestError::Stopped) }.boxed()
    }
}

/// The node's slashing-protected signer holding `keys`, over a new record in `dir`
/// (created in init mode from slot 0, so every duty of the tests is its to sign).
pub fn protected_signer(net: &Net, keys: Vec<SigningKey>, dir: &Path) -> ProtectedSigner {
    ProtectedSigner::open(
        &dir.join("slashing-protection"),
        net.domain,
        keys,
        OpenMode::Initialize {
            first_slot: Slot(0),
        },
    )
    .unwrap()
}

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
        ValidatorContext::new(
            Arc::new(self.archiver.clone()),
            self.state.clone(),
            Arc::new(NoPeers),
            Arc::new(net.clock.clone()),
            net.windows,
            net.domain,
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

/// A node: stores, handlers and a p2p swarm on 127.0.0.1.
pub struct Node {
    pub stores: Stores,
    pub context: ValidatorContext,
    pub blocks: BlockProposalProcessor,
    pub all_nodes: AllNodesCheckpointProcessor,
    pub p2p: P2pHandle,
    /// Dialable address with `/p2p/<peer id>`.
    pub addr: Multiaddr,
    pub events: broadcast::Receiver<ValidatorEvent>,
    pub key: Option<SigningKey>,
    pub p2p_task: JoinHandle<Result<(), tandem_p2p::P2pError>>,
    _dir: tempfile::TempDir,
}

pub fn p2p_config(bootnodes: Vec<Multiaddr>) -> P2pConfig {
    P2pConfig {
        listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        heartbeat_interval: Duration::from_millis(200),
        maintenance_interval: Duration::from_millis(200),
        discovery: false,
        bootnodes,
        ..P2pConfig::default()
    }
}

impl Node {
    /// A node; a validator (attesting with `key`) when `key` is given, else a full node.
    pub async fn start(net: &Net, key: Option<SigningKey>, bootnodes: Vec<Multiaddr>) -> Self {
        Self::start_with(net, key, bootnodes, sync_config()).await
    }

    /// A node whose archiver follows the empty L1 with `sync`.
    pub async fn start_with(
        net: &Net,
        key: Option<SigningKey>,
        bootnodes: Vec<Multiaddr>,
        sync: SyncConfig,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = Arc::new(EmptyL1 {
            genesis_secs: net.windows.slot_clock().genesis().as_secs(),
        });
        let stores = Stores::start_with(net, dir.path(), source, sync);
        let provider = Arc::new(ArchiverChainProvider::new(
            stores.archiver.reader().clone(),
            stores.state.reader().clone(),
        ));
        let deps = P2pDeps {
            committee: net.committee.clone(),
            provider,
            clock: Arc::new(net.clock.clone()),
        };
        let (p2p, service) = P2pService::new(p2p_config(bootnodes), net.params, deps).unwrap();
        let context = ValidatorContext::new(
            Arc::new(stores.archiver.clone()),
            stores.state.clone(),
            Arc::new(p2p.clone()),
            Arc::new(net.clock.clone()),
            net.windows,
            net.domain,
        );
        let events = context.subscribe();
        let own: Vec<Address> = key.iter().map(SigningKey::address).collect();
        let blocks = BlockProposalProcessor::new(&context);
        let all_nodes = AllNodesCheckpointProcessor::new(&context, net.checkpoint_rules(), own);
        let mut handlers = HandlersBuilder::default()
            .block_proposal(Arc::new(blocks.clone()))
            .all_nodes_checkpoint(Arc::new(all_nodes.clone()))
            .tx(Arc::new(TxGossipHandler::new(stores.state.clone())));
        if let Some(key) = &key {
            let signer = Arc::new(protected_signer(net, vec![key.clone()], dir.path()));
            handlers = handlers.validator_checkpoint(Arc::new(AttestingProcessor::new(
                &context,
                &all_nodes,
                signer,
                net.committee.clone(),
            )));
        }
        let p2p_task = tokio::spawn(service.run(handlers.build().unwrap(), stores.cancel.clone()));
        let listen = p2p.listen_addrs().await.unwrap();
        let addr = listen[0]
            .clone()
            .with(tandem_p2p::Protocol::P2p(p2p.local_peer_id()));
        Self {
            stores,
            context,
            blocks,
            all_nodes,
            p2p,
            addr,
            events,
            key,
            p2p_task,
            _dir: dir,
        }
    }

    /// Waits for the next event `pick` returns something for.
    pub async fn next_event<T>(&mut self, mut pick: impl FnMut(&ValidatorEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(event)) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(err)) => panic!("event stream ended: {err}"),
                Err(_) => panic!("no matching validator event within {PATIENCE:?}"),
            }
        }
    }

    pub fn archiver(&self) -> &ArchiverHandle {
        &self.stores.archiver
    }

    pub fn state(&self) -> &StateHandle {
        &self.stores.state
    }

    /// Stores an honest proposal the way a sequencer does (executed blocks to the state
    /// service, blocks and the checkpoint to the archiver), then gossips it.
    pub async fn propose(&self, proposal: &Proposal) {
        self.store_own(proposal).await;
        self.publish(proposal).await;
    }

    pub async fn store_own(&self, proposal: &Proposal) {
        self.stores.store_own(proposal).await;
    }

    /// Gossips the blocks (all but the last) and the checkpoint carrying the last.
    pub async fn publish(&self, proposal: &Proposal) {
        for block in &proposal.blocks[..proposal.blocks.len() - 1] {
            self.p2p
                .publish_block_proposal(block.clone())
                .await
                .unwrap();
        }
        self.publish_checkpoint(proposal).await;
    }

    pub async fn publish_checkpoint(&self, proposal: &Proposal) {
        let mut checkpoint = proposal.checkpoint.clone();
        checkpoint.last_block = proposal.blocks.last().cloned();
        self.p2p
            .publish_checkpoint_proposal(checkpoint)
            .await
            .unwrap();
    }

    /// Waits until this node's mesh has `count` peers on every topic.
    pub async fn wait_for_mesh(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
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

/// Starts nodes in a star around the first (each dials it), and waits for the meshes.
pub async fn star(net: &Net, keys: Vec<Option<SigningKey>>) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for key in keys {
        let bootnodes = nodes
            .first()
            .map(|hub| vec![hub.addr.clone()])
            .unwrap_or_default();
        nodes.push(Node::start(net, key, bootnodes).await);
    }
    let spokes = nodes.len() - 1;
    nodes[0].wait_for_mesh(spokes.min(1)).await;
    for node in &nodes[1..] {
        node.wait_for_mesh(1).await;
    }
    nodes
}

/// A proposal as a proposer builds it: blocks executed on its own world state, signed.
#[derive(Clone)]
pub struct Proposal {
    pub blocks: Vec<BlockProposal>,
    pub executed: Vec<(ExecutedBlock, Vec<RecoveredTx>)>,
    pub checkpoint: CheckpointProposal,
    /// The archive before each block.
    pub archives: Vec<ArchiveTree>,
    pub key: SigningKey,
}

/// The archive tree after block `number` of `reader`'s chain.
pub fn archive_at(reader: &ArchiverReader, number: u64) -> ArchiveTree {
    let view = reader.view().unwrap();
    let mut archive = ArchiveTree::new();
    for n in 0..=number {
        archive
            .append(view.block_hash(n).unwrap().unwrap())
            .unwrap();
    }
    archive
}

/// Builds a checkpoint for `slot` on top of the tip of `stores` (`per_block[i]` are block
/// `i`'s txs), signed by the slot's proposer.
pub fn build(net: &Net, stores: &Stores, slot: Slot, per_block: Vec<Vec<Tx>>) -> Proposal {
    build_on(net, stores, slot, per_block, net.proposer(slot).clone())
}

pub fn build_on(
    net: &Net,
    stores: &Stores,
    slot: Slot,
    per_block: Vec<Vec<Tx>>,
    key: SigningKey,
) -> Proposal {
    let (mut fork, tip) = stores.state.reader().fork_tip().unwrap();
    let parent = stores
        .archiver
        .reader()
        .view()
        .unwrap()
        .header(tip.number)
        .unwrap()
        .unwrap();
    assert_eq!(parent.hash, tip.hash, "world state and archiver differ");
    let mut archive = archive_at(stores.archiver.reader(), tip.number);
    let timestamp = net.windows.slot_clock().slot_start(slot).as_secs();
    let mut budget = CheckpointBodyBudget::new(net.max_body_bytes);
    let mut blocks = Vec::new();
    let mut executed = Vec::new();
    let mut archives = Vec::new();
    for (index, txs) in per_block.into_iter().enumerate() {
        let globals = BlockGlobals {
            checkpoint_number: parent.header.checkpoint_number + 1,
            index_within_checkpoint: index as u32,
            slot: slot.0,
            timestamp,
            coinbase: key.address(),
            fee_recipient: Address::repeat_byte(0xfe),
            fee_per_mana: FEE,
        };
        let mut pool = TxPool::new(PoolConfig {
            max_txs: 1_000_000,
            max_bytes: usize::MAX,
            max_txs_per_sender: 100_000,
            max_nonce_gap: 0,
            ..PoolConfig::default()
        });
        for tx in txs {
            let tx = validate_stateless(tx, &net.domain).unwrap();
            let account = fork.account(&tx.sender());
            pool.add(tx, &account).unwrap();
        }
        let limits = BuildLimits {
            max_txs: usize::MAX,
            max_mana: u64::MAX,
            max_body_bytes: budget.remaining(),
            deadline: Timestamp(u64::MAX),
        };
        let built = {
            let mut best = pool.best(|address| fork.account(address).nonce);
            build_block(&fork, &globals, &mut best, &limits, &net.clock).unwrap()
        };
        assert!(built.failed.is_empty(), "a tx failed: {:?}", built.failed);
        budget.add_block(built.txs.len());
        let (block, txs) = fork.commit(built).unwrap();
        archives.push(archive.clone());
        archive.append(block.block().hash()).unwrap();
        let proposal = BlockProposal::sign(
            block.block().header.clone(),
            block.archive_root(),
            txs.iter().map(|tx| tx.tx().clone()).collect(),
            &net.domain,
            &key,
        );
        blocks.push(proposal);
        executed.push((block, txs));
    }
    let headers: Vec<tandem_proto::Block> =
        executed.iter().map(|(e, _)| e.block().clone()).collect();
    let (header, _) =
        tandem_proto::checkpoint_header_of(headers[0].header.last_archive_root, &headers).unwrap();
    let payload = ConsensusPayload {
        header,
        archive: archive.root(),
        fee_asset_price_modifier: 0,
    };
    let checkpoint = CheckpointProposal::sign(payload, None, &net.domain, &key);
    Proposal {
        blocks,
        executed,
        checkpoint,
        archives,
        key,
    }
}

impl Proposal {
    /// Block `index` as the archiver stores it (its header as it is now, txs with senders).
    pub fn stored_block(&self, index: usize) -> ProposedBlock {
        ProposedBlock {
            header: self.blocks[index].header.clone(),
            txs: self.executed[index].1.clone(),
            proposer_signature: self.blocks[index].signature,
        }
    }

    /// Re-signs block `index` after a change to its header (its archive root recomputed).
    pub fn resign_block(&mut self, net: &Net, index: usize) {
        let block = &mut self.blocks[index];
        let mut archive = self.archives[index].clone();
        block.archive_root = archive.append(block.header.hash()).unwrap();
        block.tx_hashes = block.txs.iter().map(Tx::hash).collect();
        block.signature = self.key.sign(
            &net.domain,
            SignatureKind::BlockProposal,
            block.payload_hash(),
        );
    }

    /// Rebuilds the checkpoint header from the (possibly changed) blocks and re-signs it.
    pub fn rebuild_checkpoint(&mut self, net: &Net) {
        let blocks: Vec<tandem_proto::Block> = self
            .blocks
            .iter()
            .map(|b| tandem_proto::Block {
                header: b.header.clone(),
                txs: b.txs.clone(),
            })
            .collect();
        let (header, _) =
            tandem_proto::checkpoint_header_of(blocks[0].header.last_archive_root, &blocks)
                .unwrap();
        self.checkpoint.payload.header = header;
        self.checkpoint.payload.archive = self.blocks.last().unwrap().archive_root;
        self.resign_checkpoint(net);
    }

    pub fn resign_checkpoint(&mut self, net: &Net) {
        self.checkpoint.signature = self.key.sign(
            &net.domain,
            SignatureKind::CheckpointProposal,
            self.checkpoint.payload.payload_hash(),
        );
    }

    pub fn last_archive(&self) -> B256 {
        self.checkpoint.payload.archive
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
