//! Gossip validation rules, verdicts and penalties, at explicit instants (no network).

mod common;

use std::time::Duration;

use common::{Net, TARGET};
use libp2p::gossipsub::MessageAcceptance;
use tandem_p2p::{
    Accepted, GossipInvalid, GossipKind, GossipPipeline, GossipValidator,
    LATE_OR_EARLY_IGNORE_MARGIN, SlotDuty,
    scoring::{PeerAction, judge},
};
use tandem_proto::{
    MAX_BLOCKS_PER_CHECKPOINT, ProposalTxsError, Signature, Tx, WireError, WireMessage,
    time::{Slot, Timestamp},
};

/// `now` 40 s before slot 10 starts: inside its proposal window.
fn setup() -> (Net, GossipPipeline, Timestamp) {
    let now = Timestamp::from_secs(1_000_000);
    let net = Net::at(now);
    let pipeline = net.pipeline();
    (net, pipeline, now)
}

const REJECT_LOW: (MessageAcceptance, Option<PeerAction>) = (
    MessageAcceptance::Reject,
    Some(PeerAction::LowToleranceError),
);

fn verdict(result: &Result<Accepted, GossipInvalid>) -> (MessageAcceptance, Option<PeerAction>) {
    match result {
        Ok(_) => (MessageAcceptance::Accept, None),
        Err(err) => judge(err),
    }
}

const REJECT_MID: (MessageAcceptance, Option<PeerAction>) = (
    MessageAcceptance::Reject,
    Some(PeerAction::MidToleranceError),
);
const IGNORE: (MessageAcceptance, Option<PeerAction>) = (MessageAcceptance::Ignore, None);

#[test]
fn valid_block_proposal_is_accepted_once() {
    let (net, mut pipeline, now) = setup();
    let block = net.block(TARGET, 0, vec![net.tx(0)], net.proposer(TARGET));
    let bytes = block.to_wire_bytes();
    let accepted = pipeline
        .accept(GossipKind::BlockProposal, &bytes, now)
        .unwrap();
    let Accepted::Block(verified) = accepted else {
        panic!("expected a block, got {accepted:?}");
    };
    assert_eq!(verified.signer(), net.proposer(TARGET).address());
    assert_eq!(*verified.message().as_ref(), block);
    let again = pipeline.accept(GossipKind::BlockProposal, &bytes, now);
    assert_eq!(again.unwrap_err(), GossipInvalid::Duplicate);
}

#[test]
fn bad_signature_wrong_proposer_garbage_and_oversize_are_rejected() {
    let (net, mut pipeline, now) = setup();
    let mut tampered = net.block(TARGET, 0, vec![], net.proposer(TARGET));
    let mut signature = *tampered.signature.as_bytes();
    signature[64] = 30;
    tampered.signature = Signature::from_bytes(signature);
    let result = pipeline.accept(GossipKind::BlockProposal, &tampered.to_wire_bytes(), now);
    assert!(
        matches!(result, Err(GossipInvalid::BadSignature(_))),
        "{result:?}"
    );
    assert_eq!(verdict(&result), REJECT_MID);

    let wrong = net.block(TARGET, 0, vec![], &net.outsider);
    let result = pipeline.accept(GossipKind::BlockProposal, &wrong.to_wire_bytes(), now);
    assert!(
        matches!(result, Err(GossipInvalid::WrongProposer { .. })),
        "{result:?}"
    );
    assert_eq!(verdict(&result), REJECT_MID);

    for kind in GossipKind::ALL {
        let result = pipeline.accept(kind, &[0xff, 0x00, 0x13], now);
        assert!(
            matches!(result, Err(GossipInvalid::Decode(_))),
            "{kind}: {result:?}"
        );
        assert_eq!(
            verdict(&result),
            (
                MessageAcceptance::Reject,
                Some(PeerAction::LowToleranceError)
            )
        );
        let oversize = vec![0u8; kind.max_message_size() + 1];
        let result = pipeline.accept(kind, &oversize, now);
        assert!(
            matches!(&result, Err(GossipInvalid::Decode(err)) if err.to_string().contains("exceeds the limit")),
            "{kind}: {result:?}"
        );
    }
}

#[test]
fn slot_timing_ignores_slightly_off_and_rejects_far_off() {
    let (net, mut pipeline, _) = setup();
    let window = net.windows.checkpoint_proposal(TARGET);
    let proposer = net.proposer(TARGET);
    let block = |index| net.block(TARGET, index, vec![], proposer).to_wire_bytes();

    let just_inside = window.end;
    assert!(
        pipeline
            .accept(GossipKind::BlockProposal, &block(0), just_inside)
            .is_ok()
    );

    let slightly_late = window.end.saturating_add(Duration::from_millis(300));
    let result = pipeline.accept(GossipKind::BlockProposal, &block(1), slightly_late);
    assert!(
        matches!(result, Err(GossipInvalid::SlightlyLate { .. })),
        "{result:?}"
    );
    assert_eq!(verdict(&result), IGNORE);

    let slightly_early = window.start.saturating_sub(Duration::from_millis(300));
    let result = pipeline.accept(GossipKind::BlockProposal, &block(2), slightly_early);
    assert!(
        matches!(result, Err(GossipInvalid::SlightlyEarly { .. })),
        "{result:?}"
    );
    assert_eq!(verdict(&result), IGNORE);

    let far_late = window
        .end
        .saturating_add(LATE_OR_EARLY_IGNORE_MARGIN + Duration::from_millis(1));
    let result = pipeline.accept(GossipKind::BlockProposal, &block(3), far_late);
    assert!(
        matches!(result, Err(GossipInvalid::WrongSlot { .. })),
        "{result:?}"
    );
    assert_eq!(
        verdict(&result),
        (
            MessageAcceptance::Reject,
            Some(PeerAction::HighToleranceError)
        )
    );

    // A proposal for a slot far in the future, received now.
    let future = Slot(TARGET.0 + 5);
    let result = pipeline.accept(
        GossipKind::BlockProposal,
        &net.block(future, 0, vec![], net.proposer(future))
            .to_wire_bytes(),
        just_inside,
    );
    assert!(matches!(result, Err(GossipInvalid::WrongSlot { offset_ms, .. }) if offset_ms < 0));
}

#[test]
fn tampered_txs_are_rejected() {
    let (net, mut pipeline, now) = setup();
    let proposer = net.proposer(TARGET);
    let mut block = net.block(TARGET, 0, vec![net.tx(0), net.tx(1)], proposer);
    // Swap a full tx for another one: hashes still match the header, the tx does not.
    block.txs[1] = net.tx(7);
    let result = pipeline.accept(GossipKind::BlockProposal, &block.to_wire_bytes(), now);
    assert!(
        matches!(result, Err(GossipInvalid::ProposalTxs(_))),
        "{result:?}"
    );
    assert_eq!(
        verdict(&result),
        (
            MessageAcceptance::Reject,
            Some(PeerAction::LowToleranceError)
        )
    );

    // Unsigned or wrong-chain txs on the tx topic.
    let mut tx = net.tx(3);
    tx.payload.chain_id += 1;
    let result = pipeline.accept(GossipKind::Tx, &tx.to_wire_bytes(), now);
    assert!(
        matches!(result, Err(GossipInvalid::WrongChain { .. })),
        "{result:?}"
    );
    // A tampered payload under a valid signature recovers to some other account: accepted at
    // the gossip edge as that account's tx (which has no funds or nonce: the pool refuses it),
    // never as the real sender's.
    let mut tx: Tx = net.tx(4);
    tx.payload.amount += 1;
    let result = pipeline.accept(GossipKind::Tx, &tx.to_wire_bytes(), now);
    let Ok(Accepted::Tx(verified)) = result else {
        panic!("tampered tx: {result:?}");
    };
    assert_ne!(verified.signer(), net.outsider.address());
    let good = net.tx(5);
    assert!(matches!(
        pipeline.accept(GossipKind::Tx, &good.to_wire_bytes(), now),
        Ok(Accepted::Tx(verified)) if verified.signer() == net.outsider.address()
    ));
}

#[test]
fn checkpoint_proposal_checks_its_last_block() {
    let (net, mut pipeline, now) = setup();
    let proposer = net.proposer(TARGET);
    let last = net.block(TARGET, 1, vec![], proposer);

    // Archive of the payload differs from the block's.
    let mut mismatched = net.checkpoint(TARGET, last.clone(), 0, proposer);
    mismatched.payload.archive = Default::default();
    let mismatched = tandem_proto::CheckpointProposal::sign(
        mismatched.payload,
        mismatched.last_block,
        &net.domain,
        proposer,
    );
    let result = pipeline.accept(
        GossipKind::CheckpointProposal,
        &mismatched.to_wire_bytes(),
        now,
    );
    assert_eq!(
        result.unwrap_err(),
        GossipInvalid::LastBlockMismatch("archive differs")
    );

    // Block signed by someone else inside a proposer-signed checkpoint.
    let foreign_block = net.block(TARGET, 1, vec![], &net.outsider);
    let result = pipeline.accept(
        GossipKind::CheckpointProposal,
        &net.checkpoint(TARGET, foreign_block, 0, proposer)
            .to_wire_bytes(),
        now,
    );
    assert!(
        matches!(result, Err(GossipInvalid::LastBlockInvalid(_))),
        "{result:?}"
    );
    assert_eq!(verdict(&result), REJECT_MID);

    // The valid one: checkpoint and its block both come out, the block to be handled first.
    let checkpoint = net.checkpoint(TARGET, last.clone(), 0, proposer);
    let accepted = pipeline
        .accept(
            GossipKind::CheckpointProposal,
            &checkpoint.to_wire_bytes(),
            now,
        )
        .unwrap();
    let Accepted::Checkpoint {
        last_index,
        last_block,
        checkpoint: verified,
    } = accepted
    else {
        panic!("expected a checkpoint, got {accepted:?}");
    };
    assert_eq!(last_index, 1);
    assert_eq!(last_block.unwrap().header, last.header);
    assert_eq!(verified.signer(), proposer.address());
    // Handlers get the checkpoint's core: its last block went through the block path.
    assert_eq!(verified.last_block, None);
    assert_eq!(verified.payload, checkpoint.payload);
    assert!(pipeline.pool().has_checkpoint_proposal(TARGET));

    // An equivocating checkpoint whose last block equivocates too is rejected, and the block
    // equivocation is reported.
    let other_last = net.block(TARGET, 1, vec![net.tx(9)], proposer);
    let result = pipeline.accept(
        GossipKind::CheckpointProposal,
        &net.checkpoint(TARGET, other_last, 0, proposer)
            .to_wire_bytes(),
        now,
    );
    assert_eq!(result.unwrap_err(), GossipInvalid::LastBlockEquivocated);
    let evidence = pipeline.take_equivocations();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].kind(), GossipKind::BlockProposal);
}

#[test]
fn attestations_need_a_committee_member_and_the_right_proposer() {
    let (net, mut pipeline, now) = setup();
    let proposer = net.proposer(TARGET);
    let checkpoint = net.checkpoint(TARGET, net.block(TARGET, 0, vec![], proposer), 0, proposer);
    let attesters = net.attesters(TARGET);

    let good = net.attestation(&checkpoint, &attesters[0]);
    assert!(matches!(
        pipeline.accept(GossipKind::CheckpointAttestation, &good.to_wire_bytes(), now),
        Ok(Accepted::Attestation(verified)) if verified.signer() == attesters[0].address()
    ));
    assert_eq!(
        pipeline
            .accept(
                GossipKind::CheckpointAttestation,
                &good.to_wire_bytes(),
                now
            )
            .unwrap_err(),
        GossipInvalid::Duplicate
    );

    let outsider = net.attestation(&checkpoint, &net.outsider);
    let result = pipeline.accept(
        GossipKind::CheckpointAttestation,
        &outsider.to_wire_bytes(),
        now,
    );
    assert!(
        matches!(result, Err(GossipInvalid::NotInCommittee { .. })),
        "{result:?}"
    );
    assert_eq!(
        verdict(&result),
        (
            MessageAcceptance::Reject,
            Some(PeerAction::HighToleranceError)
        )
    );

    // An attestation to a checkpoint "proposed" by a non-proposer.
    let fake = net.checkpoint(
        TARGET,
        net.block(TARGET, 0, vec![], &attesters[2]),
        0,
        &attesters[2],
    );
    let result = pipeline.accept(
        GossipKind::CheckpointAttestation,
        &net.attestation(&fake, &attesters[1]).to_wire_bytes(),
        now,
    );
    assert!(
        matches!(result, Err(GossipInvalid::WrongProposer { .. })),
        "{result:?}"
    );

    // Second distinct attestation by the same signer in the slot: accepted as evidence.
    let other = net.checkpoint(TARGET, net.block(TARGET, 0, vec![], proposer), 7, proposer);
    let second = net.attestation(&other, &attesters[0]);
    assert!(matches!(
        pipeline.accept(
            GossipKind::CheckpointAttestation,
            &second.to_wire_bytes(),
            now
        ),
        Ok(Accepted::Equivocated { last_block: None })
    ));
    assert_eq!(pipeline.take_equivocations().len(), 1);
    let third = net.attestation(
        &net.checkpoint(TARGET, net.block(TARGET, 0, vec![], proposer), 8, proposer),
        &attesters[0],
    );
    let result = pipeline.accept(
        GossipKind::CheckpointAttestation,
        &third.to_wire_bytes(),
        now,
    );
    assert_eq!(result.unwrap_err(), GossipInvalid::PoolCapExceeded(2));
}

#[test]
fn unknown_committee_is_ignored_and_empty_committee_rejects_attestations() {
    struct Duties(Option<SlotDuty>);
    impl tandem_p2p::CommitteeSource for Duties {
        fn duty(&self, _: Slot) -> Option<SlotDuty> {
            self.0.clone()
        }
    }
    let now = Timestamp::from_secs(1_000_000);
    let net = Net::at(now);
    let pipeline_with = |duty: Option<SlotDuty>| {
        GossipPipeline::new(GossipValidator::new(
            net.domain,
            net.windows,
            std::sync::Arc::new(Duties(duty)),
            net.params.tx_rules,
            net.params.max_txs_per_block,
        ))
    };
    let proposer = net.proposer(TARGET);
    let checkpoint = net.checkpoint(TARGET, net.block(TARGET, 0, vec![], proposer), 0, proposer);

    let mut unknown = pipeline_with(None);
    let result = unknown.accept(
        GossipKind::CheckpointProposal,
        &checkpoint.to_wire_bytes(),
        now,
    );
    assert_eq!(result.unwrap_err(), GossipInvalid::CommitteeUnknown(TARGET));

    let empty = SlotDuty {
        proposer: None,
        committee: Vec::new().into(),
        provisional: false,
    };
    let mut open = pipeline_with(Some(empty));
    // Anyone may propose when the committee is empty...
    let by_outsider = net.checkpoint(
        TARGET,
        net.block(TARGET, 0, vec![], &net.outsider),
        0,
        &net.outsider,
    );
    assert!(matches!(
        open.accept(
            GossipKind::CheckpointProposal,
            &by_outsider.to_wire_bytes(),
            now
        ),
        Ok(Accepted::Checkpoint { .. })
    ));
    // ...and a second, honest proposer of the same slot is a proposal of its own, not an
    // equivocation of the first.
    let by_other = net.checkpoint(
        TARGET,
        net.block(TARGET, 0, vec![net.tx(1)], &net.keys[0]),
        0,
        &net.keys[0],
    );
    assert!(matches!(
        open.accept(
            GossipKind::CheckpointProposal,
            &by_other.to_wire_bytes(),
            now
        ),
        Ok(Accepted::Checkpoint { .. })
    ));
    assert!(open.take_equivocations().is_empty());
    // ...but nobody can attest.
    let result = open.accept(
        GossipKind::CheckpointAttestation,
        &net.attestation(&by_outsider, &net.keys[0]).to_wire_bytes(),
        now,
    );
    assert_eq!(result.unwrap_err(), GossipInvalid::NoCommittee(TARGET));
}

/// Every slot's duty is `duty`.
struct FixedDuty(SlotDuty);

impl tandem_p2p::CommitteeSource for FixedDuty {
    fn duty(&self, _: Slot) -> Option<SlotDuty> {
        Some(self.0.clone())
    }
}

/// A pipeline of `net` whose committee source answers `duty` for every slot.
fn pipeline_with_duty(net: &Net, duty: SlotDuty) -> GossipPipeline {
    let validator = GossipValidator::new(
        net.domain,
        net.windows,
        std::sync::Arc::new(FixedDuty(duty)),
        net.params.tx_rules,
        net.params.max_txs_per_block,
    );
    GossipPipeline::new(validator)
}

#[test]
fn gossip_disagreeing_with_a_provisional_duty_is_ignored_without_penalty() {
    let (net, _, now) = setup();
    let pipeline_with = |duty: SlotDuty| pipeline_with_duty(&net, duty);
    let proposer = net.proposer(TARGET);
    let checkpoint = net.checkpoint(TARGET, net.block(TARGET, 0, vec![], proposer), 0, proposer);
    let attestation = net.attestation(&checkpoint, &net.keys[0]);
    // This node's committee: someone else proposes, and the attester is not on it.
    let stale = |provisional| SlotDuty {
        proposer: Some(net.outsider.address()),
        committee: vec![net.outsider.address()].into(),
        provisional,
    };
    let empty = |provisional| SlotDuty {
        proposer: None,
        committee: Vec::new().into(),
        provisional,
    };
    let cases = [
        (
            stale(true),
            GossipKind::CheckpointProposal,
            checkpoint.to_wire_bytes(),
        ),
        (
            stale(true),
            GossipKind::BlockProposal,
            checkpoint.last_block.clone().unwrap().to_wire_bytes(),
        ),
        (
            stale(true),
            GossipKind::CheckpointAttestation,
            attestation.to_wire_bytes(),
        ),
        (
            empty(true),
            GossipKind::CheckpointAttestation,
            attestation.to_wire_bytes(),
        ),
    ];
    for (duty, kind, bytes) in cases {
        let result = pipeline_with(duty).accept(kind, &bytes, now);
        assert_eq!(
            result.as_ref().err(),
            Some(&GossipInvalid::CommitteeUnknown(TARGET)),
            "{kind:?}"
        );
        assert_eq!(verdict(&result), IGNORE, "{kind:?}");
    }
    // The same disagreements with a fixed duty are the sender's fault.
    let wrong_proposer = pipeline_with(stale(false)).accept(
        GossipKind::CheckpointProposal,
        &checkpoint.to_wire_bytes(),
        now,
    );
    assert!(matches!(
        wrong_proposer,
        Err(GossipInvalid::WrongProposer { .. })
    ));
    assert_eq!(verdict(&wrong_proposer), REJECT_MID);
    let outsider = pipeline_with(SlotDuty {
        proposer: Some(proposer.address()),
        ..stale(false)
    })
    .accept(
        GossipKind::CheckpointAttestation,
        &attestation.to_wire_bytes(),
        now,
    );
    assert!(matches!(
        outsider,
        Err(GossipInvalid::NotInCommittee { .. })
    ));
    assert_eq!(verdict(&outsider).0, MessageAcceptance::Reject);
}

#[test]
fn txs_known_from_gossip_still_have_to_match_their_hashes() {
    let (net, mut pipeline, now) = setup();
    let proposer = net.proposer(TARGET);
    let (known_a, known_b) = (net.tx(0), net.tx(1));
    for tx in [&known_a, &known_b] {
        assert!(matches!(
            pipeline.accept(GossipKind::Tx, &tx.to_wire_bytes(), now),
            Ok(Accepted::Tx(_))
        ));
    }
    // A proposal carrying known txs is accepted.
    let block = net.block(TARGET, 0, vec![known_a.clone(), known_b.clone()], proposer);
    assert!(matches!(
        pipeline.accept(GossipKind::BlockProposal, &block.to_wire_bytes(), now),
        Ok(Accepted::Block(_))
    ));
    // Swapping a known tx for another under its hash is caught.
    let mut tampered = net.block(TARGET, 1, vec![known_a, known_b], proposer);
    tampered.txs[0] = net.tx(7);
    let result = pipeline.accept(GossipKind::BlockProposal, &tampered.to_wire_bytes(), now);
    assert!(
        matches!(
            result,
            Err(GossipInvalid::ProposalTxs(
                tandem_proto::ProposalTxsError::TxHashMismatch { index: 0 }
            ))
        ),
        "{result:?}"
    );
}

#[test]
fn stripped_copies_of_proposals_are_rejected() {
    let (net, mut pipeline, now) = setup();
    let proposer = net.proposer(TARGET);
    let full = net.block(TARGET, 0, vec![net.tx(0), net.tx(1)], proposer);

    // A relay drops the txs: the signature still verifies, the content is not the proposer's.
    let mut stripped = full.clone();
    stripped.txs.clear();
    let result = pipeline.accept(GossipKind::BlockProposal, &stripped.to_wire_bytes(), now);
    assert_eq!(
        result.as_ref().unwrap_err(),
        &GossipInvalid::ProposalTxs(ProposalTxsError::CountMismatch { txs: 0, hashes: 2 })
    );
    assert_eq!(verdict(&result), REJECT_LOW);
    // Nothing was pooled: the full proposal is still new.
    assert!(matches!(
        pipeline.accept(GossipKind::BlockProposal, &full.to_wire_bytes(), now),
        Ok(Accepted::Block(verified)) if verified.txs.len() == 2
    ));

    // A relay drops a checkpoint's last block.
    let last = net.block(TARGET, 1, vec![net.tx(2)], proposer);
    let checkpoint = net.checkpoint(TARGET, last, 0, proposer);
    let mut bare = checkpoint.clone();
    bare.last_block = None;
    let result = pipeline.accept(GossipKind::CheckpointProposal, &bare.to_wire_bytes(), now);
    assert_eq!(
        result.as_ref().unwrap_err(),
        &GossipInvalid::MissingLastBlock
    );
    assert_eq!(verdict(&result), REJECT_LOW);
    // ...or strips the last block's txs.
    let mut half = checkpoint.clone();
    half.last_block.as_mut().unwrap().txs.clear();
    let result = pipeline.accept(GossipKind::CheckpointProposal, &half.to_wire_bytes(), now);
    assert!(
        matches!(&result, Err(GossipInvalid::LastBlockInvalid(inner)) if matches!(**inner, GossipInvalid::ProposalTxs(ProposalTxsError::CountMismatch { .. }))),
        "{result:?}"
    );
    assert_eq!(verdict(&result), REJECT_LOW);
    // The complete checkpoint is still accepted, last block included.
    assert!(matches!(
        pipeline.accept(GossipKind::CheckpointProposal, &checkpoint.to_wire_bytes(), now),
        Ok(Accepted::Checkpoint { last_block: Some(block), .. }) if block.txs.len() == 1
    ));
}

#[test]
fn cheap_checks_come_before_the_tx_hash_check() {
    let (net, mut pipeline, now) = setup();
    // Wrong proposer and tampered txs: the proposer check answers first.
    let mut wrong = net.block(TARGET, 0, vec![net.tx(0)], &net.outsider);
    wrong.txs[0] = net.tx(5);
    let result = pipeline.accept(GossipKind::BlockProposal, &wrong.to_wire_bytes(), now);
    assert!(
        matches!(result, Err(GossipInvalid::WrongProposer { .. })),
        "{result:?}"
    );
    // An index no checkpoint reaches under the time model (⌈S / D⌉ = 10 blocks here, far
    // below the protocol's hard cap) is refused before any signature work.
    let per_slot = net.windows.max_blocks_per_checkpoint();
    assert_eq!(per_slot, 10);
    assert!((per_slot as usize) < MAX_BLOCKS_PER_CHECKPOINT);
    let far_block = |index| {
        let mut header = net.header(TARGET, 0, &[]);
        header.index_within_checkpoint = index;
        tandem_proto::BlockProposal::sign(
            header,
            Default::default(),
            vec![],
            &net.domain,
            net.proposer(TARGET),
        )
    };
    let result = pipeline.accept(
        GossipKind::BlockProposal,
        &far_block(per_slot).to_wire_bytes(),
        now,
    );
    assert_eq!(
        result.as_ref().unwrap_err(),
        &GossipInvalid::IndexTooLarge {
            index: per_slot,
            limit: per_slot as usize
        }
    );
    assert_eq!(verdict(&result), REJECT_MID);
    let last = pipeline.accept(
        GossipKind::BlockProposal,
        &far_block(per_slot - 1).to_wire_bytes(),
        now,
    );
    assert!(last.is_ok(), "{last:?}");
}

#[test]
fn equivocation_evidence_can_be_verified_by_anyone() {
    let (net, mut pipeline, now) = setup();
    let proposer = net.proposer(TARGET);
    for (modifier, tx) in [(0, 0), (9, 1)] {
        let block = net.block(TARGET, 0, vec![net.tx(tx)], proposer);
        let _ = pipeline.accept(GossipKind::BlockProposal, &block.to_wire_bytes(), now);
        let checkpoint = net.checkpoint(
            TARGET,
            net.block(TARGET, 1, vec![], proposer),
            modifier,
            proposer,
        );
        let _ = pipeline.accept(
            GossipKind::CheckpointProposal,
            &checkpoint.to_wire_bytes(),
            now,
        );
    }
    let evidence = pipeline.take_equivocations();
    let kinds: Vec<GossipKind> = evidence
        .iter()
        .map(tandem_p2p::Equivocation::kind)
        .collect();
    assert_eq!(
        kinds,
        [GossipKind::BlockProposal, GossipKind::CheckpointProposal]
    );
    for equivocation in &evidence {
        assert_eq!(equivocation.signer, proposer.address());
        assert_eq!(equivocation.slot(), TARGET);
        assert_eq!(equivocation.verify(&net.domain), Ok(()));
    }
    // Forged evidence does not hold: the same message twice, or pinned on someone else.
    let mut same = evidence[1].clone();
    same.second = same.first.clone();
    assert_eq!(
        same.verify(&net.domain),
        Err(tandem_p2p::EvidenceError::SamePayload)
    );
    let mut framed = evidence[1].clone();
    framed.signer = net.outsider.address();
    assert!(matches!(
        framed.verify(&net.domain),
        Err(tandem_p2p::EvidenceError::WrongSigner { .. })
    ));
    // Evidence on another chain's domain recovers someone else.
    let other = tandem_proto::SigningDomain {
        chain_id: 1,
        ..net.domain
    };
    assert!(evidence[0].verify(&other).is_err());
}

#[test]
fn a_re_encoded_copy_is_rejected_so_it_cannot_pose_as_a_new_message() {
    let (net, mut pipeline, now) = setup();
    let proposer = net.proposer(TARGET);
    let block = net.block(TARGET, 0, vec![net.tx(0)], proposer);
    let checkpoint = net.checkpoint(TARGET, block.clone(), 0, proposer);
    let attestation = net.attestation(&checkpoint, &net.attesters(TARGET)[0]);
    // An unknown field (number 15, varint 1) appended: prost decodes it to the same message,
    // but the bytes — and so the message id — differ.
    let padded = |mut bytes: Vec<u8>| {
        bytes.extend_from_slice(&[0x78, 0x01]);
        bytes
    };
    for (kind, bytes, name) in [
        (GossipKind::Tx, net.tx(1).to_wire_bytes(), "Tx"),
        (
            GossipKind::BlockProposal,
            block.to_wire_bytes(),
            "BlockProposal",
        ),
        (
            GossipKind::CheckpointProposal,
            checkpoint.to_wire_bytes(),
            "CheckpointProposal",
        ),
        (
            GossipKind::CheckpointAttestation,
            attestation.to_wire_bytes(),
            "CheckpointAttestation",
        ),
    ] {
        let result = pipeline.accept(kind, &padded(bytes.clone()), now);
        assert!(
            matches!(&result, Err(GossipInvalid::Decode(WireError::NonCanonical { message, .. })) if *message == name),
            "{kind:?}: {result:?}"
        );
        assert_eq!(verdict(&result), REJECT_LOW, "{kind:?}");
        // The canonical bytes themselves are accepted.
        let canonical = pipeline.accept(kind, &bytes, now);
        assert!(canonical.is_ok(), "{kind:?}: {canonical:?}");
    }
}
