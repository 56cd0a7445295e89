//! Discovery, reserved outbound slots, the IP colocation penalty and app-score refresh.

use std::time::Duration;

use tandem_p2p::{P2pConfig, scoring::PeerAction};

use crate::common::{
    Net, NodeOptions, PATIENCE, TestNode, eventually, spawn_node, test_config, wait_for_mesh,
};

async fn peers_of(node: &TestNode) -> usize {
    node.handle.status().await.unwrap().connected.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_know_only_a_bootnode_find_each_other_and_outlive_it() {
    let net = Net::new();
    let bootnode = spawn_node(&net, NodeOptions::default()).await;
    let mut nodes = Vec::new();
    for _ in 1..8 {
        nodes.push(
            spawn_node(
                &net,
                NodeOptions {
                    bootnodes: vec![bootnode.addr.clone()],
                    ..NodeOptions::default()
                },
            )
            .await,
        );
    }
    // ≥ 4 peers each, the bootnode among them: every node has ≥ 3 neighbours among the other
    // seven, so each component without the bootnode has ≥ 4 of the 7 nodes — there is one.
    // (With ≥ 3 peers each the seven could split into two components and the bootnode's
    // departure would partition the network: the test failed that way about one run in three.)
    for node in &nodes {
        assert!(
            eventually(PATIENCE, || async { peers_of(node).await >= 4 }).await,
            "a node found only {} peers",
            peers_of(node).await
        );
    }
    // Each dialed the bootnode; every other link was dialed by one of its ends after
    // discovering the other: with ≥ 2 such links per node, at least 7 of them.
    let mut outbound = 0;
    for node in &nodes {
        outbound += node.handle.status().await.unwrap().outbound;
    }
    assert!(outbound >= 7 + 7, "{outbound} outbound connections");

    drop(bootnode);
    for node in &nodes {
        assert!(
            eventually(PATIENCE, || async { peers_of(node).await >= 3 }).await,
            "a node lost its peers with the bootnode"
        );
        wait_for_mesh(node, 1, PATIENCE).await;
    }
    // Still one network: a tx from the first reaches every other.
    let tx = net.tx(1);
    let published = nodes[0].handle.publish_tx(&tx).await;
    assert_eq!(
        published,
        Ok(()),
        "{:?}",
        nodes[0].handle.status().await.unwrap()
    );
    for node in &nodes[1..] {
        assert_eq!(node.recorder.wait_for_txs(1, PATIENCE).await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_peers_cannot_take_the_reserved_outbound_slots() {
    let net = Net::new();
    // Three slots, two reserved for peers it dials: one inbound peer at most.
    let guarded = spawn_node(
        &net,
        NodeOptions {
            config: P2pConfig {
                max_peers: 3,
                outbound_peers: 2,
                ..test_config()
            },
            ..NodeOptions::default()
        },
    )
    .await;
    // Three nodes that know it and a hub; the one it lets in tells it about the others.
    let hub = spawn_node(&net, NodeOptions::default()).await;
    let mut dialers = Vec::new();
    for _ in 0..3 {
        dialers.push(
            spawn_node(
                &net,
                NodeOptions {
                    bootnodes: vec![guarded.addr.clone(), hub.addr.clone()],
                    ..NodeOptions::default()
                },
            )
            .await,
        );
    }
    // It fills its outbound slots itself, with peers it discovered, and never holds more than
    // one inbound.
    assert!(
        eventually(PATIENCE, || async {
            let status = guarded.handle.status().await.unwrap();
            assert!(status.inbound <= 1, "{status:?}");
            status.outbound == 2 && status.denied_connections >= 1
        })
        .await,
        "{:?}",
        guarded.handle.status().await.unwrap()
    );
    assert!(guarded.handle.status().await.unwrap().connected.len() <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_peers_behind_one_ip_get_the_colocation_penalty() {
    let net = Net::new();
    let strict = spawn_node(
        &net,
        NodeOptions {
            config: P2pConfig {
                ip_colocation_threshold: 1,
                ..test_config()
            },
            ..NodeOptions::default()
        },
    )
    .await;
    let lenient = spawn_node(&net, NodeOptions::default()).await;
    let mut peers = Vec::new();
    for _ in 0..3 {
        peers.push(
            spawn_node(
                &net,
                NodeOptions {
                    bootnodes: vec![strict.addr.clone(), lenient.addr.clone()],
                    ..NodeOptions::default()
                },
            )
            .await,
        );
    }
    for node in [&strict, &lenient] {
        assert!(eventually(PATIENCE, || async { peers_of(node).await >= 4 }).await);
    }
    // Three of its peers share 127.0.0.1 with each other (and with `lenient`): four on one IP,
    // three over the threshold of 1 → −50 × 3² each, far beyond what topics can earn.
    for peer in &peers {
        let id = peer.handle.local_peer_id();
        assert!(
            eventually(PATIENCE, || async {
                let score = strict
                    .handle
                    .peer_reputation(id)
                    .await
                    .unwrap()
                    .gossip_score;
                score.is_some_and(|score| score <= -400.0)
            })
            .await,
            "{:?}",
            strict.handle.peer_reputation(id).await.unwrap()
        );
        let lenient_score = lenient
            .handle
            .peer_reputation(id)
            .await
            .unwrap()
            .gossip_score;
        assert!(
            lenient_score.is_some_and(|score| score >= 0.0),
            "below the default threshold of 8: {lenient_score:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossipsub_follows_the_app_score_as_it_decays() {
    let net = Net::new();
    let node = spawn_node(&net, NodeOptions::default()).await;
    let peer = spawn_node(
        &net,
        NodeOptions {
            bootnodes: vec![node.addr.clone()],
            ..NodeOptions::default()
        },
    )
    .await;
    wait_for_mesh(&node, 1, PATIENCE).await;
    let id = peer.handle.local_peer_id();
    let gossip_score = || async { node.handle.peer_reputation(id).await.unwrap().gossip_score };
    for _ in 0..3 {
        node.handle
            .report_peer(id, PeerAction::MidToleranceError)
            .await
            .unwrap();
    }
    // −30 app points × weight 10.
    assert!(
        eventually(PATIENCE, || async {
            gossip_score().await.is_some_and(|score| score <= -250.0)
        })
        .await,
        "{:?}",
        gossip_score().await
    );
    // Half an hour later the app score has decayed to ~−1.3: maintenance passes that on.
    net.clock.advance(Duration::from_secs(30 * 60));
    assert!(
        eventually(PATIENCE, || async {
            gossip_score().await.is_some_and(|score| score >= -20.0)
        })
        .await,
        "{:?}",
        gossip_score().await
    );
}
