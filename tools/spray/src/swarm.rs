//! The sprayer's swarm and its one run: dial, wait for the nodes' subscriptions, spray, watch.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm,
    gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, TopicHash, ValidationMode},
    identify, noise,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use serde::Serialize;
use tandem_p2p::{GossipKind, GossipTopic, Protocol, tx_gossip_protocol_prefix};
use tokio::time::Instant;

use crate::messages::{Category, LiveSlot, Target, payload};

/// Largest frame the sprayer itself sends or takes: above every topic's limit, so oversized
/// messages leave it.
const OWN_TRANSMIT_LIMIT: usize = 16 * 1024 * 1024;

/// What one run does.
#[derive(Debug, Clone)]
pub struct SprayConfig {
    /// The nodes, each with `/p2p/<peer id>`.
    pub peers: Vec<Multiaddr>,
    /// The network the well-formed messages claim.
    pub target: Target,
    /// When set, the target slot is read from it as the burst is built (replacing
    /// `target.slot`), so a long wait for subscriptions does not make the messages stale.
    pub live_slot: Option<LiveSlot>,
    /// How many times every (topic, category) message is sent, in one burst.
    pub rounds: u32,
    /// How long to wait for the nodes' subscriptions before spraying anyway.
    pub ready_timeout: Duration,
    /// How long to watch the nodes' reactions after spraying.
    pub watch: Duration,
    /// Pause between redials of a node that closed the connection.
    pub redial_interval: Duration,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum SprayError {
    /// A peer address without `/p2p/<peer id>`.
    #[error("{0}: no /p2p/<peer id> in the address")]
    NoPeerId(Multiaddr),
    /// The configuration cannot be run (a zero redial interval, a time too far out).
    #[error("bad spray configuration: {0}")]
    Config(&'static str),
    /// The swarm could not be built.
    #[error("building the swarm: {0}")]
    Build(String),
    /// A topic could not be subscribed to.
    #[error("subscribing to {topic}: {reason}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

/// How one node reacted. Times are milliseconds since the run started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeReport {
    /// Its peer id.
    pub peer: String,
    /// The address dialled.
    pub addr: String,
    /// When the first connection was up.
    pub connected_ms: Option<u64>,
    /// The topics it told the sprayer it subscribes to (names).
    pub topics: Vec<String>,
    /// When it first closed every connection to the sprayer.
    pub disconnected_ms: Option<u64>,
    /// Redials it refused (dial failed, or closed before it sent its subscriptions).
    pub refused: u32,
    /// When it first refused a redial.
    pub first_refused_ms: Option<u64>,
    /// Redials it accepted (it sent its subscriptions again).
    pub readmitted: u32,
    /// Why the first dial failed, if the node was never reached.
    pub unreachable: Option<String>,
}

/// What one run sent and saw.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The sprayer's own peer id (what the nodes penalise).
    pub local_peer: String,
    /// Messages handed to gossipsub, by category.
    pub sent: BTreeMap<Category, u64>,
    /// Messages handed to gossipsub, by topic name.
    pub sent_by_topic: BTreeMap<String, u64>,
    /// Messages gossipsub refused to send (no subscribed peer left, and similar).
    pub not_sent: u64,
    /// When spraying began (ms since the start), if it did.
    pub sprayed_ms: Option<u64>,
    /// Per node, in the order given.
    pub nodes: Vec<NodeReport>,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    tx_gossip: gossipsub::Behaviour,
    identify: identify::Behaviour,
}

/// Content-addressed ids, as the nodes use: every sprayed message differs, so none is
/// dropped as a duplicate on this side.
fn message_id(message: &gossipsub::Message) -> MessageId {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    message.topic.hash(&mut hasher);
    message.data.hash(&mut hasher);
    MessageId::from(hasher.finish().to_be_bytes().to_vec())
}

fn gossip(protocol_prefix: Option<String>) -> Result<gossipsub::Behaviour, SprayError> {
    let mut config = gossipsub::ConfigBuilder::default();
    // The nodes validate anonymously: no source, sequence number or signature on messages.
    config
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(message_id)
        .max_transmit_size(OWN_TRANSMIT_LIMIT);
    if let Some(prefix) = protocol_prefix {
        config.protocol_id_prefix(prefix);
    }
    let config = config
        .build()
        .map_err(|err| SprayError::Build(format!("gossipsub config: {err}")))?;
    gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)
        .map_err(|err| SprayError::Build(format!("gossipsub: {err}")))
}

fn build_swarm(chain_id: u64) -> Result<Swarm<Behaviour>, SprayError> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let behaviour = Behaviour {
        gossipsub: gossip(None)?,
        tx_gossip: gossip(Some(tx_gossip_protocol_prefix(chain_id)))?,
        identify: identify::Behaviour::new(
            identify::Config::new(format!("/tandem/{chain_id}/1"), key.public())
                .with_agent_version("tandem-spray".into()),
        ),
    };
    Ok(libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|err| SprayError::Build(format!("tcp transport: {err}")))?
        .with_behaviour(|_| behaviour)
        .map_err(|err| SprayError::Build(format!("behaviour: {err}")))?
        .with_swarm_config(|cfg| cfg.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

/// A node's state during the run.
#[derive(Default)]
struct Node {
    report: NodeReport,
    addr: Option<Multiaddr>,
    connected: bool,
    dialing: bool,
    subscribed: HashSet<TopicHash>,
    /// A redial's connection is up but the node has not sent its subscriptions yet.
    on_probation: bool,
}

impl Node {
    fn refused(&mut self, at: u64) {
        self.report.refused += 1;
        self.report.first_refused_ms.get_or_insert(at);
    }
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|part| match part {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// Runs one spray: see the crate docs.
pub async fn spray(config: SprayConfig) -> Result<Report, SprayError> {
    if config.redial_interval.is_zero() {
        // tokio's interval panics on zero.
        return Err(SprayError::Config("the redial interval is zero"));
    }
    let start = Instant::now();
    let elapsed = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let chain_id = config.target.domain.chain_id;
    let mut swarm = build_swarm(chain_id)?;
    let topics: Vec<(GossipKind, IdentTopic)> = GossipKind::ALL
        .into_iter()
        .map(|kind| (kind, GossipTopic::new(chain_id, kind).ident()))
        .collect();
    for (kind, topic) in &topics {
        let behaviour = swarm.behaviour_mut();
        let instance = if *kind == GossipKind::Tx {
            &mut behaviour.tx_gossip
        } else {
            &mut behaviour.gossipsub
        };
        instance
            .subscribe(topic)
            .map_err(|err| SprayError::Subscribe {
                topic: topic.to_string(),
                reason: err.to_string(),
            })?;
    }
    let names: HashMap<TopicHash, GossipKind> = topics
        .iter()
        .map(|(kind, topic)| (topic.hash(), *kind))
        .collect();

    let mut order = Vec::new();
    let mut nodes: HashMap<PeerId, Node> = HashMap::new();
    for addr in &config.peers {
        let peer = peer_of(addr).ok_or_else(|| SprayError::NoPeerId(addr.clone()))?;
        let mut node = Node {
            addr: Some(addr.clone()),
            ..Node::default()
        };
        node.report.peer = peer.to_string();
        node.report.addr = addr.to_string();
        node.dialing = swarm.dial(addr.clone()).is_ok();
        if !node.dialing {
            node.report.unreachable = Some("dial refused locally".into());
        }
        order.push(peer);
        nodes.insert(peer, node);
    }

    let mut report = Report {
        local_peer: swarm.local_peer_id().to_string(),
        sent: BTreeMap::new(),
        sent_by_topic: BTreeMap::new(),
        not_sent: 0,
        sprayed_ms: None,
        nodes: Vec::new(),
    };
    let ready_deadline = start
        .checked_add(config.ready_timeout)
        .ok_or(SprayError::Config("the ready timeout is too far out"))?;
    let mut watch_deadline: Option<Instant> = None;
    let mut redial = tokio::time::interval(config.redial_interval);
    let mut rng = rand::thread_rng();
    loop {
        // Spray once every reachable node serves every topic (or the wait is over).
        if report.sprayed_ms.is_none() {
            let ready = nodes.values().all(|node| {
                node.report.unreachable.is_some() || node.subscribed.len() == topics.len()
            });
            if ready || Instant::now() >= ready_deadline {
                report.sprayed_ms = Some(elapsed());
                let mut target = config.target;
                if let Some(live) = &config.live_slot {
                    target.slot = live.now();
                }
                for _ in 0..config.rounds {
                    for category in Category::ALL {
                        for (kind, topic) in &topics {
                            let Some(data) = payload(*kind, category, &target, &mut rng) else {
                                continue;
                            };
                            let behaviour = swarm.behaviour_mut();
                            let instance = if *kind == GossipKind::Tx {
                                &mut behaviour.tx_gossip
                            } else {
                                &mut behaviour.gossipsub
                            };
                            match instance.publish(topic.clone(), data) {
                                Ok(_) => {
                                    *report.sent.entry(category).or_default() += 1;
                                    *report
                                        .sent_by_topic
                                        .entry(kind.name().to_string())
                                        .or_default() += 1;
                                }
                                Err(_) => report.not_sent += 1,
                            }
                        }
                    }
                }
                watch_deadline = Some(
                    Instant::now()
                        .checked_add(config.watch)
                        .ok_or(SprayError::Config("the watch time is too far out"))?,
                );
            }
        }
        // Done early once every node that was reached refused the sprayer twice.
        if report.sprayed_ms.is_some()
            && nodes
                .values()
                .all(|node| node.report.unreachable.is_some() || node.report.refused >= 2)
        {
            break;
        }
        let deadline = watch_deadline.unwrap_or(ready_deadline);
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                if watch_deadline.is_some() {
                    break;
                }
            }
            _ = redial.tick() => {
                if report.sprayed_ms.is_none() {
                    continue;
                }
                for node in nodes.values_mut() {
                    if node.connected || node.dialing || node.report.disconnected_ms.is_none() {
                        continue;
                    }
                    if let Some(addr) = node.addr.clone() {
                        node.dialing = swarm.dial(addr).is_ok();
                    }
                }
            }
            event = swarm.select_next_some() => {
                let now = elapsed();
                match event {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                        if let Some(node) = nodes.get_mut(&peer_id) {
                            node.dialing = false;
                            node.connected = true;
                            node.report.connected_ms.get_or_insert(now);
                            node.on_probation = node.report.disconnected_ms.is_some();
                        }
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                        if let Some(node) = nodes.get_mut(&peer_id) {
                            node.connected = false;
                            node.subscribed.clear();
                            if node.on_probation {
                                node.on_probation = false;
                                node.refused(now);
                            }
                            node.report.disconnected_ms.get_or_insert(now);
                        }
                    }
                    SwarmEvent::OutgoingConnectionError { peer_id: Some(peer_id), error, .. } => {
                        if let Some(node) = nodes.get_mut(&peer_id) {
                            node.dialing = false;
                            if node.report.connected_ms.is_none() {
                                node.report.unreachable = Some(error.to_string());
                            } else {
                                node.refused(now);
                            }
                        }
                    }
                    SwarmEvent::Behaviour(
                        BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic })
                        | BehaviourEvent::TxGossip(gossipsub::Event::Subscribed { peer_id, topic }),
                    ) => {
                        if let (Some(node), Some(kind)) = (nodes.get_mut(&peer_id), names.get(&topic)) {
                            node.subscribed.insert(topic);
                            let name = kind.name().to_string();
                            if !node.report.topics.contains(&name) {
                                node.report.topics.push(name);
                            }
                            if node.on_probation {
                                node.on_probation = false;
                                node.report.readmitted += 1;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    report.nodes = order
        .into_iter()
        .filter_map(|peer| nodes.remove(&peer))
        .map(|node| node.report)
        .collect();
    Ok(report)
}
