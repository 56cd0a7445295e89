//! The actor's logic against a scripted L1 (what it reads when, provisional vs fixed, eviction,
//! reorgs, retries). The same behaviour against a real contract is in `tests/epochs.rs`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::primitives::U256;
use tandem_l1::{EpochCommittee, L1BlockRef, L1Error, L1Result};
use tandem_p2p::CommitteeSource;
use tandem_proto::{
    Address, B256,
    time::{Epoch, ManualClock, Slot, SlotClock, Timestamp},
};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::epochs::{MAX_RETAINED_PAST_EPOCHS, MIN_EPOCH_CACHE_INTERVAL};

const GENESIS: u64 = 1_000;
/// Seconds per epoch: 4 slots of 4 s.
const EPOCH_SECS: u64 = 16;

#[derive(Default)]
struct Script {
    head: Option<L1BlockRef>,
    finalized: Option<L1BlockRef>,
    canonical: HashMap<u64, B256>,
    /// Committee generation per epoch: bumping it changes what L1 answers.
    generation: HashMap<u64, u64>,
    errors: VecDeque<L1Error>,
    committee_reads: Vec<(u64, B256)>,
    head_calls: Vec<tokio::time::Instant>,
}

#[derive(Clone, Default)]
struct FakeL1(Arc<Mutex<Script>>);

fn committee(epoch: u64, generation: u64) -> EpochCommittee {
    EpochCommittee {
        epoch,
        members: (0..3u8)
            .map(|i| Address::repeat_byte(i + 1 + (epoch as u8) * 8 + generation as u8))
            .collect(),
        seed: U256::from(epoch * 1_000 + generation),
    }
}

fn block(number: u64, timestamp: u64, fork: u8) -> L1BlockRef {
    L1BlockRef {
        number,
        hash: B256::with_last_byte(fork).with_first(number as u8),
        timestamp,
    }
}

trait WithFirst {
    fn with_first(self, byte: u8) -> Self;
}

impl WithFirst for B256 {
    fn with_first(mut self, byte: u8) -> Self {
        self.0[0] = byte;
        self
    }
}

impl FakeL1 {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().unwrap()
    }

    /// Makes `head` the tip of the canonical chain.
    fn set_head(&self, head: L1BlockRef) {
        let mut script = self.script();
        script.canonical.insert(head.number, head.hash);
        script.head = Some(head);
    }

    fn reads(&self) -> Vec<(u64, B256)> {
        self.script().committee_reads.clone()
    }

    fn fail(&self, error: L1Error) {
        self.script().errors.push_back(error);
    }

    fn take_error(&self) -> L1Result<()> {
        match self.script().errors.pop_front() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl CommitteeL1 for FakeL1 {
    async fn head(&self) -> L1Result<L1BlockRef> {
        self.script().head_calls.push(tokio::time::Instant::now());
        self.take_error()?;
        Ok(self.script().head.expect("the test set a head"))
    }

    async fn finalized(&self) -> L1Result<Option<L1BlockRef>> {
        Ok(self.script().finalized)
    }

    async fn canonical_hash(&self, number: u64) -> L1Result<Option<B256>> {
        Ok(self.script().canonical.get(&number).copied())
    }

    async fn committee_at(&self, epoch: Epoch, block: L1BlockRef) -> L1Result<EpochCommittee> {
        self.take_error()?;
        let mut script = self.script();
        script.committee_reads.push((epoch.0, block.hash));
        let generation = script.generation.get(&epoch.0).copied().unwrap_or(0);
        Ok(committee(epoch.0, generation))
    }
}

fn slot_clock() -> SlotClock {
    SlotClock::new(
        Timestamp::from_secs(GENESIS),
        Duration::from_secs(4),
        Duration::from_secs(2),
        4,
    )
    .unwrap()
}

fn config() -> EpochCacheConfig {
    EpochCacheConfig {
        retained_past_epochs: 1,
        poll_interval: Duration::from_secs(2),
        retry_initial: Duration::from_millis(250),
        retry_max: Duration::from_secs(4),
        pass_timeout: Duration::from_secs(10),
    }
}

/// The actor, not spawned: tests drive its passes one at a time.
struct Rig {
    l1: FakeL1,
    clock: ManualClock,
    cache: EpochCache,
    actor: EpochCacheActor<FakeL1>,
}

impl Rig {
    fn new(config: EpochCacheConfig) -> (Self, EpochCacheHandle) {
        let l1 = FakeL1::default();
        let clock = ManualClock::new(Timestamp::from_secs(GENESIS - 10));
        let (handle, actor) =
            EpochCacheActor::new(config, slot_clock(), Arc::new(clock.clone()), l1.clone())
                .expect("a valid config");
        let rig = Self {
            l1,
            clock,
            cache: handle.cache(),
            actor,
        };
        (rig, handle)
    }

    fn at(&self, secs: u64) {
        self.clock.set(Timestamp::from_secs(secs));
    }

    async fn pass(&mut self) -> ValidatorResult<EpochCacheStatus> {
        self.actor.pass().await
    }
}

fn epoch_start(epoch: u64) -> u64 {
    GENESIS + epoch * EPOCH_SECS
}

#[tokio::test]
async fn reads_what_l1_knows_provisionally_or_fixed_and_evicts_old_epochs() {
    let (mut rig, _handle) = Rig::new(config());
    // Before genesis L1 is in epoch 0: epochs 0 and 1 are known, but not fixed yet.
    rig.l1.set_head(block(1, GENESIS - 12, 0));
    let status = rig.pass().await.unwrap();
    assert_eq!(
        (status.current_epoch, status.current, status.next),
        (Epoch(0), EpochState::Provisional, EpochState::Provisional)
    );
    assert_eq!(rig.l1.reads().len(), 2);
    // Same head: nothing to read again.
    rig.pass().await.unwrap();
    assert_eq!(rig.l1.reads().len(), 2);
    // A new head re-reads provisional committees: a registration may have changed them.
    rig.l1.script().generation.insert(1, 1);
    rig.l1.set_head(block(2, GENESIS + 1, 0));
    rig.pass().await.unwrap();
    assert_eq!(rig.l1.reads().len(), 4);
    assert_eq!(
        rig.cache.epoch(Epoch(1)).unwrap().committee(),
        &committee(1, 1)
    );

    // L1 in epoch 1 fixes epochs 0, 1 and 2.
    rig.at(epoch_start(1) + 1);
    rig.l1.set_head(block(3, epoch_start(1) + 1, 0));
    let status = rig.pass().await.unwrap();
    assert_eq!(
        (status.current, status.next),
        (EpochState::Fixed, EpochState::Fixed)
    );
    assert_eq!(rig.l1.reads().len(), 7);
    rig.l1.set_head(block(4, epoch_start(1) + 3, 0));
    rig.pass().await.unwrap();
    assert_eq!(
        rig.l1.reads().len(),
        7,
        "fixed committees are not read again"
    );

    // The clock in epoch 3 with L1 still in epoch 2: 3 is fixed, 4 only provisional (one
    // epoch short), epoch 1 is evicted (one past epoch is retained).
    rig.at(epoch_start(3) + 1);
    rig.l1.set_head(block(5, epoch_start(2) + 15, 0));
    let status = rig.pass().await.unwrap();
    assert_eq!(
        (status.current_epoch, status.current, status.next),
        (Epoch(3), EpochState::Fixed, EpochState::Provisional)
    );
    assert_eq!(rig.cache.epochs(), [Epoch(2), Epoch(3), Epoch(4)]);
    let cache = rig.cache.clone();
    let slot = Slot(3 * 4 + 2);
    let duty = cache.duty(slot).unwrap();
    assert_eq!(duty.proposer, committee(3, 0).proposer_of(slot.0));
    assert_eq!(&*duty.committee, committee(3, 0).members.as_slice());
    // Gossip validation learns which duties may still change.
    assert!(!duty.provisional, "epoch 3 is fixed");
    assert!(
        cache.duty(Slot(4 * 4)).unwrap().provisional,
        "epoch 4 is not"
    );
    assert_eq!(cache.duty(Slot(4)), None, "epoch 1 was evicted");

    // The clock runs far ahead of a stalled L1: nothing it could read is trustworthy.
    rig.at(epoch_start(6) + 1);
    let status = rig.pass().await.unwrap();
    assert_eq!(
        (status.current, status.next),
        (EpochState::Unknown, EpochState::Unknown)
    );
    assert!(!status.is_ready());
    assert_eq!(cache.duty(Slot(6 * 4)), None);
    assert!(cache.epochs().is_empty());
}

#[tokio::test]
async fn a_committee_read_at_a_reorged_block_is_read_again() {
    let (mut rig, _handle) = Rig::new(config());
    rig.at(epoch_start(3) + 1);
    let read_at = block(10, epoch_start(3) + 1, 0);
    rig.l1.set_head(read_at);
    rig.pass().await.unwrap();
    let before = rig.l1.reads().len();
    assert_eq!(rig.cache.epoch(Epoch(4)).unwrap().read_at(), read_at);

    // The block the committees were read at leaves the chain, and with it what fixed epoch 4.
    rig.l1.script().generation.insert(4, 1);
    let fork = block(10, epoch_start(3) + 1, 1);
    rig.l1.set_head(fork);
    let status = rig.pass().await.unwrap();
    assert_eq!(status.next, EpochState::Fixed);
    let cached = rig.cache.epoch(Epoch(4)).unwrap();
    assert_eq!(cached.read_at(), fork);
    assert_eq!(cached.committee(), &committee(4, 1));
    // Every committee read at the old block (epochs 2, 3 and 4) was read again.
    assert_eq!(rig.l1.reads().len(), before + 3);

    // Once the read block is finalized, nothing is checked any more.
    rig.l1.script().finalized = Some(fork);
    rig.l1.script().generation.insert(4, 2);
    rig.l1.set_head(block(11, epoch_start(3) + 3, 2));
    rig.l1
        .script()
        .canonical
        .insert(10, B256::repeat_byte(0xee));
    rig.pass().await.unwrap();
    assert_eq!(
        rig.cache.epoch(Epoch(4)).unwrap().committee(),
        &committee(4, 1)
    );
}

#[test]
fn transient_errors_back_off_exponentially_up_to_the_cap() {
    let config = config();
    let delays: Vec<Duration> = (1..=6).map(|failures| backoff(&config, failures)).collect();
    assert_eq!(
        delays,
        [250, 500, 1_000, 2_000, 4_000, 4_000].map(Duration::from_millis)
    );
    assert_eq!(backoff(&config, u32::MAX), config.retry_max);
    assert!(is_transient(&ValidatorError::L1(L1Error::BlockGone(
        B256::ZERO
    ))));
    assert!(is_transient(&ValidatorError::EpochCacheTimeout(
        Duration::ZERO
    )));
    assert!(!is_transient(&ValidatorError::L1(L1Error::Unexpected("x"))));
}

#[tokio::test]
async fn the_running_actor_retries_with_backoff_and_answers_refreshes() {
    let config = EpochCacheConfig {
        poll_interval: Duration::from_secs(3_600),
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(80),
        ..config()
    };
    let (rig, handle) = Rig::new(config);
    rig.at(epoch_start(2) + 1);
    rig.l1.set_head(block(7, epoch_start(2) + 1, 0));
    for _ in 0..2 {
        rig.l1.fail(L1Error::BlockGone(B256::ZERO));
    }
    rig.l1.fail(L1Error::Unexpected("garbage from the node"));
    let l1 = rig.l1.clone();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(rig.actor.run(cancel.clone()));
    let mut status = handle.subscribe();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|status| status.is_ready() && status.next_known()),
    )
    .await
    .expect("the cache fills after the retries")
    .unwrap();
    let calls = l1.script().head_calls.clone();
    assert_eq!(calls.len(), 4, "three failed passes, then one that worked");
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
    // Timers never fire early: each retry waited at least its backoff (10, 20 ms after the
    // transient errors, retry_max after the permanent one).
    for (gap, at_least) in gaps.iter().zip([10, 20, 80].map(Duration::from_millis)) {
        assert!(*gap >= at_least, "gaps {gaps:?}");
    }
    // The next timed pass is an hour away; a refresh runs at once.
    l1.set_head(block(8, epoch_start(2) + 3, 0));
    let refreshed = handle.refresh().await.unwrap();
    assert_eq!(refreshed.l1_head, Some(block(8, epoch_start(2) + 3, 0)));
    cancel.cancel();
    task.await.unwrap();
    assert!(matches!(
        handle.refresh().await,
        Err(ValidatorError::EpochCacheStopped)
    ));
}

#[tokio::test]
async fn a_refresh_reports_the_l1_error_and_the_cache_keeps_what_it_had() {
    let (mut rig, _handle) = Rig::new(config());
    rig.at(epoch_start(2) + 1);
    rig.l1.set_head(block(7, epoch_start(2) + 1, 0));
    rig.pass().await.unwrap();
    rig.l1.fail(L1Error::BlockGone(B256::ZERO));
    match rig.pass().await {
        Err(ValidatorError::L1(L1Error::BlockGone(_))) => {}
        other => panic!("expected the L1 error, got {other:?}"),
    }
    assert!(rig.actor.status.borrow().is_ready());
    assert!(rig.cache.duty(Slot(2 * 4)).is_some());
}

#[test]
fn configs_out_of_range_are_refused_by_name_before_the_actor_exists() {
    let invalid = [
        (
            EpochCacheConfig {
                poll_interval: Duration::ZERO,
                ..config()
            },
            "poll_interval",
        ),
        (
            EpochCacheConfig {
                retry_initial: Duration::ZERO,
                ..config()
            },
            "retry_initial",
        ),
        (
            EpochCacheConfig {
                pass_timeout: Duration::ZERO,
                ..config()
            },
            "pass_timeout",
        ),
        (
            EpochCacheConfig {
                retry_max: Duration::MAX,
                ..config()
            },
            "retry_max",
        ),
        (
            EpochCacheConfig {
                poll_interval: Duration::from_secs(u64::MAX),
                ..config()
            },
            "poll_interval",
        ),
        (
            EpochCacheConfig {
                retry_initial: Duration::from_secs(5),
                retry_max: Duration::from_secs(4),
                ..config()
            },
            "retry_initial",
        ),
        (
            EpochCacheConfig {
                retained_past_epochs: u64::MAX,
                ..config()
            },
            "retained_past_epochs",
        ),
    ];
    for (config, named) in invalid {
        let clock = ManualClock::new(Timestamp::from_secs(GENESIS));
        match EpochCacheActor::new(
            config.clone(),
            slot_clock(),
            Arc::new(clock),
            FakeL1::default(),
        ) {
            Err(err @ ValidatorError::EpochCacheConfig { field, .. }) => {
                assert_eq!(field, named, "{config:?}");
                assert!(err.to_string().contains(named), "{err}");
            }
            Err(other) => panic!("{config:?}: expected a config error, got {other}"),
            Ok(_) => panic!("{config:?}: an invalid config was accepted"),
        }
    }
    config().validate().unwrap();
    EpochCacheConfig::default().validate().unwrap();
    let edges = EpochCacheConfig {
        retained_past_epochs: MAX_RETAINED_PAST_EPOCHS,
        poll_interval: MIN_EPOCH_CACHE_INTERVAL,
        retry_initial: MAX_EPOCH_CACHE_INTERVAL,
        retry_max: MAX_EPOCH_CACHE_INTERVAL,
        pass_timeout: MIN_EPOCH_CACHE_INTERVAL,
    };
    edges.validate().unwrap();
}

#[test]
fn deadlines_never_overflow_the_clock() {
    let now = tokio::time::Instant::now();
    assert_eq!(
        deadline_after(now, Duration::from_secs(3)),
        now + Duration::from_secs(3)
    );
    // `now + Duration::MAX` panics; the deadline is capped instead.
    assert_eq!(
        deadline_after(now, Duration::MAX),
        now + MAX_EPOCH_CACHE_INTERVAL
    );
}
