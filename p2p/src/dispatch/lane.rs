//! One lane: the proposals of one (slot, proposer), handed out in order — blocks by index, one
//! at a time, then the checkpoint once every block up to its last one was handled. Pure state;
//! the dispatcher runs the work it hands out.

use std::{collections::BTreeMap, time::Instant};

use libp2p::PeerId;
use tandem_proto::{BlockProposal, CheckpointProposal, time::Timestamp};

use crate::verified::Verified;

/// Most missing blocks a lane asks for at once: the next few from where it stands. The lane
/// can only move on with its next index, so asking for a whole gap at once (up to a checkpoint's
/// last index) only multiplies requests; the rest is asked for once those arrive.
pub(super) const MAX_FETCH_AHEAD: u32 = 4;

/// Most bytes of blocks one lane holds while they wait for the blocks before them (a few
/// full-size proposals). The block the lane needs next is always taken.
pub(super) const MAX_LANE_BYTES: usize = 48 * 1024 * 1024;

/// Memory a block proposal holds (txs are fixed size).
pub(super) fn held_bytes(block: &BlockProposal) -> usize {
    std::mem::size_of::<BlockProposal>()
        + block.tx_hashes.len() * std::mem::size_of::<tandem_proto::B256>()
        + block.txs.len() * std::mem::size_of::<tandem_proto::Tx>()
}

/// What became of a block offered to a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Push {
    Queued,
    /// Its index was passed, or the checkpoint was handled already.
    TooLate,
    /// Holding it would pass the lane's or the dispatcher's byte bound: dropped, and fetched
    /// again once the lane gets near it.
    OverBudget,
}

/// Work for a handler.
#[derive(Debug)]
pub(super) enum Work {
    Block(Verified<BlockProposal>),
    Checkpoint(Verified<CheckpointProposal>),
}

/// What a finished piece of work was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Finished {
    Block { index: u32 },
    Checkpoint,
}

/// Fetching a missing block.
#[derive(Debug)]
pub(super) struct Fetch {
    /// Attempts made for the current gap.
    pub(super) attempts: u32,
    /// Earliest next attempt.
    pub(super) next_at: Instant,
    pub(super) in_flight: bool,
}

#[derive(Debug)]
pub(super) struct Lane {
    /// The slot's attestation deadline: every call is cancelled then, and the lane dropped.
    pub(super) deadline: Timestamp,
    next_index: u32,
    blocks: BTreeMap<u32, Verified<BlockProposal>>,
    checkpoint: Option<(u32, Verified<CheckpointProposal>)>,
    /// What `blocks` holds, by [`held_bytes`].
    bytes: usize,
    busy: bool,
    done: bool,
    /// A peer that sent a later proposal, so likely has the missing one.
    pub(super) hint: Option<PeerId>,
    /// Set while the lane waits for a block it does not have.
    pub(super) fetch: Option<Fetch>,
}

impl Lane {
    pub(super) fn new(deadline: Timestamp) -> Self {
        Self {
            deadline,
            next_index: 0,
            blocks: BTreeMap::new(),
            checkpoint: None,
            bytes: 0,
            busy: false,
            done: false,
            hint: None,
            fetch: None,
        }
    }

    /// Queues a block, unless it comes too late or holding it would pass [`MAX_LANE_BYTES`] or
    /// the `room` the dispatcher has left over all lanes. The block the lane needs next is
    /// always taken: it is handed out at once.
    pub(super) fn push_block(&mut self, block: Verified<BlockProposal>, room: usize) -> Push {
        let index = block.header.index_within_checkpoint;
        if self.done || index < self.next_index || self.blocks.contains_key(&index) {
            return Push::TooLate;
        }
        let size = held_bytes(&block);
        if index != self.next_index
            && (self.bytes.saturating_add(size) > MAX_LANE_BYTES || size > room)
        {
            return Push::OverBudget;
        }
        if block.source().is_some() {
            self.hint = block.source();
        }
        self.bytes += size;
        self.blocks.insert(index, block);
        Push::Queued
    }

    /// Bytes of blocks the lane holds.
    pub(super) const fn bytes(&self) -> usize {
        self.bytes
    }

    /// Queues the checkpoint, whose last block has index `last_index`.
    pub(super) fn push_checkpoint(
        &mut self,
        last_index: u32,
        checkpoint: Verified<CheckpointProposal>,
    ) -> bool {
        if self.done || self.checkpoint.is_some() {
            return false;
        }
        if checkpoint.source().is_some() {
            self.hint = checkpoint.source();
        }
        self.checkpoint = Some((last_index, checkpoint));
        true
    }

    /// The next piece of work, if the lane is idle and has one.
    pub(super) fn next_work(&mut self) -> Option<Work> {
        if self.busy || self.done {
            return None;
        }
        if let Some(block) = self.blocks.remove(&self.next_index) {
            self.bytes = self.bytes.saturating_sub(held_bytes(&block));
            self.busy = true;
            self.fetch = None;
            return Some(Work::Block(block));
        }
        if self
            .checkpoint
            .as_ref()
            .is_some_and(|(last_index, _)| *last_index < self.next_index)
        {
            let (_, checkpoint) = self.checkpoint.take()?;
            self.busy = true;
            self.fetch = None;
            return Some(Work::Checkpoint(checkpoint));
        }
        None
    }

    pub(super) fn finish(&mut self, finished: Finished) {
        self.busy = false;
        match finished {
            Finished::Block { index } => self.next_index = self.next_index.max(index + 1),
            Finished::Checkpoint => {
                // Blocks past the checkpoint's last one are not part of it: never handled.
                self.done = true;
                self.blocks.clear();
                self.bytes = 0;
            }
        }
    }

    /// Block indices the lane waits for: from the next one up to (not including) the first
    /// block it holds, or up to the checkpoint's last block; at most [`MAX_FETCH_AHEAD`].
    pub(super) fn missing(&self) -> Option<std::ops::Range<u32>> {
        if self.busy || self.done || self.blocks.contains_key(&self.next_index) {
            return None;
        }
        let upper = match (self.blocks.keys().next(), &self.checkpoint) {
            (Some(first), _) => *first,
            (None, Some((last_index, _))) if *last_index >= self.next_index => last_index + 1,
            _ => return None,
        };
        Some(self.next_index..upper.min(self.next_index.saturating_add(MAX_FETCH_AHEAD)))
    }

    /// Accepted proposals still waiting: blocks, and whether the checkpoint is among them.
    pub(super) fn unhandled(&self) -> (usize, bool) {
        (self.blocks.len(), self.checkpoint.is_some())
    }

    pub(super) const fn is_busy(&self) -> bool {
        self.busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_proto::Address;

    fn block(index: u32) -> Verified<BlockProposal> {
        let mut proposal = BlockProposal::default();
        proposal.header.index_within_checkpoint = index;
        Verified::new(proposal, Address::ZERO, Timestamp(0))
    }

    fn checkpoint() -> Verified<CheckpointProposal> {
        Verified::new(CheckpointProposal::default(), Address::ZERO, Timestamp(0))
    }

    fn run(lane: &mut Lane) -> Vec<String> {
        let mut log = Vec::new();
        while let Some(work) = lane.next_work() {
            match work {
                Work::Block(block) => {
                    let index = block.header.index_within_checkpoint;
                    log.push(format!("block {index}"));
                    lane.finish(Finished::Block { index });
                }
                Work::Checkpoint(_) => {
                    log.push("checkpoint".to_owned());
                    lane.finish(Finished::Checkpoint);
                }
            }
        }
        log
    }

    #[test]
    fn a_checkpoint_waits_for_the_blocks_before_it() {
        let mut lane = Lane::new(Timestamp(1));
        assert_eq!(Push::Queued, lane.push_block(block(2), usize::MAX));
        assert!(lane.push_checkpoint(2, checkpoint()));
        assert!(run(&mut lane).is_empty());
        assert_eq!(lane.missing(), Some(0..2));
        assert_eq!(Push::Queued, lane.push_block(block(1), usize::MAX));
        assert_eq!(lane.missing(), Some(0..1));
        assert_eq!(Push::Queued, lane.push_block(block(0), usize::MAX));
        assert_eq!(lane.missing(), None);

        // A far gap is asked for a few blocks at a time, never all at once.
        let mut far = Lane::new(Timestamp(1));
        assert_eq!(Push::Queued, far.push_block(block(900), usize::MAX));
        assert_eq!(far.missing(), Some(0..MAX_FETCH_AHEAD));
        assert_eq!(
            run(&mut lane),
            ["block 0", "block 1", "block 2", "checkpoint"]
        );
        assert_eq!(lane.unhandled(), (0, false));
        // Nothing more for this lane once its checkpoint was handled.
        assert_eq!(Push::TooLate, lane.push_block(block(3), usize::MAX));
    }

    #[test]
    fn one_piece_of_work_at_a_time() {
        let mut lane = Lane::new(Timestamp(1));
        let _ = lane.push_block(block(0), usize::MAX);
        let _ = lane.push_block(block(1), usize::MAX);
        let Some(Work::Block(first)) = lane.next_work() else {
            panic!("block 0 first");
        };
        assert_eq!(first.header.index_within_checkpoint, 0);
        assert!(lane.is_busy());
        assert!(
            lane.next_work().is_none(),
            "block 1 waits for block 0's handler"
        );
        assert_eq!(lane.missing(), None);
        lane.finish(Finished::Block { index: 0 });
        assert_eq!(run(&mut lane), ["block 1"]);
        // A late copy of a handled block is not handled twice.
        assert_eq!(Push::TooLate, lane.push_block(block(0), usize::MAX));
    }

    #[test]
    fn a_checkpoint_whose_blocks_were_handled_goes_at_once_and_later_blocks_are_dropped() {
        let mut lane = Lane::new(Timestamp(1));
        let _ = lane.push_block(block(0), usize::MAX);
        let _ = lane.push_block(block(2), usize::MAX);
        assert_eq!(run(&mut lane), ["block 0"]);
        assert_eq!(lane.missing(), Some(1..2));
        lane.push_checkpoint(0, checkpoint());
        assert_eq!(run(&mut lane), ["checkpoint"]);
        assert_eq!(lane.unhandled(), (0, false));
    }
}

#[cfg(test)]
mod bytes_tests {
    use super::*;
    use tandem_proto::{Address, Tx};

    fn big_block(index: u32, txs: usize) -> Verified<BlockProposal> {
        let mut proposal = BlockProposal::default();
        proposal.header.index_within_checkpoint = index;
        proposal.txs = vec![Tx::default(); txs];
        Verified::new(proposal, Address::ZERO, Timestamp(0))
    }

    #[test]
    fn a_lane_holds_a_bounded_number_of_bytes_but_always_takes_its_next_block() {
        let txs = 4096;
        let size = held_bytes(big_block(0, txs).message());
        let fit = MAX_LANE_BYTES / size;
        let mut lane = Lane::new(Timestamp(1));
        // Block 0 is withheld: later blocks pile up only to the bound, and are counted.
        let mut over = 0;
        for index in 1..=u32::try_from(fit + 3).unwrap() {
            match lane.push_block(big_block(index, txs), usize::MAX) {
                Push::Queued => {}
                Push::OverBudget => over += 1,
                Push::TooLate => panic!("not late"),
            }
        }
        assert_eq!(over, 3);
        assert!(lane.bytes() <= MAX_LANE_BYTES);
        assert_eq!(lane.unhandled().0, fit);
        // The dispatcher's room over all lanes bounds it too.
        assert_eq!(lane.push_block(big_block(900, 1), 0), Push::OverBudget);
        // The block the lane waits for is taken even so, and handing it out frees its bytes.
        assert_eq!(lane.push_block(big_block(0, txs), 0), Push::Queued);
        let held = lane.bytes();
        assert!(matches!(lane.next_work(), Some(Work::Block(_))));
        assert_eq!(lane.bytes(), held - size);
    }
}
