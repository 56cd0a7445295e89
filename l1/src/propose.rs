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

/// Largest tx (RLP-encoded, signature included) public mempools accept: 128 KiB (geth's
/// `txMaxSize`; other clients use the same bound).
pub const MEMPOOL_TX_SIZE_LIMIT: usize = 128 * 1024;
/// Room kept for a `propose` tx's RLP envelope (type, nonce, fees, gas, to, value, signature,
/// length prefixes: about 160 bytes; rounded up).
pub const TX_ENVELOPE_BYTES: usize = 256;

/// Attestations `propose` needs from a committee of `committee_size`: more than 2/3 of it, none
/// for an empty committee (the contract then accepts anyone). Matches `Rollup.quorum`.
pub const fn quorum(committee_size: usize) -> usize {
    if committee_size == 0 {
        0
    } else {
        committee_size.saturating_mul(2) / 3 + 1
    }
}

/// Length of the ABI-encoded `propose` calldata with `attestations` signatures and a body of
/// `body_len` bytes: selector, the static head (args 13 words, proposer signature 3, two offsets
/// and the bitmap), then the signature array (length + 3 words each) and the body (length +
/// padded bytes).
pub const fn propose_calldata_len(attestations: usize, body_len: usize) -> usize {
    let head = 4 + (13 + 3 + 3) * 32;
    let signatures = 32usize.saturating_add(attestations.saturating_mul(96));
    let body = 32usize.saturating_add(body_len.div_ceil(32).saturating_mul(32));
    head + signatures.saturating_add(body)
}

/// The largest `max_checkpoint_body_bytes` a committee of `committee_size` allows: a `propose`
/// tx with a full body and a quorum of attestations, plus [`TX_ENVELOPE_BYTES`], must fit
/// [`MEMPOOL_TX_SIZE_LIMIT`]. The contract's constructor applies the same rule (with the same
/// constants, which a test reads back from it).
pub const fn max_checkpoint_body_bytes_for(committee_size: usize) -> usize {
    let fixed = propose_calldata_len(quorum(committee_size), 0).saturating_add(TX_ENVELOPE_BYTES);
    // The body is padded to whole words, so the cap is the room left rounded down to a word.
    MEMPOOL_TX_SIZE_LIMIT.saturating_sub(fixed) / 32 * 32
}

/// Why a [`ProposeBundle`] cannot be built at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The committee is larger than the bitmap.
    #[error("committee of {0} exceeds 256 members")]
    CommitteeTooLarge(usize),
}

/// Why an attestation was left out of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// It attests to another payload than the proposal's.
    #[error("it is for another checkpoint payload")]
    PayloadMismatch,
    /// Its signature does not recover.
    #[error("bad signature: {0}")]
    BadSignature(SignatureError),
    /// Its signer is not in the committee.
    #[error("signer {0} is not in the committee")]
    NotInCommittee(Address),
    /// The same member attested before.
    #[error("member {0} already attested")]
    Duplicate(Address),
    /// Quorum was already reached with members earlier in committee order.
    #[error("quorum reached without member {0}")]
    BeyondQuorum(Address),
}

/// An attestation left out of a bundle, with its position in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkippedAttestation {
    /// Position in the input slice.
    pub index: usize,
    /// Why.
    pub reason: SkipReason,
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
    /// Attestations not included, and why.
    pub skipped: Vec<SkippedAttestation>,
    /// Attestations the contract needs from this committee.
    pub quorum: usize,
}

impl ProposeBundle {
    /// Packs a signed proposal and what the contract needs of its attestations: the first
    /// quorum of valid ones in committee order (fewer only if fewer are valid; the contract then
    /// refuses, see [`ProposeBundle::has_quorum`]). A stray attestation — another payload, a bad
    /// signature, a non-member, a repeat — is skipped with its reason instead of failing the
    /// bundle, so one bad gossip message cannot stop a checkpoint.
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
        let mut skipped = Vec::new();
        let mut skip = |index, reason| skipped.push(SkippedAttestation { index, reason });
        let mut by_position: Vec<Option<(usize, Signature)>> = vec![None; committee.len()];
        for (index, attestation) in attestations.iter().enumerate() {
            if attestation.payload != proposal.payload {
                skip(index, SkipReason::PayloadMismatch);
                continue;
            }
            let attester = match attestation.recover_attester(domain) {
                Ok(attester) => attester,
                Err(error) => {
                    skip(index, SkipReason::BadSignature(error));
                    continue;
                }
            };
            let Some(position) = committee.iter().position(|member| *member == attester) else {
                skip(index, SkipReason::NotInCommittee(attester));
                continue;
            };
            match &mut by_position[position] {
                Some(_) => skip(index, SkipReason::Duplicate(attester)),
                entry @ None => *entry = Some((index, attestation.signature)),
            }
        }
        let needed = quorum(committee.len());
        let mut signers = U256::ZERO;
        let mut packed = Vec::with_capacity(needed);
        for (position, entry) in by_position.iter().enumerate() {
            let Some((index, signature)) = entry else {
                continue;
            };
            if packed.len() == needed {
                skip(*index, SkipReason::BeyondQuorum(committee[position]));
                continue;
            }
            signers |= U256::from(1) << position;
            packed.push(signature_to_sol(signature));
        }
        skipped.sort_by_key(|s| s.index);
        Ok(Self {
            args: propose_args(checkpoint_number, &proposal.payload),
            proposer_signature: signature_to_sol(&proposal.signature),
            attestations: packed,
            signers,
            body,
            skipped,
            quorum: needed,
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

    /// Whether the bundle carries the quorum the contract requires.
    pub fn has_quorum(&self) -> bool {
        self.attestations.len() >= self.quorum
    }

    /// Length of the calldata of this bundle's `propose` call.
    pub fn calldata_len(&self) -> usize {
        propose_calldata_len(self.attestations.len(), self.body.len())
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
    fn attestations_are_packed_in_committee_order_and_trimmed_to_quorum() {
        let domain = SigningDomain {
            chain_id: 1,
            rollup: Address::repeat_byte(7),
        };
        let keys: Vec<SigningKey> = (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]).unwrap())
            .collect();
        // Committee order is the reverse of key order; quorum of 4 is 3.
        let committee: Vec<Address> = keys.iter().rev().map(SigningKey::address).collect();
        let proposal =
            CheckpointProposal::sign(ConsensusPayload::default(), None, &domain, &keys[0]);
        let other = CheckpointProposal::sign(
            ConsensusPayload {
                archive: B256::repeat_byte(1),
                ..Default::default()
            },
            None,
            &domain,
            &keys[0],
        );
        let outsider = SigningKey::from_bytes(&[9; 32]).unwrap();
        let mut forged = CheckpointAttestation::sign(&proposal, &domain, &keys[2]);
        forged.signature = Signature::default();
        let attestations = vec![
            CheckpointAttestation::sign(&proposal, &domain, &keys[0]), // position 3
            CheckpointAttestation::sign(&proposal, &domain, &outsider),
            CheckpointAttestation::sign(&proposal, &domain, &keys[1]), // position 2
            CheckpointAttestation::sign(&other, &domain, &keys[3]),
            CheckpointAttestation::sign(&proposal, &domain, &keys[1]), // repeat
            forged,
            CheckpointAttestation::sign(&proposal, &domain, &keys[3]), // position 0
            CheckpointAttestation::sign(&proposal, &domain, &keys[2]), // position 1
        ];
        let bundle = ProposeBundle::new(
            1,
            &proposal,
            &attestations,
            &committee,
            &domain,
            Bytes::new(),
        )
        .unwrap();
        // Positions 0, 1, 2 make the quorum; position 3 is not needed.
        assert_eq!(bundle.signers, U256::from(0b0111));
        assert_eq!(bundle.attestation_count(), 3);
        assert!(bundle.has_quorum());
        assert_eq!(
            bundle.attestations[0],
            signature_to_sol(&attestations[6].signature)
        );
        let reasons: Vec<(usize, SkipReason)> =
            bundle.skipped.iter().map(|s| (s.index, s.reason)).collect();
        assert_eq!(
            reasons,
            [
                (0, SkipReason::BeyondQuorum(keys[0].address())),
                (1, SkipReason::NotInCommittee(outsider.address())),
                (3, SkipReason::PayloadMismatch),
                (4, SkipReason::Duplicate(keys[1].address())),
                (5, SkipReason::BadSignature(SignatureError::InvalidV(0))),
            ]
        );

        // Below quorum: still a bundle, flagged.
        let few = ProposeBundle::new(
            1,
            &proposal,
            &attestations[..1],
            &committee,
            &domain,
            Bytes::new(),
        )
        .unwrap();
        assert!(!few.has_quorum());
        assert_eq!(few.signers, U256::from(0b1000));
    }

    #[test]
    fn calldata_length_formula_matches_the_abi_encoding() {
        use alloy::sol_types::SolCall;
        for (attestations, body_len) in [(0, 0), (3, 1), (33, 122_880), (171, 100)] {
            let signature = Rollup::Signature {
                v: 27,
                r: B256::ZERO,
                s: B256::ZERO,
            };
            let call = Rollup::proposeCall {
                args: propose_args(1, &ConsensusPayload::default()),
                proposerSignature: signature.clone(),
                attestations: vec![signature; attestations],
                signers: U256::ZERO,
                body: Bytes::from(vec![1u8; body_len]),
            };
            assert_eq!(
                call.abi_encode().len(),
                propose_calldata_len(attestations, body_len),
                "{attestations} attestations, {body_len} body bytes"
            );
        }
        assert_eq!(quorum(0), 0);
        assert_eq!(quorum(4), 3);
        assert_eq!(quorum(48), 33);
    }
}
