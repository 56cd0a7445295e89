//! The non-blocking L1 publisher: it lets the sequencer build the next checkpoint while the
//! previous one is still on its way to L1.
//!
//! - [`PublisherHandle::enqueue`] queues a `propose` for its target slot and returns at once with
//!   a [`SubmissionHandle`] the caller may await or drop; [`PublisherHandle::interrupt`] stops
//!   every wait within milliseconds (shutdown).
//! - [`Simulator`] (from [`PublisherHandle::simulator`], cloneable) runs `canProposeAtTime`, the
//!   min-fee view, `validateHeader` and `propose` simulations (`eth_simulateV1` or `eth_call` +
//!   `eth_estimateGas` with block-time and state overrides) at the L1 block a [`SimulationAt`]
//!   names (a plan only with the block its base was read at), with reverts decoded to the
//!   contract's errors ([`Revert`]). It is not an actor command: pre-checks never queue behind a
//!   submission.
//! - Each request: inside the target slot it is sent at once; otherwise the task sleeps to
//!   `T − E`, waits for the L1 block stamped `≥ T − E` (bounded: a missed L1 slot sends anyway),
//!   simulates against real L1 at `T` without pipelining overrides (a revert drops it, with the
//!   decoded reason), signs an EIP-1559 tx (fees from the node's fee history, capped), persists
//!   it (fsync) and only then sends it. Keys rotate when the L1 node refuses a send.
//! - The monitor then speeds the tx up (both fee fields bumped) when it stalls, cancels it with a
//!   same-nonce no-op when the slot ends, rebroadcasts dropped txs, judges success by our
//!   `CheckpointProposed` event, watches a mined propose for reorgs until its window closes
//!   (re-sending it if still valid), and releases the nonce. Timeouts are L1 time.
//! - After a restart every live record is resumed from the store: nothing is sent twice with
//!   different data and no nonce is lost.
//!
//! One propose per tx, sent directly from an EOA (no multicall): the contract only accepts
//! direct calls, so full nodes can always decode the body from the tx input.

mod actor;
mod chain;
mod config;
mod context;
mod error;
#[cfg(test)]
mod fake_l1;
mod fees;
mod ledger;
mod lifecycle;
mod metrics;
mod monitor;
mod record;
mod revert;
mod schedule;
mod signing;
mod simulator;
mod store;
mod submission;
#[cfg(test)]
mod task_tests;

pub use actor::{
    COMMAND_QUEUE_CAPACITY, Publisher, PublisherDeps, PublisherHandle, SHUTDOWN_GRACE,
};
pub use chain::Refusal;
pub use config::{GWEI, MIN_REPLACEMENT_BUMP_PERCENT, PublisherConfig, SimulationMethod};
pub use context::{SendHooks, SentTx};
pub use error::{ConfigProblem, PublisherError};
pub use metrics::describe as describe_metrics;
pub use record::{
    Attempt, AttemptKind, AttemptStatus, FinalState, MinedAt, RECORD_VERSION, RecordError,
    TxRecord, TxState,
};
pub use revert::Revert;
pub use signing::{CANCEL_GAS, PublisherKeys};
pub use simulator::{
    ProposeSlot, SimulatedPropose, SimulationAt, Simulator, ValidatedHeader, propose_calldata,
};
pub use store::TxStore;
pub use submission::{
    Landed, MAX_TX_GAS_LIMIT, SendFailure, SimulationDrop, SubmissionHandle, SubmissionOutcome,
    SubmissionStatus,
};
