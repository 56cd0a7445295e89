//! Request/response between two real nodes: what is served, and how the requester checks it.

use std::sync::Arc;

use tandem_p2p::{
    RequestError,
    reqresp::{
        BlockQuery, ChainPoint, CheckpointCommitment, MAX_BLOCKS_PER_REQUEST, ResponseStatus,
        ServedBlock,
    },
};
use tandem_proto::{
    B256, Block, BlockHeader, Tx, block_body_hash, block_headers_hash, keccak256, time::Slot,
};

use crate::common::{
    MemoryProvider, Net, NodeOptions, PATIENCE, TestNode, spawn_node, wait_for_mesh,
};

/// `count` blocks of checkpoint `checkpoint` (slot `slot`), served without signatures, after
/// `parent_archive`.
fn checkpointed(
    net: &Net,
    first: u64,
    checkpoint: u64,
    parent_archive: B256,
    count: u32,
) -> Vec<ServedBlock> {
    let mut previous = parent_archive;
    (0..count)
        .map(|index| {
            let number = first + u64::from(index);
            let txs = vec![net.tx(1000 + number)];
            let hashes: Vec<B256> = txs.iter().map(Tx::hash).collect();
            let header = BlockHeader {
                chain_id: net.domain.chain_id,
                block_number: number,
                checkpoint_number: checkpoint,
                index_within_checkpoint: index,
                slot: checkpoint,
                last_archive_root: previous,
                body_hash: block_body_hash(&hashes),
                ..BlockHeader::default()
            };
            let archive_root = keccak256(number.to_be_bytes());
            previous = archive_root;
            ServedBlock {
                block: Block { header, txs },
                archive_root,
                proposer_signature: None,
                checkpoint: None,
            }
        })
        .collect()
}

fn commitment(blocks: &[ServedBlock]) -> CheckpointCommitment {
    let hashes: Vec<B256> = blocks.iter().map(|served| served.block.hash()).collect();
    CheckpointCommitment {
        block_headers_hash: block_headers_hash(&hashes),
        archive: blocks.last().unwrap().archive_root,
    }
}

/// Signed blocks 1..=40 (one per slot), checkpoint 41 of four blocks served without signatures
/// (41..=44), then signed blocks 45..=48.
fn test_chain(net: &Net) -> (Vec<ServedBlock>, CheckpointCommitment) {
    let mut chain = net.chain(1, 1, B256::ZERO, 40);
    let unsigned = checkpointed(net, 41, 41, chain[39].archive_root, 4);
    let l1 = commitment(&unsigned);
    let after = net.chain(45, 45, unsigned[3].archive_root, 4);
    chain.extend(unsigned);
    chain.extend(after);
    (chain, l1)
}

async fn pair(net: &Net, server: MemoryProvider, client: MemoryProvider) -> (TestNode, TestNode) {
    let server = spawn_node(
        net,
        NodeOptions {
            provider: Arc::new(server),
            ..NodeOptions::default()
        },
    )
    .await;
    let client = spawn_node(
        net,
        NodeOptions {
            bootnodes: vec![server.addr.clone()],
            provider: Arc::new(client),
            ..NodeOptions::default()
        },
    )
    .await;
    wait_for_mesh(&client, 1, PATIENCE).await;
    (server, client)
}

fn numbers(blocks: &[tandem_p2p::reqresp::ChainBlock]) -> Vec<u64> {
    blocks
        .iter()
        .map(|block| block.block().header.block_number)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txs_and_block_ranges_are_served_and_checked() {
    let net = Net::new();
    let (chain, l1) = test_chain(&net);
    let mut served = MemoryProvider::with_blocks(chain.clone());
    let txs: Vec<Tx> = (0..10).map(|nonce| net.tx(nonce)).collect();
    for tx in &txs {
        served.txs.insert(tx.hash(), tx.clone());
    }
    let mut client_store = MemoryProvider::default();
    client_store.checkpoints.insert(41, l1);
    let (server, client) = pair(&net, served, client_store).await;
    let server_id = Some(server.handle.local_peer_id());

    // Missing txs: three known, one unknown.
    let unknown = net.tx(999).hash();
    let wanted = vec![txs[1].hash(), txs[5].hash(), unknown, txs[7].hash()];
    let mut fetched: Vec<_> = client
        .handle
        .request_txs(server_id, wanted)
        .await
        .unwrap()
        .iter()
        .map(Tx::hash)
        .collect();
    fetched.sort();
    let mut expected = vec![txs[1].hash(), txs[5].hash(), txs[7].hash()];
    expected.sort();
    assert_eq!(fetched, expected);

    // Signed blocks: each carries its slot proposer's signature.
    let blocks = client
        .handle
        .request_blocks(server_id, 5, 10)
        .await
        .unwrap();
    assert_eq!(numbers(&blocks), (5..15).collect::<Vec<_>>());
    for block in &blocks {
        let slot = Slot(block.block().header.slot);
        assert_eq!(block.proposer(), Some(net.proposer(slot).address()));
    }
    assert_eq!(blocks[0].block(), &chain[4].block);

    // Across the checkpoint served without signatures: checked against L1 as a whole.
    let blocks = client
        .handle
        .request_blocks(server_id, 35, 14)
        .await
        .unwrap();
    assert_eq!(numbers(&blocks), (35..49).collect::<Vec<_>>());
    assert!(blocks[6..10].iter().all(|block| block.proposer().is_none()));
    // A range ending inside it is cut before it; one starting inside it cannot be checked.
    let blocks = client
        .handle
        .request_blocks(server_id, 38, 5)
        .await
        .unwrap();
    assert_eq!(numbers(&blocks), vec![38, 39, 40]);
    assert!(matches!(
        client.handle.request_blocks(server_id, 42, 3).await,
        Err(RequestError::Unverifiable { .. })
    ));

    // Oversized requests never leave the client.
    assert!(matches!(
        client
            .handle
            .request_blocks(server_id, 1, MAX_BLOCKS_PER_REQUEST + 1)
            .await,
        Err(RequestError::Invalid(_))
    ));
    // Hammering the server: the client keeps to its own budget per peer (half the server's
    // default of 128 blocks at once), so it stops itself before the server refuses it, and
    // the server has nothing to charge it for.
    let mut refused = None;
    for _ in 0..8 {
        if let Err(err) = client
            .handle
            .request_blocks(server_id, 1, MAX_BLOCKS_PER_REQUEST)
            .await
        {
            refused = Some(err);
            break;
        }
    }
    assert!(
        matches!(refused, Some(RequestError::Throttled)),
        "{refused:?}"
    );
    let reputation = server
        .handle
        .peer_reputation(client.handle.local_peer_id())
        .await
        .unwrap();
    assert_eq!(reputation.score, 0.0, "{reputation:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_and_the_proposed_chain_are_served_and_checked() {
    let net = Net::new();
    let (chain, _) = test_chain(&net);
    let (server, client) = pair(
        &net,
        MemoryProvider::with_blocks(chain.clone()),
        MemoryProvider::default(),
    )
    .await;
    let server_id = Some(server.handle.local_peer_id());

    // A missed block proposal, by (slot, index) and by archive.
    let found = client
        .handle
        .request_block_proposals(
            server_id,
            BlockQuery::SlotIndex {
                slot: Slot(3),
                index: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].header, chain[2].block.header);
    assert_eq!(found[0].signer(), net.proposer(Slot(3)).address());
    assert_eq!(found[0].source(), server_id);
    let by_archive = client
        .handle
        .request_block_proposals(server_id, BlockQuery::Archive(chain[5].archive_root))
        .await
        .unwrap();
    assert_eq!(by_archive[0].header, chain[5].block.header);

    // The proposed chain after block 10.
    let after = ChainPoint {
        number: 10,
        archive: chain[9].archive_root,
    };
    let blocks = client
        .handle
        .request_proposed_chain(server_id, after, 8)
        .await
        .unwrap();
    assert_eq!(numbers(&blocks), (11..19).collect::<Vec<_>>());
    assert!(
        blocks
            .iter()
            .all(|block| block.proposer_signature().is_some())
    );
    // After a block the server's chain does not have.
    let elsewhere = ChainPoint {
        number: 10,
        archive: B256::repeat_byte(0xee),
    };
    assert!(matches!(
        client
            .handle
            .request_proposed_chain(server_id, elsewhere, 8)
            .await,
        Err(RequestError::Refused {
            status: ResponseStatus::UnknownAnchor,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn false_answers_are_refused_and_their_server_penalised() {
    let net = Net::new();
    let (mut chain, l1) = test_chain(&net);
    // Block 7 re-signed by someone who is not its slot's proposer; block 42's header altered
    // (its txs still match, L1's headers hash does not).
    let forged = tandem_proto::BlockProposal::sign(
        chain[6].block.header.clone(),
        chain[6].archive_root,
        chain[6].block.txs.clone(),
        &net.domain,
        &net.outsider,
    );
    chain[6] = ServedBlock::from_proposal(&forged);
    chain[41].block.header.state_root = B256::repeat_byte(1);
    let mut client_store = MemoryProvider::default();
    client_store.checkpoints.insert(41, l1);
    let (liar, client) = pair(&net, MemoryProvider::with_blocks(chain), client_store).await;
    let liar_id = liar.handle.local_peer_id();

    let err = client
        .handle
        .request_blocks(Some(liar_id), 5, 5)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::BadResponse { reason, .. } if reason.contains("proposer")),
        "{err}"
    );
    let err = client
        .handle
        .request_blocks(Some(liar_id), 41, 8)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::BadResponse { reason, .. } if reason.contains("L1")),
        "{err}"
    );
    let reputation = client.handle.peer_reputation(liar_id).await.unwrap();
    assert!(reputation.score <= -20.0, "{reputation:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_orphans_of_a_checkpoint_l1_has_are_refused() {
    let net = Net::new();
    // The server's chain: signed proposed blocks 1..=8, one checkpoint each. Block 5 is an
    // orphan: its proposer signed it validly, but L1 took another block for checkpoint 5.
    let chain = net.chain(1, 1, B256::ZERO, 8);
    let canonical = net.chain(5, 6, chain[3].archive_root, 1);
    let mut client = MemoryProvider::default();
    client.checkpoints.insert(
        5,
        CheckpointCommitment {
            block_headers_hash: block_headers_hash(&[canonical[0].block.hash()]),
            archive: B256::repeat_byte(0x55),
        },
    );
    let (server, client) = pair(&net, MemoryProvider::with_blocks(chain.clone()), client).await;
    let server_id = Some(server.handle.local_peer_id());

    // Through the orphan and past it: its signature does not save it from L1.
    let answer = client.handle.request_blocks(server_id, 3, 5).await;
    assert!(
        matches!(answer, Err(RequestError::BadResponse { .. })),
        "{answer:?}"
    );
    let answer = client
        .handle
        .request_proposed_chain(
            server_id,
            ChainPoint {
                number: 4,
                archive: chain[3].archive_root,
            },
            3,
        )
        .await;
    assert!(
        matches!(answer, Err(RequestError::BadResponse { .. })),
        "{answer:?}"
    );
    // Ending on it: it may be a checkpoint cut short by the range, so it is dropped, never
    // returned.
    let blocks = client.handle.request_blocks(server_id, 3, 3).await.unwrap();
    let numbers: Vec<u64> = blocks
        .iter()
        .map(|block| block.block().header.block_number)
        .collect();
    assert_eq!(numbers, [3, 4]);
}

/// A proposed checkpoint served with its last block (so a late node can store it): kept when
/// it ends at that block and its blocks' proposer signed it; an answer carrying one signed by
/// someone else, or one that does not end at its block, is false.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposed_checkpoints_served_with_their_last_block_are_checked() {
    let net = Net::new();
    let chain = net.chain(1, 1, B256::ZERO, 4);
    let checkpoint_of = |block: &ServedBlock, key: &tandem_proto::SigningKey| {
        let mut payload = tandem_proto::ConsensusPayload::default();
        payload.header.slot = block.block.header.slot;
        payload.archive = block.archive_root;
        tandem_proto::CheckpointProposal::sign(payload, None, &net.domain, key)
    };
    let after = ChainPoint {
        number: 1,
        archive: chain[0].archive_root,
    };
    let mut honest = chain.clone();
    honest[1].checkpoint = Some(checkpoint_of(&honest[1], net.proposer(Slot(2))));
    let mut forged = chain.clone();
    forged[1].checkpoint = Some(checkpoint_of(&forged[1], &net.outsider));
    let mut misplaced = chain.clone();
    misplaced[1].checkpoint = Some(checkpoint_of(&misplaced[2], net.proposer(Slot(2))));
    for (served, fault) in [
        (honest, None),
        (forged, Some("someone other")),
        (misplaced, Some("does not end")),
    ] {
        let (server, client) = pair(
            &net,
            MemoryProvider::with_blocks(served.clone()),
            MemoryProvider::default(),
        )
        .await;
        let server_id = Some(server.handle.local_peer_id());
        let answer = client
            .handle
            .request_proposed_chain(server_id, after, 8)
            .await;
        match (answer, fault) {
            (Ok(blocks), None) => {
                assert_eq!(numbers(&blocks), vec![2, 3, 4]);
                assert_eq!(blocks[0].checkpoint(), served[1].checkpoint.as_ref());
                assert!(blocks[1].checkpoint().is_none());
            }
            (Err(RequestError::BadResponse { reason, .. }), Some(fault)) => {
                assert!(reason.contains(fault), "{reason}");
            }
            (answer, fault) => panic!("expected {fault:?}, got {answer:?}"),
        }
    }
}
