//! The sequencer on real parts: anvil, RocksDB, libp2p on loopback, 4 validators and a full
//! node in one process, `ci` profile. One pipelined run serves the assertions:
//! ≥ 10 consecutive checkpoints each built on the previous *proposed* one, every sub-slot a
//! block, header slot = build slot + 1, coinbase = the L1 proposer, all landed, full node =
//! validators; then the submission of one checkpoint suppressed (the test hook): it is pruned
//! on every node, its child is discarded with `parent-not-on-l1`, and checkpoints land again.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use common::*;
use tandem_proto::time::{Clock, PipeliningMode, Slot, SystemClock, Timestamp};
use tandem_sequencer::{DiscardReason, SequencerEvent};

#[derive(Debug, Clone)]
struct Proposed {
    number: u64,
    build_slot: Slot,
    blocks: usize,
    had_proposed_parent: bool,
}

/// Polls `node`'s archiver until the proposed checkpoint of `slot` was there and is gone;
/// returns when it went.
async fn pruned_at(archiver: tandem_archiver::ArchiverHandle, slot: Slot) -> Timestamp {
    let mut seen = false;
    loop {
        let present = archiver
            .reader()
            .view()
            .unwrap()
            .proposed_checkpoint_by_slot(slot.0)
            .unwrap()
            .is_some();
        if present {
            seen = true;
        } else if seen {
            return SystemClock.now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_checkpoints_build_on_proposed_parents_and_recover_from_a_suppressed_one() {
    let net = Network::start(PipeliningMode::Pipelined).await;
    let max_blocks = net.timetable.max_blocks_per_checkpoint() as usize;
    let now = net.slot_clock.slot_at(SystemClock.now()).unwrap();
    // Far enough ahead for ≥ 11 landed checkpoints before it, even if startup costs two slots.
    let suppressed = Slot(now.0 + 14);
    let child = suppressed.next();
    let (nodes, mut events) =
        start_network(&net, sequencer_config(BTreeSet::from([suppressed.0]))).await;
    let watchers: Vec<_> = nodes
        .iter()
        .map(|node| tokio::spawn(pruned_at(node.archiver.clone(), suppressed)))
        .collect();

    let mut proposed: BTreeMap<Slot, Proposed> = BTreeMap::new();
    let mut outcomes: BTreeMap<Slot, &'static str> = BTreeMap::new();
    let mut discards: BTreeMap<Slot, DiscardReason> = BTreeMap::new();
    let landed_after_child = |outcomes: &BTreeMap<Slot, &str>| {
        outcomes
            .range(child.next()..)
            .any(|(_, result)| *result == "landed")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(270);
    while !landed_after_child(&outcomes) {
        let (_, event) = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("no recovery in time: outcomes {outcomes:?}, discards {discards:?}")
            })
            .unwrap();
        match event {
            SequencerEvent::CheckpointProposed {
                target,
                build_slot,
                number,
                blocks,
                had_proposed_parent,
                ..
            } => {
                proposed.insert(
                    target,
                    Proposed {
                        number,
                        build_slot,
                        blocks,
                        had_proposed_parent,
                    },
                );
            }
            SequencerEvent::CheckpointOutcome { target, result, .. } => {
                outcomes.insert(target, result);
            }
            SequencerEvent::PipelineDiscarded { target, reason, .. } => {
                discards.insert(target, reason);
            }
            _ => {}
        }
    }

    // Before the suppressed slot: one checkpoint per slot, all landed, numbers consecutive,
    // each after the first built on the previous proposed one with every sub-slot a block.
    let before: Vec<(Slot, Proposed)> = proposed
        .range(..suppressed)
        .map(|(slot, p)| (*slot, p.clone()))
        .collect();
    assert!(
        before.len() >= 11,
        "only {} checkpoints before the suppressed slot",
        before.len()
    );
    for window in before.windows(2) {
        let ((parent_slot, parent), (slot, this)) = (&window[0], &window[1]);
        assert_eq!(*slot, parent_slot.next(), "a checkpoint every slot");
        assert_eq!(this.number, parent.number + 1);
        assert!(
            this.had_proposed_parent,
            "slot {slot:?} built on a proposed parent"
        );
        assert_eq!(
            this.blocks, max_blocks,
            "every sub-slot a block at slot {slot:?}"
        );
    }
    for (slot, _) in &before {
        assert_eq!(outcomes.get(slot), Some(&"landed"), "slot {slot:?}");
    }
    // Every block: header slot = build slot + 1, coinbase = the L1 proposer of that slot.
    let full = nodes.last().unwrap();
    for (slot, meta) in &before {
        let record = full
            .archiver
            .reader()
            .view()
            .unwrap()
            .checkpoint(meta.number)
            .unwrap()
            .expect("on L1, seen by the full node");
        assert_eq!(record.payload.header.slot, meta.build_slot.0 + 1);
        assert_eq!(record.payload.header.slot, slot.0);
        let l1_proposer = net.l1_proposer(slot.0).await;
        for block in record.start_block..=record.last_block() {
            let header = full
                .archiver
                .reader()
                .view()
                .unwrap()
                .header(block)
                .unwrap()
                .unwrap()
                .header;
            assert_eq!(header.slot, meta.build_slot.0 + 1, "block {block}");
            assert_eq!(Some(header.coinbase), l1_proposer, "block {block}");
        }
    }

    // The suppressed checkpoint never went to L1; its child was discarded, parent not on L1.
    assert_eq!(outcomes.get(&suppressed), Some(&"skipped_by_test_hook"));
    assert_eq!(discards.get(&child), Some(&DiscardReason::ParentNotOnL1));
    assert_eq!(discards.len(), 1, "{discards:?}");
    // It was pruned on every node soon after its slot ended.
    let slot_end = net.slot_clock.slot_start(suppressed.next());
    let mut delays = Vec::new();
    for watcher in watchers {
        let at = tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("pruned on every node")
            .unwrap();
        delays.push(at.millis_since(slot_end));
    }
    println!("suppressed checkpoint pruned after its slot ended, ms per node: {delays:?}");
    let bound = (E * 1_000 + 100) as i64;
    assert!(
        delays.iter().all(|delay| *delay <= bound),
        "pruned later than E + the archiver's poll interval: {delays:?}"
    );
    // Checkpoints land again within 2 slots of the discarded child.
    let again = outcomes
        .range(child.next()..)
        .find(|(_, result)| **result == "landed")
        .map(|(slot, _)| *slot)
        .unwrap();
    assert!(
        again.0 <= child.0 + 2,
        "landed again at {again:?}, child at {child:?}"
    );

    // The full node's tips equal the validators' once all saw L1's tip.
    let l1 = net.l1_checkpointed().await;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let tips: Vec<_> = nodes.iter().map(|node| node.tips().checkpointed).collect();
            if tips
                .iter()
                .all(|tip| tip.checkpoint.number >= l1 && *tip == tips[0])
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every node at L1's checkpointed tip");
    for node in nodes {
        node.stop().await;
    }
}
