//! The sequencer: the actor that builds checkpoint N+1 on the still-proposed checkpoint N, and
//! its background attestation-and-submission pipeline (reference `pipelining.md` §3).
//!
//! - [`Sequencer`] (struct + [`SequencerHandle`] + `run(cancel)`) ticks every poll interval
//!   and on every archiver tip change. One clock read per tick gives the slot of the next L1
//!   block, the target slot (that slot + 1 when the network pipelines, the slot itself
//!   otherwise) and the target epoch.
//! - `prepare` runs the reference's guards in its order: a target already attempted; the
//!   proposer check (epoch cache); sync (world-state tip = archiver tip, L1 synced to the slot
//!   before, orphan and coherence guards, a proposed checkpoint must be the parent); the start
//!   deadline; the depth guard (never beyond checkpointed + 2); the slot-taken guard; the
//!   simulation plan (proposed parents laid over L1: tips word, archive, fee header); and
//!   `canProposeAt` under the plan. Each refusal is counted once per target slot by reason
//!   (`sequencer_checkpoint_precheck_failed_total{reason}`).
//! - The job's blocking part builds blocks per the timetable (deadlines never move), splits
//!   the checkpoint's budgets across sub-slots, signs each block through the slashing-protected
//!   signer, hands it to the state service, stores it in the archiver and gossips it (the last
//!   block rides inside the checkpoint proposal, signed with it in one recorded duty), checks
//!   the header with the contract's `validateHeader` under the plan, stores the proposed
//!   checkpoint and gossips the proposal — then returns: the loop is free for the next slot.
//! - The background pipeline (one task per checkpoint; the last is awaited at shutdown)
//!   attests with our own keys in the committee, collects attestations to quorum or the
//!   attestation deadline, waits until L1 sync passed the parent's slot and checks the parent
//!   is on L1 and the one built on (else discards with a reason:
//!   `sequencer_pipeline_parent_mismatch_total{reason}`), then hands the propose to the
//!   publisher for the target slot.
//! - The non-pipelined mode is the same code with the network's non-pipelined timetable: the
//!   target is the current slot and there is no proposed parent to check.
//!
//! There is no invalidation flow (reference §3.5): our L1 contract verifies the proposer's
//! signature and every attestation (quorum > 2/3 of the committee), so an under-attested
//! checkpoint can never land and nothing needs to be invalidated afterwards.
//!
//! Not built (see the crate's note): the fee-asset price oracle (the modifier is always 0),
//! L1→L2 messages and out-hashes (out of scope for the protocol), votes and slashing actions.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod actor;
mod budget;
mod config;
mod context;
mod deps;
mod error;
mod events;
mod job;
mod metrics;
mod outcome;
mod pipeline;
mod prepare;
mod state;
#[cfg(test)]
mod tests;

pub use actor::{
    SEQUENCER_COMMAND_CAPACITY, SHUTDOWN_GRACE, Sequencer, SequencerHandle, SequencerStatus,
};
pub use config::{MIN_POLL_INTERVAL, SequencerConfig};
pub use deps::{
    ArchiverChain, ChainStore, DepFuture, Gossip, L1Simulator, ProtocolParams, SequencerDeps,
    Submitter, WorldView,
};
pub use error::{SequencerError, SequencerResult};
pub use events::{SEQUENCER_EVENTS_CAPACITY, SequencerEvent};
pub use metrics::{PrecheckReason, describe_metrics};
pub use outcome::{AbortReason, CheckpointResult};
pub use pipeline::DiscardReason;
pub use state::SequencerState;
