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

use alloy_primitives::{Address, B256};
use prost::Message;

use crate::{
    block::{Block, BlockHeader},
    checkpoint::{
        Checkpoint, CheckpointHeader, ConsensusPayload, MAX_FEE_ASSET_PRICE_MODIFIER_BPS,
    },
    proposal::{BlockProposal, CheckpointAttestation, CheckpointProposal},
    signing::{SIGNATURE_LENGTH, Signature},
    tips::{BlockId, CheckpointId, L2TipId, L2Tips},
    tx::{PACKED_TX_LENGTH, Tx, TxPayload},
};

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

/// Refuses `bytes` unless they are exactly prost's encoding of `proto` (what we send). The length
/// check is free and catches unknown, duplicated and default-valued fields and padded varints;
/// the byte comparison catches reordered fields (a memcpy-speed pass over the big packed fields).
fn check_canonical<M: Message>(
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
struct Fields(&'static str);

impl Fields {
    /// Checks a packed list: whole items only, at most `limit` of them.
    fn packed_shape(
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

    fn fixed<const N: usize>(
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

    fn b256(&self, field: &'static str, bytes: &[u8]) -> Result<B256, WireError> {
        self.fixed::<32>(field, bytes).map(B256::from)
    }

    fn address(&self, field: &'static str, bytes: &[u8]) -> Result<Address, WireError> {
        self.fixed::<20>(field, bytes).map(Address::from)
    }

    fn u128(&self, field: &'static str, bytes: &[u8]) -> Result<u128, WireError> {
        self.fixed::<16>(field, bytes).map(u128::from_be_bytes)
    }

    fn signature(&self, field: &'static str, bytes: &[u8]) -> Result<Signature, WireError> {
        self.fixed::<SIGNATURE_LENGTH>(field, bytes)
            .map(Signature::from_bytes)
    }

    fn bounded_i64(&self, field: &'static str, value: i64, limit: i64) -> Result<i64, WireError> {
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

    fn required<T>(&self, field: &'static str, value: Option<T>) -> Result<T, WireError> {
        value.ok_or(WireError::MissingField {
            message: self.0,
            field,
        })
    }

    fn bounded<T>(
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

impl ProtoConvert for Tx {
    type Proto = pb::Tx;
    const MESSAGE: &'static str = "Tx";

    fn to_proto(&self) -> pb::Tx {
        let p = &self.payload;
        pb::Tx {
            chain_id: p.chain_id,
            nonce: p.nonce,
            to: p.to.to_vec(),
            amount: p.amount.to_be_bytes().to_vec(),
            max_fee_per_mana: p.max_fee_per_mana.to_be_bytes().to_vec(),
            mana_limit: p.mana_limit,
            signature: self.signature.as_bytes().to_vec(),
        }
    }

    fn from_proto(proto: pb::Tx) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            payload: TxPayload {
                chain_id: proto.chain_id,
                nonce: proto.nonce,
                to: f.address("to", &proto.to)?,
                amount: f.u128("amount", &proto.amount)?,
                max_fee_per_mana: f.u128("max_fee_per_mana", &proto.max_fee_per_mana)?,
                mana_limit: proto.mana_limit,
            },
            signature: f.signature("signature", &proto.signature)?,
        })
    }
}

impl ProtoConvert for BlockHeader {
    type Proto = pb::BlockHeader;
    const MESSAGE: &'static str = "BlockHeader";

    fn to_proto(&self) -> pb::BlockHeader {
        pb::BlockHeader {
            last_archive_root: self.last_archive_root.to_vec(),
            state_root: self.state_root.to_vec(),
            body_hash: self.body_hash.to_vec(),
            chain_id: self.chain_id,
            rollup_version: self.rollup_version,
            block_number: self.block_number,
            checkpoint_number: self.checkpoint_number,
            index_within_checkpoint: self.index_within_checkpoint,
            slot: self.slot,
            timestamp: self.timestamp,
            coinbase: self.coinbase.to_vec(),
            fee_recipient: self.fee_recipient.to_vec(),
            fee_per_mana: self.fee_per_mana.to_be_bytes().to_vec(),
            total_mana_used: self.total_mana_used,
            total_fees: self.total_fees.to_be_bytes().to_vec(),
        }
    }

    fn from_proto(proto: pb::BlockHeader) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            last_archive_root: f.b256("last_archive_root", &proto.last_archive_root)?,
            state_root: f.b256("state_root", &proto.state_root)?,
            body_hash: f.b256("body_hash", &proto.body_hash)?,
            chain_id: proto.chain_id,
            rollup_version: proto.rollup_version,
            block_number: proto.block_number,
            checkpoint_number: proto.checkpoint_number,
            index_within_checkpoint: proto.index_within_checkpoint,
            slot: proto.slot,
            timestamp: proto.timestamp,
            coinbase: f.address("coinbase", &proto.coinbase)?,
            fee_recipient: f.address("fee_recipient", &proto.fee_recipient)?,
            fee_per_mana: f.u128("fee_per_mana", &proto.fee_per_mana)?,
            total_mana_used: proto.total_mana_used,
            total_fees: f.u128("total_fees", &proto.total_fees)?,
        })
    }
}

fn txs_to_packed(txs: &[Tx]) -> Vec<u8> {
    let mut packed = Vec::with_capacity(txs.len().saturating_mul(PACKED_TX_LENGTH));
    for tx in txs {
        tx.encode_packed(&mut packed);
    }
    packed
}

fn txs_from_packed(f: &Fields, field: &'static str, bytes: &[u8]) -> Result<Vec<Tx>, WireError> {
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

fn hashes_to_packed(hashes: &[B256]) -> Vec<u8> {
    hashes.iter().flat_map(|hash| hash.0).collect()
}

fn hashes_from_packed(
    f: &Fields,
    field: &'static str,
    bytes: &[u8],
) -> Result<Vec<B256>, WireError> {
    let (chunks, rest) = bytes.as_chunks::<32>();
    f.packed_shape(field, 32, chunks.len(), rest.len(), MAX_TXS_PER_BLOCK)?;
    Ok(chunks.iter().copied().map(B256::from).collect())
}

impl ProtoConvert for Block {
    type Proto = pb::Block;
    const MESSAGE: &'static str = "Block";

    fn to_proto(&self) -> pb::Block {
        pb::Block {
            header: Some(self.header.to_proto()),
            txs_packed: txs_to_packed(&self.txs),
        }
    }

    fn from_proto(proto: pb::Block) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            header: BlockHeader::from_proto(f.required("header", proto.header)?)?,
            txs: txs_from_packed(&f, "txs_packed", &proto.txs_packed)?,
        })
    }
}

impl ProtoConvert for CheckpointHeader {
    type Proto = pb::CheckpointHeader;
    const MESSAGE: &'static str = "CheckpointHeader";

    fn to_proto(&self) -> pb::CheckpointHeader {
        pb::CheckpointHeader {
            last_archive_root: self.last_archive_root.to_vec(),
            block_headers_hash: self.block_headers_hash.to_vec(),
            body_hash: self.body_hash.to_vec(),
            slot: self.slot,
            timestamp: self.timestamp,
            coinbase: self.coinbase.to_vec(),
            fee_recipient: self.fee_recipient.to_vec(),
            fee_per_mana: self.fee_per_mana.to_be_bytes().to_vec(),
            total_mana_used: self.total_mana_used,
            accumulated_fees: self.accumulated_fees.to_be_bytes().to_vec(),
        }
    }

    fn from_proto(proto: pb::CheckpointHeader) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            last_archive_root: f.b256("last_archive_root", &proto.last_archive_root)?,
            block_headers_hash: f.b256("block_headers_hash", &proto.block_headers_hash)?,
            body_hash: f.b256("body_hash", &proto.body_hash)?,
            slot: proto.slot,
            timestamp: proto.timestamp,
            coinbase: f.address("coinbase", &proto.coinbase)?,
            fee_recipient: f.address("fee_recipient", &proto.fee_recipient)?,
            fee_per_mana: f.u128("fee_per_mana", &proto.fee_per_mana)?,
            total_mana_used: proto.total_mana_used,
            accumulated_fees: f.u128("accumulated_fees", &proto.accumulated_fees)?,
        })
    }
}

impl ProtoConvert for ConsensusPayload {
    type Proto = pb::ConsensusPayload;
    const MESSAGE: &'static str = "ConsensusPayload";

    fn to_proto(&self) -> pb::ConsensusPayload {
        pb::ConsensusPayload {
            header: Some(self.header.to_proto()),
            archive: self.archive.to_vec(),
            fee_asset_price_modifier: self.fee_asset_price_modifier,
        }
    }

    fn from_proto(proto: pb::ConsensusPayload) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            header: CheckpointHeader::from_proto(f.required("header", proto.header)?)?,
            archive: f.b256("archive", &proto.archive)?,
            fee_asset_price_modifier: f.bounded_i64(
                "fee_asset_price_modifier",
                proto.fee_asset_price_modifier,
                MAX_FEE_ASSET_PRICE_MODIFIER_BPS,
            )?,
        })
    }
}

impl ProtoConvert for Checkpoint {
    type Proto = pb::Checkpoint;
    const MESSAGE: &'static str = "Checkpoint";

    fn to_proto(&self) -> pb::Checkpoint {
        pb::Checkpoint {
            number: self.number,
            payload: Some(self.payload.to_proto()),
            blocks: self.blocks.iter().map(Block::to_proto).collect(),
        }
    }

    fn from_proto(proto: pb::Checkpoint) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        let blocks = f.bounded("blocks", proto.blocks, MAX_BLOCKS_PER_CHECKPOINT)?;
        Ok(Self {
            number: proto.number,
            payload: ConsensusPayload::from_proto(f.required("payload", proto.payload)?)?,
            blocks: blocks
                .into_iter()
                .map(Block::from_proto)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl ProtoConvert for BlockProposal {
    type Proto = pb::BlockProposal;
    const MESSAGE: &'static str = "BlockProposal";

    fn to_proto(&self) -> pb::BlockProposal {
        pb::BlockProposal {
            header: Some(self.header.to_proto()),
            archive_root: self.archive_root.to_vec(),
            tx_hashes_packed: hashes_to_packed(&self.tx_hashes),
            signature: self.signature.as_bytes().to_vec(),
            txs_packed: txs_to_packed(&self.txs),
        }
    }

    fn from_proto(proto: pb::BlockProposal) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            header: BlockHeader::from_proto(f.required("header", proto.header)?)?,
            archive_root: f.b256("archive_root", &proto.archive_root)?,
            tx_hashes: hashes_from_packed(&f, "tx_hashes_packed", &proto.tx_hashes_packed)?,
            signature: f.signature("signature", &proto.signature)?,
            txs: txs_from_packed(&f, "txs_packed", &proto.txs_packed)?,
        })
    }
}

impl ProtoConvert for CheckpointProposal {
    type Proto = pb::CheckpointProposal;
    const MESSAGE: &'static str = "CheckpointProposal";

    fn to_proto(&self) -> pb::CheckpointProposal {
        pb::CheckpointProposal {
            payload: Some(self.payload.to_proto()),
            signature: self.signature.as_bytes().to_vec(),
            last_block: self.last_block.as_ref().map(BlockProposal::to_proto),
        }
    }

    fn from_proto(proto: pb::CheckpointProposal) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            payload: ConsensusPayload::from_proto(f.required("payload", proto.payload)?)?,
            signature: f.signature("signature", &proto.signature)?,
            last_block: proto
                .last_block
                .map(BlockProposal::from_proto)
                .transpose()?,
        })
    }
}

impl ProtoConvert for CheckpointAttestation {
    type Proto = pb::CheckpointAttestation;
    const MESSAGE: &'static str = "CheckpointAttestation";

    fn to_proto(&self) -> pb::CheckpointAttestation {
        pb::CheckpointAttestation {
            payload: Some(self.payload.to_proto()),
            signature: self.signature.as_bytes().to_vec(),
            proposer_signature: self.proposer_signature.as_bytes().to_vec(),
        }
    }

    fn from_proto(proto: pb::CheckpointAttestation) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            payload: ConsensusPayload::from_proto(f.required("payload", proto.payload)?)?,
            signature: f.signature("signature", &proto.signature)?,
            proposer_signature: f.signature("proposer_signature", &proto.proposer_signature)?,
        })
    }
}

impl ProtoConvert for L2TipId {
    type Proto = pb::L2TipId;
    const MESSAGE: &'static str = "L2TipId";

    fn to_proto(&self) -> pb::L2TipId {
        pb::L2TipId {
            block: Some(pb::BlockId {
                number: self.block.number,
                hash: self.block.hash.to_vec(),
            }),
            checkpoint: Some(pb::CheckpointId {
                number: self.checkpoint.number,
                hash: self.checkpoint.hash.to_vec(),
            }),
        }
    }

    fn from_proto(proto: pb::L2TipId) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        let block = f.required("block", proto.block)?;
        let checkpoint = f.required("checkpoint", proto.checkpoint)?;
        Ok(Self {
            block: BlockId {
                number: block.number,
                hash: f.b256("block.hash", &block.hash)?,
            },
            checkpoint: CheckpointId {
                number: checkpoint.number,
                hash: f.b256("checkpoint.hash", &checkpoint.hash)?,
            },
        })
    }
}

impl ProtoConvert for L2Tips {
    type Proto = pb::L2Tips;
    const MESSAGE: &'static str = "L2Tips";

    fn to_proto(&self) -> pb::L2Tips {
        pb::L2Tips {
            proposed: Some(self.proposed.to_proto()),
            proposed_checkpoint: Some(self.proposed_checkpoint.to_proto()),
            checkpointed: Some(self.checkpointed.to_proto()),
            finalized: Some(self.finalized.to_proto()),
        }
    }

    fn from_proto(proto: pb::L2Tips) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        let tip = |field, value| L2TipId::from_proto(f.required(field, value)?);
        Ok(Self {
            proposed: tip("proposed", proto.proposed)?,
            proposed_checkpoint: tip("proposed_checkpoint", proto.proposed_checkpoint)?,
            checkpointed: tip("checkpointed", proto.checkpointed)?,
            finalized: tip("finalized", proto.finalized)?,
        })
    }
}
