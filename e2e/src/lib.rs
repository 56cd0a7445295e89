//! Scenario harness over real nodes (issue 18): real anvil, real `tandem run` processes (one
//! metrics recorder each), and a fault-injecting TCP proxy on every ordered pair of nodes.
//!
//! A scenario reads as its steps (after malachite's test DSL):
//!
//! ```no_run
//! # fn main() -> eyre::Result<()> {
//! use tandem_e2e::{Network, Spec};
//! let mut net = Network::start(Spec::default())?;   // anvil, deployment, 4 validators + 1 full node
//! net.run_slots(2)?;
//! net.partition(&[&[0], &[1, 2, 3, 4]]);
//! net.run_slots(3)?;
//! net.heal();
//! net.agree(1, std::time::Duration::from_secs(30))?;
//! # Ok(()) }
//! ```
//!
//! `tandem` is found through `$TANDEM_BIN`, else next to the test executable
//! (`target/<profile>/tandem`, built by `cargo build --workspace --bins`); anvil and cast through
//! `$TANDEM_ANVIL` / `$TANDEM_CAST`, else `.tools/bin`.

pub mod client;
mod l1;
mod network;
mod observe;
pub mod process;
pub mod proxy;
mod steps;
pub mod wait;

pub use network::{Network, Node, Spec, unix_ms};
pub use observe::{Checkpoint, Tips};
