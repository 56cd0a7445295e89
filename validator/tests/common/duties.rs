//! Slashing-protection fixtures: keys, a domain, and duties signed through the public API
//! with a chosen digest variant.

use tandem_proto::{
    Address, B256, BlockHeader, BlockProposal, CheckpointHeader, CheckpointProposal,
    ConsensusPayload, Signature, SignatureKind, SigningDomain, SigningKey, keccak256, time::Slot,
};
use tandem_validator::{Duty, OpenMode, ProtectedSigner, ValidatorResult};

pub fn domain() -> SigningDomain {
    SigningDomain {
        chain_id: 1337,
        rollup: Address::repeat_byte(0x42),
    }
}

pub fn key(i: u8) -> SigningKey {
    let mut secret = [0x11u8; 32];
    secret[31] = i.wrapping_add(1);
    SigningKey::from_bytes(&secret).expect("valid key")
}

/// Init mode with first slot `first_slot`.
pub fn init(first_slot: u64) -> OpenMode {
    OpenMode::Initialize {
        first_slot: Slot(first_slot),
    }
}

/// A block proposal of (slot, index) whose content (and so digest) depends on `variant`; its
/// archive is that of [`payload`] of the same variant.
pub fn block(slot: u64, index: u32, variant: u64) -> BlockProposal {
    BlockProposal {
        header: BlockHeader {
            slot,
            index_within_checkpoint: index,
            block_number: slot * 100 + u64::from(index),
            ..Default::default()
        },
        archive_root: keccak256(variant.to_be_bytes()),
        ..Default::default()
    }
}

/// A checkpoint payload of `slot` whose content depends on `variant`.
pub fn payload(slot: u64, variant: u64) -> ConsensusPayload {
    ConsensusPayload {
        header: CheckpointHeader {
            slot,
            ..Default::default()
        },
        archive: keccak256(variant.to_be_bytes()),
        fee_asset_price_modifier: 0,
    }
}

/// The proposal an attester sees for (slot, variant).
pub fn proposal(slot: u64, variant: u64) -> CheckpointProposal {
    CheckpointProposal {
        payload: payload(slot, variant),
        signature: Signature::default(),
        last_block: None,
    }
}

/// The digest `duty` with content `variant` is signed over.
pub fn digest(domain: &SigningDomain, duty: Duty, variant: u64) -> B256 {
    match duty {
        Duty::BlockProposal { slot, index } => domain.digest(
            SignatureKind::BlockProposal,
            block(slot.0, index, variant).payload_hash(),
        ),
        Duty::CheckpointProposal { slot } => domain.digest(
            SignatureKind::CheckpointProposal,
            payload(slot.0, variant).payload_hash(),
        ),
        Duty::Attestation { slot } => domain.digest(
            SignatureKind::CheckpointAttestation,
            payload(slot.0, variant).payload_hash(),
        ),
    }
}

/// Signs `duty` with content `variant` as `who` through the matching public method; returns
/// the digest that was asked for and the outcome.
pub fn sign(
    signer: &ProtectedSigner,
    who: Address,
    duty: Duty,
    variant: u64,
) -> (B256, ValidatorResult<Signature>) {
    let digest = digest(&signer.domain(), duty, variant);
    let result = match duty {
        Duty::BlockProposal { slot, index } => signer
            .sign_block_proposal_blocking(who, block(slot.0, index, variant))
            .map(|signed| signed.signature),
        Duty::CheckpointProposal { slot } => signer
            .sign_checkpoint_proposal_blocking(who, payload(slot.0, variant), None)
            .map(|signed| signed.signature),
        Duty::Attestation { slot } => signer
            .attest_blocking(who, &proposal(slot.0, variant))
            .map(|signed| signed.signature),
    };
    (digest, result)
}
