use std::time::Duration;

use super::clock::{Slot, SlotClock, Timestamp, duration_millis};

/// Tolerance for clock skew between nodes, applied to both ends of every acceptance window.
pub const MAXIMUM_GOSSIP_CLOCK_DISPARITY: Duration = Duration::from_millis(500);

/// How a network schedules its checkpoints. A deployment constant stored in the rollup contract:
/// every node's consensus windows, gossip validation and orphan deadlines depend on it, so it is
/// never a local choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipeliningMode {
    /// Build during the slot before the target; attest and publish at the boundary.
    Pipelined,
    /// Build, attest and publish inside the target slot (the baseline pipelining is measured
    /// against).
    NonPipelined,
}

impl PipeliningMode {
    /// The name used in configuration files and the deployment file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pipelined => "pipelined",
            Self::NonPipelined => "non_pipelined",
        }
    }
}

/// A pipelining mode name other than `pipelined` and `non_pipelined`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a pipelining mode: expected pipelined or non_pipelined")]
pub struct UnknownPipeliningMode(pub String);

impl std::str::FromStr for PipeliningMode {
    type Err = UnknownPipeliningMode;

    /// The names of [`PipeliningMode::as_str`], the only spelling (configuration files, the
    /// deployment file and CLI flags alike).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::Pipelined, Self::NonPipelined]
            .into_iter()
            .find(|mode| mode.as_str() == name)
            .ok_or_else(|| UnknownPipeliningMode(name.to_string()))
    }
}

impl std::fmt::Display for PipeliningMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// The windows in which every node accepts gossip for a target slot `T`. They derive from
/// protocol constants only — genesis, S, E, D, the pipelining mode and the last-block
/// re-execution budget R — so all honest nodes agree; local budgets never move them.
///
/// | | pipelined | non-pipelined |
/// |---|---|---|
/// | build frame start | `T − S − E` | `T − E` |
/// | checkpoint proposal receive deadline | `T − E − R` | `T + S − 2E − R` |
/// | attestation deadline | `T + S − 2E` | `T + S − 2E` |
///
/// Every bound saturates instead of overflowing: the constants come from L1 and config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsensusWindows {
    clock: SlotClock,
    block_ms: u64,
    reexecution_ms: u64,
    mode: PipeliningMode,
}

impl ConsensusWindows {
    /// Windows for a network with slot clock `clock`, block duration `block_duration` (D),
    /// schedule `mode` and last-block re-execution budget `last_block_reexecution_budget` (R;
    /// the reference budgets R = D).
    pub fn new(
        clock: SlotClock,
        block_duration: Duration,
        mode: PipeliningMode,
        last_block_reexecution_budget: Duration,
    ) -> Self {
        Self {
            clock,
            block_ms: duration_millis(block_duration),
            reexecution_ms: duration_millis(last_block_reexecution_budget),
            mode,
        }
    }

    /// The slot clock the windows derive from.
    pub const fn slot_clock(&self) -> &SlotClock {
        &self.clock
    }

    /// The network's schedule.
    pub const fn mode(&self) -> PipeliningMode {
        self.mode
    }

    /// Most blocks one checkpoint can hold under this time model: one per D over a slot,
    /// `⌈S / D⌉` (the timetable's own maximum is lower, as it keeps time for the checkpoint).
    pub fn max_blocks_per_checkpoint(&self) -> u32 {
        let slot_ms = u64::try_from(self.clock.slot_duration().as_millis()).unwrap_or(u64::MAX);
        u32::try_from(slot_ms.div_ceil(self.block_ms.max(1))).unwrap_or(u32::MAX)
    }

    /// D.
    pub const fn block_duration(&self) -> Duration {
        Duration::from_millis(self.block_ms)
    }

    /// R: the time validators have to re-execute the last block after the checkpoint proposal
    /// arrives.
    pub const fn last_block_reexecution_budget(&self) -> Duration {
        Duration::from_millis(self.reexecution_ms)
    }

    /// The same network with another mode (e.g. to compare both schedules).
    pub const fn with_mode(self, mode: PipeliningMode) -> Self {
        Self { mode, ..self }
    }

    /// `T + S − 2E`, the last instant an L1 tx sent for `target` can still be mined in it.
    fn last_send_time(&self, target: Slot) -> Timestamp {
        self.clock
            .slot_start(target)
            .saturating_add(self.clock.slot_duration())
            .saturating_sub(self.clock.l1_slot_duration().saturating_mul(2))
    }

    /// Opening of the build frame of `target`: `T − S − E` pipelined, `T − E` non-pipelined.
    pub fn build_frame_start(&self, target: Slot) -> Timestamp {
        let start = self
            .clock
            .slot_start(target)
            .saturating_sub(self.clock.l1_slot_duration());
        match self.mode {
            PipeliningMode::Pipelined => start.saturating_sub(self.clock.slot_duration()),
            PipeliningMode::NonPipelined => start,
        }
    }

    /// Last instant a checkpoint proposal for `target` is due: `T − E − R` pipelined,
    /// `T + S − 2E − R` non-pipelined (R before the attestations are needed).
    pub fn checkpoint_proposal_receive_deadline(&self, target: Slot) -> Timestamp {
        let needed_by = match self.mode {
            PipeliningMode::Pipelined => self
                .clock
                .slot_start(target)
                .saturating_sub(self.clock.l1_slot_duration()),
            PipeliningMode::NonPipelined => self.last_send_time(target),
        };
        needed_by.saturating_sub(self.last_block_reexecution_budget())
    }

    /// Last instant the blocks of a *seen* checkpoint proposal for `target` may take to arrive
    /// and sync before they count as orphans: the next proposer's build frame start plus a sync
    /// grace of 2·D (pipelined `T − E + 2D`, i.e. `T` at 72/12/6).
    pub fn checkpoint_proposal_synced_deadline(&self, target: Slot) -> Timestamp {
        self.build_frame_start(target.next())
            .saturating_add(Duration::from_millis(self.block_ms.saturating_mul(2)))
    }

    /// Last instant attestations (and block/checkpoint validation) for `target` count:
    /// `T + S − 2E` in both modes.
    pub fn attestation_deadline(&self, target: Slot) -> Timestamp {
        self.last_send_time(target)
    }

    /// Checkpoint proposals for `target`: `[build frame start − δ, receive deadline + δ]`.
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

    /// Attestations for `target`: `[build frame start − δ, attestation deadline + δ]`.
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
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::time::WindowCheck;

    fn clock() -> SlotClock {
        SlotClock::new(
            Timestamp::from_secs(10_000),
            Duration::from_secs(72),
            Duration::from_secs(12),
            32,
        )
        .unwrap()
    }

    fn offset(t: Timestamp, offset_ms: i64) -> Timestamp {
        Timestamp(t.as_millis().checked_add_signed(offset_ms).unwrap())
    }

    #[test]
    fn production_windows_with_disparity() {
        let windows = ConsensusWindows::new(
            clock(),
            Duration::from_secs(6),
            PipeliningMode::Pipelined,
            Duration::from_secs(6),
        );
        let target = Slot(5);
        let t = clock().slot_start(target);
        let at = |ms| offset(t, ms);

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

    #[test]
    fn a_shorter_reexecution_budget_moves_only_the_proposal_deadline() {
        let with = |r_ms| {
            ConsensusWindows::new(
                clock(),
                Duration::from_secs(6),
                PipeliningMode::Pipelined,
                Duration::from_millis(r_ms),
            )
        };
        let target = Slot(5);
        let t = clock().slot_start(target);
        let (reference, short) = (with(6_000), with(1_000));
        assert_eq!(
            short.checkpoint_proposal_receive_deadline(target),
            offset(t, -13_000)
        );
        assert_eq!(
            reference.checkpoint_proposal_receive_deadline(target),
            offset(t, -18_000)
        );
        assert_eq!(
            short.attestation_deadline(target),
            reference.attestation_deadline(target)
        );
        assert_eq!(
            short.build_frame_start(target),
            reference.build_frame_start(target)
        );
    }

    #[test]
    fn non_pipelined_windows_sit_inside_the_target_slot() {
        let windows = ConsensusWindows::new(
            clock(),
            Duration::from_secs(6),
            PipeliningMode::NonPipelined,
            Duration::from_secs(6),
        );
        let target = Slot(5);
        let t = clock().slot_start(target);
        assert_eq!(windows.build_frame_start(target), offset(t, -12_000));
        assert_eq!(
            windows.checkpoint_proposal_receive_deadline(target),
            offset(t, 42_000)
        );
        assert_eq!(windows.attestation_deadline(target), offset(t, 48_000));
        assert_eq!(
            windows.checkpoint_proposal(target).start,
            offset(t, -12_500)
        );
        // The next proposer's frame opens at T + S − E; two blocks of grace after it.
        assert_eq!(
            windows.checkpoint_proposal_synced_deadline(target),
            offset(t, 72_000)
        );
        assert_eq!(
            windows
                .with_mode(PipeliningMode::Pipelined)
                .build_frame_start(target),
            offset(t, -84_000)
        );
    }

    #[test]
    fn mode_names_parse_back_and_nothing_else_does() {
        for mode in [PipeliningMode::Pipelined, PipeliningMode::NonPipelined] {
            assert_eq!(mode.as_str().parse(), Ok(mode));
        }
        assert_eq!(
            "non-pipelined".parse::<PipeliningMode>(),
            Err(UnknownPipeliningMode("non-pipelined".into()))
        );
    }

    #[test]
    fn extreme_constants_saturate_instead_of_panicking() {
        let clock = SlotClock::new(
            Timestamp(u64::MAX - 1),
            Duration::from_millis(u64::MAX),
            Duration::from_millis(1),
            u64::MAX,
        )
        .unwrap();
        for mode in [PipeliningMode::Pipelined, PipeliningMode::NonPipelined] {
            let windows = ConsensusWindows::new(clock, Duration::MAX, mode, Duration::MAX);
            for slot in [Slot(0), Slot(u64::MAX)] {
                let _ = windows.checkpoint_proposal(slot);
                let _ = windows.attestation(slot);
                let _ = windows.checkpoint_proposal_synced_deadline(slot);
            }
        }
    }
}
