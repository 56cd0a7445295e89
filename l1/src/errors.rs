//! Errors of the L1 crate, with every custom error of the contract decoded into [`RollupRevert`].

use alloy::{
    primitives::{Address, B256, I256, U256},
    sol_types::SolInterface,
};

use crate::bindings::Rollup::RollupErrors;

/// A revert of the Rollup contract, decoded from its custom error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollupRevert {
    /// The checkpoint is not tip + 1.
    #[error("checkpoint number {got} is not the next one ({expected})")]
    InvalidCheckpointNumber {
        /// Tip + 1.
        expected: U256,
        /// Proposed number.
        got: U256,
    },
    /// `lastArchiveRoot` is not the archive of the tip.
    #[error("last archive root {got} does not match the tip's archive {expected}")]
    InvalidArchive {
        /// Archive of the tip.
        expected: B256,
        /// Header's last archive root.
        got: B256,
    },
    /// The header's slot is not the slot of the L1 block.
    #[error("header slot {got} is not the current slot {expected}")]
    InvalidSlot {
        /// Current slot.
        expected: U256,
        /// Header slot.
        got: U256,
    },
    /// The slot is not after the parent's.
    #[error("slot {slot} is not after the parent's slot {parent_slot}")]
    SlotAlreadyInChain {
        /// Parent's slot.
        parent_slot: U256,
        /// Proposed slot.
        slot: U256,
    },
    /// The timestamp is not the slot start.
    #[error("timestamp {got} is not the slot start {expected}")]
    InvalidTimestamp {
        /// Slot start.
        expected: U256,
        /// Header timestamp.
        got: U256,
    },
    /// Zero coinbase.
    #[error("coinbase is the zero address")]
    InvalidCoinbase,
    /// Too much mana.
    #[error("mana used {used} exceeds the limit {limit}")]
    ManaLimitExceeded {
        /// The limit.
        limit: U256,
        /// Used.
        used: U256,
    },
    /// Wrong fee per mana.
    #[error("fee per mana {got} is not the required {expected}")]
    InvalidManaMinFee {
        /// Required.
        expected: U256,
        /// Proposed.
        got: U256,
    },
    /// Modifier out of bounds.
    #[error("fee-asset price modifier {0} is out of bounds")]
    InvalidFeeAssetPriceModifier(I256),
    /// `keccak(body) != bodyHash`.
    #[error("body hashes to {got}, header says {expected}")]
    InvalidBodyHash {
        /// Header's body hash.
        expected: B256,
        /// Hash of the sent body.
        got: B256,
    },
    /// The proposer signature is not from the slot's proposer.
    #[error("proposer is {got}, the slot's proposer is {expected}")]
    InvalidProposer {
        /// The slot's proposer.
        expected: Address,
        /// Recovered signer.
        got: Address,
    },
    /// A malformed signature (v, high s, or unrecoverable).
    #[error("malformed signature")]
    InvalidSignature,
    /// Bits set beyond the committee.
    #[error("signer bitmap has bits beyond the committee of {committee_size}")]
    InvalidSignerBitmap {
        /// Committee size.
        committee_size: U256,
    },
    /// Bitmap and signature list disagree.
    #[error("{signers} signers in the bitmap but {signatures} signatures")]
    AttestationCountMismatch {
        /// Bits set (so far).
        signers: U256,
        /// Signatures sent.
        signatures: U256,
    },
    /// An attestation is not from the committee member its bit names.
    #[error("attestation for committee member {committee_index} ({expected}) is signed by {got}")]
    InvalidAttestation {
        /// Position in the committee.
        committee_index: U256,
        /// The member.
        expected: Address,
        /// Recovered signer.
        got: Address,
    },
    /// Not more than 2/3 of the committee attested.
    #[error("{got} attestations, {needed} needed")]
    InsufficientAttestations {
        /// Quorum.
        needed: U256,
        /// Attestations.
        got: U256,
    },
    /// Caller is not the owner.
    #[error("caller is not the owner")]
    NotOwner,
    /// Constructor argument refused.
    #[error("invalid deployment parameter {0}")]
    InvalidConfig(String),
    /// Zero or duplicate validator.
    #[error("invalid or duplicate validator {0}")]
    InvalidValidator(Address),
    /// Timestamp before genesis.
    #[error("timestamp {0} is before genesis")]
    BeforeGenesis(U256),
    /// No such checkpoint on L1.
    #[error("checkpoint {0} is not on L1")]
    CheckpointNotFound(U256),
}

impl From<RollupErrors> for RollupRevert {
    fn from(error: RollupErrors) -> Self {
        use RollupErrors as E;
        match error {
            E::InvalidCheckpointNumber(e) => Self::InvalidCheckpointNumber {
                expected: e.expected,
                got: e.got,
            },
            E::InvalidArchive(e) => Self::InvalidArchive {
                expected: e.expected,
                got: e.got,
            },
            E::InvalidSlot(e) => Self::InvalidSlot {
                expected: e.expected,
                got: e.got,
            },
            E::SlotAlreadyInChain(e) => Self::SlotAlreadyInChain {
                parent_slot: e.parentSlot,
                slot: e.slot,
            },
            E::InvalidTimestamp(e) => Self::InvalidTimestamp {
                expected: e.expected,
                got: e.got,
            },
            E::InvalidCoinbase(_) => Self::InvalidCoinbase,
            E::ManaLimitExceeded(e) => Self::ManaLimitExceeded {
                limit: e.limit,
                used: e.used,
            },
            E::InvalidManaMinFee(e) => Self::InvalidManaMinFee {
                expected: e.expected,
                got: e.got,
            },
            E::InvalidFeeAssetPriceModifier(e) => Self::InvalidFeeAssetPriceModifier(e.modifier_),
            E::InvalidBodyHash(e) => Self::InvalidBodyHash {
                expected: e.expected,
                got: e.got,
            },
            E::InvalidProposer(e) => Self::InvalidProposer {
                expected: e.expected,
                got: e.got,
            },
            E::InvalidSignature(_) => Self::InvalidSignature,
            E::InvalidSignerBitmap(e) => Self::InvalidSignerBitmap {
                committee_size: e.committeeSize,
            },
            E::AttestationCountMismatch(e) => Self::AttestationCountMismatch {
                signers: e.signers,
                signatures: e.signatures,
            },
            E::InvalidAttestation(e) => Self::InvalidAttestation {
                committee_index: e.committeeIndex,
                expected: e.expected,
                got: e.got,
            },
            E::InsufficientAttestations(e) => Self::InsufficientAttestations {
                needed: e.needed,
                got: e.got,
            },
            E::NotOwner(_) => Self::NotOwner,
            E::InvalidConfig(e) => Self::InvalidConfig(e.field),
            E::InvalidValidator(e) => Self::InvalidValidator(e.validator),
            E::BeforeGenesis(e) => Self::BeforeGenesis(e.timestamp),
            E::CheckpointNotFound(e) => Self::CheckpointNotFound(e.checkpointNumber),
        }
    }
}

impl RollupRevert {
    /// Decodes revert data; `None` when it is not one of the contract's custom errors.
    pub fn decode(data: &[u8]) -> Option<Self> {
        RollupErrors::abi_decode(data).ok().map(Self::from)
    }
}

/// Errors of the L1 crate.
#[derive(Debug, thiserror::Error)]
pub enum L1Error {
    /// The contract reverted with one of its custom errors.
    #[error("rollup reverted: {0}")]
    Revert(#[from] RollupRevert),
    /// Another contract-call failure (revert without a known error, ABI mismatch, …).
    #[error("rollup call failed: {0}")]
    Contract(alloy::contract::Error),
    /// The RPC transport failed.
    #[error("L1 RPC failed: {0}")]
    Transport(#[from] alloy::transports::TransportError),
    /// Waiting for a tx failed.
    #[error("waiting for L1 tx failed: {0}")]
    PendingTx(#[from] alloy::providers::PendingTransactionError),
    /// A tx was mined but reverted.
    #[error("L1 tx {0} reverted")]
    TxReverted(B256),
    /// The node returned something the protocol does not allow.
    #[error("unexpected L1 data: {0}")]
    Unexpected(&'static str),
    /// A `propose` tx's calldata could not be decoded (e.g. sent through another contract).
    #[error("tx {tx} emitting checkpoint {checkpoint} is not a direct propose call")]
    NotProposeCalldata {
        /// The tx.
        tx: B256,
        /// The checkpoint number of its event.
        checkpoint: u64,
    },
    /// Reading or writing a deployment file failed.
    #[error("{path}: {source}")]
    DeploymentFile {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A deployment file is not valid JSON of the expected shape.
    #[error("{path}: {source}")]
    DeploymentFormat {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        source: serde_json::Error,
    },
}

impl From<alloy::contract::Error> for L1Error {
    /// Decodes the contract's custom errors; anything else stays a contract error.
    fn from(error: alloy::contract::Error) -> Self {
        match error.as_decoded_interface_error::<RollupErrors>() {
            Some(revert) => Self::Revert(revert.into()),
            None => Self::Contract(error),
        }
    }
}

impl L1Error {
    /// The decoded revert, if the contract reverted with a custom error.
    pub fn revert(&self) -> Option<&RollupRevert> {
        match self {
            Self::Revert(revert) => Some(revert),
            _ => None,
        }
    }

    /// Whether retrying later can help (transport trouble) as opposed to a definite answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) | Self::PendingTx(_) => true,
            Self::Revert(_)
            | Self::Contract(_)
            | Self::TxReverted(_)
            | Self::Unexpected(_)
            | Self::NotProposeCalldata { .. }
            | Self::DeploymentFile { .. }
            | Self::DeploymentFormat { .. } => false,
        }
    }
}

/// Result alias of the L1 crate.
pub type L1Result<T> = Result<T, L1Error>;
