//! Equivocation evidence: the two signed messages one signer sent for one duty. Anyone holding
//! the signing domain can check it with [`Equivocation::verify`], without trusting this node.

use tandem_proto::{
    Address, B256, BlockHeader, ConsensusPayload, Signature, SignatureError, SignatureKind,
    SigningDomain, keccak256, time::Slot,
};

use crate::topics::GossipKind;

/// The signed part of a gossip message: what its signature covers, and the signature. Block
/// proposals keep their header and archive only (the signature covers the txs through the
/// header's body hash), so evidence stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedMessage {
    /// A block proposal's header, archive root and proposer signature.
    BlockProposal {
        /// The header.
        header: BlockHeader,
        /// Archive root after the block.
        archive_root: B256,
        /// The proposer's signature.
        signature: Signature,
    },
    /// A checkpoint proposal's payload and proposer signature.
    CheckpointProposal {
        /// The payload.
        payload: ConsensusPayload,
        /// The proposer's signature.
        signature: Signature,
    },
    /// An attestation's payload and attester signature.
    Attestation {
        /// The payload.
        payload: ConsensusPayload,
        /// The attester's signature.
        signature: Signature,
    },
}

/// The duty a signed message fulfils: one signature per duty is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duty {
    /// Message kind.
    pub kind: GossipKind,
    /// Slot.
    pub slot: Slot,
    /// Index within the checkpoint, for block proposals.
    pub index: Option<u32>,
}

impl SignedMessage {
    /// The duty this message fulfils.
    pub fn duty(&self) -> Duty {
        match self {
            Self::BlockProposal { header, .. } => Duty {
                kind: GossipKind::BlockProposal,
                slot: Slot(header.slot),
                index: Some(header.index_within_checkpoint),
            },
            Self::CheckpointProposal { payload, .. } => Duty {
                kind: GossipKind::CheckpointProposal,
                slot: Slot(payload.header.slot),
                index: None,
            },
            Self::Attestation { payload, .. } => Duty {
                kind: GossipKind::CheckpointAttestation,
                slot: Slot(payload.header.slot),
                index: None,
            },
        }
    }

    /// The hash the signature is over (before domain separation).
    pub fn payload_hash(&self) -> B256 {
        match self {
            Self::BlockProposal {
                header,
                archive_root,
                ..
            } => block_payload_hash(header, *archive_root),
            Self::CheckpointProposal { payload, .. } | Self::Attestation { payload, .. } => {
                payload.payload_hash()
            }
        }
    }

    /// Recovers the signer.
    pub fn recover_signer(&self, domain: &SigningDomain) -> Result<Address, SignatureError> {
        let (kind, signature) = match self {
            Self::BlockProposal { signature, .. } => (SignatureKind::BlockProposal, signature),
            Self::CheckpointProposal { signature, .. } => {
                (SignatureKind::CheckpointProposal, signature)
            }
            Self::Attestation { signature, .. } => {
                (SignatureKind::CheckpointAttestation, signature)
            }
        };
        signature.recover(domain.digest(kind, self.payload_hash()))
    }
}

/// A block proposal's payload hash from its parts: `keccak256(abi.encode(bytes32, bytes32))`,
/// what [`tandem_proto::BlockProposal::payload_hash`] computes (checked in the tests).
pub(crate) fn block_payload_hash(header: &BlockHeader, archive_root: B256) -> B256 {
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(header.hash().as_slice());
    preimage[32..].copy_from_slice(archive_root.as_slice());
    keccak256(preimage)
}

/// Evidence that `signer` signed two different messages for one duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// Who signed both.
    pub signer: Address,
    /// The message seen first.
    pub first: SignedMessage,
    /// The conflicting message.
    pub second: SignedMessage,
}

/// Why equivocation evidence does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The two messages are for different duties (kind, slot or index).
    #[error("the messages are for different duties")]
    DifferentDuties,
    /// The two messages sign the same payload: no conflict.
    #[error("both messages sign the same payload")]
    SamePayload,
    /// A signature does not recover.
    #[error("signature: {0}")]
    BadSignature(SignatureError),
    /// A message was not signed by the accused signer.
    #[error("signed by {got}, not {expected}")]
    WrongSigner {
        /// The accused.
        expected: Address,
        /// Who actually signed.
        got: Address,
    },
}

impl Equivocation {
    /// Message kind.
    pub fn kind(&self) -> GossipKind {
        self.first.duty().kind
    }

    /// Slot.
    pub fn slot(&self) -> Slot {
        self.first.duty().slot
    }

    /// Checks the evidence: same duty, different payloads, both signatures by `signer`.
    pub fn verify(&self, domain: &SigningDomain) -> Result<(), EvidenceError> {
        if self.first.duty() != self.second.duty() {
            return Err(EvidenceError::DifferentDuties);
        }
        if self.first.payload_hash() == self.second.payload_hash() {
            return Err(EvidenceError::SamePayload);
        }
        for message in [&self.first, &self.second] {
            let got = message
                .recover_signer(domain)
                .map_err(EvidenceError::BadSignature)?;
            if got != self.signer {
                return Err(EvidenceError::WrongSigner {
                    expected: self.signer,
                    got,
                });
            }
        }
        Ok(())
    }
}
