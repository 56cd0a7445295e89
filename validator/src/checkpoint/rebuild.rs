//! Which header field a proposal got wrong, against the header its blocks make
//! ([`tandem_proto::checkpoint_header_of`]).

use tandem_proto::CheckpointHeader;

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
    use tandem_proto::{Address, B256, Block, BlockHeader, checkpoint_header_of, keccak256};

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
        let (header, body) = checkpoint_header_of(B256::ZERO, &blocks).unwrap();
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
        assert_eq!(checkpoint_header_of(B256::ZERO, &[]), None);
    }
}
