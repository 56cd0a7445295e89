//! Gossip processing: decode (stage 1), validate (stage 2), pool admission, and the verdict back
//! to the swarm — exactly one per message. Two tasks: the consensus processor owns the pools
//! and serves the three consensus topics (plus this node's own publishing and quorum waits);
//! the tx processor serves the tx topic. The CPU-heavy checks run off the async workers, so the
//! swarm never waits on a signature recovery or a tx-hash check: consensus messages on the
//! blocking pool, txs on a thread of their own at a lower OS priority (background work).

mod book;
mod consensus;
mod txs;

pub(crate) use book::AttestationBook;
pub(crate) use consensus::{ConsensusProcessor, ConsensusQueues};
pub(crate) use txs::{TX_LANE, TxProcessor};

use libp2p::PeerId;
use tandem_proto::{Address, BlockProposal, CheckpointAttestation, CheckpointProposal};
use tokio::sync::oneshot;

use crate::{error::PublishError, verified::Verified};

/// A message this node publishes itself.
#[derive(Debug)]
pub(crate) enum OwnMessage {
    BlockProposal(Box<BlockProposal>),
    CheckpointProposal(Box<CheckpointProposal>),
    Attestation(Box<CheckpointAttestation>),
}

/// Attestations with their attesters.
pub(crate) type AttestationList = Vec<(Address, CheckpointAttestation)>;

pub(crate) enum ProcessorCommand {
    PublishOwn {
        message: OwnMessage,
        reply: oneshot::Sender<Result<(), PublishError>>,
    },
    /// A block proposal fetched (and verified) after its gossip was missed: admit and dispatch
    /// it like gossip.
    AdmitFetched {
        block: Verified<BlockProposal>,
        peer: PeerId,
    },
}

use std::time::Instant;

use libp2p::gossipsub::MessageAcceptance;
use tokio::sync::mpsc;

use crate::{
    metrics::{self, Verdict},
    queues::Inbound,
    scoring::judge,
    service::SwarmCommand,
    validation::GossipInvalid,
};

/// Sends the one verdict on `inbound` to the swarm and records it; `false` when the swarm is
/// gone.
async fn report_verdict<T>(
    swarm: &mpsc::Sender<SwarmCommand>,
    inbound: &Inbound,
    result: &Result<T, GossipInvalid>,
    validation_started: Instant,
) -> bool {
    let (acceptance, penalty) = match result {
        Ok(_) => (MessageAcceptance::Accept, None),
        Err(err) => {
            tracing::debug!(topic = %inbound.kind, peer = %inbound.source, %err, "gossip not accepted");
            judge(err)
        }
    };
    let verdict = match acceptance {
        MessageAcceptance::Accept => Verdict::Accept,
        MessageAcceptance::Ignore => Verdict::Ignore,
        MessageAcceptance::Reject => Verdict::Reject,
    };
    metrics::gossip_message(
        inbound.kind,
        verdict,
        validation_started.elapsed(),
        inbound.received.elapsed(),
    );
    swarm
        .send(SwarmCommand::Validated {
            id: inbound.id.clone(),
            source: inbound.source,
            kind: inbound.kind,
            acceptance,
            penalty,
        })
        .await
        .is_ok()
}

/// A blocking-pool task that panicked or was cancelled.
fn blocking_failed(task: &'static str, err: &tokio::task::JoinError) -> crate::error::P2pError {
    crate::error::P2pError::TaskFailed {
        task,
        reason: err.to_string(),
    }
}
