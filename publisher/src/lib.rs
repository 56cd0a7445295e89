//! The non-blocking L1 publisher task: schedules each propose request for the right L1 block,
//! simulates it with the right overrides, sends it, bumps fees and tracks receipts, never blocking
//! the sequencer.
