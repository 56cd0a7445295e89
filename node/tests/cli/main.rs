//! The `tandem` binary as operators and scripts use it.

mod common;
mod deploy;
mod offline;
mod proxy;
mod run;
