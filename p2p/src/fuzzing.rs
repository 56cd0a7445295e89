//! Entry points for the fuzz targets (`fuzz/`), behind the `fuzzing` feature: the gossip snappy
//! frames and the req/resp frames are decoded by crate-private code, and the public surface
//! stays narrow without the feature.

use std::io;

use futures::io::Cursor;
use tandem_proto::{Tx, WireError};

use crate::{
    reqresp::{
        BlockQuery, BlocksByRangeRequest, Frame, ProposedChainRequest, Response, ServedBlock,
        TxsByHashRequest, read_frame, write_frame,
    },
    snappy::{self, SnappyError},
    topics::GossipKind,
};

/// Decompresses a gossip payload received on `kind`'s topic, as validation does.
pub fn decompress_gossip(kind: GossipKind, data: &[u8]) -> Result<Vec<u8>, SnappyError> {
    snappy::decompress(kind, data)
}

/// Compresses a gossip payload, as publishing does.
pub fn compress_gossip(data: &[u8]) -> Vec<u8> {
    snappy::compress(data)
}

/// The req/resp frame bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `TxsByHashRequest`.
    TxsByHashRequest,
    /// `BlocksByRangeRequest`.
    BlocksByRangeRequest,
    /// `BlockQuery`.
    BlockQuery,
    /// `ProposedChainRequest`.
    ProposedChainRequest,
    /// A response carrying txs.
    TxsResponse,
    /// A response carrying served blocks.
    BlocksResponse,
}

impl FrameKind {
    /// Every kind.
    pub const ALL: [Self; 6] = [
        Self::TxsByHashRequest,
        Self::BlocksByRangeRequest,
        Self::BlockQuery,
        Self::ProposedChainRequest,
        Self::TxsResponse,
        Self::BlocksResponse,
    ];

    /// Largest decompressed body accepted.
    pub const fn max_body_size(self) -> usize {
        match self {
            Self::TxsByHashRequest => TxsByHashRequest::MAX_SIZE,
            Self::BlocksByRangeRequest => BlocksByRangeRequest::MAX_SIZE,
            Self::BlockQuery => BlockQuery::MAX_SIZE,
            Self::ProposedChainRequest => ProposedChainRequest::MAX_SIZE,
            Self::TxsResponse => Response::<Tx>::MAX_SIZE,
            Self::BlocksResponse => Response::<ServedBlock>::MAX_SIZE,
        }
    }
}

fn body_round_trip<F: Frame>(body: &[u8]) -> Result<Vec<u8>, WireError> {
    Ok(F::decode(body)?.encode())
}

/// Decodes a frame body of `kind` and encodes the value again.
pub fn decode_then_encode_body(kind: FrameKind, body: &[u8]) -> Result<Vec<u8>, WireError> {
    match kind {
        FrameKind::TxsByHashRequest => body_round_trip::<TxsByHashRequest>(body),
        FrameKind::BlocksByRangeRequest => body_round_trip::<BlocksByRangeRequest>(body),
        FrameKind::BlockQuery => body_round_trip::<BlockQuery>(body),
        FrameKind::ProposedChainRequest => body_round_trip::<ProposedChainRequest>(body),
        FrameKind::TxsResponse => body_round_trip::<Response<Tx>>(body),
        FrameKind::BlocksResponse => body_round_trip::<Response<ServedBlock>>(body),
    }
}

fn frame_round_trip<F: Frame>(stream: &[u8]) -> io::Result<Vec<u8>> {
    futures::executor::block_on(async {
        let frame: F = read_frame(&mut Cursor::new(stream)).await?;
        let mut out = Cursor::new(Vec::new());
        write_frame(&mut out, &frame).await?;
        Ok(out.into_inner())
    })
}

/// Reads one length-prefixed snappy frame of `kind` from `stream` as from a peer's stream, and
/// writes the decoded value back as a frame.
pub fn read_then_write_frame(kind: FrameKind, stream: &[u8]) -> io::Result<Vec<u8>> {
    match kind {
        FrameKind::TxsByHashRequest => frame_round_trip::<TxsByHashRequest>(stream),
        FrameKind::BlocksByRangeRequest => frame_round_trip::<BlocksByRangeRequest>(stream),
        FrameKind::BlockQuery => frame_round_trip::<BlockQuery>(stream),
        FrameKind::ProposedChainRequest => frame_round_trip::<ProposedChainRequest>(stream),
        FrameKind::TxsResponse => frame_round_trip::<Response<Tx>>(stream),
        FrameKind::BlocksResponse => frame_round_trip::<Response<ServedBlock>>(stream),
    }
}

/// A req/resp frame value, for making seeds with the crate's own encoders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameValue {
    /// A txs-by-hash request.
    TxsByHashRequest(TxsByHashRequest),
    /// A blocks-by-range request.
    BlocksByRangeRequest(BlocksByRangeRequest),
    /// A block proposal query.
    BlockQuery(BlockQuery),
    /// A proposed-chain request.
    ProposedChainRequest(ProposedChainRequest),
    /// A response carrying txs.
    TxsResponse(Response<Tx>),
    /// A response carrying served blocks.
    BlocksResponse(Response<ServedBlock>),
}

impl FrameValue {
    /// The kind of frame.
    pub const fn kind(&self) -> FrameKind {
        match self {
            Self::TxsByHashRequest(_) => FrameKind::TxsByHashRequest,
            Self::BlocksByRangeRequest(_) => FrameKind::BlocksByRangeRequest,
            Self::BlockQuery(_) => FrameKind::BlockQuery,
            Self::ProposedChainRequest(_) => FrameKind::ProposedChainRequest,
            Self::TxsResponse(_) => FrameKind::TxsResponse,
            Self::BlocksResponse(_) => FrameKind::BlocksResponse,
        }
    }

    /// The frame body, as [`decode_then_encode_body`] reads it.
    pub fn encode_body(&self) -> Vec<u8> {
        match self {
            Self::TxsByHashRequest(value) => value.encode(),
            Self::BlocksByRangeRequest(value) => value.encode(),
            Self::BlockQuery(value) => value.encode(),
            Self::ProposedChainRequest(value) => value.encode(),
            Self::TxsResponse(value) => value.encode(),
            Self::BlocksResponse(value) => value.encode(),
        }
    }

    /// The whole frame as written to a stream, as [`read_then_write_frame`] reads it.
    pub fn encode_frame(&self) -> io::Result<Vec<u8>> {
        fn framed<F: Frame>(value: &F) -> io::Result<Vec<u8>> {
            futures::executor::block_on(async {
                let mut out = Cursor::new(Vec::new());
                write_frame(&mut out, value).await?;
                Ok(out.into_inner())
            })
        }
        match self {
            Self::TxsByHashRequest(value) => framed(value),
            Self::BlocksByRangeRequest(value) => framed(value),
            Self::BlockQuery(value) => framed(value),
            Self::ProposedChainRequest(value) => framed(value),
            Self::TxsResponse(value) => framed(value),
            Self::BlocksResponse(value) => framed(value),
        }
    }
}
