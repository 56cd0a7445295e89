//! The L1 calls the publisher makes, and how a refused broadcast is told from an unreachable node.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider},
    sol_types::SolEvent,
    transports::{RpcError, TransportError},
};
use tandem_l1::{L1BlockRef, Rollup};

use crate::{
    error::PublisherError,
    fees::{FEE_HISTORY_BLOCKS, FeeEstimate, PRIORITY_FEE_PERCENTILE},
};

/// What the L1 node said to a raw tx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Broadcast {
    /// In its mempool (or already known there).
    Accepted,
    /// A definite refusal (underpriced, fee cap below the base fee, nonce too low, no funds):
    /// the tx is not in its mempool.
    Refused(String),
    /// No definite answer (transport failure, garbled reply): the tx may or may not be there.
    Unreachable(String),
}

/// Classifies a failed `eth_sendRawTransaction`. A JSON-RPC error answer is a refusal, except
/// "already known", which means the node has the tx; anything else may have reached the node.
/// (Kept in one place so it can follow `L1Error::is_transient` once that classifies the same way.)
pub(crate) fn classify_broadcast_error(error: &TransportError) -> Broadcast {
    match error {
        RpcError::ErrorResp(payload) => {
            let message = payload.message.to_lowercase();
            if message.contains("already known")
                || message.contains("already imported")
                || message.contains("known transaction")
            {
                Broadcast::Accepted
            } else {
                Broadcast::Refused(payload.message.to_string())
            }
        }
        other => Broadcast::Unreachable(other.to_string()),
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

/// L1 access over one provider.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    pub(crate) provider: DynProvider,
    pub(crate) rollup: Address,
}

impl Chain {
    pub(crate) async fn latest_block(&self) -> Result<L1BlockRef, PublisherError> {
        self.block(BlockNumberOrTag::Latest)
            .await?
            .ok_or(PublisherError::Unexpected(
                "the L1 node has no latest block",
            ))
    }

    pub(crate) async fn block(
        &self,
        id: BlockNumberOrTag,
    ) -> Result<Option<L1BlockRef>, PublisherError> {
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

    /// Txs of `address` mined so far.
    pub(crate) async fn mined_nonce(&self, address: Address) -> Result<u64, PublisherError> {
        Ok(self
            .provider
            .get_transaction_count(address)
            .block_id(BlockNumberOrTag::Latest.into())
            .await?)
    }

    /// Txs of `address` mined or executable in the node's mempool.
    pub(crate) async fn pending_nonce(&self, address: Address) -> Result<u64, PublisherError> {
        Ok(self
            .provider
            .get_transaction_count(address)
            .block_id(BlockNumberOrTag::Pending.into())
            .await?)
    }

    pub(crate) async fn balance(&self, address: Address) -> Result<U256, PublisherError> {
        Ok(self.provider.get_balance(address).latest().await?)
    }

    pub(crate) async fn fee_estimate(&self) -> Result<FeeEstimate, PublisherError> {
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
    }

    pub(crate) async fn broadcast(&self, raw: &[u8]) -> Broadcast {
        match self.provider.send_raw_transaction(raw).await {
            Ok(_) => Broadcast::Accepted,
            Err(error) => classify_broadcast_error(&error),
        }
    }

    /// Whether the node knows the tx (in its mempool or mined).
    pub(crate) async fn knows(&self, hash: B256) -> Result<bool, PublisherError> {
        Ok(self.provider.get_transaction_by_hash(hash).await?.is_some())
    }

    pub(crate) async fn receipt(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(message: &str) -> TransportError {
        RpcError::ErrorResp(
            serde_json::from_value(serde_json::json!({ "code": -32000, "message": message }))
                .unwrap(),
        )
    }

    #[test]
    fn refusals_and_unreachable_nodes_are_told_apart() {
        assert_eq!(
            classify_broadcast_error(&answer("replacement transaction underpriced")),
            Broadcast::Refused("replacement transaction underpriced".into())
        );
        assert_eq!(
            classify_broadcast_error(&answer("max fee per gas less than block base fee")),
            Broadcast::Refused("max fee per gas less than block base fee".into())
        );
        assert_eq!(
            classify_broadcast_error(&answer("already known")),
            Broadcast::Accepted
        );
        let unreachable = classify_broadcast_error(&RpcError::Transport(
            alloy::transports::TransportErrorKind::BackendGone,
        ));
        assert!(matches!(unreachable, Broadcast::Unreachable(_)));
    }
}
