//! What several scenarios check: steady state over a range of slots, and the effects of a
//! silent publisher.

use std::{collections::BTreeMap, time::Duration};

use tandem_e2e::{Checkpoint, Network, unix_ms};

/// Every validator's pipeline depth gauge and discard counter, sampled while slots pass.
#[derive(Debug, Default)]
pub struct Watch {
    /// Depth samples per validator.
    pub depths: BTreeMap<usize, Vec<f64>>,
}

impl Watch {
    pub fn sample(&mut self, net: &Network) {
        for (i, node) in net.nodes.iter().enumerate() {
            if !node.is_validator() || !node.running() {
                continue;
            }
            if let Ok(metrics) = net.metrics(i)
                && let Some(depth) = metrics.value("tandem_sequencer_pipeline_depth")
            {
                self.depths.entry(i).or_default().push(depth);
            }
        }
    }

    pub fn all(&self) -> Vec<f64> {
        self.depths.values().flatten().copied().collect()
    }
}

/// The sum of a counter over every running validator.
pub fn validators_sum(net: &Network, name: &str, labels: &[(&str, &str)]) -> f64 {
    validators_sums(net, &[(name, labels)])[0]
}

/// Several counters summed over the running validators, all from ONE scrape per node (so they
/// are consistent with each other). A failed scrape fails the test: counting it as 0 would
/// shift a baseline by a whole node's count.
pub fn validators_sums(net: &Network, counters: &[(&str, &[(&str, &str)])]) -> Vec<f64> {
    let mut sums = vec![0.0; counters.len()];
    for (i, node) in net.nodes.iter().enumerate() {
        if !(node.is_validator() && node.running()) {
            continue;
        }
        let m = net
            .metrics(i)
            .unwrap_or_else(|e| panic!("scraping {}'s /metrics: {e:#}", node.name));
        for (sum, (name, labels)) in sums.iter_mut().zip(counters) {
            *sum += m.sum(name, labels);
        }
    }
    sums
}

/// The checkpoints on L1 by node 0's view, by slot.
pub fn by_slot(net: &Network, node: usize) -> BTreeMap<u64, Checkpoint> {
    net.landed(node)
        .expect("reading the landed checkpoints")
        .into_iter()
        .map(|c| (c.slot, c))
        .collect()
}

/// Steady state over `slots`: a checkpoint landed for every slot, each with `max` blocks, each
/// in the first L1 block of its slot. Panics naming what broke it; returns the checkpoints.
pub fn assert_steady(
    net: &Network,
    slots: std::ops::RangeInclusive<u64>,
    max: u64,
) -> Vec<Checkpoint> {
    let landed = by_slot(net, 0);
    let mut seen = Vec::new();
    for slot in slots.clone() {
        let checkpoint = landed.get(&slot).unwrap_or_else(|| {
            panic!(
                "slot {slot} missed (landed slots {:?})",
                landed.keys().collect::<Vec<_>>()
            )
        });
        seen.push(checkpoint.clone());
    }
    let counts: Vec<u64> = seen.iter().map(|c| c.block_count).collect();
    let offsets: Vec<i64> = seen
        .iter()
        .map(|c| c.l1_timestamp.unwrap_or(0) as i64 - (net.genesis + c.slot * net.slot_secs) as i64)
        .collect();
    eprintln!(
        "steady slots {slots:?}: blocks per checkpoint {counts:?} (max {max}), L1 landing \
         offsets into the slot {offsets:?} s"
    );
    assert!(
        counts.iter().all(|c| *c == max),
        "blocks per checkpoint {counts:?} over slots {slots:?}, the timetable's max is {max}"
    );
    for checkpoint in &seen {
        assert!(
            net.in_first_l1_block(checkpoint),
            "checkpoint {} (slot {}) landed in L1 block {:?} at {:?}, not the first L1 block of \
             its slot (starts at {})",
            checkpoint.number,
            checkpoint.slot,
            checkpoint.l1_block,
            checkpoint.l1_timestamp,
            net.genesis + checkpoint.slot * net.slot_secs
        );
    }
    seen
}

/// When (unix ms) each node's `uncheckpointed_slot` prune counter first rose above `before`.
pub fn prune_times(
    net: &mut Network,
    until_slot: u64,
    before: &BTreeMap<usize, f64>,
) -> BTreeMap<usize, u64> {
    let mut seen: BTreeMap<usize, u64> = BTreeMap::new();
    let nodes = net.running();
    net.wait_for_slot_with(until_slot, |net| {
        for &i in &nodes {
            if seen.contains_key(&i) {
                continue;
            }
            if let Ok(metrics) = net.metrics(i) {
                let now = metrics.sum(
                    "tandem_archiver_prunes_total",
                    &[("kind", "uncheckpointed_slot")],
                );
                if now > before.get(&i).copied().unwrap_or(0.0) {
                    seen.insert(i, unix_ms());
                }
            }
        }
        Ok(())
    })
    .expect("waiting for the prune");
    seen
}

/// Each running node's `uncheckpointed_slot` prune counter now.
pub fn prune_counts(net: &Network) -> BTreeMap<usize, f64> {
    net.running()
        .into_iter()
        .map(|i| {
            let count = net.metrics(i).map_or(0.0, |m| {
                m.sum(
                    "tandem_archiver_prunes_total",
                    &[("kind", "uncheckpointed_slot")],
                )
            });
            (i, count)
        })
        .collect()
}

/// The silent slot `n`'s effects: nothing landed for `n`, every node pruned it within E + the
/// archiver's poll after the slot ended (plus `resolution`, the prune watcher's poll), and
/// slot n+1's proposer discarded with `parent-not-on-l1`, and a checkpoint landed again by
/// slot n+2. Returns the prune latencies (ms after slot n ends) per node.
pub fn assert_silent_slot(
    net: &mut Network,
    n: u64,
    before: &BTreeMap<usize, f64>,
    not_on_l1_before: f64,
) -> BTreeMap<usize, i64> {
    let times = prune_times(net, n + 2, before);
    let end = net.slot_start_ms(n + 1) as i64;
    let latency: BTreeMap<usize, i64> =
        times.iter().map(|(i, at)| (*i, *at as i64 - end)).collect();
    let names: Vec<&str> = net
        .running()
        .iter()
        .map(|i| net.nodes[*i].name.as_str())
        .collect();
    eprintln!("slot {n} silent: prune seen (ms after the slot ended) {latency:?} of {names:?}");
    assert_eq!(
        times.len(),
        net.running().len(),
        "not every node pruned slot {n}'s blocks by slot {}: {latency:?}",
        n + 2
    );
    let bound = (net.l1_slot_secs * 1000 + net.l1_poll.as_millis() as u64) as i64;
    let resolution = 300;
    for (i, ms) in &latency {
        assert!(
            *ms <= bound + resolution,
            "{} pruned slot {n} {ms} ms after it ended, over E + poll = {bound} ms (+{resolution} ms watcher resolution)",
            net.nodes[*i].name
        );
    }
    // Landing again within 2 slots: slot n+2's checkpoint lands in its first L1 block, so
    // polling L1 through node 0 until one L1 slot (plus the archiver's lag) after n+2 began.
    let deadline = std::time::Duration::from_millis(
        (net.slot_start_ms(n + 2) + net.l1_slot_secs * 1000 + 3_000).saturating_sub(unix_ms()),
    );
    let _ = tandem_e2e::wait::until("a landing after the silent slot", deadline, || {
        let landed = by_slot(net, 0);
        landed
            .keys()
            .find(|s| **s > n && **s <= n + 2)
            .copied()
            .ok_or("not yet")
    });
    let landed = by_slot(net, 0);
    assert!(
        !landed.contains_key(&n),
        "slot {n}'s checkpoint landed although its publisher was silent: {:?}",
        landed[&n]
    );
    let not_on_l1 = validators_sum(
        net,
        "tandem_sequencer_pipeline_parent_mismatch_total",
        &[("reason", "parent-not-on-l1")],
    );
    assert!(
        not_on_l1 >= not_on_l1_before + 1.0,
        "no validator discarded slot {}'s checkpoint with parent-not-on-l1 ({not_on_l1_before} → {not_on_l1})",
        n + 1
    );
    let again = landed.keys().find(|s| **s > n && **s <= n + 2);
    eprintln!(
        "after silent slot {n}: landed again at slot {again:?} (landed {:?})",
        landed.keys().filter(|s| **s + 4 >= n).collect::<Vec<_>>()
    );
    assert!(
        again.is_some(),
        "no checkpoint landed within 2 slots after silent slot {n}: landed {:?}",
        landed.keys().collect::<Vec<_>>()
    );
    latency
}

/// Waits until node `i`'s archiver has synced L1 up to L1's head as of now.
pub fn wait_l1(net: &Network, i: usize) {
    let head = net.l1_head().expect("L1 head");
    tandem_e2e::wait::until("the archiver at L1's head", Duration::from_secs(20), || {
        let synced = net
            .metrics(i)
            .map_err(|e| e.to_string())?
            .value("tandem_node_l1_synced_block")
            .unwrap_or(0.0);
        if synced >= head as f64 {
            Ok(())
        } else {
            Err(format!("synced {synced}, head {head}"))
        }
    })
    .expect("archiver sync");
}

/// The first landed slot, waiting (polling) for it up to 8 slots after the launch.
pub fn first_landed(net: &mut Network) -> u64 {
    let by_slot_limit = net.launch_slot + 8;
    loop {
        if let Some(first) = by_slot(net, 0).keys().next() {
            return *first;
        }
        assert!(
            net.slot_now() < by_slot_limit,
            "no checkpoint landed by slot {by_slot_limit} (launched {})",
            net.launch_slot
        );
        net.run_slots(1).expect("slot");
    }
}
