//! Link and L1 faults: a partition, latency with loss, an L1 reorg.

use serde_json::{Value, json};
use tandem_e2e::proxy::Faults;

use super::*;

/// Partition one validator | the other 3 + the full node for 3 slots (committee 4, quorum 3):
/// the side of 3 lands its proposers' slots, the single one lands none; after heal every
/// node agrees within 2 slots and no one saw an equivocation. The cut-off validator is the
/// proposer of the partition's middle slot, so the window always holds a slot of its own.
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
    let alone = net.proposer_of(s0 + 2).expect("proposer");
    let others: Vec<usize> = (0..net.nodes.len()).filter(|i| *i != alone).collect();
    eprintln!(
        "partition {} | {others:?} during slots {s0}..={}",
        net.nodes[alone].name,
        s0 + 2
    );
    net.wait_for_slot(s0).expect("slot");
    net.partition(&[&[alone], &others]);
    // The cut must isolate it: no connection around the proxies (a node that leaked its real
    // listen address through identify was dialled directly and kept 1 peer here).
    let peers = tandem_e2e::wait::until(
        "the cut-off validator without peers",
        Duration::from_secs(net.slot_secs),
        || {
            let peers = net
                .metrics(alone)
                .map_err(|e| e.to_string())?
                .value("tandem_node_peers");
            if peers == Some(0.0) {
                Ok(peers)
            } else {
                Err(format!("peers {peers:?}"))
            }
        },
    );
    assert!(peers.is_ok(), "partitioned but connected: {peers:?}");
    net.wait_for_slot(s0 + 3).expect("partitioned");
    net.heal();
    // Slot s0+3's checkpoint (built during the partition) lands in that slot's first L1 block.
    wait_l1_past(
        &net,
        net.genesis + (s0 + 3) * net.slot_secs + net.l1_slot_secs,
    );
    wait_l1(&net, others[0]);
    let landed = by_slot(&net, others[0]);
    let mut majority = Vec::new();
    for slot in s0 + 1..=s0 + 3 {
        let proposer = net.proposer_of(slot).expect("proposer");
        if proposer == alone {
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
        .agree(landed.values().map(|c| c.number).max().unwrap_or(0), within)
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
    let (bytes, _, refused) = net.mesh().traffic(others[0], alone);
    eprintln!(
        "link {}→{alone}: {bytes} bytes, {refused} dials refused while cut",
        others[0]
    );
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
    // The faults applied: every ordered link carried the nodes' traffic through its proxy.
    let idle: Vec<(usize, usize)> = net
        .mesh()
        .pairs()
        .into_iter()
        .filter(|&(a, b)| net.mesh().traffic(a, b).0 == 0)
        .collect();
    assert!(
        idle.is_empty(),
        "links that carried nothing through their proxy: {idle:?}"
    );
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
    // The txs of every block node 0 holds now (the slot's checkpoint is built, its propose on
    // its way), read before the reorg: afterwards unlanded blocks may be pruned.
    let proposed = net.tips(0).expect("tips").proposed.0;
    let mut txs_of = Vec::new();
    for block in 1..=proposed {
        let value = net
            .rpc(0, "tandem_getBlock", json!([format!("0x{block:x}"), false]))
            .expect("block");
        txs_of.push((block, value["txs"].as_array().cloned().unwrap_or_default()));
    }
    // The checkpoint of `slot` lands in its first L1 block; wait for it, then reorg 3 deep at
    // once, so the reorg takes that L1 block out.
    let landed = tandem_e2e::wait::until("the slot's checkpoint", Duration::from_secs(10), || {
        by_slot(&net, 0).remove(&slot).ok_or("not yet")
    })
    .expect("landing");
    let head = net.l1_head().expect("head");
    let at = landed.l1_block.expect("an L1 block");
    assert!(
        head < at + 3,
        "L1 is at {head}, the checkpoint in {at}: a depth-3 reorg would not remove it"
    );
    let end = landed.start_block + landed.block_count;
    assert!(
        proposed + 1 >= end,
        "node 0 held blocks up to {proposed} at slot {slot}'s start, the checkpoint ends at {}",
        end - 1
    );
    let txs: Vec<Value> = txs_of
        .into_iter()
        .filter(|(block, _)| *block < end)
        .flat_map(|(_, txs)| txs)
        .collect();
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
    let block = net.agree_proposed(AGREE).expect("one proposed chain");
    // Every archiver saw the reorg (else the scenario tested nothing).
    let reorgs: Vec<f64> = net
        .running()
        .into_iter()
        .map(|i| {
            net.metrics(i)
                .expect("metrics")
                .sum("tandem_archiver_l1_reorgs_total", &[])
        })
        .collect();
    eprintln!(
        "after the reorg: agree on {tip:?} and proposed block {block}, {} txs checkpointed, \
         archiver reorgs seen per node {reorgs:?}",
        txs.len()
    );
    assert!(reorgs.iter().all(|r| *r >= 1.0), "reorgs seen {reorgs:?}");
    let after = by_slot(&net, 0);
    eprintln!(
        "landed after the reorg (slot: checkpoint, L1 block): {:?}",
        after
            .iter()
            .map(|(s, c)| (*s, c.number, c.l1_block))
            .collect::<Vec<_>>()
    );
    took("l1_reorg", started);
}

/// Waits until L1's head block is stamped `ts` or later (the harness's L1 clock mines one block
/// per L1 slot).
fn wait_l1_past(net: &Network, ts: u64) {
    tandem_e2e::wait::until(
        &format!("an L1 block stamped {ts} or later"),
        Duration::from_secs((ts.saturating_sub(unix_secs())) + 10),
        || {
            let head = tandem_e2e::client::rpc(
                &net.l1_url,
                "eth_getBlockByNumber",
                json!(["latest", false]),
            )?;
            let stamp = tandem_e2e::client::quantity(&head["timestamp"])?;
            if stamp >= ts {
                Ok(())
            } else {
                Err(format!("head stamped {stamp}"))
            }
        },
    )
    .expect("L1 moving on");
}

fn unix_secs() -> u64 {
    tandem_e2e::unix_ms() / 1000
}
