//! Binary encodings of the stored records. Fixed-width fields, length-prefixed variable parts;
//! every decoder checks lengths and fails with [`RecordError`] instead of panicking.

use alloy_sol_types::SolValue;
use tandem_proto::{
    B256, BlockHeader, BlockId, CheckpointHeader, CheckpointId, ConsensusPayload, L2TipId, L2Tips,
    PACKED_TX_LENGTH, SIGNATURE_LENGTH, Signature, Tx, archive::ArchiveTree,
};

use crate::records::{
    AwaitingCheckpoint, BodyProblem, CheckpointRecord, L1CheckpointEvent, L1Ref, PayloadSource,
    ProposeCalldata, ProposedCheckpoint, RecordError, StoredHeader,
};

#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }
    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn i64(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    pub(crate) fn b256(&mut self, value: &B256) -> &mut Self {
        self.0.extend_from_slice(value.as_slice());
        self
    }
    fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.u64(value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }
    fn signature(&mut self, value: &Signature) -> &mut Self {
        self.0.extend_from_slice(value.as_bytes());
        self
    }
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }
    const fn err(&self) -> RecordError {
        RecordError(self.what)
    }
    fn take(&mut self, len: usize) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < len {
            return Err(self.err());
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let err = self.err();
        self.take(N)?.try_into().map_err(|_| err)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub(crate) fn b256(&mut self) -> Result<B256, RecordError> {
        Ok(B256::from(self.array::<32>()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let len = usize::try_from(self.u64()?).map_err(|_| self.err())?;
        self.take(len)
    }
    fn signature(&mut self) -> Result<Signature, RecordError> {
        Ok(Signature::from_bytes(self.array::<SIGNATURE_LENGTH>()?))
    }
    pub(crate) fn finish(&self) -> Result<(), RecordError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.err())
        }
    }
}

fn write_payload(w: &mut Writer, payload: &ConsensusPayload) {
    w.bytes(&payload.header.abi_encode())
        .b256(&payload.archive)
        .i64(payload.fee_asset_price_modifier);
}

/// An ABI-encoded header in a length-prefixed field: the field must hold exactly the encoding
/// (`abi_decode_validate` ignores bytes after a static struct, so a field with trailing bytes
/// would decode to a header that re-encodes differently; found by fuzzing).
fn exact_abi<T: SolValue + From<<T::SolType as alloy_sol_types::SolType>::RustType>>(
    bytes: &[u8],
    err: RecordError,
) -> Result<T, RecordError> {
    let value = T::abi_decode_validate(bytes).map_err(|_| err)?;
    if value.abi_encoded_size() != bytes.len() {
        return Err(err);
    }
    Ok(value)
}

fn read_checkpoint_header(r: &mut Reader<'_>) -> Result<CheckpointHeader, RecordError> {
    let err = r.err();
    exact_abi(r.bytes()?, err)
}

fn read_payload(r: &mut Reader<'_>) -> Result<ConsensusPayload, RecordError> {
    Ok(ConsensusPayload {
        header: read_checkpoint_header(r)?,
        archive: r.b256()?,
        fee_asset_price_modifier: r.i64()?,
    })
}

fn write_l1(w: &mut Writer, l1: &L1Ref) {
    w.u64(l1.number).b256(&l1.hash).u64(l1.timestamp);
}

fn read_l1(r: &mut Reader<'_>) -> Result<L1Ref, RecordError> {
    Ok(L1Ref {
        number: r.u64()?,
        hash: r.b256()?,
        timestamp: r.u64()?,
    })
}

fn write_attestations(w: &mut Writer, attestations: &[(u32, Signature)]) {
    w.u64(attestations.len() as u64);
    for (position, signature) in attestations {
        w.u32(*position).signature(signature);
    }
}

fn read_attestations(r: &mut Reader<'_>) -> Result<Vec<(u32, Signature)>, RecordError> {
    let count = r.u64()?;
    // Each attestation takes 69 bytes: bound the allocation by what is there.
    let mut attestations = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(256));
    for _ in 0..count {
        attestations.push((r.u32()?, r.signature()?));
    }
    Ok(attestations)
}

/// A block header with the archive after the block. Headers and txs live in separate tables so
/// that tips, chain checks and parents read ~1 KB, not whole blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderRecord {
    pub(crate) header: BlockHeader,
    /// The header's hash (stored, so reads do not hash again).
    pub(crate) hash: B256,
    pub(crate) archive_root: B256,
    pub(crate) archive: ArchiveTree,
}

/// `hash || archive root || frontier || abi.encode(header)`.
pub(crate) fn encode_header(stored: &HeaderRecord) -> Vec<u8> {
    let mut w = Writer::default();
    w.b256(&stored.hash)
        .b256(&stored.archive_root)
        .bytes(&stored.archive.frontier_bytes())
        .bytes(&stored.header.abi_encode());
    w.0
}

/// The full record (the writer's: it extends the archive), every part checked.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<HeaderRecord, RecordError> {
    let mut r = Reader::new(bytes, "block header");
    let hash = r.b256()?;
    let archive_root = r.b256()?;
    let archive = ArchiveTree::from_frontier_bytes(r.bytes()?).map_err(|_| r.err())?;
    let header: BlockHeader = exact_abi(r.bytes()?, r.err())?;
    r.finish()?;
    if archive.root() != archive_root || header.hash() != hash {
        return Err(r.err());
    }
    Ok(HeaderRecord {
        header,
        hash,
        archive_root,
        archive,
    })
}

/// Header, hash and archive root of a header record, without restoring the archive frontier
/// (~32 hashes), hashing or re-encoding the header: what readers need, fast. The bytes are the
/// writer's own (RocksDB checksums them); the full decode checks everything.
pub(crate) fn decode_header_only(bytes: &[u8]) -> Result<StoredHeader, RecordError> {
    let mut r = Reader::new(bytes, "block header");
    let hash = r.b256()?;
    let archive_root = r.b256()?;
    let _frontier = r.bytes()?;
    let header = BlockHeader::abi_decode(r.bytes()?).map_err(|_| r.err())?;
    r.finish()?;
    Ok(StoredHeader {
        hash,
        header,
        archive_root,
    })
}

/// A block's txs: their packed encodings, concatenated.
pub(crate) fn encode_txs<'a>(txs: impl ExactSizeIterator<Item = &'a Tx>) -> Vec<u8> {
    let mut out = Vec::with_capacity(txs.len() * PACKED_TX_LENGTH);
    for tx in txs {
        tx.encode_packed(&mut out);
    }
    out
}

/// `keccak256` of the checkpoint body of `blocks` (each a header and its stored, packed txs:
/// see [`encode_txs`]), hashed as [`tandem_proto::encode_checkpoint_body`] lays it out, without
/// decoding the txs or building the body.
pub(crate) fn checkpoint_body_hash<'a>(
    blocks: impl ExactSizeIterator<Item = (&'a BlockHeader, &'a [u8])>,
) -> Result<B256, RecordError> {
    let count = |n: usize| u32::try_from(n).map_err(|_| RecordError("checkpoint body count"));
    let mut hasher = alloy::primitives::Keccak256::new();
    hasher.update([tandem_proto::CHECKPOINT_BODY_VERSION]);
    hasher.update(count(blocks.len())?.to_be_bytes());
    for (header, txs) in blocks {
        if !txs.len().is_multiple_of(PACKED_TX_LENGTH) {
            return Err(RecordError("block txs"));
        }
        hasher.update(header.abi_encode());
        hasher.update(count(txs.len() / PACKED_TX_LENGTH)?.to_be_bytes());
        hasher.update(txs);
    }
    Ok(hasher.finalize())
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

pub(crate) fn encode_signature(signature: &Signature) -> Vec<u8> {
    signature.as_bytes().to_vec()
}

pub(crate) fn decode_signature(bytes: &[u8]) -> Result<Signature, RecordError> {
    let mut r = Reader::new(bytes, "block signature");
    let signature = r.signature()?;
    r.finish()?;
    Ok(signature)
}

const fn source_code(source: PayloadSource) -> u8 {
    match source {
        PayloadSource::L1Calldata => 0,
        PayloadSource::LocalProposal => 1,
        PayloadSource::Peer => 2,
        PayloadSource::LocalBlocks => 3,
    }
}

pub(crate) fn encode_checkpoint(record: &CheckpointRecord) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(record.number);
    write_payload(&mut w, &record.payload);
    w.u64(record.start_block).u64(record.block_count);
    write_l1(&mut w, &record.l1);
    write_attestations(&mut w, &record.attestations);
    w.u8(source_code(record.source));
    w.0
}

pub(crate) fn decode_checkpoint(bytes: &[u8]) -> Result<CheckpointRecord, RecordError> {
    let mut r = Reader::new(bytes, "checkpoint");
    let record = CheckpointRecord {
        number: r.u64()?,
        payload: read_payload(&mut r)?,
        start_block: r.u64()?,
        block_count: r.u64()?,
        l1: read_l1(&mut r)?,
        attestations: read_attestations(&mut r)?,
        source: match r.u8()? {
            0 => PayloadSource::L1Calldata,
            1 => PayloadSource::LocalProposal,
            2 => PayloadSource::Peer,
            3 => PayloadSource::LocalBlocks,
            _ => return Err(r.err()),
        },
    };
    r.finish()?;
    if record.block_count == 0 || record.start_block.checked_add(record.block_count).is_none() {
        return Err(r.err());
    }
    Ok(record)
}

pub(crate) fn encode_proposed(record: &ProposedCheckpoint) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(record.number);
    write_payload(&mut w, &record.payload);
    w.u64(record.start_block)
        .u64(record.block_count)
        .u64(record.total_mana_used)
        .signature(&record.proposer_signature);
    w.0
}

pub(crate) fn decode_proposed(bytes: &[u8]) -> Result<ProposedCheckpoint, RecordError> {
    let mut r = Reader::new(bytes, "proposed checkpoint");
    let record = ProposedCheckpoint {
        number: r.u64()?,
        payload: read_payload(&mut r)?,
        start_block: r.u64()?,
        block_count: r.u64()?,
        total_mana_used: r.u64()?,
        proposer_signature: r.signature()?,
    };
    r.finish()?;
    if record.block_count == 0 || record.start_block.checked_add(record.block_count).is_none() {
        return Err(r.err());
    }
    Ok(record)
}

const fn problem_code(problem: Option<BodyProblem>) -> u8 {
    match problem {
        None => 0,
        Some(BodyProblem::CalldataMissing) => 1,
        Some(BodyProblem::Undecodable) => 2,
        Some(BodyProblem::DoesNotMatchHeader) => 3,
    }
}

pub(crate) fn encode_awaiting(record: &AwaitingCheckpoint) -> Vec<u8> {
    let event = &record.event;
    let mut w = Writer::default();
    w.u64(event.number)
        .b256(&event.header_hash)
        .b256(&event.archive)
        .u64(event.slot);
    write_l1(&mut w, &event.l1);
    w.b256(&event.tx_hash).u8(problem_code(record.problem));
    match &event.calldata {
        None => {
            w.u8(0);
        }
        Some(calldata) => {
            w.u8(1)
                .bytes(&calldata.header.abi_encode())
                .i64(calldata.fee_asset_price_modifier);
            write_attestations(&mut w, &calldata.attestations);
            w.bytes(&calldata.body);
        }
    }
    w.0
}

pub(crate) fn decode_awaiting(bytes: &[u8]) -> Result<AwaitingCheckpoint, RecordError> {
    let mut r = Reader::new(bytes, "awaiting L1 checkpoint");
    let number = r.u64()?;
    let header_hash = r.b256()?;
    let archive = r.b256()?;
    let slot = r.u64()?;
    let l1 = read_l1(&mut r)?;
    let tx_hash = r.b256()?;
    let problem = match r.u8()? {
        0 => None,
        1 => Some(BodyProblem::CalldataMissing),
        2 => Some(BodyProblem::Undecodable),
        3 => Some(BodyProblem::DoesNotMatchHeader),
        _ => return Err(r.err()),
    };
    let calldata = match r.u8()? {
        0 => None,
        1 => Some(ProposeCalldata {
            header: read_checkpoint_header(&mut r)?,
            fee_asset_price_modifier: r.i64()?,
            attestations: read_attestations(&mut r)?,
            body: r.bytes()?.to_vec(),
        }),
        _ => return Err(r.err()),
    };
    r.finish()?;
    Ok(AwaitingCheckpoint {
        event: L1CheckpointEvent {
            number,
            header_hash,
            archive,
            slot,
            l1,
            tx_hash,
            calldata,
        },
        problem,
    })
}

fn write_tip(w: &mut Writer, tip: &L2TipId) {
    w.u64(tip.block.number)
        .b256(&tip.block.hash)
        .u64(tip.checkpoint.number)
        .b256(&tip.checkpoint.hash);
}

fn read_tip(r: &mut Reader<'_>) -> Result<L2TipId, RecordError> {
    Ok(L2TipId {
        block: BlockId {
            number: r.u64()?,
            hash: r.b256()?,
        },
        checkpoint: CheckpointId {
            number: r.u64()?,
            hash: r.b256()?,
        },
    })
}

pub(crate) fn encode_tips(tips: &L2Tips) -> Vec<u8> {
    let mut w = Writer::default();
    for tip in [
        &tips.proposed,
        &tips.proposed_checkpoint,
        &tips.checkpointed,
        &tips.finalized,
    ] {
        write_tip(&mut w, tip);
    }
    w.0
}

pub(crate) fn decode_tips(bytes: &[u8]) -> Result<L2Tips, RecordError> {
    let mut r = Reader::new(bytes, "tips");
    let tips = L2Tips {
        proposed: read_tip(&mut r)?,
        proposed_checkpoint: read_tip(&mut r)?,
        checkpointed: read_tip(&mut r)?,
        finalized: read_tip(&mut r)?,
    };
    r.finish()?;
    Ok(tips)
}

pub(crate) fn encode_l1_ref(l1: &L1Ref) -> Vec<u8> {
    let mut w = Writer::default();
    write_l1(&mut w, l1);
    w.0
}

pub(crate) fn decode_l1_ref(bytes: &[u8]) -> Result<L1Ref, RecordError> {
    let mut r = Reader::new(bytes, "L1 block reference");
    let l1 = read_l1(&mut r)?;
    r.finish()?;
    Ok(l1)
}

#[cfg(test)]
mod tests;
