//! The validator handler (validators in the slot's committee; reference §7.3): attest iff the
//! all-nodes handler's cached verdict is valid, the proposal is not this node's own, the key is
//! on the slot's committee, it is before the slot's attestation deadline, and the key has not
//! attested another proposal of this slot or any proposal of a later one. Signing goes through
//! the slashing-protected [`DutySigner`] only, which enforces the last rule durably;
//! the in-memory record here only spares it requests it would refuse.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use futures::{FutureExt, future::BoxFuture};
use tandem_p2p::{CommitteeSource, ValidatorCheckpointHandler, Verified};
use tandem_proto::{
    Address, B256, CheckpointAttestation, CheckpointProposal,
    time::{Slot, Timestamp},
};

use crate::{
    checkpoint::{AllNodesCheckpointProcessor, CheckpointAccepted, SharedVerdicts, lock},
    context::{ValidatorContext, ValidatorEvent},
    metrics,
    protection::DutySigner,
};

/// Attests validated proposals; cheap to clone. Register it with p2p as the validator
/// checkpoint handler (validators only).
#[derive(Clone)]
pub struct AttestingProcessor {
    inner: Arc<Inner>,
}

struct Inner {
    context: ValidatorContext,
    verdicts: SharedVerdicts,
    signer: Arc<dyn DutySigner>,
    committee: Arc<dyn CommitteeSource>,
    /// Per local key, the latest attested slot and payload.
    attested: Mutex<HashMap<Address, (Slot, B256)>>,
}

impl std::fmt::Debug for AttestingProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestingProcessor")
            .field("keys", &self.inner.signer.addresses())
            .finish_non_exhaustive()
    }
}

impl AttestingProcessor {
    /// Attests with `signer`'s keys what `all_nodes` validated, for the committees of
    /// `committee` (the epoch cache).
    pub fn new(
        context: &ValidatorContext,
        all_nodes: &AllNodesCheckpointProcessor,
        signer: Arc<dyn DutySigner>,
        committee: Arc<dyn CommitteeSource>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                context: context.clone(),
                verdicts: all_nodes.verdicts(),
                signer,
                committee,
                attested: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// This node's attestations for `proposal` (signed by `proposer`), none when it must not
    /// attest.
    pub async fn process(
        &self,
        proposal: &CheckpointProposal,
        proposer: Address,
        deadline: Timestamp,
    ) -> Vec<CheckpointAttestation> {
        let inner = &self.inner;
        let slot = Slot(proposal.payload.header.slot);
        let payload_hash = proposal.payload.payload_hash();
        let keys: Vec<Address> = inner.signer.addresses().to_vec();
        let skip_all = |reason: &'static str| {
            for attester in &keys {
                self.decided(slot, *attester, Some(reason));
            }
            Vec::new()
        };
        match lock(&inner.verdicts).get(&payload_hash) {
            None => return skip_all("not_validated"),
            Some(Err(_)) => return skip_all("invalid_proposal"),
            Some(Ok(CheckpointAccepted::Own)) => return skip_all("own_proposal"),
            Some(Ok(_)) => {}
        }
        if keys.contains(&proposer) {
            return skip_all("own_proposal");
        }
        let Some(duty) = inner.committee.duty(slot) else {
            return skip_all("committee_unknown");
        };
        let attestation_deadline = inner.context.windows.attestation_deadline(slot);
        if inner.context.clock.now() > attestation_deadline.min(deadline) {
            return skip_all("too_late");
        }
        let mut attestations = Vec::new();
        for attester in keys.iter().copied() {
            if !duty.is_member(attester) {
                self.decided(slot, attester, Some("not_in_committee"));
                continue;
            }
            if let Some(reason) = self.conflicts(attester, slot, payload_hash) {
                self.decided(slot, attester, Some(reason));
                continue;
            }
            match inner.signer.attest(attester, proposal).await {
                Ok(attestation) => {
                    self.attested().insert(attester, (slot, payload_hash));
                    self.decided(slot, attester, None);
                    attestations.push(attestation);
                }
                Err(err) if err.is_slashing_refusal() => {
                    tracing::warn!(target: "validator::attest", slot = slot.0, %attester, error = %err, "slashing protection refused the attestation");
                    self.decided(slot, attester, Some("refused_by_slashing_protection"));
                }
                Err(err) => {
                    tracing::error!(target: "validator::attest", slot = slot.0, %attester, error = %err, "could not sign the attestation");
                    self.decided(slot, attester, Some("signer_failed"));
                }
            }
        }
        attestations
    }

    fn attested(&self) -> std::sync::MutexGuard<'_, HashMap<Address, (Slot, B256)>> {
        self.inner
            .attested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Why `attester` must not attest `payload_hash` at `slot`, after what it attested here.
    fn conflicts(&self, attester: Address, slot: Slot, payload_hash: B256) -> Option<&'static str> {
        match self.attested().get(&attester) {
            Some((latest, _)) if *latest > slot => Some("attested_later_slot"),
            Some((latest, hash)) if *latest == slot && *hash != payload_hash => {
                Some("attested_other_proposal")
            }
            Some((latest, _)) if *latest == slot => Some("already_attested"),
            _ => None,
        }
    }

    fn decided(&self, slot: Slot, attester: Address, skipped: Option<&'static str>) {
        metrics::attestation(skipped.unwrap_or("attested"));
        if let Some(reason) = skipped {
            tracing::debug!(target: "validator::attest", slot = slot.0, %attester, reason, "not attesting");
        } else {
            tracing::info!(target: "validator::attest", slot = slot.0, %attester, "attested");
        }
        self.inner.context.emit(ValidatorEvent::Attestation {
            slot,
            attester,
            skipped,
        });
    }
}

impl ValidatorCheckpointHandler for AttestingProcessor {
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
        deadline: Timestamp,
    ) -> BoxFuture<'static, Vec<CheckpointAttestation>> {
        let processor = self.clone();
        async move {
            processor
                .process(&proposal, proposal.signer(), deadline)
                .await
        }
        .boxed()
    }
}
