//! Proposal and attestation pools: duplicate suppression, the per-key cap and equivocation
//! detection. A second *different* message for a key is an equivocation: it is accepted (so
//! every node sees the evidence) but never processed; a third is rejected.

use std::collections::{BTreeMap, HashMap};

use tandem_proto::{Address, B256, CheckpointAttestation, time::Slot};

use crate::{topics::GossipKind, validation::GossipInvalid};

/// Distinct block proposals kept per (slot, index within checkpoint).
pub const MAX_BLOCK_PROPOSALS_PER_KEY: usize = 2;
/// Distinct checkpoint proposals kept per slot.
pub const MAX_CHECKPOINT_PROPOSALS_PER_SLOT: usize = 2;
/// Distinct attestations kept per (slot, signer).
pub const MAX_ATTESTATIONS_PER_SLOT_AND_SIGNER: usize = 2;
/// Slots kept behind the current one.
pub const POOL_RETAINED_SLOTS: u64 = 4;

/// A message the pool took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First message for its key: process it.
    New,
    /// A second, different message for its key: accept, report, do not process.
    Equivocation(Equivocation),
}

/// Evidence of a signer sending two different messages for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Equivocation {
    /// Message kind.
    pub kind: GossipKind,
    /// Slot.
    pub slot: Slot,
    /// Who signed both.
    pub signer: Address,
    /// Payload hash of the first message.
    pub first: B256,
    /// Payload hash of the second.
    pub second: B256,
}

#[derive(Debug, Default)]
struct Seen {
    hashes: Vec<B256>,
}

impl Seen {
    fn admit(
        &mut self,
        hash: B256,
        cap: usize,
        kind: GossipKind,
        slot: Slot,
        signer: Address,
    ) -> Result<Admission, GossipInvalid> {
        if self.hashes.contains(&hash) {
            return Err(GossipInvalid::Duplicate);
        }
        if self.hashes.len() >= cap {
            return Err(GossipInvalid::PoolCapExceeded(cap));
        }
        self.hashes.push(hash);
        Ok(match self.hashes.as_slice() {
            [_] => Admission::New,
            [first, ..] => Admission::Equivocation(Equivocation {
                kind,
                slot,
                signer,
                first: *first,
                second: hash,
            }),
            [] => unreachable!("a hash was just pushed"),
        })
    }
}

#[derive(Debug, Default)]
struct SlotAttestations {
    by_signer: HashMap<Address, Seen>,
    by_payload: HashMap<B256, Vec<CheckpointAttestation>>,
}

/// The pools of one node.
#[derive(Debug, Default)]
pub struct ProposalPool {
    blocks: BTreeMap<(Slot, u32), Seen>,
    checkpoints: BTreeMap<Slot, Seen>,
    attestations: BTreeMap<Slot, SlotAttestations>,
}

impl ProposalPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits a block proposal identified by its payload hash.
    pub fn admit_block_proposal(
        &mut self,
        slot: Slot,
        index: u32,
        payload_hash: B256,
        signer: Address,
    ) -> Result<Admission, GossipInvalid> {
        self.blocks.entry((slot, index)).or_default().admit(
            payload_hash,
            MAX_BLOCK_PROPOSALS_PER_KEY,
            GossipKind::BlockProposal,
            slot,
            signer,
        )
    }

    /// Admits a checkpoint proposal identified by its payload hash.
    pub fn admit_checkpoint_proposal(
        &mut self,
        slot: Slot,
        payload_hash: B256,
        signer: Address,
    ) -> Result<Admission, GossipInvalid> {
        self.checkpoints.entry(slot).or_default().admit(
            payload_hash,
            MAX_CHECKPOINT_PROPOSALS_PER_SLOT,
            GossipKind::CheckpointProposal,
            slot,
            signer,
        )
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
        let admission = entry.by_signer.entry(attester).or_default().admit(
            payload_hash,
            MAX_ATTESTATIONS_PER_SLOT_AND_SIGNER,
            GossipKind::CheckpointAttestation,
            slot,
            attester,
        )?;
        entry
            .by_payload
            .entry(payload_hash)
            .or_default()
            .push(attestation.clone());
        Ok(admission)
    }

    /// Every attestation collected for the payload `payload_hash` of `slot`, one per attester.
    pub fn attestations_for(&self, slot: Slot, payload_hash: &B256) -> Vec<CheckpointAttestation> {
        self.attestations
            .get(&slot)
            .and_then(|entry| entry.by_payload.get(payload_hash))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether a checkpoint proposal was seen for `slot`.
    pub fn has_checkpoint_proposal(&self, slot: Slot) -> bool {
        self.checkpoints.contains_key(&slot)
    }

    /// Forgets everything older than [`POOL_RETAINED_SLOTS`] behind `current`.
    pub fn prune(&mut self, current: Slot) {
        let Some(keep_from) = current.0.checked_sub(POOL_RETAINED_SLOTS).map(Slot) else {
            return;
        };
        self.blocks = self.blocks.split_off(&(keep_from, 0));
        self.checkpoints = self.checkpoints.split_off(&keep_from);
        self.attestations = self.attestations.split_off(&keep_from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> B256 {
        B256::repeat_byte(byte)
    }

    #[test]
    fn duplicate_equivocation_cap() {
        let mut pool = ProposalPool::new();
        let signer = Address::repeat_byte(9);
        let slot = Slot(10);
        assert_eq!(
            pool.admit_checkpoint_proposal(slot, hash(1), signer),
            Ok(Admission::New)
        );
        assert_eq!(
            pool.admit_checkpoint_proposal(slot, hash(1), signer),
            Err(GossipInvalid::Duplicate)
        );
        let Ok(Admission::Equivocation(evidence)) =
            pool.admit_checkpoint_proposal(slot, hash(2), signer)
        else {
            panic!("second distinct proposal is an equivocation");
        };
        assert_eq!((evidence.first, evidence.second), (hash(1), hash(2)));
        assert_eq!(
            pool.admit_checkpoint_proposal(slot, hash(2), signer),
            Err(GossipInvalid::Duplicate)
        );
        assert_eq!(
            pool.admit_checkpoint_proposal(slot, hash(3), signer),
            Err(GossipInvalid::PoolCapExceeded(2))
        );
        // Other keys are independent.
        assert_eq!(
            pool.admit_checkpoint_proposal(Slot(11), hash(3), signer),
            Ok(Admission::New)
        );
        assert_eq!(
            pool.admit_block_proposal(slot, 0, hash(1), signer),
            Ok(Admission::New)
        );
        assert_eq!(
            pool.admit_block_proposal(slot, 1, hash(1), signer),
            Ok(Admission::New)
        );
    }

    #[test]
    fn attestations_counted_per_payload_and_pruned() {
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
        assert_eq!(pool.attestations_for(Slot(20), &payload).len(), 3);
        pool.prune(Slot(24));
        assert_eq!(pool.attestations_for(Slot(20), &payload).len(), 3);
        pool.prune(Slot(25));
        assert!(pool.attestations_for(Slot(20), &payload).is_empty());
    }
}
