//! A rollup on a real anvil mining every second, with the genesis on a block boundary, and a
//! publisher over it.

#![allow(dead_code, unreachable_pub)]

use std::{path::Path, sync::Arc, time::Duration};

use alloy::{
    eips::{BlockId, BlockNumberOrTag},
    primitives::{Address, B256, Bytes, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder, ext::AnvilApi},
    signers::local::PrivateKeySigner,
};
use tandem_l1::{
    Deployment, L1Reader, ProposeBundle, RollupParams, SimulationBase,
    harness::AnvilHarness,
    overrides::{ProposedParent, SimulationPlan},
};
use tandem_proto::{
    CheckpointAttestation, CheckpointHeader, CheckpointProposal, ConsensusPayload, SigningDomain,
    SigningKey,
    time::{Clock, Slot, SlotClock, SystemClock, Timestamp},
};
use tandem_publisher::{
    GWEI, Publisher, PublisherConfig, PublisherDeps, PublisherHandle, PublisherKeys, SendHooks,
    SubmissionHandle, SubmissionStatus,
};
use tokio_util::sync::CancellationToken;

/// E on anvil.
pub const L1_SLOT: u64 = 1;
/// Slots per epoch.
pub const EPOCH: u64 = 8;

pub fn validator_key(i: usize) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[24..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    secret[0] = 0x22;
    SigningKey::from_bytes(&secret).expect("valid key")
}

/// Settings fitted to 1 s L1 slots.
pub fn fast_config() -> PublisherConfig {
    PublisherConfig {
        max_fee_per_gas: 100 * GWEI,
        stall_time: Duration::from_secs(2),
        max_speed_ups: 2,
        receipt_poll_interval: Duration::from_millis(100),
        send_wait_poll_interval: Duration::from_millis(50),
        tx_unseen_considered_dropped: Duration::from_secs(2),
        cancel_final_timeout: Duration::from_secs(6),
        ..Default::default()
    }
}

pub struct Net {
    pub harness: AnvilHarness,
    pub deployment: Deployment,
    pub validators: Vec<SigningKey>,
    pub slot_clock: SlotClock,
    pub reader: L1Reader<DynProvider>,
    pub maker: CheckpointMaker,
}

/// Builds valid, signed checkpoints for a deployment (usable without the harness, e.g. in a
/// crash-test child process).
pub struct CheckpointMaker {
    pub reader: L1Reader<DynProvider>,
    pub validators: Vec<SigningKey>,
    pub domain: SigningDomain,
    pub epoch_duration: u64,
    pub slot_clock: SlotClock,
}

impl CheckpointMaker {
    /// For the rollup at `rollup` reached through `provider` (the deployment of [`Net::start`]).
    pub fn new(
        provider: DynProvider,
        rollup: Address,
        chain_id: u64,
        slot_clock: SlotClock,
        validators: usize,
    ) -> Self {
        Self {
            reader: L1Reader::new(provider, rollup),
            validators: (0..validators).map(validator_key).collect(),
            domain: SigningDomain { chain_id, rollup },
            epoch_duration: EPOCH,
            slot_clock,
        }
    }

    /// A valid checkpoint `number` for `slot` on top of `parent_archive`, paying the fee L1
    /// requires now, signed by the slot's proposer and attested by a quorum.
    pub async fn bundle(&self, number: u64, slot: Slot, parent_archive: B256) -> ProposeBundle {
        let fee = self
            .reader
            .mana_min_fee(None, BlockId::latest())
            .await
            .unwrap();
        self.bundle_with_fee(
            number,
            slot,
            parent_archive,
            fee,
            Bytes::from(vec![7u8; 256]),
        )
        .await
    }

    pub async fn bundle_with_fee(
        &self,
        number: u64,
        slot: Slot,
        parent_archive: B256,
        fee_per_mana: u128,
        body: Bytes,
    ) -> ProposeBundle {
        let header = CheckpointHeader {
            last_archive_root: parent_archive,
            block_headers_hash: keccak256(slot.0.to_be_bytes()),
            body_hash: keccak256(&body),
            slot: slot.0,
            timestamp: self.slot_clock.slot_start(slot).as_secs(),
            coinbase: Address::repeat_byte(0xcb),
            fee_recipient: Address::repeat_byte(0xfe),
            fee_per_mana,
            total_mana_used: 1_000,
            accumulated_fees: fee_per_mana * 1_000,
        };
        let payload = ConsensusPayload {
            header,
            archive: archive_after(parent_archive, slot),
            fee_asset_price_modifier: 0,
        };
        let committee = self
            .reader
            .committee(slot.0 / self.epoch_duration, BlockId::latest())
            .await
            .unwrap()
            .members;
        let key_of = |address: Address| {
            self.validators
                .iter()
                .find(|key| key.address() == address)
                .expect("a committee member's key")
        };
        let proposer = match self
            .reader
            .proposer_at(payload.header.timestamp, BlockId::latest())
            .await
            .unwrap()
        {
            Some(proposer) => key_of(proposer),
            None => &self.validators[0],
        };
        let proposal = CheckpointProposal::sign(payload, None, &self.domain, proposer);
        let quorum = committee.len() * 2 / 3 + 1;
        let attestations: Vec<CheckpointAttestation> = committee
            .iter()
            .take(quorum)
            .map(|member| CheckpointAttestation::sign(&proposal, &self.domain, key_of(*member)))
            .collect();
        ProposeBundle::new(
            number,
            &proposal,
            &attestations,
            &committee,
            &self.domain,
            body,
        )
        .unwrap()
    }

    /// The next checkpoint on L1's tip, for `slot`.
    pub async fn bundle_on_tip(&self, slot: Slot) -> ProposeBundle {
        let (tip, _) = self.reader.tips(BlockId::latest()).await.unwrap();
        let archive = self
            .reader
            .archive_at(tip, BlockId::latest())
            .await
            .unwrap();
        self.bundle(tip + 1, slot, archive).await
    }
}

impl Net {
    /// Anvil mining every second and a rollup with `slot` second slots and `validators`
    /// validators (all in the committee), genesis at the latest block.
    pub async fn start(slot: u64, validators: usize) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("publisher=debug")
            .with_test_writer()
            .try_init();
        let harness = AnvilHarness::start(Some(L1_SLOT as f64));
        let genesis = harness.latest_timestamp().await.unwrap();
        let mut params = RollupParams::with_genesis(genesis);
        params.slot_duration = slot;
        params.l1_slot_duration = L1_SLOT;
        params.epoch_duration = EPOCH;
        params.committee_size = validators as u64;
        params.mana_target = 1_000_000;
        params.mana_limit = 2_000_000;
        params.fee_update_fraction = 5_000_000;
        // D and R fit the short test slots (the contract wants them below S).
        params.block_duration_ms = 1_000;
        params.last_block_reexecution_budget_ms = 1_000;
        let validator_keys: Vec<SigningKey> = (0..validators).map(validator_key).collect();
        let addresses: Vec<Address> = validator_keys.iter().map(SigningKey::address).collect();
        let deployment = harness.deploy(&params, &addresses).await.unwrap();
        let slot_clock = SlotClock::new(
            Timestamp::from_secs(genesis),
            Duration::from_secs(slot),
            Duration::from_secs(L1_SLOT),
            EPOCH,
        )
        .unwrap();
        let reader = L1Reader::new(harness.provider(), deployment.rollup);
        let maker = CheckpointMaker::new(
            harness.provider(),
            deployment.rollup,
            params.l2_chain_id,
            slot_clock,
            validators,
        );
        Self {
            harness,
            deployment,
            validators: validator_keys,
            slot_clock,
            reader,
            maker,
        }
    }

    /// A provider without a wallet (the publisher signs itself).
    pub fn plain_provider(&self) -> DynProvider {
        ProviderBuilder::new()
            .connect_http(self.harness.endpoint().parse().unwrap())
            .erased()
    }

    /// Anvil dev key `1 + i` as a publisher key.
    pub fn publisher_key(&self, i: usize) -> PrivateKeySigner {
        self.harness.dev_key(1 + i)
    }

    pub fn deps(
        &self,
        dir: &Path,
        config: PublisherConfig,
        keys: Vec<PrivateKeySigner>,
        hooks: Option<Arc<dyn SendHooks>>,
    ) -> PublisherDeps {
        let attesters: Vec<Address> = self.validators.iter().map(SigningKey::address).collect();
        PublisherDeps {
            config,
            keys: PublisherKeys::new(keys, &attesters).unwrap(),
            provider: self.plain_provider(),
            rollup: self.deployment.rollup,
            slot_clock: self.slot_clock,
            clock: Arc::new(SystemClock),
            store_path: dir.to_path_buf(),
            hooks,
        }
    }

    /// Opens a publisher on `dir` and runs it.
    pub async fn publisher(
        &self,
        dir: &Path,
        config: PublisherConfig,
        keys: Vec<PrivateKeySigner>,
    ) -> Running {
        Running::start(self.deps(dir, config, keys, None)).await
    }

    /// The slot the wall clock is in.
    pub fn current_slot(&self) -> Slot {
        self.slot_clock.slot_at(SystemClock.now()).unwrap()
    }

    pub fn slot_start_secs(&self, slot: Slot) -> u64 {
        self.slot_clock.slot_start(slot).as_secs()
    }

    /// Waits (polling the wall clock) until `at`.
    pub async fn wait_until(&self, at: Timestamp) {
        while SystemClock.now() < at {
            tokio::time::sleep(SystemClock.now().until(at).min(Duration::from_millis(20))).await;
        }
    }

    /// Waits until the wall clock is `offset` into a slot that has at least `room` left; returns
    /// that slot.
    pub async fn enter_slot_with_room(&self, offset: Duration, room: Duration) -> Slot {
        loop {
            let slot = self.current_slot();
            let start = self.slot_clock.slot_start(slot);
            let end = self.slot_clock.slot_start(slot.next());
            let at = start.saturating_add(offset);
            if SystemClock.now() <= at && at.saturating_add(room) <= end {
                self.wait_until(at).await;
                return slot;
            }
            self.wait_until(end).await;
        }
    }

    pub async fn bundle(&self, number: u64, slot: Slot, parent_archive: B256) -> ProposeBundle {
        self.maker.bundle(number, slot, parent_archive).await
    }

    pub async fn bundle_with_fee(
        &self,
        number: u64,
        slot: Slot,
        parent_archive: B256,
        fee_per_mana: u128,
        body: Bytes,
    ) -> ProposeBundle {
        self.maker
            .bundle_with_fee(number, slot, parent_archive, fee_per_mana, body)
            .await
    }

    pub async fn bundle_on_tip(&self, slot: Slot) -> ProposeBundle {
        self.maker.bundle_on_tip(slot).await
    }

    /// The simulation plan for building on `parent` (checkpoint 1, proposed, not landed) while
    /// L1 holds only genesis, with the L1 state it was built on (read at one block).
    pub async fn plan_on_genesis(
        &self,
        parent: &ProposeBundle,
    ) -> (SimulationBase, SimulationPlan) {
        let base = self
            .reader
            .simulation_base(BlockNumberOrTag::Latest)
            .await
            .unwrap();
        assert_eq!(base.checkpointed, 0, "L1 holds only genesis");
        let plan = SimulationPlan::from_base(
            &base,
            &[ProposedParent {
                number: 1,
                archive: parent.args.archive,
                header_hash: tandem_l1::header_from_sol(&parent.args.header).hash(),
                slot: parent.args.header.slot,
                mana_used: parent.args.header.totalManaUsed,
                fee_asset_price_modifier: 0,
            }],
            &self.deployment.params.fee_params(),
        )
        .unwrap();
        (base, plan)
    }

    pub async fn tip(&self) -> u64 {
        self.reader.tips(BlockId::latest()).await.unwrap().0
    }

    pub async fn nonce(&self, address: Address) -> u64 {
        self.harness
            .provider()
            .get_transaction_count(address)
            .latest()
            .await
            .unwrap()
    }

    pub async fn block_timestamp(&self, number: u64) -> u64 {
        self.harness
            .provider()
            .get_block_by_number(number.into())
            .await
            .unwrap()
            .unwrap()
            .header
            .timestamp
    }

    pub async fn set_interval_mining(&self, secs: u64) {
        self.harness
            .provider()
            .anvil_set_interval_mining(secs)
            .await
            .unwrap();
    }
}

/// The archive a test checkpoint leaves: any value unique per parent and slot.
pub fn archive_after(parent: B256, slot: Slot) -> B256 {
    keccak256([parent.as_slice(), &slot.0.to_be_bytes()].concat())
}

/// A running publisher.
pub struct Running {
    pub handle: PublisherHandle,
    pub cancel: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), tandem_publisher::PublisherError>>,
}

impl Running {
    pub async fn start(deps: PublisherDeps) -> Self {
        let (handle, actor) = Publisher::open(deps).await.unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(actor.run(cancel.clone()));
        Self {
            handle,
            cancel,
            task,
        }
    }

    /// Stops the publisher and waits for it (the store is closed afterwards).
    pub async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Waits (bounded) for a status matching `condition`.
pub async fn wait_status(
    handle: &SubmissionHandle,
    within: Duration,
    condition: impl Fn(&SubmissionStatus) -> bool,
) -> SubmissionStatus {
    let mut watch = handle.watch();
    let status = tokio::time::timeout(within, watch.wait_for(|status| condition(status)))
        .await
        .unwrap_or_else(|_| panic!("status not reached; last: {:?}", handle.status()))
        .expect("publisher alive");
    status.clone()
}
