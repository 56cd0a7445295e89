//! The time model: slots and epochs, the proposer's timetable, and the consensus acceptance
//! windows every node applies to gossip.
//!
//! Arithmetic on these values is checked or saturating (`clippy::arithmetic_side_effects` is
//! denied here): every constant comes from L1, a config file or the network.
//!
//! Times are milliseconds since the Unix epoch ([`Timestamp`]); L1 timestamps are whole seconds
//! and convert losslessly. Nothing here reads the system clock except [`SystemClock`]: callers pass
//! a [`Clock`] (or a timestamp) so tests can drive time.

#![deny(clippy::arithmetic_side_effects)]

mod clock;
mod timetable;
mod windows;

pub use clock::{
    Clock, Epoch, ManualClock, Slot, SlotClock, SlotClockError, SystemClock, Timestamp,
};
pub use timetable::{
    ReservedPart, ReservedTime, SequencerBudgets, SlotSchedule, SubSlot, Timetable, TimetableError,
};
pub use windows::{
    ConsensusWindows, MAXIMUM_GOSSIP_CLOCK_DISPARITY, PipeliningMode, UnknownPipeliningMode,
    Window, WindowCheck,
};
