//! A JSON-RPC client of a tandem node (for `spam`, `status` and the devnet's summary), over
//! alloy's HTTP transport (already a dependency; it speaks any method).

use std::{borrow::Cow, time::Duration};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    transports::{RpcError, TransportErrorKind},
};
use eyre::eyre;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a call failed: the node answered with an error, or could not be reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// A JSON-RPC error response.
    #[error("{message} (code {code})")]
    Refused {
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The node could not be reached, or its answer was not JSON-RPC.
    #[error(transparent)]
    Transport(RpcError<TransportErrorKind>),
    /// The answer's result did not have the expected shape.
    #[error("unexpected answer: {0}")]
    Decode(#[from] serde_json::Error),
    /// No answer within [`CALL_TIMEOUT`] (a hung or stopped node must not hang its caller).
    #[error("no answer within {}s", CALL_TIMEOUT.as_secs())]
    Timeout,
}

/// Longest wait for one answer.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One node's RPC.
#[derive(Clone)]
pub(crate) struct NodeClient {
    provider: DynProvider,
    url: String,
}

impl NodeClient {
    pub(crate) fn new(url: &str) -> eyre::Result<Self> {
        let parsed = url
            .parse()
            .map_err(|_| eyre!("--rpc: {url:?} is not a URL"))?;
        Ok(Self {
            provider: ProviderBuilder::new().connect_http(parsed).erased(),
            url: url.to_string(),
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with positional `params`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: Vec<Value>,
    ) -> Result<T, CallError> {
        let value: Value = tokio::time::timeout(
            CALL_TIMEOUT,
            self.provider.raw_request(Cow::Borrowed(method), params),
        )
        .await
        .map_err(|_| CallError::Timeout)?
        .map_err(|err| match err {
            RpcError::ErrorResp(payload) => CallError::Refused {
                code: payload.code,
                message: payload.message.to_string(),
            },
            other => CallError::Transport(other),
        })?;
        Ok(serde_json::from_value(value)?)
    }
}

/// A 0x-hex quantity of a JSON answer.
pub(crate) fn quantity(value: &Value) -> Option<u64> {
    let digits = value.as_str()?.strip_prefix("0x")?;
    // `from_str_radix` would take a leading `+`.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quantities_are_plain_hex() {
        assert_eq!(quantity(&json!("0x1f")), Some(31));
        assert_eq!(quantity(&json!("0x+1f")), None);
        assert_eq!(quantity(&json!("0x")), None);
        assert_eq!(quantity(&json!("1f")), None);
    }

    #[tokio::test]
    async fn a_node_that_never_answers_times_out() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = NodeClient::new(&url).unwrap();
        let started = tokio::time::Instant::now();
        let err = client
            .call::<Value>("tandem_getL2Tips", vec![])
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Timeout), "{err}");
        assert!(started.elapsed() < CALL_TIMEOUT + Duration::from_secs(2));
        hold.abort();
    }
}
