//! Building the swarm: transport, gossipsub (validation, message ids, size limits, scoring),
//! identify, Kademlia, req/resp and connection limits.

use std::{num::NonZeroUsize, time::Duration};

use libp2p::{
    Swarm, allow_block_list, connection_limits,
    gossipsub::{self, MessageAuthenticity, MessageId, ValidationMode},
    identify,
    identity::Keypair,
    kad, noise,
    request_response::{self, ProtocolSupport},
    tcp, yamux,
};

use super::Behaviour;
use crate::{
    config::{NetworkParams, P2pConfig},
    error::P2pError,
    reqresp::{Protocols, REQUEST_TIMEOUT},
    scoring::{Colocation, peer_score_params, peer_score_thresholds},
    snappy,
    topics::{GossipKind, Topics, tx_gossip_protocol_prefix},
};

/// Most pending (handshaking) inbound connections.
const MAX_PENDING_INBOUND: u32 = 32;
/// Kademlia query timeout.
const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a message may wait for its verdict and still be forwarded: gossipsub forwards from
/// its message cache, which only spans `history_length` heartbeats.
const VERDICT_BUDGET: Duration = Duration::from_secs(4);

/// Identify: with `announce_addrs` set, peers learn those addresses only. By default identify
/// also sends every listen address, and peers cache them and dial them for requests, so a node
/// behind NAT or a proxy would be dialled at addresses it asked not to be reached on.
fn identify_config(chain_id: u64, key: &Keypair, config: &P2pConfig) -> identify::Config {
    identify::Config::new(format!("/tandem/{chain_id}/1"), key.public())
        .with_agent_version(format!("tandem/{}", env!("CARGO_PKG_VERSION")))
        .with_hide_listen_addrs(!config.announce_addrs.is_empty())
}

/// Heartbeats the message cache spans: at least gossipsub's 5, and enough for
/// [`VERDICT_BUDGET`] at this heartbeat.
fn history_length(heartbeat: Duration) -> usize {
    let heartbeats = VERDICT_BUDGET.as_millis() / heartbeat.as_millis().max(1);
    usize::try_from(heartbeats).unwrap_or(usize::MAX).max(5)
}

/// Content-addressed message id over the decompressed bytes: the same message from any path,
/// however it was (re-)compressed, is one message, so gossipsub's duplicate cache drops copies
/// before validation; validation refuses non-canonical protobuf, so the decompressed bytes are
/// the content. A frame that does not decompress within its own topic's limit (a tx frame that
/// would expand to megabytes is never expanded here, on the swarm task, before any rate limit)
/// gets an id over its raw bytes under another domain, and validation rejects it. SHA-256 (with the CPU's
/// SHA extensions) because it runs on the swarm task over every message; keccak there cost
/// ~2 ms per MiB.
fn message_id(topics: &Topics, message: &gossipsub::Message) -> MessageId {
    use sha2::{Digest, Sha256};
    let decompressed = topics
        .kind_of(&message.topic)
        .and_then(|kind| snappy::decompress(kind, &message.data).ok());
    let (domain, body): (&[u8], &[u8]) = match &decompressed {
        Some(data) => (b"valid_snappy", data),
        None => (b"invalid_snappy", &message.data),
    };
    let digest = Sha256::new()
        .chain_update(domain)
        .chain_update(message.topic.as_str().as_bytes())
        .chain_update(body)
        .finalize();
    MessageId::from(&digest[..20])
}

/// One gossipsub instance for `kinds`. Txs get their own (own protocol id, so their own
/// substreams and send queues): under tx spam the queue to a slow peer fills with txs and drops
/// them, while consensus messages to that peer still go out on theirs.
fn gossip_behaviour(
    config: &P2pConfig,
    network: &NetworkParams,
    topics: &Topics,
    kinds: &[GossipKind],
    protocol_prefix: Option<String>,
    colocation: Colocation,
) -> Result<gossipsub::Behaviour, P2pError> {
    let mut gossip_config = gossipsub::ConfigBuilder::default();
    gossip_config
        .validate_messages()
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn({
            let topics = topics.clone();
            move |message| message_id(&topics, message)
        })
        .heartbeat_interval(config.heartbeat_interval)
        .history_length(history_length(config.heartbeat_interval))
        .duplicate_cache_time(network.slot_duration.max(Duration::from_secs(30)) * 2);
    if let Some(prefix) = protocol_prefix {
        gossip_config.protocol_id_prefix(prefix);
    }
    let largest = kinds
        .iter()
        .map(|kind| kind.max_transmit_size())
        .max()
        .unwrap_or_default();
    gossip_config.max_transmit_size(largest);
    for kind in kinds {
        gossip_config
            .max_transmit_size_for_topic(kind.max_transmit_size(), topics.hash(*kind).clone());
    }
    let gossip_config = gossip_config
        .build()
        .map_err(|err| P2pError::Build(format!("gossipsub config: {err}")))?;
    // No data transform: payloads stay compressed inside gossipsub and are decompressed by
    // validation, where a bad frame is charged to the peer that forwarded it.
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)
        .map_err(|err| P2pError::Build(format!("gossipsub: {err}")))?;
    gossipsub
        .with_peer_score(
            peer_score_params(
                kinds.iter().map(|kind| (*kind, topics.hash(*kind).clone())),
                network.slot_duration,
                colocation,
            ),
            peer_score_thresholds(),
        )
        .map_err(|err| P2pError::Build(format!("gossipsub scoring: {err}")))?;
    Ok(gossipsub)
}

pub(super) fn build_swarm(
    key: Keypair,
    config: &P2pConfig,
    network: &NetworkParams,
    topics: &Topics,
    protocols: &Protocols,
) -> Result<Swarm<Behaviour>, P2pError> {
    let chain_id = network.domain.chain_id;
    let colocation = Colocation {
        threshold: config.ip_colocation_threshold,
        whitelist: config.ip_colocation_whitelist.clone(),
    };
    let gossipsub = gossip_behaviour(
        config,
        network,
        topics,
        &GossipKind::CONSENSUS,
        None,
        colocation.clone(),
    )?;
    let tx_gossip = gossip_behaviour(
        config,
        network,
        topics,
        &[GossipKind::Tx],
        Some(tx_gossip_protocol_prefix(chain_id)),
        colocation,
    )?;

    let reqresp_config = request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT);
    // Inbound peers may take at most `max_peers − outbound_peers`: the rest is kept for peers
    // this node chooses, so a flood of inbound connections cannot eclipse it.
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_peers))
        .with_max_established_incoming(Some(config.max_peers - config.effective_outbound_peers()))
        .with_max_pending_incoming(Some(MAX_PENDING_INBOUND))
        .with_max_established_per_peer(Some(2));
    let mut kad_config = kad::Config::new(protocols.kad.clone());
    kad_config
        .set_query_timeout(KAD_QUERY_TIMEOUT)
        .set_periodic_bootstrap_interval(None)
        // The node keeps no DHT records or providers: inbound ones are handed to the behaviour's
        // events, which drop them, instead of filling the store (and being re-replicated).
        .set_record_filtering(kad::StoreInserts::FilterBoth);
    if let Some(parallelism) = NonZeroUsize::new(3) {
        kad_config.set_parallelism(parallelism);
    }

    let behaviour = |key: &Keypair| {
        let local = key.public().to_peer_id();
        let mut kad =
            kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_config);
        // Answer DHT queries even before an external address is confirmed (devnets, NAT).
        kad.set_mode(Some(kad::Mode::Server));
        let reqresp =
            |protocol: &libp2p::StreamProtocol| [(protocol.clone(), ProtocolSupport::Full)];
        Behaviour {
            blocked: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            gossipsub,
            tx_gossip,
            identify: identify::Behaviour::new(identify_config(chain_id, key, config)),
            kad,
            txs: request_response::Behaviour::new(reqresp(&protocols.txs), reqresp_config.clone()),
            blocks: request_response::Behaviour::new(
                reqresp(&protocols.blocks),
                reqresp_config.clone(),
            ),
            proposals: request_response::Behaviour::new(
                reqresp(&protocols.proposals),
                reqresp_config.clone(),
            ),
            chain: request_response::Behaviour::new(reqresp(&protocols.chain), reqresp_config),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_addresses_replace_the_listen_addresses_in_identify() {
        let key = Keypair::generate_ed25519();
        let mut config = P2pConfig::default();
        assert!(!identify_config(7, &key, &config).hide_listen_addrs());
        config.announce_addrs = vec!["/ip4/203.0.113.7/tcp/40400".parse().unwrap()];
        assert!(identify_config(7, &key, &config).hide_listen_addrs());
    }

    #[test]
    fn the_message_cache_spans_the_verdict_budget() {
        assert_eq!(history_length(Duration::from_millis(700)), 5);
        assert_eq!(history_length(Duration::from_millis(200)), 20);
        assert_eq!(history_length(Duration::ZERO), 4000);
    }

    /// A valid snappy frame for `data` made of literal chunks only: not what the encoder emits,
    /// the same bytes once decompressed.
    fn literal_frame(data: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        let mut len = data.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                frame.push(byte);
                break;
            }
            frame.push(byte | 0x80);
        }
        for chunk in data.chunks(60) {
            frame.push(((chunk.len() - 1) as u8) << 2);
            frame.extend_from_slice(chunk);
        }
        frame
    }

    fn message(topic: GossipKind, data: Vec<u8>) -> gossipsub::Message {
        gossipsub::Message {
            source: None,
            data,
            sequence_number: None,
            topic: Topics::new(1).hash(topic).clone(),
        }
    }

    fn id_on(topic: GossipKind, data: &[u8]) -> MessageId {
        message_id(&Topics::new(1), &message(topic, data.to_vec()))
    }

    #[test]
    fn a_frame_is_decompressed_only_within_its_own_topics_limit() {
        // Just over a tx's limit, well within a checkpoint's.
        let payload = vec![7u8; GossipKind::Tx.max_message_size() + 1];
        let (canonical, recompressed) = (snappy::compress(&payload), literal_frame(&payload));
        // On the checkpoint topic both frames decompress: one message.
        assert_eq!(
            id_on(GossipKind::CheckpointProposal, &canonical),
            id_on(GossipKind::CheckpointProposal, &recompressed)
        );
        // On the tx topic neither is expanded: ids over the raw frames, which differ.
        assert_ne!(
            id_on(GossipKind::Tx, &canonical),
            id_on(GossipKind::Tx, &recompressed)
        );
    }

    #[test]
    fn a_recompressed_copy_is_the_same_message() {
        let payload: Vec<u8> = (0..500u32).map(|i| (i * 7 % 256) as u8).collect();
        let canonical = snappy::compress(&payload);
        let recompressed = literal_frame(&payload);
        assert_ne!(canonical, recompressed);
        assert_eq!(
            snappy::decompress(GossipKind::Tx, &recompressed).unwrap(),
            payload
        );
        let id = |data: &[u8]| id_on(GossipKind::Tx, data);
        assert_eq!(id(&canonical), id(&recompressed));
        // Other content, or the same content on another topic, is another message.
        let mut other = payload.clone();
        other[0] ^= 1;
        assert_ne!(id(&canonical), id(&snappy::compress(&other)));
        assert_ne!(id(&canonical), id_on(GossipKind::BlockProposal, &canonical));
        // A frame that does not decompress is not confused with the payload it carries.
        assert_ne!(id(&payload), id(&canonical));
    }
}
