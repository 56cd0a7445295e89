use std::collections::{BTreeMap, BTreeSet};

use tandem_proto::{BlockId, archive::ArchiveTree};

use super::*;
use crate::chain::{CheckpointSummary, LastBlock, ProposedSummary};

const IDENTITY: ChainIdentity = ChainIdentity {
    chain_id: 1,
    rollup_version: 1,
};

/// A chain whose checkpointed tip is checkpoint 1 (blocks 1–2), with `last` the latest
/// block.
fn chain(last: BlockHeader) -> ChainState {
    let mut archive = ArchiveTree::new();
    archive.append(B256::repeat_byte(1)).unwrap();
    ChainState {
        checkpointed: CheckpointSummary {
            number: 1,
            header_hash: B256::repeat_byte(1),
            start_block: 1,
            last_block: BlockId {
                number: 2,
                hash: B256::repeat_byte(2),
            },
            l1: Default::default(),
        },
        finalized: Default::default(),
        proposed: BTreeMap::new(),
        last: LastBlock {
            hash: last.hash(),
            header: last,
            archive,
        },
        l1_synced: None,
        awaiting: BTreeSet::new(),
        prune_seq: 0,
    }
}

fn block(number: u64, checkpoint: u64, index: u32, slot: u64) -> BlockHeader {
    BlockHeader {
        chain_id: 1,
        rollup_version: 1,
        block_number: number,
        checkpoint_number: checkpoint,
        index_within_checkpoint: index,
        slot,
        ..Default::default()
    }
}

const LIMITS: Limits = Limits {
    max_proposed_depth: 3,
};

/// What is stored, for the checkpoint rules.
#[derive(Default)]
struct Records {
    l1: Option<CheckpointRecord>,
    proposed: Option<ProposedCheckpoint>,
    awaiting: Option<AwaitingCheckpoint>,
}

impl StoredCheckpoints for Records {
    fn l1_checkpoint(&self, _: u64) -> ArchiverResult<Option<CheckpointRecord>> {
        Ok(self.l1.clone())
    }
    fn proposed_checkpoint(&self, _: u64) -> ArchiverResult<Option<ProposedCheckpoint>> {
        Ok(self.proposed.clone())
    }
    fn awaiting_checkpoint(&self, _: u64) -> ArchiverResult<Option<AwaitingCheckpoint>> {
        Ok(self.awaiting.clone())
    }
}

fn next_of(chain: &ChainState, mut header: BlockHeader) -> BlockHeader {
    header.last_archive_root = chain.last.archive_root();
    header
}

fn decide(chain: &ChainState, header: &BlockHeader) -> ArchiverResult<BlockDecision> {
    check_proposed_block(
        chain,
        &IDENTITY,
        &LIMITS,
        header,
        header.hash(),
        true,
        |_| Ok(Some(B256::repeat_byte(0xaa))),
    )
}

#[test]
fn block_rules_name_each_failure() {
    let last = block(2, 1, 1, 5);
    let chain = chain(last.clone());
    let ok = next_of(&chain, block(3, 2, 0, 6));
    assert_eq!(decide(&chain, &ok).unwrap(), BlockDecision::Append);
    // The same block again: a lookup returning its hash makes it a duplicate.
    assert_eq!(
        check_proposed_block(
            &chain,
            &IDENTITY,
            &LIMITS,
            &last,
            last.hash(),
            true,
            |_| Ok(Some(last.hash()))
        )
        .unwrap(),
        BlockDecision::AlreadyStored
    );
    assert!(matches!(
        decide(&chain, &last),
        Err(ArchiverError::CannotOverwriteCheckpointedBlock { number: 2 })
    ));
    assert!(matches!(
        decide(&chain, &next_of(&chain, block(5, 2, 0, 6))),
        Err(ArchiverError::ParentNotStored {
            number: 5,
            latest: 2
        })
    ));
    let err = decide(&chain, &next_of(&chain, block(3, 3, 0, 6))).unwrap_err();
    assert!(matches!(
        err,
        ArchiverError::BlockCheckpointNumberNotSequential {
            checkpoint: 3,
            previous: 1,
            ..
        }
    ));
    assert_eq!(err.disposition(), crate::Disposition::RetryLater);
    assert!(matches!(
        decide(&chain, &block(3, 2, 0, 6)),
        Err(ArchiverError::BlockArchiveNotConsistent { block: 3 })
    ));
    assert!(matches!(
        decide(&chain, &next_of(&chain, block(3, 2, 1, 6))),
        Err(ArchiverError::BlockIndexNotSequential {
            expected: 0,
            got: 1,
            ..
        })
    ));
    assert!(matches!(
        decide(&chain, &next_of(&chain, block(3, 2, 0, 5))),
        Err(ArchiverError::BlockGlobalsNotConsistent { block: 3 })
    ));
    let mut other_chain = next_of(&chain, block(3, 2, 0, 6));
    other_chain.chain_id = 2;
    assert!(matches!(
        decide(&chain, &other_chain),
        Err(ArchiverError::WrongChain { chain_id: 2, .. })
    ));
    assert!(matches!(
        check_proposed_block(&chain, &IDENTITY, &LIMITS, &ok, ok.hash(), false, |_| Ok(
            None
        )),
        Err(ArchiverError::BodyMismatch { block: 3 })
    ));

    // A block continuing checkpoint 2 must carry its globals (here: another coinbase).
    let mut chain = chain;
    chain.last.header = ok;
    let mut next = next_of(&chain, block(4, 2, 1, 6));
    next.coinbase = tandem_proto::Address::repeat_byte(7);
    assert!(matches!(
        decide(&chain, &next),
        Err(ArchiverError::BlockGlobalsNotConsistent { block: 4 })
    ));
    // Once checkpoint 2 is proposed, nothing joins it.
    chain.proposed.insert(
        2,
        ProposedSummary {
            header_hash: B256::ZERO,
            start_block: 3,
            last_block: BlockId::default(),
        },
    );
    assert!(matches!(
        decide(&chain, &next_of(&chain, block(4, 2, 1, 6))),
        Err(ArchiverError::CheckpointAlreadyProposed {
            block: 4,
            checkpoint: 2
        })
    ));
}

#[test]
fn checkpoint_rules_separate_retry_from_reject() {
    let mut chain = chain(block(4, 2, 1, 6));
    let payload = ConsensusPayload::default();
    let claim = |number, start, count| CheckpointClaim {
        number,
        payload: &payload,
        start_block: start,
        block_count: count,
    };
    let decide = |chain: &ChainState, claim| {
        check_proposed_checkpoint(chain, &LIMITS, claim, &Records::default())
    };
    assert_eq!(
        decide(&chain, claim(2, 3, 2)).unwrap(),
        CheckpointDecision::Add { end: 5 }
    );
    let missing = decide(&chain, claim(2, 3, 3)).unwrap_err();
    assert!(matches!(
        missing,
        ArchiverError::ProposedCheckpointBlockMissing {
            number: 2,
            block: 5
        }
    ));
    assert_eq!(missing.disposition(), crate::Disposition::RetryLater);
    let early = decide(&chain, claim(3, 5, 1)).unwrap_err();
    assert_eq!(early.disposition(), crate::Disposition::RetryLater);
    assert!(matches!(
        decide(&chain, claim(2, 3, u64::MAX)),
        Err(ArchiverError::ProposedCheckpointBlocks { .. })
    ));
    assert!(matches!(
        decide(&chain, claim(2, 4, 1)),
        Err(ArchiverError::ProposedCheckpointBlocks { .. })
    ));
    // Checkpoint 1 on L1 differs from the claim: a conflict, not a duplicate.
    let stored = CheckpointRecord {
        number: 1,
        payload: ConsensusPayload {
            archive: B256::repeat_byte(9),
            ..Default::default()
        },
        start_block: 1,
        block_count: 2,
        l1: Default::default(),
        attestations: Vec::new(),
        source: crate::PayloadSource::L1Calldata,
    };
    let conflict = check_proposed_checkpoint(
        &chain,
        &LIMITS,
        claim(1, 1, 2),
        &Records {
            l1: Some(stored),
            ..Records::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        conflict,
        ArchiverError::ProposedCheckpointConflict { number: 1 }
    ));
    assert_eq!(conflict.disposition(), crate::Disposition::Reject);
    chain.proposed.insert(
        2,
        ProposedSummary {
            header_hash: B256::ZERO,
            start_block: 3,
            last_block: BlockId::default(),
        },
    );
    let same = ProposedCheckpoint {
        number: 2,
        payload: payload.clone(),
        start_block: 3,
        block_count: 2,
        total_mana_used: 0,
        proposer_signature: Default::default(),
    };
    assert!(matches!(
        check_proposed_checkpoint(
            &chain,
            &LIMITS,
            claim(2, 3, 2),
            &Records {
                proposed: Some(same),
                ..Records::default()
            }
        ),
        Ok(CheckpointDecision::AlreadyStored(_))
    ));
}

#[test]
fn l1_plan_finds_the_first_conflict_and_keeps_later_speculation() {
    let h = |byte| B256::repeat_byte(byte);
    // Local 3,4 of checkpoint 2 equal L1's; local 5 belongs to checkpoint 3: kept.
    let local = |n: u64| {
        Ok(match n {
            3 => (h(3), 2),
            4 => (h(4), 2),
            _ => (h(5), 3),
        })
    };
    assert_eq!(
        plan_l1_checkpoint(2, 3, &[h(3), h(4)], 5, local).unwrap(),
        L1Plan {
            first_conflict: None
        }
    );
    // L1 has only block 3: local block 4 of the same checkpoint is an extra.
    assert_eq!(
        plan_l1_checkpoint(2, 3, &[h(3)], 5, local).unwrap(),
        L1Plan {
            first_conflict: Some(4)
        }
    );
    // L1's block 4 differs.
    assert_eq!(
        plan_l1_checkpoint(2, 3, &[h(3), h(9)], 5, local).unwrap(),
        L1Plan {
            first_conflict: Some(4)
        }
    );
    // Nothing local: no conflict.
    assert_eq!(
        plan_l1_checkpoint(2, 3, &[h(3), h(4)], 2, local).unwrap(),
        L1Plan {
            first_conflict: None
        }
    );
}

#[test]
fn checkpoint_blocks_must_carry_the_headers_coinbase_fee_recipient_and_chain() {
    let mut archive = ArchiveTree::new();
    let parent = archive.append(B256::repeat_byte(1)).unwrap();
    let mut header = block(1, 1, 0, 5);
    header.last_archive_root = parent;
    header.coinbase = tandem_proto::Address::repeat_byte(1);
    header.fee_recipient = tandem_proto::Address::repeat_byte(2);
    // The checkpoint header claims `header`'s globals; each case changes one field of the
    // block only, keeping headers hash and archive consistent with the changed block, so
    // only the globals check can catch it.
    let verify = |h: &BlockHeader, identity: &ChainIdentity| {
        let mut archive = archive.clone();
        let root = archive.append(h.hash()).unwrap();
        let payload = ConsensusPayload {
            header: tandem_proto::CheckpointHeader {
                last_archive_root: parent,
                block_headers_hash: block_headers_hash(&[h.hash()]),
                slot: 5,
                coinbase: header.coinbase,
                fee_recipient: header.fee_recipient,
                ..Default::default()
            },
            archive: root,
            fee_asset_price_modifier: 0,
        };
        verify_checkpoint_blocks(1, &payload, parent, identity, [(h, root)])
    };
    assert_eq!(verify(&header, &IDENTITY), Ok(0));
    for change in [
        (|h: &mut BlockHeader| h.coinbase = tandem_proto::Address::ZERO) as fn(&mut BlockHeader),
        |h| h.fee_recipient = tandem_proto::Address::ZERO,
    ] {
        let mut tampered = header.clone();
        change(&mut tampered);
        assert_eq!(
            verify(&tampered, &IDENTITY),
            Err(
                "a block's slot, timestamp, coinbase, fee recipient or fee differs from the header"
            )
        );
    }
    let mut other_chain = header.clone();
    other_chain.chain_id = 2;
    assert_eq!(
        verify(&other_chain, &IDENTITY),
        Err("a block is for another chain or rollup version")
    );
}

fn proposed_summary(start: u64, last: u64) -> ProposedSummary {
    ProposedSummary {
        header_hash: B256::ZERO,
        start_block: start,
        last_block: BlockId {
            number: last,
            hash: B256::ZERO,
        },
    }
}

#[test]
fn a_proposal_for_a_checkpoint_l1_already_fixed_must_be_l1s() {
    let mut chain = chain(block(4, 2, 1, 6));
    chain.awaiting.insert(2);
    let payload = ConsensusPayload {
        archive: B256::repeat_byte(4),
        ..Default::default()
    };
    let claim = CheckpointClaim {
        number: 2,
        payload: &payload,
        start_block: 3,
        block_count: 2,
    };
    let fact = |header_hash, archive| Records {
        awaiting: Some(AwaitingCheckpoint {
            event: crate::L1CheckpointEvent {
                number: 2,
                header_hash,
                archive,
                slot: 6,
                l1: Default::default(),
                tx_hash: B256::ZERO,
                calldata: None,
            },
            problem: Some(crate::BodyProblem::CalldataMissing),
        }),
        ..Records::default()
    };
    let header_hash = payload.header.hash();
    for other in [
        fact(B256::repeat_byte(9), payload.archive),
        fact(header_hash, B256::repeat_byte(9)),
    ] {
        let err = check_proposed_checkpoint(&chain, &LIMITS, claim, &other).unwrap_err();
        assert!(
            matches!(err, ArchiverError::ProposedCheckpointConflict { number: 2 }),
            "{err}"
        );
        assert_eq!(err.disposition(), crate::Disposition::Reject);
    }
    assert_eq!(
        check_proposed_checkpoint(&chain, &LIMITS, claim, &fact(header_hash, payload.archive))
            .unwrap(),
        CheckpointDecision::Add { end: 5 }
    );
}

#[test]
fn nothing_is_held_too_far_above_the_checkpointed_tip() {
    // Checkpointed 1; proposed 2, 3, 4 (blocks 3, 4, 5); block 6 is checkpoint 5's.
    let mut chain = chain(block(5, 4, 0, 8));
    for (number, block) in [(2, 3), (3, 4), (4, 5)] {
        chain
            .proposed
            .insert(number, proposed_summary(block, block));
    }
    let err = decide(&chain, &next_of(&chain, block(6, 5, 0, 9))).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::TooFarAboveCheckpointed {
                checkpoint: 5,
                block: Some(6),
                checkpointed: 1,
                max_depth: 3
            }
        ),
        "{err}"
    );
    assert_eq!(err.disposition(), crate::Disposition::RetryLater);
    let payload = ConsensusPayload::default();
    let claim = CheckpointClaim {
        number: 5,
        payload: &payload,
        start_block: 6,
        block_count: 1,
    };
    let err = check_proposed_checkpoint(&chain, &LIMITS, claim, &Records::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiverError::TooFarAboveCheckpointed {
                checkpoint: 5,
                block: None,
                ..
            }
        ),
        "{err}"
    );
    // One fewer proposed: checkpoint 4's blocks fit, up to the most a checkpoint may have.
    chain.proposed.remove(&4);
    assert_eq!(
        decide(&chain, &next_of(&chain, block(6, 4, 1, 8))).unwrap(),
        BlockDecision::Append
    );
    let max = tandem_proto::MAX_BLOCKS_PER_CHECKPOINT as u32;
    chain.last.header = block(5, 4, max - 1, 8);
    let err = decide(&chain, &next_of(&chain, block(6, 4, max, 8))).unwrap_err();
    assert!(
        matches!(err, ArchiverError::CheckpointTooManyBlocks { block: 6, .. }),
        "{err}"
    );
    assert_eq!(err.disposition(), crate::Disposition::Reject);
}

#[test]
fn a_collision_with_a_block_no_proposal_covers_is_retried_not_rejected() {
    // Blocks 3–4 of checkpoint 2 are stored, not proposed.
    let mut chain = chain(block(4, 2, 1, 6));
    let other = next_of(&chain, block(3, 2, 0, 7));
    let err = decide(&chain, &other).unwrap_err();
    assert!(
        matches!(err, ArchiverError::BlockNumberHeldByUncovered { number: 3 }),
        "{err}"
    );
    assert_eq!(err.disposition(), crate::Disposition::RetryLater);
    // Once a proposal covers them, a different block 3 contradicts a signed set.
    chain.proposed.insert(2, proposed_summary(3, 4));
    let err = decide(&chain, &other).unwrap_err();
    assert!(
        matches!(err, ArchiverError::BlockNumberAlreadyExists { number: 3 }),
        "{err}"
    );
    assert_eq!(err.disposition(), crate::Disposition::Reject);
}
