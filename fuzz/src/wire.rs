//! proto's wire messages.

use std::fmt::Debug;

use tandem_proto::{
    Block, BlockProposal, Checkpoint, CheckpointAttestation, CheckpointProposal, L2Tips, Tx,
    WireError, WireMessage,
};

use crate::{Outcome, alloc, select};

/// The message types, in selector order.
pub(crate) const MESSAGES: [&str; 7] = [
    Tx::NAME,
    Block::NAME,
    Checkpoint::NAME,
    BlockProposal::NAME,
    CheckpointProposal::NAME,
    CheckpointAttestation::NAME,
    L2Tips::NAME,
];

pub(crate) fn run(data: &[u8]) -> Outcome {
    let Some((index, bytes)) = select(data, MESSAGES.len()) else {
        return Outcome::Refused;
    };
    match index {
        0 => check::<Tx>(bytes),
        1 => check::<Block>(bytes),
        2 => check::<Checkpoint>(bytes),
        3 => check::<BlockProposal>(bytes),
        4 => check::<CheckpointProposal>(bytes),
        5 => check::<CheckpointAttestation>(bytes),
        _ => check::<L2Tips>(bytes),
    }
}

/// Decodes `bytes` as `T`: the decoder is canonical, so what decodes re-encodes to exactly
/// `bytes`; input over the limit is refused before anything is allocated; nothing allocates
/// beyond [`alloc::decode_bound`].
pub(crate) fn check<T: WireMessage + PartialEq + Debug>(bytes: &[u8]) -> Outcome {
    let (decoded, peak) = alloc::measure(|| T::from_wire_bytes(bytes));
    if bytes.len() > T::MAX_ENCODED_SIZE {
        assert!(
            matches!(decoded, Err(WireError::TooLarge { size, limit, .. })
                if size == bytes.len() && limit == T::MAX_ENCODED_SIZE),
            "{}: {} bytes over the limit not refused as too large: {decoded:?}",
            T::NAME,
            bytes.len()
        );
        assert!(
            peak <= alloc::ERROR_ALLOWANCE,
            "{}: allocated for input over the limit",
            T::NAME
        );
    }
    assert!(
        peak <= alloc::decode_bound(bytes.len()),
        "{}: allocated {peak} bytes at once for {} input bytes",
        T::NAME,
        bytes.len()
    );
    if let Ok(value) = &decoded {
        let encoded = value.to_wire_bytes();
        assert_eq!(
            encoded,
            bytes,
            "{}: decoded input is not canonical",
            T::NAME
        );
        let again = T::from_wire_bytes(&encoded);
        assert_eq!(again.as_ref(), Ok(value), "{}: re-decode differs", T::NAME);
    }
    Outcome::of(&decoded)
}
