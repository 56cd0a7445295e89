//! Propagation, handler order, attestation collection, equivocation, stripped relays,
//! penalties, refusals and bans.

use std::{sync::Arc, time::Duration};

use tandem_p2p::{
    CollectedAttestation, GossipInvalid, GossipKind, HandlersBuilder, P2pError, P2pEvent,
    PublishError, scoring::PeerAction,
};
use tandem_proto::{B256, CheckpointProposal, Signature, WireMessage, time::Clock};
use tokio::sync::Notify;

use crate::common::{
    Net, NodeOptions, PATIENCE, TARGET, TestNode, eventually, line, next_event, spawn_node,
    wait_for_mesh,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_in_a_line_call_the_right_handlers_in_order() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    let attesters = net.attesters(TARGET);
    // 0: proposer; 1, 3, 5: validators (one attester key each); 2, 4: full nodes.
    let mut options: Vec<NodeOptions> = (0..6).map(|_| NodeOptions::default()).collect();
    for (position, key) in [1, 3, 5].into_iter().zip(attesters.clone()) {
        options[position].attester = Some(key);
    }
    let nodes = line(&net, options).await;

    let block0 = net.block(TARGET, 0, vec![net.tx(0), net.tx(1)], &proposer);
    let block1 = net.block(TARGET, 1, vec![net.tx(2)], &proposer);
    let checkpoint = net.checkpoint(TARGET, block1, 0, &proposer);
    // Two gossip messages may arrive in either order; the lanes hand them out in order anyway.
    nodes[0]
        .handle
        .publish_block_proposal(block0)
        .await
        .unwrap();
    nodes[0]
        .handle
        .publish_checkpoint_proposal(checkpoint.clone())
        .await
        .unwrap();

    for (position, node) in nodes.iter().enumerate().skip(1) {
        let validator = [1, 3, 5].contains(&position);
        let mut expected = vec![
            "block:10:0".to_owned(),
            "block:10:1".to_owned(),
            "all_nodes:10:0".to_owned(),
        ];
        if validator {
            expected.push("validator:10".to_owned());
        }
        let log = node.recorder.wait_for(expected.len(), PATIENCE).await;
        assert_eq!(log, expected, "node {position}");
    }
    // The proposer's own node handles nothing it published itself.
    assert!(nodes[0].recorder.entries().is_empty());

    // The three validators' attestations travel back to the proposer (quorum of 4 is 3), with
    // their attesters, in committee order.
    let deadline = net.clock.now().saturating_add(PATIENCE);
    let collected = nodes[0]
        .handle
        .collect_attestations(&checkpoint.payload, 3, deadline)
        .await
        .unwrap();
    let attesters_in_order: Vec<_> = collected
        .iter()
        .map(|CollectedAttestation { attester, .. }| *attester)
        .collect();
    let committee_order: Vec<_> = net
        .keys
        .iter()
        .map(|key| key.address())
        .filter(|address| *address != proposer.address())
        .collect();
    assert_eq!(attesters_in_order, committee_order);
    for CollectedAttestation {
        attester,
        attestation,
    } in &collected
    {
        assert_eq!(attestation.recover_attester(&net.domain), Ok(*attester));
        assert_eq!(attestation.payload, checkpoint.payload);
    }

    // An unreachable quorum returns what there is when the (injected) clock reaches the
    // deadline, and not before.
    let deadline = net.clock.now().saturating_add(Duration::from_secs(1));
    let waiting = tokio::spawn({
        let handle = nodes[0].handle.clone();
        let payload = checkpoint.payload.clone();
        let clock = net.clock.clone();
        async move {
            let partial = handle.collect_attestations(&payload, 4, deadline).await;
            (partial, clock.now())
        }
    });
    net.clock.advance(Duration::from_secs(2));
    let (partial, returned_at) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(partial.unwrap().len(), 3);
    assert!(returned_at >= deadline, "returned before the deadline");
}

#[test]
fn a_node_needs_both_mandatory_handlers() {
    let err = HandlersBuilder::default().build().unwrap_err();
    assert!(
        matches!(err, P2pError::MissingBlockProposalHandler),
        "{err}"
    );
    assert!(err.to_string().contains("block proposal handler"));
    struct Nothing;
    impl tandem_p2p::BlockProposalHandler for Nothing {
        fn on_block_proposal(
            &self,
            _: tandem_p2p::Verified<tandem_proto::BlockProposal>,
            _: tandem_proto::time::Timestamp,
        ) -> futures::future::BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }
    let err = HandlersBuilder::default()
        .block_proposal(std::sync::Arc::new(Nothing))
        .build()
        .unwrap_err();
    assert!(matches!(err, P2pError::MissingAllNodesHandler), "{err}");
    assert!(err.to_string().contains("all-nodes checkpoint handler"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocating_checkpoint_is_forwarded_with_evidence_but_not_processed() {
    let net = Net::new();
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
    // The proposer's node would refuse to send it (an own equivocation): it goes out raw, as
    // from a second machine holding the same key.
    assert_eq!(
        nodes[0]
            .handle
            .publish_checkpoint_proposal(second.clone())
            .await,
        Err(PublishError::OwnEquivocation)
    );
    nodes[0]
        .handle
        .publish_raw(GossipKind::CheckpointProposal, second.to_wire_bytes())
        .await
        .unwrap();

    for (node, events) in nodes[1..].iter().zip(&mut events) {
        let evidence = next_event(events, PATIENCE, |event| match event {
            P2pEvent::Equivocation(evidence) => Some(evidence),
            _ => None,
        })
        .await
        .expect("equivocation reported");
        assert_eq!(evidence.kind(), GossipKind::CheckpointProposal);
        assert_eq!(evidence.slot(), TARGET);
        assert_eq!(evidence.signer, proposer.address());
        assert_eq!(evidence.verify(&net.domain), Ok(()));
        // The event is sent when the pool admits the second proposal, which is never
        // dispatched: the log is final here.
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

/// Waits until `node` judged `count` messages on `kind`'s topic.
async fn judged(node: &TestNode, kind: GossipKind, count: u64) -> bool {
    eventually(PATIENCE, || async {
        let counters = node.handle.status().await.unwrap().gossip(kind);
        counters.accepted + counters.ignored + counters.rejected >= count
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripped_relay_first_cannot_shadow_the_honest_proposal() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    // A full mesh of five: 0 proposes; 1 and 2 got the proposals first and relay stripped
    // copies (one strips the block's txs, one the checkpoint's last block); 3 and 4 are honest.
    let mut nodes: Vec<TestNode> = Vec::new();
    for _ in 0..5 {
        let bootnodes = nodes.iter().map(|node| node.addr.clone()).collect();
        nodes.push(
            spawn_node(
                &net,
                NodeOptions {
                    bootnodes,
                    ..NodeOptions::default()
                },
            )
            .await,
        );
    }
    for node in &nodes {
        // Every pair meshed: the relays reach the honest nodes directly (nobody else would
        // forward what they send).
        wait_for_mesh(node, 4, PATIENCE).await;
    }
    let block0 = net.block(TARGET, 0, vec![net.tx(0), net.tx(1)], &proposer);
    let block1 = net.block(TARGET, 1, vec![net.tx(2)], &proposer);
    let checkpoint = net.checkpoint(TARGET, block1.clone(), 0, &proposer);

    // Same signed payloads as the proposer's, not what the proposer sent.
    let mut stripped_block = block0.clone();
    stripped_block.txs.clear();
    let mut stripped_checkpoint = checkpoint.clone();
    stripped_checkpoint.last_block = None;
    nodes[1]
        .handle
        .publish_raw(GossipKind::BlockProposal, stripped_block.to_wire_bytes())
        .await
        .unwrap();
    nodes[2]
        .handle
        .publish_raw(
            GossipKind::CheckpointProposal,
            stripped_checkpoint.to_wire_bytes(),
        )
        .await
        .unwrap();
    for node in &nodes[3..] {
        assert!(judged(node, GossipKind::BlockProposal, 1).await);
        assert!(judged(node, GossipKind::CheckpointProposal, 1).await);
    }
    // Then the honest proposal.
    nodes[0]
        .handle
        .publish_block_proposal(block0.clone())
        .await
        .unwrap();
    nodes[0]
        .handle
        .publish_checkpoint_proposal(checkpoint)
        .await
        .unwrap();

    for node in &nodes[3..] {
        let log = node.recorder.wait_for(3, PATIENCE).await;
        assert_eq!(log, ["block:10:0", "block:10:1", "all_nodes:10:0"]);
        let blocks = node.recorder.blocks.lock().unwrap().clone();
        assert_eq!(**blocks[0].message(), block0, "the full first block");
        assert_eq!(**blocks[1].message(), block1, "the full last block");
        for relay in &nodes[1..3] {
            let reputation = node
                .handle
                .peer_reputation(relay.handle.local_peer_id())
                .await
                .unwrap();
            assert!(
                reputation.score <= -50.0,
                "relay not penalised: {reputation:?}"
            );
            assert!(reputation.refused, "{reputation:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_gossip_is_penalized_disconnected_refused_until_recovered_and_banned() {
    let net = Net::new();
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
    // Both ends: the attacker publishes only once it knows the victim's subscriptions.
    wait_for_mesh(&victim, 1, PATIENCE).await;
    wait_for_mesh(&attacker, 1, PATIENCE).await;
    let reputation = || async { victim.handle.peer_reputation(attacker_id).await.unwrap() };

    // A proposal signed by someone who is not the slot's proposer: Reject, Mid (10 points).
    // (Raw: its own node would refuse to publish it.)
    let outsider_block = net.block(TARGET, 0, vec![], &net.outsider);
    attacker
        .handle
        .publish_raw(GossipKind::BlockProposal, outsider_block.to_wire_bytes())
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || async { reputation().await.score <= -9.0 }).await,
        "wrong proposer not penalized"
    );
    assert!(victim.recorder.entries().is_empty());

    // A frame that is not snappy: Reject, Low (50 points) → −60: disconnected, refused.
    attacker
        .handle
        .publish_raw_frame(GossipKind::BlockProposal, vec![0xff, 0x00, 0x01, 0x02])
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || async {
            let reputation = reputation().await;
            reputation.score <= -50.0 && !reputation.connected && reputation.refused
        })
        .await,
        "garbage sender not disconnected: {:?}",
        reputation().await
    );
    assert!(!reputation().await.banned);

    // It comes back: refused at the door while its score is that low.
    attacker.handle.dial(victim.addr.clone()).await.unwrap();
    assert!(
        eventually(PATIENCE, || async {
            victim.handle.status().await.unwrap().denied_connections >= 1
        })
        .await,
        "reconnect not refused"
    );
    assert!(!reputation().await.connected);

    // Five minutes later its score decayed above the threshold: welcome back.
    net.clock.advance(Duration::from_secs(5 * 60));
    assert!(
        eventually(PATIENCE, || async {
            // Refused while its score is still low; the connection itself is what is awaited.
            let _ = attacker.handle.dial(victim.addr.clone()).await;
            reputation().await.connected
        })
        .await,
        "recovered peer still refused: {:?}",
        reputation().await
    );

    // A fault found after acceptance, reported as fatal: banned, its connections refused.
    victim
        .handle
        .report_peer(attacker_id, PeerAction::Fatal)
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || async {
            let reputation = reputation().await;
            reputation.banned && !reputation.connected
        })
        .await,
        "{:?}",
        reputation().await
    );
    let denied = victim.handle.status().await.unwrap().denied_connections;
    attacker.handle.dial(victim.addr.clone()).await.unwrap();
    assert!(
        eventually(PATIENCE, || async {
            victim.handle.status().await.unwrap().denied_connections > denied
        })
        .await
    );
    assert!(reputation().await.banned && !reputation().await.connected);
    assert!(victim.recorder.entries().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossiped_txs_reach_the_tx_handler_and_bad_own_txs_are_refused() {
    let net = Net::new();
    let nodes = line(&net, (0..2).map(|_| NodeOptions::default()).collect()).await;
    // A submitted tx whose signature does not recover: peers would reject it (and charge
    // this node); it is refused here and never sent.
    let mut forged = net.tx(41);
    forged.signature = Signature::default();
    assert!(matches!(
        nodes[0].handle.publish_tx(&forged).await,
        Err(PublishError::WouldBeRejected(GossipInvalid::BadSignature(
            _
        )))
    ));
    let tx = net.tx(42);
    nodes[0].handle.publish_tx(&tx).await.unwrap();
    assert_eq!(nodes[1].recorder.wait_for_txs(1, PATIENCE).await, 1);
    assert_eq!(*nodes[1].recorder.txs.lock().unwrap(), vec![tx.hash()]);
    // One topic from one peer arrives in order: the forged tx would have come first.
    let status = nodes[1].handle.status().await.unwrap();
    assert_eq!(status.gossip(GossipKind::Tx).received, 1);
    assert_eq!(status.gossip(GossipKind::Tx).rejected, 0);
    let reputation = nodes[1]
        .handle
        .peer_reputation(nodes[0].handle.local_peer_id())
        .await
        .unwrap();
    assert_eq!(reputation.score, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_peers_would_reject_is_reported() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    let mut options: Vec<NodeOptions> = (0..2).map(|_| NodeOptions::default()).collect();
    options[1].attester = Some(net.attesters(TARGET)[0].clone());
    options[1].behaviour.bad_attestation = true;
    let nodes = line(&net, options).await;
    let mut events = nodes[1].handle.subscribe();
    nodes[0]
        .handle
        .publish_checkpoint_proposal(net.bare_checkpoint(TARGET, 0, &proposer))
        .await
        .unwrap();
    let failure = next_event(&mut events, PATIENCE, |event| match event {
        P2pEvent::AttestationNotPublished { slot, error } => Some((slot, error)),
        _ => None,
    })
    .await;
    // Refused by the checks every peer would run, before it was pooled or sent.
    assert!(
        matches!(
            failure,
            Some((
                TARGET,
                PublishError::WouldBeRejected(GossipInvalid::BadSignature(_))
            ))
        ),
        "{failure:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_without_peers_until_its_deadline_is_reported() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    let gate = Arc::new(Notify::new());
    let mut options: Vec<NodeOptions> = (0..2).map(|_| NodeOptions::default()).collect();
    options[1].attester = Some(net.attesters(TARGET)[0].clone());
    options[1].behaviour.attestation_gate = Some(Arc::clone(&gate));
    let mut nodes = line(&net, options).await;
    let mut events = nodes[1].handle.subscribe();
    nodes[0]
        .handle
        .publish_checkpoint_proposal(net.bare_checkpoint(TARGET, 0, &proposer))
        .await
        .unwrap();
    nodes[1].recorder.wait_for(3, PATIENCE).await;
    // Its only peer goes away while the validator handler works.
    drop(nodes.remove(0));
    let validator = &nodes[0];
    assert!(
        eventually(PATIENCE, || async {
            validator
                .handle
                .status()
                .await
                .unwrap()
                .connected
                .is_empty()
        })
        .await
    );
    gate.notify_one();
    let log = validator.recorder.wait_for(4, PATIENCE).await;
    assert_eq!(
        log,
        [
            "block:10:0",
            "all_nodes:10:0",
            "validator:10",
            "attested:10"
        ]
    );
    // No peer on the attestation topic until the slot's attestation deadline passes.
    net.clock.set(
        net.windows
            .attestation_deadline(TARGET)
            .saturating_add(Duration::from_secs(1)),
    );
    let failure = next_event(&mut events, PATIENCE, |event| match event {
        P2pEvent::AttestationNotPublished { slot, error } => Some((slot, error)),
        _ => None,
    })
    .await;
    assert_eq!(failure, Some((TARGET, PublishError::NoPeers)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_checkpoint_peers_would_reject_is_refused_before_it_is_pooled_or_sent() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    let nodes = line(&net, vec![NodeOptions::default(), NodeOptions::default()]).await;
    // A sequencer bug: the checkpoint's archive is not its last block's.
    let mut payload = net.bare_checkpoint(TARGET, 0, &proposer).payload;
    payload.archive = B256::repeat_byte(7);
    let mismatched = CheckpointProposal::sign(
        payload,
        Some(net.block(TARGET, 0, vec![], &proposer)),
        &net.domain,
        &proposer,
    );
    let refused = nodes[0]
        .handle
        .publish_checkpoint_proposal(mismatched)
        .await;
    assert_eq!(
        refused,
        Err(PublishError::WouldBeRejected(
            GossipInvalid::LastBlockMismatch("archive differs")
        ))
    );
    // Not pooled (had it been, the honest one would be refused as an own equivocation) and
    // never sent (the peer rejected nothing and holds nothing against this node).
    nodes[0]
        .handle
        .publish_checkpoint_proposal(net.bare_checkpoint(TARGET, 0, &proposer))
        .await
        .unwrap();
    let log = nodes[1].recorder.wait_for(2, PATIENCE).await;
    assert_eq!(log, ["block:10:0", "all_nodes:10:0"]);
    let status = nodes[1].handle.status().await.unwrap();
    assert_eq!(status.gossip(GossipKind::CheckpointProposal).rejected, 0);
    let reputation = nodes[1]
        .handle
        .peer_reputation(nodes[0].handle.local_peer_id())
        .await
        .unwrap();
    assert_eq!(reputation.score, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_messages_the_pool_would_flag_are_refused_and_never_sent() {
    let net = Net::new();
    let proposer = net.proposer(TARGET).clone();
    let attesters = net.attesters(TARGET);
    let nodes = line(&net, vec![NodeOptions::default(), NodeOptions::default()]).await;
    let publisher = &nodes[0].handle;
    let block = net.block(TARGET, 0, vec![], &proposer);
    publisher.publish_block_proposal(block).await.unwrap();

    // A checkpoint whose last block is a different block (10, 0): every peer would reject it
    // as a last-block equivocation, and the slot would be lost.
    let other_block = net.block(TARGET, 0, vec![net.tx(0)], &proposer);
    let sunk = net.checkpoint(TARGET, other_block.clone(), 0, &proposer);
    assert_eq!(
        publisher.publish_checkpoint_proposal(sunk).await,
        Err(PublishError::WouldBeRejected(
            GossipInvalid::LastBlockEquivocated
        ))
    );
    // That block alone: an own equivocation.
    assert_eq!(
        publisher.publish_block_proposal(other_block).await,
        Err(PublishError::OwnEquivocation)
    );
    // Neither was pooled: the honest checkpoint (last block already published) goes out.
    let honest = net.bare_checkpoint(TARGET, 0, &proposer);
    publisher
        .publish_checkpoint_proposal(honest.clone())
        .await
        .unwrap();

    // Attestations: a second one for the slot by the same key is refused; one by another key
    // after it shows what went out.
    let other = net.checkpoint(
        TARGET,
        net.block(TARGET, 0, vec![], &proposer),
        1,
        &proposer,
    );
    publisher
        .publish_attestation(net.attestation(&honest, &attesters[0]))
        .await
        .unwrap();
    assert_eq!(
        publisher
            .publish_attestation(net.attestation(&other, &attesters[0]))
            .await,
        Err(PublishError::OwnEquivocation)
    );
    publisher
        .publish_attestation(net.attestation(&honest, &attesters[1]))
        .await
        .unwrap();

    let log = nodes[1].recorder.wait_for(2, PATIENCE).await;
    assert_eq!(log, ["block:10:0", "all_nodes:10:0"]);
    let peer = &nodes[1].handle;
    assert!(
        eventually(PATIENCE, || async {
            peer.status()
                .await
                .unwrap()
                .gossip(GossipKind::CheckpointAttestation)
                .accepted
                == 2
        })
        .await
    );
    // Gossip from one peer on one topic arrives in order: anything refused above would have
    // arrived before what followed it.
    let status = peer.status().await.unwrap();
    for kind in [
        GossipKind::BlockProposal,
        GossipKind::CheckpointProposal,
        GossipKind::CheckpointAttestation,
    ] {
        let counters = status.gossip(kind);
        assert_eq!(counters.rejected, 0, "{kind:?}");
        assert_eq!(counters.ignored, 0, "{kind:?}");
    }
    assert_eq!(status.gossip(GossipKind::BlockProposal).received, 1);
    assert_eq!(status.gossip(GossipKind::CheckpointProposal).received, 1);
    assert_eq!(status.gossip(GossipKind::CheckpointAttestation).received, 2);
    assert_eq!(
        peer.peer_reputation(publisher.local_peer_id())
            .await
            .unwrap()
            .score,
        0.0
    );
}
