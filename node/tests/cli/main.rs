//! The `tandem` binary as operators and scripts use it.

mod common;
mod deploy;
mod devnet;
mod offline;
mod plots;
mod proxy;
mod rpc;
mod run;
