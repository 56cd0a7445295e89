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
    }
    // Gossip is not a reliable broadcast: a node that joins the meshes after the tx's push and
    // gossip window misses it. With ≥ 4 mesh peers each among the seven, every mesh component
    // holds ≥ 5 nodes, so there is one and the push reaches all. (With ≥ 1 each, right after
    // the bootnode left, a node outside every mesh that carried the tx missed it under load.)
    for node in &nodes {
        wait_for_mesh(node, 4, PATIENCE).await;
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
    for (position, node) in nodes.iter().enumerate().skip(1) {
        if node.recorder.wait_for_txs(1, PATIENCE).await != 1 {
            let mut network = Vec::new();
            for node in &nodes {
                let status = node.handle.status().await.unwrap();
                network.push((
                    node.handle.local_peer_id(),
                    status.connected,
                    status.mesh_peers,
                ));
            }
            panic!("node {position} never got the tx: {network:#?}");
        }
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
                outbound_peers: Some(2),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_outbound_peers_dials_others_it_discovered() {
    let net = Net::new();
    let bootnode = spawn_node(&net, NodeOptions::default()).await;
    // Quiet peers: they dial only the bootnode and never walk the DHT, so none of them dials
    // the chooser. (When they did, the peers it had not dialed could all be connected to it
    // inbound already, leaving it nobody to dial into a freed outbound slot.) Enough of them
    // that some it knows are left to dial whatever it is connected to; they still answer DHT
    // queries, so the chooser discovers them through the bootnode.
    let mut others = Vec::new();
    for _ in 0..8 {
        others.push(
            spawn_node(
                &net,
                NodeOptions {
                    bootnodes: vec![bootnode.addr.clone()],
                    config: P2pConfig {
                        discovery: false,
                        ..test_config()
                    },
                    ..NodeOptions::default()
                },
            )
            .await,
        );
    }
    for node in &others {
        assert!(eventually(PATIENCE, || async { peers_of(node).await >= 1 }).await);
    }
    // Two outbound slots of six (the floor discovery dials up to; Kademlia's own lookups may
    // dial more), and room for the peers that dial it.
    let chooser = spawn_node(
        &net,
        NodeOptions {
            bootnodes: vec![bootnode.addr.clone()],
            config: P2pConfig {
                max_peers: 6,
                outbound_peers: Some(2),
                ..test_config()
            },
            ..NodeOptions::default()
        },
    )
    .await;
    let outbound = || async { chooser.handle.status().await.unwrap().outbound };
    assert!(
        eventually(PATIENCE, || async { outbound().await >= 2 }).await,
        "{:?}",
        chooser.handle.status().await.unwrap()
    );

    // Every peer it has besides the bootnode goes away.
    let first = chooser.handle.status().await.unwrap().connected;
    let (gone, kept): (Vec<TestNode>, Vec<TestNode>) = others
        .into_iter()
        .partition(|node| first.contains(&node.handle.local_peer_id()));
    assert!(!kept.is_empty());
    let gone_ids: Vec<_> = gone
        .iter()
        .map(|node| node.handle.local_peer_id())
        .collect();
    drop(gone);
    assert!(
        eventually(PATIENCE, || async {
            let status = chooser.handle.status().await.unwrap();
            status.connected.iter().all(|peer| !gone_ids.contains(peer))
        })
        .await
    );
    // It fills its outbound slots again, from the peers it discovered and never dialed.
    assert!(
        eventually(PATIENCE, || async { outbound().await >= 2 }).await,
        "{:?}",
        chooser.handle.status().await.unwrap()
    );
    let now = chooser.handle.status().await.unwrap().connected;
    assert!(
        kept.iter()
            .any(|node| now.contains(&node.handle.local_peer_id())),
        "{now:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_candidate_is_backed_off_not_redialed_every_tick() {
    let net = Net::new();
    let bootnode = spawn_node(&net, NodeOptions::default()).await;
    let quiet = || NodeOptions {
        bootnodes: vec![bootnode.addr.clone()],
        config: P2pConfig {
            outbound_peers: Some(1),
            ..test_config()
        },
        ..NodeOptions::default()
    };
    let doomed = spawn_node(&net, quiet()).await;
    assert!(eventually(PATIENCE, || async { peers_of(&doomed).await >= 1 }).await);
    // Two outbound slots: the bootnode and the one other peer it can discover.
    let chooser = spawn_node(
        &net,
        NodeOptions {
            bootnodes: vec![bootnode.addr.clone()],
            config: P2pConfig {
                outbound_peers: Some(2),
                ..test_config()
            },
            ..NodeOptions::default()
        },
    )
    .await;
    let doomed_id = doomed.handle.local_peer_id();
    let status = || async { chooser.handle.status().await.unwrap() };
    // Connected and identified: a dial candidate (with the bootnode).
    assert!(
        eventually(PATIENCE, || async {
            let status = status().await;
            status.connected.contains(&doomed_id) && status.discovery.candidates == 2
        })
        .await,
        "{:?}",
        status().await
    );

    // It goes away: its port now refuses connections. It stays a candidate (nothing but a
    // dial tells this node it is gone; walks may even return it again until the bootnode's
    // own dial to it fails), and an outbound slot stays free.
    drop(doomed);
    assert!(
        eventually(PATIENCE, || async {
            let status = status().await;
            !status.connected.contains(&doomed_id)
                && status.discovery.dial_failures >= 1
                && status.discovery.backed_off == 1
        })
        .await,
        "{:?}",
        status().await
    );
    let before = status().await.discovery;
    // Twenty maintenance ticks with a slot free: a node that redialed whatever it knew would
    // dial the dead peer about twenty times.
    assert!(
        eventually(PATIENCE, || async {
            status().await.discovery.ticks >= before.ticks + 20
        })
        .await,
        "{:?}",
        status().await
    );
    let after = status().await.discovery;
    let (ticks, redials) = (after.ticks - before.ticks, after.dials - before.dials);
    // Backed off 2, 4, 8, 16 … ticks after each failure (Kademlia's own lookups, which may
    // try it too, fail and push it further): 2 + 4 + 8 + 16 > 20, so at most 4 dials of its
    // own in the first 20 ticks, one more per doubling after that.
    let allowed = (u64::BITS - ticks.leading_zeros()) as u64;
    assert!(
        redials <= allowed,
        "{redials} redials in {ticks} ticks: {after:?}"
    );
    // All dialers together (discovery and Kademlia's lookups) fail far less than once a tick.
    let failures = after.dial_failures - before.dial_failures;
    assert!(
        failures <= ticks / 2,
        "{failures} failures in {ticks} ticks: {after:?}"
    );
    // Kept, not forgotten (it may be the only peer left to dial when it comes back).
    assert_eq!(after.candidates, before.candidates, "{after:?}");
    assert_eq!(status().await.outbound, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_drops_the_connection_before_identify_is_backed_off() {
    let net = Net::new();
    let bootnode = spawn_node(&net, NodeOptions::default()).await;
    let refuser = spawn_node(
        &net,
        NodeOptions {
            bootnodes: vec![bootnode.addr.clone()],
            ..NodeOptions::default()
        },
    )
    .await;
    // More outbound slots than peers to fill them: it keeps dialing what it knows.
    let chooser = spawn_node(
        &net,
        NodeOptions {
            bootnodes: vec![bootnode.addr.clone()],
            config: P2pConfig {
                outbound_peers: Some(4),
                ..test_config()
            },
            ..NodeOptions::default()
        },
    )
    .await;
    let (refuser_id, chooser_id) = (
        refuser.handle.local_peer_id(),
        chooser.handle.local_peer_id(),
    );
    let status = || async { chooser.handle.status().await.unwrap() };
    assert!(
        eventually(PATIENCE, || async {
            let status = status().await;
            status.connected.contains(&refuser_id) && status.discovery.candidates == 2
        })
        .await,
        "{:?}",
        status().await
    );
    assert_eq!(status().await.discovery.dial_failures, 0);
    // The refuser bans it: from now on it completes the handshake of every dial of the
    // chooser and drops the connection at once (its block list applies after the upgrade),
    // like a peer at its inbound cap.
    refuser
        .handle
        .report_peer(chooser_id, PeerAction::Fatal)
        .await
        .unwrap();
    // Every peer is up, so only a connection closed before identify counts as a failed dial,
    // and backs the refuser off.
    assert!(
        eventually(PATIENCE, || async {
            let discovery = status().await.discovery;
            discovery.dial_failures >= 1 && discovery.backed_off == 1
        })
        .await,
        "{:?}",
        status().await
    );
    assert!(refuser.handle.status().await.unwrap().denied_connections >= 1);
}
