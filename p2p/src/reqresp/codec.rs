//! Framing: `u32` big-endian length of the snappy-compressed body, then the body (a prost
//! message). Both lengths are checked against the message's limit before anything is allocated.

use std::{io, marker::PhantomData};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};
use prost::Message;
use tandem_proto::{B256, CheckpointProposal, Signature, Tx, WireError, WireMessage, time::Slot};

use super::{
    BlockQuery, BlocksByRangeRequest, ChainPoint, MAX_BLOCKS_RESPONSE_SIZE, MAX_REQUEST_SIZE,
    MAX_TXS_RESPONSE_SIZE, ProposedChainRequest, Response, ResponseStatus, ServedBlock,
    TxsByHashRequest,
};

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
struct BlockQueryPb {
    /// Set for a query by (slot, index).
    #[prost(message, optional, tag = "1")]
    slot_index: Option<SlotIndexPb>,
    /// Set (32 bytes) for a query by archive root.
    #[prost(bytes = "vec", tag = "2")]
    archive: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SlotIndexPb {
    #[prost(uint64, tag = "1")]
    slot: u64,
    #[prost(uint32, tag = "2")]
    index: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProposedChainRequestPb {
    #[prost(uint64, tag = "1")]
    after_number: u64,
    #[prost(bytes = "vec", tag = "2")]
    after_archive: Vec<u8>,
    #[prost(uint32, tag = "3")]
    max_blocks: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResponsePb {
    #[prost(uint32, tag = "1")]
    status: u32,
    /// Each item in its own encoding.
    #[prost(bytes = "vec", repeated, tag = "2")]
    items: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServedBlockPb {
    /// The block in its wire encoding.
    #[prost(bytes = "vec", tag = "1")]
    block: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    archive_root: Vec<u8>,
    /// Empty when the serving node holds no proposer signature for the block.
    #[prost(bytes = "vec", tag = "3")]
    proposer_signature: Vec<u8>,
    /// The proposed checkpoint the block ends, as a checkpoint proposal in its wire encoding;
    /// empty when none.
    #[prost(bytes = "vec", tag = "4")]
    checkpoint: Vec<u8>,
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

fn hash(message: &'static str, field: &'static str, bytes: &[u8]) -> Result<B256, WireError> {
    B256::try_from(bytes).map_err(|_| WireError::InvalidLength {
        message,
        field,
        expected: 32,
        got: bytes.len(),
    })
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
            .map(|bytes| hash(Self::NAME, "hashes", bytes))
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

impl Frame for BlockQuery {
    const NAME: &'static str = "BlockQuery";
    const MAX_SIZE: usize = MAX_REQUEST_SIZE;

    fn encode(&self) -> Vec<u8> {
        match self {
            Self::SlotIndex { slot, index } => BlockQueryPb {
                slot_index: Some(SlotIndexPb {
                    slot: slot.0,
                    index: *index,
                }),
                archive: Vec::new(),
            },
            Self::Archive(archive) => BlockQueryPb {
                slot_index: None,
                archive: archive.to_vec(),
            },
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let proto = BlockQueryPb::decode(bytes).map_err(|err| malformed(Self::NAME, err))?;
        match (proto.slot_index, proto.archive.is_empty()) {
            (Some(key), true) => Ok(Self::SlotIndex {
                slot: Slot(key.slot),
                index: key.index,
            }),
            (None, false) => Ok(Self::Archive(hash(Self::NAME, "archive", &proto.archive)?)),
            _ => Err(malformed(
                Self::NAME,
                "exactly one of slot_index and archive must be set",
            )),
        }
    }
}

impl Frame for ProposedChainRequest {
    const NAME: &'static str = "ProposedChainRequest";
    const MAX_SIZE: usize = MAX_REQUEST_SIZE;

    fn encode(&self) -> Vec<u8> {
        ProposedChainRequestPb {
            after_number: self.after.number,
            after_archive: self.after.archive.to_vec(),
            max_blocks: self.max_blocks,
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let proto =
            ProposedChainRequestPb::decode(bytes).map_err(|err| malformed(Self::NAME, err))?;
        Ok(Self {
            after: ChainPoint {
                number: proto.after_number,
                archive: hash(Self::NAME, "after_archive", &proto.after_archive)?,
            },
            max_blocks: proto.max_blocks,
        })
    }
}

/// Items a response may carry, with the response's size limit.
pub(crate) trait ResponseItem: Sized + Send + Sync + 'static {
    const RESPONSE_NAME: &'static str;
    const MAX_RESPONSE_SIZE: usize;
    fn encode_item(&self) -> Vec<u8>;
    fn decode_item(bytes: &[u8]) -> Result<Self, WireError>;
}

impl ResponseItem for Tx {
    const RESPONSE_NAME: &'static str = "TxsByHashResponse";
    const MAX_RESPONSE_SIZE: usize = MAX_TXS_RESPONSE_SIZE;

    fn encode_item(&self) -> Vec<u8> {
        self.to_wire_bytes()
    }

    fn decode_item(bytes: &[u8]) -> Result<Self, WireError> {
        Self::from_wire_bytes(bytes)
    }
}

impl ResponseItem for ServedBlock {
    const RESPONSE_NAME: &'static str = "BlocksResponse";
    const MAX_RESPONSE_SIZE: usize = MAX_BLOCKS_RESPONSE_SIZE;

    fn encode_item(&self) -> Vec<u8> {
        ServedBlockPb {
            block: self.block.to_wire_bytes(),
            archive_root: self.archive_root.to_vec(),
            proposer_signature: self
                .proposer_signature
                .map(|signature| signature.as_bytes().to_vec())
                .unwrap_or_default(),
            checkpoint: self
                .checkpoint
                .as_ref()
                .map(WireMessage::to_wire_bytes)
                .unwrap_or_default(),
        }
        .encode_to_vec()
    }

    fn decode_item(bytes: &[u8]) -> Result<Self, WireError> {
        const NAME: &str = "ServedBlock";
        let proto = ServedBlockPb::decode(bytes).map_err(|err| malformed(NAME, err))?;
        let proposer_signature = if proto.proposer_signature.is_empty() {
            None
        } else {
            Some(Signature::from_slice(&proto.proposer_signature).ok_or(
                WireError::InvalidLength {
                    message: NAME,
                    field: "proposer_signature",
                    expected: tandem_proto::SIGNATURE_LENGTH,
                    got: proto.proposer_signature.len(),
                },
            )?)
        };
        let checkpoint = if proto.checkpoint.is_empty() {
            None
        } else {
            Some(CheckpointProposal::from_wire_bytes(&proto.checkpoint)?)
        };
        Ok(Self {
            block: tandem_proto::Block::from_wire_bytes(&proto.block)?,
            archive_root: hash(NAME, "archive_root", &proto.archive_root)?,
            proposer_signature,
            checkpoint,
        })
    }
}

impl<T: ResponseItem> Frame for Response<T> {
    const NAME: &'static str = T::RESPONSE_NAME;
    const MAX_SIZE: usize = T::MAX_RESPONSE_SIZE;

    fn encode(&self) -> Vec<u8> {
        ResponsePb {
            status: self.status.code(),
            items: self.items.iter().map(ResponseItem::encode_item).collect(),
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
            .map(|item| T::decode_item(item))
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
        let size = item.encode_item().len() + 12;
        if used + size > budget {
            break;
        }
        used += size;
        kept.push(item);
    }
    kept
}

pub(crate) async fn read_frame<F: Frame, T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<F> {
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

pub(crate) async fn write_frame<F: Frame, T: AsyncWrite + Unpin + Send>(
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
pub(crate) type BlocksCodec = FrameCodec<BlocksByRangeRequest, ServedBlock>;
pub(crate) type ProposalsCodec = FrameCodec<BlockQuery, ServedBlock>;
pub(crate) type ChainCodec = FrameCodec<ProposedChainRequest, ServedBlock>;

/// The protocol names of one chain.
pub(crate) struct Protocols {
    pub(crate) txs: StreamProtocol,
    pub(crate) blocks: StreamProtocol,
    pub(crate) proposals: StreamProtocol,
    pub(crate) chain: StreamProtocol,
    pub(crate) kad: StreamProtocol,
}

impl Protocols {
    pub(crate) fn new(chain_id: u64) -> Result<Self, String> {
        let protocol = |name: &str| {
            StreamProtocol::try_from_owned(format!("/tandem/{chain_id}/{name}"))
                .map_err(|err| err.to_string())
        };
        Ok(Self {
            txs: protocol("req/txs_by_hash/1")?,
            blocks: protocol("req/blocks_by_range/2")?,
            proposals: protocol("req/block_proposals/1")?,
            chain: protocol("req/proposed_chain/1")?,
            kad: protocol("kad/1")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use tandem_proto::Block;

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
    fn requests_and_served_blocks_round_trip() {
        for query in [
            BlockQuery::SlotIndex {
                slot: Slot(9),
                index: 3,
            },
            BlockQuery::Archive(B256::repeat_byte(4)),
        ] {
            assert_eq!(BlockQuery::decode(&query.encode()), Ok(query));
        }
        assert!(BlockQuery::decode(&BlockQueryPb::default().encode_to_vec()).is_err());
        let chain = ProposedChainRequest {
            after: ChainPoint {
                number: 7,
                archive: B256::repeat_byte(2),
            },
            max_blocks: 5,
        };
        assert_eq!(ProposedChainRequest::decode(&chain.encode()), Ok(chain));

        let mut block = Block::default();
        block.header.block_number = 3;
        let mut checkpoint = CheckpointProposal {
            payload: Default::default(),
            signature: Signature::from_bytes([2; 65]),
            last_block: None,
        };
        checkpoint.payload.archive = B256::repeat_byte(5);
        checkpoint.payload.fee_asset_price_modifier = -7;
        for (proposer_signature, checkpoint) in [
            (None, None),
            (Some(Signature::from_bytes([1; 65])), None),
            (Some(Signature::from_bytes([1; 65])), Some(checkpoint)),
        ] {
            let served = ServedBlock {
                block: block.clone(),
                archive_root: B256::repeat_byte(5),
                proposer_signature,
                checkpoint,
            };
            assert_eq!(ServedBlock::decode_item(&served.encode_item()), Ok(served));
        }
        let bad_signature = ServedBlockPb {
            block: block.to_wire_bytes(),
            archive_root: vec![0; 32],
            proposer_signature: vec![1; 64],
            checkpoint: Vec::new(),
        };
        assert!(matches!(
            ServedBlock::decode_item(&bad_signature.encode_to_vec()),
            Err(WireError::InvalidLength { got: 64, .. })
        ));
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

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            let _ = TxsByHashRequest::decode(&bytes);
            let _ = BlocksByRangeRequest::decode(&bytes);
            let _ = BlockQuery::decode(&bytes);
            let _ = ProposedChainRequest::decode(&bytes);
            let _ = Response::<Tx>::decode(&bytes);
            let _ = Response::<ServedBlock>::decode(&bytes);
            futures::executor::block_on(async {
                let _ = read_frame::<TxsByHashRequest, _>(&mut Cursor::new(bytes.clone())).await;
                let _ = read_frame::<Response<ServedBlock>, _>(&mut Cursor::new(bytes)).await;
            });
        }
    }
}
