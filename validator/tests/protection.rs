//! Slashing protection against a real RocksDB in a temp dir: the rules, their survival across
//! reopening, the lock, the domain check, pruning, and a property test against a model.

mod common;

use std::collections::HashMap;

use common::{block, domain, key, payload, proposal, sign};
use proptest::prelude::*;
use tandem_proto::{Address, B256, Signature, SigningDomain, time::Slot};
use tandem_validator::{Duty, DutySigner, ProtectedSigner, ValidatorError};

fn open(dir: &std::path::Path) -> ProtectedSigner {
    ProtectedSigner::open(dir, domain(), [key(0), key(1)]).expect("the record opens")
}

fn attestation(slot: u64) -> Duty {
    Duty::Attestation { slot: Slot(slot) }
}

#[test]
fn same_duty_same_digest_is_idempotent_and_another_digest_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let signer = open(dir.path());
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
    let signer = open(dir.path());
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
    assert_eq!(signer.latest_attestation(me).unwrap(), Some(Slot(11)));
    // The recorded attestation of 10 can still be re-requested (it is already out there).
    sign(&signer, me, attestation(10), 1).1.unwrap();
    // Proposals of earlier slots are not attestations.
    sign(&signer, me, Duty::CheckpointProposal { slot: Slot(2) }, 1)
        .1
        .unwrap();
    // Another key's record is separate (its reverse seek must not see ours).
    assert_eq!(signer.latest_attestation(key(1).address()).unwrap(), None);
    sign(&signer, key(1).address(), attestation(1), 1)
        .1
        .unwrap();
}

#[test]
fn the_record_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let me = key(0).address();
    let signature = {
        let signer = open(dir.path());
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
    let first = open(dir.path());
    let clone = first.clone();
    match ProtectedSigner::open(dir.path(), domain(), [key(0)]) {
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
        ProtectedSigner::open(dir.path(), domain(), [key(0)]),
        Err(ValidatorError::RecordLocked { .. })
    ));
    drop(clone);
    ProtectedSigner::open(dir.path(), domain(), [key(0)]).expect("reopens after release");
}

#[test]
fn a_record_of_another_deployment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let other = SigningDomain {
        chain_id: 1338,
        ..domain()
    };
    match ProtectedSigner::open(dir.path(), other, [key(0)]) {
        Err(ValidatorError::DomainMismatch {
            stored, configured, ..
        }) => assert_eq!((stored, configured), (domain(), other)),
        other => panic!("expected a domain mismatch, got {other:?}"),
    }
}

#[test]
fn unknown_keys_are_refused_without_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let signer = open(dir.path());
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
        let signer = open(dir.path());
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
    let signer: std::sync::Arc<dyn DutySigner> = std::sync::Arc::new(open(dir.path()));
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
        let mut signer = Some(open(dir.path()));
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
