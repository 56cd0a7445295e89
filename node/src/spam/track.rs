//! The inclusion tracker of `tandem spam`: follows a node's tips and records when tracked txs
//! are proposed (the first proposed block holding them) and checkpointed (that block, or the
//! block that took them after a prune, unchanged at or below the checkpointed tip).
//!
//! One pass is [`Tracker::read`] (the RPC calls) then [`Tracker::step`] (pure: the samples
//! follow from what was read and the pass's time). Each new block is read once instead of
//! asking about every tx, so the latency's resolution is the poll interval at any rate.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tandem_proto::B256;

use super::Tracked;
use crate::client::{NodeClient, quantity};

/// The node's tips, by block number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Tips {
    pub(super) proposed: u64,
    pub(super) checkpointed: u64,
}

/// A block as the tracker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Block {
    pub(super) hash: B256,
    pub(super) txs: Vec<B256>,
}

/// What the tracker reads from a node.
pub(super) trait Chain {
    async fn tips(&self) -> Option<Tips>;
    async fn block(&self, number: u64) -> Option<Block>;
}

impl Chain for NodeClient {
    async fn tips(&self) -> Option<Tips> {
        let tips: Value = self.call("tandem_getL2Tips", vec![]).await.ok()?;
        Some(Tips {
            proposed: quantity(&tips["proposed"]["block"]["number"])?,
            checkpointed: quantity(&tips["checkpointed"]["block"]["number"])?,
        })
    }

    async fn block(&self, number: u64) -> Option<Block> {
        let block: Value = self
            .call(
                "tandem_getBlock",
                vec![json!(format!("0x{number:x}")), json!(false)],
            )
            .await
            .ok()?;
        Some(Block {
            hash: serde_json::from_value(block["hash"].clone()).ok()?,
            txs: serde_json::from_value(block["txs"].clone()).ok()?,
        })
    }
}

/// What one pass read: the tips and the blocks it asked for (a failed read is missing).
#[derive(Debug)]
pub(super) struct View {
    tips: Tips,
    blocks: BTreeMap<u64, Block>,
}

/// One latency sample: when the tx was sent and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) sent: Instant,
    pub(crate) latency: Duration,
}

/// The samples of one pass.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Samples {
    pub(super) proposed: Vec<Sample>,
    pub(super) checkpointed: Vec<Sample>,
}

/// A proposed block holding tracked txs, waiting for its checkpoint to land.
#[derive(Debug)]
struct Held {
    hash: B256,
    txs: Vec<B256>,
}

#[derive(Debug, Default)]
pub(super) struct Tracker {
    /// The last block read; `None` until the first pass has seen the tip.
    read: Option<(u64, B256)>,
    /// The checkpointed tip at the last pass: nothing at or below it is pruned.
    checkpointed: u64,
    /// By number: every entry at or below the checkpointed tip is settled in the same pass.
    held: BTreeMap<u64, Held>,
}

impl Tracker {
    /// Where a pass reads from, and whether it rewinds: after the last block read if that
    /// block is unchanged, else (a prune, perhaps rebuilt to the same height or past it
    /// between two passes) from the last checkpointed tip, which a prune does not touch.
    fn resume(&self, tips: Tips, at_read: Option<&Block>) -> Option<(u64, bool)> {
        let (number, hash) = self.read?;
        Some(if at_read.is_some_and(|block| block.hash == hash) {
            (number.saturating_add(1), false)
        } else {
            (self.checkpointed.min(tips.checkpointed).min(number), true)
        })
    }

    /// Reads the tips and the blocks [`Tracker::step`] needs; `None` if the tips could not be
    /// read.
    pub(super) async fn read(&self, chain: &impl Chain) -> Option<View> {
        let tips = chain.tips().await?;
        let mut blocks = BTreeMap::new();
        let at_read = match self.read {
            Some((number, _)) if number <= tips.proposed => chain.block(number).await,
            _ => None,
        };
        let from = match self.resume(tips, at_read.as_ref()) {
            Some((from, _)) => from,
            // First pass: only the tip, which no tracked tx can be in yet.
            None => tips.proposed,
        };
        if let (Some((number, _)), Some(block)) = (self.read, at_read) {
            blocks.insert(number, block);
        }
        for number in from..=tips.proposed {
            let Some(block) = chain.block(number).await else {
                break;
            };
            blocks.insert(number, block);
        }
        let unread: Vec<u64> = self
            .held
            .range(..=tips.checkpointed)
            .map(|(&number, _)| number)
            .filter(|number| !blocks.contains_key(number))
            .collect();
        for number in unread {
            if let Some(block) = chain.block(number).await {
                blocks.insert(number, block);
            }
        }
        Some(View { tips, blocks })
    }

    /// One pass over what [`Tracker::read`] read, at time `now`: marks the txs of new blocks
    /// proposed, settles every held block at or below the checkpointed tip, and returns the
    /// latencies observed.
    pub(super) fn step(
        &mut self,
        view: &View,
        tracked: &mut VecDeque<Tracked>,
        now: Instant,
    ) -> Samples {
        let tips = view.tips;
        let mut samples = Samples::default();
        let at_read = self.read.and_then(|(number, _)| view.blocks.get(&number));
        let Some((from, rewound)) = self.resume(tips, at_read) else {
            if let Some(block) = view.blocks.get(&tips.proposed) {
                self.read = Some((tips.proposed, block.hash));
                self.checkpointed = tips.checkpointed;
            }
            return samples;
        };
        if rewound {
            // Entries above the rewind point are of pruned blocks; their txs stay tracked and
            // are taken up again from the blocks that hold them now.
            self.held.retain(|&number, _| number <= from);
            // Unknown until read: the next pass finds it changed and rewinds again.
            self.read = Some((from, B256::ZERO));
        }
        for number in from..=tips.proposed {
            let Some(block) = view.blocks.get(&number) else {
                break;
            };
            self.read = Some((number, block.hash));
            let mut mine = Vec::new();
            for tx in &block.txs {
                if let Some(entry) = tracked.iter_mut().find(|t| t.hash == *tx) {
                    if !entry.proposed {
                        entry.proposed = true;
                        samples.proposed.push(sample(entry.sent, now));
                    }
                    mine.push(*tx);
                }
            }
            // A block built again at this number replaces what was held there.
            if mine.is_empty() {
                self.held.remove(&number);
            } else {
                self.held.insert(
                    number,
                    Held {
                        hash: block.hash,
                        txs: mine,
                    },
                );
            }
        }
        let due: Vec<u64> = self
            .held
            .range(..=tips.checkpointed)
            .map(|(&number, _)| number)
            .collect();
        for number in due {
            let Some(block) = view.blocks.get(&number) else {
                // Not read this pass: settled by the next one.
                continue;
            };
            let Some(held) = self.held.remove(&number) else {
                continue;
            };
            if block.hash != held.hash {
                continue;
            }
            for tx in held.txs {
                if let Some(position) = tracked.iter().position(|t| t.hash == tx)
                    && let Some(entry) = tracked.remove(position)
                {
                    samples.checkpointed.push(sample(entry.sent, now));
                }
            }
        }
        self.checkpointed = tips.checkpointed;
        samples
    }
}

fn sample(sent: Instant, now: Instant) -> Sample {
    Sample {
        sent,
        latency: now.saturating_duration_since(sent),
    }
}

#[cfg(test)]
#[path = "track_tests.rs"]
mod tests;
