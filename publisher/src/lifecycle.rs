//! The tx lifecycle as a pure function: given a record and what L1 shows now, the next step.
//! States (anchors §B.4): pending (sent, sped up) → mined | cancelling → cancelled | not mined.
//! "Mined" is always checked before "expired"; all times are L1 time (block timestamps).

use crate::{
    chain::Receipt,
    record::{AttemptKind, AttemptStatus, FinalState, TxRecord, TxState},
};

/// What L1 shows about one record, gathered by the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observation {
    /// Timestamp of the latest L1 block.
    pub(crate) l1_now: u64,
    /// Number of the latest L1 block.
    pub(crate) l1_number: u64,
    /// Txs of the record's key mined so far.
    pub(crate) mined_nonce: u64,
    /// The L1 block at which the record's nonce was first seen consumed with no receipt of any
    /// of its attempts (`None`: not consumed, or explained by a receipt).
    pub(crate) nonce_taken_since: Option<u64>,
    /// A mined attempt (index, receipt): for a `Mined` record the mined attempt if its receipt is
    /// still there, otherwise any attempt whose receipt exists.
    pub(crate) mined: Option<(usize, Receipt)>,
    /// L1 seconds the attempt that should be in the mempool ([`TxRecord::resend_candidate`])
    /// has been unknown to the L1 node (`None`: known).
    pub(crate) candidate_unseen_for: Option<u64>,
    /// The L1 node knows some attempt of the record (checked while cancelling): its nonce is
    /// still taken there, so it must not be given back.
    pub(crate) node_holds_nonce: bool,
    /// A live record of the same key holds a higher nonce, which waits for this one.
    pub(crate) higher_nonce_waits: bool,
    /// L1 time from which stalls are measured (the newest attempt, or the last skipped bump).
    pub(crate) stall_since: u64,
}

/// The lifecycle's timing, in L1 seconds (and blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub(crate) l1_slot: u64,
    pub(crate) stall: u64,
    pub(crate) max_speed_ups: u32,
    /// A cancel unseen this long is dropped.
    pub(crate) unseen_dropped: u64,
    /// A propose unseen this long is dropped.
    pub(crate) unseen_dropped_propose: u64,
    pub(crate) cancel_final: u64,
    /// Blocks (the including one counted) before a mined propose is landed.
    pub(crate) confirmations: u64,
}

/// The next thing to do for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing now.
    Wait,
    /// A propose attempt was mined with our event (or re-mined in another block): record it and
    /// watch it until its window closed and it has its confirmations.
    Mined { attempt: usize, receipt: Receipt },
    /// The mined propose's receipt is gone: it was reorged out.
    Reorged,
    /// Replace the newest attempt of this kind with higher fees.
    SpeedUp(AttemptKind),
    /// The window closed: replace with a same-nonce no-op.
    Cancel,
    /// Earlier cancels look dropped or timed out but the nonce cannot be given back (a higher
    /// nonce of the key waits behind it, or the node still holds a tx of it): a fresh cancel at
    /// current fees, or the highest one again once the ceiling is reached.
    RefreshCancel,
    /// Send the attempt that should be in the mempool again (dropped, or never confirmed).
    Rebroadcast,
    /// Done.
    Finish(FinalState),
}

/// The window is over once no further L1 block can fall inside it.
pub(crate) fn window_closed(record: &TxRecord, l1_now: u64, l1_slot: u64) -> bool {
    l1_now.saturating_add(l1_slot) >= record.window_end
}

/// Whether the next L1 block can be inside the window (it is not before its start).
pub(crate) fn window_reached(record: &TxRecord, l1_now: u64, l1_slot: u64) -> bool {
    l1_now.saturating_add(l1_slot) >= record.window_start
}

/// How a record ends when neither a propose nor a cancel is mined.
fn unmined_end(record: &TxRecord) -> FinalState {
    if record.reorgs > 0 {
        FinalState::Lost
    } else {
        FinalState::NotMined
    }
}

pub(crate) fn decide(record: &TxRecord, observation: &Observation, timing: &Timing) -> Step {
    match record.state {
        TxState::Final(_) => Step::Wait,
        TxState::Mined => decide_mined(record, observation, timing),
        TxState::Pending | TxState::Cancelling => {
            if let Some((attempt, receipt)) = observation.mined {
                return match record.attempts.get(attempt).map(|a| a.kind) {
                    Some(AttemptKind::Propose) if receipt.proposed => {
                        Step::Mined { attempt, receipt }
                    }
                    Some(AttemptKind::Propose) | None => Step::Finish(FinalState::Reverted),
                    Some(AttemptKind::Cancel) if record.reorgs > 0 => {
                        Step::Finish(FinalState::Lost)
                    }
                    Some(AttemptKind::Cancel) => Step::Finish(FinalState::Cancelled),
                };
            }
            if observation.mined_nonce > record.nonce {
                // A node can show the nonce consumed a moment before it serves the receipt
                // (anvil does; so can RPC backends behind one load balancer): only a
                // consumption still unexplained `confirmations` blocks later is another tx's.
                let since = observation
                    .nonce_taken_since
                    .unwrap_or(observation.l1_number);
                return if observation.l1_number.saturating_sub(since) >= timing.confirmations {
                    Step::Finish(FinalState::NonceTaken)
                } else {
                    Step::Wait
                };
            }
            if record.state == TxState::Pending {
                decide_pending(record, observation, timing)
            } else {
                decide_cancelling(record, observation, timing)
            }
        }
    }
}

/// A mined propose: landed once its window closed and it has its confirmations; a vanished
/// receipt is a reorg; a receipt without our event (re-mined after a reorg, and reverted) is a
/// revert.
fn decide_mined(record: &TxRecord, observation: &Observation, timing: &Timing) -> Step {
    let Some((attempt, receipt)) = observation.mined else {
        return Step::Reorged;
    };
    if !receipt.proposed {
        return Step::Finish(FinalState::Reverted);
    }
    if record
        .mined
        .is_none_or(|mined| mined.block_hash != receipt.block_hash)
    {
        return Step::Mined { attempt, receipt };
    }
    let confirmations = observation
        .l1_number
        .saturating_sub(receipt.block_number)
        .saturating_add(1);
    if window_closed(record, observation.l1_now, timing.l1_slot)
        && confirmations >= timing.confirmations
    {
        Step::Finish(FinalState::Landed)
    } else {
        Step::Wait
    }
}

fn stalled(observation: &Observation, timing: &Timing) -> bool {
    observation.l1_now.saturating_sub(observation.stall_since) >= timing.stall
}

fn decide_pending(record: &TxRecord, observation: &Observation, timing: &Timing) -> Step {
    let Some(latest) = record.latest() else {
        return Step::Finish(unmined_end(record));
    };
    if window_closed(record, observation.l1_now, timing.l1_slot) {
        // Nothing can be in a mempool when every attempt was refused; but a higher nonce
        // waiting behind this one still needs the nonce filled.
        let reached_a_node = record
            .attempts
            .iter()
            .any(|a| a.status != AttemptStatus::Refused);
        return if reached_a_node || observation.higher_nonce_waits {
            Step::Cancel
        } else {
            Step::Finish(unmined_end(record))
        };
    }
    // A propose mined before its window reverts: send only once the next block falls inside
    // it (L1 can be behind after a reorg).
    if !window_reached(record, observation.l1_now, timing.l1_slot) {
        return Step::Wait;
    }
    if latest.status == AttemptStatus::Signed {
        return Step::Rebroadcast;
    }
    if stalled(observation, timing) && record.speed_ups(AttemptKind::Propose) < timing.max_speed_ups
    {
        return Step::SpeedUp(AttemptKind::Propose);
    }
    let unseen = observation.candidate_unseen_for;
    let dropped = unseen.is_some_and(|unseen| unseen >= timing.unseen_dropped_propose);
    // A reorged-out propose is not coming back by itself.
    let reorged_out = record.reorgs > 0 && unseen.is_some_and(|unseen| unseen >= timing.l1_slot);
    if dropped || reorged_out {
        Step::Rebroadcast
    } else {
        Step::Wait
    }
}

fn decide_cancelling(record: &TxRecord, observation: &Observation, timing: &Timing) -> Step {
    let Some(first_cancel) = record
        .attempts
        .iter()
        .find(|a| a.kind == AttemptKind::Cancel)
    else {
        // Cancelling, but no cancel was signed yet (interrupted before it).
        return Step::Cancel;
    };
    if record
        .latest()
        .is_some_and(|latest| latest.status == AttemptStatus::Signed)
    {
        return Step::Rebroadcast;
    }
    let stalled = stalled(observation, timing);
    let timed_out =
        observation.l1_now.saturating_sub(first_cancel.signed_at_l1) >= timing.cancel_final;
    let dropped = observation
        .candidate_unseen_for
        .is_some_and(|unseen| unseen >= timing.unseen_dropped);
    if dropped || timed_out {
        // Give the nonce back only when nothing can take it behind our back: the node knows no
        // tx of it, and no higher nonce of the key needs it filled.
        if !observation.higher_nonce_waits && !observation.node_holds_nonce {
            return Step::Finish(unmined_end(record));
        }
        return if stalled {
            Step::RefreshCancel
        } else {
            Step::Wait
        };
    }
    if stalled && record.speed_ups(AttemptKind::Cancel) < timing.max_speed_ups {
        return Step::SpeedUp(AttemptKind::Cancel);
    }
    Step::Wait
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Attempt, MinedAt};
    use alloy::primitives::{Address, B256};
    use tandem_proto::time::Slot;

    const TIMING: Timing = Timing {
        l1_slot: 12,
        stall: 12,
        max_speed_ups: 3,
        unseen_dropped: 72,
        unseen_dropped_propose: 24,
        cancel_final: 288,
        confirmations: 2,
    };

    fn attempt(kind: AttemptKind, at: u64, status: AttemptStatus) -> Attempt {
        Attempt {
            kind,
            hash: B256::with_last_byte(at as u8),
            max_fee_per_gas: 10,
            max_priority_fee_per_gas: 1,
            gas_limit: 100,
            signed_at_l1: at,
            status,
        }
    }

    /// A propose for a window [1000, 1072) sent at 988.
    fn record() -> TxRecord {
        TxRecord {
            id: 0,
            key: Address::repeat_byte(1),
            nonce: 5,
            checkpoint_number: 3,
            target_slot: Slot(10),
            last_valid_slot: Slot(10),
            window_start: 1_000,
            window_end: 1_072,
            state: TxState::Pending,
            attempts: vec![attempt(AttemptKind::Propose, 988, AttemptStatus::Broadcast)],
            simulated_gas: 90,
            reorgs: 0,
            mined: None,
        }
    }

    /// L1 at `l1_now`, one block per 12 s from block 50 at 1000.
    fn observe(l1_now: u64) -> Observation {
        Observation {
            l1_now,
            l1_number: 50 + l1_now.saturating_sub(1_000) / 12,
            mined_nonce: 5,
            nonce_taken_since: None,
            mined: None,
            candidate_unseen_for: None,
            node_holds_nonce: false,
            higher_nonce_waits: false,
            stall_since: 988,
        }
    }

    fn receipt(proposed: bool) -> Receipt {
        Receipt {
            block_number: 50,
            block_hash: B256::repeat_byte(5),
            proposed,
            gas_used: 80,
            effective_gas_price: 7,
        }
    }

    /// `record` after the monitor noted `receipt` for attempt 0.
    fn mined(mut record: TxRecord, receipt: Receipt) -> TxRecord {
        record.state = TxState::Mined;
        record.mined = Some(MinedAt {
            attempt: 0,
            block_number: receipt.block_number,
            block_hash: receipt.block_hash,
            block_timestamp: 1_000,
            gas_used: receipt.gas_used,
            effective_gas_price: receipt.effective_gas_price,
        });
        record
    }

    #[test]
    fn mined_with_event_is_watched_until_the_window_closes_and_it_is_confirmed() {
        let record = record();
        let seen = Observation {
            mined: Some((0, receipt(true))),
            mined_nonce: 6,
            ..observe(1_000)
        };
        assert_eq!(
            decide(&record, &seen, &TIMING),
            Step::Mined {
                attempt: 0,
                receipt: receipt(true)
            }
        );
        let watched = mined(record.clone(), receipt(true));
        assert_eq!(decide(&watched, &seen, &TIMING), Step::Wait);
        // Window closed, block 53 on top of block 50: confirmed.
        let late = Observation {
            l1_now: 1_060,
            l1_number: 55,
            ..seen
        };
        assert_eq!(
            decide(&watched, &late, &TIMING),
            Step::Finish(FinalState::Landed)
        );
        // Mined in the window's last block: the window is closed, but the block has no
        // confirmation yet — landed only once a block is on top of it.
        let last_block = Receipt {
            block_number: 55,
            ..receipt(true)
        };
        let watched = mined(record.clone(), last_block);
        let at_the_tip = Observation {
            mined: Some((0, last_block)),
            l1_number: 55,
            ..late
        };
        assert_eq!(decide(&watched, &at_the_tip, &TIMING), Step::Wait);
        let on_top = Observation {
            l1_number: 56,
            l1_now: 1_072,
            ..at_the_tip
        };
        assert_eq!(
            decide(&watched, &on_top, &TIMING),
            Step::Finish(FinalState::Landed)
        );
        // The unmined record seeing that receipt records it first, even after the window.
        assert_eq!(
            decide(&record, &at_the_tip, &TIMING),
            Step::Mined {
                attempt: 0,
                receipt: last_block
            }
        );
    }

    #[test]
    fn mined_is_checked_before_expired() {
        let record = record();
        let after_window = Observation {
            mined: Some((0, receipt(true))),
            mined_nonce: 6,
            ..observe(1_200)
        };
        assert_eq!(
            decide(&record, &after_window, &TIMING),
            Step::Mined {
                attempt: 0,
                receipt: receipt(true)
            }
        );
        let reverted = Observation {
            mined: Some((0, receipt(false))),
            ..after_window
        };
        assert_eq!(
            decide(&record, &reverted, &TIMING),
            Step::Finish(FinalState::Reverted)
        );
    }

    #[test]
    fn a_mined_propose_reorged_and_re_mined_is_judged_by_its_new_receipt() {
        let watched = mined(record(), receipt(true));
        // Re-mined in another block, and reverted there (e.g. after a competing checkpoint):
        // not landed.
        let reverted = Receipt {
            block_hash: B256::repeat_byte(6),
            block_number: 51,
            ..receipt(false)
        };
        let observation = Observation {
            mined: Some((0, reverted)),
            mined_nonce: 6,
            ..observe(1_060)
        };
        assert_eq!(
            decide(&watched, &observation, &TIMING),
            Step::Finish(FinalState::Reverted)
        );
        // Re-mined in another block with our event: that block is recorded first.
        let moved = Receipt {
            proposed: true,
            ..reverted
        };
        let observation = Observation {
            mined: Some((0, moved)),
            ..observation
        };
        assert_eq!(
            decide(&watched, &observation, &TIMING),
            Step::Mined {
                attempt: 0,
                receipt: moved
            }
        );
    }

    #[test]
    fn a_vanished_receipt_is_a_reorg_and_a_mined_cancel_after_it_means_lost() {
        let mut record = mined(record(), receipt(true));
        assert_eq!(decide(&record, &observe(1_010), &TIMING), Step::Reorged);
        record.state = TxState::Cancelling;
        record.reorgs = 1;
        record.attempts.push(attempt(
            AttemptKind::Cancel,
            1_062,
            AttemptStatus::Broadcast,
        ));
        let cancel_mined = Observation {
            mined: Some((1, receipt(false))),
            mined_nonce: 6,
            ..observe(1_070)
        };
        assert_eq!(
            decide(&record, &cancel_mined, &TIMING),
            Step::Finish(FinalState::Lost)
        );
    }

    #[test]
    fn stalls_are_sped_up_a_bounded_number_of_times_then_cancelled_when_the_window_closes() {
        let mut record = record();
        assert_eq!(decide(&record, &observe(999), &TIMING), Step::Wait);
        assert_eq!(
            decide(&record, &observe(1_000), &TIMING),
            Step::SpeedUp(AttemptKind::Propose)
        );
        for at in [1_000, 1_012, 1_024] {
            record
                .attempts
                .push(attempt(AttemptKind::Propose, at, AttemptStatus::Broadcast));
        }
        let stalled = Observation {
            stall_since: 1_024,
            ..observe(1_040)
        };
        assert_eq!(decide(&record, &stalled, &TIMING), Step::Wait);
        // 1060 + 12 >= 1072: no block can land in the window any more.
        assert_eq!(decide(&record, &observe(1_060), &TIMING), Step::Cancel);
    }

    #[test]
    fn a_dropped_propose_is_rebroadcast_after_its_own_shorter_threshold() {
        let mut record = record();
        record.attempts[0].status = AttemptStatus::Signed;
        assert_eq!(decide(&record, &observe(990), &TIMING), Step::Rebroadcast);
        record.attempts[0].status = AttemptStatus::Broadcast;
        let mut exhausted = record.clone();
        for at in [990, 991, 992] {
            exhausted
                .attempts
                .push(attempt(AttemptKind::Propose, at, AttemptStatus::Broadcast));
        }
        let unseen = |for_secs| Observation {
            candidate_unseen_for: Some(for_secs),
            stall_since: 1_025,
            ..observe(1_030)
        };
        // Two L1 slots unseen: a propose is dropped (the cancel threshold, 72 s, would be
        // longer than its whole window).
        assert_eq!(decide(&exhausted, &unseen(24), &TIMING), Step::Rebroadcast);
        assert_eq!(decide(&exhausted, &unseen(23), &TIMING), Step::Wait);
        // A cancel unseen as long is not dropped yet.
        let mut cancelling = exhausted.clone();
        cancelling.state = TxState::Cancelling;
        cancelling.attempts.push(attempt(
            AttemptKind::Cancel,
            1_029,
            AttemptStatus::Broadcast,
        ));
        let unseen_cancel = Observation {
            stall_since: 1_029,
            ..unseen(24)
        };
        assert_eq!(decide(&cancelling, &unseen_cancel, &TIMING), Step::Wait);
    }

    #[test]
    fn a_reorged_out_propose_is_sent_again_only_once_l1_is_back_in_its_window() {
        let mut record = record();
        record.reorgs = 1;
        let unseen = |l1_now| Observation {
            candidate_unseen_for: Some(12),
            stall_since: l1_now,
            ..observe(l1_now)
        };
        // The reorg took L1 back to before the window: sending now could land too early.
        assert_eq!(decide(&record, &unseen(980), &TIMING), Step::Wait);
        assert_eq!(decide(&record, &unseen(988), &TIMING), Step::Rebroadcast);
        let just_gone = Observation {
            candidate_unseen_for: Some(0),
            ..unseen(1_000)
        };
        assert_eq!(decide(&record, &just_gone, &TIMING), Step::Wait);
    }

    #[test]
    fn a_window_closing_with_only_refused_attempts_needs_no_cancel() {
        let mut record = record();
        record.attempts[0].status = AttemptStatus::Refused;
        assert_eq!(
            decide(&record, &observe(1_065), &TIMING),
            Step::Finish(FinalState::NotMined)
        );
        let gap = Observation {
            higher_nonce_waits: true,
            ..observe(1_065)
        };
        assert_eq!(decide(&record, &gap, &TIMING), Step::Cancel);
    }

    #[test]
    fn cancels_end_cancelled_or_not_mined_and_keep_trying_while_the_nonce_is_needed() {
        let mut record = record();
        record.state = TxState::Cancelling;
        // Cancelling without a cancel yet (stopped before signing it): sign one.
        assert_eq!(decide(&record, &observe(1_062), &TIMING), Step::Cancel);
        record.attempts.push(attempt(
            AttemptKind::Cancel,
            1_062,
            AttemptStatus::Broadcast,
        ));
        let mined = Observation {
            mined: Some((1, receipt(false))),
            mined_nonce: 6,
            ..observe(1_070)
        };
        assert_eq!(
            decide(&record, &mined, &TIMING),
            Step::Finish(FinalState::Cancelled)
        );
        let stalled = Observation {
            stall_since: 1_062,
            ..observe(1_074)
        };
        assert_eq!(
            decide(&record, &stalled, &TIMING),
            Step::SpeedUp(AttemptKind::Cancel)
        );
        let dropped = Observation {
            candidate_unseen_for: Some(80),
            stall_since: 1_070,
            ..observe(1_075)
        };
        assert_eq!(
            decide(&record, &dropped, &TIMING),
            Step::Finish(FinalState::NotMined)
        );
        let timed_out = Observation {
            stall_since: 1_345,
            ..observe(1_350)
        };
        assert_eq!(
            decide(&record, &timed_out, &TIMING),
            Step::Finish(FinalState::NotMined)
        );
        // The node still holds a tx of the nonce: giving it back would let the next propose
        // start above a nonce that may still be mined, or dropped later (an untracked gap).
        let still_held = Observation {
            node_holds_nonce: true,
            ..timed_out
        };
        assert_eq!(decide(&record, &still_held, &TIMING), Step::Wait);
        let still_held_stalled = Observation {
            stall_since: 1_330,
            ..still_held
        };
        assert_eq!(
            decide(&record, &still_held_stalled, &TIMING),
            Step::RefreshCancel
        );
        let gap = Observation {
            higher_nonce_waits: true,
            ..timed_out
        };
        assert_eq!(decide(&record, &gap, &TIMING), Step::Wait);
        let gap_stalled = Observation {
            stall_since: 1_330,
            ..gap
        };
        assert_eq!(decide(&record, &gap_stalled, &TIMING), Step::RefreshCancel);
    }

    #[test]
    fn a_nonce_taken_by_an_unknown_tx_ends_the_record_once_confirmed() {
        let record = record();
        // First seen consumed at block 50 (1000), with no receipt of ours: maybe the node just
        // has not indexed it yet.
        let taken = |l1_now| Observation {
            mined_nonce: 6,
            nonce_taken_since: Some(50),
            ..observe(l1_now)
        };
        assert_eq!(decide(&record, &taken(1_000), &TIMING), Step::Wait);
        assert_eq!(decide(&record, &taken(1_012), &TIMING), Step::Wait);
        // Still unexplained two blocks on (the confirmations): another tx took it.
        assert_eq!(
            decide(&record, &taken(1_024), &TIMING),
            Step::Finish(FinalState::NonceTaken)
        );
        // Even past the window, waiting for the receipt comes before a cancel.
        assert_eq!(
            decide(&record, &taken(1_060), &TIMING),
            Step::Finish(FinalState::NonceTaken)
        );
        let late = Observation {
            nonce_taken_since: Some(55),
            ..taken(1_060)
        };
        assert_eq!(decide(&record, &late, &TIMING), Step::Wait);
    }
}
