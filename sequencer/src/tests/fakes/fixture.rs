//! Everything wired: the fakes, the real world state and signer in a temp dir.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tandem_archiver::StoredHeader;
use tandem_proto::{
    L2Tips,
    time::{PipeliningMode, Slot},
};
use tandem_validator::{OpenMode, ProtectedSigner};
use tokio::sync::{broadcast, watch};

use super::*;
use crate::{
    SequencerConfig, SequencerDeps, SequencerEvent, SequencerState, context::Ctx,
    deps::ProtocolParams, state::StateTracker,
};

/// Everything wired: fakes, the real world state and signer in `dir`.
pub(crate) struct Fixture {
    pub(crate) clock: TestClock,
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
        let clock = TestClock::new(GENESIS);
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
                published: watch::channel(0).0,
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
                unknown: Mutex::new(false),
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

    /// Genesis tips, L1 synced to the slot before `target`'s build slot, the clock at
    /// `target`'s frame opening, and `txs` transfers in the pool.
    pub(crate) fn ready_for(&self, target: Slot, txs: u64) {
        *self.chain.synced_slot.lock().unwrap() = target.0.checked_sub(2).map(Slot);
        self.at_frame_opening(target, Duration::ZERO);
        self.world
            .add_txs((0..txs).map(|n| transfer((n % 4) as u8, n / 4)));
    }
}
