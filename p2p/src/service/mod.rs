//! The swarm actor: owns the libp2p swarm; everything else talks to it through [`P2pHandle`].

mod build;
mod exchange;
mod handle;

pub use handle::P2pHandle;

use build::build_swarm;
use exchange::{BlocksExchange, Limiters, PendingRequests, TxsExchange};

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, connection_limits,
    gossipsub::{self, MessageAcceptance, MessageId},
    identify,
    identity::Keypair,
    request_response::{self, ResponseChannel},
    swarm::{NetworkBehaviour, SwarmEvent},
};
use tandem_proto::{
    B256, Block, RecoveredTx, Tx,
    time::{Clock, Timestamp},
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
    processor::{GossipPipeline, Inbound, Processor, ProcessorCommand},
    reqresp::{
        BlocksByRangeRequest, BlocksCodec, ChainProvider, RateLimiter, Response, TxsByHashRequest,
        TxsCodec,
    },
    scoring::PeerAction,
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
    limiters: Limiters,
    pending: PendingRequests,
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
            limiters: Limiters {
                txs: RateLimiter::new(config.txs_rate_limit),
                blocks: RateLimiter::new(config.blocks_rate_limit),
            },
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
            pending: PendingRequests::default(),
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
                let context = hashes.iter().copied().collect();
                self.start_request::<TxsExchange>(
                    peer,
                    TxsByHashRequest { hashes },
                    context,
                    reply,
                );
            }
            SwarmCommand::RequestBlocks {
                peer,
                request,
                reply,
            } => self.start_request::<BlocksExchange>(peer, request, request, reply),
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
                    self.limiters.remove(&peer_id);
                }
                metrics::peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Txs(event)) => {
                self.on_exchange_event::<TxsExchange>(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Blocks(event)) => {
                self.on_exchange_event::<BlocksExchange>(event);
            }
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
}
