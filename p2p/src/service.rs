//! The swarm actor: owns the libp2p swarm; everything else talks to it through [`P2pHandle`].

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, connection_limits,
    gossipsub::{self, MessageAcceptance, MessageAuthenticity, MessageId, ValidationMode},
    identify,
    identity::Keypair,
    noise,
    request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel},
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use tandem_proto::{
    B256, Block, BlockProposal, CheckpointAttestation, CheckpointProposal, ConsensusPayload,
    RecoveredTx, Tx, WireMessage,
    time::{Clock, Slot, Timestamp},
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    committee::CommitteeSource,
    config::{NetworkParams, P2pConfig, SWARM_COMMAND_CAPACITY},
    dispatch::{run_consensus_lane, run_tx_lane},
    error::{P2pError, PublishError, RequestError},
    handlers::Handlers,
    keys::load_or_create_node_key,
    metrics,
    peers::{PeerDecision, PeerManager},
    processor::{GossipPipeline, Inbound, OwnMessage, P2pEvent, Processor, ProcessorCommand},
    reqresp::{
        BlocksByRangeRequest, BlocksCodec, ChainProvider, REQUEST_TIMEOUT, RateLimiter, Response,
        ResponseStatus, TxsByHashRequest, TxsCodec, blocks_request_valid, cap_response, protocols,
        txs_request_valid,
    },
    scoring::{PeerAction, peer_score_params, peer_score_thresholds},
    topics::{GossipKind, Topics},
    transform::SnappyTransform,
    validation::GossipValidator,
};

/// Capacity of the event broadcast (equivocations, proposal sightings).
const EVENT_CAPACITY: usize = 256;
/// How often bans expire and bootnodes are redialed when short of peers.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(NetworkBehaviour)]
struct Behaviour {
    // Deny banned peers and excess connections before anything else sees them.
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour<SnappyTransform>,
    identify: identify::Behaviour,
    txs: request_response::Behaviour<TxsCodec>,
    blocks: request_response::Behaviour<BlocksCodec>,
}

/// Commands into the swarm actor.
pub(crate) enum SwarmCommand {
    Validated {
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
        penalty: Option<PeerAction>,
    },
    Publish {
        kind: GossipKind,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), PublishError>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    RequestTxs {
        peer: Option<PeerId>,
        hashes: Vec<B256>,
        reply: oneshot::Sender<Result<Vec<Tx>, RequestError>>,
    },
    RequestBlocks {
        peer: Option<PeerId>,
        request: BlocksByRangeRequest,
        reply: oneshot::Sender<Result<Vec<Block>, RequestError>>,
    },
    RespondTxs {
        channel: ResponseChannel<Response<Tx>>,
        response: Response<Tx>,
    },
    RespondBlocks {
        channel: ResponseChannel<Response<Block>>,
        response: Response<Block>,
    },
    Status {
        reply: oneshot::Sender<NetworkStatus>,
    },
    PeerReputation {
        peer: PeerId,
        reply: oneshot::Sender<PeerReputation>,
    },
}

/// A snapshot of the node's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    /// Connected peers.
    pub connected: Vec<PeerId>,
    /// Mesh peers per topic.
    pub mesh_peers: Vec<(GossipKind, usize)>,
}

impl NetworkStatus {
    /// Mesh peers on `kind`'s topic.
    pub fn mesh_peers(&self, kind: GossipKind) -> usize {
        self.mesh_peers
            .iter()
            .find(|(topic, _)| *topic == kind)
            .map_or(0, |(_, count)| *count)
    }
}

/// One peer's standing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerReputation {
    /// App-level score (0 is neutral, disconnect at −50, ban at −100).
    pub score: f64,
    /// Banned now.
    pub banned: bool,
    /// Connected now.
    pub connected: bool,
}

/// What the p2p service needs from the rest of the node.
pub struct P2pDeps {
    /// Proposer and committee lookups for gossip validation.
    pub committee: Arc<dyn CommitteeSource>,
    /// The handler registry.
    pub handlers: Handlers,
    /// The store behind req/resp.
    pub provider: Arc<dyn ChainProvider>,
    /// The clock gossip windows are checked against.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for P2pDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pDeps")
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

/// The handle other components use: publish, collect attestations, fetch txs and blocks.
#[derive(Clone)]
pub struct P2pHandle {
    swarm: mpsc::Sender<SwarmCommand>,
    processor: mpsc::Sender<ProcessorCommand>,
    events: broadcast::Sender<P2pEvent>,
    listen: watch::Receiver<Vec<Multiaddr>>,
    local_peer_id: PeerId,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for P2pHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pHandle")
            .field("local_peer_id", &self.local_peer_id)
            .finish_non_exhaustive()
    }
}

impl P2pHandle {
    /// This node's peer id.
    pub const fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses the node listens on, once it does (`/p2p/<id>` not included).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, P2pError> {
        let mut listen = self.listen.clone();
        let addrs = listen
            .wait_for(|addrs| !addrs.is_empty())
            .await
            .map_err(|_| P2pError::Stopped)?;
        Ok(addrs.clone())
    }

    /// Equivocations and proposal sightings.
    pub fn subscribe(&self) -> broadcast::Receiver<P2pEvent> {
        self.events.subscribe()
    }

    /// Gossips a tx.
    pub async fn publish_tx(&self, tx: &Tx) -> Result<(), PublishError> {
        self.publish_bytes(GossipKind::Tx, tx.to_wire_bytes()).await
    }

    /// Gossips this node's block proposal (pooled first, so a later copy is a duplicate).
    pub async fn publish_block_proposal(
        &self,
        proposal: BlockProposal,
    ) -> Result<(), PublishError> {
        self.publish_own(OwnMessage::BlockProposal(Box::new(proposal)))
            .await
    }

    /// Gossips this node's checkpoint proposal.
    pub async fn publish_checkpoint_proposal(
        &self,
        proposal: CheckpointProposal,
    ) -> Result<(), PublishError> {
        self.publish_own(OwnMessage::CheckpointProposal(Box::new(proposal)))
            .await
    }

    /// Gossips an attestation (it also counts in this node's pool).
    pub async fn publish_attestation(
        &self,
        attestation: CheckpointAttestation,
    ) -> Result<(), PublishError> {
        self.publish_own(OwnMessage::Attestation(Box::new(attestation)))
            .await
    }

    /// Attestations for `payload` (one per attester, own included), returned as soon as there
    /// are `quorum` of them or at `deadline` with whatever arrived.
    pub async fn collect_attestations(
        &self,
        payload: &ConsensusPayload,
        quorum: usize,
        deadline: Timestamp,
    ) -> Result<Vec<CheckpointAttestation>, P2pError> {
        let slot = Slot(payload.header.slot);
        let payload_hash = payload.payload_hash();
        let (reply, quorum_reached) = oneshot::channel();
        self.processor
            .send(ProcessorCommand::AwaitQuorum {
                slot,
                payload_hash,
                quorum,
                reply,
            })
            .await
            .map_err(|_| P2pError::Stopped)?;
        let wait = self.clock.now().until(deadline);
        if let Ok(Ok(attestations)) = tokio::time::timeout(wait, quorum_reached).await {
            return Ok(attestations);
        }
        let (reply, collected) = oneshot::channel();
        self.processor
            .send(ProcessorCommand::Attestations {
                slot,
                payload_hash,
                reply,
            })
            .await
            .map_err(|_| P2pError::Stopped)?;
        collected.await.map_err(|_| P2pError::Stopped)
    }

    /// Fetches txs by hash from `peer`, or from some connected peer. Returns those the peer had;
    /// every one was requested and none repeats.
    pub async fn request_txs(
        &self,
        peer: Option<PeerId>,
        hashes: Vec<B256>,
    ) -> Result<Vec<Tx>, RequestError> {
        let (reply, response) = oneshot::channel();
        self.swarm
            .send(SwarmCommand::RequestTxs {
                peer,
                hashes,
                reply,
            })
            .await
            .map_err(|_| RequestError::Stopped)?;
        response.await.map_err(|_| RequestError::Stopped)?
    }

    /// Fetches blocks `from .. from + count` from `peer` or some connected peer: consecutive,
    /// starting at `from`, possibly fewer.
    pub async fn request_blocks(
        &self,
        peer: Option<PeerId>,
        from: u64,
        count: u32,
    ) -> Result<Vec<Block>, RequestError> {
        let (reply, response) = oneshot::channel();
        self.swarm
            .send(SwarmCommand::RequestBlocks {
                peer,
                request: BlocksByRangeRequest { from, count },
                reply,
            })
            .await
            .map_err(|_| RequestError::Stopped)?;
        response.await.map_err(|_| RequestError::Stopped)?
    }

    /// Dials `addr`.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), RequestError> {
        let (reply, response) = oneshot::channel();
        self.swarm
            .send(SwarmCommand::Dial { addr, reply })
            .await
            .map_err(|_| RequestError::Stopped)?;
        response.await.map_err(|_| RequestError::Stopped)?
    }

    /// Connected peers and mesh sizes.
    pub async fn status(&self) -> Result<NetworkStatus, P2pError> {
        let (reply, response) = oneshot::channel();
        self.swarm
            .send(SwarmCommand::Status { reply })
            .await
            .map_err(|_| P2pError::Stopped)?;
        response.await.map_err(|_| P2pError::Stopped)
    }

    /// `peer`'s standing.
    pub async fn peer_reputation(&self, peer: PeerId) -> Result<PeerReputation, P2pError> {
        let (reply, response) = oneshot::channel();
        self.swarm
            .send(SwarmCommand::PeerReputation { peer, reply })
            .await
            .map_err(|_| P2pError::Stopped)?;
        response.await.map_err(|_| P2pError::Stopped)
    }

    /// Publishes arbitrary bytes on a topic, bypassing every local check: for tests of how
    /// peers treat bad gossip.
    #[cfg(feature = "test-utils")]
    pub async fn publish_raw(&self, kind: GossipKind, bytes: Vec<u8>) -> Result<(), PublishError> {
        self.publish_bytes(kind, bytes).await
    }

    async fn publish_bytes(&self, kind: GossipKind, bytes: Vec<u8>) -> Result<(), PublishError> {
        let (reply, response) = oneshot::channel();
        self.swarm
            .send(SwarmCommand::Publish { kind, bytes, reply })
            .await
            .map_err(|_| PublishError::Stopped)?;
        response.await.map_err(|_| PublishError::Stopped)?
    }

    async fn publish_own(&self, message: OwnMessage) -> Result<(), PublishError> {
        let (reply, response) = oneshot::channel();
        self.processor
            .send(ProcessorCommand::PublishOwn { message, reply })
            .await
            .map_err(|_| PublishError::Stopped)?;
        response.await.map_err(|_| PublishError::Stopped)?
    }
}

enum PendingRequest {
    Txs {
        peer: PeerId,
        hashes: HashSet<B256>,
        reply: oneshot::Sender<Result<Vec<Tx>, RequestError>>,
    },
    Blocks {
        peer: PeerId,
        request: BlocksByRangeRequest,
        reply: oneshot::Sender<Result<Vec<Block>, RequestError>>,
    },
}

/// The p2p service: the swarm actor plus the validation task and the handler lanes it starts.
pub struct P2pService {
    swarm: Swarm<Behaviour>,
    topics: Topics,
    config: P2pConfig,
    commands: mpsc::Receiver<SwarmCommand>,
    self_commands: mpsc::Sender<SwarmCommand>,
    processor_tx: mpsc::Sender<ProcessorCommand>,
    processor: Option<Processor>,
    consensus_rx: Option<mpsc::Receiver<crate::dispatch::ConsensusItem>>,
    tx_lane_rx: Option<mpsc::Receiver<crate::verified::Verified<RecoveredTx>>>,
    handlers: Handlers,
    provider: Arc<dyn ChainProvider>,
    clock: Arc<dyn Clock>,
    peers: PeerManager,
    txs_limiter: RateLimiter,
    blocks_limiter: RateLimiter,
    pending: HashMap<OutboundRequestId, PendingRequest>,
    listen: watch::Sender<Vec<Multiaddr>>,
    next_peer: usize,
}

impl std::fmt::Debug for P2pService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pService")
            .field("local_peer_id", self.swarm.local_peer_id())
            .finish_non_exhaustive()
    }
}

impl P2pService {
    /// Builds the swarm and starts listening. Must be called inside a tokio runtime.
    pub fn new(
        config: P2pConfig,
        network: NetworkParams,
        deps: P2pDeps,
    ) -> Result<(P2pHandle, Self), P2pError> {
        let key = match &config.node_key_path {
            Some(path) => load_or_create_node_key(path)?,
            None => Keypair::generate_ed25519(),
        };
        let chain_id = network.domain.chain_id;
        let topics = Topics::new(chain_id);
        let mut swarm = build_swarm(key, &config, &network, &topics)?;
        for addr in &config.listen_addrs {
            swarm
                .listen_on(addr.clone())
                .map_err(|source| P2pError::Listen {
                    addr: addr.clone(),
                    source,
                })?;
        }
        for addr in &config.announce_addrs {
            swarm.add_external_address(addr.clone());
        }
        for kind in GossipKind::ALL {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&topics.topic(kind).ident())
                .map_err(|err| P2pError::Build(format!("subscribe to {kind}: {err}")))?;
        }
        for addr in &config.bootnodes {
            if let Err(err) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, %err, "cannot dial bootnode");
            }
        }

        let (swarm_tx, swarm_rx) = mpsc::channel(SWARM_COMMAND_CAPACITY);
        let (processor_tx, processor_rx) = mpsc::channel(config.gossip_queue_capacity);
        let (consensus_tx, consensus_rx) = mpsc::channel(config.handler_queue_capacity);
        let (tx_lane_tx, tx_lane_rx) = mpsc::channel(config.handler_queue_capacity);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (listen_tx, listen_rx) = watch::channel(Vec::new());

        let validator = GossipValidator::new(
            network.domain,
            network.windows,
            deps.committee,
            network.tx_rules,
            network.max_txs_per_block,
        );
        let processor = Processor {
            pipeline: GossipPipeline::new(validator),
            clock: Arc::clone(&deps.clock),
            commands: processor_rx,
            swarm: swarm_tx.clone(),
            consensus_lane: consensus_tx,
            tx_lane: tx_lane_tx,
            events: events.clone(),
            waiters: HashMap::new(),
            last_pruned: None,
        };
        let handle = P2pHandle {
            swarm: swarm_tx.clone(),
            processor: processor_tx.clone(),
            events,
            listen: listen_rx,
            local_peer_id: *swarm.local_peer_id(),
            clock: Arc::clone(&deps.clock),
        };
        let service = Self {
            swarm,
            topics,
            txs_limiter: RateLimiter::new(config.txs_rate_limit),
            blocks_limiter: RateLimiter::new(config.blocks_rate_limit),
            peers: PeerManager::new(config.ban_duration),
            config,
            commands: swarm_rx,
            self_commands: swarm_tx,
            processor_tx,
            processor: Some(processor),
            consensus_rx: Some(consensus_rx),
            tx_lane_rx: Some(tx_lane_rx),
            handlers: deps.handlers,
            provider: deps.provider,
            clock: deps.clock,
            pending: HashMap::new(),
            listen: listen_tx,
            next_peer: 0,
        };
        Ok((handle, service))
    }

    /// Runs until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), P2pError> {
        let mut tasks = tokio::task::JoinSet::new();
        let child = cancel.child_token();
        if let (Some(processor), Some(consensus_rx), Some(tx_lane_rx)) = (
            self.processor.take(),
            self.consensus_rx.take(),
            self.tx_lane_rx.take(),
        ) {
            tasks.spawn(processor.run(child.clone()));
            tasks.spawn(run_consensus_lane(
                self.handlers.clone(),
                consensus_rx,
                self.processor_tx.clone(),
                child.clone(),
            ));
            tasks.spawn(run_tx_lane(
                self.handlers.clone(),
                tx_lane_rx,
                child.clone(),
            ));
        }
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(command) = self.commands.recv() => self.on_command(command),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = maintenance.tick() => self.maintain(),
            }
        }
        child.cancel();
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn on_command(&mut self, command: SwarmCommand) {
        match command {
            SwarmCommand::Validated {
                id,
                source,
                acceptance,
                penalty,
            } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
                if let Some(action) = penalty {
                    self.penalize(source, action);
                }
            }
            SwarmCommand::Publish { kind, bytes, reply } => {
                let topic = self.topics.hash(kind).clone();
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic, bytes)
                    .map(|_| ())
                    .map_err(|err| {
                        metrics::publish_error(kind);
                        match err {
                            gossipsub::PublishError::NoPeersSubscribedToTopic => {
                                PublishError::NoPeers
                            }
                            gossipsub::PublishError::Duplicate => PublishError::Duplicate,
                            gossipsub::PublishError::MessageTooLarge
                            | gossipsub::PublishError::TransformFailed(_) => PublishError::TooLarge,
                            other => PublishError::Gossipsub(other.to_string()),
                        }
                    });
                let _ = reply.send(result);
            }
            SwarmCommand::Dial { addr, reply } => {
                let result = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|err| RequestError::Failed {
                        peer: addr.to_string(),
                        reason: err.to_string(),
                    });
                let _ = reply.send(result);
            }
            SwarmCommand::RequestTxs {
                peer,
                hashes,
                reply,
            } => {
                if hashes.is_empty() || hashes.len() > crate::reqresp::MAX_TXS_PER_REQUEST {
                    let _ = reply.send(Err(RequestError::Invalid(
                        "between 1 and MAX_TXS_PER_REQUEST hashes",
                    )));
                    return;
                }
                let Some(peer) = peer.or_else(|| self.pick_peer()) else {
                    let _ = reply.send(Err(RequestError::NoPeers));
                    return;
                };
                let request = TxsByHashRequest {
                    hashes: hashes.clone(),
                };
                let id = self.swarm.behaviour_mut().txs.send_request(&peer, request);
                self.pending.insert(
                    id,
                    PendingRequest::Txs {
                        peer,
                        hashes: hashes.into_iter().collect(),
                        reply,
                    },
                );
            }
            SwarmCommand::RequestBlocks {
                peer,
                request,
                reply,
            } => {
                if !blocks_request_valid(&request) {
                    let _ = reply.send(Err(RequestError::Invalid(
                        "between 1 and MAX_BLOCKS_PER_REQUEST blocks",
                    )));
                    return;
                }
                let Some(peer) = peer.or_else(|| self.pick_peer()) else {
                    let _ = reply.send(Err(RequestError::NoPeers));
                    return;
                };
                let id = self
                    .swarm
                    .behaviour_mut()
                    .blocks
                    .send_request(&peer, request);
                self.pending.insert(
                    id,
                    PendingRequest::Blocks {
                        peer,
                        request,
                        reply,
                    },
                );
            }
            SwarmCommand::RespondTxs { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .txs
                    .send_response(channel, response);
            }
            SwarmCommand::RespondBlocks { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .blocks
                    .send_response(channel, response);
            }
            SwarmCommand::Status { reply } => {
                let gossipsub = &self.swarm.behaviour().gossipsub;
                let mesh_peers = GossipKind::ALL
                    .map(|kind| (kind, gossipsub.mesh_peers(self.topics.hash(kind)).count()))
                    .to_vec();
                let _ = reply.send(NetworkStatus {
                    connected: self.swarm.connected_peers().copied().collect(),
                    mesh_peers,
                });
            }
            SwarmCommand::PeerReputation { peer, reply } => {
                let now = self.now();
                let _ = reply.send(PeerReputation {
                    score: self.peers.score(&peer, now),
                    banned: self.peers.is_banned(&peer, now),
                    connected: self.swarm.is_connected(&peer),
                });
            }
        }
    }

    fn pick_peer(&mut self) -> Option<PeerId> {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        if peers.is_empty() {
            return None;
        }
        self.next_peer = self.next_peer.wrapping_add(1);
        Some(peers[self.next_peer % peers.len()])
    }

    fn penalize(&mut self, peer: PeerId, action: PeerAction) {
        metrics::penalty(action);
        let now = self.now();
        let decision = self.peers.report(peer, action, now);
        let score = self.peers.score(&peer, now);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
        match decision {
            PeerDecision::Keep => {}
            PeerDecision::Disconnect => {
                tracing::info!(%peer, score, "disconnecting misbehaving peer");
                metrics::peer_removed("disconnected");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            PeerDecision::Ban { until } => {
                if self.swarm.behaviour_mut().blocked.block_peer(peer) {
                    tracing::warn!(%peer, score, until = until.as_secs(), "banning peer");
                    metrics::peer_removed("banned");
                    self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
                }
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    fn maintain(&mut self) {
        let now = self.now();
        for peer in self.peers.expire(now) {
            tracing::info!(%peer, "ban expired");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            self.swarm
                .behaviour_mut()
                .gossipsub
                .remove_blacklisted_peer(&peer);
        }
        let connected = self.swarm.connected_peers().count();
        metrics::peers(connected);
        if connected < self.config.min_peers as usize {
            for addr in self.config.bootnodes.clone() {
                let _ = self.swarm.dial(addr);
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen.send_modify(|addrs| addrs.push(address));
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                metrics::peers(self.swarm.connected_peers().count());
                tracing::debug!(peer = %peer_id, "connected");
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.txs_limiter.remove(&peer_id);
                    self.blocks_limiter.remove(&peer_id);
                }
                metrics::peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Txs(event)) => self.on_txs_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Blocks(event)) => self.on_blocks_event(event),
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let Some(kind) = self.topics.kind_of(&message.topic) else {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    MessageAcceptance::Reject,
                );
            return;
        };
        let inbound = Inbound {
            id: message_id,
            source: propagation_source,
            kind,
            data: message.data,
        };
        if let Err(err) = self
            .processor_tx
            .try_send(ProcessorCommand::Gossip(inbound))
        {
            // Validation is saturated: not the peer's fault, so ignore without penalty.
            metrics::gossip_queue_dropped(kind);
            let ProcessorCommand::Gossip(inbound) = err.into_inner() else {
                return;
            };
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(
                    &inbound.id,
                    &inbound.source,
                    MessageAcceptance::Ignore,
                );
        }
    }

    fn on_txs_event(&mut self, event: request_response::Event<TxsByHashRequest, Response<Tx>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let now = self.now();
                    if !txs_request_valid(&request) {
                        metrics::request("txs_by_hash", "inbound", "invalid");
                        self.penalize(peer, PeerAction::MidToleranceError);
                        let _ = self.swarm.behaviour_mut().txs.send_response(
                            channel,
                            Response::error(ResponseStatus::InvalidRequest),
                        );
                    } else if !self
                        .txs_limiter
                        .allow(peer, request.hashes.len() as f64, now)
                    {
                        metrics::request("txs_by_hash", "inbound", "rate_limited");
                        self.penalize(peer, PeerAction::HighToleranceError);
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .txs
                            .send_response(channel, Response::error(ResponseStatus::RateLimited));
                    } else {
                        metrics::request("txs_by_hash", "inbound", "served");
                        let provider = Arc::clone(&self.provider);
                        let respond = self.self_commands.clone();
                        tokio::spawn(async move {
                            let response = match provider.txs_by_hash(request.hashes).await {
                                Ok(txs) => Response {
                                    status: ResponseStatus::Ok,
                                    items: cap_response(txs),
                                },
                                Err(_) => Response::error(ResponseStatus::ServerError),
                            };
                            let _ = respond
                                .send(SwarmCommand::RespondTxs { channel, response })
                                .await;
                        });
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(PendingRequest::Txs {
                        peer,
                        hashes,
                        reply,
                    }) = self.pending.remove(&request_id)
                    {
                        let result = check_txs_response(peer, &hashes, response);
                        if matches!(result, Err(RequestError::BadResponse { .. })) {
                            self.penalize(peer, PeerAction::MidToleranceError);
                        }
                        metrics::request("txs_by_hash", "outbound", result_label(&result));
                        let _ = reply.send(result);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(PendingRequest::Txs { reply, .. }) = self.pending.remove(&request_id) {
                    metrics::request("txs_by_hash", "outbound", "failed");
                    let _ = reply.send(Err(RequestError::Failed {
                        peer: peer.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.on_inbound_failure(peer, "txs_by_hash", &error);
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_blocks_event(
        &mut self,
        event: request_response::Event<BlocksByRangeRequest, Response<Block>>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let now = self.now();
                    if !blocks_request_valid(&request) {
                        metrics::request("blocks_by_range", "inbound", "invalid");
                        self.penalize(peer, PeerAction::MidToleranceError);
                        let _ = self.swarm.behaviour_mut().blocks.send_response(
                            channel,
                            Response::error(ResponseStatus::InvalidRequest),
                        );
                    } else if !self
                        .blocks_limiter
                        .allow(peer, f64::from(request.count), now)
                    {
                        metrics::request("blocks_by_range", "inbound", "rate_limited");
                        self.penalize(peer, PeerAction::HighToleranceError);
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .blocks
                            .send_response(channel, Response::error(ResponseStatus::RateLimited));
                    } else {
                        metrics::request("blocks_by_range", "inbound", "served");
                        let provider = Arc::clone(&self.provider);
                        let respond = self.self_commands.clone();
                        tokio::spawn(async move {
                            let response =
                                match provider.blocks_by_range(request.from, request.count).await {
                                    Ok(blocks) => Response {
                                        status: ResponseStatus::Ok,
                                        items: cap_response(blocks),
                                    },
                                    Err(_) => Response::error(ResponseStatus::ServerError),
                                };
                            let _ = respond
                                .send(SwarmCommand::RespondBlocks { channel, response })
                                .await;
                        });
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(PendingRequest::Blocks {
                        peer,
                        request,
                        reply,
                    }) = self.pending.remove(&request_id)
                    {
                        let result = check_blocks_response(peer, request, response);
                        if matches!(result, Err(RequestError::BadResponse { .. })) {
                            self.penalize(peer, PeerAction::MidToleranceError);
                        }
                        metrics::request("blocks_by_range", "outbound", result_label(&result));
                        let _ = reply.send(result);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(PendingRequest::Blocks { reply, .. }) = self.pending.remove(&request_id)
                {
                    metrics::request("blocks_by_range", "outbound", "failed");
                    let _ = reply.send(Err(RequestError::Failed {
                        peer: peer.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                self.on_inbound_failure(peer, "blocks_by_range", &error);
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_inbound_failure(
        &mut self,
        peer: PeerId,
        protocol: &'static str,
        error: &request_response::InboundFailure,
    ) {
        metrics::request(protocol, "inbound", "failed");
        // An undecodable or oversized request frame is the sender's fault.
        if let request_response::InboundFailure::Io(err) = error
            && err.kind() == std::io::ErrorKind::InvalidData
        {
            tracing::debug!(%peer, protocol, %err, "refused a malformed request");
            self.penalize(peer, PeerAction::LowToleranceError);
        }
    }
}

fn result_label<T>(result: &Result<T, RequestError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(RequestError::Refused { .. }) => "refused",
        Err(RequestError::BadResponse { .. }) => "bad_response",
        Err(_) => "failed",
    }
}

fn check_txs_response(
    peer: PeerId,
    requested: &HashSet<B256>,
    response: Response<Tx>,
) -> Result<Vec<Tx>, RequestError> {
    if response.status != ResponseStatus::Ok {
        return Err(RequestError::Refused {
            peer: peer.to_string(),
            status: response.status,
        });
    }
    let bad = |reason| RequestError::BadResponse {
        peer: peer.to_string(),
        reason,
    };
    let mut seen = HashSet::with_capacity(response.items.len());
    for tx in &response.items {
        let hash = tx.hash();
        if !requested.contains(&hash) {
            return Err(bad("a tx that was not requested"));
        }
        if !seen.insert(hash) {
            return Err(bad("a tx twice"));
        }
    }
    Ok(response.items)
}

fn check_blocks_response(
    peer: PeerId,
    request: BlocksByRangeRequest,
    response: Response<Block>,
) -> Result<Vec<Block>, RequestError> {
    if response.status != ResponseStatus::Ok {
        return Err(RequestError::Refused {
            peer: peer.to_string(),
            status: response.status,
        });
    }
    if response.items.len() > request.count as usize {
        return Err(RequestError::BadResponse {
            peer: peer.to_string(),
            reason: "more blocks than requested",
        });
    }
    let consecutive = response
        .items
        .iter()
        .zip(request.from..)
        .all(|(block, number)| block.header.block_number == number);
    if !consecutive {
        return Err(RequestError::BadResponse {
            peer: peer.to_string(),
            reason: "blocks not consecutive from the requested start",
        });
    }
    Ok(response.items)
}

/// Content-addressed message id: the same message from any path is one message. SHA-256 (with
/// the CPU's SHA extensions) because it runs on the swarm task over every message, proposals of
/// megabytes included; keccak there cost ~2 ms per MiB.
fn message_id(message: &gossipsub::Message) -> MessageId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(message.topic.as_str().as_bytes())
        .chain_update(&message.data)
        .finalize();
    MessageId::from(&digest[..20])
}

fn build_swarm(
    key: Keypair,
    config: &P2pConfig,
    network: &NetworkParams,
    topics: &Topics,
) -> Result<Swarm<Behaviour>, P2pError> {
    let chain_id = network.domain.chain_id;
    let mut gossip_config = gossipsub::ConfigBuilder::default();
    gossip_config
        .validate_messages()
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(message_id)
        .heartbeat_interval(config.heartbeat_interval)
        .duplicate_cache_time(network.slot_duration.max(Duration::from_secs(30)) * 2)
        .max_transmit_size(GossipKind::CheckpointProposal.max_transmit_size());
    for kind in GossipKind::ALL {
        gossip_config
            .max_transmit_size_for_topic(kind.max_transmit_size(), topics.hash(kind).clone());
    }
    let gossip_config = gossip_config
        .build()
        .map_err(|err| P2pError::Build(format!("gossipsub config: {err}")))?;
    let mut gossipsub = gossipsub::Behaviour::new_with_transform(
        MessageAuthenticity::Anonymous,
        gossip_config,
        SnappyTransform::new(topics.clone()),
    )
    .map_err(|err| P2pError::Build(format!("gossipsub: {err}")))?;
    gossipsub
        .with_peer_score(
            peer_score_params(
                GossipKind::ALL.map(|kind| (kind, topics.hash(kind).clone())),
                network.slot_duration,
            ),
            peer_score_thresholds(),
        )
        .map_err(|err| P2pError::Build(format!("gossipsub scoring: {err}")))?;

    let (txs_protocol, blocks_protocol) = protocols(chain_id).map_err(P2pError::Build)?;
    let reqresp_config = request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT);
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_peers))
        .with_max_established_per_peer(Some(2));

    let behaviour = |key: &Keypair| Behaviour {
        blocked: allow_block_list::Behaviour::default(),
        limits: connection_limits::Behaviour::new(limits),
        gossipsub,
        identify: identify::Behaviour::new(
            identify::Config::new(format!("/tandem/{chain_id}/1"), key.public())
                .with_agent_version(format!("tandem/{}", env!("CARGO_PKG_VERSION"))),
        ),
        txs: request_response::Behaviour::new(
            [(txs_protocol, ProtocolSupport::Full)],
            reqresp_config.clone(),
        ),
        blocks: request_response::Behaviour::new(
            [(blocks_protocol, ProtocolSupport::Full)],
            reqresp_config,
        ),
    };
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|err| P2pError::Build(format!("tcp transport: {err}")))?
        .with_behaviour(behaviour)
        .map_err(|err| P2pError::Build(format!("behaviour: {err}")))?
        .with_swarm_config(|cfg| cfg.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(swarm)
}
