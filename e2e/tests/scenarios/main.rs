//! Scenarios of issue 18 over real nodes. `ci_*` runs in `.ci/run`; the others are long and
//! run with `scripts/scenarios.sh` (`--run-ignored only`).

#![allow(missing_docs, unreachable_pub)]

mod faults;
mod nodes;
mod spray;
mod support;

use std::time::{Duration, Instant};

use support::*;
use tandem_e2e::{Network, Spec};

/// ≤ 10 slots on the `ci` profile: steady state (every slot lands, full checkpoints, depth ≤ 1
/// with depth 1 seen, no discard, each in the first L1 block of its slot), then the slot whose
/// proposer never publishes: pruned everywhere within E + poll after it ends, the next one
/// discarded with `parent-not-on-l1`, landing again within 2 slots.
#[test]
fn ci_devnet_steady_state_then_a_silent_publisher() {
    let started = Instant::now();
    // Slot launch+9 is the silent one. The hook is node config, fixed before any node starts,
    // so it cannot be picked from the first landing without a runtime knob (a node change):
    // measured first landings were launch+3..4 (nodes ready after ~40 s), and launch+9 leaves
    // the steady window `first+2 ..= n-1` ≥ 2 checkpoints for a first landing up to launch+5.
    // This makes the scenario 11 slots, one over the 10 asked, for that start-up margin.
    const SILENT: u64 = 9;
    let mut net = Network::start(Spec {
        silent_slots: vec![SILENT],
        ..Spec::default()
    })
    .expect("network");
    let n = net.launch_slot + SILENT;
    let max = net.max_blocks_per_checkpoint().expect("timetable");

    // Start-up: validators' fresh signing records sign from a few slots after their first
    // start (init mode), so the first landing comes some slots after the launch. Discards are
    // counted from it on (the warm-up's failed slots are not steady state).
    let first = first_landed(&mut net);
    let steady_from = first + 2;
    let steady_to = n - 1;
    assert!(
        steady_to > steady_from,
        "start-up took until slot {first} (launch {} + {}); only slots {steady_from}..={steady_to} left before the silent one",
        net.launch_slot,
        first - net.launch_slot
    );
    let counters = |net: &Network| {
        let s = validators_sums(
            net,
            &[
                ("tandem_sequencer_pipeline_discards_total", &[]),
                (
                    "tandem_sequencer_checkpoint_outcomes_total",
                    &[("result", "skipped_by_test_hook")],
                ),
                (
                    "tandem_sequencer_pipeline_parent_mismatch_total",
                    &[("reason", "parent-not-on-l1")],
                ),
            ],
        );
        (s[0], s[1], s[2])
    };
    let (discards_before, hook_before, _) = counters(&net);
    // Until the silent slot: sample depth gauges.
    let mut watch = Watch::default();
    net.wait_for_slot_with(n, |net| {
        watch.sample(net);
        Ok(())
    })
    .expect("running to the silent slot");
    wait_l1(&net, 0);
    // The first two checkpoints may still be short (warm-up, see the sequencer's test); the
    // steady window starts at the third landed slot and ends before the silent one's build.
    assert_steady(&net, steady_from..=steady_to, max);
    let depths = watch.all();
    assert!(
        depths.iter().all(|d| *d <= 1.0) && depths.contains(&1.0),
        "pipeline depth samples {:?}",
        watch.depths
    );
    // The silent slot's own checkpoint counts as a discard once its pipeline ends (its publish
    // time, around the start of slot n): wait for that, then every other discard is a failure
    // of steady state. Slot n+1's discard comes a slot later, so it is not in this reading.
    let mut reading = (0.0, 0.0, 0.0);
    let _ = tandem_e2e::wait::until(
        "the silent slot's pipeline to end",
        Duration::from_secs(net.slot_secs / 2),
        || {
            reading = counters(&net);
            if reading.1 - hook_before >= 1.0 {
                Ok(())
            } else {
                Err("hook count not risen")
            }
        },
    );
    let (discards, hook, not_on_l1_before) = reading;
    assert_eq!(
        hook - hook_before,
        1.0,
        "slot {n}'s checkpoint skipped by the test hook"
    );
    assert_eq!(
        discards - discards_before,
        1.0,
        "discards from the first landing (slot {first}) to the silent slot, its own included"
    );

    let proposer = net.proposer_of(n).expect("proposer of the silent slot");
    let next = net.proposer_of(n + 1).expect("proposer of the next slot");
    eprintln!(
        "silent slot {n}: proposer {}, slot {} proposer {}",
        net.nodes[proposer].name,
        n + 1,
        net.nodes[next].name
    );
    let before = prune_counts(&net);
    let latencies = assert_silent_slot(&mut net, n, &before, not_on_l1_before);
    let landed = by_slot(&net, 0);
    assert!(
        !landed.contains_key(&(n + 1)),
        "slot {}'s checkpoint, built on the silent slot's chain, landed: {:?}",
        n + 1,
        landed[&(n + 1)]
    );
    eprintln!(
        "ci scenario: first landed slot {first} (launch {}), steady {steady_from}..={steady_to} at {max} blocks, \
         prune latencies {latencies:?} ms, whole test {:?}",
        net.launch_slot,
        started.elapsed()
    );
}

/// Proposers of the next slots, for scenarios that pick a victim.
pub fn proposers(net: &Network, slots: std::ops::Range<u64>) -> Vec<(u64, usize)> {
    slots
        .map(|s| (s, net.proposer_of(s).expect("proposer")))
        .collect()
}

/// How long a scenario took, printed at its end.
pub fn took(name: &str, started: Instant) {
    eprintln!("scenario {name}: {:?}", started.elapsed());
}

/// A generous bound for nodes to agree after a fault.
pub const AGREE: Duration = Duration::from_secs(60);
