//! Reads of a real RocksDB store: every query by number, hash, archive, slot and tx, and what
//! survives a reopen.

mod common;

use common::{Chain, DOMAIN, add_blocks, genesis, open_store, tx};
use tandem_archiver::{ArchiverError, ArchiverStore, L1Ref};
use tandem_proto::{B256, BlockHeader};

#[test]
fn reopen_keeps_everything_and_refuses_another_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::new();
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    let cp2 = chain.checkpoint(2, 6, 1, 1);
    let tips = {
        let mut store = open_store(dir.path());
        store.add_l1_checkpoint(cp1.l1(10)).unwrap();
        add_blocks(&mut store, &cp2);
        store.add_proposed_checkpoint(cp2.proposed()).unwrap();
        store
            .set_l1_synced(L1Ref {
                number: 10,
                hash: B256::repeat_byte(4),
                timestamp: 3,
            })
            .unwrap();
        store.set_finalized(1).unwrap();
        store.tips()
    };
    let store = open_store(dir.path());
    assert_eq!(store.tips(), tips);
    assert_eq!(store.tips().finalized.checkpoint.number, 1);
    assert_eq!(store.l1_synced().unwrap().number, 10);
    assert_eq!(store.reader().tips().unwrap(), tips);
    drop(store);
    let other = BlockHeader {
        chain_id: 2,
        ..genesis()
    };
    assert!(matches!(
        ArchiverStore::open(dir.path(), &other, DOMAIN),
        Err(ArchiverError::GenesisMismatch { .. })
    ));
}

#[test]
fn queries_by_number_hash_archive_slot_and_tx() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let mut chain = Chain::new();
    chain.next_txs = vec![tx(1, 0), tx(1, 1)];
    let cp1 = chain.checkpoint(1, 5, 2, 1);
    chain.next_txs = vec![tx(2, 0)];
    let cp2 = chain.checkpoint(2, 7, 1, 1);
    add_blocks(&mut store, &cp1);
    store.add_proposed_checkpoint(cp1.proposed()).unwrap();
    store.add_l1_checkpoint(cp1.l1(10)).unwrap();
    add_blocks(&mut store, &cp2);

    let reader = store.reader();
    let view = reader.view().unwrap();
    let second = &cp1.blocks[1];
    let by_number = view.block(2).unwrap().unwrap();
    assert_eq!(by_number.block, *second);
    assert_eq!(
        view.block_by_hash(&second.hash()).unwrap().unwrap(),
        by_number
    );
    // The validator finds a proposal's parent by its `last_archive_root`.
    let child = &cp2.blocks[0];
    let parent = view
        .header_by_archive(&child.header.last_archive_root)
        .unwrap()
        .unwrap();
    assert_eq!(parent.hash, second.hash());
    assert_eq!(parent.archive_root, cp1.archive_roots[1]);
    assert_eq!(
        view.block_by_archive(&cp1.archive_roots[1])
            .unwrap()
            .unwrap(),
        by_number
    );
    assert_eq!(view.block_hash(3).unwrap(), Some(child.hash()));
    assert_eq!(view.block_hash(4).unwrap(), None);
    // Blocks of a slot: checkpointed, uncheckpointed, none.
    let hashes = |blocks: Vec<tandem_archiver::StoredBlock>| {
        blocks.iter().map(|b| b.block.hash()).collect::<Vec<_>>()
    };
    assert_eq!(
        hashes(view.blocks_of_slot(5).unwrap()),
        cp1.blocks.iter().map(|b| b.hash()).collect::<Vec<_>>()
    );
    assert_eq!(hashes(view.blocks_of_slot(7).unwrap()), vec![child.hash()]);
    assert!(view.blocks_of_slot(6).unwrap().is_empty());
    // Txs: checkpointed (disk index) and uncheckpointed (memory index).
    let found = view.tx(&tx(1, 1).hash()).unwrap().unwrap();
    assert_eq!((found.block.number, found.index), (1, 1));
    assert_eq!(found.tx, *tx(1, 1).tx());
    let found = view.tx(&tx(2, 0).hash()).unwrap().unwrap();
    assert_eq!((found.block.number, found.block.hash), (3, child.hash()));
    assert_eq!(view.tx(&tx(9, 9).hash()).unwrap(), None);
    drop(view);

    // A view keeps its state while the writer prunes and reopens nothing.
    let old = reader.view().unwrap();
    store.prune_uncheckpointed(u64::MAX).unwrap().unwrap();
    let new = reader.view().unwrap();
    assert_eq!(old.tips().unwrap().proposed.block.number, 3);
    assert_eq!(new.tips().unwrap().proposed.block.number, 2);
    assert!(
        old.tx(&tx(2, 0).hash()).unwrap().is_some(),
        "the old view still has it"
    );
    assert!(new.tx(&tx(2, 0).hash()).unwrap().is_none());
    assert!(old.block(3).unwrap().is_some());
    assert!(new.block(3).unwrap().is_none());
    drop((old, new));

    // Reopen: the uncheckpointed index is rebuilt from the stored blocks.
    add_blocks(&mut store, &cp2);
    drop(reader);
    drop(store);
    let store = open_store(dir.path());
    let reader = store.reader();
    let view = reader.view().unwrap();
    assert_eq!(view.tx(&tx(2, 0).hash()).unwrap().unwrap().block.number, 3);
    assert_eq!(view.tx(&tx(1, 0).hash()).unwrap().unwrap().block.number, 1);
}
