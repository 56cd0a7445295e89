//! Dispatch: in-order lanes per slot, concurrency across slots, deadlines on the injected
//! clock, fetching a missed block, and supervision.

use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tandem_p2p::{GossipKind, HandlerKind, P2pError, P2pEvent, reqresp::RateLimit};
use tandem_proto::time::{Clock, ManualClock, Slot};

use crate::common::{Behaviour, Net, NodeOptions, PATIENCE, TARGET, eventually, line, next_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_that_arrives_before_its_blocks_is_handled_once_they_arrive() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    let mut options: Vec<NodeOptions> = (0..3).map(|_| NodeOptions::default()).collect();
    options[1].attester = Some(net.attesters(TARGET)[0].clone());
    let nodes = line(&net, options).await;

    let block0 = net.block(TARGET, 0, vec![net.tx(0)], &proposer);
    let block1 = net.block(TARGET, 1, vec![net.tx(1)], &proposer);
    let block2 = net.block(TARGET, 2, vec![net.tx(2)], &proposer);
    let checkpoint = net.checkpoint(TARGET, block2, 0, &proposer);
    nodes[0]
        .handle
        .publish_checkpoint_proposal(checkpoint)
        .await
        .unwrap();
    for node in &nodes[1..] {
        assert!(
            eventually(PATIENCE, || async {
                node.handle
                    .status()
                    .await
                    .unwrap()
                    .gossip(GossipKind::CheckpointProposal)
                    .accepted
                    == 1
            })
            .await
        );
        // Accepted, and waiting for blocks 0 and 1: nothing handled yet.
        assert!(
            node.recorder.entries().is_empty(),
            "{:?}",
            node.recorder.entries()
        );
    }
    for block in [block1, block0] {
        nodes[0].handle.publish_block_proposal(block).await.unwrap();
    }
    for (position, node) in nodes.iter().enumerate().skip(1) {
        let mut expected = vec!["block:10:0", "block:10:1", "block:10:2", "all_nodes:10:0"];
        if position == 1 {
            expected.push("validator:10");
        }
        let log = node.recorder.wait_for(expected.len(), PATIENCE).await;
        assert_eq!(log, expected, "node {position}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_ignored_as_early_is_fetched_from_a_peer() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    // Node 2's clock runs a second behind the block window's opening when block 0 comes: it
    // ignores the block (slightly early: no penalty), and gossipsub will never deliver it
    // again. (Its clock then only moves forward, into the window, as a real one would.)
    let behind = ManualClock::new(
        net.windows
            .block_proposal(TARGET)
            .start
            .saturating_sub(Duration::from_millis(1_200)),
    );
    assert!(behind.now() < net.clock.now());
    let mut options: Vec<NodeOptions> = (0..3).map(|_| NodeOptions::default()).collect();
    options[2].clock = Some(behind.clone());
    let nodes = line(&net, options).await;
    let starved = &nodes[2];
    let block0 = net.block(TARGET, 0, vec![net.tx(0)], &proposer);
    nodes[0]
        .handle
        .publish_block_proposal(block0.clone())
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || async {
            starved
                .handle
                .status()
                .await
                .unwrap()
                .gossip(GossipKind::BlockProposal)
                .ignored
                >= 1
        })
        .await
    );
    assert!(starved.recorder.entries().is_empty());
    // In step with the network for the checkpoint: its clock catches up (forward).
    behind.set(net.clock.now());

    // The checkpoint (last block 1) arrives: its lane waits for block 0 and asks a peer.
    let mut events = starved.handle.subscribe();
    nodes[0]
        .handle
        .publish_checkpoint_proposal(net.bare_checkpoint(TARGET, 1, &proposer))
        .await
        .unwrap();
    let fetched = next_event(&mut events, PATIENCE, |event| match event {
        P2pEvent::BlockFetched { slot, index, peer } => Some((slot, index, peer)),
        _ => None,
    })
    .await
    .expect("block 0 fetched");
    assert_eq!((fetched.0, fetched.1), (TARGET, 0));
    let holders = [
        nodes[0].handle.local_peer_id(),
        nodes[1].handle.local_peer_id(),
    ];
    assert!(holders.contains(&fetched.2), "fetched from {}", fetched.2);
    let log = starved.recorder.wait_for(3, PATIENCE).await;
    assert_eq!(log, ["block:10:0", "block:10:1", "all_nodes:10:0"]);
    assert_eq!(
        **starved.recorder.blocks.lock().unwrap()[0].message(),
        block0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetching_a_far_gap_stays_within_the_servers_budget_and_costs_no_points() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    // Node 0, the only peer with data, serves block proposals sparingly: one query at once (a
    // query costs a response's worth of proposals, 4), refilled on the injected clock.
    let mut options: Vec<NodeOptions> = (0..2).map(|_| NodeOptions::default()).collect();
    options[0].config.blocks_rate_limit = RateLimit {
        burst: 4.0,
        per_second: 4.0,
    };
    let server_store = Arc::clone(&options[0].provider);
    let nodes = line(&net, options).await;
    let (server, requester) = (&nodes[0], &nodes[1]);
    let queries = || server_store.proposal_queries.load(Ordering::SeqCst);

    // Only the last block the time model allows (index 9) is gossiped: node 1's lane waits
    // for 0..9 and asks node 0 for a few indices per round (two at a time at one peer).
    let last = net.windows.max_blocks_per_checkpoint() - 1;
    let block = net.block(TARGET, last, vec![net.tx(0)], &proposer);
    server.handle.publish_block_proposal(block).await.unwrap();
    assert!(eventually(PATIENCE, || async { queries() >= 1 }).await);
    // A second's refill: the next round gets one more query served, and one refused again.
    net.clock.advance(std::time::Duration::from_secs(1));
    assert!(
        eventually(PATIENCE, || async { queries() >= 2 }).await,
        "node 1 kept asking: {} queries, {:?}",
        queries(),
        requester
            .handle
            .status()
            .await
            .unwrap()
            .gossip(GossipKind::BlockProposal)
    );
    // Some of those were over node 0's limit and refused, but a well-formed request refused
    // for the server's rate limit costs nothing within a generous allowance.
    let reputation = server
        .handle
        .peer_reputation(requester.handle.local_peer_id())
        .await
        .unwrap();
    assert_eq!(reputation.score, 0.0, "{reputation:?}");
    assert!(reputation.connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_run_side_by_side_and_a_hung_handler_ends_at_its_deadline() {
    let net = Net::new();
    let next = Slot(TARGET.0 + 1);
    let mut options: Vec<NodeOptions> = (0..2).map(|_| NodeOptions::default()).collect();
    options[1].behaviour = Behaviour {
        hang: HashSet::from([(TARGET.0, 0)]),
        ..Behaviour::default()
    };
    let nodes = line(&net, options).await;
    let receiver = &nodes[1];
    let mut events = receiver.handle.subscribe();

    // Slot 10's first block hangs its handler; its second waits behind it, in order.
    for index in [0, 1] {
        let block = net.block(TARGET, index, vec![], net.proposer(TARGET));
        nodes[0].handle.publish_block_proposal(block).await.unwrap();
    }
    assert_eq!(
        receiver.recorder.wait_for(1, PATIENCE).await,
        ["block:10:0"]
    );
    // Both judged before the clock moves (a block validated after it would be late).
    assert!(
        eventually(PATIENCE, || async {
            let counters = receiver.handle.status().await.unwrap();
            counters.gossip(GossipKind::BlockProposal).accepted == 2
        })
        .await
    );

    // Slot 11's proposal window opens (T10 − 10 s): its block is handled although slot 10's
    // handler still hangs.
    net.set_clock(TARGET, -10_000);
    let block = net.block(next, 0, vec![], net.proposer(next));
    nodes[0].handle.publish_block_proposal(block).await.unwrap();
    let log = receiver.recorder.wait_for(2, PATIENCE).await;
    assert_eq!(log, ["block:10:0", "block:11:0"]);

    // Slot 10's attestation deadline (T10 + 36 s) passes: the hung call is cancelled and the
    // block queued behind it is reported, never handled.
    net.set_clock(TARGET, 37_000);
    let missed = next_event(&mut events, PATIENCE, |event| match event {
        P2pEvent::HandlerDeadlineMissed { handler, slot } => Some((handler, slot)),
        _ => None,
    })
    .await;
    assert_eq!(missed, Some((HandlerKind::BlockProposal, TARGET)));
    let unhandled = next_event(&mut events, PATIENCE, |event| match event {
        P2pEvent::Unhandled {
            slot,
            blocks,
            checkpoint,
            ..
        } => Some((slot, blocks, checkpoint)),
        _ => None,
    })
    .await;
    assert_eq!(unhandled, Some((TARGET, 1, false)));
    assert_eq!(receiver.recorder.entries(), ["block:10:0", "block:11:0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_stops_the_service() {
    let net = Net::new();
    let mut options: Vec<NodeOptions> = (0..2).map(|_| NodeOptions::default()).collect();
    options[1].behaviour.panic = true;
    let mut nodes = line(&net, options).await;
    let block = net.block(TARGET, 0, vec![], net.proposer(TARGET));
    nodes[0].handle.publish_block_proposal(block).await.unwrap();
    let outcome = tokio::time::timeout(PATIENCE, &mut nodes[1].task)
        .await
        .expect("the service stops")
        .unwrap();
    match outcome {
        Err(P2pError::TaskFailed { task, reason }) => {
            assert_eq!(task, "dispatcher");
            assert!(reason.contains("block handler told to panic"), "{reason}");
        }
        other => panic!("expected a task failure, got {other:?}"),
    }
    // And with it the node: its handle reports the service gone.
    assert!(matches!(
        nodes[1].handle.status().await,
        Err(P2pError::Stopped)
    ));
}
