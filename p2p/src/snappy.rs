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

/// Compresses a payload for publishing: the gossip encoding (snappy raw), for tools that speak
/// the protocol without this crate's service (`tools/spray`). Returns an empty Vec for an input
/// beyond snappy's 4 GiB limit (far above every topic's cap, so never a valid message).
pub fn compress(data: &[u8]) -> Vec<u8> {
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
        /// Against snappy's own decoder as the model: the same bytes out when the frame is valid
        /// and within the topic's limit, a typed refusal otherwise; never a panic.
        #[test]
        fn decompress_agrees_with_the_reference_decoder(
            kind in 0usize..4,
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024),
            compressible in proptest::prelude::any::<bool>(),
        ) {
            let kind = GossipKind::ALL[kind];
            // Half the cases are valid frames, so the Ok path is exercised too.
            let frame = if compressible { compress(&bytes) } else { bytes };
            let model = snap::raw::Decoder::new().decompress_vec(&frame);
            match decompress(kind, &frame) {
                Ok(out) => {
                    proptest::prop_assert_eq!(Ok(out.clone()), model.map_err(|_| ()));
                    proptest::prop_assert!(out.len() <= kind.max_message_size());
                }
                Err(SnappyError::TooLarge { declared, limit }) => {
                    proptest::prop_assert!(declared > limit);
                    proptest::prop_assert_eq!(limit, kind.max_message_size());
                }
                Err(SnappyError::BadHeader | SnappyError::Corrupt) => {
                    proptest::prop_assert!(model.is_err());
                }
            }
            // Up to 1 KiB decompressed fits every topic: a real frame always comes through.
            if compressible {
                proptest::prop_assert!(decompress(kind, &frame).is_ok());
            }
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
