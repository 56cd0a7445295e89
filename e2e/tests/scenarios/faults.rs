//! Link and L1 faults: a partition, latency with loss, an L1 reorg.

use serde_json::json;
use tandem_e2e::proxy::Faults;

use super::*;

/// Partition validator 0 | validators 1–3 + the full node for 3 slots (committee 4, quorum 3):
/// the side of 3 lands its proposers' slots, the single one lands none; after heal every
/// node agrees within 2 slots and no one saw an equivocation.
#[test]
#[ignore = "long scenario: scripts/scenarios.sh"]
fn partition_one_three_then_heal() {
    let started = Instant::now();
    let mut net = Network::start(Spec {
        committee: Some(4),
        ..Spec::default()
    })
    .expect("network");
    let first = first_landed(&mut net);
    let s0 = first + 2;
    net.wait_for_slot(s0).expect("slot");
    net.partition(&[&[0], &[1, 2, 3, 4]]);
    net.wait_for_slot(s0 + 3).expect("partitioned");
    net.heal();
    wait_l1(&net, 0);
    let landed = by_slot(&net, 1);
    let mut majority = Vec::new();
    for slot in s0 + 1..=s0 + 3 {
        let proposer = net.proposer_of(slot).expect("proposer");
        if proposer == 0 {
            assert!(
                !landed.contains_key(&slot),
                "slot {slot} of the cut-off validator landed"
            );
        } else {
            // Slots right after the cut-off one's are built by the majority on L1's tip.
            majority.push((slot, landed.contains_key(&slot)));
        }
    }
    eprintln!(
        "partition slots {}..={}: majority slots landed {majority:?}",
        s0 + 1,
        s0 + 3
    );
    assert!(
        majority.iter().all(|(_, l)| *l),
        "majority slots {majority:?}"
    );
    let healed = Instant::now();
    let within = Duration::from_secs(2 * net.slot_secs);
    let tip = net
        .agree(0, within)
        .expect("one checkpointed tip within 2 slots");
    let block = net
        .agree_proposed(within.saturating_sub(healed.elapsed()))
        .expect("one proposed chain within 2 slots");
    eprintln!(
        "healed: agree on checkpoint {tip:?} and proposed block {block} after {:?}",
        healed.elapsed()
    );
    for i in net.running() {
        let m = net.metrics(i).expect("metrics");
        assert_eq!(
            m.sum("tandem_p2p_equivocations_total", &[]),
            0.0,
            "{}",
            net.nodes[i].name
        );
    }
    let (bytes, _, refused) = net.mesh().traffic(1, 0);
    eprintln!("link 1→0: {bytes} bytes, {refused} dials refused while cut");
    assert!(
        refused > 0,
        "no dial across the partition was refused: the proxy was bypassed?"
    );
    took("partition_one_three", started);
}

/// 100 ms ± 20 ms one way with 0.5 % of chunks stalled for an RTO, on every link from the
/// start: steady state still meets the timetable's blocks per checkpoint.
#[test]
#[ignore = "long scenario: scripts/scenarios.sh"]
fn latency_100ms_jitter_20ms_loss_half_percent() {
    let started = Instant::now();
    let mut net = Network::start(Spec {
        links: Some(Faults {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(20),
            loss: 0.005,
            cut: false,
        }),
        ..Spec::default()
    })
    .expect("network");
    let max = net.max_blocks_per_checkpoint().expect("timetable");
    let first = first_landed(&mut net);
    let from = first + 2;
    net.wait_for_slot(from + 8).expect("slots");
    wait_l1(&net, 0);
    assert_steady(&net, from..=from + 7, max);
    took("latency", started);
}

/// An L1 reorg of depth 3 right after a checkpoint landed: afterwards every node agrees on
/// the tips and every tx of the blocks checkpointed before the reorg is checkpointed again.
#[test]
#[ignore = "long scenario: scripts/scenarios.sh"]
fn l1_reorg_depth_three_loses_no_tx() {
    let started = Instant::now();
    let mut net = Network::start(Spec::default()).expect("network");
    let first = first_landed(&mut net);
    let slot = first + 2;
    net.wait_for_slot(slot).expect("slot");
    // The checkpoint of `slot` lands in its first L1 block; wait for it, then reorg 3 deep.
    let landed = tandem_e2e::wait::until("the slot's checkpoint", Duration::from_secs(10), || {
        by_slot(&net, 0).remove(&slot).ok_or("not yet")
    })
    .expect("landing");
    let mut txs = Vec::new();
    for block in 1..landed.start_block + landed.block_count {
        let value = net
            .rpc(0, "tandem_getBlock", json!([format!("0x{block:x}"), false]))
            .expect("block");
        txs.extend(value["txs"].as_array().cloned().unwrap_or_default());
    }
    let head = net.l1_head().expect("head");
    let at = landed.l1_block.expect("an L1 block");
    assert!(
        head < at + 3,
        "L1 is at {head}, the checkpoint in {at}: a depth-3 reorg would not remove it"
    );
    net.reorg_l1(3).expect("reorg");
    eprintln!(
        "reorged L1 at head {head} (checkpoint {} in L1 block {:?}); {} txs to keep",
        landed.number,
        landed.l1_block,
        txs.len()
    );
    net.wait_for_slot(slot + 2).expect("slots");
    let tip = net.agree(landed.number, AGREE).expect("agree");
    // Every tx of the blocks checkpointed before the reorg is checkpointed again (in the
    // re-landed checkpoint or, if it was lost, in later ones after the prune).
    tandem_e2e::wait::until(
        "every tx checkpointed after the reorg",
        Duration::from_secs(3 * net.slot_secs),
        || {
            for i in net.running() {
                for tx in &txs {
                    let seen = net
                        .rpc(i, "tandem_getTx", json!([tx]))
                        .map_err(|e| e.to_string())?;
                    let status = seen["status"].as_str().unwrap_or("unknown");
                    if status != "checkpointed" && status != "finalized" {
                        return Err(format!("tx {tx} is {status} on {}", net.nodes[i].name));
                    }
                }
            }
            Ok(())
        },
    )
    .expect("no lost tx");
    let reorgs = net
        .metrics(0)
        .expect("metrics")
        .sum("tandem_archiver_l1_reorgs_total", &[]);
    eprintln!(
        "after the reorg: agree on {tip:?}, {} txs checkpointed, archiver reorgs seen {reorgs}",
        txs.len()
    );
    took("l1_reorg", started);
}
