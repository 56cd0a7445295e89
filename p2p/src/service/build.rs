//! Building the swarm: transport, gossipsub (validation, message ids, size limits, scoring),
//! identify, req/resp and connection limits.

use std::time::Duration;

use libp2p::{
    Swarm, allow_block_list, connection_limits,
    gossipsub::{self, MessageAuthenticity, MessageId, ValidationMode},
    identify,
    identity::Keypair,
    noise,
    request_response::{self, ProtocolSupport},
    tcp, yamux,
};

use super::Behaviour;
use crate::{
    config::{NetworkParams, P2pConfig},
    error::P2pError,
    reqresp::{REQUEST_TIMEOUT, protocols},
    scoring::{peer_score_params, peer_score_thresholds},
    topics::{GossipKind, Topics},
    transform::SnappyTransform,
};

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

pub(super) fn build_swarm(
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
