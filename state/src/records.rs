//! The world state's on-disk encodings: block records and undo logs.

use tandem_proto::{Address, B256, archive::ArchiveTree};

use crate::{
    account::{Account, AccountLeaf, account_key},
    world::{StateError, Version},
};

pub(crate) fn block_record(version: &Version) -> Vec<u8> {
    encode_block_record(&version.block_hash, &version.tree.root(), &version.archive)
}

/// `block hash || state root || archive frontier`.
pub(crate) fn encode_block_record(
    block_hash: &B256,
    state_root: &B256,
    archive: &ArchiveTree,
) -> Vec<u8> {
    let mut record = Vec::with_capacity(64 + 8 + 32 * 32);
    record.extend_from_slice(block_hash.as_slice());
    record.extend_from_slice(state_root.as_slice());
    record.extend_from_slice(&archive.frontier_bytes());
    record
}

pub(crate) struct BlockRecord {
    pub(crate) block_hash: B256,
    pub(crate) state_root: B256,
    pub(crate) archive: ArchiveTree,
}

pub(crate) fn decode_block_record(bytes: &[u8]) -> Result<BlockRecord, StateError> {
    if bytes.len() < 64 {
        return Err(StateError::Corrupt("block record shorter than 64 bytes"));
    }
    let archive = ArchiveTree::from_frontier_bytes(&bytes[64..])
        .map_err(|_| StateError::Corrupt("block record has an invalid archive frontier"))?;
    Ok(BlockRecord {
        block_hash: B256::from_slice(&bytes[..32]),
        state_root: B256::from_slice(&bytes[32..64]),
        archive,
    })
}

/// Undo entry: `address (20) || present (1) || account (24, if present)`.
pub(crate) fn encode_undo(entries: &[(Address, Option<Account>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 45);
    for (address, previous) in entries {
        out.extend_from_slice(address.as_slice());
        match previous {
            Some(account) => {
                out.push(1);
                out.extend_from_slice(&account.encode());
            }
            None => out.push(0),
        }
    }
    out
}

pub(crate) fn decode_undo(mut bytes: &[u8]) -> Result<Vec<(Address, Option<Account>)>, StateError> {
    let corrupt = StateError::Corrupt("undo log does not decode");
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 21 {
            return Err(corrupt);
        }
        let address = Address::from_slice(&bytes[..20]);
        let present = bytes[20];
        bytes = &bytes[21..];
        let previous = match present {
            0 => None,
            1 if bytes.len() >= 24 => {
                let account =
                    Account::decode(&bytes[..24]).ok_or(StateError::Corrupt("undo account"))?;
                bytes = &bytes[24..];
                Some(account)
            }
            _ => return Err(corrupt),
        };
        entries.push((address, previous));
    }
    Ok(entries)
}

pub(crate) const fn number_key(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

/// Undo entries as tree changes, sorted by key.
pub(crate) fn undo_changes(
    entries: &[(Address, Option<Account>)],
) -> Vec<(B256, Option<AccountLeaf>)> {
    let mut changes: Vec<(B256, Option<AccountLeaf>)> = entries
        .iter()
        .map(|(address, previous)| {
            (
                account_key(address),
                previous.map(|account| AccountLeaf {
                    address: *address,
                    account,
                }),
            )
        })
        .collect();
    changes.sort_by_key(|entry| entry.0);
    changes
}
