//! The handlers on real libp2p swarms (127.0.0.1, port 0) over real stores: a valid checkpoint
//! proposal becomes a proposed checkpoint everywhere and gets one attestation per committee
//! member; tampered proposals are refused with the matching reason, unattested, recorded
//! against the proposer and not charged to the relaying peer; a checkpoint that arrives before one of its blocks is handled
//! once the block arrives.

mod common;

use std::{sync::Arc, time::Duration};

use common::{
    Net, Node, OnAddBlock, PATIENCE, Proposal, TARGET, TestArchive, build, build_on, star,
};
use tandem_p2p::{GossipKind, P2pEvent};
use tandem_proto::{Address, B256, WireMessage, time::Slot};
use tandem_validator::{
    BlockOutcome, BlockRejection, CheckpointAccepted, CheckpointRejection, ValidatorEvent,
};

/// Polls `check` every 20 ms until it holds; fails after [`PATIENCE`] (for state no event
/// announces: pool contents, peer scores).
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn checkpoint_verdict(
    node: &mut Node,
    slot: Slot,
) -> Result<CheckpointAccepted, CheckpointRejection> {
    node.next_event(|event| match event {
        ValidatorEvent::Checkpoint {
            slot: s, outcome, ..
        } if *s == slot => Some(outcome.clone()),
        _ => None,
    })
    .await
}

async fn block_verdict(node: &mut Node, slot: Slot, index: u32) -> BlockOutcome {
    node.next_event(|event| match event {
        ValidatorEvent::Block {
            slot: s,
            index: i,
            outcome,
            ..
        } if *s == slot && *i == index => Some(outcome.clone()),
        _ => None,
    })
    .await
}

async fn attestation_decision(node: &mut Node, slot: Slot) -> Option<&'static str> {
    node.next_event(|event| match event {
        ValidatorEvent::Attestation {
            slot: s, skipped, ..
        } if *s == slot => Some(*skipped),
        _ => None,
    })
    .await
}

/// The validator did not attest `slot`'s proposal and did not charge `sender`: the fault is the
/// proposer's, found after gossip accepted the proposal, which a relay could not have checked.
/// The refusal's event is emitted after any charge would have been sent, and the score query
/// goes to the same swarm after it, so an equal score means no charge.
async fn unattested_and_not_charged(
    validator: &mut Node,
    sender: &Node,
    slot: Slot,
    before: f64,
    what: &str,
) {
    assert_eq!(
        attestation_decision(validator, slot).await,
        Some("invalid_proposal"),
        "{what}"
    );
    assert_eq!(
        score_of(validator, sender).await,
        before,
        "{what}: the sending peer is not charged for the proposer's fault"
    );
}

async fn score_of(node: &Node, peer: &Node) -> f64 {
    node.p2p
        .peer_reputation(peer.p2p.local_peer_id())
        .await
        .unwrap()
        .score
}

#[tokio::test]
async fn a_valid_checkpoint_is_proposed_everywhere_and_attested_by_each_committee_member() {
    let net = Net::new();
    let proposer_key = net.proposer(TARGET).clone();
    let attesters: Vec<_> = net
        .keys
        .iter()
        .filter(|key| key.address() != proposer_key.address())
        .cloned()
        .collect();
    let mut keys = vec![Some(proposer_key.clone())];
    keys.extend(attesters.iter().cloned().map(Some));
    keys.push(None);
    let mut nodes = star(&net, keys).await;
    for node in &nodes {
        node.stores.wait_synced_at(0).await;
    }

    // Txs gossiped first reach every pool through the tx handler.
    let txs = vec![
        net.transfer(0, 0, 10),
        net.transfer(1, 0, 11),
        net.transfer(0, 1, 12),
    ];
    for tx in &txs {
        nodes[0].p2p.publish_tx(tx).await.unwrap();
    }
    let full = nodes.len() - 1;
    eventually("txs in the full node's pool", || {
        let pooled = nodes[full].state().reader().pool_len();
        async move { pooled == 3 }
    })
    .await;

    let proposal = build(
        &net,
        &nodes[0].stores,
        TARGET,
        vec![txs[..2].to_vec(), txs[2..].to_vec(), vec![]],
    );
    nodes[0].propose(&proposal).await;

    // Every other node validated and stored it, and applied its blocks.
    let proposer_tip = nodes[0].state().reader().tip();
    for node in &mut nodes[1..] {
        let verdict = checkpoint_verdict(node, TARGET).await;
        assert!(
            matches!(verdict, Ok(CheckpointAccepted::Stored { number: 1 })),
            "{verdict:?}"
        );
        node.stores.wait_synced_at(3).await;
        let tips = node.archiver().tips();
        assert_eq!(tips.proposed_checkpoint.checkpoint.number, 1);
        assert_eq!(tips.proposed_checkpoint.block.number, 3);
        assert_eq!(node.state().reader().tip(), proposer_tip);
        assert_eq!(
            node.state().reader().pool_len(),
            0,
            "mined txs left the pool"
        );
        // Re-executed once, by the block handler.
        assert_eq!(node.state().follower_counts().executed_here, 0);
    }
    // One attestation per committee member other than the proposer...
    for node in &mut nodes[1..full] {
        assert_eq!(attestation_decision(node, TARGET).await, None, "attested");
    }
    let collected = nodes[0]
        .p2p
        .collect_attestations(
            &proposal.checkpoint.payload,
            attesters.len(),
            net.windows.attestation_deadline(TARGET),
        )
        .await
        .unwrap();
    let mut signers: Vec<Address> = collected.iter().map(|c| c.attester).collect();
    signers.sort();
    let mut expected: Vec<Address> = attesters.iter().map(|k| k.address()).collect();
    expected.sort();
    assert_eq!(signers, expected);

    // ...and none from the proposer's node, whose handlers never saw its own proposal.
    let proposer = &mut nodes[0];
    while let Ok(event) = proposer.events.try_recv() {
        assert!(
            !matches!(
                event,
                ValidatorEvent::Block { .. }
                    | ValidatorEvent::Checkpoint { .. }
                    | ValidatorEvent::Attestation { .. }
            ),
            "the proposer's node handled its own proposal: {event:?}"
        );
    }
    // An HA twin delivering the same proposal to it is recognised as its own, unvalidated.
    let own = proposer
        .all_nodes
        .process(
            &proposal.checkpoint,
            proposer_key.address(),
            None,
            common::clock_now(&net),
            net.windows.attestation_deadline(TARGET),
        )
        .await;
    assert!(matches!(own, Ok(CheckpointAccepted::Own)), "{own:?}");
}

/// A two-node rig: a proposer that can sign for any slot (it does not store what it sends) and
/// a validator holding key 1 (proposer of slots 13, 17, …).
async fn rig(net: &Net) -> (Node, Node) {
    let mut nodes = star(net, vec![None, Some(net.keys[1].clone())]).await;
    let validator = nodes.pop().unwrap();
    let proposer = nodes.pop().unwrap();
    validator.stores.wait_synced_at(0).await;
    (proposer, validator)
}

/// A one-block checkpoint for `slot` on genesis, with two transfers.
fn one_block(net: &Net, proposer: &Node, slot: Slot, user: usize) -> Proposal {
    build_on(
        net,
        &proposer.stores,
        slot,
        vec![vec![net.transfer(user, 0, 3), net.transfer(user + 1, 0, 4)]],
        net.proposer(slot).clone(),
    )
}

#[tokio::test]
async fn tampered_blocks_are_refused_unattested_and_their_sender_not_charged() {
    let net = Net::new();
    let (proposer, mut validator) = rig(&net).await;
    type Tamper = fn(&Net, &mut Proposal);
    let cases: [(&str, Slot, Tamper); 3] = [
        ("state root", Slot(10), |net, p| {
            p.blocks[0].header.state_root = B256::repeat_byte(0x42);
            p.resign_block(net, 0);
            p.rebuild_checkpoint(net);
        }),
        ("tx list", Slot(11), |net, p| {
            // One tx dropped, the body hash made to match.
            let block = &mut p.blocks[0];
            block.txs.pop();
            let hashes: Vec<B256> = block.txs.iter().map(tandem_proto::Tx::hash).collect();
            block.header.body_hash = tandem_proto::block_body_hash(&hashes);
            p.resign_block(net, 0);
            p.rebuild_checkpoint(net);
        }),
        ("archive", Slot(12), |net, p| {
            let archive = B256::repeat_byte(0x44);
            p.blocks[0].archive_root = archive;
            p.blocks[0].signature = p.key.sign(
                &net.domain,
                tandem_proto::SignatureKind::BlockProposal,
                p.blocks[0].payload_hash(),
            );
            p.checkpoint.payload.archive = archive;
            p.resign_checkpoint(net);
        }),
    ];
    for (index, (what, slot, tamper)) in cases.into_iter().enumerate() {
        net.enter(slot);
        let before = score_of(&validator, &proposer).await;
        let mut proposal = one_block(&net, &proposer, slot, 2 * index);
        tamper(&net, &mut proposal);
        proposer.publish(&proposal).await;
        match block_verdict(&mut validator, slot, 0).await {
            BlockOutcome::Refused(rejection @ BlockRejection::StateMismatch(_)) => {
                assert!(rejection.is_slashable(), "{what}");
            }
            other => panic!("{what}: {other:?}"),
        }
        match checkpoint_verdict(&mut validator, slot).await {
            Err(CheckpointRejection::LastBlockInvalid {
                reason: "state_mismatch",
                slashable: true,
            }) => {}
            other => panic!("{what}: {other:?}"),
        }
        unattested_and_not_charged(&mut validator, &proposer, slot, before, what).await;
        assert_eq!(
            validator.archiver().tips().proposed.block.number,
            0,
            "{what}"
        );
    }
}

#[tokio::test]
async fn tampered_checkpoints_are_refused_unattested_and_their_sender_not_charged() {
    let net = Net::new();
    let (proposer, mut validator) = rig(&net).await;
    type Tamper = fn(&mut Proposal);
    let cases: [(&str, Slot, &str, Tamper); 2] = [
        ("header", Slot(10), "total_mana_used", |p| {
            p.checkpoint.payload.header.total_mana_used += 1;
        }),
        ("fee", Slot(11), "fee_per_mana", |p| {
            p.checkpoint.payload.header.fee_per_mana += 1;
        }),
    ];
    for (index, (what, slot, field, tamper)) in cases.into_iter().enumerate() {
        net.enter(slot);
        // The previous case's valid block (its checkpoint refused) is pruned as an orphan once
        // its slot's deadline passed; this one builds on genesis again.
        let before = score_of(&validator, &proposer).await;
        let mut proposal = one_block(&net, &proposer, slot, 2 * index);
        tamper(&mut proposal);
        proposal.resign_checkpoint(&net);
        proposer.publish(&proposal).await;
        assert!(
            matches!(
                block_verdict(&mut validator, slot, 0).await,
                BlockOutcome::Stored(_)
            ),
            "{what}: the block itself is valid"
        );
        match checkpoint_verdict(&mut validator, slot).await {
            Err(CheckpointRejection::CheckpointHeaderMismatch { field: got }) => {
                assert_eq!(got, field, "{what}");
            }
            other => panic!("{what}: {other:?}"),
        }
        unattested_and_not_charged(&mut validator, &proposer, slot, before, what).await;
        let tips = validator.archiver().tips();
        assert_eq!(
            tips.proposed_checkpoint.checkpoint.number, 0,
            "{what}: not stored"
        );
    }

    // A modifier beyond ±100 bps cannot even be decoded: gossip rejects it (and charges the
    // sender) before any handler sees it.
    let slot = Slot(12);
    net.enter(slot);
    let before = score_of(&validator, &proposer).await;
    let rejected_before = validator
        .p2p
        .status()
        .await
        .unwrap()
        .gossip(GossipKind::CheckpointProposal)
        .rejected;
    let mut proposal = one_block(&net, &proposer, slot, 4);
    proposal.checkpoint.payload.fee_asset_price_modifier = 101;
    proposal.resign_checkpoint(&net);
    let mut wire = proposal.checkpoint.clone();
    wire.last_block = proposal.blocks.last().cloned();
    proposer
        .p2p
        .publish_raw(GossipKind::CheckpointProposal, wire.to_wire_bytes())
        .await
        .unwrap();
    eventually(
        "out-of-bounds modifier rejected at the gossip stage",
        || async {
            let status = validator.p2p.status().await.unwrap();
            status.gossip(GossipKind::CheckpointProposal).rejected > rejected_before
        },
    )
    .await;
    assert!(score_of(&validator, &proposer).await < before);
    // The handler's own bound (for proposals from other paths) names the reason.
    let verdict = validator
        .all_nodes
        .process(
            &proposal.checkpoint,
            proposal.key.address(),
            None,
            common::clock_now(&net),
            net.windows.attestation_deadline(slot),
        )
        .await;
    assert!(
        matches!(
            verdict,
            Err(CheckpointRejection::InvalidFeeAssetPriceModifier { modifier: 101 })
        ),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn a_checkpoint_that_arrives_before_one_of_its_blocks_is_handled_once_it_arrives() {
    let net = Net::new();
    let (proposer, mut validator) = rig(&net).await;
    let mut seen = validator.p2p.subscribe();
    let proposal = build(
        &net,
        &proposer.stores,
        TARGET,
        vec![
            vec![net.transfer(0, 0, 1)],
            vec![net.transfer(0, 1, 1)],
            vec![net.transfer(0, 2, 1)],
        ],
    );
    // Block 0, then the checkpoint (carrying block 2); block 1 comes last.
    proposer
        .p2p
        .publish_block_proposal(proposal.blocks[0].clone())
        .await
        .unwrap();
    proposer.publish_checkpoint(&proposal).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Ok(P2pEvent::CheckpointProposalSeen(slot))) if slot == TARGET => break,
            Ok(Ok(_)) => {}
            other => panic!("checkpoint proposal never seen: {other:?}"),
        }
    }
    assert!(matches!(
        block_verdict(&mut validator, TARGET, 0).await,
        BlockOutcome::Stored(_)
    ));
    proposer
        .p2p
        .publish_block_proposal(proposal.blocks[1].clone())
        .await
        .unwrap();
    for index in 1..3 {
        let outcome = block_verdict(&mut validator, TARGET, index).await;
        assert!(
            matches!(outcome, BlockOutcome::Stored(_)),
            "{index}: {outcome:?}"
        );
    }
    let verdict = checkpoint_verdict(&mut validator, TARGET).await;
    assert!(
        matches!(verdict, Ok(CheckpointAccepted::Stored { number: 1 })),
        "{verdict:?}"
    );
    assert_eq!(attestation_decision(&mut validator, TARGET).await, None);
    validator.stores.wait_synced_at(3).await;
}

#[tokio::test]
async fn a_block_never_gossiped_is_fetched_from_the_proposers_store() {
    let net = Net::new();
    let (proposer, mut validator) = rig(&net).await;
    let proposal = build(
        &net,
        &proposer.stores,
        TARGET,
        vec![vec![net.transfer(3, 0, 1)], vec![net.transfer(3, 1, 1)]],
    );
    // An honest proposer whose block 0 gossip was lost: it is only in its store.
    proposer.store_own(&proposal).await;
    proposer.publish_checkpoint(&proposal).await;
    for index in 0..2 {
        let outcome = block_verdict(&mut validator, TARGET, index).await;
        assert!(
            matches!(outcome, BlockOutcome::Stored(_)),
            "{index}: {outcome:?}"
        );
    }
    let verdict = checkpoint_verdict(&mut validator, TARGET).await;
    assert!(
        matches!(verdict, Ok(CheckpointAccepted::Stored { number: 1 })),
        "{verdict:?}"
    );
    validator.stores.wait_synced_at(2).await;
    assert_eq!(
        validator.state().reader().tip(),
        proposer.state().reader().tip()
    );
}

#[tokio::test]
async fn a_node_that_starts_late_catches_up_from_peers_and_validates_the_next_proposal() {
    let net = Net::new();
    let (proposer, mut validator) = rig(&net).await;
    let proposal = build(
        &net,
        &proposer.stores,
        TARGET,
        vec![
            vec![net.transfer(5, 0, 1)],
            vec![net.transfer(5, 1, 1)],
            vec![net.transfer(5, 2, 1)],
        ],
    );
    for block in &proposal.blocks[..2] {
        proposer
            .p2p
            .publish_block_proposal(block.clone())
            .await
            .unwrap();
    }
    for index in 0..2 {
        assert!(matches!(
            block_verdict(&mut validator, TARGET, index).await,
            BlockOutcome::Stored(_)
        ));
    }
    validator.stores.wait_synced_at(2).await;

    // A node that missed that gossip joins and asks the validator for the proposed chain.
    let late = Node::start(&net, None, vec![validator.addr.clone()]).await;
    let mut late = catch_up_from(&validator, late, 2, 0).await;

    // It can validate the next proposal on top of what it caught up with.
    proposer.publish_checkpoint(&proposal).await;
    assert!(matches!(
        block_verdict(&mut late, TARGET, 2).await,
        BlockOutcome::Stored(_)
    ));
    let verdict = checkpoint_verdict(&mut late, TARGET).await;
    assert!(
        matches!(verdict, Ok(CheckpointAccepted::Stored { number: 1 })),
        "{verdict:?}"
    );
}

/// The normal case for a late node: the blocks it fetches are of the checkpoint in flight to
/// L1, whose attestation and orphan deadlines (default tolerance) have passed. Catch-up has its
/// own budget per block, so it still waits for each parent to be applied and re-executes every
/// block; and it holds the slot from the orphan prune, which here runs after every stored block,
/// so the blocks survive until their checkpoint is stored (without the hold the prune removes
/// block 1 before block 2 is stored).
#[tokio::test]
async fn a_late_node_catches_up_a_checkpoint_past_its_deadlines_though_orphans_are_pruned_after_each_block()
 {
    let net = Net::new();
    let (_proposer, validator, proposal) = one_checkpoint_of_three_blocks(&net).await;
    let deadline = net.windows.attestation_deadline(TARGET);
    net.clock
        .set(deadline.saturating_add(Duration::from_millis(1)));
    let late = Node::start_wrapped(
        &net,
        None,
        vec![validator.addr.clone()],
        common::sync_config(),
        |archiver| Arc::new(TestArchive(archiver, OnAddBlock::StoreThenPrune)),
    )
    .await;
    let late = catch_up_from(&validator, late, 3, 1).await;
    // Long after the hold expired, a sync pass keeps the blocks: their checkpoint is stored.
    net.clock
        .set(deadline.saturating_add(Duration::from_secs(3600)));
    late.archiver().sync_now().await.unwrap();
    let tips = late.archiver().tips();
    assert_eq!(
        (
            tips.proposed.block.number,
            tips.proposed_checkpoint.block.number
        ),
        (3, 3),
        "caught-up blocks pruned"
    );
    let stored = late
        .archiver()
        .reader()
        .view()
        .unwrap()
        .proposed_checkpoint(1)
        .unwrap()
        .expect("the proposed checkpoint was caught up");
    assert_eq!(stored.payload, proposal.checkpoint.payload);
    assert_eq!(stored.proposer_signature, proposal.checkpoint.signature);
}

/// A proposer and a validator; the proposer publishes a checkpoint of three blocks for
/// [`TARGET`] and the validator stores it.
async fn one_checkpoint_of_three_blocks(net: &Net) -> (Node, Node, Proposal) {
    let (proposer, mut validator) = rig(net).await;
    let proposal = build(
        net,
        &proposer.stores,
        TARGET,
        vec![
            vec![net.transfer(5, 0, 1)],
            vec![net.transfer(5, 1, 1), net.transfer(6, 0, 1)],
            vec![net.transfer(5, 2, 1)],
        ],
    );
    proposer.publish(&proposal).await;
    let verdict = checkpoint_verdict(&mut validator, TARGET).await;
    assert!(
        matches!(verdict, Ok(CheckpointAccepted::Stored { number: 1 })),
        "{verdict:?}"
    );
    validator.stores.wait_synced_at(3).await;
    (proposer, validator, proposal)
}

/// `late` (dialling `peer`) catches up: `blocks` re-executed and stored, `checkpoints`
/// proposed checkpoints validated and stored, no early stop, and its world state ends where
/// `peer`'s does.
async fn catch_up_from(peer: &Node, late: Node, blocks: u64, checkpoints: u64) -> Node {
    late.wait_for_mesh(1).await;
    peer.wait_for_mesh(1).await;
    let report = tandem_validator::catch_up(&late.context, &late.blocks, &late.all_nodes)
        .await
        .unwrap();
    assert_eq!(
        (report.stored, report.checkpoints, report.stopped),
        (blocks, checkpoints, None),
        "{report:?}"
    );
    late.stores.wait_synced_at(blocks).await;
    assert_eq!(late.state().reader().tip(), peer.state().reader().tip());
    late
}

/// Three nodes in a line, A (proposer) → B (relay) → C (validator): C gets A's invalid
/// proposals from B only. B relayed them honestly (gossip accepts a correctly signed proposal
/// before any handler re-executes it), so C refuses them but does not charge B.
#[tokio::test]
async fn an_honest_relay_is_not_charged_for_the_proposers_faults() {
    let net = Net::new();
    let a = Node::start(&net, None, vec![]).await;
    let b = Node::start(&net, None, vec![a.addr.clone()]).await;
    let mut c = Node::start(&net, Some(net.keys[1].clone()), vec![b.addr.clone()]).await;
    a.wait_for_mesh(1).await;
    b.wait_for_mesh(2).await;
    c.wait_for_mesh(1).await;
    c.stores.wait_synced_at(0).await;
    let direct = c.p2p.peer_reputation(a.p2p.local_peer_id()).await.unwrap();
    assert!(!direct.connected, "C must hear A only through B");

    // A block that does not re-execute to its state root (refused by C's block handler).
    let slot = Slot(10);
    net.enter(slot);
    let before = score_of(&c, &b).await;
    let mut proposal = one_block(&net, &a, slot, 0);
    proposal.blocks[0].header.state_root = B256::repeat_byte(0x42);
    proposal.resign_block(&net, 0);
    proposal.rebuild_checkpoint(&net);
    a.publish(&proposal).await;
    match block_verdict(&mut c, slot, 0).await {
        BlockOutcome::Refused(rejection @ BlockRejection::StateMismatch(_)) => {
            assert!(rejection.is_slashable());
        }
        other => panic!("block: {other:?}"),
    }
    unattested_and_not_charged(&mut c, &b, slot, before, "block relayed by B").await;

    // A checkpoint whose header does not match its (valid) block (refused by C's all-nodes
    // handler after rebuilding the header).
    let slot = Slot(11);
    net.enter(slot);
    let before = score_of(&c, &b).await;
    let mut proposal = one_block(&net, &a, slot, 2);
    proposal.checkpoint.payload.header.total_mana_used += 1;
    proposal.resign_checkpoint(&net);
    a.publish(&proposal).await;
    match checkpoint_verdict(&mut c, slot).await {
        Err(CheckpointRejection::CheckpointHeaderMismatch { field }) => {
            assert_eq!(field, "total_mana_used");
        }
        other => panic!("checkpoint: {other:?}"),
    }
    unattested_and_not_charged(&mut c, &b, slot, before, "checkpoint relayed by B").await;
    assert!(
        !c.p2p
            .peer_reputation(a.p2p.local_peer_id())
            .await
            .unwrap()
            .connected
    );
}
