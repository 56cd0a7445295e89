//! The four request/response protocols as [`Exchange`]s: what each serves, what it costs the
//! asking peer, and which answers are lawful.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use futures::{FutureExt, future::BoxFuture};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use tandem_proto::{B256, Tx};

use super::{Exchange, Limiters, Pending, PendingRequests, ServeContext};
use crate::{
    reqresp::{
        BlockQuery, BlocksByRangeRequest, FrameCodec, MAX_PROPOSALS_PER_RESPONSE,
        ProposedChainRequest, RateLimiter, Response, ResponseStatus, ServedBlock, TxsByHashRequest,
        block_count_valid, blocks_request_valid, txs_request_valid,
    },
    service::{Behaviour, SwarmCommand},
    validation::lock,
};

fn from_store<T: Send + 'static>(
    serving: BoxFuture<'static, Result<Vec<T>, crate::reqresp::ProviderError>>,
) -> BoxFuture<'static, Response<T>> {
    async move {
        match serving.await {
            Ok(items) => Response::ok(items),
            Err(_) => Response::error(ResponseStatus::ServerError),
        }
    }
    .boxed()
}

/// Txs by hash.
pub(crate) struct TxsExchange;

impl Exchange for TxsExchange {
    type Request = TxsByHashRequest;
    type Item = Tx;
    type Context = HashSet<B256>;
    const NAME: &'static str = "txs_by_hash";

    fn behaviour(
        behaviour: &mut Behaviour,
    ) -> &mut request_response::Behaviour<FrameCodec<TxsByHashRequest, Tx>> {
        &mut behaviour.txs
    }

    fn limiter(limiters: &mut Limiters) -> &mut RateLimiter {
        &mut limiters.txs
    }

    fn client_limiter(limiters: &mut Limiters) -> &mut RateLimiter {
        &mut limiters.client_txs
    }

    fn pending(pending: &mut PendingRequests) -> &mut HashMap<OutboundRequestId, Pending<Self>> {
        &mut pending.txs
    }

    fn valid(request: &TxsByHashRequest) -> bool {
        txs_request_valid(request)
    }

    fn cost(request: &TxsByHashRequest) -> f64 {
        request.hashes.len() as f64
    }

    fn serve(
        context: &ServeContext,
        request: TxsByHashRequest,
    ) -> BoxFuture<'static, Response<Tx>> {
        from_store(context.provider.txs_by_hash(request.hashes))
    }

    fn respond(channel: ResponseChannel<Response<Tx>>, response: Response<Tx>) -> SwarmCommand {
        SwarmCommand::RespondTxs { channel, response }
    }

    fn check(requested: &HashSet<B256>, txs: &[Tx]) -> Result<(), &'static str> {
        let mut seen = HashSet::with_capacity(txs.len());
        for tx in txs {
            let hash = tx.hash();
            if !requested.contains(&hash) {
                return Err("a tx that was not requested");
            }
            if !seen.insert(hash) {
                return Err("a tx twice");
            }
        }
        Ok(())
    }
}

/// Consecutive block numbers from `from`, at most `count`.
fn check_consecutive(from: u64, count: u32, blocks: &[ServedBlock]) -> Result<(), &'static str> {
    if blocks.len() > count as usize {
        return Err("more blocks than requested");
    }
    let consecutive = blocks
        .iter()
        .zip(from..)
        .all(|(served, number)| served.block.header.block_number == number);
    if consecutive {
        Ok(())
    } else {
        Err("blocks not consecutive from the requested start")
    }
}

/// Blocks by number range.
pub(crate) struct BlocksExchange;

impl Exchange for BlocksExchange {
    type Request = BlocksByRangeRequest;
    type Item = ServedBlock;
    type Context = BlocksByRangeRequest;
    const NAME: &'static str = "blocks_by_range";

    fn behaviour(
        behaviour: &mut Behaviour,
    ) -> &mut request_response::Behaviour<FrameCodec<BlocksByRangeRequest, ServedBlock>> {
        &mut behaviour.blocks
    }

    fn limiter(limiters: &mut Limiters) -> &mut RateLimiter {
        &mut limiters.blocks
    }

    fn client_limiter(limiters: &mut Limiters) -> &mut RateLimiter {
        &mut limiters.client_blocks
    }

    fn pending(pending: &mut PendingRequests) -> &mut HashMap<OutboundRequestId, Pending<Self>> {
        &mut pending.blocks
    }

    fn valid(request: &BlocksByRangeRequest) -> bool {
        blocks_request_valid(request)
    }

    fn cost(request: &BlocksByRangeRequest) -> f64 {
        f64::from(request.count)
    }

    fn serve(
        context: &ServeContext,
        request: BlocksByRangeRequest,
    ) -> BoxFuture<'static, Response<ServedBlock>> {
        from_store(
            context
                .provider
                .blocks_by_range(request.from, request.count),
        )
    }

    fn respond(
        channel: ResponseChannel<Response<ServedBlock>>,
        response: Response<ServedBlock>,
    ) -> SwarmCommand {
        SwarmCommand::RespondBlocks { channel, response }
    }

    fn check(request: &BlocksByRangeRequest, blocks: &[ServedBlock]) -> Result<(), &'static str> {
        check_consecutive(request.from, request.count, blocks)
    }
}

/// Block proposals by (slot, index) or archive.
pub(crate) struct ProposalsExchange;

impl Exchange for ProposalsExchange {
    type Request = BlockQuery;
    type Item = ServedBlock;
    type Context = BlockQuery;
    const NAME: &'static str = "block_proposals";

    fn behaviour(
        behaviour: &mut Behaviour,
    ) -> &mut request_response::Behaviour<FrameCodec<BlockQuery, ServedBlock>> {
        &mut behaviour.proposals
    }

    fn limiter(limiters: &mut Limiters) -> &mut RateLimiter {
        &mut limiters.blocks
    }

    fn client_limiter(limiters: &mut Limiters) -> &mut RateLimiter {
        &mut limiters.client_blocks
    }

    fn pending(pending: &mut PendingRequests) -> &mut HashMap<OutboundRequestId, Pending<Self>> {
        &mut pending.proposals
    }

    fn valid(_: &BlockQuery) -> bool {
        true
    }

    /// Charged for the most it may return (a proposal per proposer of the slot), not 1: a
    /// 40-byte query may be answered with several large proposals.
    fn cost(_: &BlockQuery) -> f64 {
        MAX_PROPOSALS_PER_RESPONSE as f64
    }

    fn serve(
        context: &ServeContext,
        query: BlockQuery,
    ) -> BoxFuture<'static, Response<ServedBlock>> {
        let recent = Arc::clone(&context.recent);
        let provider = Arc::clone(&context.provider);
        // The lookup and the copies of recent proposals happen in the server task, off the
        // swarm task.
        async move {
            // Recent gossip first: it may not be stored anywhere yet.
            let found = lock(&recent).find(&query);
            if !found.is_empty() {
                let recent = tokio::task::spawn_blocking(move || {
                    found
                        .iter()
                        .map(|proposal| ServedBlock::from_proposal(proposal))
                        .collect()
                })
                .await
                .unwrap_or_default();
                return Response::ok(recent);
            }
            let mut response = from_store(provider.block_proposals(query)).await;
            response.items.truncate(MAX_PROPOSALS_PER_RESPONSE);
            response
        }
        .boxed()
    }

    fn respond(
        channel: ResponseChannel<Response<ServedBlock>>,
        response: Response<ServedBlock>,
    ) -> SwarmCommand {
        SwarmCommand::RespondProposals { channel, response }
    }

    fn check(query: &BlockQuery, blocks: &[ServedBlock]) -> Result<(), &'static str> {
        if blocks.len() > MAX_PROPOSALS_PER_RESPONSE {
            return Err("more block proposals than a query may return");
        }
        for served in blocks {
            if served.proposer_signature.is_none() {
                return Err("a block proposal without its signature");
            }
            let matches = match query {
                BlockQuery::SlotIndex { slot, index } => {
                    served.block.header.slot == slot.0
                        && served.block.header.index_within_checkpoint == *index
                }
                BlockQuery::Archive(archive) => served.archive_root == *archive,
            };
            if !matches {
                return Err("a block proposal that was not asked for");
            }
        }
        Ok(())
    }
}

/// The proposed chain after a block.
pub(crate) struct ChainExchange;

impl Exchange for ChainExchange {
    type Request = ProposedChainRequest;
    type Item = ServedBlock;
    type Context = ProposedChainRequest;
    const NAME: &'static str = "proposed_chain";

    fn behaviour(
        behaviour: &mut Behaviour,
    ) -> &mut request_response::Behaviour<FrameCodec<ProposedChainRequest, ServedBlock>> {
        &mut behaviour.chain
    }

    fn limiter(limiters: &mut Limiters) -> &mut RateLimiter {
        &mut limiters.blocks
    }

    fn client_limiter(limiters: &mut Limiters) -> &mut RateLimiter {
        &mut limiters.client_blocks
    }

    fn pending(pending: &mut PendingRequests) -> &mut HashMap<OutboundRequestId, Pending<Self>> {
        &mut pending.chain
    }

    fn valid(request: &ProposedChainRequest) -> bool {
        block_count_valid(request.max_blocks) && request.after.number.checked_add(1).is_some()
    }

    fn cost(request: &ProposedChainRequest) -> f64 {
        f64::from(request.max_blocks)
    }

    fn serve(
        context: &ServeContext,
        request: ProposedChainRequest,
    ) -> BoxFuture<'static, Response<ServedBlock>> {
        let serving = context
            .provider
            .proposed_chain(request.after, request.max_blocks);
        async move {
            match serving.await {
                Ok(Some(blocks)) => Response::ok(blocks),
                Ok(None) => Response::error(ResponseStatus::UnknownAnchor),
                Err(_) => Response::error(ResponseStatus::ServerError),
            }
        }
        .boxed()
    }

    fn respond(
        channel: ResponseChannel<Response<ServedBlock>>,
        response: Response<ServedBlock>,
    ) -> SwarmCommand {
        SwarmCommand::RespondChain { channel, response }
    }

    fn check(request: &ProposedChainRequest, blocks: &[ServedBlock]) -> Result<(), &'static str> {
        check_consecutive(request.after.number + 1, request.max_blocks, blocks)?;
        match blocks.first() {
            Some(first) if first.block.header.last_archive_root != request.after.archive => {
                Err("the chain does not continue from the requested block")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_proto::{Block, Signature, time::Slot};

    #[test]
    fn response_checks() {
        let tx = |nonce| {
            let mut tx = Tx::default();
            tx.payload.nonce = nonce;
            tx
        };
        let requested: HashSet<B256> = [tx(1).hash(), tx(2).hash()].into_iter().collect();
        assert!(TxsExchange::check(&requested, &[tx(2)]).is_ok());
        assert!(TxsExchange::check(&requested, &[tx(3)]).is_err());
        assert!(TxsExchange::check(&requested, &[tx(1), tx(1)]).is_err());

        let block = |number, slot, index, archive: u8, signed: bool| {
            let mut block = Block::default();
            block.header.block_number = number;
            block.header.slot = slot;
            block.header.index_within_checkpoint = index;
            block.header.last_archive_root = B256::repeat_byte(archive.wrapping_sub(1));
            ServedBlock {
                block,
                archive_root: B256::repeat_byte(archive),
                proposer_signature: signed.then(|| Signature::from_bytes([1; 65])),
                checkpoint: None,
            }
        };
        let request = BlocksByRangeRequest { from: 5, count: 2 };
        let (b5, b6) = (block(5, 1, 0, 5, false), block(6, 1, 1, 6, false));
        assert!(BlocksExchange::check(&request, &[b5.clone(), b6.clone()]).is_ok());
        assert!(BlocksExchange::check(&request, std::slice::from_ref(&b5)).is_ok());
        assert!(BlocksExchange::check(&request, std::slice::from_ref(&b6)).is_err());
        assert!(
            BlocksExchange::check(
                &request,
                &[b5.clone(), b6.clone(), block(7, 1, 2, 7, false)]
            )
            .is_err()
        );

        let query = BlockQuery::SlotIndex {
            slot: Slot(1),
            index: 1,
        };
        let signed = block(6, 1, 1, 6, true);
        assert!(ProposalsExchange::check(&query, std::slice::from_ref(&signed)).is_ok());
        assert!(ProposalsExchange::check(&query, &[b6]).is_err(), "unsigned");
        assert!(ProposalsExchange::check(&query, &[block(5, 1, 0, 5, true)]).is_err());
        assert!(
            ProposalsExchange::check(&BlockQuery::Archive(B256::repeat_byte(6)), &[signed]).is_ok()
        );

        let chain = ProposedChainRequest {
            after: crate::reqresp::ChainPoint {
                number: 4,
                archive: B256::repeat_byte(4),
            },
            max_blocks: 2,
        };
        assert!(ChainExchange::check(&chain, std::slice::from_ref(&b5)).is_ok());
        let mut elsewhere = b5;
        elsewhere.block.header.last_archive_root = B256::repeat_byte(9);
        assert!(ChainExchange::check(&chain, &[elsewhere]).is_err());
    }
}
