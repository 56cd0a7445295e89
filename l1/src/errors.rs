//! Errors of the L1 crate. The contract's custom errors are decoded into the `sol!`-generated
//! [`RollupError`] enum (one variant per Solidity `error`), so they are matched as
//! `RollupError::InvalidArchive(e)` with `e.expected`, `e.got`.

use alloy::{
    primitives::B256,
    providers::PendingTransactionError,
    transports::{RpcError, TransportError, TransportErrorKind},
};

pub use crate::bindings::Rollup::RollupErrors as RollupError;

/// Errors of the L1 crate.
#[derive(Debug, thiserror::Error)]
pub enum L1Error {
    /// The contract reverted with one of its custom errors.
    #[error("rollup reverted: {0:?}")]
    Revert(RollupError),
    /// Another contract-call failure (revert without a known error, ABI mismatch, …).
    #[error("rollup call failed: {0}")]
    Contract(alloy::contract::Error),
    /// The RPC failed: the transport, or a JSON-RPC error answer.
    #[error("L1 RPC failed: {0}")]
    Transport(TransportError),
    /// Waiting for a tx failed.
    #[error("waiting for L1 tx failed: {0}")]
    PendingTx(#[from] PendingTransactionError),
    /// A tx was mined but reverted.
    #[error("L1 tx {0} reverted")]
    TxReverted(B256),
    /// The L1 block a log named is no longer known to the node: it was reorged away between
    /// reading the logs and reading the block. Reading the range again gives a consistent view.
    #[error("L1 block {0} of a rollup log is gone (reorged away): read the range again")]
    BlockGone(B256),
    /// The node returned something the protocol does not allow.
    #[error("unexpected L1 data: {0}")]
    Unexpected(&'static str),
    /// Deployment parameters the contract would refuse (checked before sending).
    #[error("invalid deployment parameter {field}: {problem}")]
    InvalidParams {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
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

impl From<TransportError> for L1Error {
    /// A JSON-RPC error answer carrying the contract's revert data (a raw `eth_call`, a gas
    /// estimate, a send) is decoded like a contract call's.
    fn from(error: TransportError) -> Self {
        let revert = error
            .as_error_resp()
            .and_then(|payload| payload.as_decoded_interface_error::<RollupError>());
        match revert {
            Some(revert) => Self::Revert(revert),
            None => Self::Transport(error),
        }
    }
}

impl From<alloy::contract::Error> for L1Error {
    /// Decodes the contract's custom errors and unwraps transport failures; anything else stays
    /// a contract error.
    fn from(error: alloy::contract::Error) -> Self {
        if let Some(revert) = error.as_decoded_interface_error::<RollupError>() {
            return Self::Revert(revert);
        }
        match error {
            alloy::contract::Error::TransportError(error) => Self::from(error),
            alloy::contract::Error::PendingTransactionError(error) => Self::PendingTx(error),
            other => Self::Contract(other),
        }
    }
}

impl L1Error {
    /// The decoded revert, if the contract reverted with a custom error.
    pub fn revert(&self) -> Option<&RollupError> {
        match self {
            Self::Revert(revert) => Some(revert),
            _ => None,
        }
    }

    /// Whether retrying later can help. Transport failures (connection refused or reset, a
    /// timeout, HTTP 429/5xx, a rate-limit answer) are transient, also when alloy wraps them in
    /// a contract-call error; a definite JSON-RPC error answer (a revert, an invalid request),
    /// bad data and local mistakes are permanent: the same call would fail the same way.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(error) => rpc_error_is_transient(error),
            Self::Contract(alloy::contract::Error::TransportError(error)) => {
                rpc_error_is_transient(error)
            }
            Self::PendingTx(error)
            | Self::Contract(alloy::contract::Error::PendingTransactionError(error)) => match error
            {
                PendingTransactionError::TransportError(error) => rpc_error_is_transient(error),
                PendingTransactionError::FailedToRegister
                | PendingTransactionError::Recv(_)
                | PendingTransactionError::TxWatcher(_) => true,
            },
            Self::BlockGone(_) => true,
            Self::Revert(_)
            | Self::Contract(_)
            | Self::TxReverted(_)
            | Self::Unexpected(_)
            | Self::InvalidParams { .. }
            | Self::DeploymentFile { .. }
            | Self::DeploymentFormat { .. } => false,
        }
    }
}

fn rpc_error_is_transient(error: &RpcError<TransportErrorKind>) -> bool {
    match error {
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(http) => {
                http.is_rate_limit_err() || http.is_temporarily_unavailable() || http.status >= 500
            }
            TransportErrorKind::NonRetryable(_) | TransportErrorKind::PubsubUnavailable => false,
            // Connection refused/reset, timeouts, a closed backend, a missing batch answer.
            _ => true,
        },
        // Providers answer rate limiting with an error object; that one is worth a retry.
        RpcError::ErrorResp(payload) => payload.is_retry_err(),
        // The node had nothing yet where something was expected (e.g. it lags behind).
        RpcError::NullResp => true,
        RpcError::UnsupportedFeature(_)
        | RpcError::LocalUsageError(_)
        | RpcError::SerError(_)
        | RpcError::DeserError { .. } => false,
    }
}

/// Result alias of the L1 crate.
pub type L1Result<T> = Result<T, L1Error>;
