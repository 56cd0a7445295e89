//! Shared fixtures for the p2p tests: a network whose slot-10 proposal window is open now, keys,
//! message builders, recording handlers, an in-memory chain provider and a node spawner.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use tandem_p2p::{
    AllNodesCheckpointHandler, BlockProposalHandler, GossipKind, GossipPipeline, GossipValidator,
    HandlersBuilder, Multiaddr, NetworkParams, P2pConfig, P2pDeps, P2pHandle, P2pService,
    StaticCommittee, TxHandler, TxRules, ValidatorCheckpointHandler, Verified,
    reqresp::{ChainProvider, ProviderError},
};
use tandem_proto::{
    Address, B256, Block, BlockHeader, BlockProposal, CheckpointAttestation, CheckpointProposal,
    ConsensusPayload, RecoveredTx, SigningDomain, SigningKey, Tx, TxPayload, block_body_hash,
    time::{Clock, ConsensusWindows, PipeliningMode, Slot, SlotClock, SystemClock, Timestamp},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub const CHAIN_ID: u64 = 31_337;
/// The slot whose proposal window is open when a [`Net`] is made.
pub const TARGET: Slot = Slot(10);
pub const SLOT: Duration = Duration::from_secs(60);
pub const L1_SLOT: Duration = Duration::from_secs(12);
pub const BLOCK: Duration = Duration::from_secs(6);

pub struct Net {
    pub params: NetworkParams,
    pub committee: Arc<StaticCommittee>,
    pub keys: Vec<SigningKey>,
    pub outsider: SigningKey,
    pub domain: SigningDomain,
    pub windows: ConsensusWindows,
}

impl Net {
    /// A network where `now` is 40 s before slot 10 starts: inside slot 10's proposal window
    /// (`[T − 72.5 s, T − 17.5 s]`) with ≥ 22 s to spare on either side.
    pub fn new(now: Timestamp) -> Self {
        let genesis = Timestamp(now.as_millis() + 40_000 - 10 * SLOT.as_millis() as u64);
        Self::with_genesis(genesis)
    }

    pub fn with_genesis(genesis: Timestamp) -> Self {
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
        }
    }

    /// A gossip pipeline (validator + empty pools) for this network.
    pub fn pipeline(&self) -> GossipPipeline {
        GossipPipeline::new(GossipValidator::new(
            self.domain,
            self.windows,
            self.committee.clone(),
            self.params.tx_rules,
            self.params.max_txs_per_block,
        ))
    }

    pub fn now_net() -> Self {
        Self::new(SystemClock.now())
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

    pub fn attestation(
        &self,
        proposal: &CheckpointProposal,
        key: &SigningKey,
    ) -> CheckpointAttestation {
        CheckpointAttestation::sign(proposal, &self.domain, key)
    }
}

/// Handlers that log what they were called with, in order.
#[derive(Default)]
pub struct Recorder {
    pub log: Mutex<Vec<String>>,
    pub notify: Notify,
    pub attester: Option<(SigningKey, SigningDomain)>,
    pub txs: Mutex<Vec<B256>>,
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
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            let entries = self.entries();
            if entries.len() >= count {
                return entries;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.entries();
            }
        }
    }
}

pub struct RecordingBlocks(pub Arc<Recorder>);
pub struct RecordingAllNodes(pub Arc<Recorder>);
pub struct RecordingValidator(pub Arc<Recorder>);
pub struct RecordingTxs(pub Arc<Recorder>);

impl BlockProposalHandler for RecordingBlocks {
    fn on_block_proposal(&self, proposal: Verified<BlockProposal>) -> BoxFuture<'static, ()> {
        self.0.push(format!(
            "block:{}:{}",
            proposal.header.slot, proposal.header.index_within_checkpoint
        ));
        async {}.boxed()
    }
}

impl AllNodesCheckpointHandler for RecordingAllNodes {
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
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
    ) -> BoxFuture<'static, Vec<CheckpointAttestation>> {
        self.0
            .push(format!("validator:{}", proposal.payload.header.slot));
        let attestations = self
            .0
            .attester
            .as_ref()
            .map(|(key, domain)| vec![CheckpointAttestation::sign(&proposal, domain, key)])
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
    pub blocks: BTreeMap<u64, Block>,
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
    ) -> BoxFuture<'static, Result<Vec<Block>, ProviderError>> {
        let found: Vec<Block> = (from..from + u64::from(count))
            .map_while(|number| self.blocks.get(&number).cloned())
            .collect();
        async move { Ok(found) }.boxed()
    }
}

pub struct TestNode {
    pub handle: P2pHandle,
    pub recorder: Arc<Recorder>,
    pub cancel: CancellationToken,
    /// Dialable address including `/p2p/<peer id>`.
    pub addr: Multiaddr,
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
}

impl Default for NodeOptions {
    fn default() -> Self {
        let config = P2pConfig {
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            heartbeat_interval: Duration::from_millis(200),
            ..P2pConfig::default()
        };
        Self {
            attester: None,
            bootnodes: Vec::new(),
            provider: Arc::new(MemoryProvider::default()),
            config,
        }
    }
}

pub async fn spawn_node(net: &Net, options: NodeOptions) -> TestNode {
    let recorder = Arc::new(Recorder {
        attester: options.attester.clone().map(|key| (key, net.domain)),
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
        handlers: builder.build().unwrap(),
        provider: options.provider,
        clock: Arc::new(SystemClock),
    };
    let (handle, service) = P2pService::new(config, net.params, deps).unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(service.run(cancel.clone()));
    let listen = handle.listen_addrs().await.unwrap();
    let addr = listen[0].clone().with(libp2p_peer(handle.local_peer_id()));
    TestNode {
        handle,
        recorder,
        cancel,
        addr,
    }
}

fn libp2p_peer(peer: tandem_p2p::PeerId) -> tandem_p2p::Protocol<'static> {
    tandem_p2p::Protocol::P2p(peer)
}

/// Waits until `node` has at least `count` mesh peers on every topic.
pub async fn wait_for_mesh(node: &TestNode, count: usize, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = node.handle.status().await.unwrap();
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
