//! Property tests of the wire format, hashing and signatures: round trips for every type, and
//! arbitrary, truncated or oversized input always gives an error, never a panic.

use proptest::prelude::*;
use tandem_proto::{
    Address, B256, Block, BlockHeader, BlockId, BlockProposal, Checkpoint, CheckpointAttestation,
    CheckpointHeader, CheckpointId, CheckpointProposal, ConsensusPayload, L2TipId, L2Tips,
    MAX_ATTESTATION_SIZE, MAX_FEE_ASSET_PRICE_MODIFIER_BPS, Signature, SigningDomain, SigningKey,
    Tx, TxPayload, WireError, WireMessage, decode_checkpoint_body, encode_checkpoint_body,
};

fn b256() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>().prop_map(B256::from)
}

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address::from)
}

fn signature() -> impl Strategy<Value = Signature> {
    proptest::collection::vec(any::<u8>(), 65)
        .prop_map(|bytes| Signature::from_slice(&bytes).unwrap())
}

fn tx() -> impl Strategy<Value = Tx> {
    (
        any::<u64>(),
        any::<u64>(),
        address(),
        any::<u128>(),
        any::<u128>(),
        any::<u64>(),
        signature(),
    )
        .prop_map(
            |(chain_id, nonce, to, amount, max_fee_per_mana, mana_limit, signature)| Tx {
                payload: TxPayload {
                    chain_id,
                    nonce,
                    to,
                    amount,
                    max_fee_per_mana,
                    mana_limit,
                },
                signature,
            },
        )
}

prop_compose! {
    fn block_header()(
        roots in (b256(), b256(), b256()),
        ids in (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>()),
        time in (any::<u64>(), any::<u64>()),
        parties in (address(), address()),
        fees in (any::<u128>(), any::<u64>(), any::<u128>()),
    ) -> BlockHeader {
        BlockHeader {
            last_archive_root: roots.0,
            state_root: roots.1,
            body_hash: roots.2,
            chain_id: ids.0,
            rollup_version: ids.1,
            block_number: ids.2,
            checkpoint_number: ids.3,
            index_within_checkpoint: ids.4,
            slot: time.0,
            timestamp: time.1,
            coinbase: parties.0,
            fee_recipient: parties.1,
            fee_per_mana: fees.0,
            total_mana_used: fees.1,
            total_fees: fees.2,
        }
    }
}

prop_compose! {
    fn checkpoint_header()(
        roots in (b256(), b256(), b256()),
        time in (any::<u64>(), any::<u64>()),
        parties in (address(), address()),
        fees in (any::<u128>(), any::<u64>(), any::<u128>()),
    ) -> CheckpointHeader {
        CheckpointHeader {
            last_archive_root: roots.0,
            block_headers_hash: roots.1,
            body_hash: roots.2,
            slot: time.0,
            timestamp: time.1,
            coinbase: parties.0,
            fee_recipient: parties.1,
            fee_per_mana: fees.0,
            total_mana_used: fees.1,
            accumulated_fees: fees.2,
        }
    }
}

fn consensus_payload() -> impl Strategy<Value = ConsensusPayload> {
    (checkpoint_header(), b256(), -100i64..=100).prop_map(
        |(header, archive, fee_asset_price_modifier)| ConsensusPayload {
            header,
            archive,
            fee_asset_price_modifier,
        },
    )
}

fn block() -> impl Strategy<Value = Block> {
    (block_header(), proptest::collection::vec(tx(), 0..4))
        .prop_map(|(header, txs)| Block { header, txs })
}

fn block_proposal() -> impl Strategy<Value = BlockProposal> {
    (
        block_header(),
        b256(),
        proptest::collection::vec(b256(), 0..4),
        signature(),
        proptest::collection::vec(tx(), 0..3),
    )
        .prop_map(
            |(header, archive_root, tx_hashes, signature, txs)| BlockProposal {
                header,
                archive_root,
                tx_hashes,
                signature,
                txs,
            },
        )
}

fn tip() -> impl Strategy<Value = L2TipId> {
    (any::<u64>(), b256(), any::<u64>(), b256()).prop_map(
        |(block, block_hash, checkpoint, hash)| L2TipId {
            block: BlockId {
                number: block,
                hash: block_hash,
            },
            checkpoint: CheckpointId {
                number: checkpoint,
                hash,
            },
        },
    )
}

fn round_trips<T: WireMessage + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = value.to_wire_bytes();
    assert!(
        bytes.len() <= T::MAX_ENCODED_SIZE,
        "{} encodes above its own limit",
        T::NAME
    );
    let decoded = T::from_wire_bytes(&bytes).expect("decodes what it encoded");
    assert_eq!(&decoded, value);
    // Canonical: re-encoding gives the same bytes.
    assert_eq!(decoded.to_wire_bytes(), bytes);
}

/// Decoding arbitrary input and every prefix of a valid encoding must return, never panic.
fn never_panics<T: WireMessage>(valid: &[u8], garbage: &[u8]) {
    let _ = T::from_wire_bytes(garbage);
    for cut in 0..valid.len() {
        let _ = T::from_wire_bytes(&valid[..cut]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn tx_round_trip(value in tx(), garbage in proptest::collection::vec(any::<u8>(), 0..512)) {
        let hash = value.hash();
        round_trips(&value);
        let decoded = Tx::from_wire_bytes(&value.to_wire_bytes()).unwrap();
        prop_assert_eq!(decoded.hash(), hash);
        never_panics::<Tx>(&value.to_wire_bytes(), &garbage);
    }

    #[test]
    fn block_round_trip(value in block(), garbage in proptest::collection::vec(any::<u8>(), 0..512)) {
        let hash = value.hash();
        round_trips(&value);
        prop_assert_eq!(Block::from_wire_bytes(&value.to_wire_bytes()).unwrap().hash(), hash);
        never_panics::<Block>(&value.to_wire_bytes(), &garbage);
    }

    #[test]
    fn checkpoint_round_trip(
        number in any::<u64>(),
        payload in consensus_payload(),
        blocks in proptest::collection::vec(block(), 0..3),
        garbage in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let value = Checkpoint { number, payload, blocks };
        round_trips(&value);
        never_panics::<Checkpoint>(&value.to_wire_bytes(), &garbage);
    }

    #[test]
    fn block_proposal_round_trip(value in block_proposal(), garbage in proptest::collection::vec(any::<u8>(), 0..512)) {
        round_trips(&value);
        never_panics::<BlockProposal>(&value.to_wire_bytes(), &garbage);
    }

    #[test]
    fn checkpoint_proposal_round_trip(
        payload in consensus_payload(),
        signature in signature(),
        last_block in proptest::option::of(block_proposal()),
        garbage in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let value = CheckpointProposal { payload, signature, last_block };
        round_trips(&value);
        never_panics::<CheckpointProposal>(&value.to_wire_bytes(), &garbage);
    }

    #[test]
    fn attestation_round_trip(
        payload in consensus_payload(),
        signatures in (signature(), signature()),
        garbage in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let value = CheckpointAttestation { payload, signature: signatures.0, proposer_signature: signatures.1 };
        round_trips(&value);
        never_panics::<CheckpointAttestation>(&value.to_wire_bytes(), &garbage);
    }

    #[test]
    fn tips_round_trip(tips in (tip(), tip(), tip(), tip()), garbage in proptest::collection::vec(any::<u8>(), 0..256)) {
        let value = L2Tips { proposed: tips.0, proposed_checkpoint: tips.1, checkpointed: tips.2, finalized: tips.3 };
        round_trips(&value);
        never_panics::<L2Tips>(&value.to_wire_bytes(), &garbage);
    }

    #[test]
    fn signatures_recover_the_same_signer_after_a_round_trip(
        secret in any::<[u8; 32]>(),
        payload in consensus_payload(),
        header in block_header(),
        chain_id in any::<u64>(),
        rollup in address(),
    ) {
        let Ok(key) = SigningKey::from_bytes(&secret) else { return Ok(()) };
        let domain = SigningDomain { chain_id, rollup };

        let block = BlockProposal::sign(header, B256::ZERO, Vec::new(), &domain, &key);
        let proposal = CheckpointProposal::sign(payload, Some(block), &domain, &key);
        let decoded = CheckpointProposal::from_wire_bytes(&proposal.to_wire_bytes()).unwrap();
        prop_assert_eq!(decoded.recover_proposer(&domain), Ok(key.address()));
        prop_assert_eq!(decoded.last_block.as_ref().unwrap().recover_proposer(&domain), Ok(key.address()));

        let attestation = CheckpointAttestation::sign(&decoded, &domain, &key);
        let decoded = CheckpointAttestation::from_wire_bytes(&attestation.to_wire_bytes()).unwrap();
        prop_assert_eq!(decoded.recover_attester(&domain), Ok(key.address()));
        prop_assert_eq!(decoded.recover_proposer(&domain), Ok(key.address()));

        // Another deployment never recovers the same signer.
        let other = SigningDomain { chain_id: chain_id.wrapping_add(1), rollup };
        prop_assert_ne!(decoded.recover_attester(&other), Ok(key.address()));
    }

    #[test]
    fn any_non_canonical_padding_is_refused(
        value in block_proposal(),
        unknown_field in 16u32..1000,
        varint in any::<u64>(),
    ) {
        let bytes = value.to_wire_bytes();
        // An unknown varint field appended: prost would skip it, giving a second message id.
        let mut padded = bytes.clone();
        put_varint(&mut padded, u64::from(unknown_field << 3));
        put_varint(&mut padded, varint);
        let refused = matches!(
            BlockProposal::from_wire_bytes(&padded),
            Err(WireError::NonCanonical { .. })
        );
        prop_assert!(refused, "unknown field {} accepted", unknown_field);
        // The same bytes with a known field repeated (last one wins in prost).
        let mut repeated = bytes;
        repeated.extend_from_slice(&[0x22, 65]);
        repeated.extend_from_slice(value.signature.as_bytes());
        let refused = matches!(
            BlockProposal::from_wire_bytes(&repeated),
            Err(WireError::NonCanonical { .. })
        );
        prop_assert!(refused, "a repeated field was accepted");
    }

    #[test]
    fn checkpoint_body_round_trip(
        blocks in proptest::collection::vec(block(), 0..4),
        garbage in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let body = encode_checkpoint_body(&blocks);
        prop_assert_eq!(decode_checkpoint_body(&body, usize::MAX).unwrap(), blocks);
        for cut in 0..body.len() {
            prop_assert!(decode_checkpoint_body(&body[..cut], usize::MAX).is_err());
        }
        let _ = decode_checkpoint_body(&garbage, usize::MAX);
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[test]
fn reordered_fields_are_refused() {
    // An attestation's fields in reverse order decode to the same value through prost, but are
    // another byte string, so another gossip message id.
    let key = SigningKey::from_bytes(&[4; 32]).unwrap();
    let domain = SigningDomain {
        chain_id: 1,
        rollup: Address::repeat_byte(1),
    };
    let proposal = CheckpointProposal::sign(ConsensusPayload::default(), None, &domain, &key);
    let attestation = CheckpointAttestation::sign(&proposal, &domain, &key);
    let bytes = attestation.to_wire_bytes();
    assert_eq!(
        CheckpointAttestation::from_wire_bytes(&bytes).unwrap(),
        attestation
    );
    // Split the top-level fields (one-byte tags, all length-delimited) and reverse them.
    let mut fields = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (mut len, mut shift, mut end) = (0usize, 0, at + 1);
        loop {
            let byte = bytes[end];
            len |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            end += 1;
            if byte < 0x80 {
                break;
            }
        }
        fields.push(&bytes[at..end + len]);
        at = end + len;
    }
    assert_eq!(fields.len(), 3);
    let reordered: Vec<u8> = fields
        .iter()
        .rev()
        .flat_map(|f| f.iter().copied())
        .collect();
    assert_eq!(reordered.len(), bytes.len());
    assert!(matches!(
        CheckpointAttestation::from_wire_bytes(&reordered),
        Err(WireError::NonCanonical {
            message: "CheckpointAttestation",
            ..
        })
    ));
}

#[test]
fn fee_modifier_outside_its_bound_is_refused_at_decode() {
    let key = SigningKey::from_bytes(&[4; 32]).unwrap();
    let domain = SigningDomain {
        chain_id: 1,
        rollup: Address::repeat_byte(1),
    };
    for (modifier, accepted) in [
        (MAX_FEE_ASSET_PRICE_MODIFIER_BPS, true),
        (-MAX_FEE_ASSET_PRICE_MODIFIER_BPS, true),
        (MAX_FEE_ASSET_PRICE_MODIFIER_BPS + 1, false),
        (-MAX_FEE_ASSET_PRICE_MODIFIER_BPS - 1, false),
        (i64::MIN, false),
        (i64::MAX, false),
    ] {
        let payload = ConsensusPayload {
            fee_asset_price_modifier: modifier,
            ..Default::default()
        };
        let proposal = CheckpointProposal::sign(payload, None, &domain, &key);
        let decoded = CheckpointProposal::from_wire_bytes(&proposal.to_wire_bytes());
        if accepted {
            assert_eq!(decoded.unwrap(), proposal);
        } else {
            assert_eq!(
                decoded,
                Err(WireError::OutOfRange {
                    message: "ConsensusPayload",
                    field: "fee_asset_price_modifier",
                    value: modifier,
                    limit: MAX_FEE_ASSET_PRICE_MODIFIER_BPS,
                })
            );
        }
    }
}

#[test]
fn body_size_helpers_match_the_encoder() {
    use tandem_proto::{
        DEFAULT_MAX_CHECKPOINT_BODY_BYTES, checkpoint_body_len, max_txs_in_checkpoint_body,
    };
    let tx = Tx::default();
    let blocks: Vec<Block> = (0..3)
        .map(|i| Block {
            header: BlockHeader::default(),
            txs: vec![tx.clone(); i * 2],
        })
        .collect();
    assert_eq!(
        encode_checkpoint_body(&blocks).len(),
        checkpoint_body_len(3, 6)
    );
    // The default cap with 10 blocks: ~140 B per tx.
    assert_eq!(
        max_txs_in_checkpoint_body(DEFAULT_MAX_CHECKPOINT_BODY_BYTES, 10),
        837
    );
    assert!(checkpoint_body_len(10, 837) <= DEFAULT_MAX_CHECKPOINT_BODY_BYTES);
    assert!(checkpoint_body_len(10, 838) > DEFAULT_MAX_CHECKPOINT_BODY_BYTES);
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let bytes = vec![0u8; MAX_ATTESTATION_SIZE + 1];
    assert_eq!(
        CheckpointAttestation::from_wire_bytes(&bytes),
        Err(WireError::TooLarge {
            message: "CheckpointAttestation",
            size: MAX_ATTESTATION_SIZE + 1,
            limit: MAX_ATTESTATION_SIZE
        })
    );
}

#[test]
fn errors_name_the_message_and_field() {
    // An empty message decodes to all defaults: the first required field is missing.
    assert_eq!(
        Block::from_wire_bytes(&[]),
        Err(WireError::MissingField {
            message: "Block",
            field: "header"
        })
    );
    // Field 3 (`to`) of a Tx with 3 bytes instead of 20.
    let short_address = [0x1a, 0x03, 1, 2, 3];
    assert_eq!(
        Tx::from_wire_bytes(&short_address),
        Err(WireError::InvalidLength {
            message: "Tx",
            field: "to",
            expected: 20,
            got: 3
        })
    );
    let error = Tx::from_wire_bytes(&short_address).unwrap_err().to_string();
    assert_eq!(error, "Tx.to: expected 20 bytes, got 3");
    // A length prefix running past the end is malformed protobuf.
    assert!(matches!(
        Tx::from_wire_bytes(&[0x1a, 0x30, 1]),
        Err(WireError::Malformed { message: "Tx", .. })
    ));
}

#[test]
fn header_hashes_are_keccak_of_the_solidity_abi_encoding() {
    // abi.encode of a static struct is one 32-byte word per field, in declaration order: this is
    // what lets the L1 contract recompute block and checkpoint hashes.
    let header = BlockHeader {
        block_number: 0x0102,
        fee_per_mana: 7,
        ..Default::default()
    };
    let mut words = vec![0u8; 15 * 32];
    words[5 * 32 + 30] = 0x01; // block_number, 6th field
    words[5 * 32 + 31] = 0x02;
    words[12 * 32 + 31] = 7; // fee_per_mana, 13th field
    assert_eq!(header.hash(), tandem_proto::keccak256(&words));

    let checkpoint = CheckpointHeader {
        slot: 9,
        ..Default::default()
    };
    let mut words = vec![0u8; 10 * 32];
    words[3 * 32 + 31] = 9;
    assert_eq!(checkpoint.hash(), tandem_proto::keccak256(&words));
}
