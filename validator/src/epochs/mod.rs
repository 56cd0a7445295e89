//! The epoch cache: committee per epoch and proposer per slot, read from the rollup on L1 and
//! served from memory. It is the node's one source of duties: p2p's gossip validation (as its
//! [`CommitteeSource`]), the validator handler and the sequencer all read the same
//! [`EpochCache`].
//!
//! When a committee is fixed: the committee of epoch `t` is drawn from the latest snapshot at
//! or before epoch `t − 2` (at or before 0 for `t < 2`), and a snapshot of epoch `k` can change
//! until the first L1 block of epoch `k + 1`. So the committee of `t` is fixed by every L1 block
//! of epoch `max(t − 1, 1)` or later. The committee of `e + 1` is therefore fixed from the first
//! L1 block of epoch `e` on (for `e ≥ 1`), well before the first slot of `e + 1` opens its build
//! frame inside `e`; the cache reads it as soon as L1 has such a block.
//!
//! What the actor reads each pass (every `poll_interval`, or at once on
//! [`EpochCacheHandle::refresh`]): the L1 head, then, pinned to that head by hash, the
//! committee of the previous, current and next epoch (by the clock) that it does not hold as
//! fixed. An epoch whose committee is not fixed at the head but would be one epoch later (the
//! bootstrap epochs 0 and 1 while L1 is still in epoch 0, or `e + 1` in the first L1 slot of
//! `e`) is read *provisionally*: served (marked [`SlotDuty::provisional`], so gossip that
//! disagrees with it is ignored rather than penalised), but read again on every new head until
//! L1 fixes it.
//! Further ahead nothing is read: L1 does not know the committee yet, so the slot's duty is
//! unknown and gossip for it is ignored.
//!
//! Reorgs: each cached committee remembers the L1 block it was read at. While that block is not
//! finalized, every new head makes the actor check that it is still canonical; if it is not,
//! the committee is read again at the new head (and replaced if it changed, with a warning and
//! `tandem_validator_epoch_cache_reorged_reads_total{result="changed"}`). This is conservative:
//! only a reorg reaching back below the snapshot epoch `t − 2` can change committee `t`, but any
//! reorg of the read block triggers a re-read. Duties served between the reorg and the next
//! pass are those of the old chain; a reorg below finality is not handled (nor could it be).
//!
//! Old epochs are evicted: the cache keeps `retained_past_epochs` epochs before the current
//! one, plus the current and the next.

mod actor;
mod l1;

use std::{
    collections::BTreeMap,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use alloy::primitives::U256;
use tandem_l1::{EpochCommittee, L1BlockRef};
use tandem_p2p::{CommitteeSource, SlotDuty};
use tandem_proto::{
    Address,
    time::{Epoch, Slot, SlotClock, Timestamp},
};

pub use actor::{EpochCacheActor, EpochCacheHandle};
pub use l1::CommitteeL1;

use crate::{
    error::{ValidatorError, ValidatorResult},
    metrics,
};

/// Settings of the epoch cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochCacheConfig {
    /// Epochs before the current one that stay cached (late gossip, attestations of the last
    /// slots of the previous epoch).
    pub retained_past_epochs: u64,
    /// Time between refresh passes when all goes well; E (the L1 block time) is a good value.
    pub poll_interval: Duration,
    /// First delay after a failed pass with a transient L1 error; doubles up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest delay between failed passes; also the delay after a permanent L1 error.
    pub retry_max: Duration,
    /// Longest a pass may take (an L1 node that stops answering must not stall the cache); a
    /// pass that takes longer fails as a transient error.
    pub pass_timeout: Duration,
}

impl Default for EpochCacheConfig {
    fn default() -> Self {
        Self {
            retained_past_epochs: 2,
            poll_interval: Duration::from_secs(12),
            retry_initial: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            pass_timeout: Duration::from_secs(10),
        }
    }
}

/// Shortest interval or timeout the epoch cache accepts: less would poll L1 in a tight loop.
pub const MIN_EPOCH_CACHE_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval or timeout the epoch cache accepts (one day): longer is a typo, and
/// bounding it keeps every deadline computation far from overflowing.
pub const MAX_EPOCH_CACHE_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Most past epochs the cache may be told to keep (each is one committee in memory).
pub const MAX_RETAINED_PAST_EPOCHS: u64 = 1_024;

impl EpochCacheConfig {
    /// Checks every setting: intervals and the timeout within
    /// [`MIN_EPOCH_CACHE_INTERVAL`]..=[`MAX_EPOCH_CACHE_INTERVAL`], `retry_initial ≤
    /// retry_max`, at most [`MAX_RETAINED_PAST_EPOCHS`] past epochs.
    pub fn validate(&self) -> ValidatorResult<()> {
        let durations = [
            ("poll_interval", self.poll_interval),
            ("retry_initial", self.retry_initial),
            ("retry_max", self.retry_max),
            ("pass_timeout", self.pass_timeout),
        ];
        for (field, value) in durations {
            if !(MIN_EPOCH_CACHE_INTERVAL..=MAX_EPOCH_CACHE_INTERVAL).contains(&value) {
                return Err(ValidatorError::EpochCacheConfig {
                    field,
                    value: format!("{value:?}"),
                    requirement: "must be between 10ms and 1 day",
                });
            }
        }
        if self.retry_initial > self.retry_max {
            return Err(ValidatorError::EpochCacheConfig {
                field: "retry_initial",
                value: format!("{:?}", self.retry_initial),
                requirement: "must not exceed retry_max",
            });
        }
        if self.retained_past_epochs > MAX_RETAINED_PAST_EPOCHS {
            return Err(ValidatorError::EpochCacheConfig {
                field: "retained_past_epochs",
                value: self.retained_past_epochs.to_string(),
                requirement: "must be at most 1024",
            });
        }
        Ok(())
    }
}

/// How well an epoch's committee is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EpochState {
    /// Not read (L1 does not know it yet, or L1 could not be read).
    Unknown,
    /// Read before L1 fixed it; served, and read again on every new L1 head until fixed.
    Provisional,
    /// Read at an L1 block where no call can change it any more.
    Fixed,
}

impl EpochState {
    /// Whether duties of the epoch are served.
    pub const fn is_known(self) -> bool {
        !matches!(self, Self::Unknown)
    }

    const fn gauge(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Provisional => 1,
            Self::Fixed => 2,
        }
    }
}

/// What the cache knows, published after every pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochCacheStatus {
    /// The epoch of the clock at the pass.
    pub current_epoch: Epoch,
    /// State of the current epoch.
    pub current: EpochState,
    /// State of the next epoch.
    pub next: EpochState,
    /// The L1 head of the last successful pass.
    pub l1_head: Option<L1BlockRef>,
}

impl EpochCacheStatus {
    /// Whether the duties of the current epoch are known (what `/ready` needs; the next epoch
    /// is only fixed once L1 is in the current one).
    pub const fn is_ready(&self) -> bool {
        self.current.is_known()
    }

    /// Whether the duties of the next epoch are known too.
    pub const fn next_known(&self) -> bool {
        self.next.is_known()
    }
}

/// One epoch's committee as cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEpoch {
    committee: EpochCommittee,
    members: Arc<[Address]>,
    read_at: L1BlockRef,
    fixed: bool,
}

impl CachedEpoch {
    fn new(committee: EpochCommittee, read_at: L1BlockRef, fixed: bool) -> Self {
        let members = committee.members.clone().into();
        Self {
            committee,
            members,
            read_at,
            fixed,
        }
    }

    /// The epoch.
    pub const fn epoch(&self) -> Epoch {
        Epoch(self.committee.epoch)
    }

    /// Members in committee order (the order attestations go to L1 in).
    pub fn members(&self) -> &Arc<[Address]> {
        &self.members
    }

    /// The seed proposers are drawn with.
    pub const fn seed(&self) -> U256 {
        self.committee.seed
    }

    /// The committee as the L1 reader returns it.
    pub const fn committee(&self) -> &EpochCommittee {
        &self.committee
    }

    /// The L1 block the committee was read at.
    pub const fn read_at(&self) -> L1BlockRef {
        self.read_at
    }

    /// Whether L1 had fixed the committee at [`CachedEpoch::read_at`].
    pub const fn state(&self) -> EpochState {
        if self.fixed {
            EpochState::Fixed
        } else {
            EpochState::Provisional
        }
    }

    /// The proposer of `slot` (a slot of this epoch), computed as the contract does; `None`
    /// when the committee is empty (anyone may propose).
    pub fn proposer_of(&self, slot: Slot) -> Option<Address> {
        self.committee.proposer_of(slot.0)
    }

    /// Whether the committee changed in a way duties see.
    fn same_duties(&self, other: &EpochCommittee) -> bool {
        self.committee.members == other.members && self.committee.seed == other.seed
    }
}

/// The read side of the epoch cache: in-memory lookups, cheap to clone, shared with p2p (as a
/// [`CommitteeSource`]), the validator handler and the sequencer. Filled by
/// [`EpochCacheActor`].
#[derive(Debug, Clone)]
pub struct EpochCache {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    slot_clock: SlotClock,
    epochs: RwLock<BTreeMap<Epoch, Arc<CachedEpoch>>>,
}

impl EpochCache {
    fn new(slot_clock: SlotClock) -> Self {
        Self {
            inner: Arc::new(Shared {
                slot_clock,
                epochs: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    /// The network's slot arithmetic.
    pub fn slot_clock(&self) -> &SlotClock {
        &self.inner.slot_clock
    }

    /// The cached committee of `epoch`.
    pub fn epoch(&self, epoch: Epoch) -> Option<Arc<CachedEpoch>> {
        self.read().get(&epoch).cloned()
    }

    /// The cached committee of the epoch containing `slot`.
    pub fn epoch_of_slot(&self, slot: Slot) -> Option<Arc<CachedEpoch>> {
        self.epoch(self.inner.slot_clock.epoch_of(slot))
    }

    /// The epochs held, in order.
    pub fn epochs(&self) -> Vec<Epoch> {
        self.read().keys().copied().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Epoch, Arc<CachedEpoch>>> {
        // Writers never leave the map half-updated (one insert or remove at a time).
        self.inner
            .epochs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Epoch, Arc<CachedEpoch>>> {
        self.inner
            .epochs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self, epoch: Epoch) -> EpochState {
        self.read()
            .get(&epoch)
            .map_or(EpochState::Unknown, |cached| cached.state())
    }
}

impl CommitteeSource for EpochCache {
    fn duty(&self, slot: Slot) -> Option<SlotDuty> {
        let Some(cached) = self.epoch_of_slot(slot) else {
            metrics::epoch_cache_miss();
            return None;
        };
        Some(SlotDuty {
            proposer: cached.proposer_of(slot),
            committee: Arc::clone(cached.members()),
            provisional: !cached.fixed,
        })
    }
}

/// The epoch whose committee L1 blocks of epoch `fixed_from(t)` and later can no longer
/// change: `max(t − 1, 1)` (see the module docs).
pub(crate) fn fixed_from(target: Epoch) -> Epoch {
    Epoch(target.0.saturating_sub(1).max(1))
}

/// The epoch of an L1 block with timestamp `secs`, as the contract takes it (0 before genesis).
pub(crate) fn l1_epoch(slot_clock: &SlotClock, secs: u64) -> Epoch {
    slot_clock
        .slot_at(Timestamp::from_secs(secs))
        .map_or(Epoch(0), |slot| slot_clock.epoch_of(slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committees_are_fixed_one_epoch_ahead_and_the_bootstrap_epochs_by_epoch_one() {
        assert_eq!(fixed_from(Epoch(0)), Epoch(1));
        assert_eq!(fixed_from(Epoch(1)), Epoch(1));
        assert_eq!(fixed_from(Epoch(2)), Epoch(1));
        assert_eq!(fixed_from(Epoch(3)), Epoch(2));
        assert_eq!(fixed_from(Epoch(100)), Epoch(99));
    }

    #[test]
    fn l1_epochs_follow_the_slot_clock_and_are_zero_before_genesis() {
        let clock = SlotClock::new(
            Timestamp::from_secs(1_000),
            Duration::from_secs(4),
            Duration::from_secs(2),
            8,
        )
        .unwrap();
        assert_eq!(l1_epoch(&clock, 0), Epoch(0));
        assert_eq!(l1_epoch(&clock, 1_031), Epoch(0));
        assert_eq!(l1_epoch(&clock, 1_032), Epoch(1));
        assert_eq!(l1_epoch(&clock, 1_000 + 32 * 5), Epoch(5));
    }
}
