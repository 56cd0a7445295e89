//! Slashing protection: the one signer every duty signature of this node goes through.
//!
//! A duty is a block proposal per (slot, index within the slot's checkpoint), a checkpoint
//! proposal per slot, or an attestation per slot ([`Duty`]). Before a signature leaves
//! [`ProtectedSigner`], the record holds (signer, duty, digest, signature), written to RocksDB
//! with the write-ahead log fsynced. The rules, checked against the record under one lock:
//!
//! - a duty before the key's first slot is refused ([`ValidatorError::BeforeFirstSlot`]): a
//!   record created (or a key registered) now cannot know what an earlier record signed;
//! - a duty below the pruning watermark is refused ([`ValidatorError::BelowWatermark`]);
//! - the same duty with the same digest returns the recorded signature (a restarted node may
//!   re-sign what it signed before it died; the signature is the same bytes);
//! - the same duty with another digest is refused ([`ValidatorError::ConflictingDuty`], naming
//!   the duty and both digests);
//! - an attestation for slot `s` is refused when an attestation for a later slot is recorded
//!   ([`ValidatorError::AttestationBehind`]): attestations never go backwards.
//!
//! The signature is computed in memory, then recorded, then returned: a crash at any point
//! leaves either no record (and no signature outside this process) or a record of exactly the
//! signature that may have left. A checkpoint proposal and its last block are checked and
//! recorded together, in one synced write: both or neither.
//!
//! The record is never created behind the operator's back: [`OpenMode::Existing`] (the
//! default) refuses a missing record ([`ValidatorError::RecordMissing`]) and a key the record
//! does not know ([`ValidatorError::UnregisteredKey`]). Creating one, or registering a key, is
//! [`OpenMode::Initialize`], an explicit operator choice; it gives each new key a first slot
//! past every duty a lost record could have signed ([`OpenMode::initialize_at`]).
//!
//! The record's directory is locked with an OS file lock (`flock`) for as long as the signer
//! is open, so a second process (or a second signer in this one) fails to open it with
//! [`ValidatorError::RecordLocked`] naming the path. The lock does not protect one key held by
//! two nodes with two records: run every key on one node.
//!
//! Signing is synchronous and waits for an fsync (DESIGN.md measured about 0.3 ms on this
//! machine, far more on a busy disk): the `*_blocking` methods must not run on an async worker.
//! Async code uses the [`DutySigner`] trait, whose methods run the same code on tokio's blocking
//! pool. The read-only pre-checks ([`ProtectedSigner::latest_attestation`],
//! [`ProtectedSigner::recorded`]) never wait for a signature in flight.

mod duty;
mod signing;
mod store;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock},
};

use futures::{FutureExt, future::BoxFuture};
use tandem_proto::{
    Address, BlockProposal, CheckpointAttestation, CheckpointProposal, ConsensusPayload,
    SigningDomain, SigningKey,
    time::{ConsensusWindows, Slot, Timestamp},
};

pub use duty::Duty;
pub use store::SignedDuty;

use crate::error::{ValidatorError, ValidatorResult};
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

    /// Signs a checkpoint proposal of `payload` as `signer`, and its `last_block` with it (its
    /// signature field is overwritten), recording both duties in one synced write: both are
    /// signed or neither. The last block must be of the payload's slot and end at its archive
    /// ([`ValidatorError::LastBlockMismatch`] otherwise). Duties: the header slot, and the last
    /// block's (slot, index). A last block already signed with this content gets its recorded
    /// signature back.
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

/// How [`ProtectedSigner::open`] treats a record that is not there, or a key it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Open the record that exists; refuse a missing one ([`ValidatorError::RecordMissing`])
    /// and keys it does not know ([`ValidatorError::UnregisteredKey`]). What the node does
    /// unless the operator asks for init mode.
    Existing,
    /// Create the record if it is missing, and register the keys it does not know yet with
    /// `first_slot`: their duties of earlier slots are refused, so that a record created after
    /// one was lost can never sign again what the lost one signed. Keys already registered
    /// keep their history and first slot. Only on an explicit operator choice (the node's
    /// init flag); use [`OpenMode::initialize_at`] for the first slot.
    Initialize {
        /// The first slot new keys may sign duties for.
        first_slot: Slot,
    },
}

impl OpenMode {
    /// [`OpenMode::Initialize`] at wall-clock `now`: the first slot is the first one none of
    /// whose signing windows (block and checkpoint proposals, attestations) opens before
    /// `now` plus one slot. Under pipelining a node signs duties of the slot after next, so
    /// this skips every slot a lost record may have signed for, and a slot more for a previous
    /// run whose clock was ahead.
    pub fn initialize_at(windows: &ConsensusWindows, now: Timestamp) -> Self {
        let clock = windows.slot_clock();
        let horizon = now.saturating_add(clock.slot_duration());
        let opens = |slot: Slot| {
            windows
                .block_proposal(slot)
                .start
                .min(windows.checkpoint_proposal(slot).start)
                .min(windows.attestation(slot).start)
        };
        // Windows open one slot duration apart, so this takes a handful of steps.
        let mut first_slot = clock.slot_at(now).unwrap_or(Slot(0));
        while opens(first_slot) <= horizon && first_slot.0 < u64::MAX {
            first_slot = first_slot.next();
        }
        Self::Initialize { first_slot }
    }
}

/// The slashing-protected signer: the node's validator keys and their signing record. Cheap to
/// clone (clones share the keys, the record and its lock).
#[derive(Clone)]
pub struct ProtectedSigner {
    inner: Arc<Inner>,
}

/// A held key and the first slot the record lets it sign.
struct HeldKey {
    key: SigningKey,
    first_slot: Slot,
}

struct Inner {
    domain: SigningDomain,
    keys: BTreeMap<Address, HeldKey>,
    addresses: Vec<Address>,
    dir: PathBuf,
    /// Read concurrently; written only while `writer` is held.
    store: RecordStore,
    /// Held across check → sign → record (so two requests for one duty cannot both pass the
    /// check) and across pruning; guards the pruning watermark.
    writer: Mutex<Slot>,
    /// The latest attested slot per held key, as recorded; updated (under `writer`) after
    /// each recorded attestation. Lets pre-checks skip the writer lock and the database.
    latest_attested: RwLock<HashMap<Address, Slot>>,
}

impl std::fmt::Debug for ProtectedSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtectedSigner")
            .field("domain", &self.inner.domain)
            .field("addresses", &self.inner.addresses)
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl ProtectedSigner {
    /// Locks and opens the signing record in `dir` for `domain`, holding `keys`; creates it or
    /// registers keys only in [`OpenMode::Initialize`]. Fails with
    /// [`ValidatorError::RecordMissing`] or [`ValidatorError::UnregisteredKey`] in
    /// [`OpenMode::Existing`], [`ValidatorError::RecordLocked`] when another process has it
    /// open, and [`ValidatorError::DomainMismatch`] when it was created for another deployment.
    pub fn open(
        dir: &Path,
        domain: SigningDomain,
        keys: impl IntoIterator<Item = SigningKey>,
        mode: OpenMode,
    ) -> ValidatorResult<Self> {
        let keys: BTreeMap<Address, SigningKey> =
            keys.into_iter().map(|key| (key.address(), key)).collect();
        let addresses: Vec<Address> = keys.keys().copied().collect();
        let (store, registrations) = RecordStore::open(dir, &domain, &addresses, mode)?;
        let mut latest_attested = HashMap::with_capacity(addresses.len());
        for &signer in &addresses {
            if let Some(slot) = store.latest_attestation(signer)? {
                latest_attested.insert(signer, slot);
            }
        }
        let first_slots: HashMap<Address, Slot> = registrations
            .iter()
            .map(|registration| {
                if registration.new {
                    tracing::warn!(
                        target: "validator::protection",
                        signer = %registration.signer, first_slot = %registration.first_slot,
                        record = %dir.display(),
                        "registered a key in the slashing protection record (init mode): it \
                         signs no duty before its first slot"
                    );
                }
                (registration.signer, registration.first_slot)
            })
            .collect();
        let keys = keys
            .into_iter()
            .map(|(address, key)| {
                // `RecordStore::open` registered every key or failed.
                let first_slot = first_slots.get(&address).copied().unwrap_or(Slot(u64::MAX));
                (address, HeldKey { key, first_slot })
            })
            .collect();
        let watermark = store.stored_watermark();
        Ok(Self {
            inner: Arc::new(Inner {
                domain,
                keys,
                addresses,
                dir: dir.to_path_buf(),
                store,
                writer: Mutex::new(watermark),
                latest_attested: RwLock::new(latest_attested),
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
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The first slot `signer` may sign duties for (set when it was registered); `None` for a
    /// key not held.
    pub fn first_slot(&self, signer: Address) -> Option<Slot> {
        self.inner.keys.get(&signer).map(|held| held.first_slot)
    }

    /// What the record holds for `signer`'s `duty`: one RocksDB point read (memory, or one
    /// small disk read), which never waits for a signature in flight.
    pub fn recorded(&self, signer: Address, duty: Duty) -> ValidatorResult<Option<SignedDuty>> {
        self.inner.store.get(signer, duty)
    }

    /// The latest slot `signer` attested, per the record; from memory, never waits (a cheap
    /// pre-check for the validator handler: [`DutySigner::attest`] refuses an attestation for
    /// an earlier slot anyway).
    pub fn latest_attestation(&self, signer: Address) -> Option<Slot> {
        self.inner
            .latest_attested
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&signer)
            .copied()
    }

    /// Deletes the records of slots below `slot` (e.g. the slot of the finalized checkpoint)
    /// and refuses every duty below it from then on; returns how many records were deleted.
    /// The watermark never goes down. Blocks on an fsync, and waits for signatures in flight.
    pub fn prune_below(&self, slot: Slot) -> ValidatorResult<u64> {
        let mut watermark = self.writer();
        if slot <= *watermark {
            return Ok(0);
        }
        let deleted = self.inner.store.prune_below(slot)?;
        *watermark = slot;
        Ok(deleted)
    }

    fn writer(&self) -> MutexGuard<'_, Slot> {
        // A panic while holding the lock leaves the database as consistent as a crash would.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
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
