//! The publisher's access to L1, behind a narrow trait ([`L1Chain`]) so the submission and
//! monitoring logic is unit-tested against a scripted chain; [`RpcChain`] is the real one over an
//! alloy provider. Also: how a refused broadcast is told from an unreachable node.

use std::{future::Future, pin::Pin};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider},
    sol_types::SolEvent,
    transports::TransportError,
};
use tandem_l1::{L1BlockRef, L1Error, ProposeBundle, Rollup};

use crate::{
    error::PublisherError,
    fees::{FEE_HISTORY_BLOCKS, FeeEstimate, PRIORITY_FEE_PERCENTILE},
    simulator::{SimulatedPropose, SimulationAt, Simulator},
};

/// Why the L1 node refused a raw tx: a definite answer, the tx is not in its mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The key's nonce is already used on chain (maybe by this very tx).
    #[error("nonce too low")]
    NonceTooLow,
    /// A tx of the same nonce with higher fees is in the mempool.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The fee cap is below the block's base fee.
    #[error("max fee per gas below the block's base fee")]
    FeeCapBelowBaseFee,
    /// The key cannot pay gas × fee cap + value.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// The gas limit is above the block gas limit (or the node's per-tx limit).
    #[error("gas limit above the block gas limit")]
    GasLimitTooHigh,
    /// Any other JSON-RPC error answer, as the node gave it.
    #[error("refused ({code}): {message}")]
    Other {
        /// JSON-RPC error code.
        code: i64,
        /// The node's message.
        message: String,
    },
}

impl Refusal {
    /// Classifies a JSON-RPC error answer to `eth_sendRawTransaction` (geth, reth, nethermind and
    /// anvil wording).
    pub(crate) fn from_answer(code: i64, message: &str) -> Self {
        let lower = message.to_lowercase();
        let has = |needle: &str| lower.contains(needle);
        if has("nonce too low") || has("nonce is too low") || has("oldnonce") {
            Self::NonceTooLow
        } else if has("replacement transaction underpriced") || has("replacement underpriced") {
            Self::ReplacementUnderpriced
        } else if has("less than block base fee") || has("fee cap less than") {
            Self::FeeCapBelowBaseFee
        } else if has("insufficient funds") {
            Self::InsufficientFunds
        } else if has("exceeds block gas limit")
            || has("gas_limit > env.block.gas_limit")
            || has("gas limit too high")
        {
            Self::GasLimitTooHigh
        } else {
            Self::Other {
                code,
                message: message.to_string(),
            }
        }
    }

    /// Label for metrics.
    pub(crate) const fn as_str(&self) -> &'static str {
        match self {
            Self::NonceTooLow => "nonce_too_low",
            Self::ReplacementUnderpriced => "replacement_underpriced",
            Self::FeeCapBelowBaseFee => "fee_cap_below_base_fee",
            Self::InsufficientFunds => "insufficient_funds",
            Self::GasLimitTooHigh => "gas_limit_too_high",
            Self::Other { .. } => "refused_other",
        }
    }
}

/// Why a broadcast got no definite answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The node (or its provider) rate-limited us: it did not look at the tx.
    RateLimited,
    /// Transport failure or garbled reply.
    Transport,
}

impl Unanswered {
    /// Label for metrics.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Transport => "unreachable",
        }
    }
}

/// What the L1 node said to a raw tx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Broadcast {
    /// In its mempool (or already known there).
    Accepted,
    /// A definite refusal: the tx is not in its mempool.
    Refused(Refusal),
    /// No definite answer: the tx may or may not be there.
    Unreachable(Unanswered),
}

/// Classifies a failed `eth_sendRawTransaction`. "Already known" means the node has the tx; what
/// [`L1Error::is_transient`] calls transient (a transport failure, a rate-limit answer) got no
/// look at the tx; any other JSON-RPC error answer is a refusal, classified by what only a send
/// can answer ("nonce too low", "replacement transaction underpriced", …); anything else (a
/// garbled reply) may have reached the node.
pub(crate) fn classify_broadcast_error(error: TransportError) -> Broadcast {
    let answer = error
        .as_error_resp()
        .map(|payload| (payload.code, payload.message.to_string()));
    if let Some((_, message)) = &answer {
        let message = message.to_lowercase();
        if message.contains("already known")
            || message.contains("already imported")
            || message.contains("known transaction")
        {
            return Broadcast::Accepted;
        }
    }
    let error = L1Error::Transport(error);
    match answer {
        Some(_) if error.is_transient() => Broadcast::Unreachable(Unanswered::RateLimited),
        Some((code, message)) => Broadcast::Refused(Refusal::from_answer(code, &message)),
        None => Broadcast::Unreachable(Unanswered::Transport),
    }
}

/// A receipt, reduced to what the lifecycle needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Receipt {
    pub(crate) block_number: u64,
    pub(crate) block_hash: B256,
    /// Status 1 and our `CheckpointProposed` event from our rollup in the logs.
    pub(crate) proposed: bool,
    pub(crate) gas_used: u64,
    pub(crate) effective_gas_price: u128,
}

/// A boxed future of an L1 call.
pub(crate) type L1Future<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, PublisherError>> + Send + 'a>>;

/// What the publisher's tasks need from L1 (defined here, by its consumer, so the task logic can
/// run against a scripted chain in unit tests).
pub(crate) trait L1Chain: Send + Sync + 'static {
    /// The rollup proposes go to.
    fn rollup(&self) -> Address;
    /// The L1 chain id.
    fn chain_id(&self) -> L1Future<'_, u64>;
    /// The latest block.
    fn latest_block(&self) -> L1Future<'_, L1BlockRef>;
    /// Block `number`, if it exists.
    fn block(&self, number: u64) -> L1Future<'_, Option<L1BlockRef>>;
    /// Txs of `address` mined so far.
    fn mined_nonce(&self, address: Address) -> L1Future<'_, u64>;
    /// Txs of `address` mined or executable in the node's mempool.
    fn pending_nonce(&self, address: Address) -> L1Future<'_, u64>;
    /// Balance of `address`, wei (saturated at `u128::MAX`).
    fn balance(&self, address: Address) -> L1Future<'_, u128>;
    /// Next block's base fee and the recent priority fees.
    fn fee_estimate(&self) -> L1Future<'_, FeeEstimate>;
    /// Sends a raw signed tx.
    fn broadcast<'a>(
        &'a self,
        raw: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Broadcast> + Send + 'a>>;
    /// Whether the node knows the tx (in its mempool or mined).
    fn knows(&self, hash: B256) -> L1Future<'_, bool>;
    /// The receipt of a mined tx, judged for checkpoint `checkpoint_number`.
    fn receipt(&self, hash: B256, checkpoint_number: u64) -> L1Future<'_, Option<Receipt>>;
    /// The send-time simulation: `propose` on real L1 at `block` (by hash) as if mined at
    /// `time`, without pipelining overrides.
    fn simulate_propose<'a>(
        &'a self,
        bundle: &'a ProposeBundle,
        time: u64,
        block: L1BlockRef,
    ) -> L1Future<'a, SimulatedPropose>;
}

/// L1 over one alloy provider.
#[derive(Debug, Clone)]
pub(crate) struct RpcChain {
    provider: DynProvider,
    rollup: Address,
    simulator: Simulator,
}

impl RpcChain {
    pub(crate) fn new(provider: DynProvider, rollup: Address, simulator: Simulator) -> Self {
        Self {
            provider,
            rollup,
            simulator,
        }
    }

    async fn block_by(&self, id: BlockNumberOrTag) -> Result<Option<L1BlockRef>, PublisherError> {
        Ok(self
            .provider
            .get_block_by_number(id)
            .await?
            .map(|block| L1BlockRef {
                number: block.header.number,
                hash: block.header.hash,
                timestamp: block.header.timestamp,
            }))
    }

    async fn nonce_at(
        &self,
        address: Address,
        tag: BlockNumberOrTag,
    ) -> Result<u64, PublisherError> {
        Ok(self
            .provider
            .get_transaction_count(address)
            .block_id(tag.into())
            .await?)
    }

    async fn fetch_receipt(
        &self,
        hash: B256,
        checkpoint_number: u64,
    ) -> Result<Option<Receipt>, PublisherError> {
        let Some(receipt) = self.provider.get_transaction_receipt(hash).await? else {
            return Ok(None);
        };
        let (Some(block_number), Some(block_hash)) = (receipt.block_number, receipt.block_hash)
        else {
            // A pending receipt (some nodes return one): not mined yet.
            return Ok(None);
        };
        let number_topic = B256::from(U256::from(checkpoint_number));
        let proposed = receipt.status()
            && receipt.inner.logs().iter().any(|log| {
                let topics = log.topics();
                log.address() == self.rollup
                    && topics.first() == Some(&Rollup::CheckpointProposed::SIGNATURE_HASH)
                    && topics.get(1) == Some(&number_topic)
            });
        Ok(Some(Receipt {
            block_number,
            block_hash,
            proposed,
            gas_used: receipt.gas_used,
            effective_gas_price: receipt.effective_gas_price,
        }))
    }
}

impl L1Chain for RpcChain {
    fn rollup(&self) -> Address {
        self.rollup
    }

    fn chain_id(&self) -> L1Future<'_, u64> {
        Box::pin(async move { Ok(self.provider.get_chain_id().await?) })
    }

    fn latest_block(&self) -> L1Future<'_, L1BlockRef> {
        Box::pin(async move {
            self.block_by(BlockNumberOrTag::Latest)
                .await?
                .ok_or(PublisherError::Unexpected(
                    "the L1 node has no latest block",
                ))
        })
    }

    fn block(&self, number: u64) -> L1Future<'_, Option<L1BlockRef>> {
        Box::pin(self.block_by(BlockNumberOrTag::Number(number)))
    }

    fn mined_nonce(&self, address: Address) -> L1Future<'_, u64> {
        Box::pin(self.nonce_at(address, BlockNumberOrTag::Latest))
    }

    fn pending_nonce(&self, address: Address) -> L1Future<'_, u64> {
        Box::pin(self.nonce_at(address, BlockNumberOrTag::Pending))
    }

    fn balance(&self, address: Address) -> L1Future<'_, u128> {
        Box::pin(async move {
            let balance = self.provider.get_balance(address).latest().await?;
            Ok(u128::try_from(balance).unwrap_or(u128::MAX))
        })
    }

    fn fee_estimate(&self) -> L1Future<'_, FeeEstimate> {
        Box::pin(async move {
            let history = self
                .provider
                .get_fee_history(
                    FEE_HISTORY_BLOCKS,
                    BlockNumberOrTag::Latest,
                    &[PRIORITY_FEE_PERCENTILE],
                )
                .await?;
            FeeEstimate::from_history(&history).ok_or(PublisherError::Unexpected(
                "the L1 node reports no base fee",
            ))
        })
    }

    fn broadcast<'a>(
        &'a self,
        raw: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Broadcast> + Send + 'a>> {
        Box::pin(async move {
            match self.provider.send_raw_transaction(raw).await {
                Ok(_) => Broadcast::Accepted,
                Err(error) => {
                    tracing::debug!(target: "publisher", %error, "eth_sendRawTransaction failed");
                    classify_broadcast_error(error)
                }
            }
        })
    }

    fn knows(&self, hash: B256) -> L1Future<'_, bool> {
        Box::pin(async move { Ok(self.provider.get_transaction_by_hash(hash).await?.is_some()) })
    }

    fn receipt(&self, hash: B256, checkpoint_number: u64) -> L1Future<'_, Option<Receipt>> {
        Box::pin(self.fetch_receipt(hash, checkpoint_number))
    }

    fn simulate_propose<'a>(
        &'a self,
        bundle: &'a ProposeBundle,
        time: u64,
        block: L1BlockRef,
    ) -> L1Future<'a, SimulatedPropose> {
        Box::pin(
            self.simulator
                .simulate_propose(bundle, time, SimulationAt::on_l1(block.id())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::transports::RpcError;

    fn answer(code: i64, message: &str) -> TransportError {
        RpcError::ErrorResp(
            serde_json::from_value(serde_json::json!({ "code": code, "message": message }))
                .unwrap(),
        )
    }

    #[test]
    fn refusals_and_unreachable_nodes_are_told_apart() {
        assert_eq!(
            classify_broadcast_error(answer(-32000, "replacement transaction underpriced")),
            Broadcast::Refused(Refusal::ReplacementUnderpriced)
        );
        assert_eq!(
            classify_broadcast_error(answer(-32000, "max fee per gas less than block base fee")),
            Broadcast::Refused(Refusal::FeeCapBelowBaseFee)
        );
        assert_eq!(
            classify_broadcast_error(answer(-32003, "nonce too low")),
            Broadcast::Refused(Refusal::NonceTooLow)
        );
        assert_eq!(
            classify_broadcast_error(answer(
                -32000,
                "insufficient funds for gas * price + value: balance 0"
            )),
            Broadcast::Refused(Refusal::InsufficientFunds)
        );
        assert_eq!(
            classify_broadcast_error(answer(
                -32000,
                "intrinsic gas too high -- tx.gas_limit > env.block.gas_limit"
            )),
            Broadcast::Refused(Refusal::GasLimitTooHigh)
        );
        assert_eq!(
            classify_broadcast_error(answer(-32000, "txpool is full")),
            Broadcast::Refused(Refusal::Other {
                code: -32000,
                message: "txpool is full".into()
            })
        );
        assert_eq!(
            classify_broadcast_error(answer(-32000, "already known")),
            Broadcast::Accepted
        );
        assert_eq!(
            classify_broadcast_error(RpcError::Transport(
                alloy::transports::TransportErrorKind::BackendGone,
            )),
            Broadcast::Unreachable(Unanswered::Transport)
        );
    }

    #[test]
    fn rate_limit_answers_are_no_answer_not_refusals() {
        for (code, message) in [
            (429, "Too Many Requests"),
            (-32005, "limit exceeded"),
            (-32016, "rate limit reached for this IP"),
        ] {
            assert_eq!(
                classify_broadcast_error(answer(code, message)),
                Broadcast::Unreachable(Unanswered::RateLimited),
                "{code} {message}"
            );
        }
    }
}
