//! Unit tests of the sequencer's logic (reference §9 scenarios 1–5, 8, 11–13, 15) with a
//! `ManualClock` and fakes behind the narrow traits; the world state and the signer are the
//! real ones in a temp dir (blocks are really built and signed).
#![allow(clippy::unwrap_used)]

mod fakes;
mod jobs;
mod pipelines;
mod prepares;
mod subslots;

pub(crate) use fakes::*;
