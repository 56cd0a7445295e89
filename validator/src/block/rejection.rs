//! Why a block proposal is refused: the reference's re-execution reasons (§7.1), in its order.

use tandem_archiver::ArchiverError;
use tandem_proto::B256;
use tandem_state::{ReexecutionError, TxError};

/// A refused block proposal. [`BlockRejection::as_str`] is the reason name (metric label, log
/// field); [`BlockRejection::is_slashable`] says whether the proposer provably broke a rule
/// (then the peer that sent it is penalised).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlockRejection {
    /// The proposer signature does not recover. Gossip checks it before a handler sees the
    /// proposal; proposals from other paths (catch-up) are checked here.
    #[error("the proposer signature does not recover")]
    InvalidSignature,
    /// A tx hash appears twice.
    #[error("tx {hash} appears twice")]
    DuplicateTxs {
        /// The repeated hash.
        hash: B256,
    },
    /// No stored block has the proposal's `last_archive_root` by the slot's deadline.
    #[error("no stored block has archive {last_archive_root}")]
    ParentBlockNotFound {
        /// The proposal's parent archive.
        last_archive_root: B256,
    },
    /// The parent block (by `last_archive_root`) was refused here: this block can never be
    /// stored, so it is refused at once instead of waiting until the deadline. Not slashable:
    /// the parent's verdict carries the fault.
    #[error("parent block with archive {last_archive_root} was refused ({parent_reason})")]
    ParentBlockInvalid {
        /// The proposal's parent archive.
        last_archive_root: B256,
        /// The parent's reason.
        parent_reason: &'static str,
    },
    /// The parent is of a later slot.
    #[error("parent block is of slot {parent_slot}, the proposal of slot {slot}")]
    ParentBlockWrongSlot {
        /// Parent's slot.
        parent_slot: u64,
        /// Proposal's slot.
        slot: u64,
    },
    /// Another block with this number is stored and was not pruned by the deadline.
    #[error("block {number} is stored with hash {stored}")]
    BlockNumberAlreadyExists {
        /// The number.
        number: u64,
        /// The stored block's hash.
        stored: B256,
    },
    /// An embedded tx does not recover or breaks the stateless rules, or the txs do not hash
    /// to the header's body hash.
    #[error("embedded tx {index:?} is invalid: {error:?}")]
    InvalidEmbeddedTxs {
        /// The tx's position (`None`: the list as a whole does not match the header).
        index: Option<usize>,
        /// Why the tx is invalid.
        error: Option<TxError>,
    },
    /// A global variable (number, checkpoint, index, slot, timestamp, chain, coinbase, fee
    /// recipient, fee) is not what the parent and the slot make it.
    #[error("global variable {field} is not what it must be")]
    GlobalVariablesMismatch {
        /// The field.
        field: &'static str,
    },
    /// The first block of a checkpoint does not carry the fee per mana L1's fee model
    /// requires after its parent checkpoint (predicted as the publisher's plan does when the
    /// parent is not on L1 yet).
    #[error("fee per mana is {claimed}, L1 will require {expected}")]
    FeePerManaMismatch {
        /// What the fee model requires.
        expected: u128,
        /// What the block carries.
        claimed: u128,
    },
    /// The parent checkpoint is neither on L1 nor stored as a proposed checkpoint by the
    /// deadline, so the required fee cannot be derived.
    #[error("parent checkpoint {number} is not known (neither on L1 nor proposed)")]
    ParentCheckpointNotFound {
        /// Its number.
        number: u64,
    },
    /// The required fee could not be derived: L1 could not be read (errors or timeouts after
    /// bounded retries), does not hold the checkpoint the archiver has from it (a lagging L1
    /// node, a reorg), or the fee model fails on it. Not the proposer's fault, so not
    /// slashable; recorded as a verdict (logged, counted) rather than left unvalidated.
    #[error("the required fee is unavailable: {0}")]
    FeeUnavailable(crate::fees::FeeUnknown),
    /// Txs neither embedded, pooled nor served by peers.
    #[error("{missing} txs are not available")]
    TxsNotAvailable {
        /// How many.
        missing: usize,
    },
    /// The world state did not reach the parent by the deadline (or forgot it), or the fork's
    /// archive is not the proposal's parent archive.
    #[error("world state cannot start from block {parent}")]
    InitialStateMismatch {
        /// The parent's number.
        parent: u64,
    },
    /// A tx fails.
    #[error("tx {index} fails: {error}")]
    FailedTxs {
        /// Position.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// Re-execution did not finish by the deadline.
    #[error("re-execution ran {processed} of {total} txs by the deadline")]
    Timeout {
        /// Txs executed.
        processed: usize,
        /// Txs in the block.
        total: usize,
    },
    /// Execution gives another state root, mana, fees or archive than the proposal claims.
    #[error("state mismatch: {0}")]
    StateMismatch(StateMismatch),
    /// The archiver refused to store the block (its slot ended, its checkpoint was sealed...).
    #[error("the archiver refused the block: {0}")]
    StoreRefused(ArchiverError),
}

/// What re-execution found different.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateMismatch {
    /// State root, mana or fees.
    #[error(transparent)]
    Execution(ReexecutionError),
    /// The archive root after the block.
    #[error("archive after the block is {computed}, the proposal claims {claimed}")]
    Archive {
        /// The proposal's.
        claimed: B256,
        /// Re-executed.
        computed: B256,
    },
}

impl BlockRejection {
    /// The reason name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidSignature => "invalid_signature",
            Self::DuplicateTxs { .. } => "duplicate_txs",
            Self::ParentBlockNotFound { .. } => "parent_block_not_found",
            Self::ParentBlockInvalid { .. } => "parent_block_invalid",
            Self::ParentBlockWrongSlot { .. } => "parent_block_wrong_slot",
            Self::BlockNumberAlreadyExists { .. } => "block_number_already_exists",
            Self::InvalidEmbeddedTxs { .. } => "invalid_embedded_txs",
            Self::GlobalVariablesMismatch { .. } => "global_variables_mismatch",
            Self::FeePerManaMismatch { .. } => "fee_per_mana_mismatch",
            Self::ParentCheckpointNotFound { .. } => "parent_checkpoint_not_found",
            Self::FeeUnavailable(_) => "fee_unavailable",
            Self::TxsNotAvailable { .. } => "txs_not_available",
            Self::InitialStateMismatch { .. } => "initial_state_mismatch",
            Self::FailedTxs { .. } => "failed_txs",
            Self::Timeout { .. } => "timeout",
            Self::StateMismatch(_) => "state_mismatch",
            Self::StoreRefused(_) => "store_refused",
        }
    }

    /// Whether the proposer provably broke a rule (slashable; the sender is penalised). No
    /// catch-all arm: a new reason must be classified.
    pub const fn is_slashable(&self) -> bool {
        match self {
            Self::DuplicateTxs { .. }
            | Self::ParentBlockWrongSlot { .. }
            | Self::InvalidEmbeddedTxs { .. }
            | Self::GlobalVariablesMismatch { .. }
            | Self::FeePerManaMismatch { .. }
            | Self::FailedTxs { .. }
            | Self::StateMismatch(_) => true,
            Self::InvalidSignature
            | Self::ParentBlockNotFound { .. }
            | Self::ParentBlockInvalid { .. }
            | Self::ParentCheckpointNotFound { .. }
            | Self::FeeUnavailable(_)
            | Self::BlockNumberAlreadyExists { .. }
            | Self::TxsNotAvailable { .. }
            | Self::InitialStateMismatch { .. }
            | Self::Timeout { .. }
            | Self::StoreRefused(_) => false,
        }
    }

    /// The verdict of a failed re-execution.
    pub(crate) fn from_reexecution(err: ReexecutionError, parent: u64) -> Self {
        match err {
            ReexecutionError::InitialStateMismatch { .. } | ReexecutionError::ArchiveFull => {
                Self::InitialStateMismatch { parent }
            }
            ReexecutionError::GlobalVariablesMismatch { field } => {
                Self::GlobalVariablesMismatch { field }
            }
            ReexecutionError::BodyHashMismatch => Self::InvalidEmbeddedTxs {
                index: None,
                error: None,
            },
            ReexecutionError::FailedTxs { index, reason } => Self::FailedTxs {
                index,
                error: reason,
            },
            ReexecutionError::Timeout { processed, total } => Self::Timeout { processed, total },
            err @ (ReexecutionError::AccountingMismatch { .. }
            | ReexecutionError::StateMismatch { .. }) => {
                Self::StateMismatch(StateMismatch::Execution(err))
            }
        }
    }
}
