//! Entry points for the fuzz targets (`fuzz/`), behind the `fuzzing` feature: the stored
//! records' codecs (RocksDB values) are crate-private, and the public surface stays narrow
//! without the feature.

use tandem_proto::{Address, B256, archive::ArchiveTree};

use crate::{
    account::Account,
    records::{decode_block_record, decode_undo, encode_block_record, encode_undo},
    world::StateError,
};

/// The stored record kinds with a value codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A block's hash, state root and archive frontier (`blocks`).
    Block,
    /// A block's undo log (`undo`).
    Undo,
    /// An account (`accounts`).
    Account,
}

impl Record {
    /// Every kind.
    pub const ALL: [Self; 3] = [Self::Block, Self::Undo, Self::Account];
}

/// Decodes a stored value of `record` and encodes the value again.
pub fn decode_then_encode(record: Record, bytes: &[u8]) -> Result<Vec<u8>, StateError> {
    Ok(match record {
        Record::Block => {
            let block = decode_block_record(bytes)?;
            encode_block_record(&block.block_hash, &block.state_root, &block.archive)
        }
        Record::Undo => encode_undo(&decode_undo(bytes)?),
        Record::Account => Account::decode(bytes)
            .ok_or(StateError::Corrupt("account value"))?
            .encode()
            .to_vec(),
    })
}

/// Encodes a block record.
pub fn encode_block(block_hash: &B256, state_root: &B256, archive: &ArchiveTree) -> Vec<u8> {
    encode_block_record(block_hash, state_root, archive)
}

/// Encodes an undo log: each touched address with its account before the block (`None` when it
/// did not exist).
pub fn encode_undo_log(entries: &[(Address, Option<Account>)]) -> Vec<u8> {
    encode_undo(entries)
}
