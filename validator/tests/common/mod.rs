//! Helpers shared by the validator's integration tests: keys, a domain, and duties signed
//! through the public API with a chosen digest variant.

#![allow(dead_code, unreachable_pub)]

use tandem_proto::{
    Address, B256, BlockHeader, BlockProposal, CheckpointHeader, CheckpointProposal,
    ConsensusPayload, Signature, SignatureKind, SigningDomain, SigningKey, keccak256,
};
use tandem_validator::{Duty, ProtectedSigner, ValidatorResult};

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

/// A block proposal of (slot, index) whose content (and so digest) depends on `variant`.
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

/// Signs `duty` with content `variant` as `who` through the matching public method; returns
/// the digest that was asked for and the outcome.
pub fn sign(
    signer: &ProtectedSigner,
    who: Address,
    duty: Duty,
    variant: u64,
) -> (B256, ValidatorResult<Signature>) {
    let domain = signer.domain();
    match duty {
        Duty::BlockProposal { slot, index } => {
            let block = block(slot.0, index, variant);
            let digest = domain.digest(SignatureKind::BlockProposal, block.payload_hash());
            let result = signer
                .sign_block_proposal_blocking(who, block)
                .map(|signed| signed.signature);
            (digest, result)
        }
        Duty::CheckpointProposal { slot } => {
            let payload = payload(slot.0, variant);
            let digest = domain.digest(SignatureKind::CheckpointProposal, payload.payload_hash());
            let result = signer
                .sign_checkpoint_proposal_blocking(who, payload, None)
                .map(|signed| signed.signature);
            (digest, result)
        }
        Duty::Attestation { slot } => {
            let proposal = proposal(slot.0, variant);
            let digest = domain.digest(
                SignatureKind::CheckpointAttestation,
                proposal.payload.payload_hash(),
            );
            let result = signer
                .attest_blocking(who, &proposal)
                .map(|signed| signed.signature);
            (digest, result)
        }
    }
}
