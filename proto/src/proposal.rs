//! Gossiped consensus messages: block proposals, checkpoint proposals and attestations.

use alloy_primitives::{Address, B256, keccak256};
use alloy_sol_types::SolValue;

use crate::{
    block::{BlockHeader, block_body_hash},
    checkpoint::ConsensusPayload,
    signing::{Signature, SignatureError, SignatureKind, SigningDomain, SigningKey},
    tx::Tx,
};

/// A block of the proposer's checkpoint, gossiped as soon as it is built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BlockProposal {
    /// The block header.
    pub header: BlockHeader,
    /// Archive root after this block.
    pub archive_root: B256,
    /// Hashes of the block's txs, in order; they must hash to `header.body_hash`.
    pub tx_hashes: Vec<B256>,
    /// The proposer's signature over [`BlockProposal::payload_hash`].
    pub signature: Signature,
    /// The full txs, in order. Always sent: the signature covers them only through
    /// `tx_hashes`, so a proposal without them would be a copy a relay stripped.
    pub txs: Vec<Tx>,
}

/// How a block proposal's tx list disagrees with its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProposalTxsError {
    /// `keccak(tx_hashes)` is not the header's body hash.
    #[error("tx hashes do not hash to the header's body hash")]
    BodyHashMismatch,
    /// The number of full txs differs from `tx_hashes` (none sent: stripped by a relay).
    #[error("{txs} txs sent for {hashes} tx hashes")]
    CountMismatch {
        /// Number of full txs.
        txs: usize,
        /// Number of hashes.
        hashes: usize,
    },
    /// The full tx at `index` does not hash to `tx_hashes[index]`.
    #[error("tx {index} does not match its hash")]
    TxHashMismatch {
        /// Position in the block.
        index: usize,
    },
}

impl BlockProposal {
    /// Builds and signs a proposal for a block whose txs are all sent along.
    pub fn sign(
        header: BlockHeader,
        archive_root: B256,
        txs: Vec<Tx>,
        domain: &SigningDomain,
        key: &SigningKey,
    ) -> Self {
        let tx_hashes = txs.iter().map(Tx::hash).collect();
        let mut proposal = Self {
            header,
            archive_root,
            tx_hashes,
            signature: Signature::default(),
            txs,
        };
        proposal.signature = key.sign(
            domain,
            SignatureKind::BlockProposal,
            proposal.payload_hash(),
        );
        proposal
    }

    /// `keccak256(abi.encode(bytes32 blockHash, bytes32 archiveRoot))`. The tx list is bound
    /// through the header's body hash.
    pub fn payload_hash(&self) -> B256 {
        keccak256((self.header.hash(), self.archive_root).abi_encode())
    }

    /// Recovers the proposer.
    pub fn recover_proposer(&self, domain: &SigningDomain) -> Result<Address, SignatureError> {
        self.signature
            .recover(domain.digest(SignatureKind::BlockProposal, self.payload_hash()))
    }

    /// Checks that `tx_hashes` match the header and that the full txs are all there and match
    /// `tx_hashes` (a proposal whose txs were stripped fails with `CountMismatch`).
    pub fn check_txs(&self) -> Result<(), ProposalTxsError> {
        self.check_txs_with_known(|_, _| false)
    }

    /// [`Self::check_txs`], skipping the hash of each tx for which `is_known(hash, tx)` says the
    /// pair was already verified (a cache of txs seen on gossip): hashing is most of the cost.
    pub fn check_txs_with_known(
        &self,
        is_known: impl Fn(&B256, &Tx) -> bool,
    ) -> Result<(), ProposalTxsError> {
        if block_body_hash(&self.tx_hashes) != self.header.body_hash {
            return Err(ProposalTxsError::BodyHashMismatch);
        }
        if self.txs.len() != self.tx_hashes.len() {
            return Err(ProposalTxsError::CountMismatch {
                txs: self.txs.len(),
                hashes: self.tx_hashes.len(),
            });
        }
        match self
            .txs
            .iter()
            .zip(&self.tx_hashes)
            .position(|(tx, hash)| !is_known(hash, tx) && tx.hash() != *hash)
        {
            Some(index) => Err(ProposalTxsError::TxHashMismatch { index }),
            None => Ok(()),
        }
    }
}

/// The proposer's checkpoint: header, archive, fee modifier, and the last block riding along.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CheckpointProposal {
    /// What the committee attests to.
    pub payload: ConsensusPayload,
    /// The proposer's signature over the payload (the one L1 verifies).
    pub signature: Signature,
    /// The checkpoint's last block, never gossiped on its own. Its signer must be the
    /// checkpoint's signer.
    pub last_block: Option<BlockProposal>,
}

impl CheckpointProposal {
    /// Builds and signs a checkpoint proposal.
    pub fn sign(
        payload: ConsensusPayload,
        last_block: Option<BlockProposal>,
        domain: &SigningDomain,
        key: &SigningKey,
    ) -> Self {
        let signature = key.sign(
            domain,
            SignatureKind::CheckpointProposal,
            payload.payload_hash(),
        );
        Self {
            payload,
            signature,
            last_block,
        }
    }

    /// Recovers the proposer from the checkpoint signature.
    pub fn recover_proposer(&self, domain: &SigningDomain) -> Result<Address, SignatureError> {
        self.signature.recover(domain.digest(
            SignatureKind::CheckpointProposal,
            self.payload.payload_hash(),
        ))
    }
}

/// A committee member's attestation to a checkpoint proposal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CheckpointAttestation {
    /// The attested payload.
    pub payload: ConsensusPayload,
    /// The attester's signature: exactly what L1 verifies with `ecrecover`.
    pub signature: Signature,
    /// The proposer's signature over the same payload, so anyone can recover the proposer.
    pub proposer_signature: Signature,
}

impl CheckpointAttestation {
    /// Signs an attestation for `proposal`'s payload.
    pub fn sign(proposal: &CheckpointProposal, domain: &SigningDomain, key: &SigningKey) -> Self {
        let signature = key.sign(
            domain,
            SignatureKind::CheckpointAttestation,
            proposal.payload.payload_hash(),
        );
        Self {
            payload: proposal.payload.clone(),
            signature,
            proposer_signature: proposal.signature,
        }
    }

    /// Recovers the attester.
    pub fn recover_attester(&self, domain: &SigningDomain) -> Result<Address, SignatureError> {
        self.signature.recover(domain.digest(
            SignatureKind::CheckpointAttestation,
            self.payload.payload_hash(),
        ))
    }

    /// Recovers the proposer of the attested checkpoint.
    pub fn recover_proposer(&self, domain: &SigningDomain) -> Result<Address, SignatureError> {
        self.proposer_signature.recover(domain.digest(
            SignatureKind::CheckpointProposal,
            self.payload.payload_hash(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::TxPayload;

    #[test]
    fn a_proposal_stripped_of_its_txs_fails_the_tx_check() {
        let domain = SigningDomain {
            chain_id: 1,
            rollup: Address::repeat_byte(1),
        };
        let key = SigningKey::from_bytes(&[3; 32]).unwrap();
        let txs: Vec<Tx> = (0..2)
            .map(|nonce| {
                let payload = TxPayload {
                    chain_id: 1,
                    nonce,
                    ..TxPayload::default()
                };
                Tx::sign(payload, &domain, &key)
            })
            .collect();
        let hashes: Vec<B256> = txs.iter().map(Tx::hash).collect();
        let header = BlockHeader {
            body_hash: block_body_hash(&hashes),
            ..BlockHeader::default()
        };
        let full = BlockProposal::sign(header, B256::ZERO, txs, &domain, &key);
        assert_eq!(full.check_txs(), Ok(()));
        let mut stripped = full.clone();
        stripped.txs.clear();
        // Same signed payload, yet not what the proposer sent.
        assert_eq!(stripped.payload_hash(), full.payload_hash());
        assert_eq!(
            stripped.check_txs(),
            Err(ProposalTxsError::CountMismatch { txs: 0, hashes: 2 })
        );
    }
}
