//! The tx processor: validates gossiped txs in batches on a thread of its own, at a lower OS
//! priority than the rest of the node, and hands accepted ones to the tx lane.

use std::time::Instant;

use tandem_proto::RecoveredTx;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::report_verdict;
use crate::{
    error::P2pError,
    metrics,
    queues::Inbound,
    service::SwarmCommand,
    topics::GossipKind,
    validation::{Checked, GossipInvalid, GossipValidator},
    verified::Verified,
};

/// Most txs validated per trip to the blocking pool.
const TX_BATCH: usize = 64;
pub(crate) const TX_LANE: &str = "tx";

pub(crate) struct TxProcessor {
    pub(crate) validator: GossipValidator,
    pub(crate) queue: mpsc::Receiver<Inbound>,
    pub(crate) swarm: mpsc::Sender<SwarmCommand>,
    pub(crate) lane: mpsc::Sender<Verified<RecoveredTx>>,
}

/// How much nicer than the rest of the node the tx validation thread runs (Linux nice
/// levels): txs are background work, and a checkpoint's validation or the swarm task must not
/// wait a scheduler slice behind a batch of tx signature recoveries when the cores are busy.
const TX_VALIDATION_NICENESS: libc::c_int = 10;

type CheckedBatch = Vec<(Inbound, Result<Checked, GossipInvalid>)>;
type BatchRequest = (Vec<Inbound>, oneshot::Sender<CheckedBatch>);

/// Starts the tx validation thread; it ends when the returned sender is dropped.
fn spawn_validation_thread(
    validator: GossipValidator,
) -> Result<std::sync::mpsc::SyncSender<BatchRequest>, P2pError> {
    let (requests, incoming) = std::sync::mpsc::sync_channel::<BatchRequest>(1);
    std::thread::Builder::new()
        .name("p2p-tx-validation".to_owned())
        .spawn(move || {
            lower_this_threads_priority();
            while let Ok((batch, reply)) = incoming.recv() {
                let checked = batch
                    .into_iter()
                    .map(|inbound| {
                        let result = validator.check_compressed(
                            GossipKind::Tx,
                            &inbound.data,
                            inbound.received_at,
                        );
                        (inbound, result)
                    })
                    .collect();
                let _ = reply.send(checked);
            }
        })
        .map_err(|err| P2pError::TaskFailed {
            task: "tx validation",
            reason: format!("cannot start its thread: {err}"),
        })?;
    Ok(requests)
}

/// On Linux the nice value is per thread: this lowers the calling thread's priority only. A
/// failure (a sandbox refusing it) leaves the thread at normal priority, which is only slower.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers and touches no memory of ours; `who = 0`
        // names the calling thread.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, TX_VALIDATION_NICENESS) };
        if result != 0 {
            tracing::debug!("could not lower the tx validation thread's priority");
        }
    }
}

impl TxProcessor {
    pub(crate) async fn run(mut self, cancel: CancellationToken) -> Result<(), P2pError> {
        let validation = spawn_validation_thread(self.validator.clone())?;
        loop {
            let first = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                inbound = self.queue.recv() => match inbound {
                    Some(inbound) => inbound,
                    None => return Ok(()),
                },
            };
            let mut batch = vec![first];
            while batch.len() < TX_BATCH {
                match self.queue.try_recv() {
                    Ok(inbound) => batch.push(inbound),
                    Err(_) => break,
                }
            }
            metrics::gossip_queue_depth(GossipKind::Tx, self.queue.len());
            let started = Instant::now();
            let (reply, checked) = oneshot::channel();
            // One batch at a time: the thread is always free when we get here.
            validation
                .send((batch, reply))
                .map_err(|_| validation_thread_gone())?;
            let checked = checked.await.map_err(|_| validation_thread_gone())?;
            for (inbound, result) in checked {
                if !report_verdict(&self.swarm, &inbound, &result, started).await {
                    return Ok(());
                }
                if let Ok(Checked::Tx(tx)) = result
                    && self.lane.try_send(tx.with_source(inbound.source)).is_err()
                {
                    metrics::handler_dropped(TX_LANE);
                }
            }
        }
    }
}

fn validation_thread_gone() -> P2pError {
    P2pError::TaskFailed {
        task: "tx validation",
        reason: "its thread ended (panicked)".to_owned(),
    }
}
