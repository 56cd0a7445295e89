//! Seed inputs for every target, made by the crates' own encoders from realistic values
//! (signed txs and proposals, blocks with txs, checkpoints, stored records). `tandem-fuzz-seeds`
//! writes them to `fuzz/corpus/<target>/seed-*`; the replay test checks the committed files are
//! exactly these, so a codec change that outdates them fails until they are regenerated.

use tandem_proto::{
    Address, B256, Block, BlockHeader, BlockId, Checkpoint, CheckpointAttestation,
    CheckpointHeader, CheckpointId, CheckpointProposal, ConsensusPayload, L2TipId, L2Tips,
    SigningDomain, SigningKey, Tx, TxPayload, WireMessage, archive::ArchiveTree, block_body_hash,
    encode_checkpoint_body,
};

use crate::Target;

/// One seed: its target, a file name (without the `seed-` prefix) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// Target the seed is for.
    pub target: Target,
    /// File name under `fuzz/corpus/<target>/`, without the `seed-` prefix.
    pub name: String,
    /// The input, selector byte included.
    pub bytes: Vec<u8>,
}

/// Realistic values shared by the seeds of several targets.
struct Samples {
    txs: Vec<Tx>,
    block: Block,
    empty_block: Block,
    // The stored records' seeds use it.
    #[cfg_attr(not(feature = "store"), allow(dead_code))]
    archive: ArchiveTree,
    proposal: tandem_proto::BlockProposal,
    checkpoint_proposal: CheckpointProposal,
    attestation: CheckpointAttestation,
    checkpoint: Checkpoint,
    tips: L2Tips,
}

fn key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32]).expect("a valid secp256k1 key")
}

fn samples() -> Samples {
    let domain = SigningDomain {
        chain_id: 1337,
        rollup: Address::repeat_byte(0x52),
    };
    let sender = key(7);
    let txs: Vec<Tx> = (0..3u8)
        .map(|nonce| {
            Tx::sign(
                TxPayload {
                    chain_id: 1337,
                    nonce: u64::from(nonce),
                    to: Address::repeat_byte(0xa0 + nonce),
                    amount: 1_000 + u128::from(nonce),
                    max_fee_per_mana: 30,
                    mana_limit: 21_000,
                },
                &domain,
                &sender,
            )
        })
        .collect();
    let mut archive = ArchiveTree::new();
    for leaf in 1..=5u8 {
        archive
            .append(B256::repeat_byte(leaf))
            .expect("a small tree has room");
    }
    let header = BlockHeader {
        last_archive_root: archive.root(),
        state_root: B256::repeat_byte(0x51),
        body_hash: block_body_hash(txs.iter().map(Tx::hash).collect::<Vec<_>>().iter()),
        chain_id: 1337,
        rollup_version: 1,
        block_number: 6,
        checkpoint_number: 2,
        index_within_checkpoint: 1,
        slot: 40,
        timestamp: 1_700_000_480,
        coinbase: Address::repeat_byte(0xc0),
        fee_recipient: Address::repeat_byte(0xfe),
        fee_per_mana: 12,
        total_mana_used: 63_000,
        total_fees: 756_000,
    };
    let block = Block {
        header: header.clone(),
        txs: txs.clone(),
    };
    let empty_block = Block {
        header: BlockHeader {
            body_hash: block_body_hash([].iter()),
            block_number: 5,
            index_within_checkpoint: 0,
            total_mana_used: 0,
            total_fees: 0,
            ..header
        },
        txs: Vec::new(),
    };
    let proposer = key(9);
    let proposal = tandem_proto::BlockProposal::sign(
        header,
        B256::repeat_byte(0xaa),
        txs.clone(),
        &domain,
        &proposer,
    );
    let blocks = vec![empty_block.clone(), block.clone()];
    let payload = ConsensusPayload {
        header: CheckpointHeader {
            last_archive_root: B256::repeat_byte(0x33),
            block_headers_hash: tandem_proto::block_headers_hash(
                blocks
                    .iter()
                    .map(|block| block.header.hash())
                    .collect::<Vec<_>>()
                    .iter(),
            ),
            body_hash: tandem_proto::keccak256(encode_checkpoint_body(&blocks)),
            slot: 40,
            timestamp: 1_700_000_480,
            coinbase: Address::repeat_byte(0xc0),
            fee_recipient: Address::repeat_byte(0xfe),
            fee_per_mana: 12,
            total_mana_used: 63_000,
            accumulated_fees: 756_000,
        },
        archive: B256::repeat_byte(0xaa),
        fee_asset_price_modifier: -7,
    };
    let checkpoint_proposal =
        CheckpointProposal::sign(payload.clone(), Some(proposal.clone()), &domain, &proposer);
    let attestation = CheckpointAttestation::sign(&checkpoint_proposal, &domain, &key(11));
    let checkpoint = Checkpoint {
        number: 2,
        payload,
        blocks,
    };
    let tip = |number: u64, checkpoint: u64| L2TipId {
        block: BlockId {
            number,
            hash: B256::repeat_byte(number as u8),
        },
        checkpoint: CheckpointId {
            number: checkpoint,
            hash: B256::repeat_byte(0x80 | checkpoint as u8),
        },
    };
    let tips = L2Tips {
        proposed: tip(6, 2),
        proposed_checkpoint: tip(6, 2),
        checkpointed: tip(4, 1),
        finalized: tip(2, 1),
    };
    Samples {
        txs,
        block,
        empty_block,
        archive,
        proposal,
        checkpoint_proposal,
        attestation,
        checkpoint,
        tips,
    }
}

fn selected(target: Target, selector: usize, name: &str, body: &[u8]) -> Seed {
    let mut bytes = vec![u8::try_from(selector).expect("selectors fit a byte")];
    bytes.extend_from_slice(body);
    Seed {
        target,
        name: name.to_owned(),
        bytes,
    }
}

/// Every seed of every target in this build.
pub fn all() -> Vec<Seed> {
    let s = samples();
    let mut seeds = Vec::new();

    // Wire messages, in the target's selector order.
    let mut references_only = s.proposal.clone();
    references_only.txs.clear();
    let mut checkpoint_only = s.checkpoint_proposal.clone();
    checkpoint_only.last_block = None;
    let wire: [(usize, &str, Vec<u8>); 9] = [
        (0, "tx", s.txs[0].to_wire_bytes()),
        (1, "block", s.block.to_wire_bytes()),
        (1, "block-empty", s.empty_block.to_wire_bytes()),
        (2, "checkpoint", s.checkpoint.to_wire_bytes()),
        (3, "block-proposal", s.proposal.to_wire_bytes()),
        (
            3,
            "block-proposal-references",
            references_only.to_wire_bytes(),
        ),
        (
            4,
            "checkpoint-proposal",
            s.checkpoint_proposal.to_wire_bytes(),
        ),
        (
            4,
            "checkpoint-proposal-bare",
            checkpoint_only.to_wire_bytes(),
        ),
        (5, "attestation", s.attestation.to_wire_bytes()),
    ];
    for (selector, name, bytes) in wire {
        seeds.push(selected(Target::Wire, selector, name, &bytes));
    }
    seeds.push(selected(Target::Wire, 6, "tips", &s.tips.to_wire_bytes()));

    // Checkpoint bodies.
    seeds.push(Seed {
        target: Target::CheckpointBody,
        name: "two-blocks".to_owned(),
        bytes: encode_checkpoint_body(&s.checkpoint.blocks),
    });
    seeds.push(Seed {
        target: Target::CheckpointBody,
        name: "no-blocks".to_owned(),
        bytes: encode_checkpoint_body(&[]),
    });

    #[cfg(feature = "p2p")]
    p2p_seeds(&s, &mut seeds);
    #[cfg(feature = "store")]
    store_seeds(&s, &mut seeds);
    seeds
}

#[cfg(feature = "p2p")]
fn p2p_seeds(s: &Samples, seeds: &mut Vec<Seed>) {
    use tandem_p2p::{
        GossipKind,
        fuzzing::{FrameKind, FrameValue, compress_gossip},
        reqresp::{
            BlockQuery, BlocksByRangeRequest, ChainPoint, ProposedChainRequest, Response,
            ResponseStatus, ServedBlock, TxsByHashRequest,
        },
    };
    use tandem_proto::time::Slot;

    let gossip = [
        (GossipKind::Tx, s.txs[1].to_wire_bytes()),
        (GossipKind::BlockProposal, s.proposal.to_wire_bytes()),
        (
            GossipKind::CheckpointProposal,
            s.checkpoint_proposal.to_wire_bytes(),
        ),
        (
            GossipKind::CheckpointAttestation,
            s.attestation.to_wire_bytes(),
        ),
    ];
    for (kind, message) in gossip {
        let selector = GossipKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every kind is listed");
        seeds.push(selected(
            Target::Gossip,
            selector,
            kind.name(),
            &compress_gossip(&message),
        ));
    }

    let mut checkpoint = s.checkpoint_proposal.clone();
    checkpoint.last_block = None;
    let served = ServedBlock {
        block: s.block.clone(),
        archive_root: B256::repeat_byte(0xaa),
        proposer_signature: Some(s.proposal.signature),
        checkpoint: Some(checkpoint),
    };
    let frames = [
        (
            "txs-by-hash",
            FrameValue::TxsByHashRequest(TxsByHashRequest {
                hashes: s.txs.iter().map(Tx::hash).collect(),
            }),
        ),
        (
            "blocks-by-range",
            FrameValue::BlocksByRangeRequest(BlocksByRangeRequest { from: 4, count: 8 }),
        ),
        (
            "block-query-slot",
            FrameValue::BlockQuery(BlockQuery::SlotIndex {
                slot: Slot(40),
                index: 1,
            }),
        ),
        (
            "block-query-archive",
            FrameValue::BlockQuery(BlockQuery::Archive(B256::repeat_byte(0xaa))),
        ),
        (
            "proposed-chain",
            FrameValue::ProposedChainRequest(ProposedChainRequest {
                after: ChainPoint {
                    number: 4,
                    archive: B256::repeat_byte(0x44),
                },
                max_blocks: 16,
            }),
        ),
        (
            "txs-response",
            FrameValue::TxsResponse(Response {
                status: ResponseStatus::Ok,
                items: s.txs.clone(),
            }),
        ),
        (
            "txs-response-limited",
            FrameValue::TxsResponse(Response {
                status: ResponseStatus::RateLimited,
                items: Vec::new(),
            }),
        ),
        (
            "blocks-response",
            FrameValue::BlocksResponse(Response {
                status: ResponseStatus::Ok,
                items: vec![
                    served,
                    ServedBlock {
                        block: s.empty_block.clone(),
                        archive_root: B256::repeat_byte(0x99),
                        proposer_signature: None,
                        checkpoint: None,
                    },
                ],
            }),
        ),
    ];
    for (name, value) in frames {
        let index = FrameKind::ALL
            .iter()
            .position(|kind| *kind == value.kind())
            .expect("every kind is listed");
        let frame = value.encode_frame().expect("writing to memory succeeds");
        seeds.push(selected(
            Target::ReqResp,
            index,
            &format!("frame-{name}"),
            &frame,
        ));
        seeds.push(selected(
            Target::ReqResp,
            index + FrameKind::ALL.len(),
            &format!("body-{name}"),
            &value.encode_body(),
        ));
    }
}

#[cfg(feature = "store")]
fn store_seeds(s: &Samples, seeds: &mut Vec<Seed>) {
    use alloy_primitives::{Bytes, U256};
    use tandem_archiver::{
        AwaitingCheckpoint, BodyProblem, CheckpointRecord, L1CheckpointEvent, L1Ref, PayloadSource,
        ProposeCalldata, ProposedCheckpoint, fuzzing as archiver,
        fuzzing::Record as ArchiverRecord,
    };
    use tandem_l1::{Rollup, propose_args, signature_to_sol};
    use tandem_state::{Account, fuzzing as state, fuzzing::Record as StateRecord};

    let archiver_index = |record: ArchiverRecord| {
        ArchiverRecord::ALL
            .iter()
            .position(|r| *r == record)
            .expect("every record is listed")
    };
    let l1 = L1Ref {
        number: 1_234,
        hash: B256::repeat_byte(0x11),
        timestamp: 1_700_000_500,
    };
    let payload = s.checkpoint.payload.clone();
    let attestations = vec![
        (0u32, s.attestation.signature),
        (2, s.attestation.signature),
    ];
    let body = encode_checkpoint_body(&s.checkpoint.blocks);
    let awaiting = |calldata: Option<ProposeCalldata>, problem| AwaitingCheckpoint {
        event: L1CheckpointEvent {
            number: 2,
            header_hash: payload.header.hash(),
            archive: payload.archive,
            slot: 40,
            l1,
            tx_hash: B256::repeat_byte(0x77),
            calldata,
        },
        problem,
    };
    let records: Vec<(ArchiverRecord, &str, Vec<u8>)> = vec![
        (
            ArchiverRecord::Header,
            "header",
            archiver::encode_header(&s.block.header, &s.archive),
        ),
        (
            ArchiverRecord::Header,
            "header-empty-archive",
            archiver::encode_header(&s.empty_block.header, &ArchiveTree::new()),
        ),
        (
            ArchiverRecord::BlockTxs,
            "block-txs",
            archiver::encode_txs(&s.txs),
        ),
        (
            ArchiverRecord::BlockSignature,
            "block-signature",
            archiver::encode_signature(&s.proposal.signature),
        ),
        (
            ArchiverRecord::Checkpoint,
            "checkpoint",
            archiver::encode_checkpoint(&CheckpointRecord {
                number: 2,
                payload: payload.clone(),
                start_block: 5,
                block_count: 2,
                l1,
                attestations: attestations.clone(),
                source: PayloadSource::L1Calldata,
            }),
        ),
        (
            ArchiverRecord::Proposed,
            "proposed",
            archiver::encode_proposed(&ProposedCheckpoint {
                number: 2,
                payload: payload.clone(),
                start_block: 5,
                block_count: 2,
                total_mana_used: 63_000,
                proposer_signature: s.checkpoint_proposal.signature,
            }),
        ),
        (
            ArchiverRecord::Awaiting,
            "awaiting-calldata",
            archiver::encode_awaiting(&awaiting(
                Some(ProposeCalldata {
                    header: payload.header.clone(),
                    fee_asset_price_modifier: payload.fee_asset_price_modifier,
                    attestations,
                    body: body.clone(),
                }),
                None,
            )),
        ),
        (
            ArchiverRecord::Awaiting,
            "awaiting-missing",
            archiver::encode_awaiting(&awaiting(None, Some(BodyProblem::CalldataMissing))),
        ),
        (ArchiverRecord::Tips, "tips", archiver::encode_tips(&s.tips)),
        (
            ArchiverRecord::L1Ref,
            "l1-ref",
            archiver::encode_l1_ref(&l1),
        ),
        (
            ArchiverRecord::TxLocation,
            "tx-location",
            archiver::encode_tx_location(6, 2),
        ),
    ];
    for (record, name, bytes) in records {
        seeds.push(selected(
            Target::ArchiverRecords,
            archiver_index(record),
            name,
            &bytes,
        ));
    }

    let state_index = |record: StateRecord| {
        StateRecord::ALL
            .iter()
            .position(|r| *r == record)
            .expect("every record is listed")
    };
    let account = Account {
        balance: 5_000_000,
        nonce: 3,
    };
    let state_records = [
        (
            StateRecord::Block,
            "block",
            state::encode_block(&s.block.header.hash(), &B256::repeat_byte(0x51), &s.archive),
        ),
        (
            StateRecord::Undo,
            "undo",
            state::encode_undo_log(&[
                (Address::repeat_byte(0xa0), Some(account)),
                (Address::repeat_byte(0xa1), None),
            ]),
        ),
        (StateRecord::Account, "account", account.encode().to_vec()),
    ];
    for (record, name, bytes) in state_records {
        seeds.push(selected(
            Target::StateRecords,
            state_index(record),
            name,
            &bytes,
        ));
    }

    let signature = signature_to_sol(&s.attestation.signature);
    let call = |signers: u64, attestations: usize| Rollup::proposeCall {
        args: propose_args(2, &payload),
        proposerSignature: signature_to_sol(&s.checkpoint_proposal.signature),
        attestations: vec![signature.clone(); attestations],
        signers: U256::from(signers),
        body: Bytes::from(body.clone()),
    };
    for (name, signers, count) in [
        ("propose", 0b101u64, 2usize),
        ("propose-mismatch", 0b111, 2),
    ] {
        seeds.push(Seed {
            target: Target::L1Calldata,
            name: name.to_owned(),
            bytes: alloy_sol_types::SolCall::abi_encode(&call(signers, count)),
        });
    }
}
