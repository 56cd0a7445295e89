//! Shared fixtures for the p2p tests: a network whose slot-10 proposal window is open at a fixed
//! instant of a shared `ManualClock`, keys, message builders, recording handlers, an in-memory
//! chain provider and a node spawner.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use tandem_p2p::{
    AllNodesCheckpointHandler, BlockProposalHandler, GossipKind, GossipPipeline, GossipValidator,
    HandlersBuilder, Multiaddr, NetworkParams, P2pConfig, P2pDeps, P2pError, P2pEvent, P2pHandle,
    P2pService, StaticCommittee, TxHandler, TxRules, ValidatorCheckpointHandler, Verified,
    reqresp::{
        BlockQuery, ChainPoint, ChainProvider, CheckpointCommitment, ProviderError, ServedBlock,
    },
};
use tandem_proto::{
    Address, B256, BlockHeader, BlockProposal, CheckpointAttestation, CheckpointProposal,
    ConsensusPayload, RecoveredTx, SigningDomain, SigningKey, Tx, TxPayload, block_body_hash,
    time::{ConsensusWindows, ManualClock, PipeliningMode, Slot, SlotClock, Timestamp},
};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub const CHAIN_ID: u64 = 31_337;
/// The slot whose proposal window is open at [`START`].
pub const TARGET: Slot = Slot(10);
pub const SLOT: Duration = Duration::from_secs(60);
pub const L1_SLOT: Duration = Duration::from_secs(12);
pub const BLOCK: Duration = Duration::from_secs(6);
/// When every test network starts: 40 s before slot 10 does, inside its proposal window
/// (`[T − 72.5 s, T − 17.5 s]`). The clock only moves when a test moves it.
pub const START: Timestamp = Timestamp(1_000_000_000);
/// Longest wait for a network event before a test fails (events, not slack: tests never sleep
/// to synchronise).
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Net {
    pub params: NetworkParams,
    pub committee: Arc<StaticCommittee>,
    pub keys: Vec<SigningKey>,
    pub outsider: SigningKey,
    pub domain: SigningDomain,
    pub windows: ConsensusWindows,
    pub clock: ManualClock,
}

impl Net {
    /// A network whose clock reads [`START`].
    pub fn new() -> Self {
        Self::at(START)
    }

    /// A network where `now` is 40 s before slot 10 starts.
    pub fn at(now: Timestamp) -> Self {
        let genesis = Timestamp(now.as_millis() + 40_000 - 10 * SLOT.as_millis() as u64);
        let clock = SlotClock::new(genesis, SLOT, L1_SLOT, 32).unwrap();
        let windows = ConsensusWindows::new(clock, BLOCK, PipeliningMode::Pipelined, BLOCK);
        let domain = SigningDomain {
            chain_id: CHAIN_ID,
            rollup: Address::repeat_byte(0xaa),
        };
        let keys: Vec<SigningKey> = (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]).unwrap())
            .collect();
        let committee = Arc::new(StaticCommittee::new(
            keys.iter().map(SigningKey::address).collect::<Vec<_>>(),
        ));
        Self {
            params: NetworkParams::new(
                domain,
                windows,
                SLOT,
                TxRules {
                    min_mana_limit: 10_000,
                },
            ),
            committee,
            keys,
            outsider: SigningKey::from_bytes(&[99; 32]).unwrap(),
            domain,
            windows,
            clock: ManualClock::new(now),
        }
    }

    /// A gossip pipeline (validator + empty pools) for this network.
    pub fn pipeline(&self) -> GossipPipeline {
        GossipPipeline::new(self.validator())
    }

    pub fn validator(&self) -> GossipValidator {
        GossipValidator::new(
            self.domain,
            self.windows,
            self.committee.clone(),
            self.params.tx_rules,
            self.params.max_txs_per_block,
        )
    }

    /// Moves the shared clock to `offset` from slot `slot`'s start.
    pub fn set_clock(&self, slot: Slot, offset_ms: i64) {
        let start = self.windows.slot_clock().slot_start(slot).as_millis() as i64;
        self.clock.set(Timestamp((start + offset_ms) as u64));
    }

    /// The proposer of `slot` (round robin over the committee).
    pub fn proposer(&self, slot: Slot) -> &SigningKey {
        &self.keys[(slot.0 % self.keys.len() as u64) as usize]
    }

    /// Committee members other than `slot`'s proposer.
    pub fn attesters(&self, slot: Slot) -> Vec<SigningKey> {
        let proposer = self.proposer(slot).address();
        self.keys
            .iter()
            .filter(|key| key.address() != proposer)
            .cloned()
            .collect()
    }

    pub fn tx(&self, nonce: u64) -> Tx {
        Tx::sign(
            TxPayload {
                chain_id: CHAIN_ID,
                nonce,
                to: Address::repeat_byte(7),
                amount: 1,
                max_fee_per_mana: 10,
                mana_limit: 10_000,
            },
            &self.domain,
            &self.outsider,
        )
    }

    pub fn header(&self, slot: Slot, index: u32, txs: &[Tx]) -> BlockHeader {
        let hashes: Vec<B256> = txs.iter().map(Tx::hash).collect();
        BlockHeader {
            chain_id: CHAIN_ID,
            block_number: 100 + u64::from(index),
            checkpoint_number: 5,
            index_within_checkpoint: index,
            slot: slot.0,
            body_hash: block_body_hash(&hashes),
            ..BlockHeader::default()
        }
    }

    pub fn block(&self, slot: Slot, index: u32, txs: Vec<Tx>, key: &SigningKey) -> BlockProposal {
        let header = self.header(slot, index, &txs);
        BlockProposal::sign(
            header,
            B256::repeat_byte(index as u8 + 1),
            txs,
            &self.domain,
            key,
        )
    }

    pub fn checkpoint(
        &self,
        slot: Slot,
        last_block: BlockProposal,
        modifier: i64,
        key: &SigningKey,
    ) -> CheckpointProposal {
        let mut payload = ConsensusPayload {
            archive: last_block.archive_root,
            fee_asset_price_modifier: modifier,
            ..ConsensusPayload::default()
        };
        payload.header.slot = slot.0;
        CheckpointProposal::sign(payload, Some(last_block), &self.domain, key)
    }

    /// A checkpoint proposal whose last block, at `last_index`, holds no txs.
    pub fn bare_checkpoint(
        &self,
        slot: Slot,
        last_index: u32,
        key: &SigningKey,
    ) -> CheckpointProposal {
        self.checkpoint(slot, self.block(slot, last_index, vec![], key), 0, key)
    }

    pub fn attestation(
        &self,
        proposal: &CheckpointProposal,
        key: &SigningKey,
    ) -> CheckpointAttestation {
        CheckpointAttestation::sign(proposal, &self.domain, key)
    }

    /// A proposed chain of `count` blocks after `parent_archive`, block `first` onwards, one per
    /// slot from `first_slot`, each signed by its slot's proposer.
    pub fn chain(
        &self,
        first: u64,
        first_slot: u64,
        parent_archive: B256,
        count: u64,
    ) -> Vec<ServedBlock> {
        let mut previous = parent_archive;
        (0..count)
            .map(|offset| {
                let slot = Slot(first_slot + offset);
                let txs = vec![self.tx(first + offset)];
                let hashes: Vec<B256> = txs.iter().map(Tx::hash).collect();
                let header = BlockHeader {
                    chain_id: CHAIN_ID,
                    block_number: first + offset,
                    checkpoint_number: first + offset,
                    slot: slot.0,
                    last_archive_root: previous,
                    body_hash: block_body_hash(&hashes),
                    ..BlockHeader::default()
                };
                let archive = tandem_proto::keccak256((first + offset).to_be_bytes());
                previous = archive;
                let proposal =
                    BlockProposal::sign(header, archive, txs, &self.domain, self.proposer(slot));
                ServedBlock::from_proposal(&proposal)
            })
            .collect()
    }
}

/// What a recording block handler does besides recording.
#[derive(Default)]
pub struct Behaviour {
    /// Block (slot, index) whose handler never returns.
    pub hang: HashSet<(u64, u32)>,
    /// Panic on any block.
    pub panic: bool,
    /// The validator handler returns an attestation whose signature does not recover.
    pub bad_attestation: bool,
}

/// Handlers that log what they were called with, in order.
#[derive(Default)]
pub struct Recorder {
    pub log: Mutex<Vec<String>>,
    pub blocks: Mutex<Vec<Verified<BlockProposal>>>,
    pub notify: Notify,
    pub attester: Option<(SigningKey, SigningDomain)>,
    pub txs: Mutex<Vec<B256>>,
    pub behaviour: Behaviour,
}

impl Recorder {
    fn push(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
        self.notify.notify_waiters();
    }

    pub fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has `count` entries or `timeout` passes.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<String> {
        self.wait_until(timeout, |entries| entries.len() >= count)
            .await
    }

    /// Waits until `done(log)` holds or `timeout` passes; returns the log.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            let entries = self.entries();
            if done(&entries) {
                return entries;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.entries();
            }
        }
    }

    pub async fn wait_for_txs(&self, count: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            let seen = self.txs.lock().unwrap().len();
            if seen >= count || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.txs.lock().unwrap().len();
            }
        }
    }
}

pub struct RecordingBlocks(pub Arc<Recorder>);
pub struct RecordingAllNodes(pub Arc<Recorder>);
pub struct RecordingValidator(pub Arc<Recorder>);
pub struct RecordingTxs(pub Arc<Recorder>);

impl BlockProposalHandler for RecordingBlocks {
    fn on_block_proposal(
        &self,
        proposal: Verified<BlockProposal>,
        _deadline: Timestamp,
    ) -> BoxFuture<'static, ()> {
        let key = (
            proposal.header.slot,
            proposal.header.index_within_checkpoint,
        );
        assert!(!self.0.behaviour.panic, "block handler told to panic");
        self.0.push(format!("block:{}:{}", key.0, key.1));
        self.0.blocks.lock().unwrap().push(proposal);
        if self.0.behaviour.hang.contains(&key) {
            return futures::future::pending().boxed();
        }
        async {}.boxed()
    }
}

impl AllNodesCheckpointHandler for RecordingAllNodes {
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
        _deadline: Timestamp,
    ) -> BoxFuture<'static, ()> {
        self.0.push(format!(
            "all_nodes:{}:{}",
            proposal.payload.header.slot, proposal.payload.fee_asset_price_modifier
        ));
        async {}.boxed()
    }
}

impl ValidatorCheckpointHandler for RecordingValidator {
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
        _deadline: Timestamp,
    ) -> BoxFuture<'static, Vec<CheckpointAttestation>> {
        self.0
            .push(format!("validator:{}", proposal.payload.header.slot));
        let bad = self.0.behaviour.bad_attestation;
        let attestations = self
            .0
            .attester
            .as_ref()
            .map(|(key, domain)| {
                let mut attestation = CheckpointAttestation::sign(&proposal, domain, key);
                if bad {
                    attestation.signature = tandem_proto::Signature::from_bytes([0xff; 65]);
                }
                vec![attestation]
            })
            .unwrap_or_default();
        async move { attestations }.boxed()
    }
}

impl TxHandler for RecordingTxs {
    fn on_tx(&self, tx: Verified<RecoveredTx>) {
        self.0.txs.lock().unwrap().push(tx.hash());
        self.0.notify.notify_waiters();
    }
}

/// An in-memory chain behind req/resp (stands in for the archiver and the pool).
#[derive(Default)]
pub struct MemoryProvider {
    pub txs: HashMap<B256, Tx>,
    pub blocks: BTreeMap<u64, ServedBlock>,
    pub checkpoints: HashMap<u64, CheckpointCommitment>,
    /// Block-proposal queries that reached the store (recent gossip did not answer them).
    pub proposal_queries: std::sync::atomic::AtomicUsize,
}

impl MemoryProvider {
    pub fn with_blocks(blocks: impl IntoIterator<Item = ServedBlock>) -> Self {
        let mut provider = Self::default();
        for block in blocks {
            provider
                .blocks
                .insert(block.block.header.block_number, block);
        }
        provider
    }
}

impl ChainProvider for MemoryProvider {
    fn txs_by_hash(&self, hashes: Vec<B256>) -> BoxFuture<'static, Result<Vec<Tx>, ProviderError>> {
        let found: Vec<Tx> = hashes
            .iter()
            .filter_map(|hash| self.txs.get(hash).cloned())
            .collect();
        async move { Ok(found) }.boxed()
    }

    fn blocks_by_range(
        &self,
        from: u64,
        count: u32,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>> {
        let found: Vec<ServedBlock> = (from..from + u64::from(count))
            .map_while(|number| self.blocks.get(&number).cloned())
            .collect();
        async move { Ok(found) }.boxed()
    }

    fn block_proposals(
        &self,
        query: BlockQuery,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>> {
        self.proposal_queries
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let found: Vec<ServedBlock> = self
            .blocks
            .values()
            .filter(|served| served.proposer_signature.is_some())
            .filter(|served| match query {
                BlockQuery::SlotIndex { slot, index } => {
                    served.block.header.slot == slot.0
                        && served.block.header.index_within_checkpoint == index
                }
                BlockQuery::Archive(archive) => served.archive_root == archive,
            })
            .cloned()
            .collect();
        async move { Ok(found) }.boxed()
    }

    fn proposed_chain(
        &self,
        after: ChainPoint,
        max_blocks: u32,
    ) -> BoxFuture<'static, Result<Option<Vec<ServedBlock>>, ProviderError>> {
        let on_chain = after.number == 0
            || self
                .blocks
                .get(&after.number)
                .is_some_and(|served| served.archive_root == after.archive);
        let found = on_chain.then(|| {
            self.blocks
                .range(after.number + 1..)
                .take(max_blocks as usize)
                .map(|(_, served)| served.clone())
                .collect()
        });
        async move { Ok(found) }.boxed()
    }

    fn l1_checkpoint(
        &self,
        number: u64,
    ) -> BoxFuture<'static, Result<Option<CheckpointCommitment>, ProviderError>> {
        let found = self.checkpoints.get(&number).copied();
        async move { Ok(found) }.boxed()
    }
}

pub struct TestNode {
    pub handle: P2pHandle,
    pub recorder: Arc<Recorder>,
    pub cancel: CancellationToken,
    /// Dialable address including `/p2p/<peer id>`.
    pub addr: Multiaddr,
    /// The service's `run`.
    pub task: JoinHandle<Result<(), P2pError>>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub struct NodeOptions {
    pub attester: Option<SigningKey>,
    pub bootnodes: Vec<Multiaddr>,
    pub provider: Arc<MemoryProvider>,
    pub config: P2pConfig,
    pub behaviour: Behaviour,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            attester: None,
            bootnodes: Vec::new(),
            provider: Arc::new(MemoryProvider::default()),
            config: test_config(),
            behaviour: Behaviour::default(),
        }
    }
}

/// Loopback, fast heartbeats and maintenance, few outbound slots.
pub fn test_config() -> P2pConfig {
    P2pConfig {
        listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        heartbeat_interval: Duration::from_millis(200),
        maintenance_interval: Duration::from_millis(200),
        ..P2pConfig::default()
    }
}

pub async fn spawn_node(net: &Net, options: NodeOptions) -> TestNode {
    let recorder = Arc::new(Recorder {
        attester: options.attester.clone().map(|key| (key, net.domain)),
        behaviour: options.behaviour,
        ..Recorder::default()
    });
    let mut builder = HandlersBuilder::default()
        .block_proposal(Arc::new(RecordingBlocks(Arc::clone(&recorder))))
        .all_nodes_checkpoint(Arc::new(RecordingAllNodes(Arc::clone(&recorder))))
        .tx(Arc::new(RecordingTxs(Arc::clone(&recorder))));
    if options.attester.is_some() {
        builder = builder.validator_checkpoint(Arc::new(RecordingValidator(Arc::clone(&recorder))));
    }
    let config = P2pConfig {
        bootnodes: options.bootnodes,
        ..options.config
    };
    let deps = P2pDeps {
        committee: net.committee.clone(),
        provider: options.provider,
        clock: Arc::new(net.clock.clone()),
    };
    let (handle, service) = P2pService::new(config, net.params, deps).unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(service.run(builder.build().unwrap(), cancel.clone()));
    let listen = handle.listen_addrs().await.unwrap();
    let addr = listen[0].clone().with(libp2p_peer(handle.local_peer_id()));
    TestNode {
        handle,
        recorder,
        cancel,
        addr,
        task,
    }
}

fn libp2p_peer(peer: tandem_p2p::PeerId) -> tandem_p2p::Protocol<'static> {
    tandem_p2p::Protocol::P2p(peer)
}

/// Waits until `node` has at least `count` mesh peers on every topic.
pub async fn wait_for_mesh(node: &TestNode, count: usize, timeout: Duration) {
    let reached = eventually(timeout, || async {
        let status = node.handle.status().await.unwrap();
        GossipKind::ALL
            .iter()
            .all(|kind| status.mesh_peers(*kind) >= count)
    })
    .await;
    assert!(
        reached,
        "mesh did not form: {:?}",
        node.handle.status().await.unwrap()
    );
}

/// Starts nodes in a line (each dials the one before), waits for every mesh.
pub async fn line(net: &Net, options: Vec<NodeOptions>) -> Vec<TestNode> {
    let mut nodes: Vec<TestNode> = Vec::new();
    for mut option in options {
        if let Some(previous) = nodes.last() {
            option.bootnodes = vec![previous.addr.clone()];
        }
        nodes.push(spawn_node(net, option).await);
    }
    for node in &nodes {
        wait_for_mesh(node, 1, PATIENCE).await;
    }
    nodes
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next event matching `pick`, or `None` after `timeout`.
pub async fn next_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<P2pEvent>,
    timeout: Duration,
    mut pick: impl FnMut(P2pEvent) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) => {
                if let Some(found) = pick(event) {
                    return Some(found);
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => return None,
        }
    }
}
