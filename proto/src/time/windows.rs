use std::time::Duration;

use super::clock::{Slot, SlotClock, Timestamp};

/// Tolerance for clock skew between nodes, applied to both ends of every acceptance window.
pub const MAXIMUM_GOSSIP_CLOCK_DISPARITY: Duration = Duration::from_millis(500);

/// An inclusive time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First accepted instant.
    pub start: Timestamp,
    /// Last accepted instant.
    pub end: Timestamp,
}

/// Where an instant falls relative to a [`Window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowCheck {
    /// Before the window opens, by this much.
    TooEarly(Duration),
    /// Inside the window.
    Inside,
    /// After the window closed, by this much.
    TooLate(Duration),
}

impl Window {
    /// Classifies `at`.
    pub fn check(&self, at: Timestamp) -> WindowCheck {
        if at < self.start {
            WindowCheck::TooEarly(at.until(self.start))
        } else if at > self.end {
            WindowCheck::TooLate(self.end.until(at))
        } else {
            WindowCheck::Inside
        }
    }
}

/// The windows in which every node accepts gossip for a target slot. They derive from protocol
/// constants only (genesis, S, E, D) so all honest nodes agree; local budgets never move them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsensusWindows {
    clock: SlotClock,
    block_ms: u64,
}

impl ConsensusWindows {
    /// Windows for a network with slot clock `clock` and block duration `block_duration` (D).
    pub fn new(clock: SlotClock, block_duration: Duration) -> Self {
        Self {
            clock,
            block_ms: u64::try_from(block_duration.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The slot clock the windows derive from.
    pub const fn slot_clock(&self) -> &SlotClock {
        &self.clock
    }

    /// D, the block duration.
    pub const fn block_duration(&self) -> Duration {
        Duration::from_millis(self.block_ms)
    }

    /// Most blocks one checkpoint can hold under this time model: one per D over a slot,
    /// `⌈S / D⌉` (the timetable's own maximum is lower, as it keeps time for the checkpoint).
    pub fn max_blocks_per_checkpoint(&self) -> u32 {
        let slot_ms = u64::try_from(self.clock.slot_duration().as_millis()).unwrap_or(u64::MAX);
        u32::try_from(slot_ms.div_ceil(self.block_ms.max(1))).unwrap_or(u32::MAX)
    }

    /// Opening of the build frame of `target`: `T − S − E`.
    pub fn build_frame_start(&self, target: Slot) -> Timestamp {
        self.clock
            .slot_start(target)
            .saturating_sub(self.clock.slot_duration())
            .saturating_sub(self.clock.l1_slot_duration())
    }

    /// Last instant a checkpoint proposal for `target` is due: `T − E − D`.
    pub fn checkpoint_proposal_receive_deadline(&self, target: Slot) -> Timestamp {
        self.clock
            .slot_start(target)
            .saturating_sub(self.clock.l1_slot_duration())
            .saturating_sub(Duration::from_millis(self.block_ms))
    }

    /// Last instant the blocks of a *seen* checkpoint proposal for `target` may take to arrive
    /// and sync before they count as orphans: the next proposer's build frame start plus a sync
    /// grace of 2·D (`T − E + 2D`; `T` at 72/12/6).
    pub fn checkpoint_proposal_synced_deadline(&self, target: Slot) -> Timestamp {
        self.build_frame_start(target.next())
            .saturating_add(Duration::from_millis(self.block_ms.saturating_mul(2)))
    }

    /// Last instant attestations (and block/checkpoint validation) for `target` count:
    /// `T + S − 2E`.
    pub fn attestation_deadline(&self, target: Slot) -> Timestamp {
        self.clock
            .slot_start(target)
            .saturating_add(self.clock.slot_duration())
            .saturating_sub(self.clock.l1_slot_duration() * 2)
    }

    /// Checkpoint proposals for `target`: `[T − S − E − δ, T − E − D + δ]`.
    pub fn checkpoint_proposal(&self, target: Slot) -> Window {
        Window {
            start: self
                .build_frame_start(target)
                .saturating_sub(MAXIMUM_GOSSIP_CLOCK_DISPARITY),
            end: self
                .checkpoint_proposal_receive_deadline(target)
                .saturating_add(MAXIMUM_GOSSIP_CLOCK_DISPARITY),
        }
    }

    /// Block proposals share the checkpoint proposals' window: each precedes its checkpoint.
    pub fn block_proposal(&self, target: Slot) -> Window {
        self.checkpoint_proposal(target)
    }

    /// Attestations for `target`: `[T − S − E − δ, T + S − 2E + δ]`.
    pub fn attestation(&self, target: Slot) -> Window {
        Window {
            start: self
                .build_frame_start(target)
                .saturating_sub(MAXIMUM_GOSSIP_CLOCK_DISPARITY),
            end: self
                .attestation_deadline(target)
                .saturating_add(MAXIMUM_GOSSIP_CLOCK_DISPARITY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::WindowCheck;

    #[test]
    fn production_windows_with_disparity() {
        let genesis = Timestamp::from_secs(10_000);
        let clock = SlotClock::new(
            genesis,
            Duration::from_secs(72),
            Duration::from_secs(12),
            32,
        )
        .unwrap();
        let windows = ConsensusWindows::new(clock, Duration::from_secs(6));
        let target = Slot(5);
        let t = clock.slot_start(target);
        let at = |offset_ms: i64| Timestamp((t.as_millis() as i64 + offset_ms) as u64);

        let proposals = windows.checkpoint_proposal(target);
        assert_eq!(proposals.start, at(-84_500));
        assert_eq!(proposals.end, at(-17_500));
        assert_eq!(proposals.check(at(-18_000)), WindowCheck::Inside);
        assert_eq!(
            proposals.check(at(-17_400)),
            WindowCheck::TooLate(Duration::from_millis(100))
        );
        assert_eq!(
            proposals.check(at(-85_000)),
            WindowCheck::TooEarly(Duration::from_millis(500))
        );

        assert_eq!(windows.checkpoint_proposal_synced_deadline(target), at(0));

        let attestations = windows.attestation(target);
        assert_eq!(attestations.end, at(48_500));
        assert_eq!(attestations.check(at(48_000)), WindowCheck::Inside);
        assert_eq!(windows.block_proposal(target), proposals);
    }
}
