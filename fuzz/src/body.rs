//! Checkpoint bodies as posted to L1.

use tandem_proto::{
    CheckpointBodyError, DEFAULT_MAX_CHECKPOINT_BODY_BYTES, checkpoint_body_len,
    decode_checkpoint_body, encode_checkpoint_body,
};

use crate::{Outcome, alloc};

pub(crate) fn run(body: &[u8]) -> Outcome {
    check(body, DEFAULT_MAX_CHECKPOINT_BODY_BYTES)
}

/// Decodes `body` under `limit`: what decodes re-encodes to exactly `body`; a body over the
/// limit is refused before anything is allocated; counts in the body never size an allocation
/// beyond what the bytes can hold.
pub(crate) fn check(body: &[u8], limit: usize) -> Outcome {
    let (decoded, peak) = alloc::measure(|| decode_checkpoint_body(body, limit));
    assert!(
        peak <= alloc::decode_bound(body.len()),
        "checkpoint body: allocated {peak} bytes at once for {} input bytes",
        body.len()
    );
    if body.len() > limit {
        assert_eq!(
            decoded,
            Err(CheckpointBodyError::TooLarge {
                size: body.len(),
                limit
            })
        );
        assert!(
            peak <= alloc::ERROR_ALLOWANCE,
            "checkpoint body: allocated for a body over the limit"
        );
    }
    if let Ok(blocks) = &decoded {
        assert_eq!(
            encode_checkpoint_body(blocks),
            body,
            "checkpoint body: decoded body is not canonical"
        );
        let txs = blocks.iter().map(|block| block.txs.len()).sum();
        assert_eq!(checkpoint_body_len(blocks.len(), txs), body.len());
        // One byte less of limit refuses the same body, unread.
        if let Some(smaller) = body.len().checked_sub(1) {
            assert!(matches!(
                decode_checkpoint_body(body, smaller),
                Err(CheckpointBodyError::TooLarge { .. })
            ));
        }
    }
    Outcome::of(&decoded)
}
