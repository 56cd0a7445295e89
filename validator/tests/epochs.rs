//! The epoch cache against the Rollup on a real anvil: committees and proposers equal the
//! contract's for every slot, the next epoch is known before the current one ends, provisional
//! committees follow registrations until L1 fixes them, old epochs go, and a reorg of the block
//! a committee was read at makes the cache read it again. Time is driven by the test: anvil
//! mines blocks at chosen timestamps and a manual clock follows.

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, ext::AnvilApi},
};
use tandem_l1::{Deployment, L1Reader, Rollup, RollupParams, harness::AnvilHarness};
use tandem_p2p::CommitteeSource;
use tandem_proto::{
    SigningKey,
    time::{Epoch, ManualClock, Slot, SlotClock, Timestamp},
};
use tandem_validator::{
    EpochCache, EpochCacheActor, EpochCacheConfig, EpochCacheHandle, EpochCacheStatus, EpochState,
};
use tokio_util::sync::CancellationToken;

const SLOT: u64 = 4;
const L1_SLOT: u64 = 2;
const EPOCH: u64 = 4;
const EPOCH_SECS: u64 = SLOT * EPOCH;
/// How far ahead of anvil's clock genesis is put, so registrations land before it.
const GENESIS_LEAD: u64 = 100;

fn validator(i: u64) -> Address {
    let mut secret = [0x22u8; 32];
    secret[24..].copy_from_slice(&(i + 1).to_be_bytes());
    SigningKey::from_bytes(&secret).unwrap().address()
}

struct Net {
    harness: AnvilHarness,
    deployment: Deployment,
    clock: ManualClock,
    handle: EpochCacheHandle,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Net {
    /// A rollup with 5 validators and committees of 3, genesis ahead; the cache's actor runs
    /// with a short poll interval, its clock at anvil's time.
    async fn start() -> Self {
        let harness = AnvilHarness::start(None);
        let now = harness.latest_timestamp().await.unwrap();
        let mut params = RollupParams::with_genesis(now + GENESIS_LEAD);
        params.slot_duration = SLOT;
        params.l1_slot_duration = L1_SLOT;
        params.epoch_duration = EPOCH;
        params.committee_size = 3;
        params.mana_target = 1_000_000;
        params.mana_limit = 2_000_000;
        params.fee_update_fraction = 5_000_000;
        params.block_duration_ms = 1_000;
        params.last_block_reexecution_budget_ms = 1_000;
        let validators: Vec<Address> = (0..5).map(validator).collect();
        let deployment = harness.deploy(&params, &validators).await.unwrap();
        let slot_clock = SlotClock::new(
            Timestamp::from_secs(params.genesis_time),
            Duration::from_secs(SLOT),
            Duration::from_secs(L1_SLOT),
            EPOCH,
        )
        .unwrap();
        let clock = ManualClock::new(Timestamp::from_secs(now));
        let config = EpochCacheConfig {
            retained_past_epochs: 1,
            poll_interval: Duration::from_millis(100),
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_millis(500),
            pass_timeout: Duration::from_secs(10),
        };
        // A provider of its own: a reorg test rewinds the chain under the cached nonces of the
        // harness's provider, not under this one's reads.
        let reader = L1Reader::new(harness.fresh_provider(), deployment.rollup);
        let (handle, actor) =
            EpochCacheActor::new(config, slot_clock, Arc::new(clock.clone()), reader)
                .expect("a valid config");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(actor.run(cancel.clone()));
        Self {
            harness,
            deployment,
            clock,
            handle,
            cancel,
            task,
        }
    }

    fn genesis(&self) -> u64 {
        self.deployment.params.genesis_time
    }

    fn epoch_start(&self, epoch: u64) -> u64 {
        self.genesis() + epoch * EPOCH_SECS
    }

    fn rollup(&self) -> Rollup::RollupInstance<DynProvider> {
        // Fresh: after an anvil revert a cached nonce would be wrong.
        Rollup::new(self.deployment.rollup, self.harness.fresh_provider())
    }

    fn cache(&self) -> EpochCache {
        self.handle.cache()
    }

    /// The clock reads `secs`.
    fn at(&self, secs: u64) {
        self.clock.set(Timestamp::from_secs(secs));
    }

    /// Registers `validators` in an L1 block stamped `timestamp`.
    async fn register_at(&self, timestamp: u64, validators: Vec<Address>) {
        self.harness
            .set_next_block_timestamp(timestamp)
            .await
            .unwrap();
        let receipt = self
            .rollup()
            .addValidators(validators)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status(), "addValidators reverted");
    }

    async fn refresh(&self) -> EpochCacheStatus {
        self.handle.refresh().await.unwrap()
    }

    /// The cache's committee and the proposer of every slot of `epoch` equal what the
    /// contract computes now.
    async fn assert_matches_contract(&self, epoch: u64) {
        let rollup = self.rollup();
        let cache = self.cache();
        let members = rollup
            .getEpochCommittee(U256::from(epoch))
            .call()
            .await
            .unwrap();
        assert_eq!(members.len(), 3);
        let cached = cache
            .epoch(Epoch(epoch))
            .unwrap_or_else(|| panic!("epoch {epoch} is not cached"));
        assert_eq!(&cached.members()[..], members.as_slice(), "epoch {epoch}");
        for slot in epoch * EPOCH..(epoch + 1) * EPOCH {
            let duty = cache
                .duty(Slot(slot))
                .unwrap_or_else(|| panic!("slot {slot} has no duty"));
            let proposer = rollup
                .getProposerForSlot(U256::from(slot))
                .call()
                .await
                .unwrap();
            assert_eq!(duty.proposer, Some(proposer), "slot {slot}");
            assert_eq!(&*duty.committee, members.as_slice(), "slot {slot}");
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap();
    }
}

fn states(status: &EpochCacheStatus) -> (Epoch, EpochState, EpochState) {
    (status.current_epoch, status.current, status.next)
}

#[tokio::test]
async fn committees_and_proposers_equal_the_contracts_and_the_next_epoch_comes_early() {
    let net = Net::start().await;
    let genesis = net.genesis();

    // Before genesis L1 is in epoch 0: epochs 0 and 1 are served, provisionally.
    let status = net.refresh().await;
    assert_eq!(
        states(&status),
        (Epoch(0), EpochState::Provisional, EpochState::Provisional)
    );
    net.assert_matches_contract(0).await;
    net.assert_matches_contract(1).await;

    // A registration still in epoch 0 changes them; the cache follows on the next pass.
    net.register_at(genesis - 50, vec![validator(5)]).await;
    net.refresh().await;
    net.assert_matches_contract(0).await;
    net.assert_matches_contract(1).await;

    // L1 in epoch 1 fixes epochs 0..=2; this block's registration starts the snapshot of
    // epoch 1, which epoch 3 will draw from.
    net.register_at(net.epoch_start(1) + 1, vec![validator(6)])
        .await;
    net.at(net.epoch_start(1) + 1);
    let status = net.refresh().await;
    assert_eq!(
        states(&status),
        (Epoch(1), EpochState::Fixed, EpochState::Fixed)
    );
    net.assert_matches_contract(1).await;
    net.assert_matches_contract(2).await;

    // The first L1 block of epoch 2 fixes epoch 3: known from then on, long before slot 12
    // (the first of epoch 3) opens its build frame at T − S − E, still inside epoch 2.
    net.harness.mine_at(net.epoch_start(2) + 1).await.unwrap();
    net.at(net.epoch_start(2) + 1);
    let status = net.refresh().await;
    assert_eq!(
        states(&status),
        (Epoch(2), EpochState::Fixed, EpochState::Fixed)
    );
    let build_frame_of_first_slot_of_3 = net.epoch_start(3) - SLOT - L1_SLOT;
    net.at(build_frame_of_first_slot_of_3);
    assert_eq!(net.refresh().await.current_epoch, Epoch(2));
    net.assert_matches_contract(2).await;
    net.assert_matches_contract(3).await;

    // The clock enters epoch 3 while L1 is still in epoch 2: epoch 4 is only provisional, and
    // a registration in that last stretch of epoch 2 does change it.
    net.at(net.epoch_start(3) + 1);
    let status = net.refresh().await;
    assert_eq!(
        states(&status),
        (Epoch(3), EpochState::Fixed, EpochState::Provisional)
    );
    net.register_at(net.epoch_start(3) - 2, vec![validator(7), validator(8)])
        .await;
    net.refresh().await;
    net.assert_matches_contract(4).await;

    // The first L1 block of epoch 3 fixes epoch 4; the background passes see it without a
    // refresh.
    net.harness.mine_at(net.epoch_start(3) + 1).await.unwrap();
    let mut status = net.handle.subscribe();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|status| status.next == EpochState::Fixed),
    )
    .await
    .expect("a background pass fixes epoch 4")
    .unwrap();
    net.assert_matches_contract(3).await;
    net.assert_matches_contract(4).await;

    // One past epoch is retained: 2, 3, 4 are held, epoch 1's slots have no duty.
    assert_eq!(net.cache().epochs(), [Epoch(2), Epoch(3), Epoch(4)]);
    assert_eq!(net.cache().duty(Slot(EPOCH)), None);
    // Nothing beyond the next epoch: L1 cannot know it yet.
    assert_eq!(net.cache().duty(Slot(5 * EPOCH)), None);
    net.stop().await;
}

#[tokio::test]
async fn a_reorg_below_the_sample_point_is_followed() {
    let net = Net::start().await;
    let provider = net.harness.provider();
    let before_epoch_1 = provider.anvil_snapshot().await.unwrap();

    // Chain A: one registration in epoch 1 (the snapshot epoch 3 draws from).
    net.register_at(net.epoch_start(1) + 1, vec![validator(5)])
        .await;
    net.harness.mine_at(net.epoch_start(2) + 1).await.unwrap();
    net.at(net.epoch_start(2) + 1);
    let status = net.refresh().await;
    assert_eq!(status.next, EpochState::Fixed);
    let head_a = status.l1_head.unwrap();
    net.assert_matches_contract(3).await;
    let committee_a = net.cache().epoch(Epoch(3)).unwrap();
    assert_eq!(committee_a.read_at(), head_a);

    // Chain B replaces it from before epoch 1: other registrations, the same heights.
    assert!(provider.anvil_revert(before_epoch_1).await.unwrap());
    net.register_at(net.epoch_start(1) + 2, (5..15).map(validator).collect())
        .await;
    net.harness.mine_at(net.epoch_start(2) + 2).await.unwrap();
    let status = net.refresh().await;
    let head_b = status.l1_head.unwrap();
    assert_eq!(head_b.number, head_a.number);
    assert_ne!(head_b.hash, head_a.hash);
    assert_eq!(status.next, EpochState::Fixed);
    let committee_b = net.cache().epoch(Epoch(3)).unwrap();
    assert_eq!(committee_b.read_at(), head_b, "epoch 3 was read again");
    net.assert_matches_contract(2).await;
    net.assert_matches_contract(3).await;
    net.stop().await;
}
