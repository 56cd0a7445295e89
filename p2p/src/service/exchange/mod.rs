//! The swarm side of request/response, written once for every protocol: serving (validity,
//! per-peer budget, the store off the swarm task, capped responses) and asking (peer choice,
//! pending requests, structural checks of the answer, penalties for bad answers). Signature and
//! L1 checks of block answers happen in the handle, off the swarm task.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
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
        BlockQuery, BlocksByRangeRequest, ChainProvider, Frame, FrameCodec, ProposedChainRequest,
        RateLimiter, Response, ResponseItem, ResponseStatus, ServedBlock, TxsByHashRequest,
        cap_response,
    },
    scoring::PeerAction,
};

mod protocols;

pub(super) use protocols::{BlocksExchange, ChainExchange, ProposalsExchange, TxsExchange};

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
