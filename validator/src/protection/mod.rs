//! Slashing protection: the one signer every duty signature of this node goes through.
//!
//! A duty is a block proposal per (slot, index within the slot's checkpoint), a checkpoint
//! proposal per slot, or an attestation per slot ([`Duty`]). Before a signature leaves
//! [`ProtectedSigner`], the record holds (signer, duty, digest, signature), written to RocksDB
//! with the write-ahead log fsynced. The rules, checked against the record under one lock:
//!
//! - the same duty with the same digest returns the recorded signature (a restarted node may
//!   re-sign what it signed before it died; the signature is the same bytes);
//! - the same duty with another digest is refused ([`ValidatorError::ConflictingDuty`], naming
//!   the duty and both digests);
//! - an attestation for slot `s` is refused when an attestation for a later slot is recorded
//!   ([`ValidatorError::AttestationBehind`]): attestations never go backwards;
//! - a duty below the pruning watermark is refused ([`ValidatorError::BelowWatermark`]).
//!
//! The signature is computed in memory, then recorded, then returned: a crash at any point
//! leaves either no record (and no signature outside this process) or a record of exactly the
//! signature that may have left. The record's directory is locked with an OS file lock
//! (`flock`) for as long as the signer is open, so a second process (or a second signer in
//! this one) fails to open it with [`ValidatorError::RecordLocked`] naming the path. The lock
//! does not protect one key held by two nodes with two records: run every key on one node.
//!
//! Signing is synchronous and waits for an fsync (DESIGN.md measured about 0.3 ms on this
//! machine, far more on a busy disk): the `*_blocking` methods must not run on an async worker.
//! Async code uses the [`DutySigner`] trait, whose methods run the same code on tokio's blocking
//! pool.

mod duty;
mod store;

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use futures::{FutureExt, future::BoxFuture};
use tandem_proto::{
    Address, B256, BlockProposal, CheckpointAttestation, CheckpointProposal, ConsensusPayload,
    Signature, SignatureKind, SigningDomain, SigningKey, time::Slot,
};

pub use duty::Duty;
pub use store::SignedDuty;

use crate::{
    error::{ValidatorError, ValidatorResult},
    metrics,
};
use store::RecordStore;

/// What the sequencer and the validator handler sign with. Every method records the duty
/// (fsynced) before it returns a signature, and refuses slashable duties with an error for
/// which [`ValidatorError::is_slashing_refusal`] holds. The futures run the signing on tokio's
/// blocking pool (they need a tokio runtime).
pub trait DutySigner: Send + Sync + 'static {
    /// The validator addresses this signer holds keys for.
    fn addresses(&self) -> &[Address];

    /// Signs `proposal` (its header, archive root and tx list as given; the signature field is
    /// overwritten) as `signer`. Duty: (header slot, header index within the checkpoint).
    fn sign_block_proposal(
        &self,
        signer: Address,
        proposal: BlockProposal,
    ) -> BoxFuture<'static, ValidatorResult<BlockProposal>>;

    /// Signs a checkpoint proposal of `payload` as `signer`, carrying `last_block` (which the
    /// caller signed before with [`DutySigner::sign_block_proposal`]). Duty: the header slot.
    fn sign_checkpoint_proposal(
        &self,
        signer: Address,
        payload: ConsensusPayload,
        last_block: Option<BlockProposal>,
    ) -> BoxFuture<'static, ValidatorResult<CheckpointProposal>>;

    /// Attests `proposal` as `signer`. Duty: the proposal's header slot.
    fn attest(
        &self,
        signer: Address,
        proposal: &CheckpointProposal,
    ) -> BoxFuture<'static, ValidatorResult<CheckpointAttestation>>;
}

/// The slashing-protected signer: the node's validator keys and their signing record. Cheap to
/// clone (clones share the keys, the record and its lock).
#[derive(Clone)]
pub struct ProtectedSigner {
    inner: Arc<Inner>,
}

struct Inner {
    domain: SigningDomain,
    keys: BTreeMap<Address, SigningKey>,
    addresses: Vec<Address>,
    // One lock around check-then-record, so two concurrent requests for one duty cannot both
    // pass the check.
    store: Mutex<RecordStore>,
}

impl std::fmt::Debug for ProtectedSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtectedSigner")
            .field("domain", &self.inner.domain)
            .field("addresses", &self.inner.addresses)
            .finish_non_exhaustive()
    }
}

impl ProtectedSigner {
    /// Locks and opens (or creates) the signing record in `dir` for `domain`, holding `keys`.
    /// Fails with [`ValidatorError::RecordLocked`] when another process has it open, and with
    /// [`ValidatorError::DomainMismatch`] when it was created for another deployment.
    pub fn open(
        dir: &Path,
        domain: SigningDomain,
        keys: impl IntoIterator<Item = SigningKey>,
    ) -> ValidatorResult<Self> {
        let store = RecordStore::open(dir, &domain)?;
        let keys: BTreeMap<Address, SigningKey> =
            keys.into_iter().map(|key| (key.address(), key)).collect();
        let addresses = keys.keys().copied().collect();
        Ok(Self {
            inner: Arc::new(Inner {
                domain,
                keys,
                addresses,
                store: Mutex::new(store),
            }),
        })
    }

    /// The deployment signatures are bound to.
    pub fn domain(&self) -> SigningDomain {
        self.inner.domain
    }

    /// The addresses of the held keys, sorted.
    pub fn addresses(&self) -> &[Address] {
        &self.inner.addresses
    }

    /// The record's directory.
    pub fn dir(&self) -> std::path::PathBuf {
        self.store().dir().to_path_buf()
    }

    fn store(&self) -> MutexGuard<'_, RecordStore> {
        // A panic while holding the lock leaves the database as consistent as a crash would.
        self.inner
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What the record holds for `signer`'s `duty`.
    pub fn recorded(&self, signer: Address, duty: Duty) -> ValidatorResult<Option<SignedDuty>> {
        self.store().get(signer, duty)
    }

    /// The latest slot `signer` attested, per the record.
    pub fn latest_attestation(&self, signer: Address) -> ValidatorResult<Option<Slot>> {
        self.store().latest_attestation(signer)
    }

    /// Deletes the records of slots below `slot` (e.g. the slot of the finalized checkpoint)
    /// and refuses every duty below it from then on; returns how many records were deleted.
    /// The watermark never goes down.
    pub fn prune_below(&self, slot: Slot) -> ValidatorResult<u64> {
        self.store().prune_below(slot)
    }

    /// [`DutySigner::sign_block_proposal`], on the calling thread (blocks on an fsync).
    pub fn sign_block_proposal_blocking(
        &self,
        signer: Address,
        mut proposal: BlockProposal,
    ) -> ValidatorResult<BlockProposal> {
        let duty = Duty::BlockProposal {
            slot: Slot(proposal.header.slot),
            index: proposal.header.index_within_checkpoint,
        };
        let digest = self
            .inner
            .domain
            .digest(SignatureKind::BlockProposal, proposal.payload_hash());
        proposal.signature = self.sign_duty(signer, duty, digest)?;
        Ok(proposal)
    }

    /// [`DutySigner::sign_checkpoint_proposal`], on the calling thread (blocks on an fsync).
    pub fn sign_checkpoint_proposal_blocking(
        &self,
        signer: Address,
        payload: ConsensusPayload,
        last_block: Option<BlockProposal>,
    ) -> ValidatorResult<CheckpointProposal> {
        let duty = Duty::CheckpointProposal {
            slot: Slot(payload.header.slot),
        };
        let digest = self
            .inner
            .domain
            .digest(SignatureKind::CheckpointProposal, payload.payload_hash());
        let signature = self.sign_duty(signer, duty, digest)?;
        Ok(CheckpointProposal {
            payload,
            signature,
            last_block,
        })
    }

    /// [`DutySigner::attest`], on the calling thread (blocks on an fsync).
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
        let signature = self.sign_duty(signer, duty, digest)?;
        Ok(CheckpointAttestation {
            payload: proposal.payload.clone(),
            signature,
            proposer_signature: proposal.signature,
        })
    }

    /// The one path to a key: check the record, sign in memory, record with fsync, return.
    fn sign_duty(&self, signer: Address, duty: Duty, digest: B256) -> ValidatorResult<Signature> {
        let key = self
            .inner
            .keys
            .get(&signer)
            .ok_or(ValidatorError::UnknownKey(signer))?;
        let store = self.store();
        let decision = check(&store, signer, duty, digest);
        match decision {
            Ok(Some(recorded)) => {
                metrics::signature(duty, metrics::SignatureOrigin::Recorded);
                Ok(recorded)
            }
            Ok(None) => {
                let signature = key.sign_digest(digest);
                let started = Instant::now();
                store.put(signer, duty, &SignedDuty { digest, signature })?;
                metrics::record_written(started.elapsed());
                metrics::signature(duty, metrics::SignatureOrigin::New);
                Ok(signature)
            }
            Err(err) => {
                if err.is_slashing_refusal() {
                    metrics::slashing_refusal(duty);
                    tracing::warn!(
                        target: "validator::protection",
                        %signer, %duty, error = %err,
                        "slashing protection refused a duty"
                    );
                }
                Err(err)
            }
        }
    }
}

/// The rules: `Some(signature)` when the duty is recorded with this digest, `None` when it may
/// be signed, or the refusal.
fn check(
    store: &RecordStore,
    signer: Address,
    duty: Duty,
    digest: B256,
) -> ValidatorResult<Option<Signature>> {
    if duty.slot() < store.watermark() {
        return Err(ValidatorError::BelowWatermark {
            signer,
            duty,
            watermark: store.watermark(),
        });
    }
    if let Some(recorded) = store.get(signer, duty)? {
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
        && let Some(latest) = store.latest_attestation(signer)?
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

impl DutySigner for ProtectedSigner {
    fn addresses(&self) -> &[Address] {
        ProtectedSigner::addresses(self)
    }

    fn sign_block_proposal(
        &self,
        signer: Address,
        proposal: BlockProposal,
    ) -> BoxFuture<'static, ValidatorResult<BlockProposal>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.sign_block_proposal_blocking(signer, proposal))
            .map(flatten)
            .boxed()
    }

    fn sign_checkpoint_proposal(
        &self,
        signer: Address,
        payload: ConsensusPayload,
        last_block: Option<BlockProposal>,
    ) -> BoxFuture<'static, ValidatorResult<CheckpointProposal>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.sign_checkpoint_proposal_blocking(signer, payload, last_block)
        })
        .map(flatten)
        .boxed()
    }

    fn attest(
        &self,
        signer: Address,
        proposal: &CheckpointProposal,
    ) -> BoxFuture<'static, ValidatorResult<CheckpointAttestation>> {
        let this = self.clone();
        let proposal = CheckpointProposal {
            payload: proposal.payload.clone(),
            signature: proposal.signature,
            // The attestation carries neither the block nor its txs.
            last_block: None,
        };
        tokio::task::spawn_blocking(move || this.attest_blocking(signer, &proposal))
            .map(flatten)
            .boxed()
    }
}

fn flatten<T>(joined: Result<ValidatorResult<T>, tokio::task::JoinError>) -> ValidatorResult<T> {
    joined.map_err(ValidatorError::SigningTask)?
}
