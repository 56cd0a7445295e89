//! The checkpoint header its blocks make: what a validator compares a proposal with, and what a
//! proposer (the sequencer) puts in its own.

use tandem_proto::{
    Block, CheckpointHeader, block_headers_hash, encode_checkpoint_body, keccak256,
};

/// Why blocks cannot make one checkpoint header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    /// No blocks.
    #[error("a checkpoint has at least one block")]
    NoBlocks,
    /// Mana or fees overflow.
    #[error("the blocks' {0} overflows")]
    Overflow(&'static str),
}

/// The checkpoint header of `blocks` (in order, all of one checkpoint) and its body: globals
/// from the first block (all blocks of a checkpoint share them), the parent archive before the
/// first block, the hash of the block hashes and of the body, mana and fees summed.
pub fn checkpoint_header(blocks: &[Block]) -> Result<(CheckpointHeader, Vec<u8>), RebuildError> {
    let first = &blocks.first().ok_or(RebuildError::NoBlocks)?.header;
    let mut mana: u64 = 0;
    let mut fees: u128 = 0;
    for block in blocks {
        mana = mana
            .checked_add(block.header.total_mana_used)
            .ok_or(RebuildError::Overflow("mana"))?;
        fees = fees
            .checked_add(block.header.total_fees)
            .ok_or(RebuildError::Overflow("fees"))?;
    }
    let hashes: Vec<_> = blocks.iter().map(Block::hash).collect();
    let body = encode_checkpoint_body(blocks);
    let header = CheckpointHeader {
        last_archive_root: first.last_archive_root,
        block_headers_hash: block_headers_hash(&hashes),
        body_hash: keccak256(&body),
        slot: first.slot,
        timestamp: first.timestamp,
        coinbase: first.coinbase,
        fee_recipient: first.fee_recipient,
        fee_per_mana: first.fee_per_mana,
        total_mana_used: mana,
        accumulated_fees: fees,
    };
    Ok((header, body))
}

/// The first field in which `claimed` differs from `rebuilt`.
pub(crate) fn first_difference(
    claimed: &CheckpointHeader,
    rebuilt: &CheckpointHeader,
) -> Option<&'static str> {
    let fields = [
        (
            claimed.last_archive_root == rebuilt.last_archive_root,
            "last_archive_root",
        ),
        (
            claimed.block_headers_hash == rebuilt.block_headers_hash,
            "block_headers_hash",
        ),
        (claimed.body_hash == rebuilt.body_hash, "body_hash"),
        (claimed.slot == rebuilt.slot, "slot"),
        (claimed.timestamp == rebuilt.timestamp, "timestamp"),
        (claimed.coinbase == rebuilt.coinbase, "coinbase"),
        (
            claimed.fee_recipient == rebuilt.fee_recipient,
            "fee_recipient",
        ),
        (claimed.fee_per_mana == rebuilt.fee_per_mana, "fee_per_mana"),
        (
            claimed.total_mana_used == rebuilt.total_mana_used,
            "total_mana_used",
        ),
        (
            claimed.accumulated_fees == rebuilt.accumulated_fees,
            "accumulated_fees",
        ),
    ];
    fields
        .into_iter()
        .find(|(equal, _)| !equal)
        .map(|(_, field)| field)
}

#[cfg(test)]
mod tests {
    use tandem_proto::{Address, BlockHeader};

    use super::*;

    #[test]
    fn every_tampered_field_is_named() {
        let block = |number: u64, mana: u64| Block {
            header: BlockHeader {
                block_number: number,
                slot: 7,
                timestamp: 700,
                coinbase: Address::repeat_byte(1),
                fee_per_mana: 3,
                total_mana_used: mana,
                total_fees: u128::from(mana) * 3,
                ..BlockHeader::default()
            },
            txs: vec![],
        };
        let blocks = [block(1, 10), block(2, 20)];
        let (header, body) = checkpoint_header(&blocks).unwrap();
        assert_eq!(header.total_mana_used, 30);
        assert_eq!(header.accumulated_fees, 90);
        assert_eq!(header.body_hash, keccak256(&body));
        assert_eq!(first_difference(&header, &header), None);
        let mut tampered = header.clone();
        tampered.fee_per_mana = 4;
        assert_eq!(first_difference(&tampered, &header), Some("fee_per_mana"));
        let mut tampered = header.clone();
        tampered.accumulated_fees += 1;
        assert_eq!(
            first_difference(&tampered, &header),
            Some("accumulated_fees")
        );
        assert_eq!(checkpoint_header(&[]), Err(RebuildError::NoBlocks));
    }
}
