//! The validator handler's rules, driven directly on real stores: attest a validated proposal
//! once per key; never a proposal the all-nodes handler did not validate, never after the
//! slot's attestation deadline, never off the committee, never for a slot below one attested;
//! and what the slashing-protected signer refuses (after a restart forgot the in-memory
//! record) stays refused.

mod common;

use std::{sync::Arc, time::Duration};

use common::{Net, Proposal, Stores, TARGET, build, protected_signer, receive_all, two_stores};
use tandem_p2p::StaticCommittee;
use tandem_proto::{SigningKey, time::Slot};
use tandem_validator::{
    AllNodesCheckpointProcessor, AttestingProcessor, CheckpointAccepted, ProtectedSigner,
    ValidatorContext, ValidatorEvent,
};

struct Rig {
    net: Net,
    _validator: Stores,
    context: ValidatorContext,
    all_nodes: AllNodesCheckpointProcessor,
    key: SigningKey,
    signer: Arc<ProtectedSigner>,
    /// Two valid checkpoints, of slots 10 and 11, the second on the first.
    proposals: Vec<Proposal>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Rig {
    async fn new() -> Self {
        let net = Net::new();
        let (proposer, validator, dirs) = two_stores(&net);
        let context = validator.context(&net);
        let all_nodes = AllNodesCheckpointProcessor::new(&context, net.checkpoint_rules(), vec![]);
        let mut proposals = Vec::new();
        for (slot, user) in [(TARGET, 0), (Slot(11), 1)] {
            let proposal = build(&net, &proposer, slot, vec![vec![net.transfer(user, 0, 1)]]);
            proposer.store_own(&proposal).await;
            proposer
                .wait_synced_at(proposal.blocks[0].header.block_number)
                .await;
            receive_all(&net, &validator, &proposal).await;
            let verdict = all_nodes
                .process(
                    &proposal.checkpoint,
                    proposal.key.address(),
                    None,
                    common::clock_now(&net),
                    net.windows.attestation_deadline(slot),
                )
                .await;
            assert!(
                matches!(verdict, Ok(CheckpointAccepted::Stored { .. })),
                "{verdict:?}"
            );
            proposals.push(proposal);
        }
        // Key 1 proposes neither slot 10 nor 11.
        let key = net.keys[1].clone();
        let signer = Arc::new(protected_signer(&net, vec![key.clone()], dirs.1.path()));
        Self {
            net,
            _validator: validator,
            context,
            all_nodes,
            key,
            signer,
            proposals,
            _dirs: dirs,
        }
    }

    fn attester(&self, committee: Vec<SigningKey>) -> AttestingProcessor {
        AttestingProcessor::new(
            &self.context,
            &self.all_nodes,
            self.signer.clone(),
            Arc::new(StaticCommittee::new(
                committee
                    .iter()
                    .map(SigningKey::address)
                    .collect::<Vec<_>>(),
            )),
        )
    }

    /// Attests proposal `index` with `attester`; returns how many attestations and, if none,
    /// the reason reported for this node's key.
    async fn attest(
        &self,
        attester: &AttestingProcessor,
        index: usize,
    ) -> (usize, Option<&'static str>) {
        let proposal = &self.proposals[index];
        let slot = Slot(proposal.checkpoint.payload.header.slot);
        let mut events = self.context.subscribe();
        let attestations = attester
            .process(
                &proposal.checkpoint,
                proposal.key.address(),
                self.net.windows.attestation_deadline(slot),
            )
            .await;
        for attestation in &attestations {
            assert_eq!(
                attestation.recover_attester(&self.net.domain).unwrap(),
                self.key.address()
            );
            assert_eq!(attestation.payload, proposal.checkpoint.payload);
        }
        let mut skipped = None;
        while let Ok(event) = events.try_recv() {
            if let ValidatorEvent::Attestation {
                slot: s,
                skipped: reason,
                ..
            } = event
                && s == slot
            {
                skipped = reason;
            }
        }
        (attestations.len(), skipped)
    }
}

#[tokio::test]
async fn a_validated_proposal_is_attested_once_and_never_below_a_later_slot() {
    let rig = Rig::new().await;
    let attester = rig.attester(rig.net.keys.clone());
    // Slot 11 first, then slot 10: the earlier slot is refused.
    assert_eq!(rig.attest(&attester, 1).await, (1, None));
    assert_eq!(
        rig.attest(&attester, 1).await,
        (0, Some("already_attested"))
    );
    assert_eq!(
        rig.attest(&attester, 0).await,
        (0, Some("attested_later_slot"))
    );
    // A restarted handler (its memory gone) still cannot: the signer refuses.
    let restarted = rig.attester(rig.net.keys.clone());
    assert_eq!(
        rig.attest(&restarted, 0).await,
        (0, Some("refused_by_slashing_protection"))
    );
}

#[tokio::test]
async fn no_attestation_off_the_committee_after_the_deadline_or_without_a_verdict() {
    let rig = Rig::new().await;
    // Off the committee.
    let others: Vec<SigningKey> = rig
        .net
        .keys
        .iter()
        .filter(|key| key.address() != rig.key.address())
        .cloned()
        .collect();
    assert_eq!(
        rig.attest(&rig.attester(others), 0).await,
        (0, Some("not_in_committee"))
    );
    // After the attestation deadline.
    let attester = rig.attester(rig.net.keys.clone());
    let deadline = rig.net.windows.attestation_deadline(TARGET);
    rig.net
        .clock
        .set(deadline.saturating_add(Duration::from_millis(1)));
    assert_eq!(rig.attest(&attester, 0).await, (0, Some("too_late")));
    // A proposal the all-nodes handler never validated.
    rig.net.enter(TARGET);
    let mut unvalidated = rig.proposals[0].clone();
    unvalidated.checkpoint.payload.fee_asset_price_modifier = 7;
    unvalidated.resign_checkpoint(&rig.net);
    let mut events = rig.context.subscribe();
    let attestations = attester
        .process(
            &unvalidated.checkpoint,
            unvalidated.key.address(),
            rig.net.windows.attestation_deadline(TARGET),
        )
        .await;
    assert!(attestations.is_empty());
    assert!(matches!(
        events.try_recv(),
        Ok(ValidatorEvent::Attestation {
            skipped: Some("not_validated"),
            ..
        })
    ));
    // And the validated one still is attested, within the deadline, on the committee.
    assert_eq!(rig.attest(&attester, 0).await, (1, None));
}
