//! The fee rule on a real contract (anvil + Rollup, an archiver following it, the fee oracle
//! over the L1 reader): a checkpoint's first block must carry the fee per mana L1 will require
//! after its parent — read from L1 when the parent is on L1, predicted from the proposed parent
//! (its mana and modifier) under pipelining. A wrong fee is refused with
//! `fee_per_mana_mismatch`, the right one is stored; landing the parent on L1 then makes L1
//! require exactly the predicted fee, and the child lands with it.

mod common;

use std::{sync::Arc, time::Duration};

use alloy::{eips::BlockId, primitives::Bytes};
use common::{
    NoPeers,
    anvil::{L1_VALIDATORS as VALIDATORS, L1Chain},
};
use tandem_archiver::{ArchiverHandle, ProposedCheckpointInput};
use tandem_proto::{
    Address, B256, Block, BlockProposal, CheckpointProposal, ConsensusPayload,
    DEFAULT_MAX_CHECKPOINT_BODY_BYTES, SigningDomain, SigningKey, Tx, TxPayload,
    time::{Clock, SlotClock, SystemClock, Timestamp},
};
use tandem_state::{
    BlockGlobals, BuildLimits, CheckpointBodyBudget, PoolConfig, TX_MANA, TxPool, build_block,
    validate_stateless,
};
use tandem_validator::{
    BlockOutcome, BlockProposalProcessor, BlockRejection, FeeOracle, FollowerStatus, L1FeeOracle,
    StateHandle, ValidatorContext,
};

const SLOT: u64 = 12;

struct Chain {
    domain: SigningDomain,
    slot_clock: SlotClock,
    users: Vec<SigningKey>,
    state: StateHandle,
    archiver: ArchiverHandle,
}

impl Chain {
    /// One block opening checkpoint `checkpoint` in slot `1 + checkpoint`, built on the
    /// validator's own tip with `fee`, every user sending one transfer (nonce `checkpoint − 1`).
    fn block(&self, checkpoint: u64, fee: u128, proposer: &SigningKey) -> BlockProposal {
        let (mut fork, _) = self.state.reader().fork_tip().unwrap();
        let slot = 1 + checkpoint;
        let globals = BlockGlobals {
            checkpoint_number: checkpoint,
            index_within_checkpoint: 0,
            slot,
            timestamp: self
                .slot_clock
                .slot_start(tandem_proto::time::Slot(slot))
                .as_secs(),
            coinbase: proposer.address(),
            fee_recipient: Address::repeat_byte(0xfe),
            fee_per_mana: fee,
        };
        let mut pool = TxPool::new(PoolConfig::default());
        for user in &self.users {
            let tx = Tx::sign(
                TxPayload {
                    chain_id: self.domain.chain_id,
                    nonce: checkpoint - 1,
                    to: Address::repeat_byte(0x70),
                    amount: 1_000,
                    max_fee_per_mana: 1_000_000,
                    mana_limit: TX_MANA,
                },
                &self.domain,
                user,
            );
            let tx = validate_stateless(tx, &self.domain).unwrap();
            pool.add(tx.clone(), &fork.account(&tx.sender())).unwrap();
        }
        let limits = BuildLimits {
            max_txs: 100,
            max_mana: u64::MAX,
            max_body_bytes: CheckpointBodyBudget::new(DEFAULT_MAX_CHECKPOINT_BODY_BYTES)
                .remaining(),
            deadline: Timestamp(u64::MAX),
        };
        let built = {
            let mut best = pool.best(|address| fork.account(address).nonce);
            build_block(&fork, &globals, &mut best, &limits, &SystemClock).unwrap()
        };
        assert_eq!(built.txs.len(), self.users.len(), "{:?}", built.failed);
        let (executed, txs) = fork.commit(built).unwrap();
        BlockProposal::sign(
            executed.block().header.clone(),
            executed.archive_root(),
            txs.iter().map(|tx| tx.tx().clone()).collect(),
            &self.domain,
            proposer,
        )
    }

    async fn wait_applied(&self, number: u64) {
        let status = tokio::time::timeout(
            Duration::from_secs(30),
            self.state.readiness().wait_for(
                |status| matches!(status, FollowerStatus::InSync { tip } if tip.number == number),
            ),
        )
        .await;
        assert!(
            matches!(status, Ok(Some(_))),
            "block {number} never applied"
        );
    }
}

fn payload_of(proposal: &BlockProposal, modifier: i64) -> (ConsensusPayload, Bytes) {
    let blocks = [Block {
        header: proposal.header.clone(),
        txs: proposal.txs.clone(),
    }];
    let (header, body) =
        tandem_proto::checkpoint_header_of(proposal.header.last_archive_root, &blocks).unwrap();
    (
        ConsensusPayload {
            header,
            archive: proposal.archive_root,
            fee_asset_price_modifier: modifier,
        },
        Bytes::from(body),
    )
}

#[tokio::test]
async fn a_wrong_fee_is_refused_and_the_fee_l1_will_require_is_accepted() {
    // One checkpoint of three transfers is two transfers over the target: the child's fee
    // rises (by e^1 with this fraction), so a proposer who ignores its parent gets it wrong.
    let l1 = L1Chain::start(0x41, 3, SLOT, 2_000, Duration::from_secs(60), |params| {
        params.mana_target = TX_MANA;
        params.mana_limit = 100 * TX_MANA;
        params.fee_update_fraction = 2 * TX_MANA;
    })
    .await;
    let (harness, deployment, domain, reader, validators) = (
        &l1.harness,
        &l1.deployment,
        l1.domain,
        &l1.reader,
        &l1.validators,
    );
    let (archiver, state) = (&l1.archiver, &l1.state);
    let fees = Arc::new(L1FeeOracle::from_l1(reader.clone()).await.unwrap());
    let context = ValidatorContext::new(
        Arc::new(archiver.clone()),
        state.clone(),
        Arc::new(NoPeers),
        Arc::new(SystemClock),
        l1.windows,
        domain,
        fees.clone(),
    );
    let processor = BlockProposalProcessor::new(&context);
    let chain = Chain {
        domain,
        slot_clock: l1.slot_clock,
        users: l1.users.clone(),
        state: state.clone(),
        archiver: archiver.clone(),
    };
    let deadline = || SystemClock.now().saturating_add(Duration::from_secs(30));
    let proposer = &validators[0];

    // Checkpoint 1 on the genesis checkpoint, which is on L1: L1's own min fee.
    let fee1 = reader.mana_min_fee(None, BlockId::latest()).await.unwrap();
    let wrong = chain.block(1, fee1 + 1, proposer);
    match processor.process_unverified(&wrong, None, deadline()).await {
        BlockOutcome::Refused(BlockRejection::FeePerManaMismatch { expected, claimed }) => {
            assert_eq!((expected, claimed), (fee1, fee1 + 1));
        }
        other => panic!("expected fee_per_mana_mismatch, got {other:?}"),
    }
    let block1 = chain.block(1, fee1, proposer);
    let outcome = processor
        .process_unverified(&block1, None, deadline())
        .await;
    assert!(matches!(outcome, BlockOutcome::Stored(_)), "{outcome:?}");
    chain.wait_applied(1).await;

    // Checkpoint 1 proposed (not on L1 yet), with a +0.5 % price modifier: checkpoint 2's fee
    // is predicted from it, and differs from checkpoint 1's.
    let (payload1, body1) = payload_of(&block1, 50);
    let checkpoint1 = CheckpointProposal::sign(payload1.clone(), None, &domain, proposer);
    chain
        .archiver
        .add_proposed_checkpoint(ProposedCheckpointInput {
            number: 1,
            payload: payload1.clone(),
            start_block: 1,
            block_count: 1,
            proposer_signature: checkpoint1.signature,
        })
        .await
        .unwrap();
    let stale = chain.block(2, fee1, proposer);
    let predicted = match processor.process_unverified(&stale, None, deadline()).await {
        BlockOutcome::Refused(BlockRejection::FeePerManaMismatch { expected, claimed }) => {
            assert_eq!(claimed, fee1);
            expected
        }
        other => panic!("expected fee_per_mana_mismatch, got {other:?}"),
    };
    assert!(predicted > fee1, "congestion raises the fee: {predicted}");
    let block2 = chain.block(2, predicted, proposer);
    let outcome = processor
        .process_unverified(&block2, None, deadline())
        .await;
    assert!(matches!(outcome, BlockOutcome::Stored(_)), "{outcome:?}");

    let (archive1, hash1) = (payload1.archive, payload1.header.hash());
    // L1 agrees: once checkpoint 1 lands, it requires exactly the predicted fee, and
    // checkpoint 2 carrying it lands.
    harness
        .land_checkpoint(
            deployment,
            validators,
            1,
            payload1,
            body1,
            VALIDATORS * 2 / 3 + 1,
        )
        .await
        .unwrap();
    assert_eq!(
        reader.mana_min_fee(None, BlockId::latest()).await.unwrap(),
        predicted
    );
    // The oracle finds checkpoint 1 by its header hash (the contract's hash is ours), and
    // refuses another header at the same number and archive.
    let l1_fee_header = |hash| fees.l1_fee_header(1, archive1, hash);
    assert!(
        l1_fee_header(hash1).await.unwrap().is_some(),
        "L1's checkpoint 1 not found by its header hash"
    );
    assert_eq!(l1_fee_header(B256::repeat_byte(9)).await.unwrap(), None);
    let (payload2, body2) = payload_of(&block2, 0);
    harness
        .land_checkpoint(
            deployment,
            validators,
            2,
            payload2,
            body2,
            VALIDATORS * 2 / 3 + 1,
        )
        .await
        .unwrap();
    l1.stop().await;
}
