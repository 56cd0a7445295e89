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
use tandem_proto::{B256, Tx, time::Timestamp};
use tokio::sync::oneshot;

use super::{Answer, Behaviour, P2pService, SwarmCommand};
use crate::{
    config::P2pConfig,
    error::RequestError,
    metrics,
    recent::RecentProposals,
    reqresp::{
        BlockQuery, BlocksByRangeRequest, CLIENT_BLOCKS_RATE_LIMIT, CLIENT_TXS_RATE_LIMIT,
        ChainProvider, FREE_REFUSALS, Frame, FrameCodec, MAX_OUTSTANDING_PER_PEER,
        ProposedChainRequest, RateLimiter, Response, ResponseItem, ResponseStatus, ServedBlock,
        TxsByHashRequest, cap_response,
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
    /// This node's own budget for asking one peer (below any honest server's).
    fn client_limiter(limiters: &mut Limiters) -> &mut RateLimiter;
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

impl PendingRequests {
    /// Requests outstanding at `peer` (all protocols).
    fn outstanding(&self, peer: PeerId) -> usize {
        let at = |peers: &mut dyn Iterator<Item = PeerId>| peers.filter(|p| *p == peer).count();
        at(&mut self.txs.values().map(|pending| pending.peer))
            + at(&mut self.blocks.values().map(|pending| pending.peer))
            + at(&mut self.proposals.values().map(|pending| pending.peer))
            + at(&mut self.chain.values().map(|pending| pending.peer))
    }
}

/// Per-peer budgets: gossiped txs, requests this node serves, what this node asks of each
/// peer, and refusals a requester gets for free. All outlive disconnects (see
/// [`RateLimiter`]), so reconnecting does not refill a budget.
pub(super) struct Limiters {
    pub(super) tx_gossip: RateLimiter,
    txs: RateLimiter,
    blocks: RateLimiter,
    client_txs: RateLimiter,
    client_blocks: RateLimiter,
    free_refusals: RateLimiter,
}

impl Limiters {
    pub(super) fn new(config: &P2pConfig) -> Self {
        Self {
            tx_gossip: RateLimiter::new(config.tx_gossip_rate_limit),
            txs: RateLimiter::new(config.txs_rate_limit),
            blocks: RateLimiter::new(config.blocks_rate_limit),
            client_txs: RateLimiter::new(CLIENT_TXS_RATE_LIMIT),
            client_blocks: RateLimiter::new(CLIENT_BLOCKS_RATE_LIMIT),
            free_refusals: RateLimiter::new(FREE_REFUSALS),
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
        // The chosen peer if it has room for one more request from this node, else the next
        // one that has: requests spread over peers and stay inside every peer's budget.
        let now = self.now();
        let cost = E::cost(&request);
        let chosen = match peer {
            Some(peer) if self.may_ask::<E>(peer, cost, now) => Some(peer),
            _ => self.pick_peer::<E>(cost, now),
        };
        let Some(peer) = chosen else {
            let error = if self.swarm.connected_peers().next().is_none() {
                RequestError::NoPeers
            } else {
                RequestError::Throttled
            };
            let _ = reply.send(Err(error));
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

    /// Whether this node may send `peer` one more request of `cost` (and takes the budget).
    fn may_ask<E: Exchange>(&mut self, peer: PeerId, cost: f64, now: Timestamp) -> bool {
        self.swarm.is_connected(&peer)
            && self.pending.outstanding(peer) < MAX_OUTSTANDING_PER_PEER
            && E::client_limiter(&mut self.limiters).allow(peer, cost, now)
    }

    /// A connected peer with room for the request, round robin from the last one asked, so
    /// requests spread over peers.
    fn pick_peer<E: Exchange>(&mut self, cost: f64, now: Timestamp) -> Option<PeerId> {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        if peers.is_empty() {
            return None;
        }
        self.next_peer = self.next_peer.wrapping_add(1);
        let start = self.next_peer % peers.len();
        let mut order = peers[start..].iter().chain(&peers[..start]);
        order
            .find(|peer| self.may_ask::<E>(**peer, cost, now))
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
                Some(PeerAction::MidToleranceError),
                "invalid",
            ))
        } else if !E::limiter(&mut self.limiters).allow(peer, E::cost(&request), now) {
            // A well-formed request over budget is refused; it costs the requester points only
            // once it has used up its free refusals (it keeps asking far past its budget).
            let free = self.limiters.free_refusals.allow(peer, 1.0, now);
            Some((
                ResponseStatus::RateLimited,
                (!free).then_some(PeerAction::HighToleranceError),
                "rate_limited",
            ))
        } else {
            None
        };
        if let Some((status, action, label)) = refusal {
            metrics::request(E::NAME, "inbound", label);
            if let Some(action) = action {
                self.penalize(peer, action);
            }
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
            // Encoding every item to cap the response is CPU work: off the async workers.
            let items = std::mem::take(&mut response.items);
            response.items = tokio::task::spawn_blocking(move || cap_response(items))
                .await
                .unwrap_or_default();
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
