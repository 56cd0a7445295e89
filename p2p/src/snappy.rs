//! Snappy on gossip payloads. Compression happens where a message is published (off the swarm
//! task); decompression happens in validation, where the forwarding peer is known, so a bad
//! frame or a decompression bomb costs that peer points like any other undecodable message.
//! Message ids are computed over the decompressed bytes (`service::build`), so a re-compressed
//! copy is the same message.

use crate::topics::GossipKind;

/// Why a gossip payload did not decompress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnappyError {
    /// The frame's header is not snappy.
    #[error("bad snappy header")]
    BadHeader,
    /// The frame declares more bytes than its topic allows: refused before allocating.
    #[error("declares {declared} bytes decompressed, the topic allows {limit}")]
    TooLarge {
        /// Declared decompressed size.
        declared: usize,
        /// The topic's limit.
        limit: usize,
    },
    /// The body is corrupt.
    #[error("corrupt snappy data")]
    Corrupt,
}

/// Decompresses a payload received on `kind`'s topic, refusing anything whose declared size
/// exceeds the topic's limit before allocating for it.
pub(crate) fn decompress(kind: GossipKind, data: &[u8]) -> Result<Vec<u8>, SnappyError> {
    let declared = snap::raw::decompress_len(data).map_err(|_| SnappyError::BadHeader)?;
    let limit = kind.max_message_size();
    if declared > limit {
        return Err(SnappyError::TooLarge { declared, limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|_| SnappyError::Corrupt)
}

/// Compresses a payload for publishing.
pub(crate) fn compress(data: &[u8]) -> Vec<u8> {
    // `compress_vec` only fails for inputs beyond snappy's 4 GiB frame limit; gossip messages
    // are capped far below it.
    snap::raw::Encoder::new()
        .compress_vec(data)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn decompress_never_panics(kind in 0usize..4, bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            let _ = decompress(GossipKind::ALL[kind], &bytes);
        }
    }

    #[test]
    fn round_trip_limits_and_bombs() {
        let payload = vec![7u8; 4000];
        let compressed = compress(&payload);
        assert!(compressed.len() < payload.len());
        assert_eq!(
            decompress(GossipKind::CheckpointAttestation, &compressed),
            Ok(payload)
        );
        // A bomb that would decompress past the attestation limit is refused unread.
        let bomb = compress(&vec![0u8; 64 * 1024]);
        assert!(bomb.len() < 5 * 1024);
        assert_eq!(
            decompress(GossipKind::CheckpointAttestation, &bomb),
            Err(SnappyError::TooLarge {
                declared: 64 * 1024,
                limit: GossipKind::CheckpointAttestation.max_message_size()
            })
        );
        assert_eq!(
            decompress(GossipKind::Tx, &[0xff; 10]),
            Err(SnappyError::BadHeader)
        );
        let mut corrupt = compress(&[1u8; 300]);
        let last = corrupt.len() - 1;
        corrupt.truncate(last);
        assert_eq!(
            decompress(GossipKind::Tx, &corrupt),
            Err(SnappyError::Corrupt)
        );
    }
}
