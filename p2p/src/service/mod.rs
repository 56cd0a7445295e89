//! The swarm actor: owns the libp2p swarm; everything else talks to it through [`P2pHandle`].
//! It starts and supervises the processors, the dispatcher and the tx lane: when one of them
//! panics or ends, the service stops with [`P2pError::TaskFailed`] instead of running on as a
//! healthy-looking node that ignores everything.

mod build;
mod commands;
mod exchange;
mod handle;
mod peering;
mod swarm_events;

pub use handle::{CollectedAttestation, P2pHandle};
pub use peering::DiscoveryStatus;

use build::build_swarm;
use exchange::{Limiters, PendingRequests};
use peering::Peering;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::{FutureExt, StreamExt};
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, connection_limits,
    gossipsub::{self, MessageAcceptance, MessageId},
    identify,
    identity::Keypair,
    kad,
    request_response::{self, ResponseChannel},
    swarm::NetworkBehaviour,
};
use tandem_proto::{
    B256, RecoveredTx, Tx,
    time::{Clock, Timestamp},
};
use tokio::{
    sync::{broadcast, mpsc, oneshot, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    committee::CommitteeSource,
    config::{
        CONSENSUS_COMMAND_CAPACITY, NetworkParams, P2pConfig, PROCESSOR_COMMAND_CAPACITY,
        SWARM_COMMAND_CAPACITY,
    },
    dispatch::{DispatchContext, DispatchItem, Dispatcher, run_tx_lane},
    error::{P2pError, PublishError, RequestError},
    events::P2pEvent,
    handlers::Handlers,
    keys::load_or_create_node_key,
    pipeline::GossipPipeline,
    processor::{
        AttestationBook, ConsensusProcessor, ConsensusQueues, ProcessorCommand, TxProcessor,
    },
    queues::{GossipQueues, QueueReceivers},
    recent::RecentProposals,
    reqresp::{
        BlockQuery, BlocksByRangeRequest, BlocksCodec, ChainCodec, ChainProvider, ProposalsCodec,
        ProposedChainRequest, Protocols, Response, ServedBlock, TxsCodec,
    },
    scoring::PeerAction,
    topics::{GossipKind, Topics},
    validation::GossipValidator,
    verified::Verified,
};

/// Capacity of the event broadcast (equivocations, proposal sightings, dispatch events).
const EVENT_CAPACITY: usize = 256;

#[derive(NetworkBehaviour)]
struct Behaviour {
    // Deny banned and refused peers and excess connections before anything else sees them.
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    /// Consensus topics.
    gossipsub: gossipsub::Behaviour,
    /// The tx topic, on its own protocol and send queues.
    tx_gossip: gossipsub::Behaviour,
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    txs: request_response::Behaviour<TxsCodec>,
    blocks: request_response::Behaviour<BlocksCodec>,
    proposals: request_response::Behaviour<ProposalsCodec>,
    chain: request_response::Behaviour<ChainCodec>,
}

/// Which gossipsub instance: consensus topics, or txs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GossipInstance {
    Consensus,
    Tx,
}

impl GossipInstance {
    const fn of(kind: GossipKind) -> Self {
        match kind {
            GossipKind::Tx => Self::Tx,
            GossipKind::BlockProposal
            | GossipKind::CheckpointProposal
            | GossipKind::CheckpointAttestation => Self::Consensus,
        }
    }
}

impl Behaviour {
    fn gossip_instance(&mut self, instance: GossipInstance) -> &mut gossipsub::Behaviour {
        match instance {
            GossipInstance::Consensus => &mut self.gossipsub,
            GossipInstance::Tx => &mut self.tx_gossip,
        }
    }

    /// The gossipsub instance carrying `kind`'s topic.
    fn gossip(&mut self, kind: GossipKind) -> &mut gossipsub::Behaviour {
        self.gossip_instance(GossipInstance::of(kind))
    }

    fn gossip_ref(&self, kind: GossipKind) -> &gossipsub::Behaviour {
        match GossipInstance::of(kind) {
            GossipInstance::Consensus => &self.gossipsub,
            GossipInstance::Tx => &self.tx_gossip,
        }
    }

    /// Both gossipsub instances.
    fn gossips(&mut self) -> [&mut gossipsub::Behaviour; 2] {
        [&mut self.gossipsub, &mut self.tx_gossip]
    }
}

/// A peer's answer, with the peer.
pub(crate) type Answer<T> = Result<(PeerId, Vec<T>), RequestError>;

/// Commands into the swarm actor.
pub(crate) enum SwarmCommand {
    Validated {
        id: MessageId,
        source: PeerId,
        kind: GossipKind,
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
    ReportPeer {
        peer: PeerId,
        action: PeerAction,
    },
    RequestTxs {
        peer: Option<PeerId>,
        hashes: Vec<B256>,
        reply: oneshot::Sender<Answer<Tx>>,
    },
    RequestBlocks {
        peer: Option<PeerId>,
        request: BlocksByRangeRequest,
        reply: oneshot::Sender<Answer<ServedBlock>>,
    },
    RequestBlockProposals {
        peer: Option<PeerId>,
        query: BlockQuery,
        reply: oneshot::Sender<Answer<ServedBlock>>,
    },
    RequestProposedChain {
        peer: Option<PeerId>,
        request: ProposedChainRequest,
        reply: oneshot::Sender<Answer<ServedBlock>>,
    },
    RespondTxs {
        channel: ResponseChannel<Response<Tx>>,
        response: Response<Tx>,
    },
    RespondBlocks {
        channel: ResponseChannel<Response<ServedBlock>>,
        response: Response<ServedBlock>,
    },
    RespondProposals {
        channel: ResponseChannel<Response<ServedBlock>>,
        response: Response<ServedBlock>,
    },
    RespondChain {
        channel: ResponseChannel<Response<ServedBlock>>,
        response: Response<ServedBlock>,
    },
    Status {
        reply: oneshot::Sender<NetworkStatus>,
    },
    PeerReputation {
        peer: PeerId,
        reply: oneshot::Sender<PeerReputation>,
    },
}

/// What happened to the gossip of one topic on this node since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounters {
    /// Messages gossipsub handed over (first copies; duplicates never reach us).
    pub received: u64,
    /// Ignored because the topic's validation queue was full.
    pub queue_dropped: u64,
    /// Ignored because the forwarding peer was over its rate limit.
    pub rate_limited: u64,
    /// Verdicts: accepted.
    pub accepted: u64,
    /// Verdicts: ignored (duplicates, timing, unknown committee, queue drops, rate limits).
    pub ignored: u64,
    /// Verdicts: rejected.
    pub rejected: u64,
}

/// A snapshot of the node's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    /// Connected peers.
    pub connected: Vec<PeerId>,
    /// Connected peers this node dialed.
    pub outbound: usize,
    /// Connected peers that dialed this node.
    pub inbound: usize,
    /// Mesh peers per topic.
    pub mesh_peers: Vec<(GossipKind, usize)>,
    /// Gossip counters per topic.
    pub gossip: Vec<(GossipKind, TopicCounters)>,
    /// Inbound connections refused (banned, low score, over the limits).
    pub denied_connections: u64,
    /// Messages gossipsub dropped because a peer did not take them in time.
    pub send_dropped: u64,
    /// Discovery's candidates, dials and walks.
    pub discovery: DiscoveryStatus,
}

impl NetworkStatus {
    /// Mesh peers on `kind`'s topic.
    pub fn mesh_peers(&self, kind: GossipKind) -> usize {
        self.mesh_peers
            .iter()
            .find(|(topic, _)| *topic == kind)
            .map_or(0, |(_, count)| *count)
    }

    /// Gossip counters of `kind`'s topic.
    pub fn gossip(&self, kind: GossipKind) -> TopicCounters {
        self.gossip
            .iter()
            .find(|(topic, _)| *topic == kind)
            .map(|(_, counters)| *counters)
            .unwrap_or_default()
    }
}

/// One peer's standing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerReputation {
    /// App-level score (0 is neutral, disconnect at −50, ban at −100).
    pub score: f64,
    /// Banned now.
    pub banned: bool,
    /// Refused on (re)connect now: banned, or its score still at or below the disconnect
    /// threshold.
    pub refused: bool,
    /// Connected now.
    pub connected: bool,
    /// Gossipsub's score of the peer on the consensus topics (app score × weight, topic
    /// scores, IP colocation), while connected.
    pub gossip_score: Option<f64>,
}

/// What the p2p service needs from the rest of the node (the handlers come with
/// [`P2pService::run`], so they can hold the [`P2pHandle`]).
pub struct P2pDeps {
    /// Proposer and committee lookups for gossip validation.
    pub committee: Arc<dyn CommitteeSource>,
    /// The chain store behind req/resp.
    pub provider: Arc<dyn ChainProvider>,
    /// The clock gossip windows and handler deadlines are checked against.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for P2pDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pDeps").finish_non_exhaustive()
    }
}

/// The channels and state the tasks started by [`P2pService::run`] take.
struct TaskParts {
    queues: QueueReceivers,
    processor_rx: mpsc::Receiver<ProcessorCommand>,
    /// The consensus processor's priority channel into the swarm actor.
    consensus_swarm: mpsc::Sender<SwarmCommand>,
    dispatch_tx: mpsc::Sender<DispatchItem>,
    dispatch_rx: mpsc::Receiver<DispatchItem>,
    tx_lane_tx: mpsc::Sender<Verified<RecoveredTx>>,
    tx_lane_rx: mpsc::Receiver<Verified<RecoveredTx>>,
}

/// The p2p service: the swarm actor plus the tasks it starts and supervises.
pub struct P2pService {
    swarm: Swarm<Behaviour>,
    topics: Topics,
    protocols: Protocols,
    config: P2pConfig,
    commands: mpsc::Receiver<SwarmCommand>,
    self_commands: mpsc::Sender<SwarmCommand>,
    /// The consensus processor's verdicts and publishes, served before everything else: under
    /// tx spam `commands` holds a thousand tx verdicts, and a checkpoint's verdict (its
    /// forwarding, then its dispatch) must not queue behind them.
    consensus_commands: mpsc::Receiver<SwarmCommand>,
    processor_tx: mpsc::Sender<ProcessorCommand>,
    events: broadcast::Sender<P2pEvent>,
    queues: GossipQueues,
    parts: Option<TaskParts>,
    validator: GossipValidator,
    provider: Arc<dyn ChainProvider>,
    recent: Arc<Mutex<RecentProposals>>,
    book: Arc<AttestationBook>,
    clock: Arc<dyn Clock>,
    peering: Peering,
    limiters: Limiters,
    pending: PendingRequests,
    servers: JoinSet<()>,
    counters: HashMap<GossipKind, TopicCounters>,
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
        config.validate()?;
        let key = match &config.node_key_path {
            Some(path) => load_or_create_node_key(path)?,
            None => Keypair::generate_ed25519(),
        };
        let chain_id = network.domain.chain_id;
        let topics = Topics::new(chain_id);
        let protocols = Protocols::new(chain_id).map_err(P2pError::Build)?;
        let mut swarm = build_swarm(key, &config, &network, &topics, &protocols)?;
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
                .gossip(kind)
                .subscribe(&topics.topic(kind).ident())
                .map_err(|err| P2pError::Build(format!("subscribe to {kind}: {err}")))?;
        }
        let mut peering = Peering::new(&config);
        peering.add_bootnodes(&mut swarm, &config.bootnodes);

        let (swarm_tx, swarm_rx) = mpsc::channel(SWARM_COMMAND_CAPACITY);
        let (consensus_tx, consensus_rx) = mpsc::channel(CONSENSUS_COMMAND_CAPACITY);
        let (processor_tx, processor_rx) = mpsc::channel(PROCESSOR_COMMAND_CAPACITY);
        let (queues, queue_rx) = GossipQueues::new(&config.queues);
        let (dispatch_tx, dispatch_rx) = mpsc::channel(config.handler_queue_capacity);
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
        let book = Arc::new(AttestationBook::default());
        let handle = P2pHandle {
            swarm: swarm_tx.clone(),
            processor: processor_tx.clone(),
            events: events.clone(),
            listen: listen_rx,
            local_peer_id: *swarm.local_peer_id(),
            clock: Arc::clone(&deps.clock),
            validator: validator.clone(),
            provider: Arc::clone(&deps.provider),
            book: Arc::clone(&book),
        };
        let service = Self {
            swarm,
            topics,
            protocols,
            limiters: Limiters::new(&config),
            peering,
            config,
            commands: swarm_rx,
            self_commands: swarm_tx,
            consensus_commands: consensus_rx,
            processor_tx,
            events,
            queues,
            parts: Some(TaskParts {
                queues: queue_rx,
                processor_rx,
                consensus_swarm: consensus_tx,
                dispatch_tx,
                dispatch_rx,
                tx_lane_tx,
                tx_lane_rx,
            }),
            validator,
            provider: deps.provider,
            recent: Arc::default(),
            book,
            clock: deps.clock,
            pending: PendingRequests::default(),
            servers: JoinSet::new(),
            counters: HashMap::new(),
            listen: listen_tx,
            next_peer: 0,
        };
        Ok((handle, service))
    }

    /// Runs until `cancel` fires, handing accepted gossip to `handlers`. Fails when one of its
    /// tasks panics or ends on its own.
    pub async fn run(
        mut self,
        handlers: Handlers,
        cancel: CancellationToken,
    ) -> Result<(), P2pError> {
        crate::metrics::register_zeroes();
        let child = cancel.child_token();
        let mut tasks = JoinSet::new();
        let mut names = HashMap::new();
        if let Some(parts) = self.parts.take() {
            self.spawn_tasks(parts, handlers, &child, &mut tasks, &mut names);
        }
        let mut maintenance = tokio::time::interval(self.config.maintenance_interval);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break Ok(()),
                Some(joined) = tasks.join_next_with_id() => {
                    break Err(task_failure(&names, joined));
                }
                Some(joined) = self.servers.join_next(), if !self.servers.is_empty() => {
                    if let Err(err) = joined
                        && err.is_panic()
                    {
                        break Err(P2pError::TaskFailed {
                            task: "request server",
                            reason: err.to_string(),
                        });
                    }
                }
                Some(command) = self.consensus_commands.recv() => {
                    self.on_command(command);
                    if let Some(Some(event)) = self.swarm.next().now_or_never() {
                        self.on_swarm_event(event);
                    }
                }
                Some(command) = self.commands.recv() => {
                    self.on_command(command);
                    // Commands (verdicts, publishes) come in floods under load: let the swarm
                    // make progress after each one, or its send queues starve.
                    if let Some(Some(event)) = self.swarm.next().now_or_never() {
                        self.on_swarm_event(event);
                    }
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = maintenance.tick() => self.maintain(),
            }
        };
        if let Err(err) = &result {
            tracing::error!(%err, "p2p service stopping");
        }
        child.cancel();
        while tasks.join_next().await.is_some() {}
        self.servers.abort_all();
        result
    }

    fn spawn_tasks(
        &mut self,
        parts: TaskParts,
        handlers: Handlers,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<Result<(), P2pError>>,
        names: &mut HashMap<tokio::task::Id, &'static str>,
    ) {
        let QueueReceivers {
            tx,
            block_proposal,
            checkpoint_proposal,
            attestation,
        } = parts.queues;
        let consensus = ConsensusProcessor::new(
            GossipPipeline::new(self.validator.clone()),
            Arc::clone(&self.clock),
            parts.processor_rx,
            ConsensusQueues {
                block_proposal,
                checkpoint_proposal,
                attestation,
            },
            parts.consensus_swarm,
            parts.dispatch_tx,
            self.events.clone(),
            Arc::clone(&self.recent),
            Arc::clone(&self.book),
        );
        let txs = TxProcessor {
            validator: self.validator.clone(),
            queue: tx,
            swarm: self.self_commands.clone(),
            lane: parts.tx_lane_tx,
        };
        let tx_handler = handlers.tx.clone();
        let dispatcher = Dispatcher::new(
            handlers,
            parts.dispatch_rx,
            DispatchContext {
                clock: Arc::clone(&self.clock),
                validator: self.validator.clone(),
                processor: self.processor_tx.clone(),
                swarm: self.self_commands.clone(),
                events: self.events.clone(),
            },
        );
        let mut spawn = |name, task| {
            let id = tasks.spawn(task).id();
            names.insert(id, name);
        };
        spawn(
            "consensus processor",
            Box::pin(consensus.run(cancel.clone())) as TaskFuture,
        );
        spawn("tx processor", Box::pin(txs.run(cancel.clone())));
        spawn("dispatcher", Box::pin(dispatcher.run(cancel.clone())));
        spawn(
            "tx lane",
            Box::pin(run_tx_lane(tx_handler, parts.tx_lane_rx, cancel.clone())),
        );
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn counters(&mut self, kind: GossipKind) -> &mut TopicCounters {
        self.counters.entry(kind).or_default()
    }
}

type TaskFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), P2pError>> + Send>>;

/// Why a supervised task ending before cancellation fails the service.
fn task_failure(
    names: &HashMap<tokio::task::Id, &'static str>,
    joined: Result<(tokio::task::Id, Result<(), P2pError>), tokio::task::JoinError>,
) -> P2pError {
    let (id, outcome) = match joined {
        Ok((id, outcome)) => (id, outcome.map_err(|err| err.to_string())),
        Err(err) => (err.id(), Err(panic_message(err))),
    };
    let task = names.get(&id).copied().unwrap_or("p2p task");
    P2pError::TaskFailed {
        task,
        reason: outcome
            .err()
            .unwrap_or_else(|| "ended before the service was cancelled".to_owned()),
    }
}

fn panic_message(err: tokio::task::JoinError) -> String {
    match err.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|message| format!("panicked: {message}"))
            .or_else(|| {
                payload
                    .downcast_ref::<String>()
                    .map(|message| format!("panicked: {message}"))
            })
            .unwrap_or_else(|| "panicked".to_owned()),
        Err(err) => err.to_string(),
    }
}
