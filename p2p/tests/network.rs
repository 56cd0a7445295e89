//! Real libp2p swarms on 127.0.0.1: propagation, handler order, equivocation, penalties and
//! bans, req/resp.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use common::{
    MemoryProvider, Net, NodeOptions, TARGET, TestNode, eventually, spawn_node, wait_for_mesh,
};
use tandem_p2p::{
    GossipKind, HandlersBuilder, P2pError, P2pEvent, RequestError,
    reqresp::{MAX_BLOCKS_PER_REQUEST, ResponseStatus},
};
use tandem_proto::{
    Block, Tx,
    time::{Clock, SystemClock},
};

const PATIENCE: Duration = Duration::from_secs(15);

async fn line(net: &Net, options: Vec<NodeOptions>) -> Vec<TestNode> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_in_a_line_call_the_right_handlers_in_order() {
    let net = Net::now_net();
    let proposer = net.proposer(TARGET).clone();
    let attesters = net.attesters(TARGET);
    // 0: proposer; 1, 3, 5: validators (one attester key each); 2, 4: full nodes.
    let mut options: Vec<NodeOptions> = (0..6).map(|_| NodeOptions::default()).collect();
    for (position, key) in [1, 3, 5].into_iter().zip(attesters) {
        options[position].attester = Some(key);
    }
    let nodes = line(&net, options).await;

    let block0 = net.block(TARGET, 0, vec![net.tx(0), net.tx(1)], &proposer);
    let block1 = net.block(TARGET, 1, vec![net.tx(2)], &proposer);
    let checkpoint = net.checkpoint(TARGET, block1, 0, &proposer);
    nodes[0]
        .handle
        .publish_block_proposal(block0)
        .await
        .unwrap();
    // Separate gossip messages may arrive in any order; wait for the first block everywhere so
    // the log order below is the one p2p guarantees within a checkpoint proposal.
    for node in &nodes[1..] {
        node.recorder.wait_for(1, PATIENCE).await;
    }
    nodes[0]
        .handle
        .publish_checkpoint_proposal(checkpoint.clone())
        .await
        .unwrap();

    for (position, node) in nodes.iter().enumerate().skip(1) {
        let validator = [1, 3, 5].contains(&position);
        let expected_len = if validator { 4 } else { 3 };
        let log = node.recorder.wait_for(expected_len, PATIENCE).await;
        let mut expected = vec![
            "block:10:0".to_owned(),
            "block:10:1".to_owned(),
            "all_nodes:10:0".to_owned(),
        ];
        if validator {
            expected.push("validator:10".to_owned());
        }
        assert_eq!(log, expected, "node {position}");
    }
    // The proposer's own node handles nothing it published itself.
    assert!(nodes[0].recorder.entries().is_empty());

    // The three validators' attestations travel back to the proposer: quorum of 4 is 3.
    let deadline = SystemClock.now().saturating_add(PATIENCE);
    let attestations = nodes[0]
        .handle
        .collect_attestations(&checkpoint.payload, 3, deadline)
        .await
        .unwrap();
    assert_eq!(attestations.len(), 3);
    let mut attesters: Vec<_> = attestations
        .iter()
        .map(|attestation| attestation.recover_attester(&net.domain).unwrap())
        .collect();
    attesters.sort();
    let mut expected: Vec<_> = net
        .attesters(TARGET)
        .iter()
        .map(|key| key.address())
        .collect();
    expected.sort();
    assert_eq!(attesters, expected);

    // An unreachable quorum returns what there is at the deadline.
    let started = std::time::Instant::now();
    let deadline = SystemClock.now().saturating_add(Duration::from_millis(700));
    let partial = nodes[0]
        .handle
        .collect_attestations(&checkpoint.payload, 4, deadline)
        .await
        .unwrap();
    assert_eq!(partial.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_node_without_an_all_nodes_handler_refuses_to_start() {
    let err = HandlersBuilder::default().build().unwrap_err();
    assert!(matches!(err, P2pError::MissingAllNodesHandler));
    assert!(err.to_string().contains("all-nodes checkpoint handler"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocating_checkpoint_is_forwarded_but_not_processed() {
    let net = Net::now_net();
    let proposer = net.proposer(TARGET).clone();
    let nodes = line(&net, (0..3).map(|_| NodeOptions::default()).collect()).await;
    let mut events = [nodes[1].handle.subscribe(), nodes[2].handle.subscribe()];

    let last_block = net.block(TARGET, 0, vec![net.tx(0)], &proposer);
    let first = net.checkpoint(TARGET, last_block.clone(), 0, &proposer);
    // Same slot and last block, different payload (fee modifier): an equivocation.
    let second = net.checkpoint(TARGET, last_block, 50, &proposer);
    nodes[0]
        .handle
        .publish_checkpoint_proposal(first)
        .await
        .unwrap();
    for node in &nodes[1..] {
        node.recorder.wait_for(2, PATIENCE).await;
    }
    nodes[0]
        .handle
        .publish_checkpoint_proposal(second)
        .await
        .unwrap();

    for events in &mut events {
        let equivocation = loop {
            match tokio::time::timeout(PATIENCE, events.recv())
                .await
                .unwrap()
                .unwrap()
            {
                P2pEvent::Equivocation(evidence) => break evidence,
                P2pEvent::CheckpointProposalSeen(_) => {}
            }
        };
        assert_eq!(equivocation.kind, GossipKind::CheckpointProposal);
        assert_eq!(equivocation.slot, TARGET);
        assert_eq!(equivocation.signer, proposer.address());
    }
    // Give stragglers time, then check nothing more was processed or reported.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (node, events) in nodes[1..].iter().zip(&mut events) {
        assert_eq!(
            node.recorder.entries(),
            vec!["block:10:0", "all_nodes:10:0"]
        );
        while let Ok(event) = events.try_recv() {
            assert!(
                !matches!(event, P2pEvent::Equivocation(_)),
                "equivocation reported twice"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_gossip_is_penalized_and_a_persistent_sender_disconnected_then_banned() {
    let net = Net::now_net();
    let victim = spawn_node(&net, NodeOptions::default()).await;
    let attacker = spawn_node(
        &net,
        NodeOptions {
            bootnodes: vec![victim.addr.clone()],
            ..NodeOptions::default()
        },
    )
    .await;
    let attacker_id = attacker.handle.local_peer_id();
    wait_for_mesh(&victim, 1, PATIENCE).await;

    // A proposal signed by someone who is not the slot's proposer: Reject, Mid (10 points).
    let outsider_block = net.block(TARGET, 0, vec![], &net.outsider);
    attacker
        .handle
        .publish_block_proposal(outsider_block)
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || async {
            victim
                .handle
                .peer_reputation(attacker_id)
                .await
                .unwrap()
                .score
                <= -9.0
        })
        .await,
        "wrong proposer not penalized"
    );
    assert!(victim.recorder.entries().is_empty());

    // Garbage bytes: Reject, Low (50 points each) → disconnect below −50.
    let counter = AtomicU8::new(0);
    let send_garbage = async |attacker: &TestNode| {
        // Distinct bytes each time: gossipsub drops repeated content as a duplicate.
        let nonce = counter.fetch_add(1, Ordering::Relaxed);
        attacker
            .handle
            .publish_raw(GossipKind::BlockProposal, vec![0xff, nonce, 0x01, 0x02])
            .await
    };
    send_garbage(&attacker).await.unwrap();
    assert!(
        eventually(PATIENCE, || async {
            let reputation = victim.handle.peer_reputation(attacker_id).await.unwrap();
            reputation.score <= -50.0 && !reputation.connected && !reputation.banned
        })
        .await,
        "garbage sender not disconnected: {:?}",
        victim.handle.peer_reputation(attacker_id).await.unwrap()
    );

    // It comes back and keeps at it: banned, and its connections are refused.
    attacker.handle.dial(victim.addr.clone()).await.unwrap();
    assert!(
        eventually(PATIENCE, || async {
            let _ = send_garbage(&attacker).await;
            victim
                .handle
                .peer_reputation(attacker_id)
                .await
                .unwrap()
                .banned
        })
        .await,
        "garbage sender not banned"
    );
    let _ = attacker.handle.dial(victim.addr.clone()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reputation = victim.handle.peer_reputation(attacker_id).await.unwrap();
    assert!(reputation.banned && !reputation.connected, "{reputation:?}");
    assert!(victim.recorder.entries().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossiped_txs_reach_the_tx_handler() {
    let net = Net::now_net();
    let nodes = line(&net, (0..2).map(|_| NodeOptions::default()).collect()).await;
    let tx = net.tx(42);
    nodes[0].handle.publish_tx(&tx).await.unwrap();
    assert!(
        eventually(PATIENCE, || async {
            nodes[1].recorder.txs.lock().unwrap().contains(&tx.hash())
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_resp_fetches_txs_and_blocks_and_refuses_abuse() {
    let net = Net::now_net();
    let mut provider = MemoryProvider::default();
    let txs: Vec<Tx> = (0..10).map(|nonce| net.tx(nonce)).collect();
    for tx in &txs {
        provider.txs.insert(tx.hash(), tx.clone());
    }
    for number in 1..=200u64 {
        let mut block = Block::default();
        block.header.block_number = number;
        block.txs = vec![txs[(number % 10) as usize].clone()];
        provider.blocks.insert(number, block);
    }
    let server = spawn_node(
        &net,
        NodeOptions {
            provider: Arc::new(provider),
            ..NodeOptions::default()
        },
    )
    .await;
    let client = spawn_node(
        &net,
        NodeOptions {
            bootnodes: vec![server.addr.clone()],
            ..NodeOptions::default()
        },
    )
    .await;
    wait_for_mesh(&client, 1, PATIENCE).await;
    let server_id = Some(server.handle.local_peer_id());

    // Missing txs: three known, one unknown.
    let unknown = net.tx(999).hash();
    let wanted = vec![txs[1].hash(), txs[5].hash(), unknown, txs[7].hash()];
    let mut fetched: Vec<_> = client
        .handle
        .request_txs(server_id, wanted)
        .await
        .unwrap()
        .iter()
        .map(Tx::hash)
        .collect();
    fetched.sort();
    let mut expected = vec![txs[1].hash(), txs[5].hash(), txs[7].hash()];
    expected.sort();
    assert_eq!(fetched, expected);

    // A block range, consecutive from the start; past the tip it is cut short.
    let blocks = client
        .handle
        .request_blocks(server_id, 5, 10)
        .await
        .unwrap();
    let numbers: Vec<u64> = blocks
        .iter()
        .map(|block| block.header.block_number)
        .collect();
    assert_eq!(numbers, (5..15).collect::<Vec<_>>());
    assert_eq!(blocks[0].txs, vec![txs[5].clone()]);
    let tail = client
        .handle
        .request_blocks(server_id, 195, 10)
        .await
        .unwrap();
    assert_eq!(tail.len(), 6);

    // Oversized requests never leave the client.
    assert!(matches!(
        client
            .handle
            .request_blocks(server_id, 1, MAX_BLOCKS_PER_REQUEST + 1)
            .await,
        Err(RequestError::Invalid(_))
    ));
    // Hammering the server: its per-peer budget (128 blocks at once) runs out.
    let mut refused = None;
    for from in (20..200).step_by(32) {
        match client
            .handle
            .request_blocks(server_id, from, MAX_BLOCKS_PER_REQUEST)
            .await
        {
            Ok(_) => {}
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
    }
    assert!(
        matches!(
            refused,
            Some(RequestError::Refused {
                status: ResponseStatus::RateLimited,
                ..
            })
        ),
        "{refused:?}"
    );
    let reputation = server
        .handle
        .peer_reputation(client.handle.local_peer_id())
        .await
        .unwrap();
    assert!(reputation.score < 0.0, "{reputation:?}");
}
