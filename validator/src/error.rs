//! Errors of the validator crate.
//!
//! Verdicts on proposals are not errors: a refused block or checkpoint is a
//! [`crate::BlockRejection`] or [`crate::CheckpointRejection`] (a metric, a log line with the
//! evidence, maybe a peer penalty). Errors are what stops a component or fails a request.

use std::path::PathBuf;

use tandem_archiver::ArchiverError;
use tandem_l1::L1Error;
use tandem_proto::{Address, B256, SigningDomain, time::Slot};
use tandem_state::{PoolError, StateError, TxError};

use crate::protection::Duty;

/// Errors of the validator crate.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The world state failed (disk, corruption): the state service stops.
    #[error(transparent)]
    State(#[from] StateError),
    /// The archiver failed.
    #[error(transparent)]
    Archiver(#[from] ArchiverError),
    /// The state service has stopped.
    #[error("the state service has stopped")]
    StateServiceStopped,
    /// A submitted tx fails the stateless rules (chain, signature, mana limit, fee cap).
    #[error("tx refused: {0}")]
    InvalidTx(TxError),
    /// The pool refused a submitted tx.
    #[error("tx refused by the pool: {0}")]
    Pool(#[from] PoolError),
    /// A blocking task (execution) panicked.
    #[error("the {0} task failed")]
    TaskFailed(&'static str),
    /// Slashing protection: `signer` already signed `duty` over another digest.
    #[error(
        "slashing protection refused to sign the {duty} for {signer}: digest {recorded} is \
         already signed for it, refusing {requested}"
    )]
    ConflictingDuty {
        /// The key.
        signer: Address,
        /// The duty.
        duty: Duty,
        /// The digest signed before (in the record).
        recorded: B256,
        /// The digest asked for now.
        requested: B256,
    },
    /// Slashing protection: `signer` already attested a later slot (attestations never go
    /// backwards).
    #[error(
        "slashing protection refused to attest slot {slot} for {signer}: it already attested \
         slot {latest}"
    )]
    AttestationBehind {
        /// The key.
        signer: Address,
        /// The slot asked for.
        slot: Slot,
        /// The latest attested slot in the record.
        latest: Slot,
    },
    /// Slashing protection: the duty's slot is below the record's pruning watermark, so the
    /// record can no longer tell whether it was signed.
    #[error(
        "slashing protection refused to sign the {duty} for {signer}: records below slot \
         {watermark} were pruned"
    )]
    BelowWatermark {
        /// The key.
        signer: Address,
        /// The duty.
        duty: Duty,
        /// The first slot still recorded.
        watermark: Slot,
    },
    /// Slashing protection: the duty's slot is before the first slot the record protects for
    /// this key (set when the record was created or the key registered): a record that was lost
    /// may have signed it.
    #[error(
        "slashing protection refused to sign the {duty} for {signer}: the key was registered in \
         the record to sign from slot {first_slot} on (an earlier record may have signed before)"
    )]
    BeforeFirstSlot {
        /// The key.
        signer: Address,
        /// The duty.
        duty: Duty,
        /// The first slot the record signs for this key.
        first_slot: Slot,
    },
    /// The signer holds no key for this address.
    #[error("no validator key for {0} is loaded")]
    UnknownKey(Address),
    /// There is no (complete) signing record where the node expects one. It is never created
    /// silently: a missing record is how slashing protection gets lost.
    #[error(
        "no slashing protection record at {}: refusing to sign without one. If the directory \
         moved, point the node at it. If this validator is new, or its record is really lost, \
         start the node once in slashing-protection init mode (`--init-slashing-protection`): it \
         creates the record and refuses the duties of the next few slots", path.display()
    )]
    RecordMissing {
        /// The record's directory.
        path: PathBuf,
    },
    /// A key the record has never seen: it may have signed elsewhere, with another record.
    #[error(
        "validator key {signer} is not registered in the slashing protection record {}: \
         a key the record has never seen may have signed with another record. Import that \
         record, or register the key by starting the node once in slashing-protection init mode \
         (`--init-slashing-protection`), which refuses its duties of the next few slots",
        path.display()
    )]
    UnregisteredKey {
        /// The record's directory.
        path: PathBuf,
        /// The key.
        signer: Address,
    },
    /// A checkpoint proposal's last block does not belong to it.
    #[error(
        "the last block of the checkpoint proposal of slot {slot} {problem}; nothing was signed"
    )]
    LastBlockMismatch {
        /// The checkpoint's slot.
        slot: Slot,
        /// What is wrong with the block.
        problem: &'static str,
    },
    /// Another process (or another signer in this one) holds the signing record's lock.
    #[error(
        "slashing protection record {path} is locked by another process{}: two processes must \
         never sign with one record", holder_suffix(*holder_pid)
    )]
    RecordLocked {
        /// The lock file.
        path: PathBuf,
        /// The pid the holder wrote into the lock file, when readable.
        holder_pid: Option<u32>,
    },
    /// The record was created for another deployment.
    #[error(
        "slashing protection record {path} belongs to chain {} rollup {}, this node signs for \
         chain {} rollup {}", stored.chain_id, stored.rollup, configured.chain_id, configured.rollup
    )]
    DomainMismatch {
        /// The record's directory.
        path: PathBuf,
        /// Domain stored in the record.
        stored: SigningDomain,
        /// Domain of this node.
        configured: SigningDomain,
    },
    /// A file of the record could not be created, opened or locked.
    #[error("slashing protection record {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// RocksDB failed (nothing was signed).
    #[error("slashing protection database: {0}")]
    Db(#[from] rocksdb::Error),
    /// Stored data does not decode (nothing was signed).
    #[error("slashing protection database is corrupt: {0}")]
    Corrupt(&'static str),
    /// The blocking signing task died (a panic); nothing was returned.
    #[error("the signing task failed: {0}")]
    SigningTask(#[from] tokio::task::JoinError),
    /// An epoch cache setting is out of range.
    #[error("epoch cache config: {field} = {value} {requirement}")]
    EpochCacheConfig {
        /// The setting.
        field: &'static str,
        /// Its value, as configured.
        value: String,
        /// What it must be.
        requirement: &'static str,
    },
    /// An L1 read of the epoch cache failed.
    #[error("epoch cache: {0}")]
    L1(#[from] L1Error),
    /// A refresh pass of the epoch cache took longer than its timeout.
    #[error("epoch cache: L1 did not answer within {0:?}")]
    EpochCacheTimeout(std::time::Duration),
    /// The epoch cache actor has stopped.
    #[error("the epoch cache has stopped")]
    EpochCacheStopped,
    /// The fee a checkpoint must carry cannot be derived from what L1 and the archiver hold.
    #[error("required fee unknown: {0}")]
    FeeUnknown(crate::fees::FeeUnknown),
}

impl ValidatorError {
    /// Whether the node must stop: the world state, the archiver or the signing record is
    /// damaged or cannot be used, a configuration is invalid, or a task died. No catch-all arm:
    /// a new variant must be classified.
    pub const fn is_fatal(&self) -> bool {
        match self {
            Self::State(err) => matches!(err, StateError::Db(_) | StateError::Corrupt(_)),
            Self::Archiver(err) => err.is_fatal(),
            Self::TaskFailed(_)
            | Self::SigningTask(_)
            | Self::RecordMissing { .. }
            | Self::UnregisteredKey { .. }
            | Self::RecordLocked { .. }
            | Self::DomainMismatch { .. }
            | Self::Io { .. }
            | Self::Db(_)
            | Self::Corrupt(_)
            | Self::EpochCacheConfig { .. } => true,
            Self::StateServiceStopped
            | Self::InvalidTx(_)
            | Self::Pool(_)
            | Self::ConflictingDuty { .. }
            | Self::AttestationBehind { .. }
            | Self::BelowWatermark { .. }
            | Self::BeforeFirstSlot { .. }
            | Self::UnknownKey(_)
            | Self::LastBlockMismatch { .. }
            | Self::L1(_)
            | Self::EpochCacheTimeout(_)
            | Self::EpochCacheStopped
            | Self::FeeUnknown(_) => false,
        }
    }

    /// Whether slashing protection refused the duty (as opposed to failing to check it). A
    /// refusal is the record doing its job: the caller drops the duty, it never retries it.
    pub const fn is_slashing_refusal(&self) -> bool {
        match self {
            Self::ConflictingDuty { .. }
            | Self::AttestationBehind { .. }
            | Self::BelowWatermark { .. }
            | Self::BeforeFirstSlot { .. } => true,
            Self::State(_)
            | Self::Archiver(_)
            | Self::StateServiceStopped
            | Self::InvalidTx(_)
            | Self::Pool(_)
            | Self::TaskFailed(_)
            | Self::UnknownKey(_)
            | Self::RecordMissing { .. }
            | Self::UnregisteredKey { .. }
            | Self::LastBlockMismatch { .. }
            | Self::EpochCacheConfig { .. }
            | Self::RecordLocked { .. }
            | Self::DomainMismatch { .. }
            | Self::Io { .. }
            | Self::Db(_)
            | Self::Corrupt(_)
            | Self::SigningTask(_)
            | Self::L1(_)
            | Self::EpochCacheTimeout(_)
            | Self::EpochCacheStopped
            | Self::FeeUnknown(_) => false,
        }
    }
}

fn holder_suffix(pid: Option<u32>) -> std::borrow::Cow<'static, str> {
    match pid {
        Some(pid) => format!(" (pid {pid})").into(),
        None => "".into(),
    }
}

/// Result alias of the validator crate.
pub type ValidatorResult<T> = Result<T, ValidatorError>;
