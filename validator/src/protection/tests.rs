//! What the integration tests cannot see from outside: the fsync of every new record (RocksDB's
//! WAL-sync ticker), the directory fsyncs at creation, and pre-checks that do not wait for the
//! signing lock.

use std::{sync::mpsc, time::Duration};

use tandem_proto::{
    Address, BlockHeader, BlockProposal, CheckpointHeader, CheckpointProposal, ConsensusPayload,
    Signature, SigningDomain, SigningKey, keccak256, time::Slot,
};

use super::*;

fn domain() -> SigningDomain {
    SigningDomain {
        chain_id: 7,
        rollup: Address::repeat_byte(0x42),
    }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[0x22; 32]).unwrap()
}

fn create(dir: &Path) -> ProtectedSigner {
    ProtectedSigner::open(
        dir,
        domain(),
        [key()],
        OpenMode::Initialize {
            first_slot: Slot(0),
        },
    )
    .unwrap()
}

fn payload(slot: u64, variant: u8) -> ConsensusPayload {
    ConsensusPayload {
        header: CheckpointHeader {
            slot,
            ..Default::default()
        },
        archive: keccak256([variant]),
        fee_asset_price_modifier: 0,
    }
}

fn proposal(slot: u64, variant: u8) -> CheckpointProposal {
    CheckpointProposal {
        payload: payload(slot, variant),
        signature: Signature::default(),
        last_block: None,
    }
}

fn block(slot: u64, variant: u8) -> BlockProposal {
    BlockProposal {
        header: BlockHeader {
            slot,
            ..Default::default()
        },
        archive_root: keccak256([variant]),
        ..Default::default()
    }
}

#[test]
fn every_new_signature_is_fsynced_before_it_is_returned_and_recorded_ones_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let signer = create(dir.path());
    let me = key().address();
    let syncs = || signer.inner.store.wal_syncs();

    let before = syncs();
    signer.attest_blocking(me, &proposal(1, 1)).unwrap();
    assert_eq!(syncs(), before + 1, "a new attestation is one synced write");
    signer
        .sign_block_proposal_blocking(me, block(2, 1))
        .unwrap();
    assert_eq!(
        syncs(),
        before + 2,
        "a new block proposal is one synced write"
    );
    // A checkpoint proposal and its last block: two duties, one synced batch.
    signer
        .sign_checkpoint_proposal_blocking(me, payload(3, 1), Some(block(3, 1)))
        .unwrap();
    assert_eq!(
        syncs(),
        before + 3,
        "checkpoint and last block share one fsync"
    );
    // What is recorded already, and what is refused, writes nothing.
    signer.attest_blocking(me, &proposal(1, 1)).unwrap();
    signer.attest_blocking(me, &proposal(1, 2)).unwrap_err();
    signer
        .sign_checkpoint_proposal_blocking(me, payload(3, 1), Some(block(3, 1)))
        .unwrap();
    assert_eq!(syncs(), before + 3);
    // Pruning deletes and raises the watermark in one synced batch.
    signer.prune_below(Slot(2)).unwrap();
    assert_eq!(syncs(), before + 4);
}

#[test]
fn creating_a_record_fsyncs_every_directory_entry_it_added() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data/validator/slashing-protection");
    let signer = create(&dir);
    let expected: Vec<PathBuf> = vec![
        dir.clone(),
        root.path().join("data/validator"),
        root.path().join("data"),
        root.path().to_path_buf(),
    ];
    assert_eq!(signer.inner.store.synced_dirs(), expected.as_slice());
    drop(signer);
    // Opening what exists adds no entry: nothing to sync.
    let reopened = create(&dir);
    assert_eq!(reopened.inner.store.synced_dirs(), &[] as &[PathBuf]);
    drop(reopened);
    // An existing, empty directory gets only its own entries (lock, db) synced.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(
        create(&empty).inner.store.synced_dirs(),
        std::slice::from_ref(&empty)
    );
}

#[test]
fn pre_checks_answer_while_a_signature_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let signer = create(dir.path());
    let me = key().address();
    let attested = signer.attest_blocking(me, &proposal(4, 1)).unwrap();
    let duty = Duty::Attestation { slot: Slot(4) };
    // Holding the writer lock is what a signing does for the length of its fsync.
    let in_flight = signer.writer();
    let (answers, answered) = mpsc::channel();
    let reader = signer.clone();
    let thread = std::thread::spawn(move || {
        let latest = reader.latest_attestation(me);
        let recorded = reader.recorded(me, duty).unwrap().map(|r| r.signature);
        answers.send((latest, recorded)).unwrap();
    });
    let answer = answered.recv_timeout(Duration::from_secs(10));
    drop(in_flight);
    thread.join().unwrap();
    assert_eq!(
        answer.expect("the pre-checks must not wait for the signing lock"),
        (Some(Slot(4)), Some(attested.signature))
    );
}

#[test]
fn the_latest_attestation_is_loaded_at_open_and_kept_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let me = key().address();
    {
        let signer = create(dir.path());
        assert_eq!(signer.latest_attestation(me), None);
        signer.attest_blocking(me, &proposal(9, 1)).unwrap();
        signer.attest_blocking(me, &proposal(12, 1)).unwrap();
        // A recorded earlier one re-signed does not move it back.
        signer.attest_blocking(me, &proposal(9, 1)).unwrap();
        assert_eq!(signer.latest_attestation(me), Some(Slot(12)));
    }
    let signer = ProtectedSigner::open(dir.path(), domain(), [key()], OpenMode::Existing).unwrap();
    assert_eq!(signer.latest_attestation(me), Some(Slot(12)));
    assert_eq!(signer.latest_attestation(Address::ZERO), None);
}
