//! Proposal and attestation pools: duplicate suppression, the per-duty cap and equivocation
//! detection. A second *different* message from one signer for one duty is an equivocation: it
//! is accepted (so every node sees the evidence) but never processed; a third is rejected.
//!
//! Keys include the signer, so two honest proposers of an open slot (empty committee: anyone may
//! propose) are two proposals, not one equivocation.

use std::collections::{BTreeMap, HashMap, btree_map::Entry};

use tandem_proto::{
    Address, B256, BlockProposal, CheckpointAttestation, CheckpointProposal, time::Slot,
};

use crate::{
    evidence::{Equivocation, SignedMessage},
    validation::GossipInvalid,
};

/// Distinct block proposals kept per (slot, index within checkpoint, signer).
pub const MAX_BLOCK_PROPOSALS_PER_KEY: usize = 2;
/// Distinct checkpoint proposals kept per (slot, signer).
pub const MAX_CHECKPOINT_PROPOSALS_PER_SLOT: usize = 2;
/// Distinct attestations kept per (slot, signer).
pub const MAX_ATTESTATIONS_PER_SLOT_AND_SIGNER: usize = 2;
/// Distinct proposers kept per slot; more than one only happens with an empty committee.
pub const MAX_PROPOSERS_PER_SLOT: usize = 4;
/// Slots kept behind the current one.
pub const POOL_RETAINED_SLOTS: u64 = 4;

/// A message the pool took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// First message for its key: process it.
    New,
    /// A second, different message for its key: accept, report, do not process.
    Equivocation(Box<Equivocation>),
}

/// What the pool remembers of one duty: the first signed message (evidence, should a second
/// one come) and the payload hashes seen.
#[derive(Debug)]
struct Seen {
    first: SignedMessage,
    hashes: Vec<B256>,
}

/// What admitting a message would do, without admitting it (this node's own messages are
/// classified first, so one the pool would flag is never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// First message for its key.
    New,
    /// This exact message was admitted before.
    Duplicate,
    /// A second, different message for its key: an equivocation.
    Equivocation,
    /// The key already holds as many distinct messages as it may: peers reject it.
    CapExceeded(usize),
    /// The slot already has as many proposers as it may keep: peers reject it.
    TooManyProposers(usize),
}

fn classify(seen: Option<&Seen>, hash: &B256, cap: usize) -> Classification {
    match seen {
        None => Classification::New,
        Some(seen) if seen.hashes.contains(hash) => Classification::Duplicate,
        Some(seen) if seen.hashes.len() >= cap => Classification::CapExceeded(cap),
        Some(_) => Classification::Equivocation,
    }
}

fn admit(
    entry: Entry<'_, impl Ord, Seen>,
    hash: B256,
    message: impl FnOnce() -> SignedMessage,
    cap: usize,
    signer: Address,
) -> Result<Admission, GossipInvalid> {
    match entry {
        Entry::Vacant(vacant) => {
            vacant.insert(Seen {
                first: message(),
                hashes: vec![hash],
            });
            Ok(Admission::New)
        }
        Entry::Occupied(mut occupied) => {
            let seen = occupied.get_mut();
            if seen.hashes.contains(&hash) {
                return Err(GossipInvalid::Duplicate);
            }
            if seen.hashes.len() >= cap {
                return Err(GossipInvalid::PoolCapExceeded(cap));
            }
            seen.hashes.push(hash);
            Ok(Admission::Equivocation(Box::new(Equivocation {
                signer,
                first: seen.first.clone(),
                second: message(),
            })))
        }
    }
}

#[derive(Debug, Default)]
struct SlotAttestations {
    by_signer: BTreeMap<Address, Seen>,
    /// One attestation per signer and payload: a signer counts once towards a payload.
    by_payload: HashMap<B256, BTreeMap<Address, CheckpointAttestation>>,
}

/// The pools of one node.
#[derive(Debug, Default)]
pub struct ProposalPool {
    blocks: BTreeMap<(Slot, u32, Address), Seen>,
    checkpoints: BTreeMap<(Slot, Address), Seen>,
    proposers: BTreeMap<Slot, Vec<Address>>,
    attestations: BTreeMap<Slot, SlotAttestations>,
}

impl ProposalPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits a block proposal signed by `signer`.
    pub fn admit_block_proposal(
        &mut self,
        proposal: &BlockProposal,
        signer: Address,
    ) -> Result<Admission, GossipInvalid> {
        let slot = Slot(proposal.header.slot);
        self.note_proposer(slot, signer)?;
        let key = (slot, proposal.header.index_within_checkpoint, signer);
        admit(
            self.blocks.entry(key),
            proposal.payload_hash(),
            || SignedMessage::BlockProposal {
                header: proposal.header.clone(),
                archive_root: proposal.archive_root,
                signature: proposal.signature,
            },
            MAX_BLOCK_PROPOSALS_PER_KEY,
            signer,
        )
    }

    /// Admits a checkpoint proposal signed by `signer`.
    pub fn admit_checkpoint_proposal(
        &mut self,
        proposal: &CheckpointProposal,
        signer: Address,
    ) -> Result<Admission, GossipInvalid> {
        let slot = Slot(proposal.payload.header.slot);
        self.note_proposer(slot, signer)?;
        admit(
            self.checkpoints.entry((slot, signer)),
            proposal.payload.payload_hash(),
            || SignedMessage::CheckpointProposal {
                payload: proposal.payload.clone(),
                signature: proposal.signature,
            },
            MAX_CHECKPOINT_PROPOSALS_PER_SLOT,
            signer,
        )
    }

    /// What [`Self::admit_block_proposal`] would do, without changing the pool.
    pub fn classify_block_proposal(
        &self,
        proposal: &BlockProposal,
        signer: Address,
    ) -> Classification {
        let slot = Slot(proposal.header.slot);
        if let Some(full) = self.proposers_full(slot, signer) {
            return full;
        }
        let key = (slot, proposal.header.index_within_checkpoint, signer);
        classify(
            self.blocks.get(&key),
            &proposal.payload_hash(),
            MAX_BLOCK_PROPOSALS_PER_KEY,
        )
    }

    /// What [`Self::admit_checkpoint_proposal`] would do, without changing the pool.
    pub fn classify_checkpoint_proposal(
        &self,
        proposal: &CheckpointProposal,
        signer: Address,
    ) -> Classification {
        let slot = Slot(proposal.payload.header.slot);
        if let Some(full) = self.proposers_full(slot, signer) {
            return full;
        }
        classify(
            self.checkpoints.get(&(slot, signer)),
            &proposal.payload.payload_hash(),
            MAX_CHECKPOINT_PROPOSALS_PER_SLOT,
        )
    }

    /// What [`Self::admit_attestation`] would do, without changing the pool.
    pub fn classify_attestation(
        &self,
        attestation: &CheckpointAttestation,
        attester: Address,
    ) -> Classification {
        let seen = self
            .attestations
            .get(&Slot(attestation.payload.header.slot))
            .and_then(|entry| entry.by_signer.get(&attester));
        classify(
            seen,
            &attestation.payload.payload_hash(),
            MAX_ATTESTATIONS_PER_SLOT_AND_SIGNER,
        )
    }

    fn proposers_full(&self, slot: Slot, signer: Address) -> Option<Classification> {
        let proposers = self.proposers.get(&slot)?;
        (!proposers.contains(&signer) && proposers.len() >= MAX_PROPOSERS_PER_SLOT)
            .then_some(Classification::TooManyProposers(MAX_PROPOSERS_PER_SLOT))
    }

    fn note_proposer(&mut self, slot: Slot, signer: Address) -> Result<(), GossipInvalid> {
        let proposers = self.proposers.entry(slot).or_default();
        if !proposers.contains(&signer) {
            if proposers.len() >= MAX_PROPOSERS_PER_SLOT {
                return Err(GossipInvalid::TooManyProposers(MAX_PROPOSERS_PER_SLOT));
            }
            proposers.push(signer);
        }
        Ok(())
    }

    /// Admits an attestation by `attester`; on success it counts towards its payload.
    pub fn admit_attestation(
        &mut self,
        attestation: &CheckpointAttestation,
        attester: Address,
    ) -> Result<Admission, GossipInvalid> {
        let slot = Slot(attestation.payload.header.slot);
        let payload_hash = attestation.payload.payload_hash();
        let entry = self.attestations.entry(slot).or_default();
        let admission = admit(
            entry.by_signer.entry(attester),
            payload_hash,
            || SignedMessage::Attestation {
                payload: attestation.payload.clone(),
                signature: attestation.signature,
            },
            MAX_ATTESTATIONS_PER_SLOT_AND_SIGNER,
            attester,
        )?;
        entry
            .by_payload
            .entry(payload_hash)
            .or_default()
            .insert(attester, attestation.clone());
        Ok(admission)
    }

    /// The attestations collected for the payload `payload_hash` of `slot`, one per attester,
    /// with their attesters.
    pub fn attestations_for(
        &self,
        slot: Slot,
        payload_hash: &B256,
    ) -> Vec<(Address, CheckpointAttestation)> {
        self.attestations
            .get(&slot)
            .and_then(|entry| entry.by_payload.get(payload_hash))
            .map(|by_signer| {
                by_signer
                    .iter()
                    .map(|(attester, attestation)| (*attester, attestation.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many attesters attested the payload `payload_hash` of `slot`.
    pub fn attestation_count(&self, slot: Slot, payload_hash: &B256) -> usize {
        self.attestations
            .get(&slot)
            .and_then(|entry| entry.by_payload.get(payload_hash))
            .map_or(0, BTreeMap::len)
    }

    /// Whether a checkpoint proposal was seen for `slot`.
    pub fn has_checkpoint_proposal(&self, slot: Slot) -> bool {
        self.checkpoints
            .range((slot, Address::ZERO)..=(slot, Address::repeat_byte(0xff)))
            .next()
            .is_some()
    }

    /// Forgets everything older than [`POOL_RETAINED_SLOTS`] behind `current`.
    pub fn prune(&mut self, current: Slot) {
        let Some(keep_from) = current.0.checked_sub(POOL_RETAINED_SLOTS).map(Slot) else {
            return;
        };
        self.blocks = self.blocks.split_off(&(keep_from, 0, Address::ZERO));
        self.checkpoints = self.checkpoints.split_off(&(keep_from, Address::ZERO));
        self.proposers = self.proposers.split_off(&keep_from);
        self.attestations = self.attestations.split_off(&keep_from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_proto::{ConsensusPayload, Signature};

    fn checkpoint(slot: u64, modifier: i64) -> CheckpointProposal {
        let mut payload = ConsensusPayload {
            fee_asset_price_modifier: modifier,
            ..ConsensusPayload::default()
        };
        payload.header.slot = slot;
        CheckpointProposal {
            payload,
            signature: Signature::default(),
            last_block: None,
        }
    }

    #[test]
    fn duplicate_equivocation_cap() {
        let mut pool = ProposalPool::new();
        let signer = Address::repeat_byte(9);
        assert_eq!(
            pool.admit_checkpoint_proposal(&checkpoint(10, 1), signer),
            Ok(Admission::New)
        );
        assert!(pool.has_checkpoint_proposal(Slot(10)));
        assert!(!pool.has_checkpoint_proposal(Slot(11)));
        assert_eq!(
            pool.admit_checkpoint_proposal(&checkpoint(10, 1), signer),
            Err(GossipInvalid::Duplicate)
        );
        let Ok(Admission::Equivocation(evidence)) =
            pool.admit_checkpoint_proposal(&checkpoint(10, 2), signer)
        else {
            panic!("second distinct proposal is an equivocation");
        };
        // Both signed messages are kept as evidence.
        assert_eq!(evidence.signer, signer);
        assert_eq!(
            evidence.first.payload_hash(),
            checkpoint(10, 1).payload.payload_hash()
        );
        assert_eq!(
            evidence.second.payload_hash(),
            checkpoint(10, 2).payload.payload_hash()
        );
        assert_eq!(
            pool.admit_checkpoint_proposal(&checkpoint(10, 2), signer),
            Err(GossipInvalid::Duplicate)
        );
        assert_eq!(
            pool.admit_checkpoint_proposal(&checkpoint(10, 3), signer),
            Err(GossipInvalid::PoolCapExceeded(2))
        );
        // Other slots and other signers are independent: a second proposer is no equivocator.
        assert_eq!(
            pool.admit_checkpoint_proposal(&checkpoint(11, 3), signer),
            Ok(Admission::New)
        );
        assert_eq!(
            pool.admit_checkpoint_proposal(&checkpoint(10, 3), Address::repeat_byte(8)),
            Ok(Admission::New)
        );
        let mut block = BlockProposal::default();
        block.header.slot = 10;
        assert_eq!(
            pool.admit_block_proposal(&block, signer),
            Ok(Admission::New)
        );
        block.header.index_within_checkpoint = 1;
        assert_eq!(
            pool.admit_block_proposal(&block, signer),
            Ok(Admission::New)
        );
    }

    #[test]
    fn classification_predicts_admission_and_changes_nothing() {
        let mut pool = ProposalPool::new();
        let signer = Address::repeat_byte(9);
        for (modifier, expected) in [
            (1, Classification::New),
            (1, Classification::Duplicate),
            (2, Classification::Equivocation),
            (3, Classification::CapExceeded(2)),
        ] {
            let proposal = checkpoint(10, modifier);
            let predicted = pool.classify_checkpoint_proposal(&proposal, signer);
            assert_eq!(predicted, expected);
            // Classifying twice gives the same answer: the first call pooled nothing.
            assert_eq!(
                pool.classify_checkpoint_proposal(&proposal, signer),
                expected
            );
            let admitted = pool.admit_checkpoint_proposal(&proposal, signer);
            let matches = matches!(
                (expected, &admitted),
                (Classification::New, Ok(Admission::New))
                    | (Classification::Duplicate, Err(GossipInvalid::Duplicate))
                    | (Classification::Equivocation, Ok(Admission::Equivocation(_)))
                    | (
                        Classification::CapExceeded(2),
                        Err(GossipInvalid::PoolCapExceeded(2))
                    )
            );
            assert!(matches, "{expected:?} predicted, {admitted:?} admitted");
        }
        let mut attestation = CheckpointAttestation::default();
        attestation.payload.header.slot = 20;
        assert_eq!(
            pool.classify_attestation(&attestation, signer),
            Classification::New
        );
        assert_eq!(
            pool.attestation_count(Slot(20), &attestation.payload.payload_hash()),
            0
        );
        pool.admit_attestation(&attestation, signer).unwrap();
        attestation.payload.fee_asset_price_modifier = 5;
        assert_eq!(
            pool.classify_attestation(&attestation, signer),
            Classification::Equivocation
        );
        let mut block = BlockProposal::default();
        block.header.slot = 10;
        assert_eq!(
            pool.classify_block_proposal(&block, signer),
            Classification::New
        );
        pool.admit_block_proposal(&block, signer).unwrap();
        assert_eq!(
            pool.classify_block_proposal(&block, signer),
            Classification::Duplicate
        );
        for other in 0..3u8 {
            pool.admit_checkpoint_proposal(&checkpoint(10, 0), Address::repeat_byte(other))
                .unwrap();
        }
        assert_eq!(
            pool.classify_block_proposal(&block, Address::repeat_byte(0xee)),
            Classification::TooManyProposers(MAX_PROPOSERS_PER_SLOT)
        );
    }

    #[test]
    fn open_slots_keep_a_bounded_number_of_proposers() {
        let mut pool = ProposalPool::new();
        for signer in 0..MAX_PROPOSERS_PER_SLOT as u8 {
            assert_eq!(
                pool.admit_checkpoint_proposal(&checkpoint(3, 0), Address::repeat_byte(signer)),
                Ok(Admission::New)
            );
        }
        assert_eq!(
            pool.admit_checkpoint_proposal(&checkpoint(3, 0), Address::repeat_byte(0xee)),
            Err(GossipInvalid::TooManyProposers(MAX_PROPOSERS_PER_SLOT))
        );
    }

    #[test]
    fn attestations_count_each_signer_once_per_payload_and_are_pruned() {
        let mut pool = ProposalPool::new();
        let mut attestation = CheckpointAttestation::default();
        attestation.payload.header.slot = 20;
        let payload = attestation.payload.payload_hash();
        for signer in 1..=3u8 {
            assert_eq!(
                pool.admit_attestation(&attestation, Address::repeat_byte(signer)),
                Ok(Admission::New)
            );
        }
        assert_eq!(
            pool.admit_attestation(&attestation, Address::repeat_byte(1)),
            Err(GossipInvalid::Duplicate)
        );
        // Signer 1 equivocates: its second attestation counts for the other payload only.
        let mut other = attestation.clone();
        other.payload.fee_asset_price_modifier = 5;
        assert!(matches!(
            pool.admit_attestation(&other, Address::repeat_byte(1)),
            Ok(Admission::Equivocation(_))
        ));
        assert_eq!(pool.attestation_count(Slot(20), &payload), 3);
        assert_eq!(
            pool.attestation_count(Slot(20), &other.payload.payload_hash()),
            1
        );
        let signers: Vec<Address> = pool
            .attestations_for(Slot(20), &payload)
            .into_iter()
            .map(|(signer, _)| signer)
            .collect();
        assert_eq!(
            signers,
            (1..=3u8).map(Address::repeat_byte).collect::<Vec<_>>()
        );
        pool.prune(Slot(24));
        assert_eq!(pool.attestation_count(Slot(20), &payload), 3);
        pool.prune(Slot(25));
        assert_eq!(pool.attestation_count(Slot(20), &payload), 0);
    }
}
