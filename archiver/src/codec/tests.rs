use super::*;

#[test]
fn the_streamed_body_hash_is_the_hash_of_the_encoded_body() {
    let domain = tandem_proto::SigningDomain {
        chain_id: 1,
        rollup: tandem_proto::Address::ZERO,
    };
    let key = tandem_proto::SigningKey::from_bytes(&[3; 32]).unwrap();
    let tx = |nonce| {
        Tx::sign(
            tandem_proto::TxPayload {
                nonce,
                ..Default::default()
            },
            &domain,
            &key,
        )
    };
    let block = |number, txs: Vec<Tx>| tandem_proto::Block {
        header: BlockHeader {
            block_number: number,
            total_fees: u128::from(number) * 11,
            ..Default::default()
        },
        txs,
    };
    let blocks = [
        block(1, vec![tx(0), tx(1)]),
        block(2, Vec::new()),
        block(3, vec![tx(2)]),
    ];
    let packed: Vec<Vec<u8>> = blocks.iter().map(|b| encode_txs(b.txs.iter())).collect();
    let streamed = checkpoint_body_hash(
        blocks
            .iter()
            .zip(&packed)
            .map(|(b, txs)| (&b.header, txs.as_slice())),
    )
    .unwrap();
    assert_eq!(
        streamed,
        tandem_proto::keccak256(tandem_proto::encode_checkpoint_body(&blocks))
    );
    assert!(checkpoint_body_hash([(&blocks[0].header, &packed[0][1..])].into_iter()).is_err());
}

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
        source: PayloadSource::Peer,
    };
    let bytes = encode_checkpoint(&record);
    assert_eq!(decode_checkpoint(&bytes), Ok(record));
    assert!(decode_checkpoint(&bytes[..bytes.len() - 1]).is_err());

    let proposed = ProposedCheckpoint {
        number: 4,
        payload: payload.clone(),
        start_block: 7,
        block_count: 1,
        total_mana_used: 12_345,
        proposer_signature: Signature::from_bytes([3; 65]),
    };
    let bytes = encode_proposed(&proposed);
    assert_eq!(decode_proposed(&bytes), Ok(proposed));
    assert!(decode_proposed(&[bytes.as_slice(), &[0]].concat()).is_err());

    let event = L1CheckpointEvent {
        number: 5,
        header_hash: B256::repeat_byte(5),
        archive: B256::repeat_byte(6),
        slot: 40,
        l1: L1Ref::default(),
        tx_hash: B256::repeat_byte(7),
        calldata: None,
    };
    for awaiting in [
        AwaitingCheckpoint {
            event: event.clone(),
            problem: Some(BodyProblem::CalldataMissing),
        },
        AwaitingCheckpoint {
            event: L1CheckpointEvent {
                calldata: Some(ProposeCalldata {
                    header: payload.header,
                    fee_asset_price_modifier: 9,
                    attestations: vec![(1, Signature::from_bytes([1; 65]))],
                    body: vec![1, 2, 3],
                }),
                ..event
            },
            problem: None,
        },
    ] {
        let bytes = encode_awaiting(&awaiting);
        assert_eq!(decode_awaiting(&bytes), Ok(awaiting));
        assert!(decode_awaiting(&bytes[..bytes.len() - 1]).is_err());
    }

    let tips = L2Tips::default();
    assert_eq!(decode_tips(&encode_tips(&tips)), Ok(tips));
}

#[test]
fn a_header_whose_frontier_disagrees_with_its_root_is_refused() {
    let mut archive = ArchiveTree::new();
    let root = archive.append(B256::repeat_byte(1)).unwrap();
    let record = HeaderRecord {
        header: BlockHeader::default(),
        hash: BlockHeader::default().hash(),
        archive_root: root,
        archive: archive.clone(),
    };
    assert_eq!(decode_header(&encode_header(&record)), Ok(record.clone()));
    let wrong = HeaderRecord {
        archive_root: B256::repeat_byte(9),
        ..record
    };
    assert!(decode_header(&encode_header(&wrong)).is_err());
}

/// Found by fuzzing (`fuzz/regressions/archiver_records/`): a length-prefixed ABI header with
/// bytes after it decoded (the ABI decoder stops after a static struct) to a record that
/// re-encodes differently. Both header fields must now hold exactly the encoding.
#[test]
fn a_header_field_with_trailing_bytes_is_refused() {
    let record = HeaderRecord {
        header: BlockHeader::default(),
        hash: BlockHeader::default().hash(),
        archive_root: ArchiveTree::new().root(),
        archive: ArchiveTree::new(),
    };
    let mut w = Writer::default();
    let mut padded = record.header.abi_encode();
    padded.push(0);
    w.b256(&record.hash)
        .b256(&record.archive_root)
        .bytes(&record.archive.frontier_bytes())
        .bytes(&padded);
    assert_eq!(decode_header(&encode_header(&record)), Ok(record));
    assert_eq!(decode_header(&w.0), Err(RecordError("block header")));

    let proposed = ProposedCheckpoint {
        number: 1,
        payload: ConsensusPayload::default(),
        start_block: 1,
        block_count: 1,
        total_mana_used: 0,
        proposer_signature: Signature::default(),
    };
    let encoded = encode_proposed(&proposed);
    assert_eq!(decode_proposed(&encoded), Ok(proposed));
    // Grow the header field by one byte: its u64 length sits right after the number.
    let header_len = CheckpointHeader::default().abi_encode().len();
    let mut grown = encoded[..8].to_vec();
    grown.extend_from_slice(&(header_len as u64 + 1).to_be_bytes());
    grown.extend_from_slice(&encoded[16..16 + header_len]);
    grown.push(0);
    grown.extend_from_slice(&encoded[16 + header_len..]);
    assert_eq!(
        decode_proposed(&grown),
        Err(RecordError("proposed checkpoint"))
    );
}
