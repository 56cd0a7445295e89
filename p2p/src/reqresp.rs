//! Request/response: txs by hash (a validator fetching txs a proposal only references) and
//! blocks by number range (a node catching up on missed proposals).
//!
//! Framing: `u32` big-endian length of the snappy-compressed body, then the body (a prost
//! message). Both lengths are checked against the message's limit before anything is allocated.

use std::{collections::HashMap, io, marker::PhantomData, time::Duration};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, future::BoxFuture};
use libp2p::{PeerId, StreamProtocol, request_response};
use prost::Message;
use tandem_proto::{B256, Block, Tx, WireError, WireMessage, time::Timestamp};

/// Most tx hashes one request may ask for.
pub const MAX_TXS_PER_REQUEST: usize = 512;
/// Most blocks one request may ask for.
pub const MAX_BLOCKS_PER_REQUEST: u32 = 32;
/// Largest txs-by-hash response body (decompressed); the server stops adding txs before it.
pub const MAX_TXS_RESPONSE_SIZE: usize = 4 * 1024 * 1024;
/// Largest blocks-by-range response body (decompressed); the server stops adding blocks before it.
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
}

impl ResponseStatus {
    const fn code(self) -> u32 {
        match self {
            Self::Ok => 0,
            Self::InvalidRequest => 1,
            Self::RateLimited => 2,
            Self::ServerError => 3,
        }
    }

    const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Ok),
            1 => Some(Self::InvalidRequest),
            2 => Some(Self::RateLimited),
            3 => Some(Self::ServerError),
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
}

#[derive(Clone, PartialEq, prost::Message)]
struct TxsByHashRequestPb {
    #[prost(bytes = "vec", repeated, tag = "1")]
    hashes: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BlocksByRangeRequestPb {
    #[prost(uint64, tag = "1")]
    from: u64,
    #[prost(uint32, tag = "2")]
    count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResponsePb {
    #[prost(uint32, tag = "1")]
    status: u32,
    /// Each item in its own wire encoding (a `Tx` or a `Block`).
    #[prost(bytes = "vec", repeated, tag = "2")]
    items: Vec<Vec<u8>>,
}

/// A request or response body with a size limit.
pub(crate) trait Frame: Sized + Send + Sync + 'static {
    const NAME: &'static str;
    const MAX_SIZE: usize;
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self, WireError>;
}

fn malformed(message: &'static str, err: impl std::fmt::Display) -> WireError {
    WireError::Malformed {
        message,
        reason: err.to_string(),
    }
}

impl Frame for TxsByHashRequest {
    const NAME: &'static str = "TxsByHashRequest";
    const MAX_SIZE: usize = MAX_REQUEST_SIZE;

    fn encode(&self) -> Vec<u8> {
        TxsByHashRequestPb {
            hashes: self.hashes.iter().map(|hash| hash.to_vec()).collect(),
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let proto = TxsByHashRequestPb::decode(bytes).map_err(|err| malformed(Self::NAME, err))?;
        let hashes = proto
            .hashes
            .iter()
            .map(|hash| {
                B256::try_from(hash.as_slice()).map_err(|_| WireError::InvalidLength {
                    message: Self::NAME,
                    field: "hashes",
                    expected: 32,
                    got: hash.len(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { hashes })
    }
}

impl Frame for BlocksByRangeRequest {
    const NAME: &'static str = "BlocksByRangeRequest";
    const MAX_SIZE: usize = MAX_REQUEST_SIZE;

    fn encode(&self) -> Vec<u8> {
        BlocksByRangeRequestPb {
            from: self.from,
            count: self.count,
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let proto =
            BlocksByRangeRequestPb::decode(bytes).map_err(|err| malformed(Self::NAME, err))?;
        Ok(Self {
            from: proto.from,
            count: proto.count,
        })
    }
}

/// Items a response may carry, with the response's size limit.
pub(crate) trait ResponseItem: WireMessage + Send + Sync + 'static {
    const RESPONSE_NAME: &'static str;
    const MAX_RESPONSE_SIZE: usize;
}

impl ResponseItem for Tx {
    const RESPONSE_NAME: &'static str = "TxsByHashResponse";
    const MAX_RESPONSE_SIZE: usize = MAX_TXS_RESPONSE_SIZE;
}

impl ResponseItem for Block {
    const RESPONSE_NAME: &'static str = "BlocksByRangeResponse";
    const MAX_RESPONSE_SIZE: usize = MAX_BLOCKS_RESPONSE_SIZE;
}

impl<T: ResponseItem> Frame for Response<T> {
    const NAME: &'static str = T::RESPONSE_NAME;
    const MAX_SIZE: usize = T::MAX_RESPONSE_SIZE;

    fn encode(&self) -> Vec<u8> {
        ResponsePb {
            status: self.status.code(),
            items: self.items.iter().map(WireMessage::to_wire_bytes).collect(),
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let proto = ResponsePb::decode(bytes).map_err(|err| malformed(Self::NAME, err))?;
        let status = ResponseStatus::from_code(proto.status)
            .ok_or_else(|| malformed(Self::NAME, format!("unknown status {}", proto.status)))?;
        let items = proto
            .items
            .iter()
            .map(|item| T::from_wire_bytes(item))
            .collect::<Result<_, _>>()?;
        Ok(Self { status, items })
    }
}

/// Keeps `items` while their encoded total stays within `T::MAX_RESPONSE_SIZE` (with room for
/// the envelope), so an honest response never exceeds what the client accepts.
pub(crate) fn cap_response<T: ResponseItem>(items: Vec<T>) -> Vec<T> {
    let budget = T::MAX_RESPONSE_SIZE.saturating_sub(64);
    let mut used = 0usize;
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        // Field tag + length varint + body.
        let size = item.to_wire_bytes().len() + 12;
        if used + size > budget {
            break;
        }
        used += size;
        kept.push(item);
    }
    kept
}

async fn read_frame<F: Frame, T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<F> {
    let invalid = |reason: String| io::Error::new(io::ErrorKind::InvalidData, reason);
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let compressed_len = u32::from_be_bytes(prefix) as usize;
    if compressed_len > snap::raw::max_compress_len(F::MAX_SIZE) {
        return Err(invalid(format!(
            "{}: frame of {compressed_len} bytes exceeds the limit",
            F::NAME
        )));
    }
    let mut compressed = vec![0u8; compressed_len];
    io.read_exact(&mut compressed).await?;
    let len = snap::raw::decompress_len(&compressed)
        .map_err(|err| invalid(format!("{}: bad snappy header: {err}", F::NAME)))?;
    if len > F::MAX_SIZE {
        return Err(invalid(format!(
            "{}: decompresses to {len} bytes, limit {}",
            F::NAME,
            F::MAX_SIZE
        )));
    }
    let body = snap::raw::Decoder::new()
        .decompress_vec(&compressed)
        .map_err(|err| invalid(format!("{}: bad snappy data: {err}", F::NAME)))?;
    F::decode(&body).map_err(|err| invalid(err.to_string()))
}

async fn write_frame<F: Frame, T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    frame: &F,
) -> io::Result<()> {
    let body = frame.encode();
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&body)
        .map_err(io::Error::other)?;
    let len = u32::try_from(compressed.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&compressed).await?;
    io.close().await
}

/// A request/response codec for one request type and one response item type.
pub(crate) struct FrameCodec<Req, Item> {
    _types: PhantomData<fn() -> (Req, Item)>,
}

impl<Req, Item> Clone for FrameCodec<Req, Item> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<Req, Item> Default for FrameCodec<Req, Item> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<Req: Frame, Item: ResponseItem> request_response::Codec for FrameCodec<Req, Item> {
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Response<Item>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response<Item>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Req,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response<Item>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response).await
    }
}

pub(crate) type TxsCodec = FrameCodec<TxsByHashRequest, Tx>;
pub(crate) type BlocksCodec = FrameCodec<BlocksByRangeRequest, Block>;

/// The protocol names of one chain.
pub(crate) fn protocols(chain_id: u64) -> Result<(StreamProtocol, StreamProtocol), String> {
    let txs = StreamProtocol::try_from_owned(format!("/tandem/{chain_id}/req/txs_by_hash/1"))
        .map_err(|err| err.to_string())?;
    let blocks =
        StreamProtocol::try_from_owned(format!("/tandem/{chain_id}/req/blocks_by_range/1"))
            .map_err(|err| err.to_string())?;
    Ok((txs, blocks))
}

/// The store behind the server side. Defined here (the consumer) so p2p does not depend on the
/// archiver or the tx pool.
pub trait ChainProvider: Send + Sync + 'static {
    /// The txs among `hashes` this node has (pool or chain), in any order.
    fn txs_by_hash(&self, hashes: Vec<B256>) -> BoxFuture<'static, Result<Vec<Tx>, ProviderError>>;
    /// Blocks `from ..` (at most `count`), consecutive, stopping at the first missing one.
    fn blocks_by_range(
        &self,
        from: u64,
        count: u32,
    ) -> BoxFuture<'static, Result<Vec<Block>, ProviderError>>;
}

/// The store could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the chain provider could not answer")]
pub struct ProviderError;

/// Token-bucket limits for one protocol: `burst` items at once, `per_second` refill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size, in requested items.
    pub burst: f64,
    /// Items refilled per second.
    pub per_second: f64,
}

/// Default limit for txs by hash: 2,048 hashes at once, 512/s.
pub const TXS_RATE_LIMIT: RateLimit = RateLimit {
    burst: 2048.0,
    per_second: 512.0,
};
/// Default limit for blocks by range: 128 blocks at once, 16/s.
pub const BLOCKS_RATE_LIMIT: RateLimit = RateLimit {
    burst: 128.0,
    per_second: 16.0,
};

/// Per-peer token buckets for one protocol.
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

    /// Takes `cost` tokens from `peer`'s bucket if it has them.
    pub(crate) fn allow(&mut self, peer: PeerId, cost: f64, now: Timestamp) -> bool {
        let limit = self.limit;
        let (tokens, updated) = self.buckets.entry(peer).or_insert((limit.burst, now));
        let elapsed = now.millis_since(*updated).max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * limit.per_second).min(limit.burst);
        *updated = now;
        if *tokens >= cost {
            *tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Forgets a disconnected peer.
    pub(crate) fn remove(&mut self, peer: &PeerId) {
        self.buckets.remove(peer);
    }
}

/// Whether a txs request is well formed.
pub(crate) fn txs_request_valid(request: &TxsByHashRequest) -> bool {
    !request.hashes.is_empty() && request.hashes.len() <= MAX_TXS_PER_REQUEST
}

/// Whether a blocks request is well formed.
pub(crate) fn blocks_request_valid(request: &BlocksByRangeRequest) -> bool {
    request.count > 0
        && request.count <= MAX_BLOCKS_PER_REQUEST
        && request.from.checked_add(u64::from(request.count)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[test]
    fn frames_round_trip_and_refuse_oversize() {
        futures::executor::block_on(async {
            let request = TxsByHashRequest {
                hashes: vec![B256::repeat_byte(1), B256::repeat_byte(2)],
            };
            let mut buffer = Cursor::new(Vec::new());
            write_frame(&mut buffer, &request).await.unwrap();
            let mut reader = Cursor::new(buffer.into_inner());
            let decoded: TxsByHashRequest = read_frame(&mut reader).await.unwrap();
            assert_eq!(decoded, request);

            // A length prefix beyond the limit is refused before reading the body.
            let mut huge = Cursor::new(u32::MAX.to_be_bytes().to_vec());
            let err = read_frame::<TxsByHashRequest, _>(&mut huge)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);

            // A body that decompresses past the limit is refused.
            let bomb = snap::raw::Encoder::new()
                .compress_vec(&vec![0u8; MAX_REQUEST_SIZE + 1])
                .unwrap();
            let mut framed = (bomb.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&bomb);
            let err = read_frame::<TxsByHashRequest, _>(&mut Cursor::new(framed))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("limit"), "{err}");
        });
    }

    #[test]
    fn bad_hash_length_and_status_are_refused() {
        let proto = TxsByHashRequestPb {
            hashes: vec![vec![0; 31]],
        };
        assert!(matches!(
            TxsByHashRequest::decode(&proto.encode_to_vec()),
            Err(WireError::InvalidLength { got: 31, .. })
        ));
        let response = ResponsePb {
            status: 9,
            items: Vec::new(),
        };
        assert!(Response::<Tx>::decode(&response.encode_to_vec()).is_err());
    }

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

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            let _ = TxsByHashRequest::decode(&bytes);
            let _ = BlocksByRangeRequest::decode(&bytes);
            let _ = Response::<Tx>::decode(&bytes);
            let _ = Response::<Block>::decode(&bytes);
            futures::executor::block_on(async {
                let _ = read_frame::<TxsByHashRequest, _>(&mut Cursor::new(bytes.clone())).await;
                let _ = read_frame::<Response<Block>, _>(&mut Cursor::new(bytes)).await;
            });
        }
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
    }
}
