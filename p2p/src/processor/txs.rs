//! The tx processor: validates gossiped txs in batches on the blocking pool and hands accepted
//! ones to the tx lane.

use std::time::Instant;

use tandem_proto::RecoveredTx;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{blocking_failed, report_verdict};
use crate::{
    error::P2pError,
    metrics,
    queues::Inbound,
    service::SwarmCommand,
    topics::GossipKind,
    validation::{Checked, GossipValidator},
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

impl TxProcessor {
    pub(crate) async fn run(mut self, cancel: CancellationToken) -> Result<(), P2pError> {
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
            let validator = self.validator.clone();
            let started = Instant::now();
            let checked = tokio::task::spawn_blocking(move || {
                batch
                    .into_iter()
                    .map(|inbound| {
                        let result = validator.check_compressed(
                            GossipKind::Tx,
                            &inbound.data,
                            inbound.received_at,
                        );
                        (inbound, result)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|err| blocking_failed("tx validation", &err))?;
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
