//! The Rollup contract and the l1 crate against a real anvil, one module per topic.

mod committee;
mod common;
mod deploy;
mod fees;
mod gas;
mod propose;
mod reader;
mod simulation;
