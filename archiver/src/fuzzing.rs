//! Entry points for the fuzz targets (`fuzz/`), behind the `fuzzing` feature: the stored
//! records' codecs (RocksDB values) are crate-private, and the public surface stays narrow
//! without the feature.

use tandem_proto::{BlockHeader, L2Tips, Signature, Tx, archive::ArchiveTree};

use crate::{
    codec::{self, HeaderRecord},
    records::{
        AwaitingCheckpoint, CheckpointRecord, L1Ref, ProposedCheckpoint, RecordError, StoredHeader,
    },
    tables::{Table, TxLocations},
};

/// The stored record kinds with a value codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A block header with its archive (`blocks`).
    Header,
    /// A block's packed txs (`block_txs`).
    BlockTxs,
    /// A block's proposer signature (`block_signatures`).
    BlockSignature,
    /// A checkpoint on L1 (`checkpoints`).
    Checkpoint,
    /// A proposed checkpoint (`proposed_checkpoints`).
    Proposed,
    /// A checkpoint seen on L1 whose blocks are not stored yet (`l1_awaiting`).
    Awaiting,
    /// The L2 tips (meta `tips`).
    Tips,
    /// An L1 block reference (meta `l1_synced`).
    L1Ref,
    /// A tx's location (`txs`).
    TxLocation,
}

impl Record {
    /// Every kind.
    pub const ALL: [Self; 9] = [
        Self::Header,
        Self::BlockTxs,
        Self::BlockSignature,
        Self::Checkpoint,
        Self::Proposed,
        Self::Awaiting,
        Self::Tips,
        Self::L1Ref,
        Self::TxLocation,
    ];
}

/// Decodes a stored value of `record` and encodes the value again.
pub fn decode_then_encode(record: Record, bytes: &[u8]) -> Result<Vec<u8>, RecordError> {
    Ok(match record {
        Record::Header => codec::encode_header(&codec::decode_header(bytes)?),
        Record::BlockTxs => codec::encode_txs(codec::decode_txs(bytes)?.iter()),
        Record::BlockSignature => codec::encode_signature(&codec::decode_signature(bytes)?),
        Record::Checkpoint => codec::encode_checkpoint(&codec::decode_checkpoint(bytes)?),
        Record::Proposed => codec::encode_proposed(&codec::decode_proposed(bytes)?),
        Record::Awaiting => codec::encode_awaiting(&codec::decode_awaiting(bytes)?),
        Record::Tips => codec::encode_tips(&codec::decode_tips(bytes)?),
        Record::L1Ref => codec::encode_l1_ref(&codec::decode_l1_ref(bytes)?),
        Record::TxLocation => TxLocations::encode(&TxLocations::decode(bytes)?),
    })
}

/// The full, checked decode of a header record, as a reader's view.
pub fn decode_header(bytes: &[u8]) -> Result<StoredHeader, RecordError> {
    let record = codec::decode_header(bytes)?;
    Ok(StoredHeader {
        header: record.header,
        hash: record.hash,
        archive_root: record.archive_root,
    })
}

/// The readers' fast decode of a header record (no frontier, no hashing).
pub fn decode_header_view(bytes: &[u8]) -> Result<StoredHeader, RecordError> {
    codec::decode_header_only(bytes)
}

/// Encodes a header record of `header` with the archive after it.
pub fn encode_header(header: &BlockHeader, archive: &ArchiveTree) -> Vec<u8> {
    codec::encode_header(&HeaderRecord {
        header: header.clone(),
        hash: header.hash(),
        archive_root: archive.root(),
        archive: archive.clone(),
    })
}

/// Encodes a block's txs.
pub fn encode_txs(txs: &[Tx]) -> Vec<u8> {
    codec::encode_txs(txs.iter())
}

/// Encodes a block signature.
pub fn encode_signature(signature: &Signature) -> Vec<u8> {
    codec::encode_signature(signature)
}

/// Encodes a checkpoint record.
pub fn encode_checkpoint(record: &CheckpointRecord) -> Vec<u8> {
    codec::encode_checkpoint(record)
}

/// Encodes a proposed checkpoint.
pub fn encode_proposed(record: &ProposedCheckpoint) -> Vec<u8> {
    codec::encode_proposed(record)
}

/// Encodes an awaiting checkpoint.
pub fn encode_awaiting(record: &AwaitingCheckpoint) -> Vec<u8> {
    codec::encode_awaiting(record)
}

/// Encodes the tips.
pub fn encode_tips(tips: &L2Tips) -> Vec<u8> {
    codec::encode_tips(tips)
}

/// Encodes an L1 block reference.
pub fn encode_l1_ref(l1: &L1Ref) -> Vec<u8> {
    codec::encode_l1_ref(l1)
}

/// Encodes a tx location (block number, position).
pub fn encode_tx_location(block: u64, position: u32) -> Vec<u8> {
    TxLocations::encode(&(block, position))
}
