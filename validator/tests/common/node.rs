//! A node on a real libp2p swarm (127.0.0.1) with its handlers, and topologies of nodes.

use super::*;

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
        Self::start_wrapped(net, key, bootnodes, sync, |archiver| Arc::new(archiver)).await
    }

    /// A node whose handlers reach the archiver through `archive` (a test wrapper).
    pub async fn start_wrapped(
        net: &Net,
        key: Option<SigningKey>,
        bootnodes: Vec<Multiaddr>,
        sync: SyncConfig,
        archive: impl FnOnce(ArchiverHandle) -> Arc<dyn tandem_validator::ChainArchive>,
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
            archive(stores.archiver.clone()),
            stores.state.clone(),
            Arc::new(p2p.clone()),
            Arc::new(net.clock.clone()),
            net.windows,
            net.domain,
            net.fees(),
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

/// What [`TestArchive`] does with a block to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAddBlock {
    /// Stores it, then runs a complete sync pass (and with it the orphan prune) before the
    /// writer hears back: the prune the actor runs on each tick, forced between two writes.
    StoreThenPrune,
    /// Refuses it, as the archiver does for a slot that ended meanwhile.
    Refuse,
}

/// The real archiver behind a [`tandem_validator::ChainArchive`] whose `add_block` does
/// [`OnAddBlock`]; everything else goes straight through.
pub struct TestArchive(pub ArchiverHandle, pub OnAddBlock);

impl tandem_validator::ChainArchive for TestArchive {
    fn reader(&self) -> &ArchiverReader {
        self.0.reader()
    }

    fn watch_tips(&self) -> tokio::sync::watch::Receiver<tandem_proto::L2Tips> {
        self.0.watch_tips()
    }

    fn subscribe_prunes(&self) -> broadcast::Receiver<tandem_archiver::PruneEvent> {
        self.0.subscribe_prunes()
    }

    fn add_block(
        &self,
        block: ProposedBlock,
    ) -> BoxFuture<
        '_,
        tandem_archiver::ArchiverResult<tandem_archiver::Added<tandem_archiver::StoredHeader>>,
    > {
        async move {
            match self.1 {
                OnAddBlock::StoreThenPrune => {
                    let added = self.0.add_block(block).await;
                    // The empty L1 answers: a failed pass would mean the prune did not run.
                    self.0.sync_now().await.expect("forced sync pass");
                    added
                }
                OnAddBlock::Refuse => Err(tandem_archiver::ArchiverError::SlotExpired {
                    slot: block.header.slot,
                    current: block.header.slot + 1,
                }),
            }
        }
        .boxed()
    }

    fn add_proposed_checkpoint(
        &self,
        input: ProposedCheckpointInput,
    ) -> BoxFuture<
        '_,
        tandem_archiver::ArchiverResult<
            tandem_archiver::Added<tandem_archiver::ProposedCheckpoint>,
        >,
    > {
        self.0.add_proposed_checkpoint(input).boxed()
    }

    fn note_checkpoint_proposal_seen(
        &self,
        slot: Slot,
    ) -> BoxFuture<'_, tandem_archiver::ArchiverResult<()>> {
        self.0.note_checkpoint_proposal_seen(slot).boxed()
    }

    fn hold_orphans(
        &self,
        slot: Slot,
        until: tandem_proto::time::Timestamp,
    ) -> BoxFuture<'_, tandem_archiver::ArchiverResult<()>> {
        self.0.hold_orphans(slot, until).boxed()
    }
}
