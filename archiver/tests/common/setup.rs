//! A store following an in-memory L1 through `sync_step`, for the L1 sync tests.

use std::{collections::BTreeSet, time::Duration};

use tandem_archiver::{
    ArchiverError, ArchiverStore, PruneContext, SyncConfig, SyncReport, sync_step,
};
use tandem_proto::time::{ConsensusWindows, PipeliningMode, SlotClock, Timestamp};

use super::{BuiltCheckpoint, Chain, FakeL1, open_store};

/// S = 4 s, E = 1 s, genesis at 1,000 s: slot `s` covers L1 seconds `1000 + 4s ..= 1003 + 4s`.
pub const GENESIS: u64 = 1_000;
pub const SLOT: u64 = 4;

pub fn slot_clock() -> SlotClock {
    SlotClock::new(
        Timestamp::from_secs(GENESIS),
        Duration::from_secs(SLOT),
        Duration::from_secs(1),
        8,
    )
    .unwrap()
}

/// A store, an in-memory L1 and a chain builder on the timing above.
pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub store: ArchiverStore,
    pub l1: FakeL1,
    pub config: SyncConfig,
    pub chain: Chain,
}

impl Setup {
    /// An L1 whose blocks `0..=10` are one second apart, ending at the start of slot 1.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let l1 = FakeL1::new(10, |n| GENESIS - 6 + n);
        let chain = Chain {
            genesis_time: GENESIS,
            slot_duration: SLOT,
            ..Chain::new()
        };
        Self {
            _dir: dir,
            store,
            l1,
            config: SyncConfig {
                deployment_block: 1,
                confirmations: 0,
                batch_size: 4,
                max_batches_per_step: 100,
                orphan_prune_tolerance: Duration::from_secs(1),
            },
            chain,
        }
    }

    /// One sync at wall-clock time `now` (the orphan prune's clock; far in the future by default
    /// is not used: the tests pass it).
    pub async fn sync_at(&mut self, now: u64) -> Result<SyncReport, ArchiverError> {
        let clock = slot_clock();
        let windows = ConsensusWindows::new(
            clock,
            Duration::from_secs(1),
            PipeliningMode::Pipelined,
            Duration::from_secs(1),
        );
        let seen = BTreeSet::new();
        let context = PruneContext {
            slot_clock: &clock,
            windows: &windows,
            orphan_prune_tolerance: Duration::from_secs(1),
            proposals_seen: &seen,
            orphan_holds: &std::collections::BTreeMap::new(),
            now: Timestamp::from_secs(now),
        };
        sync_step(&mut self.store, &self.l1, &self.config, &context).await
    }

    /// A sync whose wall clock is the L1 head's time (no orphan is due).
    pub async fn sync(&mut self) -> Result<SyncReport, ArchiverError> {
        self.sync_at(self.l1.head().timestamp).await
    }

    pub fn checkpoint(&mut self, number: u64, slot: u64, blocks: u32) -> BuiltCheckpoint {
        self.chain.checkpoint(number, slot, blocks, 1)
    }

    /// Mines empty L1 blocks up to `timestamp`.
    pub fn mine_until(&self, timestamp: u64) {
        self.l1.mine_until(timestamp);
    }
}

impl Setup {
    /// The stored L1 checkpoint `number`.
    pub fn checkpoint_record(&self, number: u64) -> tandem_archiver::CheckpointRecord {
        self.store
            .reader()
            .view()
            .unwrap()
            .checkpoint(number)
            .unwrap()
            .unwrap()
    }

    /// Mines one empty L1 block a second after the head.
    pub fn mine_empty_after(&self) {
        self.l1.mine_empty(self.l1.head().timestamp + 1);
    }
}
