//! The swarm side of request/response, written once for every protocol: serving (validity,
//! per-peer budget, the store off the swarm task, capped responses) and asking (peer choice,
//! pending requests, structural checks of the answer, penalties for bad answers). Signature and
//! L1 checks of block answers happen in the handle, off the swarm task.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use futures::{FutureExt, future::BoxFuture};
use libp2p::{
    PeerId,
    request_response::{self, InboundFailure, OutboundRequestId, ResponseChannel},
};
use tandem_proto::{B256, Tx};
use tokio::sync::oneshot;

use super::{Answer, Behaviour, P2pService, SwarmCommand};
use crate::{
    config::P2pConfig,
    error::RequestError,
    metrics,
    recent::RecentProposals,
    reqresp::{
        BlockQuery, BlocksByRangeRequest, ChainProvider, Frame, FrameCodec,
        MAX_PROPOSALS_PER_RESPONSE, ProposedChainRequest, RateLimiter, Response, ResponseItem,
        ResponseStatus, ServedBlock, TxsByHashRequest, block_count_valid, blocks_request_valid,
        cap_response, txs_request_valid,
    },
    scoring::PeerAction,
    validation::lock,
};

/// What serving needs: the store, and the recent gossip p2p keeps itself.
pub(super) struct ServeContext {
    pub(super) provider: Arc<dyn ChainProvider>,
    pub(super) recent: Arc<Mutex<RecentProposals>>,
}

/// One request/response protocol as the swarm actor sees it.
pub(super) trait Exchange: Sized + 'static {
    type Request: Frame;
    type Item: ResponseItem;
    /// What the response is checked against.
    type Context: Send;
    /// Metric label.
    const NAME: &'static str;

    fn behaviour(
        behaviour: &mut Behaviour,
    ) -> &mut request_response::Behaviour<FrameCodec<Self::Request, Self::Item>>;
    fn limiter(limiters: &mut Limiters) -> &mut RateLimiter;
    fn pending(pending: &mut PendingRequests) -> &mut HashMap<OutboundRequestId, Pending<Self>>;
    fn valid(request: &Self::Request) -> bool;
    /// Budget taken from the asking peer's bucket.
    fn cost(request: &Self::Request) -> f64;
    fn serve(
        context: &ServeContext,
        request: Self::Request,
    ) -> BoxFuture<'static, Response<Self::Item>>;
    fn respond(
        channel: ResponseChannel<Response<Self::Item>>,
        response: Response<Self::Item>,
    ) -> SwarmCommand;
    /// Whether `items` is a lawful answer to the request behind `context`.
    fn check(context: &Self::Context, items: &[Self::Item]) -> Result<(), &'static str>;
}

pub(super) struct Pending<E: Exchange> {
    peer: PeerId,
    context: E::Context,
    reply: oneshot::Sender<Answer<E::Item>>,
}

/// Requests this node is waiting on.
#[derive(Default)]
pub(super) struct PendingRequests {
    txs: HashMap<OutboundRequestId, Pending<TxsExchange>>,
    blocks: HashMap<OutboundRequestId, Pending<BlocksExchange>>,
    proposals: HashMap<OutboundRequestId, Pending<ProposalsExchange>>,
    chain: HashMap<OutboundRequestId, Pending<ChainExchange>>,
}

/// Per-peer budgets: gossiped txs, and requests this node serves.
pub(super) struct Limiters {
    pub(super) tx_gossip: RateLimiter,
    txs: RateLimiter,
    blocks: RateLimiter,
}

impl Limiters {
    pub(super) fn new(config: &P2pConfig) -> Self {
        Self {
            tx_gossip: RateLimiter::new(config.tx_gossip_rate_limit),
            txs: RateLimiter::new(config.txs_rate_limit),
            blocks: RateLimiter::new(config.blocks_rate_limit),
        }
    }

    pub(super) fn remove(&mut self, peer: &PeerId) {
        self.tx_gossip.remove(peer);
        self.txs.remove(peer);
        self.blocks.remove(peer);
    }
}

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
pub(super) struct TxsExchange;

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
pub(super) struct BlocksExchange;

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
pub(super) struct ProposalsExchange;

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

    fn pending(pending: &mut PendingRequests) -> &mut HashMap<OutboundRequestId, Pending<Self>> {
        &mut pending.proposals
    }

    fn valid(_: &BlockQuery) -> bool {
        true
    }

    fn cost(_: &BlockQuery) -> f64 {
        1.0
    }

    fn serve(
        context: &ServeContext,
        query: BlockQuery,
    ) -> BoxFuture<'static, Response<ServedBlock>> {
        // Recent gossip first: it may not be stored anywhere yet.
        let recent: Vec<ServedBlock> = lock(&context.recent)
            .find(&query)
            .iter()
            .map(|proposal| ServedBlock::from_proposal(proposal))
            .collect();
        if !recent.is_empty() {
            return async move { Response::ok(recent) }.boxed();
        }
        let stored = from_store(context.provider.block_proposals(query));
        async move {
            let mut response = stored.await;
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
pub(super) struct ChainExchange;

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

impl P2pService {
    pub(super) fn request_txs(
        &mut self,
        peer: Option<PeerId>,
        hashes: Vec<B256>,
        reply: oneshot::Sender<Answer<Tx>>,
    ) {
        let context = hashes.iter().copied().collect();
        self.start_request::<TxsExchange>(peer, TxsByHashRequest { hashes }, context, reply);
    }

    pub(super) fn request_blocks(
        &mut self,
        peer: Option<PeerId>,
        request: BlocksByRangeRequest,
        reply: oneshot::Sender<Answer<ServedBlock>>,
    ) {
        self.start_request::<BlocksExchange>(peer, request, request, reply);
    }

    pub(super) fn request_block_proposals(
        &mut self,
        peer: Option<PeerId>,
        query: BlockQuery,
        reply: oneshot::Sender<Answer<ServedBlock>>,
    ) {
        self.start_request::<ProposalsExchange>(peer, query, query, reply);
    }

    pub(super) fn request_proposed_chain(
        &mut self,
        peer: Option<PeerId>,
        request: ProposedChainRequest,
        reply: oneshot::Sender<Answer<ServedBlock>>,
    ) {
        self.start_request::<ChainExchange>(peer, request, request, reply);
    }

    /// Sends `request` to `peer` (or some connected peer); `reply` gets the checked answer.
    fn start_request<E: Exchange>(
        &mut self,
        peer: Option<PeerId>,
        request: E::Request,
        context: E::Context,
        reply: oneshot::Sender<Answer<E::Item>>,
    ) {
        if !E::valid(&request) {
            let _ = reply.send(Err(RequestError::Invalid(
                "request size outside the protocol's limits",
            )));
            return;
        }
        let Some(peer) = peer.or_else(|| self.pick_peer()) else {
            let _ = reply.send(Err(RequestError::NoPeers));
            return;
        };
        let id = E::behaviour(self.swarm.behaviour_mut()).send_request(&peer, request);
        E::pending(&mut self.pending).insert(
            id,
            Pending {
                peer,
                context,
                reply,
            },
        );
    }

    /// A connected peer, round robin, so requests spread over peers.
    fn pick_peer(&mut self) -> Option<PeerId> {
        let count = self.swarm.connected_peers().count();
        if count == 0 {
            return None;
        }
        self.next_peer = self.next_peer.wrapping_add(1);
        self.swarm
            .connected_peers()
            .nth(self.next_peer % count)
            .copied()
    }

    pub(super) fn on_exchange_event<E: Exchange>(
        &mut self,
        event: request_response::Event<E::Request, Response<E::Item>>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve_request::<E>(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(pending) = E::pending(&mut self.pending).remove(&request_id) {
                        let result = self.check_response::<E>(&pending, response);
                        metrics::request(E::NAME, "outbound", result_label(&result));
                        let _ = pending
                            .reply
                            .send(result.map(|items| (pending.peer, items)));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(pending) = E::pending(&mut self.pending).remove(&request_id) {
                    metrics::request(E::NAME, "outbound", "failed");
                    let _ = pending.reply.send(Err(RequestError::Failed {
                        peer: peer.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                metrics::request(E::NAME, "inbound", "failed");
                // An undecodable or oversized request frame is the sender's fault.
                if let InboundFailure::Io(err) = &error
                    && err.kind() == std::io::ErrorKind::InvalidData
                {
                    tracing::debug!(%peer, protocol = E::NAME, %err, "refused a malformed request");
                    self.penalize(peer, PeerAction::LowToleranceError);
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn serve_request<E: Exchange>(
        &mut self,
        peer: PeerId,
        request: E::Request,
        channel: ResponseChannel<Response<E::Item>>,
    ) {
        let now = self.now();
        let refusal = if !E::valid(&request) {
            Some((
                ResponseStatus::InvalidRequest,
                PeerAction::MidToleranceError,
                "invalid",
            ))
        } else if !E::limiter(&mut self.limiters).allow(peer, E::cost(&request), now) {
            Some((
                ResponseStatus::RateLimited,
                PeerAction::HighToleranceError,
                "rate_limited",
            ))
        } else {
            None
        };
        if let Some((status, action, label)) = refusal {
            metrics::request(E::NAME, "inbound", label);
            self.penalize(peer, action);
            let _ = E::behaviour(self.swarm.behaviour_mut())
                .send_response(channel, Response::error(status));
            return;
        }
        metrics::request(E::NAME, "inbound", "served");
        let context = ServeContext {
            provider: Arc::clone(&self.provider),
            recent: Arc::clone(&self.recent),
        };
        let serving = E::serve(&context, request);
        let respond = self.self_commands.clone();
        // The store may be slow: answer from a (supervised) task, then hand the response back.
        self.servers.spawn(async move {
            let mut response = serving.await;
            response.items = cap_response(response.items);
            let _ = respond.send(E::respond(channel, response)).await;
        });
    }

    fn check_response<E: Exchange>(
        &mut self,
        pending: &Pending<E>,
        response: Response<E::Item>,
    ) -> Result<Vec<E::Item>, RequestError> {
        if response.status != ResponseStatus::Ok {
            return Err(RequestError::Refused {
                peer: pending.peer.to_string(),
                status: response.status,
            });
        }
        if let Err(reason) = E::check(&pending.context, &response.items) {
            self.penalize(pending.peer, PeerAction::MidToleranceError);
            return Err(RequestError::BadResponse {
                peer: pending.peer.to_string(),
                reason,
            });
        }
        Ok(response.items)
    }
}

fn result_label<T>(result: &Result<T, RequestError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(RequestError::Refused { .. }) => "refused",
        Err(RequestError::BadResponse { .. }) => "bad_response",
        Err(_) => "failed",
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
