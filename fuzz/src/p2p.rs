//! Gossip snappy frames and req/resp frames.

use std::io;

use tandem_p2p::{
    GossipKind, SnappyError,
    fuzzing::{
        FrameKind, compress_gossip, decode_then_encode_body, decompress_gossip,
        read_then_write_frame,
    },
};
use tandem_proto::{BlockProposal, CheckpointAttestation, CheckpointProposal, Tx};

use crate::{Outcome, alloc, select, wire};

/// A gossip payload on one topic: decompression refuses a declared size over the topic's limit
/// before allocating, never allocates past the limit, agrees with a re-compression; what
/// decompresses then decodes (canonically) as the topic's message.
pub(crate) fn gossip(data: &[u8]) -> Outcome {
    let Some((index, payload)) = select(data, GossipKind::ALL.len()) else {
        return Outcome::Refused;
    };
    let kind = GossipKind::ALL[index];
    let limit = kind.max_message_size();
    let (decompressed, peak) = alloc::measure(|| decompress_gossip(kind, payload));
    match &decompressed {
        Ok(message) => {
            assert!(
                message.len() <= limit,
                "{kind}: decompressed past the limit"
            );
            assert!(
                peak <= limit.max(1024),
                "{kind}: allocated {peak} bytes at once"
            );
            assert_eq!(
                decompress_gossip(kind, &compress_gossip(message)).as_ref(),
                Ok(message),
                "{kind}: re-compressed payload decompresses differently"
            );
        }
        Err(SnappyError::TooLarge { declared, limit }) => {
            assert!(declared > limit, "{kind}: refused a size within the limit");
            assert!(
                peak <= alloc::ERROR_ALLOWANCE,
                "{kind}: allocated for a frame over the limit"
            );
        }
        Err(SnappyError::BadHeader) => assert!(
            peak <= alloc::ERROR_ALLOWANCE,
            "{kind}: allocated for a bad header"
        ),
        Err(SnappyError::Corrupt) => {
            assert!(
                peak <= limit.max(1024),
                "{kind}: allocated {peak} bytes at once"
            );
        }
    }
    let Ok(message) = decompressed else {
        return Outcome::Refused;
    };
    match kind {
        GossipKind::Tx => wire::check::<Tx>(&message),
        GossipKind::BlockProposal => wire::check::<BlockProposal>(&message),
        GossipKind::CheckpointProposal => wire::check::<CheckpointProposal>(&message),
        GossipKind::CheckpointAttestation => wire::check::<CheckpointAttestation>(&message),
    }
}

/// Req/resp: whole frames as read from a stream (a length prefix over the limit is refused
/// before allocating; nothing allocates past the frame's limits; what is read writes back to
/// a frame that reads back the same), or bare bodies (decode, encode, decode is stable).
pub(crate) fn reqresp(data: &[u8]) -> Outcome {
    let Some((index, bytes)) = select(data, FrameKind::ALL.len() * 2) else {
        return Outcome::Refused;
    };
    let kind = FrameKind::ALL[index % FrameKind::ALL.len()];
    if index < FrameKind::ALL.len() {
        frame(kind, bytes)
    } else {
        body(kind, bytes)
    }
}

fn frame(kind: FrameKind, stream: &[u8]) -> Outcome {
    let limit = kind.max_body_size();
    let max_compressed = snap::raw::max_compress_len(limit);
    let (result, peak) = alloc::measure(|| read_then_write_frame(kind, stream));
    let Some((prefix, rest)) = stream.split_first_chunk::<4>() else {
        assert_eq!(
            result.as_ref().map_err(io::Error::kind).err(),
            Some(io::ErrorKind::UnexpectedEof),
            "{kind:?}: a stream shorter than the prefix is not refused as truncated"
        );
        assert!(
            peak <= alloc::ERROR_ALLOWANCE,
            "{kind:?}: allocated before the prefix arrived"
        );
        return Outcome::Refused;
    };
    let compressed_len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
    if compressed_len > max_compressed {
        assert_eq!(
            result.as_ref().map_err(io::Error::kind).err(),
            Some(io::ErrorKind::InvalidData),
            "{kind:?}: a length prefix over the limit is not refused"
        );
        assert!(
            peak <= alloc::ERROR_ALLOWANCE,
            "{kind:?}: allocated for a prefix over the limit"
        );
        return Outcome::Refused;
    }
    // The compressed body buffer, the decompressed body, and the decode of that body; the
    // decode is bounded by the decompressed size, which the frame header declares.
    let declared = rest
        .get(..compressed_len)
        .and_then(|compressed| snap::raw::decompress_len(compressed).ok())
        .filter(|len| *len <= limit)
        .unwrap_or(0);
    let bound = max_compressed
        .max(alloc::decode_bound(declared))
        .max(snap::raw::max_compress_len(declared));
    assert!(
        peak <= bound,
        "{kind:?}: allocated {peak} bytes at once (bound {bound})"
    );
    match &result {
        Ok(written) => {
            assert_eq!(
                read_then_write_frame(kind, written).as_ref().ok(),
                Some(written),
                "{kind:?}: a written frame does not read back the same"
            );
            // The frame's body on its own decodes to the same body.
            let body = snap::raw::Decoder::new()
                .decompress_vec(&written[4..])
                .expect("a written frame decompresses");
            assert_eq!(
                decode_then_encode_body(kind, &body),
                Ok(body),
                "{kind:?}: a written body does not decode to itself"
            );
        }
        Err(err) => assert!(
            matches!(
                err.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ),
            "{kind:?}: unexpected error kind {err}"
        ),
    }
    Outcome::of(&result)
}

fn body(kind: FrameKind, body: &[u8]) -> Outcome {
    let (result, peak) = alloc::measure(|| decode_then_encode_body(kind, body));
    assert!(
        peak <= alloc::decode_bound(body.len()),
        "{kind:?}: allocated {peak} bytes at once for a {}-byte body",
        body.len()
    );
    if let Ok(encoded) = &result {
        assert_eq!(
            decode_then_encode_body(kind, encoded).as_ref(),
            Ok(encoded),
            "{kind:?}: an encoded body does not decode to itself"
        );
    }
    Outcome::of(&result)
}
