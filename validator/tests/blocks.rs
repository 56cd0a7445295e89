//! The block proposal handler's checks, one reason each, on real stores: a proposer builds real
//! blocks on its own world state, a test tampers with them and re-signs, the validator's
//! handler refuses with the matching reason and stores nothing.

mod common;

use common::{Net, Proposal, Stores, TARGET, build, build_on};
use tandem_proto::{
    B256, BlockProposal, Signature, block_body_hash,
    time::{Slot, Timestamp},
};
use tandem_state::{ReexecutionError, TxError};
use tandem_validator::{BlockOutcome, BlockProposalProcessor, BlockRejection, StateMismatch};

struct Rig {
    net: Net,
    proposer: Stores,
    validator: Stores,
    processor: BlockProposalProcessor,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Rig {
    async fn new() -> Self {
        let net = Net::new();
        let (proposer, validator, dirs) = common::two_stores(&net);
        validator.wait_synced_at(0).await;
        let processor = BlockProposalProcessor::new(&validator.context(&net));
        Self {
            net,
            proposer,
            validator,
            processor,
            _dirs: dirs,
        }
    }

    fn deadline(&self) -> Timestamp {
        self.net.windows.attestation_deadline(TARGET)
    }

    /// The deadline is now: every wait is a single look.
    fn no_wait(&self) -> Timestamp {
        common::clock_now(&self.net)
    }

    async fn process(&self, block: &BlockProposal, deadline: Timestamp) -> BlockOutcome {
        self.processor
            .process_unverified(block, None, deadline)
            .await
    }

    async fn refused(&self, block: &BlockProposal, deadline: Timestamp) -> BlockRejection {
        match self.process(block, deadline).await {
            BlockOutcome::Refused(rejection) => {
                assert_eq!(
                    self.validator.archiver.tips().proposed.block.number,
                    0,
                    "a refused block is not stored"
                );
                rejection
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// A one-block proposal for slot 10 with two transfers.
    fn proposal(&self) -> Proposal {
        build(
            &self.net,
            &self.proposer,
            TARGET,
            vec![vec![self.net.transfer(0, 0, 5), self.net.transfer(1, 0, 6)]],
        )
    }
}

/// Sets the txs of block 0 and the header's body hash to match, then re-signs.
fn set_txs(net: &Net, proposal: &mut Proposal, txs: Vec<tandem_proto::Tx>) {
    let block = &mut proposal.blocks[0];
    let hashes: Vec<B256> = txs.iter().map(tandem_proto::Tx::hash).collect();
    block.header.body_hash = block_body_hash(&hashes);
    block.txs = txs;
    proposal.resign_block(net, 0);
}

#[tokio::test]
async fn a_valid_block_is_stored_and_a_repeated_tx_is_refused() {
    let rig = Rig::new().await;
    let mut proposal = rig.proposal();
    let valid = proposal.blocks[0].clone();
    let tx = valid.txs[0].clone();
    set_txs(&rig.net, &mut proposal, vec![tx.clone(), tx]);
    let rejection = rig.refused(&proposal.blocks[0], rig.deadline()).await;
    assert!(
        matches!(rejection, BlockRejection::DuplicateTxs { .. }),
        "{rejection}"
    );
    assert!(rejection.is_slashable());
    assert!(matches!(
        rig.process(&valid, rig.deadline()).await,
        BlockOutcome::Stored(_)
    ));
}

#[tokio::test]
async fn embedded_txs_that_do_not_recover_are_refused() {
    let rig = Rig::new().await;
    let mut proposal = rig.proposal();
    let mut txs = proposal.blocks[0].txs.clone();
    txs[1].signature = Signature::from_bytes([0xff; 65]);
    set_txs(&rig.net, &mut proposal, txs);
    let rejection = rig.refused(&proposal.blocks[0], rig.deadline()).await;
    assert!(
        matches!(
            rejection,
            BlockRejection::InvalidEmbeddedTxs {
                index: Some(1),
                error: Some(TxError::BadSignature(_))
            }
        ),
        "{rejection}"
    );
    assert!(rejection.is_slashable());
}

/// §7.1 order: a bad embedded tx is `invalid_embedded_txs` (slashable) even when another tx of
/// the block is missing, and wrong globals are refused before the missing tx is looked for.
#[tokio::test]
async fn embedded_txs_and_globals_are_checked_before_missing_txs() {
    let rig = Rig::new().await;
    let mut proposal = rig.proposal();
    let mut txs = proposal.blocks[0].txs.clone();
    txs[1].signature = Signature::from_bytes([0xff; 65]);
    set_txs(&rig.net, &mut proposal, txs);
    // Tx 0 is neither embedded, pooled nor served (no peers).
    let mut both = proposal.blocks[0].clone();
    both.txs.remove(0);
    let rejection = rig.refused(&both, rig.deadline()).await;
    assert!(
        matches!(
            rejection,
            BlockRejection::InvalidEmbeddedTxs {
                index: Some(1),
                error: Some(TxError::BadSignature(_))
            }
        ),
        "{rejection}"
    );

    let mut timestamp = rig.proposal();
    timestamp.blocks[0].header.timestamp += 1;
    timestamp.resign_block(&rig.net, 0);
    let mut stripped = timestamp.blocks[0].clone();
    stripped.txs.remove(0);
    let rejection = rig.refused(&stripped, rig.deadline()).await;
    assert!(
        matches!(
            rejection,
            BlockRejection::GlobalVariablesMismatch { field: "timestamp" }
        ),
        "{rejection}"
    );
}

#[tokio::test]
async fn a_failing_tx_is_refused() {
    let rig = Rig::new().await;
    let mut proposal = rig.proposal();
    // User 0's nonce is 0: nonce 3 cannot run.
    let txs = vec![rig.net.transfer(0, 3, 5), proposal.blocks[0].txs[1].clone()];
    set_txs(&rig.net, &mut proposal, txs);
    let rejection = rig.refused(&proposal.blocks[0], rig.deadline()).await;
    assert!(
        matches!(
            rejection,
            BlockRejection::FailedTxs {
                index: 0,
                error: TxError::NonceGap { .. }
            }
        ),
        "{rejection}"
    );
    assert!(rejection.is_slashable());
}

#[tokio::test]
async fn a_tampered_state_root_fee_total_or_archive_is_a_state_mismatch() {
    let rig = Rig::new().await;
    let mut state_root = rig.proposal();
    state_root.blocks[0].header.state_root = B256::repeat_byte(0x42);
    state_root.resign_block(&rig.net, 0);
    let rejection = rig.refused(&state_root.blocks[0], rig.deadline()).await;
    assert!(
        matches!(
            rejection,
            BlockRejection::StateMismatch(StateMismatch::Execution(
                ReexecutionError::StateMismatch { .. }
            ))
        ),
        "{rejection}"
    );

    let mut fees = rig.proposal();
    fees.blocks[0].header.total_fees += 1;
    fees.resign_block(&rig.net, 0);
    let rejection = rig.refused(&fees.blocks[0], rig.deadline()).await;
    assert!(
        matches!(
            rejection,
            BlockRejection::StateMismatch(StateMismatch::Execution(
                ReexecutionError::AccountingMismatch {
                    field: "total_fees",
                    ..
                }
            ))
        ),
        "{rejection}"
    );

    // The header is right, the archive the proposer claims after it is not.
    let mut archive = rig.proposal();
    let block = &mut archive.blocks[0];
    block.archive_root = B256::repeat_byte(0x43);
    block.signature = archive.key.sign(
        &rig.net.domain,
        tandem_proto::SignatureKind::BlockProposal,
        block.payload_hash(),
    );
    let rejection = rig.refused(&archive.blocks[0], rig.deadline()).await;
    assert!(
        matches!(
            rejection,
            BlockRejection::StateMismatch(StateMismatch::Archive { .. })
        ),
        "{rejection}"
    );
    assert!(rejection.is_slashable());
}

#[tokio::test]
async fn globals_that_do_not_follow_the_parent_and_slot_are_refused() {
    let rig = Rig::new().await;
    let mut timestamp = rig.proposal();
    timestamp.blocks[0].header.timestamp += 1;
    timestamp.resign_block(&rig.net, 0);
    let rejection = rig.refused(&timestamp.blocks[0], rig.deadline()).await;
    assert!(
        matches!(
            rejection,
            BlockRejection::GlobalVariablesMismatch { field: "timestamp" }
        ),
        "{rejection}"
    );

    // The second block of a checkpoint must keep its checkpoint's coinbase.
    let two = build(
        &rig.net,
        &rig.proposer,
        TARGET,
        vec![
            vec![rig.net.transfer(2, 0, 1)],
            vec![rig.net.transfer(2, 1, 1)],
        ],
    );
    let mut second = two.clone();
    second.blocks[1].header.coinbase = tandem_proto::Address::repeat_byte(0x99);
    second.resign_block(&rig.net, 1);
    assert!(matches!(
        rig.process(&two.blocks[0], rig.deadline()).await,
        BlockOutcome::Stored(_)
    ));
    match rig.process(&second.blocks[1], rig.deadline()).await {
        BlockOutcome::Refused(BlockRejection::GlobalVariablesMismatch { field: "coinbase" }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_missing_parent_a_parent_of_a_later_slot_and_a_taken_number_are_refused() {
    let rig = Rig::new().await;
    let deadline = rig.no_wait();
    // Block 2 without block 1.
    let two = build(
        &rig.net,
        &rig.proposer,
        TARGET,
        vec![
            vec![rig.net.transfer(3, 0, 1)],
            vec![rig.net.transfer(3, 1, 1)],
        ],
    );
    let rejection = rig.refused(&two.blocks[1], deadline).await;
    assert!(
        matches!(rejection, BlockRejection::ParentBlockNotFound { .. }),
        "{rejection}"
    );
    assert!(!rejection.is_slashable());

    // Block 1 of slot 11 stored; a block of slot 10 on top of it.
    let later = build(
        &rig.net,
        &rig.proposer,
        Slot(11),
        vec![vec![rig.net.transfer(4, 0, 1)]],
    );
    rig.proposer.store_own(&later).await;
    rig.proposer.wait_synced_at(1).await;
    assert!(matches!(
        rig.process(&later.blocks[0], rig.deadline()).await,
        BlockOutcome::Stored(_)
    ));
    let earlier = build(
        &rig.net,
        &rig.proposer,
        TARGET,
        vec![vec![rig.net.transfer(4, 1, 1)]],
    );
    match rig.process(&earlier.blocks[0], rig.deadline()).await {
        BlockOutcome::Refused(BlockRejection::ParentBlockWrongSlot {
            parent_slot: 11,
            slot: 10,
        }) => {}
        other => panic!("{other:?}"),
    }

    // Another block 1 (other txs, other proposer state) while ours is stored.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Stores::start(&rig.net, other_dir.path());
    let rival = build_on(
        &rig.net,
        &other,
        Slot(11),
        vec![vec![rig.net.transfer(5, 0, 1)]],
        rig.net.proposer(Slot(11)).clone(),
    );
    match rig.process(&rival.blocks[0], deadline).await {
        BlockOutcome::Refused(BlockRejection::BlockNumberAlreadyExists { number: 1, stored }) => {
            assert_eq!(stored, later.blocks[0].header.hash());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn txs_neither_embedded_pooled_nor_served_are_not_available() {
    let rig = Rig::new().await;
    let proposal = rig.proposal();
    let mut stripped = proposal.blocks[0].clone();
    let kept = stripped.txs.remove(0);
    stripped.txs.clear();
    // One of the two is in the pool, the other nowhere (no peers).
    rig.validator.state.submit_tx(kept).await.unwrap();
    let rejection = rig.refused(&stripped, rig.deadline()).await;
    assert!(
        matches!(rejection, BlockRejection::TxsNotAvailable { missing: 1 }),
        "{rejection}"
    );
    // With both pooled it goes through.
    rig.validator
        .state
        .submit_tx(proposal.blocks[0].txs[1].clone())
        .await
        .unwrap();
    assert!(matches!(
        rig.process(&stripped, rig.deadline()).await,
        BlockOutcome::Stored(_)
    ));
}

#[tokio::test]
async fn a_block_not_re_executed_by_the_deadline_times_out() {
    let rig = Rig::new().await;
    let proposal = rig.proposal();
    let rejection = rig.refused(&proposal.blocks[0], rig.no_wait()).await;
    assert!(
        matches!(
            rejection,
            BlockRejection::Timeout {
                processed: 0,
                total: 2
            }
        ),
        "{rejection}"
    );
    assert!(!rejection.is_slashable());
}

#[tokio::test]
async fn a_parent_the_world_state_cannot_reach_is_an_initial_state_mismatch() {
    let rig = Rig::new().await;
    let two = build(
        &rig.net,
        &rig.proposer,
        TARGET,
        vec![
            vec![rig.net.transfer(6, 0, 1)],
            vec![rig.net.transfer(6, 1, 1)],
        ],
    );
    // Block 1 stored with a wrong state root: the validator's follower stalls on it.
    let mut header = two.blocks[0].header.clone();
    header.state_root = B256::repeat_byte(0x13);
    let mut bad = two.clone();
    bad.blocks[0].header = header;
    bad.resign_block(&rig.net, 0);
    rig.validator
        .archiver
        .add_block(bad.stored_block(0))
        .await
        .unwrap();
    // Block 2 builds on the stored block 1 (the proposer's own header tampered the same way).
    let mut on_bad = two.clone();
    on_bad.blocks[1].header.last_archive_root = bad.blocks[0].archive_root;
    on_bad.archives[1] = {
        let mut archive = bad.archives[0].clone();
        archive.append(bad.blocks[0].header.hash()).unwrap();
        archive
    };
    on_bad.resign_block(&rig.net, 1);
    match rig.process(&on_bad.blocks[1], rig.no_wait()).await {
        BlockOutcome::Refused(BlockRejection::InitialStateMismatch { parent: 1 }) => {}
        other => panic!("{other:?}"),
    }
}

/// A network whose tx fetch never answers (the handler's future is cancelled while fetching).
struct SilentPeers;

impl tandem_validator::PeerNetwork for SilentPeers {
    fn report_peer(
        &self,
        _peer: tandem_p2p::PeerId,
        _action: tandem_p2p::scoring::PeerAction,
    ) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn request_txs(
        &self,
        _peer: Option<tandem_p2p::PeerId>,
        _hashes: Vec<B256>,
    ) -> futures::future::BoxFuture<'_, Result<Vec<tandem_proto::Tx>, tandem_p2p::RequestError>>
    {
        Box::pin(std::future::pending())
    }

    fn request_proposed_chain(
        &self,
        _after: tandem_p2p::reqresp::ChainPoint,
        _max_blocks: u32,
    ) -> futures::future::BoxFuture<
        '_,
        Result<
            (tandem_p2p::PeerId, Vec<tandem_p2p::reqresp::ChainBlock>),
            tandem_p2p::RequestError,
        >,
    > {
        Box::pin(std::future::pending())
    }
}

/// A proposal's tx protection ends whichever way its processing ends — cancelled at the
/// lane deadline while fetching, refused — and is counted per holder: a refusal does not
/// unprotect a tx another proposal still uses; a stored block's protection ends once applied.
#[tokio::test]
async fn tx_protection_is_counted_per_proposal_and_released_on_every_exit() {
    let rig = Rig::new().await;
    let proposal = rig.proposal();
    let mut stripped = proposal.blocks[0].clone();
    let pooled = stripped.txs.remove(0);
    stripped.txs.clear();
    let hash = pooled.hash();
    rig.validator.state.submit_tx(pooled.clone()).await.unwrap();
    let protected = || {
        rig.validator
            .state
            .reader()
            .with_pool(|pool, _| pool.is_protected(&hash))
    };

    // Cancelled while the missing tx is being fetched.
    let context = tandem_validator::ValidatorContext::new(
        std::sync::Arc::new(rig.validator.archiver.clone()),
        rig.validator.state.clone(),
        std::sync::Arc::new(SilentPeers),
        std::sync::Arc::new(rig.net.clock.clone()),
        rig.net.windows,
        rig.net.domain,
        rig.net.fees(),
    );
    let silent = BlockProposalProcessor::new(&context);
    let deadline = rig.deadline();
    let task = {
        let block = stripped.clone();
        tokio::spawn(async move { silent.process_unverified(&block, None, deadline).await })
    };
    common::until(&rig.validator, "the pooled tx protected", protected).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(!protected(), "a cancelled proposal still protects its txs");

    // Refused while a twin still uses the tx: it stays protected until the twin is done.
    let twin = rig.validator.state.protect(vec![hash]);
    let rejection = rig.refused(&stripped, rig.no_wait()).await;
    assert!(matches!(rejection, BlockRejection::TxsNotAvailable { .. }));
    assert!(protected(), "a refusal released the twin's protection");
    drop(twin);
    assert!(!protected());

    // Stored: protected until applied, then gone with the tx.
    let outcome = rig.process(&proposal.blocks[0], rig.deadline()).await;
    assert!(matches!(outcome, BlockOutcome::Stored(_)), "{outcome:?}");
    rig.validator.wait_synced_at(1).await;
    assert!(!protected());
    assert_eq!(
        rig.validator
            .state
            .reader()
            .with_pool(|pool, _| pool.protections().len()),
        0,
        "protections outlived the applied block"
    );
}

/// How the unit-test L1 answers fee-header reads: scripted answers first, then `then`.
#[derive(Clone, Copy, Debug)]
enum FeeRead {
    Fails,
    Lags,
    Hangs,
    Answers,
}

/// [`common::GenesisFees`] behind a scripted L1 that fails, lags or hangs; counts reads.
struct ScriptedFees {
    inner: common::GenesisFees,
    script: std::sync::Mutex<std::collections::VecDeque<FeeRead>>,
    then: FeeRead,
    reads: std::sync::atomic::AtomicU32,
}

impl tandem_validator::FeeOracle for ScriptedFees {
    fn params(&self) -> tandem_l1::FeeParams {
        self.inner.params()
    }

    fn l1_fee_header(
        &self,
        number: u64,
        archive: B256,
        header_hash: B256,
    ) -> futures::future::BoxFuture<
        '_,
        tandem_validator::ValidatorResult<Option<tandem_l1::FeeHeader>>,
    > {
        use futures::FutureExt;
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let read = self.script.lock().unwrap().pop_front().unwrap_or(self.then);
        match read {
            FeeRead::Fails => async {
                Err(tandem_validator::ValidatorError::TaskFailed(
                    "scripted L1 error",
                ))
            }
            .boxed(),
            FeeRead::Lags => async { Ok(None) }.boxed(),
            FeeRead::Hangs => futures::future::pending().boxed(),
            FeeRead::Answers => self.inner.l1_fee_header(number, archive, header_hash),
        }
    }
}

impl Rig {
    /// Block 0 of the usual proposal through a handler whose L1 answers as `script`, then
    /// `then`; the outcome and the number of L1 reads.
    async fn with_fees(&self, script: Vec<FeeRead>, then: FeeRead) -> (BlockOutcome, u32) {
        let fees = std::sync::Arc::new(ScriptedFees {
            inner: common::GenesisFees {
                genesis_archive: self.net.spec.genesis_archive_root(),
            },
            script: std::sync::Mutex::new(script.into()),
            then,
            reads: Default::default(),
        });
        let context = self.validator.context_with_fees(&self.net, fees.clone());
        let processor = BlockProposalProcessor::new(&context);
        let outcome = processor
            .process_unverified(&self.proposal().blocks[0], None, self.deadline())
            .await;
        (
            outcome,
            fees.reads.load(std::sync::atomic::Ordering::SeqCst),
        )
    }
}

/// A transient L1 error or an L1 node behind the archiver costs a retry, not the checkpoint.
#[tokio::test]
async fn a_fee_read_that_fails_or_lags_once_is_retried_and_the_block_stored() {
    let rig = Rig::new().await;
    let (outcome, reads) = rig
        .with_fees(vec![FeeRead::Fails, FeeRead::Lags], FeeRead::Answers)
        .await;
    assert!(matches!(outcome, BlockOutcome::Stored(_)), "{outcome:?}");
    assert_eq!(reads, 3);
}

/// An L1 that keeps failing is read a bounded number of times; the block is refused as
/// `fee_unavailable` (a verdict, not slashable), not dropped without one.
#[tokio::test]
async fn a_fee_that_l1_cannot_give_refuses_the_block_as_fee_unavailable_not_slashable() {
    let rig = Rig::new().await;
    let (outcome, reads) = rig.with_fees(vec![], FeeRead::Fails).await;
    let BlockOutcome::Refused(rejection) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        matches!(
            rejection,
            BlockRejection::FeeUnavailable(tandem_validator::FeeUnknown::L1Unavailable {
                number: 0,
                attempts: tandem_validator::FEE_READ_ATTEMPTS,
            })
        ),
        "{rejection:?}"
    );
    assert_eq!(rejection.as_str(), "fee_unavailable");
    assert!(!rejection.is_slashable());
    assert_eq!(reads, tandem_validator::FEE_READ_ATTEMPTS);
    assert_eq!(rig.validator.archiver.tips().proposed.block.number, 0);

    // An L1 node that stays behind the archiver: refused as disagreeing.
    let (outcome, _) = rig.with_fees(vec![], FeeRead::Lags).await;
    assert!(
        matches!(
            outcome,
            BlockOutcome::Refused(BlockRejection::FeeUnavailable(
                tandem_validator::FeeUnknown::L1Disagrees { number: 0, .. }
            ))
        ),
        "{outcome:?}"
    );
}

/// A hung L1 read is cut by the timeout and retried.
#[tokio::test]
async fn a_hung_fee_read_times_out_and_is_retried() {
    let rig = Rig::new().await;
    let (outcome, reads) = rig.with_fees(vec![FeeRead::Hangs], FeeRead::Answers).await;
    assert!(matches!(outcome, BlockOutcome::Stored(_)), "{outcome:?}");
    assert_eq!(reads, 2);
}

/// A refused block's children are refused at once (`parent_block_invalid`, not slashable),
/// not left waiting for it until the attestation deadline.
#[tokio::test]
async fn a_child_of_a_refused_block_is_refused_at_once() {
    let rig = Rig::new().await;
    let proposal = build(
        &rig.net,
        &rig.proposer,
        TARGET,
        vec![
            vec![rig.net.transfer(0, 0, 5)],
            vec![rig.net.transfer(1, 0, 6)],
        ],
    );
    // Block 0 without its txs (no peer has them): refused, header and archive unchanged.
    let mut stripped = proposal.blocks[0].clone();
    stripped.txs.clear();
    let rejection = rig.refused(&stripped, rig.no_wait()).await;
    assert!(matches!(rejection, BlockRejection::TxsNotAvailable { .. }));
    // The manual clock never reaches the deadline: only the parent's verdict can end the wait.
    let child = tokio::time::timeout(
        common::PATIENCE,
        rig.refused(&proposal.blocks[1], rig.deadline()),
    )
    .await
    .expect("the child of a refused block waited for it");
    assert!(
        matches!(
            child,
            BlockRejection::ParentBlockInvalid {
                parent_reason: "txs_not_available",
                ..
            }
        ),
        "{child:?}"
    );
    assert!(!child.is_slashable());
}

/// A block re-executed but refused by the archiver does not keep its txs protected (the
/// guard stays with the handler until the block is stored).
#[tokio::test]
async fn a_block_the_archiver_refuses_releases_its_tx_protection_at_once() {
    let rig = Rig::new().await;
    let proposal = rig.proposal();
    let hash = proposal.blocks[0].txs[0].hash();
    rig.validator
        .state
        .submit_tx(proposal.blocks[0].txs[0].clone())
        .await
        .unwrap();
    let context = tandem_validator::ValidatorContext::new(
        std::sync::Arc::new(common::TestArchive(
            rig.validator.archiver.clone(),
            common::OnAddBlock::Refuse,
        )),
        rig.validator.state.clone(),
        std::sync::Arc::new(common::NoPeers),
        std::sync::Arc::new(rig.net.clock.clone()),
        rig.net.windows,
        rig.net.domain,
        rig.net.fees(),
    );
    let outcome = BlockProposalProcessor::new(&context)
        .process_unverified(&proposal.blocks[0], None, rig.deadline())
        .await;
    assert!(
        matches!(
            outcome,
            BlockOutcome::Refused(BlockRejection::StoreRefused(_))
        ),
        "{outcome:?}"
    );
    assert!(
        !rig.validator
            .state
            .reader()
            .with_pool(|pool, _| pool.is_protected(&hash)),
        "a refused block's txs stayed protected"
    );
}
