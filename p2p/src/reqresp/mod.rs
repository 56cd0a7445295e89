//! Request/response: txs by hash (a validator fetching txs a proposal only references), block
//! proposals by (slot, index) or archive (a missed gossip message), the proposed chain above a
//! block (a node that starts late catches up before L1 has it) and blocks by number range.
//!
//! Blocks travel as [`ServedBlock`]s: the block, the archive root after it and, for a block not
//! yet on L1, its proposer's signature. The requester verifies every answer (see
//! [`ChainBlock`]) before returning it, and penalises a peer whose answer does not hold.

mod codec;
mod served;

pub(crate) use codec::{
    BlocksCodec, ChainCodec, Frame, FrameCodec, ProposalsCodec, Protocols, ResponseItem, TxsCodec,
    cap_response,
};
#[cfg(feature = "fuzzing")]
pub(crate) use codec::{read_frame, write_frame};
pub use served::{ChainBlock, ServedBlock};
pub(crate) use served::{SegmentFault, verify_proposals, verify_segment};

use std::{collections::HashMap, time::Duration};

use futures::future::BoxFuture;
use libp2p::PeerId;
use tandem_proto::{B256, Tx, time::Slot, time::Timestamp};

use crate::pool::MAX_PROPOSERS_PER_SLOT;

/// Most tx hashes one request may ask for.
pub const MAX_TXS_PER_REQUEST: usize = 512;
/// Most blocks one range or chain request may ask for.
pub const MAX_BLOCKS_PER_REQUEST: u32 = 32;
/// Most block proposals one answer to a [`BlockQuery`] may carry (one per proposer of an open
/// slot).
pub const MAX_PROPOSALS_PER_RESPONSE: usize = MAX_PROPOSERS_PER_SLOT;
/// Largest txs-by-hash response body (decompressed); the server stops adding txs before it.
pub const MAX_TXS_RESPONSE_SIZE: usize = 4 * 1024 * 1024;
/// Largest block response body (decompressed); the server stops adding blocks before it.
pub const MAX_BLOCKS_RESPONSE_SIZE: usize = 32 * 1024 * 1024;
/// Largest request body.
pub const MAX_REQUEST_SIZE: usize = 64 + MAX_TXS_PER_REQUEST * 40;
/// How long a request may take end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Status of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// The body holds what was found (possibly less than asked).
    Ok,
    /// The request broke a rule (too many items, empty range).
    InvalidRequest,
    /// The peer is over its request budget; try later or elsewhere.
    RateLimited,
    /// The server could not read its store.
    ServerError,
    /// The block a proposed-chain request starts after is not on the server's chain.
    UnknownAnchor,
}

impl ResponseStatus {
    pub(crate) const fn code(self) -> u32 {
        match self {
            Self::Ok => 0,
            Self::InvalidRequest => 1,
            Self::RateLimited => 2,
            Self::ServerError => 3,
            Self::UnknownAnchor => 4,
        }
    }

    pub(crate) const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Ok),
            1 => Some(Self::InvalidRequest),
            2 => Some(Self::RateLimited),
            3 => Some(Self::ServerError),
            4 => Some(Self::UnknownAnchor),
            _ => None,
        }
    }
}

/// Txs by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxsByHashRequest {
    /// Hashes wanted.
    pub hashes: Vec<B256>,
}

/// Blocks `from ..= from + count − 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlocksByRangeRequest {
    /// First block number.
    pub from: u64,
    /// How many.
    pub count: u32,
}

/// Which block proposal(s) to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockQuery {
    /// The block(s) at `index` within the checkpoint of `slot` (one per proposer).
    SlotIndex {
        /// The slot.
        slot: Slot,
        /// Index within its checkpoint.
        index: u32,
    },
    /// The block whose archive root (after it) is this.
    Archive(B256),
}

/// A block on a chain, named by its number and the archive root after it (which identifies it
/// and everything before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainPoint {
    /// Block number.
    pub number: u64,
    /// Archive root after the block.
    pub archive: B256,
}

/// The proposed chain after a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProposedChainRequest {
    /// The block the answer continues from (the requester's tip, or a checkpointed block).
    pub after: ChainPoint,
    /// Most blocks wanted.
    pub max_blocks: u32,
}

/// A response: a status and the items found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<T> {
    /// Outcome.
    pub status: ResponseStatus,
    /// Items (empty unless `status` is `Ok`).
    pub items: Vec<T>,
}

impl<T> Response<T> {
    pub(crate) const fn error(status: ResponseStatus) -> Self {
        Self {
            status,
            items: Vec::new(),
        }
    }

    pub(crate) const fn ok(items: Vec<T>) -> Self {
        Self {
            status: ResponseStatus::Ok,
            items,
        }
    }
}

/// What L1 committed to for one checkpoint: the hash of its block headers and the archive root
/// after its last block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointCommitment {
    /// `CheckpointHeader::block_headers_hash`.
    pub block_headers_hash: B256,
    /// `archives[checkpoint]` on L1.
    pub archive: B256,
}

/// The chain store behind req/resp, both sides: serving peers, and checking their answers
/// against L1. Defined here (the consumer) so p2p depends on neither the archiver nor the tx
/// pool; the node implements it over them.
pub trait ChainProvider: Send + Sync + 'static {
    /// The txs among `hashes` this node has (pool or chain), in any order.
    fn txs_by_hash(&self, hashes: Vec<B256>) -> BoxFuture<'static, Result<Vec<Tx>, ProviderError>>;

    /// Blocks `from ..` (at most `count`), consecutive, stopping at the first missing one, each
    /// with its archive root and, when stored, its proposer signature.
    fn blocks_by_range(
        &self,
        from: u64,
        count: u32,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>>;

    /// Stored block proposals matching `query`, with their proposer signatures (recent gossip
    /// is served by p2p itself; this is the store behind it).
    fn block_proposals(
        &self,
        query: BlockQuery,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>>;

    /// The proposed chain after `after` (at most `max_blocks`, consecutive), each block with
    /// its proposer signature; `None` when `after` is not on this node's chain.
    fn proposed_chain(
        &self,
        after: ChainPoint,
        max_blocks: u32,
    ) -> BoxFuture<'static, Result<Option<Vec<ServedBlock>>, ProviderError>>;

    /// What L1 committed to for checkpoint `number`, if this node has synced it from L1: how
    /// blocks served without a proposer signature are checked.
    fn l1_checkpoint(
        &self,
        number: u64,
    ) -> BoxFuture<'static, Result<Option<CheckpointCommitment>, ProviderError>>;
}

/// The store could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the chain provider could not answer")]
pub struct ProviderError;

/// Token-bucket limits: `burst` items at once, `per_second` refill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size, in items.
    pub burst: f64,
    /// Items refilled per second.
    pub per_second: f64,
}

/// Default limit for txs by hash: 2,048 hashes at once, 512/s.
pub const TXS_RATE_LIMIT: RateLimit = RateLimit {
    burst: 2048.0,
    per_second: 512.0,
};
/// Default limit for block requests: 128 blocks at once, 16/s.
pub const BLOCKS_RATE_LIMIT: RateLimit = RateLimit {
    burst: 128.0,
    per_second: 16.0,
};

/// What this node allows itself when asking one peer for txs: half the protocol's default
/// server budget, so an honest requester stays inside a peer's limit with room to spare.
pub const CLIENT_TXS_RATE_LIMIT: RateLimit = RateLimit {
    burst: TXS_RATE_LIMIT.burst / 2.0,
    per_second: TXS_RATE_LIMIT.per_second / 2.0,
};
/// What this node allows itself when asking one peer for blocks (see [`CLIENT_TXS_RATE_LIMIT`]).
pub const CLIENT_BLOCKS_RATE_LIMIT: RateLimit = RateLimit {
    burst: BLOCKS_RATE_LIMIT.burst / 2.0,
    per_second: BLOCKS_RATE_LIMIT.per_second / 2.0,
};
/// Well-formed requests a server refuses for its rate limit without charging the requester:
/// a peer with a lower limit than ours, or a burst of honest catch-up, is not misbehaving. Only
/// a requester that keeps asking far past its budget loses points.
pub const FREE_REFUSALS: RateLimit = RateLimit {
    burst: 64.0,
    per_second: 2.0,
};
/// Most requests this node has outstanding at one peer, per protocol family, so fetches spread
/// over peers instead of piling onto one.
pub const MAX_OUTSTANDING_PER_PEER: usize = 2;
/// Most buckets one limiter keeps. Buckets outlive disconnects (a reconnect must not refill a
/// budget), so they are bounded: full buckets are dropped first (a full bucket is the same as
/// none), then the fullest.
pub const MAX_RATE_BUCKETS: usize = 4096;

/// Per-peer token buckets on the injected clock. Hand-written rather than a crate (governor):
/// a few lines, and it runs on `proto::time::Clock`, so tests drive it with a `ManualClock`.
/// Buckets are kept after a peer disconnects, so reconnecting does not reset a budget.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    buckets: HashMap<PeerId, (f64, Timestamp)>,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: HashMap::new(),
        }
    }

    fn refilled(limit: RateLimit, (tokens, updated): (f64, Timestamp), now: Timestamp) -> f64 {
        let elapsed = now.millis_since(updated).max(0) as f64 / 1000.0;
        (tokens + elapsed * limit.per_second).min(limit.burst)
    }

    /// Takes `cost` tokens from `peer`'s bucket if it has them.
    pub(crate) fn allow(&mut self, peer: PeerId, cost: f64, now: Timestamp) -> bool {
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= MAX_RATE_BUCKETS {
            self.make_room(now);
        }
        let limit = self.limit;
        let bucket = self.buckets.entry(peer).or_insert((limit.burst, now));
        let tokens = Self::refilled(limit, *bucket, now);
        let allowed = tokens >= cost;
        *bucket = (if allowed { tokens - cost } else { tokens }, now);
        allowed
    }

    /// Drops full buckets; if none is full, the fullest one.
    fn make_room(&mut self, now: Timestamp) {
        let limit = self.limit;
        self.buckets
            .retain(|_, bucket| Self::refilled(limit, *bucket, now) < limit.burst);
        if self.buckets.len() >= MAX_RATE_BUCKETS
            && let Some(fullest) = self
                .buckets
                .iter()
                .max_by(|a, b| {
                    Self::refilled(limit, *a.1, now).total_cmp(&Self::refilled(limit, *b.1, now))
                })
                .map(|(peer, _)| *peer)
        {
            self.buckets.remove(&fullest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

/// Whether a txs request is well formed.
pub(crate) fn txs_request_valid(request: &TxsByHashRequest) -> bool {
    !request.hashes.is_empty() && request.hashes.len() <= MAX_TXS_PER_REQUEST
}

/// Whether a block count is within the protocol's limits.
pub(crate) fn block_count_valid(count: u32) -> bool {
    count > 0 && count <= MAX_BLOCKS_PER_REQUEST
}

/// Whether a blocks request is well formed.
pub(crate) fn blocks_request_valid(request: &BlocksByRangeRequest) -> bool {
    block_count_valid(request.count) && request.from.checked_add(u64::from(request.count)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_refills() {
        let mut limiter = RateLimiter::new(RateLimit {
            burst: 10.0,
            per_second: 5.0,
        });
        let peer = PeerId::random();
        let t0 = Timestamp::from_secs(100);
        assert!(limiter.allow(peer, 10.0, t0));
        assert!(!limiter.allow(peer, 1.0, t0));
        assert!(limiter.allow(peer, 5.0, t0.saturating_add(Duration::from_secs(1))));
        assert!(limiter.allow(PeerId::random(), 10.0, t0));
    }

    #[test]
    fn rate_limiter_keeps_budgets_bounded_and_drops_full_buckets_first() {
        let mut limiter = RateLimiter::new(RateLimit {
            burst: 10.0,
            per_second: 1.0,
        });
        let t0 = Timestamp::from_secs(100);
        let drained = PeerId::random();
        assert!(limiter.allow(drained, 10.0, t0));
        // Many peers that spent a little: the limiter never holds more than its cap, and the
        // drained peer's bucket is the last to go.
        for _ in 0..MAX_RATE_BUCKETS + 10 {
            assert!(limiter.allow(PeerId::random(), 1.0, t0));
        }
        assert!(limiter.len() <= MAX_RATE_BUCKETS);
        assert!(
            !limiter.allow(drained, 1.0, t0),
            "the drained budget survived"
        );
    }

    #[test]
    fn request_rules() {
        assert!(!txs_request_valid(&TxsByHashRequest { hashes: vec![] }));
        assert!(!txs_request_valid(&TxsByHashRequest {
            hashes: vec![B256::ZERO; MAX_TXS_PER_REQUEST + 1]
        }));
        assert!(blocks_request_valid(&BlocksByRangeRequest {
            from: 1,
            count: 32
        }));
        assert!(!blocks_request_valid(&BlocksByRangeRequest {
            from: 1,
            count: 33
        }));
        assert!(!blocks_request_valid(&BlocksByRangeRequest {
            from: u64::MAX,
            count: 1
        }));
        for status in [
            ResponseStatus::Ok,
            ResponseStatus::InvalidRequest,
            ResponseStatus::RateLimited,
            ResponseStatus::ServerError,
            ResponseStatus::UnknownAnchor,
        ] {
            assert_eq!(ResponseStatus::from_code(status.code()), Some(status));
        }
    }
}
