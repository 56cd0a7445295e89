//! Fakes behind the sequencer's traits, and a fixture wiring them.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::primitives::Bytes;
use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{
    ArchiverError, ProposedBlock, ProposedCheckpoint, ProposedCheckpointInput, StoredHeader,
};
use tandem_l1::{
    FeeHeader, FeeParams, L1BlockRef, Rollup, SimulationBase, overrides::SimulationPlan,
};
use tandem_p2p::{CommitteeSource, SlotDuty};
use tandem_proto::time::Clock;
use tandem_proto::{
    Address, B256, BlockHeader, BlockId, BlockProposal, CheckpointAttestation, CheckpointId,
    CheckpointProposal, ConsensusPayload, L2TipId, L2Tips, RecoveredTx, SigningDomain, SigningKey,
    Tx, TxPayload,
    time::{
        ConsensusWindows, ManualClock, PipeliningMode, SequencerBudgets, Slot, SlotClock,
        Timestamp, Timetable,
    },
};
use tandem_publisher::{ProposeSlot, SubmissionOutcome, ValidatedHeader};
use tandem_state::{
    ChainSpec, ExecutedBlock, Fork, PoolConfig, StateTip, TxPool, WorldState, WorldStateConfig,
};
use tandem_validator::{OpenMode, ProtectedSigner};
use tokio::sync::{broadcast, watch};

use crate::{
    SequencerConfig, SequencerDeps, SequencerEvent, SequencerState,
    context::Ctx,
    deps::{ChainStore, DepFuture, Gossip, L1Simulator, ProtocolParams, Submitter, WorldView},
    error::SequencerResult,
    state::StateTracker,
};

pub(crate) const CHAIN_ID: u64 = 31_337;
/// The ci profile: S 12 s, E 1 s, D 1 s, 4 slots per epoch.
pub(crate) const S: Duration = Duration::from_secs(12);
pub(crate) const E: Duration = Duration::from_secs(1);
pub(crate) const D: Duration = Duration::from_secs(1);
pub(crate) const GENESIS: Timestamp = Timestamp(1_000_000_000);
pub(crate) const FEE: u128 = 10;

pub(crate) fn slot_clock() -> SlotClock {
    SlotClock::new(GENESIS, S, E, 4).unwrap()
}

pub(crate) fn timetable(mode: PipeliningMode) -> Timetable {
    let windows = ConsensusWindows::new(slot_clock(), D, mode, D);
    Timetable::new(windows, SequencerBudgets::default()).unwrap()
}

pub(crate) fn domain() -> SigningDomain {
    SigningDomain {
        chain_id: CHAIN_ID,
        rollup: Address::repeat_byte(0xaa),
    }
}

pub(crate) fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32]).unwrap()
}

pub(crate) fn user(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[0x50 + i; 32]).unwrap()
}

pub(crate) fn spec() -> ChainSpec {
    ChainSpec {
        chain_id: CHAIN_ID,
        rollup_version: 1,
        genesis_allocation: (0..4).map(|i| (user(i).address(), 1u128 << 80)).collect(),
    }
}

pub(crate) fn transfer(user_index: u8, nonce: u64) -> RecoveredTx {
    let tx = Tx::sign(
        TxPayload {
            chain_id: CHAIN_ID,
            nonce,
            to: Address::repeat_byte(0x77),
            amount: 1,
            max_fee_per_mana: FEE,
            mana_limit: tandem_state::TX_MANA,
        },
        &domain(),
        &user(user_index),
    );
    tandem_state::validate_stateless(tx, &domain()).unwrap()
}

fn tip_id(number: u64, hash: B256, checkpoint: u64) -> L2TipId {
    L2TipId {
        block: BlockId { number, hash },
        checkpoint: CheckpointId {
            number: checkpoint,
            hash: B256::with_last_byte(checkpoint as u8),
        },
    }
}

/// The archiver, scripted.
pub(crate) struct FakeChain {
    pub(crate) tips: watch::Sender<L2Tips>,
    pub(crate) headers: Mutex<BTreeMap<u64, StoredHeader>>,
    pub(crate) proposed: Mutex<BTreeMap<u64, ProposedCheckpoint>>,
    pub(crate) checkpointed_hashes: Mutex<BTreeMap<u64, B256>>,
    pub(crate) synced_slot: Mutex<Option<Slot>>,
    pub(crate) refuse_blocks: Mutex<bool>,
    pub(crate) stored_blocks: Mutex<Vec<ProposedBlock>>,
    pub(crate) stored_checkpoints: Mutex<Vec<ProposedCheckpointInput>>,
}

impl FakeChain {
    pub(crate) fn new(tips: L2Tips) -> Self {
        Self {
            tips: watch::channel(tips).0,
            headers: Mutex::default(),
            proposed: Mutex::default(),
            checkpointed_hashes: Mutex::default(),
            synced_slot: Mutex::new(None),
            refuse_blocks: Mutex::new(false),
            stored_blocks: Mutex::default(),
            stored_checkpoints: Mutex::default(),
        }
    }

    /// A header `number` in `checkpoint`, of `slot`.
    pub(crate) fn put_header(&self, number: u64, checkpoint: u64, slot: u64) -> StoredHeader {
        let header = BlockHeader {
            block_number: number,
            checkpoint_number: checkpoint,
            slot,
            ..BlockHeader::default()
        };
        let stored = StoredHeader {
            hash: header.hash(),
            archive_root: B256::with_last_byte(0xa0 + number as u8),
            header,
        };
        self.headers.lock().unwrap().insert(number, stored.clone());
        stored
    }

    pub(crate) fn put_proposed(
        &self,
        number: u64,
        start: u64,
        count: u64,
        slot: u64,
    ) -> ProposedCheckpoint {
        let mut payload = ConsensusPayload::default();
        payload.header.slot = slot;
        payload.archive = B256::with_last_byte(0xc0 + number as u8);
        let proposed = ProposedCheckpoint {
            number,
            payload,
            start_block: start,
            block_count: count,
            total_mana_used: 0,
            proposer_signature: Default::default(),
        };
        self.proposed
            .lock()
            .unwrap()
            .insert(number, proposed.clone());
        proposed
    }

    /// Tips: proposed tip block `number` (hash from its stored header), in checkpoint `cp`;
    /// proposed checkpoint `proposed` and checkpointed `checkpointed`.
    pub(crate) fn set_tips(&self, number: u64, cp: u64, proposed: u64, checkpointed: u64) {
        let hash = self.headers.lock().unwrap()[&number].hash;
        let last_of = |c: u64| tip_id(number, hash, c);
        self.tips.send_replace(L2Tips {
            proposed: last_of(cp),
            proposed_checkpoint: last_of(proposed),
            checkpointed: last_of(checkpointed),
            finalized: last_of(0),
        });
    }
}

impl ChainStore for FakeChain {
    fn tips(&self) -> L2Tips {
        *self.tips.borrow()
    }

    fn watch_tips(&self) -> watch::Receiver<L2Tips> {
        self.tips.subscribe()
    }

    fn header(&self, number: u64) -> SequencerResult<Option<StoredHeader>> {
        Ok(self.headers.lock().unwrap().get(&number).cloned())
    }

    fn proposed_checkpoint(&self, number: u64) -> SequencerResult<Option<ProposedCheckpoint>> {
        Ok(self.proposed.lock().unwrap().get(&number).cloned())
    }

    fn checkpointed_header_hash(&self, number: u64) -> SequencerResult<Option<B256>> {
        Ok(self
            .checkpointed_hashes
            .lock()
            .unwrap()
            .get(&number)
            .copied())
    }

    fn synced_l2_slot(&self) -> SequencerResult<Option<Slot>> {
        Ok(*self.synced_slot.lock().unwrap())
    }

    fn add_block(&self, block: ProposedBlock) -> DepFuture<'_, ()> {
        async move {
            if *self.refuse_blocks.lock().unwrap() {
                return Err(ArchiverError::Stopped.into());
            }
            self.stored_blocks.lock().unwrap().push(block);
            Ok(())
        }
        .boxed()
    }

    fn add_proposed_checkpoint(&self, input: ProposedCheckpointInput) -> DepFuture<'_, ()> {
        async move {
            self.stored_checkpoints.lock().unwrap().push(input);
            Ok(())
        }
        .boxed()
    }
}

/// A real world state in a temp dir with a plain pool; its tip can be overridden for tests of
/// prepare alone.
pub(crate) struct FakeWorld {
    pub(crate) world: WorldState,
    pub(crate) pool: Mutex<TxPool>,
    pub(crate) tip_override: Mutex<Option<StateTip>>,
    pub(crate) submitted: Mutex<Vec<B256>>,
}

impl FakeWorld {
    pub(crate) fn open(dir: &std::path::Path) -> Self {
        Self {
            world: WorldState::open(&dir.join("world"), spec(), WorldStateConfig::default())
                .unwrap(),
            pool: Mutex::new(TxPool::new(PoolConfig::default())),
            tip_override: Mutex::new(None),
            submitted: Mutex::default(),
        }
    }

    pub(crate) fn add_txs(&self, txs: impl IntoIterator<Item = RecoveredTx>) {
        let mut pool = self.pool.lock().unwrap();
        for tx in txs {
            let account = self.world.account(&tx.sender());
            pool.add(tx, &account).unwrap();
        }
    }
}

impl WorldView for FakeWorld {
    fn tip(&self) -> StateTip {
        self.tip_override
            .lock()
            .unwrap()
            .unwrap_or_else(|| self.world.tip())
    }

    fn fork(&self, number: u64) -> SequencerResult<Fork> {
        Ok(self.world.fork(number)?)
    }

    fn candidates(&self, fork: &Fork, max: usize) -> Vec<RecoveredTx> {
        self.pool
            .lock()
            .unwrap()
            .best(|address| fork.account(address).nonce)
            .take(max)
            .collect()
    }

    fn submit_executed(&self, block: ExecutedBlock, _txs: Vec<RecoveredTx>) -> DepFuture<'_, ()> {
        self.submitted.lock().unwrap().push(block.block().hash());
        async { Ok(()) }.boxed()
    }
}

/// L1, scripted: records every call.
#[derive(Default)]
pub(crate) struct FakeL1 {
    pub(crate) checkpointed: Mutex<u64>,
    pub(crate) calls: Mutex<Vec<&'static str>>,
    /// `(time, archive, proposer, plan)` of every `canProposeAt`.
    pub(crate) can_propose: Mutex<Vec<(Timestamp, B256, Address, SimulationPlan)>>,
    /// `None`: answer what was asked for (slot of the time, the plan's next checkpoint).
    pub(crate) answer: Mutex<Option<ProposeSlot>>,
    pub(crate) refuse_header: Mutex<bool>,
}

pub(crate) fn fee_params() -> FeeParams {
    FeeParams {
        mana_target: 1_000_000,
        min_fee_per_mana: 1_000,
        fee_update_fraction: 5_000_000,
    }
}

impl L1Simulator for FakeL1 {
    fn simulation_base(&self) -> DepFuture<'_, SimulationBase> {
        self.calls.lock().unwrap().push("simulation_base");
        let checkpointed = *self.checkpointed.lock().unwrap();
        async move {
            Ok(SimulationBase {
                l1_block: L1BlockRef {
                    number: 7,
                    hash: B256::repeat_byte(7),
                    timestamp: 0,
                },
                checkpointed,
                proven: 0,
                tip_archive: B256::ZERO,
                tip_fee_header: FeeHeader {
                    excess_mana: 0,
                    mana_used: 0,
                    eth_per_fee_asset: 1_000_000_000_000,
                },
            })
        }
        .boxed()
    }

    fn can_propose_at<'a>(
        &'a self,
        time: Timestamp,
        archive: B256,
        proposer: Address,
        _base: &'a SimulationBase,
        plan: &'a SimulationPlan,
    ) -> DepFuture<'a, ProposeSlot> {
        self.calls.lock().unwrap().push("can_propose_at");
        self.can_propose
            .lock()
            .unwrap()
            .push((time, archive, proposer, plan.clone()));
        let answer = self.answer.lock().unwrap().unwrap_or(ProposeSlot {
            slot: slot_clock().slot_at(time).unwrap(),
            next_checkpoint: plan.next_checkpoint_number(),
        });
        async move { Ok(answer) }.boxed()
    }

    fn mana_min_fee<'a>(
        &'a self,
        _base: &'a SimulationBase,
        _plan: &'a SimulationPlan,
    ) -> DepFuture<'a, u128> {
        self.calls.lock().unwrap().push("mana_min_fee");
        async { Ok(FEE) }.boxed()
    }

    fn validate_header<'a>(
        &'a self,
        _args: &'a Rollup::ProposeArgs,
        _body: &'a Bytes,
        _time: Timestamp,
        _base: &'a SimulationBase,
        _plan: &'a SimulationPlan,
    ) -> DepFuture<'a, ValidatedHeader> {
        self.calls.lock().unwrap().push("validate_header");
        let refuse = *self.refuse_header.lock().unwrap();
        async move {
            if refuse {
                return Err(tandem_publisher::PublisherError::InvalidRequest(
                    "refused by the test",
                )
                .into());
            }
            Ok(ValidatedHeader {
                header_hash: B256::ZERO,
                fee_header: FeeHeader::default(),
            })
        }
        .boxed()
    }
}

/// The publisher: records what was enqueued; its outcomes never resolve unless `landing`.
#[derive(Default)]
pub(crate) struct FakePublisher {
    pub(crate) enqueued: Mutex<Vec<Slot>>,
    pub(crate) interrupted: Mutex<bool>,
    pub(crate) landing: Mutex<bool>,
}

impl Submitter for FakePublisher {
    fn enqueue(
        &self,
        bundle: tandem_l1::ProposeBundle,
        target: Slot,
    ) -> DepFuture<'_, BoxFuture<'static, SubmissionOutcome>> {
        assert_eq!(bundle.args.header.slot, target.0);
        self.enqueued.lock().unwrap().push(target);
        let landing = *self.landing.lock().unwrap();
        async move {
            let outcome: BoxFuture<'static, SubmissionOutcome> = if landing {
                async { SubmissionOutcome::Expired }.boxed()
            } else {
                // A submission sleeping in the publisher until interrupted.
                futures::future::pending().boxed()
            };
            Ok(outcome)
        }
        .boxed()
    }

    fn interrupt(&self) {
        *self.interrupted.lock().unwrap() = true;
    }
}

/// Gossip: records what was published; collecting returns the attestations published here
/// plus `extra`, or waits until the deadline (of the clock) when there are fewer than asked.
pub(crate) struct FakeGossip {
    pub(crate) clock: ManualClock,
    pub(crate) blocks: Mutex<Vec<BlockProposal>>,
    pub(crate) checkpoints: Mutex<Vec<CheckpointProposal>>,
    pub(crate) attestations: Mutex<Vec<CheckpointAttestation>>,
    pub(crate) collects: Mutex<usize>,
}

impl Gossip for FakeGossip {
    fn publish_block_proposal(&self, proposal: BlockProposal) -> DepFuture<'_, ()> {
        self.blocks.lock().unwrap().push(proposal);
        async { Ok(()) }.boxed()
    }

    fn publish_checkpoint_proposal(&self, proposal: CheckpointProposal) -> DepFuture<'_, ()> {
        self.checkpoints.lock().unwrap().push(proposal);
        async { Ok(()) }.boxed()
    }

    fn publish_attestation(&self, attestation: CheckpointAttestation) -> DepFuture<'_, ()> {
        self.attestations.lock().unwrap().push(attestation);
        async { Ok(()) }.boxed()
    }

    fn collect_attestations<'a>(
        &'a self,
        _payload: &'a ConsensusPayload,
        quorum: usize,
        deadline: Timestamp,
    ) -> DepFuture<'a, Vec<CheckpointAttestation>> {
        *self.collects.lock().unwrap() += 1;
        async move {
            let have = self.attestations.lock().unwrap().clone();
            if have.len() < quorum {
                crate::context::sleep_until(&self.clock, deadline).await;
            }
            Ok(self.attestations.lock().unwrap().clone())
        }
        .boxed()
    }
}

/// Members in order; the proposer of slot s is `members[s % n]`; records every slot asked.
pub(crate) struct RecordingCommittee {
    pub(crate) members: Arc<[Address]>,
    pub(crate) asked: Mutex<Vec<Slot>>,
}

impl CommitteeSource for RecordingCommittee {
    fn duty(&self, slot: Slot) -> Option<SlotDuty> {
        self.asked.lock().unwrap().push(slot);
        Some(SlotDuty {
            proposer: Some(self.members[(slot.0 % self.members.len() as u64) as usize]),
            committee: Arc::clone(&self.members),
            provisional: false,
        })
    }
}

/// Everything wired: fakes, the real world state and signer in `dir`.
pub(crate) struct Fixture {
    pub(crate) clock: ManualClock,
    pub(crate) chain: Arc<FakeChain>,
    pub(crate) world: Arc<FakeWorld>,
    pub(crate) l1: Arc<FakeL1>,
    pub(crate) publisher: Arc<FakePublisher>,
    pub(crate) gossip: Arc<FakeGossip>,
    pub(crate) committee: Arc<RecordingCommittee>,
    pub(crate) config: SequencerConfig,
    pub(crate) mode: PipeliningMode,
    /// Caps the timetable's blocks per checkpoint (shorter jobs).
    pub(crate) blocks_cap: Option<u32>,
    pub(crate) signer: ProtectedSigner,
    pub(crate) _dir: tempfile::TempDir,
}

impl Fixture {
    /// Our key is `key(1)`; the committee is `[key(1)]` (we propose every slot) unless
    /// `others` adds members.
    pub(crate) fn new(mode: PipeliningMode, others: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(GENESIS);
        let world = Arc::new(FakeWorld::open(dir.path()));
        let genesis = world.world.tip();
        let chain = Arc::new(FakeChain::new(L2Tips::default()));
        chain.headers.lock().unwrap().insert(
            0,
            StoredHeader {
                header: spec().genesis_header(),
                hash: genesis.hash,
                archive_root: genesis.archive_root,
            },
        );
        chain.set_tips(0, 0, 0, 0);
        let mut members = vec![key(1).address()];
        members.extend(others.iter().map(|i| key(*i).address()));
        let signer = ProtectedSigner::open(
            &dir.path().join("slashing-protection"),
            domain(),
            [key(1)],
            OpenMode::Initialize {
                first_slot: Slot(0),
            },
        )
        .unwrap();
        Self {
            gossip: Arc::new(FakeGossip {
                clock: clock.clone(),
                blocks: Mutex::default(),
                checkpoints: Mutex::default(),
                attestations: Mutex::default(),
                collects: Mutex::new(0),
            }),
            clock,
            chain,
            world,
            l1: Arc::new(FakeL1::default()),
            publisher: Arc::new(FakePublisher::default()),
            committee: Arc::new(RecordingCommittee {
                members: members.into(),
                asked: Mutex::default(),
            }),
            config: SequencerConfig::default(),
            mode,
            blocks_cap: None,
            signer,
            _dir: dir,
        }
    }

    pub(crate) fn deps(&self) -> SequencerDeps {
        SequencerDeps {
            chain: self.chain.clone(),
            world: self.world.clone(),
            l1: self.l1.clone(),
            publisher: self.publisher.clone(),
            gossip: self.gossip.clone(),
            committee: self.committee.clone(),
            signer: Arc::new(self.signer.clone()),
            clock: Arc::new(self.clock.clone()),
        }
    }

    pub(crate) fn params(&self) -> ProtocolParams {
        let table = timetable(self.mode);
        ProtocolParams {
            timetable: match self.blocks_cap {
                Some(cap) => table.with_max_blocks_cap(cap),
                None => table,
            },
            domain: domain(),
            fees: fee_params(),
            mana_limit: 100_000_000,
            max_body_bytes: tandem_proto::DEFAULT_MAX_CHECKPOINT_BODY_BYTES,
        }
    }

    pub(crate) fn ctx(&self) -> (Arc<Ctx>, broadcast::Receiver<SequencerEvent>) {
        let (ctx, events, _) = self.ctx_with_state();
        (ctx, events)
    }

    pub(crate) fn ctx_with_state(
        &self,
    ) -> (
        Arc<Ctx>,
        broadcast::Receiver<SequencerEvent>,
        watch::Receiver<SequencerState>,
    ) {
        let (events, receiver) = broadcast::channel(256);
        let (tracker, state) = StateTracker::new();
        (
            Arc::new(Ctx {
                deps: self.deps(),
                config: self.config.clone(),
                params: self.params(),
                tracker,
                events,
            }),
            receiver,
            state,
        )
    }

    /// Sets the clock to `target`'s build frame opening (plus `after`).
    pub(crate) fn at_frame_opening(&self, target: Slot, after: Duration) {
        let opening = timetable(self.mode).schedule(target).build_frame_start;
        self.clock.set(opening.saturating_add(after));
    }

    /// Runs the clock (20 ms per real ms) while the sequencer waits, and stops it while it
    /// works (building, signing, storing take no clock time): sub-slot outcomes do not depend
    /// on how fast this machine is. It halts 30 ms after every whole second (the ci profile's
    /// sub-slot deadlines are on whole seconds) for longer than a clock wait takes to look
    /// again, so a wait wakes up a little late, as on a real clock, but never by more. Until
    /// the returned guard drops.
    pub(crate) fn drive_clock(
        &self,
        state: watch::Receiver<SequencerState>,
    ) -> tokio_util::sync::DropGuard {
        let clock = self.clock.clone();
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            while !token.is_cancelled() {
                let waiting = matches!(
                    *state.borrow(),
                    SequencerState::WaitingForTxs
                        | SequencerState::WaitingUntilNextBlock
                        | SequencerState::Idle
                        | SequencerState::Stopped
                );
                if waiting {
                    let now = clock.now().0;
                    // 30 ms past each whole second: a wake-up is never exactly on time.
                    let boundary = ((now - 30) / 1_000 + 1) * 1_000 + 30;
                    let next = (now + 20).min(boundary);
                    clock.set(Timestamp(next));
                    if next == boundary {
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        stop.drop_guard()
    }

    /// Genesis tips, L1 synced to the slot before `target`'s build slot, the clock at
    /// `target`'s frame opening, and `txs` transfers in the pool.
    pub(crate) fn ready_for(&self, target: Slot, txs: u64) {
        *self.chain.synced_slot.lock().unwrap() = target.0.checked_sub(2).map(Slot);
        self.at_frame_opening(target, Duration::ZERO);
        self.world
            .add_txs((0..txs).map(|n| transfer((n % 4) as u8, n / 4)));
    }
}

/// Drains the events received so far.
pub(crate) fn drain(events: &mut broadcast::Receiver<SequencerEvent>) -> Vec<SequencerEvent> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}
