//! Spawning test nodes on loopback and waiting for their meshes.
#![allow(dead_code, unreachable_pub)]

use std::{sync::Arc, time::Duration};

use tandem_p2p::{
    GossipKind, HandlersBuilder, Multiaddr, P2pConfig, P2pDeps, P2pError, P2pEvent, P2pHandle,
    P2pService,
};
use tandem_proto::{SigningKey, time::ManualClock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;

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
    /// A clock of its own instead of the network's shared one.
    pub clock: Option<ManualClock>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            attester: None,
            bootnodes: Vec::new(),
            provider: Arc::new(MemoryProvider::default()),
            config: test_config(),
            behaviour: Behaviour::default(),
            clock: None,
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
        clock: Arc::new(options.clock.unwrap_or_else(|| net.clock.clone())),
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
