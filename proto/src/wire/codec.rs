//! Codec helpers shared by every message: the canonical-encoding check, field readers that
//! name the message and field they refuse, and the packed tx and hash lists.

use alloy_primitives::{Address, B256};
use prost::Message;

use super::{MAX_TXS_PER_BLOCK, WireError};
use crate::{
    signing::{SIGNATURE_LENGTH, Signature},
    tx::{PACKED_TX_LENGTH, Tx},
};

/// Refuses `bytes` unless they are exactly prost's encoding of `proto` (what we send). The length
/// check is free and catches unknown, duplicated and default-valued fields and padded varints;
/// the byte comparison catches reordered fields (a memcpy-speed pass over the big packed fields).
pub(super) fn check_canonical<M: Message>(
    message: &'static str,
    proto: &M,
    bytes: &[u8],
) -> Result<(), WireError> {
    let canonical = proto.encoded_len();
    let non_canonical = || WireError::NonCanonical {
        message,
        size: bytes.len(),
        canonical,
    };
    if canonical != bytes.len() {
        return Err(non_canonical());
    }
    let mut encoded = Vec::with_capacity(canonical);
    proto.encode(&mut encoded).map_err(|_| non_canonical())?;
    if encoded != bytes {
        return Err(non_canonical());
    }
    Ok(())
}

/// Field readers bound to one message name, so every error says where it happened.
pub(super) struct Fields(pub(super) &'static str);

impl Fields {
    /// Checks a packed list: whole items only, at most `limit` of them.
    pub(super) fn packed_shape(
        &self,
        field: &'static str,
        item_size: usize,
        items: usize,
        leftover: usize,
        limit: usize,
    ) -> Result<(), WireError> {
        if leftover != 0 {
            return Err(WireError::PartialItem {
                message: self.0,
                field,
                item_size,
                leftover,
            });
        }
        if items > limit {
            return Err(WireError::TooMany {
                message: self.0,
                field,
                count: items,
                limit,
            });
        }
        Ok(())
    }

    pub(super) fn fixed<const N: usize>(
        &self,
        field: &'static str,
        bytes: &[u8],
    ) -> Result<[u8; N], WireError> {
        bytes.try_into().map_err(|_| WireError::InvalidLength {
            message: self.0,
            field,
            expected: N,
            got: bytes.len(),
        })
    }

    pub(super) fn b256(&self, field: &'static str, bytes: &[u8]) -> Result<B256, WireError> {
        self.fixed::<32>(field, bytes).map(B256::from)
    }

    pub(super) fn address(&self, field: &'static str, bytes: &[u8]) -> Result<Address, WireError> {
        self.fixed::<20>(field, bytes).map(Address::from)
    }

    pub(super) fn u128(&self, field: &'static str, bytes: &[u8]) -> Result<u128, WireError> {
        self.fixed::<16>(field, bytes).map(u128::from_be_bytes)
    }

    pub(super) fn signature(
        &self,
        field: &'static str,
        bytes: &[u8],
    ) -> Result<Signature, WireError> {
        self.fixed::<SIGNATURE_LENGTH>(field, bytes)
            .map(Signature::from_bytes)
    }

    pub(super) fn bounded_i64(
        &self,
        field: &'static str,
        value: i64,
        limit: i64,
    ) -> Result<i64, WireError> {
        if value.unsigned_abs() > limit.unsigned_abs() {
            return Err(WireError::OutOfRange {
                message: self.0,
                field,
                value,
                limit,
            });
        }
        Ok(value)
    }

    pub(super) fn required<T>(
        &self,
        field: &'static str,
        value: Option<T>,
    ) -> Result<T, WireError> {
        value.ok_or(WireError::MissingField {
            message: self.0,
            field,
        })
    }

    pub(super) fn bounded<T>(
        &self,
        field: &'static str,
        items: Vec<T>,
        limit: usize,
    ) -> Result<Vec<T>, WireError> {
        if items.len() > limit {
            return Err(WireError::TooMany {
                message: self.0,
                field,
                count: items.len(),
                limit,
            });
        }
        Ok(items)
    }
}

pub(super) fn txs_to_packed(txs: &[Tx]) -> Vec<u8> {
    let mut packed = Vec::with_capacity(txs.len().saturating_mul(PACKED_TX_LENGTH));
    for tx in txs {
        tx.encode_packed(&mut packed);
    }
    packed
}

pub(super) fn txs_from_packed(
    f: &Fields,
    field: &'static str,
    bytes: &[u8],
) -> Result<Vec<Tx>, WireError> {
    let (chunks, rest) = bytes.as_chunks::<PACKED_TX_LENGTH>();
    f.packed_shape(
        field,
        PACKED_TX_LENGTH,
        chunks.len(),
        rest.len(),
        MAX_TXS_PER_BLOCK,
    )?;
    Ok(chunks.iter().map(Tx::decode_packed).collect())
}

pub(super) fn hashes_to_packed(hashes: &[B256]) -> Vec<u8> {
    hashes.iter().flat_map(|hash| hash.0).collect()
}

pub(super) fn hashes_from_packed(
    f: &Fields,
    field: &'static str,
    bytes: &[u8],
) -> Result<Vec<B256>, WireError> {
    let (chunks, rest) = bytes.as_chunks::<32>();
    f.packed_shape(field, 32, chunks.len(), rest.len(), MAX_TXS_PER_BLOCK)?;
    Ok(chunks.iter().copied().map(B256::from).collect())
}
