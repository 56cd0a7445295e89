//! The handler lanes: accepted gossip is handed to the registered handlers here, off the swarm
//! and validation tasks. The consensus lane runs one message at a time so a checkpoint's last
//! block is handled before the checkpoint itself; txs have their own lane so a slow block
//! re-execution never delays tx admission.

use std::time::Instant;

use tandem_proto::{BlockProposal, CheckpointProposal, RecoveredTx};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    handlers::Handlers,
    metrics,
    processor::{OwnMessage, ProcessorCommand},
    verified::Verified,
};

/// Work for the consensus lane.
pub(crate) enum ConsensusItem {
    Block(Verified<BlockProposal>),
    Checkpoint {
        last_block: Option<Verified<BlockProposal>>,
        checkpoint: Verified<CheckpointProposal>,
    },
}

pub(crate) const CONSENSUS_LANE: &str = "consensus";
pub(crate) const TX_LANE: &str = "tx";

pub(crate) async fn run_consensus_lane(
    handlers: Handlers,
    mut items: mpsc::Receiver<ConsensusItem>,
    processor: mpsc::Sender<ProcessorCommand>,
    cancel: CancellationToken,
) {
    loop {
        let item = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            item = items.recv() => match item {
                Some(item) => item,
                None => return,
            },
        };
        metrics::handler_queue(CONSENSUS_LANE, items.len());
        match item {
            ConsensusItem::Block(block) => handle_block(&handlers, block).await,
            ConsensusItem::Checkpoint {
                last_block,
                checkpoint,
            } => {
                if let Some(block) = last_block {
                    handle_block(&handlers, block).await;
                }
                let started = Instant::now();
                handlers
                    .all_nodes
                    .on_checkpoint_proposal(checkpoint.clone())
                    .await;
                metrics::handler_duration("all_nodes_checkpoint", started.elapsed());
                if let Some(validator) = &handlers.validator {
                    let started = Instant::now();
                    let attestations = validator.on_checkpoint_proposal(checkpoint).await;
                    metrics::handler_duration("validator_checkpoint", started.elapsed());
                    for attestation in attestations {
                        let (reply, _ignored) = oneshot::channel();
                        let command = ProcessorCommand::PublishOwn {
                            message: OwnMessage::Attestation(Box::new(attestation)),
                            reply,
                        };
                        if processor.send(command).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

async fn handle_block(handlers: &Handlers, block: Verified<BlockProposal>) {
    if let Some(handler) = &handlers.block {
        let started = Instant::now();
        handler.on_block_proposal(block).await;
        metrics::handler_duration("block_proposal", started.elapsed());
    }
}

pub(crate) async fn run_tx_lane(
    handlers: Handlers,
    mut txs: mpsc::Receiver<Verified<RecoveredTx>>,
    cancel: CancellationToken,
) {
    loop {
        let tx = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            tx = txs.recv() => match tx {
                Some(tx) => tx,
                None => return,
            },
        };
        metrics::handler_queue(TX_LANE, txs.len());
        if let Some(handler) = &handlers.tx {
            let started = Instant::now();
            handler.on_tx(tx);
            metrics::handler_duration("tx", started.elapsed());
        }
    }
}
