//! Wire format: domain types to and from prost messages.
//!
//! The generated structs stay private to this module; other crates see only [`WireMessage`].
//! Every decoder checks the encoded size against the type's limit before parsing, checks every
//! fixed-size field's length and bounded value, and names the message and field it rejects. It
//! never panics.
//!
//! Decoding is canonical: the bytes must be exactly what [`WireMessage::to_wire_bytes`] makes of
//! the decoded value. Unknown fields, trailing or duplicated fields, reordered fields, explicit
//! defaults and over-long varints are refused, so one message has one encoding and a relayer
//! cannot turn one proposal into many gossip message ids.

#![deny(clippy::arithmetic_side_effects)]

use prost::Message;

use crate::{
    block::Block,
    checkpoint::Checkpoint,
    proposal::{BlockProposal, CheckpointAttestation, CheckpointProposal},
    tips::L2Tips,
    tx::Tx,
};

mod codec;
mod messages;

use codec::check_canonical;

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/tandem.v1.rs"));
}

/// Largest encoded tx accepted.
pub const MAX_TX_SIZE: usize = 128 * 1024;
/// Largest encoded block or checkpoint proposal accepted (gossip and req/resp).
pub const MAX_PROPOSAL_SIZE: usize = 10 * 1024 * 1024;
/// Largest encoded attestation accepted.
pub const MAX_ATTESTATION_SIZE: usize = 5 * 1024;
/// Largest encoded block accepted (req/resp and storage); a block travels in one proposal.
pub const MAX_BLOCK_SIZE: usize = MAX_PROPOSAL_SIZE;
/// Largest encoded checkpoint accepted (storage and sync).
pub const MAX_CHECKPOINT_SIZE: usize = 64 * 1024 * 1024;
/// Largest encoded tips record accepted.
pub const MAX_TIPS_SIZE: usize = 1024;
/// Most txs one block (or block proposal) may carry.
pub const MAX_TXS_PER_BLOCK: usize = 65_536;
/// Most blocks one checkpoint may carry.
pub const MAX_BLOCKS_PER_CHECKPOINT: usize = 1_024;

/// Why bytes could not be decoded into a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input is larger than the type's limit; nothing was parsed.
    #[error("{message}: {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Message type.
        message: &'static str,
        /// Input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a valid protobuf encoding of the message.
    #[error("{message}: malformed protobuf: {reason}")]
    Malformed {
        /// Message type.
        message: &'static str,
        /// What prost reported.
        reason: String,
    },
    /// A required field is absent.
    #[error("{message}.{field}: missing")]
    MissingField {
        /// Message type.
        message: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// A fixed-size field has the wrong length.
    #[error("{message}.{field}: expected {expected} bytes, got {got}")]
    InvalidLength {
        /// Message type.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// Required length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A packed list's length is not a multiple of its item size.
    #[error("{message}.{field}: {leftover} bytes left over after whole {item_size}-byte items")]
    PartialItem {
        /// Message type.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// Size of one item.
        item_size: usize,
        /// Bytes after the last whole item.
        leftover: usize,
    },
    /// The bytes decode, but are not the canonical encoding of what they decode to (unknown,
    /// repeated or reordered fields, explicit defaults, padded varints).
    #[error("{message}: not the canonical encoding ({size} bytes, canonical {canonical})")]
    NonCanonical {
        /// Message type.
        message: &'static str,
        /// Input size.
        size: usize,
        /// Size of the canonical encoding of the decoded value.
        canonical: usize,
    },
    /// A bounded integer field is out of its range.
    #[error("{message}.{field}: {value} is outside ±{limit}")]
    OutOfRange {
        /// Message type.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// The value.
        value: i64,
        /// The bound either way.
        limit: i64,
    },
    /// A repeated field has more entries than allowed.
    #[error("{message}.{field}: {count} entries exceeds the limit of {limit}")]
    TooMany {
        /// Message type.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// Entries found.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

/// A domain type with a canonical, size-limited wire encoding.
pub trait WireMessage: Sized {
    /// Name used in errors.
    const NAME: &'static str;
    /// Largest encoding accepted by [`WireMessage::from_wire_bytes`].
    const MAX_ENCODED_SIZE: usize;

    /// Encodes to protobuf bytes.
    fn to_wire_bytes(&self) -> Vec<u8>;

    /// Decodes protobuf bytes, enforcing [`WireMessage::MAX_ENCODED_SIZE`] first and refusing
    /// any encoding but the canonical one.
    fn from_wire_bytes(bytes: &[u8]) -> Result<Self, WireError>;
}

/// Conversion between a domain type and its generated prost message.
trait ProtoConvert: Sized {
    type Proto: Message + Default;
    const MESSAGE: &'static str;
    fn to_proto(&self) -> Self::Proto;
    fn from_proto(proto: Self::Proto) -> Result<Self, WireError>;
}

macro_rules! wire_message {
    ($ty:ty, $limit:expr) => {
        impl WireMessage for $ty {
            const NAME: &'static str = <$ty as ProtoConvert>::MESSAGE;
            const MAX_ENCODED_SIZE: usize = $limit;

            fn to_wire_bytes(&self) -> Vec<u8> {
                self.to_proto().encode_to_vec()
            }

            fn from_wire_bytes(bytes: &[u8]) -> Result<Self, WireError> {
                if bytes.len() > Self::MAX_ENCODED_SIZE {
                    return Err(WireError::TooLarge {
                        message: Self::NAME,
                        size: bytes.len(),
                        limit: Self::MAX_ENCODED_SIZE,
                    });
                }
                let proto = <<$ty as ProtoConvert>::Proto>::decode(bytes).map_err(|err| {
                    WireError::Malformed {
                        message: Self::NAME,
                        reason: err.to_string(),
                    }
                })?;
                check_canonical(Self::NAME, &proto, bytes)?;
                Self::from_proto(proto)
            }
        }
    };
}

wire_message!(Tx, MAX_TX_SIZE);
wire_message!(Block, MAX_BLOCK_SIZE);
wire_message!(Checkpoint, MAX_CHECKPOINT_SIZE);
wire_message!(BlockProposal, MAX_PROPOSAL_SIZE);
wire_message!(CheckpointProposal, MAX_PROPOSAL_SIZE);
wire_message!(CheckpointAttestation, MAX_ATTESTATION_SIZE);
wire_message!(L2Tips, MAX_TIPS_SIZE);
