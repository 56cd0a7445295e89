//! The time model: slots and epochs, the proposer's timetable, and the consensus acceptance
//! windows every node applies to gossip.
//!
//! Times are milliseconds since the Unix epoch ([`Timestamp`]); L1 timestamps are whole seconds
//! and convert losslessly. Nothing here reads the system clock except [`SystemClock`]: callers pass
//! a [`Clock`] (or a timestamp) so tests can drive time.

mod clock;
mod timetable;
mod windows;

pub use clock::{
    Clock, Epoch, ManualClock, Slot, SlotClock, SlotClockError, SystemClock, Timestamp,
};
pub use timetable::{
    NonPipelinedBudgets, PipelinedBudgets, SlotSchedule, SubSlot, Timetable, TimetableError,
    TimetableMode,
};
pub use windows::{ConsensusWindows, MAXIMUM_GOSSIP_CLOCK_DISPARITY, Window, WindowCheck};
