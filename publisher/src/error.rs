//! Errors of the publisher.

use alloy::primitives::{Address, Bytes};
use tandem_l1::{L1Error, RollupError};
use tandem_proto::time::Slot;

use crate::{config::MIN_REPLACEMENT_BUMP_PERCENT, record::RecordError, revert::Revert};

/// What is wrong with a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    /// A fee outside what the publisher can record.
    #[error("must be in 1..={max} wei")]
    FeeOutOfRange {
        /// Largest allowed value.
        max: u128,
    },
    /// The priority-fee floor is above the fee cap.
    #[error("exceeds max_fee_per_gas")]
    AboveMaxFee,
    /// A replacement bump mempools refuse.
    #[error("{0} is below {MIN_REPLACEMENT_BUMP_PERCENT}: L1 mempools refuse smaller replacements")]
    BumpTooSmall(u32),
    /// The cancel ceiling (the cap raised by one bump) does not fit the recorded fees.
    #[error(
        "max_fee_per_gas raised by one replacement bump ({ceiling} wei) is above {max} wei, the most a cancel can record"
    )]
    CancelCeilingTooHigh {
        /// The ceiling.
        ceiling: u128,
        /// Largest allowed value.
        max: u128,
    },
    /// A duration or count that must be positive.
    #[error("must be greater than zero")]
    Zero,
}

/// Errors of the publisher.
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    /// A setting is out of range.
    #[error("publisher.{field}: {problem}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        problem: ConfigProblem,
    },
    /// No publisher key was given.
    #[error("no publisher key: at least one L1 key must pay for propose txs")]
    NoKeys,
    /// The same key was given twice.
    #[error("publisher key {0} is given twice")]
    DuplicateKey(Address),
    /// A publisher key is also an attester key: they must be separate accounts.
    #[error("publisher key {0} is also an attester key; use a separate L1 account")]
    KeyIsAttester(Address),
    /// The tx store failed.
    #[error("publisher tx store: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored record does not decode.
    #[error("publisher tx store is corrupt: {0}")]
    Record(#[from] RecordError),
    /// A blocking store task did not finish.
    #[error("publisher tx store task failed: {0}")]
    StoreTask(tokio::task::JoinError),
    /// A submission task panicked (a bug); its record stays in the store for the next start.
    #[error("a publisher task panicked: {0}")]
    TaskPanicked(tokio::task::JoinError),
    /// The contract refused the call with one of its custom errors.
    #[error("rollup would revert: {0}")]
    Revert(Revert),
    /// The call reverted without one of the contract's errors.
    #[error("rollup would revert with undecoded data {0}")]
    UnknownRevert(Bytes),
    /// An L1 read failed.
    #[error(transparent)]
    L1(L1Error),
    /// The L1 node answered something the publisher cannot use.
    #[error("unexpected L1 answer: {0}")]
    Unexpected(&'static str),
    /// Signing a tx failed.
    #[error("signing an L1 tx failed: {0}")]
    Signing(#[from] alloy::signers::Error),
    /// The request is inconsistent.
    #[error("invalid propose request: {0}")]
    InvalidRequest(&'static str),
    /// A propose for this slot is already queued or in flight.
    #[error("a propose for slot {0} is already queued or in flight")]
    SlotAlreadyEnqueued(Slot),
    /// The request's last valid slot has already started its last L1 block or passed.
    #[error("slot {last_valid} has passed (the next L1 block is in slot {next})")]
    SlotPassed {
        /// The request's last valid slot.
        last_valid: Slot,
        /// The slot of the next L1 block.
        next: Slot,
    },
    /// The publisher was interrupted or stopped.
    #[error("the publisher was interrupted")]
    Interrupted,
}

impl PublisherError {
    /// The decoded revert, when the contract refused with one of its errors.
    pub fn revert(&self) -> Option<&RollupError> {
        match self {
            Self::Revert(revert) => Some(revert.error()),
            _ => None,
        }
    }

    /// Whether the same call may succeed later: a transient L1 failure (see
    /// [`L1Error::is_transient`]). The publisher's loops retry every non-fatal error anyway (the
    /// next try reads a newer block); this only decides how loudly they log.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::L1(error) if error.is_transient())
    }

    /// Whether the publisher cannot go on (its tx store is broken, or a task panicked): every
    /// other error concerns one request or one RPC call, and is logged and retried by the task
    /// that met it.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Db(_) | Self::Record(_) | Self::StoreTask(_) | Self::TaskPanicked(_)
        )
    }
}

impl From<L1Error> for PublisherError {
    fn from(error: L1Error) -> Self {
        match error {
            L1Error::Revert(revert) => Self::Revert(revert.into()),
            other => Self::L1(other),
        }
    }
}

impl From<alloy::transports::TransportError> for PublisherError {
    /// Through [`L1Error`]'s conversion, which decodes the contract's revert data.
    fn from(error: alloy::transports::TransportError) -> Self {
        L1Error::from(error).into()
    }
}
