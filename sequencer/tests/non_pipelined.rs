//! The baseline: the same sequencer on a non-pipelined deployment (real parts, `ci` profile).
//! The target is the current slot, the non-pipelined timetable decides the blocks, there is
//! no proposed parent, and checkpoints land in their own slot.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::*;
use tandem_proto::time::{PipeliningMode, Slot};
use tandem_sequencer::{CheckpointResult, SequencerEvent};

/// Landed checkpoints the run waits for.
const LANDED: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_pipelined_checkpoints_are_built_in_their_own_slot_and_land() {
    let net = Network::start(PipeliningMode::NonPipelined).await;
    let max_blocks = net.timetable.max_blocks_per_checkpoint() as usize;
    println!("non-pipelined timetable at the ci profile: {max_blocks} blocks per checkpoint");
    let (nodes, mut events) = start_network(&net, sequencer_config(Default::default())).await;
    let mut built: BTreeMap<Slot, (Slot, usize, bool)> = BTreeMap::new();
    let mut landed: Vec<Slot> = Vec::new();
    let mut figures = Figures::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(110);
    while landed.len() < LANDED {
        let (_, event) = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("only {landed:?} landed; built {built:?}"))
            .unwrap();
        figures.record(&event);
        match event {
            SequencerEvent::CheckpointProposed {
                target,
                build_slot,
                blocks,
                had_proposed_parent,
                ..
            } => {
                built.insert(target, (build_slot, blocks, had_proposed_parent));
            }
            SequencerEvent::CheckpointOutcome { target, result, .. } => {
                assert_eq!(result, CheckpointResult::Landed, "slot {target:?}");
                landed.push(target);
            }
            _ => {}
        }
    }
    figures.print("non-pipelined", max_blocks);
    for (index, slot) in landed.iter().enumerate() {
        let (build_slot, blocks, had_proposed_parent) = built[slot];
        assert_eq!(build_slot, *slot, "built in its own slot");
        assert!(!had_proposed_parent, "never on a proposed parent");
        if index > 0 {
            assert_eq!(blocks, max_blocks, "the timetable's blocks at {slot:?}");
        }
    }
    for node in nodes {
        node.stop().await;
    }
}
