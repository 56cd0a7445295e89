//! Errors of the validator crate.
//!
//! Verdicts on proposals are not errors: a refused block or checkpoint is a
//! [`crate::BlockRejection`] or [`crate::CheckpointRejection`] (a metric, a log line with the
//! evidence, maybe a peer penalty). Errors are what stops a component or fails a request.

use tandem_archiver::ArchiverError;
use tandem_proto::{Address, time::Slot};
use tandem_state::{PoolError, StateError, TxError};

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
    /// A blocking task (execution, signing) panicked.
    #[error("the {0} task failed")]
    TaskFailed(&'static str),
    /// The signer refused the attestation: signing it could be slashed (another proposal of
    /// this slot or a later one is signed already).
    #[error("the signer refused to attest slot {slot} as {signer}: {reason}")]
    AttestationRefused {
        /// The attester.
        signer: Address,
        /// The slot.
        slot: Slot,
        /// Why.
        reason: &'static str,
    },
    /// The signer holds no key for this address.
    #[error("no validator key for {0} is loaded")]
    UnknownKey(Address),
}

impl ValidatorError {
    /// Whether the node must stop: the world state or the archiver is damaged, or a task died.
    /// No catch-all arm: a new variant must be classified.
    pub const fn is_fatal(&self) -> bool {
        match self {
            Self::State(err) => matches!(err, StateError::Db(_) | StateError::Corrupt(_)),
            Self::Archiver(err) => err.is_fatal(),
            Self::TaskFailed(_) => true,
            Self::StateServiceStopped
            | Self::InvalidTx(_)
            | Self::Pool(_)
            | Self::AttestationRefused { .. }
            | Self::UnknownKey(_) => false,
        }
    }

    /// Whether slashing protection refused a duty (the record doing its job: drop the duty,
    /// never retry it), as opposed to failing to sign.
    pub const fn is_slashing_refusal(&self) -> bool {
        matches!(self, Self::AttestationRefused { .. })
    }
}

/// Result of the validator crate.
pub type ValidatorResult<T> = Result<T, ValidatorError>;
