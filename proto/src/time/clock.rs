use std::{
    num::NonZeroU64,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::windows::PipeliningMode;

/// A point in time: milliseconds since the Unix epoch.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From whole seconds (an L1 block timestamp).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + duration`, saturating.
    pub fn saturating_add(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(duration)))
    }

    /// `self − duration`, saturating at zero.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(duration)))
    }

    /// Signed milliseconds from `origin` to `self`.
    pub fn millis_since(self, origin: Self) -> i64 {
        // Both fit in i128 with room to spare, so the subtraction cannot overflow.
        let delta = i128::from(self.0).saturating_sub(i128::from(origin.0));
        i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX })
    }

    /// Time from `self` until `later`, zero if `later` is not after `self`.
    pub fn until(self, later: Self) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }
}

/// Whole milliseconds of `duration`, saturating at `u64::MAX`.
pub(crate) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A source of the current time; pass one to anything that schedules, so tests can drive it.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(duration_millis(since_epoch))
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicU64::new(start.0)))
    }

    /// Sets the time.
    pub fn set(&self, now: Timestamp) {
        self.0.store(now.0, Ordering::SeqCst);
    }

    /// Moves the time forward (saturating).
    pub fn advance(&self, by: Duration) {
        let by = duration_millis(by);
        // fetch_update only fails when the closure returns None, which it never does.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// An L2 slot number.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Slot(pub u64);

impl Slot {
    /// The next slot (saturating: slot numbers come from the network).
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The previous slot, if any.
    pub const fn prev(self) -> Option<Self> {
        match self.0.checked_sub(1) {
            Some(prev) => Some(Self(prev)),
            None => None,
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An epoch number: `epoch_duration` consecutive slots with one committee.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Epoch(pub u64);

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why slot-clock parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotClockError {
    /// A duration is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// S is not a whole multiple of E.
    #[error("slot duration {slot_ms} ms is not a multiple of the L1 slot duration {l1_slot_ms} ms")]
    SlotNotMultipleOfL1Slot {
        /// S in ms.
        slot_ms: u64,
        /// E in ms.
        l1_slot_ms: u64,
    },
}

/// Slot and epoch arithmetic from the protocol constants (genesis, S, E, epoch duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotClock {
    genesis: Timestamp,
    // Non-zero by construction, so the divisions below cannot panic.
    slot_ms: NonZeroU64,
    l1_slot_ms: NonZeroU64,
    epoch_duration: NonZeroU64,
}

impl SlotClock {
    /// Builds a slot clock; `slot_duration` must be a positive multiple of `l1_slot_duration`.
    pub fn new(
        genesis: Timestamp,
        slot_duration: Duration,
        l1_slot_duration: Duration,
        epoch_duration: u64,
    ) -> Result<Self, SlotClockError> {
        let slot_ms = NonZeroU64::new(duration_millis(slot_duration))
            .ok_or(SlotClockError::Zero("slot duration"))?;
        let l1_slot_ms = NonZeroU64::new(duration_millis(l1_slot_duration))
            .ok_or(SlotClockError::Zero("L1 slot duration"))?;
        let epoch_duration =
            NonZeroU64::new(epoch_duration).ok_or(SlotClockError::Zero("epoch duration"))?;
        if !slot_ms.get().is_multiple_of(l1_slot_ms.get()) {
            return Err(SlotClockError::SlotNotMultipleOfL1Slot {
                slot_ms: slot_ms.get(),
                l1_slot_ms: l1_slot_ms.get(),
            });
        }
        Ok(Self {
            genesis,
            slot_ms,
            l1_slot_ms,
            epoch_duration,
        })
    }

    /// Start of slot 0.
    pub const fn genesis(&self) -> Timestamp {
        self.genesis
    }

    /// S.
    pub const fn slot_duration(&self) -> Duration {
        Duration::from_millis(self.slot_ms.get())
    }

    /// E.
    pub const fn l1_slot_duration(&self) -> Duration {
        Duration::from_millis(self.l1_slot_ms.get())
    }

    /// Slots per epoch.
    pub const fn epoch_duration(&self) -> u64 {
        self.epoch_duration.get()
    }

    /// The slot containing `at`; `None` before genesis.
    pub fn slot_at(&self, at: Timestamp) -> Option<Slot> {
        at.0.checked_sub(self.genesis.0)
            .map(|since| Slot(since / self.slot_ms))
    }

    /// Start of `slot`.
    pub fn slot_start(&self, slot: Slot) -> Timestamp {
        Timestamp(
            self.genesis
                .0
                .saturating_add(slot.0.saturating_mul(self.slot_ms.get())),
        )
    }

    /// Epoch of `slot`.
    pub fn epoch_of(&self, slot: Slot) -> Epoch {
        Epoch(slot.0 / self.epoch_duration)
    }

    /// First slot of `epoch`.
    pub const fn epoch_start_slot(&self, epoch: Epoch) -> Slot {
        Slot(epoch.0.saturating_mul(self.epoch_duration.get()))
    }

    /// Time of the next L1 block strictly after `now` (L1 slots are aligned with genesis).
    pub fn next_l1_block_time(&self, now: Timestamp) -> Timestamp {
        match now.0.checked_sub(self.genesis.0) {
            Some(since) => {
                let blocks = (since / self.l1_slot_ms).saturating_add(1);
                Timestamp(
                    self.genesis
                        .0
                        .saturating_add(blocks.saturating_mul(self.l1_slot_ms.get())),
                )
            }
            None => self.genesis,
        }
    }

    /// The slot of the next L1 block: the earliest slot a tx sent now can land in.
    pub fn slot_at_next_l1_block(&self, now: Timestamp) -> Option<Slot> {
        self.slot_at(self.next_l1_block_time(now))
    }

    /// The slot a proposer building now builds for: the slot of the next L1 block, plus one
    /// under pipelining (the checkpoint is built during the slot before its target).
    pub fn target_slot(&self, now: Timestamp, mode: PipeliningMode) -> Option<Slot> {
        self.slot_at_next_l1_block(now).map(|slot| match mode {
            PipeliningMode::Pipelined => slot.next(),
            PipeliningMode::NonPipelined => slot,
        })
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn clock() -> SlotClock {
        SlotClock::new(
            Timestamp::from_secs(1_000),
            Duration::from_secs(72),
            Duration::from_secs(12),
            32,
        )
        .unwrap()
    }

    #[test]
    fn slot_and_epoch_arithmetic() {
        let c = clock();
        assert_eq!(c.slot_at(Timestamp::from_secs(999)), None);
        assert_eq!(c.slot_at(Timestamp::from_secs(1_000)), Some(Slot(0)));
        assert_eq!(c.slot_at(Timestamp::from_secs(1_071)), Some(Slot(0)));
        assert_eq!(c.slot_at(Timestamp::from_secs(1_072)), Some(Slot(1)));
        assert_eq!(c.slot_start(Slot(10)), Timestamp::from_secs(1_720));
        assert_eq!(c.epoch_of(Slot(31)), Epoch(0));
        assert_eq!(c.epoch_of(Slot(32)), Epoch(1));
        assert_eq!(c.epoch_start_slot(Epoch(2)), Slot(64));
    }

    #[test]
    fn next_l1_block_and_target_slot() {
        let c = clock();
        // 10 s into slot 0: the next L1 block is at +12 s, still slot 0.
        let now = Timestamp::from_secs(1_010);
        assert_eq!(c.next_l1_block_time(now), Timestamp::from_secs(1_012));
        assert_eq!(
            c.target_slot(now, PipeliningMode::NonPipelined),
            Some(Slot(0))
        );
        assert_eq!(c.target_slot(now, PipeliningMode::Pipelined), Some(Slot(1)));
        // 61 s in: the next L1 block (72 s) opens slot 1, so the pipelined target is 2.
        let late = Timestamp::from_secs(1_061);
        assert_eq!(c.slot_at_next_l1_block(late), Some(Slot(1)));
        assert_eq!(
            c.target_slot(late, PipeliningMode::Pipelined),
            Some(Slot(2))
        );
        // Exactly on an L1 boundary the next block is one E later.
        assert_eq!(
            c.next_l1_block_time(Timestamp::from_secs(1_012)),
            Timestamp::from_secs(1_024)
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        let g = Timestamp::from_secs(0);
        let s = Duration::from_secs;
        assert_eq!(
            SlotClock::new(g, s(0), s(12), 32),
            Err(SlotClockError::Zero("slot duration"))
        );
        assert!(matches!(
            SlotClock::new(g, s(70), s(12), 32),
            Err(SlotClockError::SlotNotMultipleOfL1Slot { .. })
        ));
        assert_eq!(
            SlotClock::new(g, s(72), s(12), 0),
            Err(SlotClockError::Zero("epoch duration"))
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(5));
        let shared = clock.clone();
        clock.advance(Duration::from_millis(10));
        assert_eq!(shared.now(), Timestamp(15));
        shared.set(Timestamp(1));
        assert_eq!(clock.now(), Timestamp(1));
    }
}
