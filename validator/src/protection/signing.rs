//! The signing path: check every duty of a request against the record, sign in memory, record
//! the new ones in one synced write, return.

use std::time::Instant;

use tandem_proto::{
    Address, B256, BlockProposal, CheckpointAttestation, CheckpointProposal, ConsensusPayload,
    Signature, SignatureKind, time::Slot,
};

use super::{Duty, HeldKey, ProtectedSigner, SignedDuty};
use crate::{
    error::{ValidatorError, ValidatorResult},
    metrics::{self, SignatureOrigin},
};

impl ProtectedSigner {
    /// [`super::DutySigner::sign_block_proposal`], on the calling thread (blocks on an fsync).
    pub fn sign_block_proposal_blocking(
        &self,
        signer: Address,
        mut proposal: BlockProposal,
    ) -> ValidatorResult<BlockProposal> {
        let (duty, digest) = self.block_duty(&proposal);
        let [signature] = self.sign_duties(signer, [(duty, digest)])?;
        proposal.signature = signature;
        Ok(proposal)
    }

    /// [`super::DutySigner::sign_checkpoint_proposal`], on the calling thread (blocks on an
    /// fsync).
    pub fn sign_checkpoint_proposal_blocking(
        &self,
        signer: Address,
        payload: ConsensusPayload,
        last_block: Option<BlockProposal>,
    ) -> ValidatorResult<CheckpointProposal> {
        let slot = Slot(payload.header.slot);
        let checkpoint = (
            Duty::CheckpointProposal { slot },
            self.inner
                .domain
                .digest(SignatureKind::CheckpointProposal, payload.payload_hash()),
        );
        let (signature, last_block) = match last_block {
            None => {
                let [signature] = self.sign_duties(signer, [checkpoint])?;
                (signature, None)
            }
            Some(mut block) => {
                if block.header.slot != payload.header.slot {
                    return Err(ValidatorError::LastBlockMismatch {
                        slot,
                        problem: "is of another slot",
                    });
                }
                if block.archive_root != payload.archive {
                    return Err(ValidatorError::LastBlockMismatch {
                        slot,
                        problem: "ends at another archive",
                    });
                }
                let [block_signature, signature] =
                    self.sign_duties(signer, [self.block_duty(&block), checkpoint])?;
                block.signature = block_signature;
                (signature, Some(block))
            }
        };
        Ok(CheckpointProposal {
            payload,
            signature,
            last_block,
        })
    }

    /// [`super::DutySigner::attest`], on the calling thread (blocks on an fsync).
    pub fn attest_blocking(
        &self,
        signer: Address,
        proposal: &CheckpointProposal,
    ) -> ValidatorResult<CheckpointAttestation> {
        let duty = Duty::Attestation {
            slot: Slot(proposal.payload.header.slot),
        };
        let digest = self.inner.domain.digest(
            SignatureKind::CheckpointAttestation,
            proposal.payload.payload_hash(),
        );
        let [signature] = self.sign_duties(signer, [(duty, digest)])?;
        Ok(CheckpointAttestation {
            payload: proposal.payload.clone(),
            signature,
            proposer_signature: proposal.signature,
        })
    }

    fn block_duty(&self, proposal: &BlockProposal) -> (Duty, B256) {
        let duty = Duty::BlockProposal {
            slot: Slot(proposal.header.slot),
            index: proposal.header.index_within_checkpoint,
        };
        let digest = self
            .inner
            .domain
            .digest(SignatureKind::BlockProposal, proposal.payload_hash());
        (duty, digest)
    }

    /// The one path to a key. Under the writer lock: check every duty; if any is refused,
    /// refuse all (nothing is signed or recorded); else sign the new ones in memory, record
    /// them in one synced write, and return every signature (recorded ones as recorded).
    /// The duties of one request are distinct (a checkpoint proposal and its last block).
    fn sign_duties<const N: usize>(
        &self,
        signer: Address,
        requests: [(Duty, B256); N],
    ) -> ValidatorResult<[Signature; N]> {
        let held = self
            .inner
            .keys
            .get(&signer)
            .ok_or(ValidatorError::UnknownKey(signer))?;
        let writer = self.writer();
        let mut decided = [None; N];
        for (slot, &(duty, digest)) in decided.iter_mut().zip(&requests) {
            match self.check(held, *writer, signer, duty, digest) {
                Ok(recorded) => *slot = Some(recorded),
                Err(err) => {
                    if err.is_slashing_refusal() {
                        metrics::slashing_refusal(duty);
                        tracing::warn!(
                            target: "validator::protection",
                            %signer, %duty, error = %err,
                            "slashing protection refused a duty"
                        );
                    }
                    return Err(err);
                }
            }
        }
        let mut new = Vec::with_capacity(N);
        let mut signatures = [Signature::default(); N];
        for ((signature, &(duty, digest)), recorded) in
            signatures.iter_mut().zip(&requests).zip(decided)
        {
            *signature = match recorded.flatten() {
                Some(recorded) => recorded,
                None => {
                    let signature = held.key.sign_digest(digest);
                    new.push((duty, SignedDuty { digest, signature }));
                    signature
                }
            };
        }
        if !new.is_empty() {
            // Signed in memory, not recorded: a crash from here on leaves no trace, and no
            // signature has left the process.
            tracing::trace!(
                target: "validator::protection",
                %signer, duties = new.len(), "writing the signing record"
            );
            let started = Instant::now();
            self.inner.store.put_all(signer, &new)?;
            let elapsed = started.elapsed();
            metrics::record_written(elapsed);
            self.note_attestations(signer, &new);
            tracing::debug!(
                target: "validator::protection",
                %signer, duties = new.len(), ?elapsed, "recorded new signatures"
            );
        }
        drop(writer);
        for (&(duty, _), recorded) in requests.iter().zip(decided) {
            let origin = if recorded.flatten().is_some() {
                SignatureOrigin::Recorded
            } else {
                SignatureOrigin::New
            };
            metrics::signature(duty, origin);
        }
        Ok(signatures)
    }

    /// The rules for one duty: `Some(signature)` when it is recorded with this digest, `None`
    /// when it may be signed, or the refusal.
    fn check(
        &self,
        held: &HeldKey,
        watermark: Slot,
        signer: Address,
        duty: Duty,
        digest: B256,
    ) -> ValidatorResult<Option<Signature>> {
        if duty.slot() < held.first_slot {
            return Err(ValidatorError::BeforeFirstSlot {
                signer,
                duty,
                first_slot: held.first_slot,
            });
        }
        if duty.slot() < watermark {
            return Err(ValidatorError::BelowWatermark {
                signer,
                duty,
                watermark,
            });
        }
        if let Some(recorded) = self.inner.store.get(signer, duty)? {
            if recorded.digest != digest {
                return Err(ValidatorError::ConflictingDuty {
                    signer,
                    duty,
                    recorded: recorded.digest,
                    requested: digest,
                });
            }
            // A record that does not verify is not ours to hand out.
            if recorded.signature.recover(digest) != Ok(signer) {
                return Err(ValidatorError::Corrupt(
                    "a recorded signature does not recover to its signer",
                ));
            }
            return Ok(Some(recorded.signature));
        }
        if let Duty::Attestation { slot } = duty
            && let Some(latest) = self.latest_attestation(signer)
            && latest > slot
        {
            return Err(ValidatorError::AttestationBehind {
                signer,
                slot,
                latest,
            });
        }
        Ok(None)
    }

    /// Raises the in-memory latest attestation after a recorded write (writer lock held).
    fn note_attestations(&self, signer: Address, recorded: &[(Duty, SignedDuty)]) {
        let latest = recorded
            .iter()
            .filter_map(|(duty, _)| match duty {
                Duty::Attestation { slot } => Some(*slot),
                Duty::BlockProposal { .. } | Duty::CheckpointProposal { .. } => None,
            })
            .max();
        if let Some(slot) = latest {
            let mut map = self
                .inner
                .latest_attested
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = map.entry(signer).or_insert(slot);
            *entry = (*entry).max(slot);
        }
    }
}
