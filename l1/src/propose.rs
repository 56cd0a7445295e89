//! The arguments of `Rollup.propose` built from protocol types, and back.

use alloy::primitives::{Address, B256, Bytes, I256, U256};

use crate::bindings::Rollup;
use tandem_proto::{
    CheckpointAttestation, CheckpointHeader, CheckpointProposal, ConsensusPayload, Signature,
    SignatureError, SigningDomain,
};

/// Converts a protocol header into the contract's (identical ABI).
pub fn header_to_sol(header: &CheckpointHeader) -> Rollup::CheckpointHeader {
    Rollup::CheckpointHeader {
        lastArchiveRoot: header.last_archive_root,
        blockHeadersHash: header.block_headers_hash,
        bodyHash: header.body_hash,
        slot: header.slot,
        timestamp: header.timestamp,
        coinbase: header.coinbase,
        feeRecipient: header.fee_recipient,
        feePerMana: header.fee_per_mana,
        totalManaUsed: header.total_mana_used,
        accumulatedFees: header.accumulated_fees,
    }
}

/// Converts the contract's header into the protocol's.
pub fn header_from_sol(header: &Rollup::CheckpointHeader) -> CheckpointHeader {
    CheckpointHeader {
        last_archive_root: header.lastArchiveRoot,
        block_headers_hash: header.blockHeadersHash,
        body_hash: header.bodyHash,
        slot: header.slot,
        timestamp: header.timestamp,
        coinbase: header.coinbase,
        fee_recipient: header.feeRecipient,
        fee_per_mana: header.feePerMana,
        total_mana_used: header.totalManaUsed,
        accumulated_fees: header.accumulatedFees,
    }
}

/// `r || s || v` → the contract's `(v, r, s)`.
pub fn signature_to_sol(signature: &Signature) -> Rollup::Signature {
    let bytes = signature.as_bytes();
    Rollup::Signature {
        v: bytes[64],
        r: B256::from_slice(&bytes[..32]),
        s: B256::from_slice(&bytes[32..64]),
    }
}

/// The contract's `(v, r, s)` → `r || s || v`.
pub fn signature_from_sol(signature: &Rollup::Signature) -> Signature {
    let mut bytes = [0u8; 65];
    bytes[..32].copy_from_slice(signature.r.as_slice());
    bytes[32..64].copy_from_slice(signature.s.as_slice());
    bytes[64] = signature.v;
    Signature::from_bytes(bytes)
}

/// Why attestations could not be packed for L1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An attestation's signature does not recover.
    #[error("attestation {index}: {source}")]
    BadSignature {
        /// Position in the input.
        index: usize,
        /// Why.
        source: SignatureError,
    },
    /// An attestation is for another payload.
    #[error("attestation {index} is for another checkpoint payload")]
    PayloadMismatch {
        /// Position in the input.
        index: usize,
    },
    /// An attester is not in the committee.
    #[error("attester {0} is not in the committee")]
    NotInCommittee(Address),
    /// The committee is larger than the bitmap.
    #[error("committee of {0} exceeds 256 members")]
    CommitteeTooLarge(usize),
}

/// Everything `Rollup.propose` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposeBundle {
    /// Number, header, archive, fee modifier.
    pub args: Rollup::ProposeArgs,
    /// The proposer's signature.
    pub proposer_signature: Rollup::Signature,
    /// Attestations in committee order.
    pub attestations: Vec<Rollup::Signature>,
    /// Bit i set iff committee[i] attested.
    pub signers: U256,
    /// The checkpoint body (calldata for full nodes).
    pub body: Bytes,
}

impl ProposeBundle {
    /// Packs a signed proposal and its attestations. Attestations are matched to committee
    /// positions by their recovered signer; duplicates collapse to one, others must match the
    /// proposal's payload and come from committee members.
    pub fn new(
        checkpoint_number: u64,
        proposal: &CheckpointProposal,
        attestations: &[CheckpointAttestation],
        committee: &[Address],
        domain: &SigningDomain,
        body: Bytes,
    ) -> Result<Self, BundleError> {
        if committee.len() > 256 {
            return Err(BundleError::CommitteeTooLarge(committee.len()));
        }
        let mut by_position: Vec<Option<Signature>> = vec![None; committee.len()];
        for (index, attestation) in attestations.iter().enumerate() {
            if attestation.payload != proposal.payload {
                return Err(BundleError::PayloadMismatch { index });
            }
            let attester = attestation
                .recover_attester(domain)
                .map_err(|source| BundleError::BadSignature { index, source })?;
            let position = committee
                .iter()
                .position(|member| *member == attester)
                .ok_or(BundleError::NotInCommittee(attester))?;
            by_position[position] = Some(attestation.signature);
        }
        let mut signers = U256::ZERO;
        let mut packed = Vec::new();
        for (position, signature) in by_position.iter().enumerate() {
            if let Some(signature) = signature {
                signers |= U256::from(1) << position;
                packed.push(signature_to_sol(signature));
            }
        }
        Ok(Self {
            args: propose_args(checkpoint_number, &proposal.payload),
            proposer_signature: signature_to_sol(&proposal.signature),
            attestations: packed,
            signers,
            body,
        })
    }

    /// The `propose` call on `rollup`, ready to `.call()` (simulate) or `.send()`.
    pub fn call<'a, P: alloy::providers::Provider>(
        &self,
        rollup: &'a Rollup::RollupInstance<P>,
    ) -> alloy::contract::SolCallBuilder<&'a P, Rollup::proposeCall> {
        rollup.propose(
            self.args.clone(),
            self.proposer_signature.clone(),
            self.attestations.clone(),
            self.signers,
            self.body.clone(),
        )
    }

    /// Number of attestations included.
    pub fn attestation_count(&self) -> usize {
        self.attestations.len()
    }
}

/// `ProposeArgs` of a consensus payload.
pub fn propose_args(checkpoint_number: u64, payload: &ConsensusPayload) -> Rollup::ProposeArgs {
    Rollup::ProposeArgs {
        checkpointNumber: U256::from(checkpoint_number),
        header: header_to_sol(&payload.header),
        archive: payload.archive,
        feeAssetPriceModifier: I256::unchecked_from(payload.fee_asset_price_modifier),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_proto::SigningKey;

    #[test]
    fn header_and_signature_conversions_round_trip_and_hash_alike() {
        let header = CheckpointHeader {
            slot: 4,
            fee_per_mana: 9,
            coinbase: Address::repeat_byte(3),
            ..Default::default()
        };
        let sol = header_to_sol(&header);
        assert_eq!(header_from_sol(&sol), header);
        let encoded = alloy::sol_types::SolValue::abi_encode(&sol);
        assert_eq!(alloy::primitives::keccak256(encoded), header.hash());

        let key = SigningKey::from_bytes(&[1; 32]).unwrap();
        let signature = key.sign_digest(B256::repeat_byte(5));
        assert_eq!(signature_from_sol(&signature_to_sol(&signature)), signature);
    }

    #[test]
    fn attestations_are_packed_in_committee_order() {
        let domain = SigningDomain {
            chain_id: 1,
            rollup: Address::repeat_byte(7),
        };
        let keys: Vec<SigningKey> = (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]).unwrap())
            .collect();
        let committee: Vec<Address> = keys.iter().rev().map(SigningKey::address).collect();
        let proposal =
            CheckpointProposal::sign(ConsensusPayload::default(), None, &domain, &keys[0]);
        let attestations: Vec<_> = [0, 1, 1, 3]
            .iter()
            .map(|&i| CheckpointAttestation::sign(&proposal, &domain, &keys[i]))
            .collect();
        let bundle = ProposeBundle::new(
            1,
            &proposal,
            &attestations,
            &committee,
            &domain,
            Bytes::new(),
        )
        .unwrap();
        // keys 0, 1, 3 sit at committee positions 3, 2, 0.
        assert_eq!(bundle.signers, U256::from(0b1101));
        assert_eq!(bundle.attestation_count(), 3);
        assert_eq!(
            bundle.attestations[0],
            signature_to_sol(&attestations[3].signature)
        );

        let outsider = SigningKey::from_bytes(&[9; 32]).unwrap();
        let stray = CheckpointAttestation::sign(&proposal, &domain, &outsider);
        assert_eq!(
            ProposeBundle::new(1, &proposal, &[stray], &committee, &domain, Bytes::new()),
            Err(BundleError::NotInCommittee(outsider.address()))
        );
    }
}
