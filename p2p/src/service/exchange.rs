//! The swarm side of request/response, written once for both protocols: serving (validity,
//! per-peer budget, the provider off the swarm task, capped responses) and asking (peer choice,
//! pending requests, response checks, penalties for bad answers).

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use libp2p::{
    PeerId,
    request_response::{self, InboundFailure, OutboundRequestId, ResponseChannel},
};
use tandem_proto::{B256, Block, Tx};
use tokio::sync::oneshot;

use super::{Behaviour, P2pService, SwarmCommand};
use crate::{
    error::RequestError,
    metrics,
    reqresp::{
        BlocksByRangeRequest, ChainProvider, Frame, FrameCodec, ProviderError, RateLimiter,
        Response, ResponseItem, ResponseStatus, TxsByHashRequest, blocks_request_valid,
        cap_response, txs_request_valid,
    },
    scoring::PeerAction,
};

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
        provider: &dyn ChainProvider,
        request: Self::Request,
    ) -> BoxFuture<'static, Result<Vec<Self::Item>, ProviderError>>;
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
    reply: oneshot::Sender<Result<Vec<E::Item>, RequestError>>,
}

/// Requests this node is waiting on.
#[derive(Default)]
pub(super) struct PendingRequests {
    txs: HashMap<OutboundRequestId, Pending<TxsExchange>>,
    blocks: HashMap<OutboundRequestId, Pending<BlocksExchange>>,
}

/// Per-peer budgets for requests this node serves.
pub(super) struct Limiters {
    pub(super) txs: RateLimiter,
    pub(super) blocks: RateLimiter,
}

impl Limiters {
    pub(super) fn remove(&mut self, peer: &PeerId) {
        self.txs.remove(peer);
        self.blocks.remove(peer);
    }
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
        provider: &dyn ChainProvider,
        request: TxsByHashRequest,
    ) -> BoxFuture<'static, Result<Vec<Tx>, ProviderError>> {
        provider.txs_by_hash(request.hashes)
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

/// Blocks by number range.
pub(super) struct BlocksExchange;

impl Exchange for BlocksExchange {
    type Request = BlocksByRangeRequest;
    type Item = Block;
    type Context = BlocksByRangeRequest;
    const NAME: &'static str = "blocks_by_range";

    fn behaviour(
        behaviour: &mut Behaviour,
    ) -> &mut request_response::Behaviour<FrameCodec<BlocksByRangeRequest, Block>> {
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
        provider: &dyn ChainProvider,
        request: BlocksByRangeRequest,
    ) -> BoxFuture<'static, Result<Vec<Block>, ProviderError>> {
        provider.blocks_by_range(request.from, request.count)
    }

    fn respond(
        channel: ResponseChannel<Response<Block>>,
        response: Response<Block>,
    ) -> SwarmCommand {
        SwarmCommand::RespondBlocks { channel, response }
    }

    fn check(request: &BlocksByRangeRequest, blocks: &[Block]) -> Result<(), &'static str> {
        if blocks.len() > request.count as usize {
            return Err("more blocks than requested");
        }
        let consecutive = blocks
            .iter()
            .zip(request.from..)
            .all(|(block, number)| block.header.block_number == number);
        if consecutive {
            Ok(())
        } else {
            Err("blocks not consecutive from the requested start")
        }
    }
}

impl P2pService {
    /// Sends `request` to `peer` (or some connected peer); `reply` gets the checked answer.
    pub(super) fn start_request<E: Exchange>(
        &mut self,
        peer: Option<PeerId>,
        request: E::Request,
        context: E::Context,
        reply: oneshot::Sender<Result<Vec<E::Item>, RequestError>>,
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
                        let _ = pending.reply.send(result);
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
        let serving = E::serve(self.provider.as_ref(), request);
        let respond = self.self_commands.clone();
        // The store may be slow: answer from a task, then hand the response back to the swarm.
        tokio::spawn(async move {
            let response = match serving.await {
                Ok(items) => Response {
                    status: ResponseStatus::Ok,
                    items: cap_response(items),
                },
                Err(_) => Response::error(ResponseStatus::ServerError),
            };
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

        let block = |number| {
            let mut block = Block::default();
            block.header.block_number = number;
            block
        };
        let request = BlocksByRangeRequest { from: 5, count: 2 };
        assert!(BlocksExchange::check(&request, &[block(5), block(6)]).is_ok());
        assert!(BlocksExchange::check(&request, &[block(5)]).is_ok());
        assert!(BlocksExchange::check(&request, &[block(6)]).is_err());
        assert!(BlocksExchange::check(&request, &[block(5), block(6), block(7)]).is_err());
    }
}
