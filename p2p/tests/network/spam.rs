//! Tx spam does not crowd out consensus gossip: every proposal is still judged and handled,
//! and the txs that did not fit are counted.

use tandem_p2p::{GossipKind, P2pConfig, QueueLimit, reqresp::RateLimit};
use tandem_proto::Tx;

use crate::common::{
    Net, NodeOptions, PATIENCE, TARGET, TestNode, eventually, spawn_node, test_config,
    wait_for_mesh,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consensus_gossip_is_all_judged_and_handled_under_tx_spam() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    // A node with a tiny tx queue (32 messages; bytes for one largest tx, the least it may
    // hold) and a tx budget of 200 per peer (the frozen clock never refills it), fed by three
    // spammers and the proposer.
    let mut queues = test_config().queues;
    queues.tx = QueueLimit {
        messages: 32,
        bytes: GossipKind::Tx.max_transmit_size(),
    };
    let victim = spawn_node(
        &net,
        NodeOptions {
            config: P2pConfig {
                queues,
                tx_gossip_rate_limit: RateLimit {
                    burst: 200.0,
                    per_second: 1.0,
                },
                ..test_config()
            },
            ..NodeOptions::default()
        },
    )
    .await;
    let mut peers: Vec<TestNode> = Vec::new();
    for _ in 0..4 {
        peers.push(
            spawn_node(
                &net,
                NodeOptions {
                    bootnodes: vec![victim.addr.clone()],
                    ..NodeOptions::default()
                },
            )
            .await,
        );
    }
    wait_for_mesh(&victim, 4, PATIENCE).await;
    const SPAM_PER_PEER: u64 = 500;
    let spam: Vec<Vec<Tx>> = (0..3u64)
        .map(|spammer| {
            (0..SPAM_PER_PEER)
                .map(|nonce| net.tx(10_000 * (spammer + 1) + nonce))
                .collect()
        })
        .collect();

    let spraying: Vec<_> = peers[1..]
        .iter()
        .zip(spam)
        .map(|(spammer, txs)| {
            let handle = spammer.handle.clone();
            tokio::spawn(async move {
                for tx in &txs {
                    handle.publish_tx(tx).await.unwrap();
                }
            })
        })
        .collect();
    // Consensus gossip in the middle of it.
    let blocks: Vec<_> = (0..3)
        .map(|index| net.block(TARGET, index, vec![net.tx(index.into())], &proposer))
        .collect();
    let checkpoint = net.checkpoint(
        TARGET,
        net.block(TARGET, 3, vec![], &proposer),
        0,
        &proposer,
    );
    for block in blocks {
        peers[0].handle.publish_block_proposal(block).await.unwrap();
    }
    peers[0]
        .handle
        .publish_checkpoint_proposal(checkpoint)
        .await
        .unwrap();
    for spraying in spraying {
        spraying.await.unwrap();
    }

    let log = victim.recorder.wait_for(5, PATIENCE).await;
    assert_eq!(
        log,
        [
            "block:10:0",
            "block:10:1",
            "block:10:2",
            "block:10:3",
            "all_nodes:10:0"
        ]
    );
    let status = victim.handle.status().await.unwrap();
    for kind in [GossipKind::BlockProposal, GossipKind::CheckpointProposal] {
        let counters = status.gossip(kind);
        assert_eq!(counters.queue_dropped, 0, "{kind}: {counters:?}");
        assert_eq!(counters.accepted, counters.received, "{kind}: {counters:?}");
    }
    // Every tx that reached the node got its one verdict; those over budget were counted.
    assert!(
        eventually(PATIENCE, || async {
            let txs = victim.handle.status().await.unwrap().gossip(GossipKind::Tx);
            txs.accepted + txs.ignored + txs.rejected == txs.received
        })
        .await
    );
    // At most 200 txs per peer got past the rate limit (the spam may reach the node through
    // any of its four peers); the rest were counted as rate limited.
    let txs = victim.handle.status().await.unwrap().gossip(GossipKind::Tx);
    assert!(txs.received > 4 * 200, "{txs:?}");
    assert!(txs.accepted + txs.queue_dropped <= 4 * 200, "{txs:?}");
    assert_eq!(
        txs.rate_limited,
        txs.received - txs.accepted - txs.queue_dropped,
        "{txs:?}"
    );
    assert_eq!(txs.rejected, 0, "{txs:?}");
}
