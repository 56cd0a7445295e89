//! The attestations of recent slots by payload, written by the consensus processor as it admits
//! them and read by quorum waiters directly: a proposer collecting its quorum never waits on the
//! processor, so a busy processor at the deadline neither delays it nor fails it.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use tandem_proto::{Address, B256, CheckpointAttestation, time::Slot};
use tokio::sync::watch;

use super::AttestationList;

#[derive(Debug, Default)]
pub(crate) struct AttestationBook {
    by_payload: Mutex<HashMap<(Slot, B256), watch::Sender<AttestationList>>>,
}

impl AttestationBook {
    /// Records an attestation the pool admitted (one per attester and payload: the pool
    /// refuses repeats before this is called).
    pub(crate) fn record(&self, attester: Address, attestation: &CheckpointAttestation) {
        let key = (
            Slot(attestation.payload.header.slot),
            attestation.payload.payload_hash(),
        );
        self.lock()
            .entry(key)
            .or_insert_with(|| watch::channel(AttestationList::new()).0)
            .send_modify(|list| list.push((attester, attestation.clone())));
    }

    /// The attestations of `payload_hash`, now and as they come in. The receiver reports the
    /// sender gone once the slot is pruned.
    pub(crate) fn watch(&self, slot: Slot, payload_hash: B256) -> watch::Receiver<AttestationList> {
        self.lock()
            .entry((slot, payload_hash))
            .or_insert_with(|| watch::channel(AttestationList::new()).0)
            .subscribe()
    }

    /// How many waiters watch `payload_hash` of `slot` (tests wait on it instead of on
    /// scheduling).
    #[cfg(test)]
    pub(crate) fn watchers(&self, slot: Slot, payload_hash: B256) -> usize {
        self.lock()
            .get(&(slot, payload_hash))
            .map_or(0, watch::Sender::receiver_count)
    }

    /// Forgets the slots before `oldest` (the pool's retention).
    pub(crate) fn prune(&self, oldest: Slot) {
        self.lock().retain(|(slot, _), _| *slot >= oldest);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(Slot, B256), watch::Sender<AttestationList>>> {
        // Every write is a single insert or push: a panicking writer leaves the map whole.
        self.by_payload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
