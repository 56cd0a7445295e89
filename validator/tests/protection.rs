//! Slashing protection against a real RocksDB in a temp dir: the rules, their survival across
//! reopening, opening modes (a missing record or an unknown key is refused, init mode creates
//! and registers with a first slot), the lock, the domain check, pruning, concurrent requests,
//! checkpoint proposals signed with their last block, and a property test against a model.

mod common;

use std::{collections::HashMap, path::Path};

use common::duties::{block, domain, init, key, payload, proposal, sign};
use proptest::prelude::*;
use tandem_proto::{Address, B256, Signature, SigningDomain, time::Slot};
use tandem_validator::{Duty, DutySigner, OpenMode, ProtectedSigner, ValidatorError};

/// Creates the record (init mode, every slot allowed) holding keys 0 and 1.
fn create(dir: &Path) -> ProtectedSigner {
    ProtectedSigner::open(dir, domain(), [key(0), key(1)], init(0)).expect("the record is created")
}

/// Opens the existing record holding keys 0 and 1.
fn open(dir: &Path) -> ProtectedSigner {
    ProtectedSigner::open(dir, domain(), [key(0), key(1)], OpenMode::Existing)
        .expect("the record opens")
}

fn attestation(slot: u64) -> Duty {
    Duty::Attestation { slot: Slot(slot) }
}

#[test]
fn same_duty_same_digest_is_idempotent_and_another_digest_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let signer = create(dir.path());
    let me = key(0).address();
    let duties = [
        Duty::BlockProposal {
            slot: Slot(5),
            index: 2,
        },
        Duty::CheckpointProposal { slot: Slot(5) },
        attestation(5),
    ];
    for duty in duties {
        let (digest, first) = sign(&signer, me, duty, 1);
        let first = first.unwrap();
        assert_eq!(first.recover(digest), Ok(me), "{duty}");
        let (_, again) = sign(&signer, me, duty, 1);
        assert_eq!(
            again.unwrap(),
            first,
            "{duty}: re-signing returns the same signature"
        );
        assert_eq!(
            signer
                .recorded(me, duty)
                .unwrap()
                .map(|r| (r.digest, r.signature)),
            Some((digest, first))
        );

        let (other, refused) = sign(&signer, me, duty, 2);
        match refused {
            Err(ValidatorError::ConflictingDuty {
                signer: who,
                duty: named,
                recorded,
                requested,
            }) => {
                assert_eq!((who, named, recorded, requested), (me, duty, digest, other));
            }
            other => panic!("{duty}: expected a conflict, got {other:?}"),
        }
        let message = sign(&signer, me, duty, 2).1.unwrap_err().to_string();
        assert!(
            message.contains(&duty.to_string())
                && message.contains(&digest.to_string())
                && message.contains(&other.to_string()),
            "{message}"
        );
    }
    // Other indices, other kinds and other keys are other duties.
    let (_, next_index) = sign(
        &signer,
        me,
        Duty::BlockProposal {
            slot: Slot(5),
            index: 3,
        },
        2,
    );
    next_index.unwrap();
    let (_, other_key) = sign(&signer, key(1).address(), attestation(5), 2);
    other_key.unwrap();
}

#[test]
fn attestations_never_go_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let signer = create(dir.path());
    let me = key(0).address();
    sign(&signer, me, attestation(10), 1).1.unwrap();
    for slot in [3, 9] {
        match sign(&signer, me, attestation(slot), 1).1 {
            Err(ValidatorError::AttestationBehind {
                slot: asked,
                latest,
                ..
            }) => assert_eq!((asked, latest), (Slot(slot), Slot(10))),
            other => panic!("slot {slot}: expected a refusal, got {other:?}"),
        }
    }
    sign(&signer, me, attestation(11), 1).1.unwrap();
    assert_eq!(signer.latest_attestation(me), Some(Slot(11)));
    // The recorded attestation of 10 can still be re-requested (it is already out there).
    sign(&signer, me, attestation(10), 1).1.unwrap();
    // Proposals of earlier slots are not attestations.
    sign(&signer, me, Duty::CheckpointProposal { slot: Slot(2) }, 1)
        .1
        .unwrap();
    // Another key's record is separate (its reverse seek must not see ours).
    assert_eq!(signer.latest_attestation(key(1).address()), None);
    sign(&signer, key(1).address(), attestation(1), 1)
        .1
        .unwrap();
}

#[test]
fn the_record_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let me = key(0).address();
    let signature = {
        let signer = create(dir.path());
        sign(&signer, me, attestation(7), 1).1.unwrap()
    };
    let signer = open(dir.path());
    assert_eq!(sign(&signer, me, attestation(7), 1).1.unwrap(), signature);
    assert!(matches!(
        sign(&signer, me, attestation(7), 2).1,
        Err(ValidatorError::ConflictingDuty { .. })
    ));
    assert!(matches!(
        sign(&signer, me, attestation(6), 1).1,
        Err(ValidatorError::AttestationBehind { .. })
    ));
}

#[test]
fn a_second_open_fails_while_the_record_is_locked_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let first = create(dir.path());
    let clone = first.clone();
    match ProtectedSigner::open(dir.path(), domain(), [key(0)], OpenMode::Existing) {
        Err(ValidatorError::RecordLocked { path, holder_pid }) => {
            assert_eq!(path, dir.path().join("lock"));
            assert_eq!(holder_pid, Some(std::process::id()));
            let message = ValidatorError::RecordLocked { path, holder_pid }.to_string();
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
        }
        other => panic!("expected the lock to refuse, got {other:?}"),
    }
    // Clones share the one lock; it goes with the last of them.
    drop(first);
    assert!(matches!(
        ProtectedSigner::open(dir.path(), domain(), [key(0)], OpenMode::Existing),
        Err(ValidatorError::RecordLocked { .. })
    ));
    drop(clone);
    ProtectedSigner::open(dir.path(), domain(), [key(0)], OpenMode::Existing)
        .expect("reopens after release");
}

#[test]
fn a_record_of_another_deployment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(create(dir.path()));
    let other = SigningDomain {
        chain_id: 1338,
        ..domain()
    };
    match ProtectedSigner::open(dir.path(), other, [key(0)], OpenMode::Existing) {
        Err(ValidatorError::DomainMismatch {
            stored, configured, ..
        }) => assert_eq!((stored, configured), (domain(), other)),
        other => panic!("expected a domain mismatch, got {other:?}"),
    }
}

#[test]
fn unknown_keys_are_refused_without_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let signer = create(dir.path());
    let stranger = key(9).address();
    assert!(matches!(
        sign(&signer, stranger, attestation(1), 1).1,
        Err(ValidatorError::UnknownKey(address)) if address == stranger
    ));
    assert_eq!(signer.recorded(stranger, attestation(1)).unwrap(), None);
    assert_eq!(signer.addresses().len(), 2);
}

#[test]
fn pruning_deletes_old_records_and_refuses_duties_below_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let me = key(0).address();
    {
        let signer = create(dir.path());
        for slot in 1..=6 {
            sign(&signer, me, attestation(slot), 1).1.unwrap();
        }
        assert_eq!(signer.prune_below(Slot(4)).unwrap(), 3);
        assert_eq!(signer.prune_below(Slot(2)).unwrap(), 0, "never goes down");
    }
    let signer = open(dir.path());
    assert_eq!(signer.recorded(me, attestation(3)).unwrap(), None);
    assert!(signer.recorded(me, attestation(4)).unwrap().is_some());
    let duty = Duty::BlockProposal {
        slot: Slot(3),
        index: 0,
    };
    match sign(&signer, me, duty, 1).1 {
        Err(ValidatorError::BelowWatermark {
            duty: named,
            watermark,
            ..
        }) => assert_eq!((named, watermark), (duty, Slot(4))),
        other => panic!("expected the watermark to refuse, got {other:?}"),
    }
}

#[tokio::test]
async fn the_async_trait_signs_the_proto_types_through_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let signer: std::sync::Arc<dyn DutySigner> = std::sync::Arc::new(create(dir.path()));
    let me = key(0).address();
    let domain = domain();
    let last = signer
        .sign_block_proposal(me, block(3, 0, 1))
        .await
        .unwrap();
    assert_eq!(last.recover_proposer(&domain), Ok(me));
    let checkpoint = signer
        .sign_checkpoint_proposal(me, payload(3, 1), Some(last.clone()))
        .await
        .unwrap();
    assert_eq!(checkpoint.recover_proposer(&domain), Ok(me));
    assert_eq!(checkpoint.last_block, Some(last));
    let attester = key(1).address();
    let attestation = signer.attest(attester, &checkpoint).await.unwrap();
    assert_eq!(attestation.recover_attester(&domain), Ok(attester));
    assert_eq!(attestation.recover_proposer(&domain), Ok(me));
    let refused = signer.attest(attester, &proposal(3, 2)).await.unwrap_err();
    assert!(refused.is_slashing_refusal(), "{refused}");
}

#[test]
fn a_missing_record_is_refused_and_never_created_outside_init_mode() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("validator/slashing-protection");
    let existing = |dir: &Path| ProtectedSigner::open(dir, domain(), [key(0)], OpenMode::Existing);
    // No directory at all: refused, and nothing is created.
    match existing(&dir) {
        Err(ValidatorError::RecordMissing { path }) => assert_eq!(path, dir),
        other => panic!("expected a missing record, got {other:?}"),
    }
    assert!(
        !dir.exists(),
        "a refused open must not create the directory"
    );
    // An empty directory (e.g. the record's files lost): refused, no database created.
    std::fs::create_dir_all(&dir).unwrap();
    let message = existing(&dir).unwrap_err().to_string();
    assert!(
        message.contains(&dir.display().to_string())
            && message.contains("--init-slashing-protection"),
        "the error names the path and what to do: {message}"
    );
    assert!(!dir.join("db").exists());
    // A database whose creation never completed (tables, but no domain and no keys: a crash
    // right after RocksDB created it) is no record either.
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    drop(rocksdb::DB::open_cf(&options, dir.join("db"), ["duties", "meta"]).unwrap());
    assert!(matches!(
        existing(&dir),
        Err(ValidatorError::RecordMissing { .. })
    ));
    // Init mode creates it; from then on it opens as it is.
    let me = key(0).address();
    let signature = {
        let signer = ProtectedSigner::open(&dir, domain(), [key(0)], init(0)).unwrap();
        sign(&signer, me, attestation(3), 1).1.unwrap()
    };
    let signer = existing(&dir).unwrap();
    assert_eq!(sign(&signer, me, attestation(3), 1).1.unwrap(), signature);
}

#[test]
fn a_key_the_record_does_not_know_is_refused_until_init_mode_registers_it() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (key(0).address(), key(1).address());
    {
        let signer = ProtectedSigner::open(dir.path(), domain(), [key(0)], init(0)).unwrap();
        sign(&signer, old, attestation(20), 1).1.unwrap();
    }
    match ProtectedSigner::open(dir.path(), domain(), [key(0), key(1)], OpenMode::Existing) {
        Err(ValidatorError::UnregisteredKey { path, signer }) => {
            assert_eq!((path.as_path(), signer), (dir.path(), new));
            let message = ValidatorError::UnregisteredKey { path, signer }.to_string();
            assert!(
                message.contains(&new.to_string())
                    && message.contains(&dir.path().display().to_string())
                    && message.contains("--init-slashing-protection"),
                "{message}"
            );
        }
        other => panic!("expected an unregistered key, got {other:?}"),
    }
    // Init mode registers the new key from slot 50 on; the old key keeps its history and
    // its first slot.
    {
        let signer =
            ProtectedSigner::open(dir.path(), domain(), [key(0), key(1)], init(50)).unwrap();
        assert_eq!(
            (signer.first_slot(old), signer.first_slot(new)),
            (Some(Slot(0)), Some(Slot(50)))
        );
        assert!(matches!(
            sign(&signer, old, attestation(20), 2).1,
            Err(ValidatorError::ConflictingDuty { .. })
        ));
    }
    let signer = open(dir.path());
    assert_eq!(
        signer.first_slot(new),
        Some(Slot(50)),
        "registrations persist"
    );
    let early = Duty::BlockProposal {
        slot: Slot(49),
        index: 0,
    };
    match sign(&signer, new, early, 1).1 {
        Err(err @ ValidatorError::BeforeFirstSlot { .. }) => {
            assert!(err.is_slashing_refusal());
            let ValidatorError::BeforeFirstSlot {
                signer: who,
                duty,
                first_slot,
            } = err
            else {
                unreachable!()
            };
            assert_eq!((who, duty, first_slot), (new, early, Slot(50)));
        }
        other => panic!("expected a refusal before the first slot, got {other:?}"),
    }
    sign(&signer, new, attestation(50), 1).1.unwrap();
    sign(&signer, old, attestation(21), 1).1.unwrap();
}

#[test]
fn init_mode_starts_past_every_duty_a_lost_record_could_have_signed() {
    use std::time::Duration;
    use tandem_proto::time::{ConsensusWindows, PipeliningMode, SlotClock, Timestamp};

    let genesis = Timestamp::from_secs(100_000);
    let clock = SlotClock::new(
        genesis,
        Duration::from_secs(72),
        Duration::from_secs(12),
        32,
    )
    .unwrap();
    let windows = ConsensusWindows::new(
        clock,
        Duration::from_secs(6),
        PipeliningMode::Pipelined,
        Duration::from_secs(6),
    );
    // 10 s into slot 40 a node may already sign for slot 42 (the build frame of 42 opens at
    // T42 − S − E, inside slot 40); with a slot of margin for a clock that was ahead, slot 43
    // is the first whose windows all open later.
    let now = clock
        .slot_start(Slot(40))
        .saturating_add(Duration::from_secs(10));
    let OpenMode::Initialize { first_slot } = OpenMode::initialize_at(&windows, now) else {
        panic!("init mode")
    };
    assert_eq!(first_slot, Slot(43));
    let horizon = now.saturating_add(clock.slot_duration());
    assert!(windows.attestation(Slot(42)).start <= horizon);
    assert!(windows.checkpoint_proposal(Slot(43)).start > horizon);
    // Long before genesis nothing can have been signed.
    let early = Timestamp::from_secs(1_000);
    assert_eq!(
        OpenMode::initialize_at(&windows, early),
        OpenMode::Initialize {
            first_slot: Slot(0)
        }
    );

    let dir = tempfile::tempdir().unwrap();
    let signer = ProtectedSigner::open(
        dir.path(),
        domain(),
        [key(0)],
        OpenMode::initialize_at(&windows, now),
    )
    .unwrap();
    let me = key(0).address();
    for duty in [
        attestation(40),
        Duty::BlockProposal {
            slot: Slot(42),
            index: 0,
        },
        Duty::CheckpointProposal { slot: Slot(42) },
    ] {
        assert!(
            matches!(
                sign(&signer, me, duty, 1).1,
                Err(ValidatorError::BeforeFirstSlot { first_slot, .. }) if first_slot == Slot(43)
            ),
            "{duty}"
        );
    }
    sign(&signer, me, Duty::CheckpointProposal { slot: Slot(43) }, 1)
        .1
        .unwrap();
}

/// Signs `duty` from `threads` threads at once, thread `t` with variant `variant(t)`.
fn race(
    signer: &ProtectedSigner,
    duty: Duty,
    threads: u64,
    variant: impl Fn(u64) -> u64,
) -> Vec<(u64, Result<Signature, ValidatorError>)> {
    let barrier = std::sync::Barrier::new(threads as usize);
    let me = key(0).address();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, variant) = (&barrier, variant(t));
                scope.spawn(move || {
                    barrier.wait();
                    (variant, sign(signer, me, duty, variant).1)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_requests_for_one_duty_get_exactly_one_signature() {
    let dir = tempfile::tempdir().unwrap();
    let signer = create(dir.path());
    const THREADS: u64 = 8;
    for slot in 0..12u64 {
        let duty = match slot % 3 {
            0 => Duty::BlockProposal {
                slot: Slot(slot),
                index: 0,
            },
            1 => Duty::CheckpointProposal { slot: Slot(slot) },
            _ => attestation(slot),
        };
        // Every thread its own digest, then half the threads on one digest each.
        let halves = slot % 2 == 1;
        let results = race(&signer, duty, THREADS, |t| if halves { t % 2 } else { t });
        let mut winners: Vec<(u64, Signature)> = results
            .iter()
            .filter_map(|(variant, result)| result.as_ref().ok().map(|s| (*variant, *s)))
            .collect();
        winners.dedup();
        assert_eq!(
            winners.len(),
            1,
            "{duty}: one distinct signature, got {winners:?}"
        );
        let (won, signature) = winners[0];
        for (variant, result) in &results {
            match result {
                Ok(got) => assert_eq!((*variant, *got), (won, signature), "{duty}"),
                Err(ValidatorError::ConflictingDuty { .. }) => assert_ne!(*variant, won, "{duty}"),
                Err(err) => panic!("{duty}: {err}"),
            }
        }
        let signed = results.iter().filter(|(_, result)| result.is_ok()).count() as u64;
        assert_eq!(signed, if halves { THREADS / 2 } else { 1 }, "{duty}");
        let recorded = signer.recorded(key(0).address(), duty).unwrap().unwrap();
        assert_eq!(recorded.signature, signature);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_async_attestations_of_conflicting_proposals_get_one_signature() {
    let dir = tempfile::tempdir().unwrap();
    let signer: std::sync::Arc<dyn DutySigner> = std::sync::Arc::new(create(dir.path()));
    let me = key(0).address();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16u64)
        .map(|variant| {
            let (signer, barrier) = (signer.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                signer.attest(me, &proposal(9, variant)).await
            })
        })
        .collect();
    let mut signatures = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(attestation) => signatures.push(attestation.signature),
            Err(ValidatorError::ConflictingDuty { .. }) => conflicts += 1,
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!((signatures.len(), conflicts), (1, 15));
}

#[test]
fn a_checkpoint_proposal_and_its_last_block_are_signed_and_recorded_together() {
    let dir = tempfile::tempdir().unwrap();
    let signer = create(dir.path());
    let me = key(0).address();
    let domain = domain();
    let recorded = |duty| signer.recorded(me, duty).unwrap();
    let block_duty = |slot| Duty::BlockProposal {
        slot: Slot(slot),
        index: 0,
    };
    let checkpoint_duty = |slot| Duty::CheckpointProposal { slot: Slot(slot) };

    // The unsigned last block is signed by the checkpoint's signer, both duties recorded.
    let unsigned = block(3, 0, 1);
    let proposal = signer
        .sign_checkpoint_proposal_blocking(me, payload(3, 1), Some(unsigned.clone()))
        .unwrap();
    assert_eq!(proposal.recover_proposer(&domain), Ok(me));
    let last = proposal.last_block.clone().unwrap();
    assert_eq!(last.recover_proposer(&domain), Ok(me));
    assert_eq!(
        (last.header, last.archive_root),
        (unsigned.header.clone(), unsigned.archive_root)
    );
    assert_eq!(recorded(block_duty(3)).unwrap().signature, last.signature);
    assert_eq!(
        recorded(checkpoint_duty(3)).unwrap().signature,
        proposal.signature
    );
    // Asking again returns the same bytes (a block signed alone before is fine too).
    let again = signer
        .sign_checkpoint_proposal_blocking(me, payload(3, 1), Some(unsigned))
        .unwrap();
    assert_eq!(again, proposal);
    let alone = signer
        .sign_block_proposal_blocking(me, block(8, 0, 1))
        .unwrap();
    let with_it = signer
        .sign_checkpoint_proposal_blocking(me, payload(8, 1), Some(block(8, 0, 1)))
        .unwrap();
    assert_eq!(with_it.last_block.unwrap().signature, alone.signature);

    // A conflict on either duty refuses both: nothing of the call is recorded.
    signer
        .sign_block_proposal_blocking(me, block(4, 0, 2))
        .unwrap();
    let refused = signer.sign_checkpoint_proposal_blocking(me, payload(4, 1), Some(block(4, 0, 1)));
    assert!(
        matches!(refused, Err(ValidatorError::ConflictingDuty { duty, .. }) if duty == block_duty(4)),
        "{refused:?}"
    );
    assert_eq!(recorded(checkpoint_duty(4)), None);
    signer
        .sign_checkpoint_proposal_blocking(me, payload(5, 2), None)
        .unwrap();
    let refused = signer.sign_checkpoint_proposal_blocking(me, payload(5, 1), Some(block(5, 0, 1)));
    assert!(
        matches!(refused, Err(ValidatorError::ConflictingDuty { duty, .. }) if duty == checkpoint_duty(5)),
        "{refused:?}"
    );
    assert_eq!(recorded(block_duty(5)), None);

    // A last block of another slot or archive is refused before anything is signed.
    for (block, problem) in [
        (block(7, 0, 1), "is of another slot"),
        (block(6, 0, 2), "ends at another archive"),
    ] {
        let duty = block_duty(block.header.slot);
        match signer.sign_checkpoint_proposal_blocking(me, payload(6, 1), Some(block)) {
            Err(ValidatorError::LastBlockMismatch { slot, problem: got }) => {
                assert_eq!((slot, got), (Slot(6), problem));
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert_eq!(recorded(duty), None);
    }
    assert_eq!(recorded(checkpoint_duty(6)), None);
}

/// What the model expects of one signing request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Signed,
    Conflict,
    Behind,
    BelowWatermark,
}

/// The rules, written as plainly as possible.
#[derive(Default)]
struct Model {
    records: HashMap<(Address, Duty), (B256, Signature)>,
    watermark: u64,
}

impl Model {
    fn expect(&self, who: Address, duty: Duty, digest: B256) -> Expected {
        if duty.slot().0 < self.watermark {
            return Expected::BelowWatermark;
        }
        if let Some((recorded, _)) = self.records.get(&(who, duty)) {
            return if *recorded == digest {
                Expected::Signed
            } else {
                Expected::Conflict
            };
        }
        let later_attestation = self.records.keys().any(|(signer, recorded)| {
            *signer == who
                && matches!((recorded, duty), (Duty::Attestation { slot: a }, Duty::Attestation { slot: b }) if a > &b)
        });
        if later_attestation {
            Expected::Behind
        } else {
            Expected::Signed
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Sign {
        who: u8,
        kind: u8,
        slot: u64,
        index: u32,
        variant: u64,
    },
    Reopen,
    Prune(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..2u8, 0..3u8, 0..6u64, 0..2u32, 0..3u64).prop_map(
            |(who, kind, slot, index, variant)| Op::Sign { who, kind, slot, index, variant }
        ),
        1 => Just(Op::Reopen),
        1 => (0..5u64).prop_map(Op::Prune),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_record_behaves_like_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut signer = Some(create(dir.path()));
        let mut model = Model::default();
        let keys = [key(0).address(), key(1).address()];
        for op in ops {
            match op {
                Op::Reopen => {
                    // The old one must close (and unlock) before the record reopens.
                    drop(signer.take());
                    signer = Some(open(dir.path()));
                }
                Op::Prune(slot) => {
                    signer.as_ref().unwrap().prune_below(Slot(slot)).unwrap();
                    if slot > model.watermark {
                        model.watermark = slot;
                        model.records.retain(|(_, duty), _| duty.slot().0 >= slot);
                    }
                }
                Op::Sign { who, kind, slot, index, variant } => {
                    let who = keys[usize::from(who)];
                    let slot = Slot(slot);
                    let duty = match kind {
                        0 => Duty::BlockProposal { slot, index },
                        1 => Duty::CheckpointProposal { slot },
                        _ => Duty::Attestation { slot },
                    };
                    let (digest, result) = sign(signer.as_ref().unwrap(), who, duty, variant);
                    let expected = model.expect(who, duty, digest);
                    match (&result, expected) {
                        (Ok(signature), Expected::Signed) => {
                            prop_assert_eq!(signature.recover(digest), Ok(who));
                            let recorded = *model.records.entry((who, duty)).or_insert((digest, *signature));
                            prop_assert_eq!(recorded, (digest, *signature), "one signature per duty");
                        }
                        (Err(ValidatorError::ConflictingDuty { .. }), Expected::Conflict)
                        | (Err(ValidatorError::AttestationBehind { .. }), Expected::Behind)
                        | (Err(ValidatorError::BelowWatermark { .. }), Expected::BelowWatermark) => {}
                        (got, expected) => prop_assert!(false, "{duty}: got {got:?}, the model expects {expected:?}"),
                    }
                }
            }
        }
    }
}
