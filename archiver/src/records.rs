//! Binary encodings of the stored records. Fixed-width fields, length-prefixed variable parts;
//! every decoder checks lengths and fails with [`RecordError`] instead of panicking.

use alloy_sol_types::SolValue;
use tandem_proto::{
    B256, Block, BlockHeader, CheckpointHeader, ConsensusPayload, PACKED_TX_LENGTH, Signature, Tx,
    archive::ArchiveTree,
};

/// A stored record does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stored {0} record does not decode")]
pub struct RecordError(pub &'static str);

/// An L1 block reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct L1Ref {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Timestamp, seconds.
    pub timestamp: u64,
}

/// A block as stored, with the archive after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// The block.
    pub block: Block,
    /// Archive root after the block.
    pub archive_root: B256,
    pub(crate) archive: ArchiveTree,
}

/// A checkpoint mined on L1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// Number.
    pub number: u64,
    /// Header, archive, fee modifier.
    pub payload: ConsensusPayload,
    /// First block.
    pub start_block: u64,
    /// Number of blocks.
    pub block_count: u64,
    /// The L1 block that included it (none for genesis).
    pub l1: L1Ref,
    /// Attestations with committee positions.
    pub attestations: Vec<(u32, Signature)>,
}

impl CheckpointRecord {
    /// Last block of the checkpoint.
    pub const fn last_block(&self) -> u64 {
        self.start_block + self.block_count - 1
    }
}

/// A checkpoint received over gossip and validated, not on L1 yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedCheckpoint {
    /// Number.
    pub number: u64,
    /// Header, archive, fee modifier.
    pub payload: ConsensusPayload,
    /// First block.
    pub start_block: u64,
    /// Number of blocks.
    pub block_count: u64,
    /// Mana used by its blocks (the next proposer's fee override needs it).
    pub total_mana_used: u64,
}

impl ProposedCheckpoint {
    /// Last block of the checkpoint.
    pub const fn last_block(&self) -> u64 {
        self.start_block + self.block_count - 1
    }
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn i64(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn b256(&mut self, value: &B256) -> &mut Self {
        self.0.extend_from_slice(value.as_slice());
        self
    }
    fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.u64(value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < len {
            return Err(RecordError(self.what));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        let bytes = self.take(8)?;
        Ok(u64::from_be_bytes(
            bytes.try_into().map_err(|_| RecordError(self.what))?,
        ))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(self.u64()? as i64)
    }
    fn b256(&mut self) -> Result<B256, RecordError> {
        Ok(B256::from_slice(self.take(32)?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let len = usize::try_from(self.u64()?).map_err(|_| RecordError(self.what))?;
        self.take(len)
    }
    fn finish(&self) -> Result<(), RecordError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(RecordError(self.what))
        }
    }
}

fn write_payload(w: &mut Writer, payload: &ConsensusPayload) {
    w.bytes(&payload.header.abi_encode())
        .b256(&payload.archive)
        .i64(payload.fee_asset_price_modifier);
}

fn read_payload(r: &mut Reader<'_>) -> Result<ConsensusPayload, RecordError> {
    let header =
        CheckpointHeader::abi_decode_validate(r.bytes()?).map_err(|_| RecordError(r.what))?;
    Ok(ConsensusPayload {
        header,
        archive: r.b256()?,
        fee_asset_price_modifier: r.i64()?,
    })
}

/// A block header as stored, with the archive after the block. Headers and txs live in
/// separate tables so that tips, chain checks and parents read ~1 KB, not whole blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredHeader {
    pub(crate) header: BlockHeader,
    pub(crate) archive_root: B256,
    pub(crate) archive: ArchiveTree,
}

pub(crate) fn encode_header(stored: &StoredHeader) -> Vec<u8> {
    let mut w = Writer::default();
    w.b256(&stored.archive_root)
        .bytes(&stored.archive.frontier_bytes())
        .bytes(&stored.header.abi_encode());
    w.0
}

pub(crate) fn decode_header(bytes: &[u8]) -> Result<StoredHeader, RecordError> {
    let mut r = Reader {
        bytes,
        what: "block header",
    };
    let archive_root = r.b256()?;
    let archive =
        ArchiveTree::from_frontier_bytes(r.bytes()?).map_err(|_| RecordError("block header"))?;
    let header =
        BlockHeader::abi_decode_validate(r.bytes()?).map_err(|_| RecordError("block header"))?;
    r.finish()?;
    Ok(StoredHeader {
        header,
        archive_root,
        archive,
    })
}

/// A block's txs: their packed encodings, concatenated.
pub(crate) fn encode_txs(txs: &[Tx]) -> Vec<u8> {
    let mut out = Vec::with_capacity(txs.len() * PACKED_TX_LENGTH);
    for tx in txs {
        tx.encode_packed(&mut out);
    }
    out
}

pub(crate) fn decode_txs(bytes: &[u8]) -> Result<Vec<Tx>, RecordError> {
    if !bytes.len().is_multiple_of(PACKED_TX_LENGTH) {
        return Err(RecordError("block txs"));
    }
    Ok(bytes
        .chunks_exact(PACKED_TX_LENGTH)
        .filter_map(|chunk| chunk.try_into().ok())
        .map(Tx::decode_packed)
        .collect())
}

pub(crate) fn encode_checkpoint(record: &CheckpointRecord) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(record.number);
    write_payload(&mut w, &record.payload);
    w.u64(record.start_block).u64(record.block_count);
    w.u64(record.l1.number)
        .b256(&record.l1.hash)
        .u64(record.l1.timestamp);
    w.u64(record.attestations.len() as u64);
    for (position, signature) in &record.attestations {
        w.u64(u64::from(*position));
        w.0.extend_from_slice(signature.as_bytes());
    }
    w.0
}

pub(crate) fn decode_checkpoint(bytes: &[u8]) -> Result<CheckpointRecord, RecordError> {
    let mut r = Reader {
        bytes,
        what: "checkpoint",
    };
    let number = r.u64()?;
    let payload = read_payload(&mut r)?;
    let start_block = r.u64()?;
    let block_count = r.u64()?;
    let l1 = L1Ref {
        number: r.u64()?,
        hash: r.b256()?,
        timestamp: r.u64()?,
    };
    let count = r.u64()?;
    let mut attestations = Vec::new();
    for _ in 0..count {
        let position = u32::try_from(r.u64()?).map_err(|_| RecordError("checkpoint"))?;
        let signature = Signature::from_slice(r.take(65)?).ok_or(RecordError("checkpoint"))?;
        attestations.push((position, signature));
    }
    r.finish()?;
    if block_count == 0 {
        return Err(RecordError("checkpoint"));
    }
    Ok(CheckpointRecord {
        number,
        payload,
        start_block,
        block_count,
        l1,
        attestations,
    })
}

pub(crate) fn encode_proposed(record: &ProposedCheckpoint) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(record.number);
    write_payload(&mut w, &record.payload);
    w.u64(record.start_block)
        .u64(record.block_count)
        .u64(record.total_mana_used);
    w.0
}

pub(crate) fn decode_proposed(bytes: &[u8]) -> Result<ProposedCheckpoint, RecordError> {
    let mut r = Reader {
        bytes,
        what: "proposed checkpoint",
    };
    let record = ProposedCheckpoint {
        number: r.u64()?,
        payload: read_payload(&mut r)?,
        start_block: r.u64()?,
        block_count: r.u64()?,
        total_mana_used: r.u64()?,
    };
    r.finish()?;
    if record.block_count == 0 {
        return Err(RecordError("proposed checkpoint"));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncation_fails() {
        let payload = ConsensusPayload {
            archive: B256::repeat_byte(2),
            fee_asset_price_modifier: -75,
            ..Default::default()
        };
        let record = CheckpointRecord {
            number: 3,
            payload: payload.clone(),
            start_block: 5,
            block_count: 2,
            l1: L1Ref {
                number: 9,
                hash: B256::repeat_byte(1),
                timestamp: 77,
            },
            attestations: vec![(4, Signature::from_bytes([7; 65]))],
        };
        let bytes = encode_checkpoint(&record);
        assert_eq!(decode_checkpoint(&bytes), Ok(record));
        assert!(decode_checkpoint(&bytes[..bytes.len() - 1]).is_err());

        let proposed = ProposedCheckpoint {
            number: 4,
            payload,
            start_block: 7,
            block_count: 1,
            total_mana_used: 12_345,
        };
        let bytes = encode_proposed(&proposed);
        assert_eq!(decode_proposed(&bytes), Ok(proposed));
        assert!(decode_proposed(&[bytes.as_slice(), &[0]].concat()).is_err());
    }
}
