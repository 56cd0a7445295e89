//! Passes of the tracker over an in-memory chain, each sample's latency exact.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use tandem_proto::B256;

use super::{Block, Chain, Sample, Samples, Tips, Tracker};
use crate::spam::Tracked;

/// A node's chain as the tracker reads it.
#[derive(Default)]
struct TestChain {
    tips: Tips,
    blocks: BTreeMap<u64, Block>,
}

impl Chain for TestChain {
    async fn tips(&self) -> Option<Tips> {
        Some(self.tips)
    }
    async fn block(&self, number: u64) -> Option<Block> {
        self.blocks.get(&number).cloned()
    }
}

impl TestChain {
    /// Blocks 0..=tip without txs, all checkpointed.
    fn up_to(tip: u64) -> Self {
        let mut chain = Self::default();
        for number in 0..=tip {
            chain.put(number, 0, &[]);
        }
        chain.tip(tip, tip);
        chain
    }
    /// Block `number`, version `version` (a prune rebuilds with another hash).
    fn put(&mut self, number: u64, version: u8, txs: &[B256]) {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&number.to_be_bytes());
        hash[31] = version;
        self.blocks.insert(
            number,
            Block {
                hash: B256::from(hash),
                txs: txs.to_vec(),
            },
        );
    }
    /// A prune: blocks above `number` are gone.
    fn prune_above(&mut self, number: u64) {
        self.blocks.retain(|&n, _| n <= number);
    }
    fn tip(&mut self, proposed: u64, checkpointed: u64) {
        self.tips = Tips {
            proposed,
            checkpointed,
        };
    }
}

fn tx(n: u8) -> B256 {
    B256::with_last_byte(n)
}

struct Run {
    tracker: Tracker,
    tracked: VecDeque<Tracked>,
    t0: Instant,
}

impl Run {
    fn new(chain: &TestChain) -> Self {
        let mut run = Self {
            tracker: Tracker::default(),
            tracked: VecDeque::new(),
            t0: Instant::now(),
        };
        assert_eq!(run.pass(chain, 0), Samples::default(), "the first pass");
        run
    }
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    fn send(&mut self, tx: B256, at_ms: u64) {
        self.tracked.push_back(Tracked {
            hash: tx,
            sent: self.at(at_ms),
            proposed: false,
        });
    }
    fn pass(&mut self, chain: &TestChain, at_ms: u64) -> Samples {
        let view = futures::executor::block_on(self.tracker.read(chain)).expect("tips");
        let now = self.at(at_ms);
        self.tracker.step(&view, &mut self.tracked, now)
    }
    /// A sample of a tx sent at `sent_ms` and seen at `seen_ms`.
    fn sample(&self, sent_ms: u64, seen_ms: u64) -> Sample {
        Sample {
            sent: self.at(sent_ms),
            latency: Duration::from_millis(seen_ms - sent_ms),
        }
    }
    fn pending(&self) -> Vec<B256> {
        self.tracked.iter().map(|t| t.hash).collect()
    }
}

#[test]
fn a_tx_is_proposed_then_checkpointed() {
    let mut chain = TestChain::up_to(10);
    let mut run = Run::new(&chain);
    run.send(tx(1), 100);
    run.send(tx(2), 200);
    chain.put(11, 0, &[tx(1)]);
    chain.put(12, 0, &[tx(2)]);
    chain.tip(12, 10);
    assert_eq!(
        run.pass(&chain, 1_000),
        Samples {
            proposed: vec![run.sample(100, 1_000), run.sample(200, 1_000)],
            checkpointed: vec![],
        }
    );
    chain.tip(12, 11);
    assert_eq!(
        run.pass(&chain, 5_000),
        Samples {
            proposed: vec![],
            checkpointed: vec![run.sample(100, 5_000)],
        }
    );
    assert_eq!(run.pending(), vec![tx(2)]);
    chain.tip(12, 12);
    assert_eq!(
        run.pass(&chain, 6_000).checkpointed,
        vec![run.sample(200, 6_000)]
    );
    assert!(run.pending().is_empty());
}

#[test]
fn a_block_proposed_and_checkpointed_between_two_passes_gives_both_samples() {
    let mut chain = TestChain::up_to(10);
    let mut run = Run::new(&chain);
    run.send(tx(1), 0);
    chain.put(11, 0, &[tx(1)]);
    chain.tip(11, 11);
    assert_eq!(
        run.pass(&chain, 2_000),
        Samples {
            proposed: vec![run.sample(0, 2_000)],
            checkpointed: vec![run.sample(0, 2_000)],
        }
    );
}

#[test]
fn a_pruned_tx_taken_again_at_the_same_number_counts_from_the_new_block() {
    let mut chain = TestChain::up_to(10);
    let mut run = Run::new(&chain);
    run.send(tx(1), 0);
    chain.put(11, 0, &[tx(1)]);
    chain.tip(11, 10);
    assert_eq!(run.pass(&chain, 1_000).proposed, vec![run.sample(0, 1_000)]);
    chain.prune_above(10);
    chain.tip(10, 10);
    assert_eq!(run.pass(&chain, 2_000), Samples::default());
    chain.put(11, 1, &[tx(1)]);
    chain.tip(11, 11);
    // Proposed once (the first block), checkpointed with the block that landed.
    assert_eq!(
        run.pass(&chain, 4_000),
        Samples {
            proposed: vec![],
            checkpointed: vec![run.sample(0, 4_000)],
        }
    );
}

#[test]
fn a_pruned_tx_taken_again_at_another_number_counts_from_there() {
    let mut chain = TestChain::up_to(10);
    let mut run = Run::new(&chain);
    run.send(tx(1), 0);
    chain.put(11, 0, &[tx(1)]);
    chain.tip(11, 10);
    assert_eq!(run.pass(&chain, 1_000).proposed, vec![run.sample(0, 1_000)]);
    chain.prune_above(10);
    chain.tip(10, 10);
    assert_eq!(run.pass(&chain, 2_000), Samples::default());
    chain.put(11, 1, &[]);
    chain.put(12, 1, &[tx(1)]);
    chain.tip(12, 11);
    assert_eq!(run.pass(&chain, 3_000), Samples::default());
    chain.tip(12, 12);
    assert_eq!(
        run.pass(&chain, 4_000).checkpointed,
        vec![run.sample(0, 4_000)]
    );
    assert!(run.pending().is_empty());
}

/// Finding 2a: the tips' number does not drop between the two passes, yet the blocks changed.
#[test]
fn a_prune_and_rebuild_between_two_passes_is_noticed() {
    let mut chain = TestChain::up_to(10);
    let mut run = Run::new(&chain);
    run.send(tx(1), 0);
    chain.put(11, 0, &[tx(1)]);
    chain.tip(11, 10);
    assert_eq!(run.pass(&chain, 1_000).proposed, vec![run.sample(0, 1_000)]);
    run.send(tx(2), 1_500);
    chain.prune_above(10);
    chain.put(11, 1, &[tx(1), tx(2)]);
    chain.put(12, 1, &[]);
    chain.tip(12, 10);
    assert_eq!(
        run.pass(&chain, 3_000),
        Samples {
            proposed: vec![run.sample(1_500, 3_000)],
            checkpointed: vec![],
        }
    );
    chain.tip(12, 12);
    assert_eq!(
        run.pass(&chain, 5_000).checkpointed,
        vec![run.sample(0, 5_000), run.sample(1_500, 5_000)]
    );
    assert!(run.pending().is_empty());
}

/// Finding 2b: an entry of a pruned block at a higher number must not hold back a lower block
/// that is checkpointed.
#[test]
fn a_stale_entry_does_not_delay_a_checkpointed_block() {
    let mut chain = TestChain::up_to(10);
    let mut run = Run::new(&chain);
    run.send(tx(1), 0);
    chain.put(11, 0, &[]);
    chain.put(12, 0, &[tx(1)]);
    chain.tip(12, 10);
    assert_eq!(run.pass(&chain, 1_000).proposed, vec![run.sample(0, 1_000)]);
    chain.prune_above(10);
    chain.tip(10, 10);
    assert_eq!(run.pass(&chain, 2_000), Samples::default());
    run.send(tx(2), 2_500);
    chain.put(11, 1, &[tx(1), tx(2)]);
    chain.put(12, 1, &[]);
    chain.tip(12, 11);
    assert_eq!(
        run.pass(&chain, 3_000),
        Samples {
            proposed: vec![run.sample(2_500, 3_000)],
            checkpointed: vec![run.sample(0, 3_000), run.sample(2_500, 3_000)],
        }
    );
    assert!(run.pending().is_empty());
}

#[test]
fn a_block_that_could_not_be_read_is_read_by_the_next_pass() {
    let mut chain = TestChain::up_to(10);
    let mut run = Run::new(&chain);
    run.send(tx(1), 0);
    // The tip says 12, but block 11 is not served yet.
    chain.put(12, 0, &[]);
    chain.tip(12, 10);
    assert_eq!(run.pass(&chain, 1_000), Samples::default());
    chain.put(11, 0, &[tx(1)]);
    assert_eq!(run.pass(&chain, 2_000).proposed, vec![run.sample(0, 2_000)]);
}
