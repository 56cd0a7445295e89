//! Per-topic validation queues, bounded by message count and by bytes, between the swarm task
//! and the processors. One queue per topic, so tx spam fills only the tx queue; the byte bound
//! keeps a queue of 10 MiB proposals from holding gigabytes.

use std::{sync::Arc, time::Instant};

use libp2p::{PeerId, gossipsub::MessageId};
use tandem_proto::time::Timestamp;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::{config::QueueLimits, topics::GossipKind};

/// A gossip message waiting for validation. Its bytes count against its queue until it is
/// dropped.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) id: MessageId,
    pub(crate) source: PeerId,
    pub(crate) kind: GossipKind,
    /// Compressed, as received.
    pub(crate) data: Vec<u8>,
    /// When the swarm received it (for latency metrics).
    pub(crate) received: Instant,
    /// When the swarm received it, by the injected clock: its time window is checked against
    /// this, so time it spent in this node's queues never makes a timely message late (and
    /// never costs the honest peer that forwarded it).
    pub(crate) received_at: Timestamp,
    _bytes: OwnedSemaphorePermit,
}

struct QueueSender {
    messages: mpsc::Sender<Inbound>,
    bytes: Arc<Semaphore>,
}

/// The swarm's side of the queues.
pub(crate) struct GossipQueues {
    senders: [QueueSender; 4],
}

/// The processors' side.
pub(crate) struct QueueReceivers {
    pub(crate) tx: mpsc::Receiver<Inbound>,
    pub(crate) block_proposal: mpsc::Receiver<Inbound>,
    pub(crate) checkpoint_proposal: mpsc::Receiver<Inbound>,
    pub(crate) attestation: mpsc::Receiver<Inbound>,
}

/// A message its queue had no room for.
pub(crate) struct QueueFull {
    pub(crate) id: MessageId,
    pub(crate) source: PeerId,
}

impl GossipQueues {
    pub(crate) fn new(limits: &QueueLimits) -> (Self, QueueReceivers) {
        let mut receivers = Vec::with_capacity(4);
        let senders = GossipKind::ALL.map(|kind| {
            let limit = limits.get(kind);
            let (messages, receiver) = mpsc::channel(limit.messages.max(1));
            receivers.push(receiver);
            QueueSender {
                messages,
                bytes: Arc::new(Semaphore::new(limit.bytes.min(Semaphore::MAX_PERMITS))),
            }
        });
        let mut receivers = receivers.into_iter();
        let mut next = || receivers.next().expect("one receiver per kind");
        let receivers = QueueReceivers {
            tx: next(),
            block_proposal: next(),
            checkpoint_proposal: next(),
            attestation: next(),
        };
        (Self { senders }, receivers)
    }

    /// Queues a message, or hands its id back when its queue is full (by count or bytes).
    pub(crate) fn push(
        &self,
        kind: GossipKind,
        id: MessageId,
        source: PeerId,
        data: Vec<u8>,
        received_at: Timestamp,
    ) -> Result<(), QueueFull> {
        let sender = &self.senders[kind as usize];
        let permit = u32::try_from(data.len())
            .ok()
            .and_then(|len| Arc::clone(&sender.bytes).try_acquire_many_owned(len).ok());
        let Some(permit) = permit else {
            return Err(QueueFull { id, source });
        };
        sender
            .messages
            .try_send(Inbound {
                id,
                source,
                kind,
                data,
                received: Instant::now(),
                received_at,
                _bytes: permit,
            })
            .map_err(|err| {
                let inbound = err.into_inner();
                QueueFull {
                    id: inbound.id,
                    source: inbound.source,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueLimit;

    #[test]
    fn bounded_by_count_and_bytes_per_topic() {
        let limit = QueueLimit {
            messages: 3,
            bytes: 100,
        };
        let limits = QueueLimits {
            tx: limit,
            block_proposal: limit,
            checkpoint_proposal: limit,
            attestation: limit,
        };
        let (queues, mut receivers) = GossipQueues::new(&limits);
        let push = |kind, len| {
            queues
                .push(
                    kind,
                    MessageId::from(vec![1]),
                    PeerId::random(),
                    vec![0; len],
                    Timestamp(0),
                )
                .is_ok()
        };
        // Bytes: 60 + 60 > 100.
        assert!(push(GossipKind::BlockProposal, 60));
        assert!(!push(GossipKind::BlockProposal, 60));
        // Other topics are unaffected by a full one.
        assert!(push(GossipKind::CheckpointProposal, 60));
        // Count: three small ones fit, the fourth does not.
        assert!(push(GossipKind::Tx, 1));
        assert!(push(GossipKind::Tx, 1));
        assert!(push(GossipKind::Tx, 1));
        assert!(!push(GossipKind::Tx, 1));
        // Taking a message out releases its bytes.
        drop(receivers.block_proposal.try_recv().unwrap());
        assert!(push(GossipKind::BlockProposal, 60));
        assert!(receivers.attestation.try_recv().is_err());
    }
}
