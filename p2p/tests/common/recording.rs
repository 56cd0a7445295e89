//! Recording handlers: what each node's handlers were called with, in order.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use tandem_p2p::{
    AllNodesCheckpointHandler, BlockProposalHandler, TxHandler, ValidatorCheckpointHandler,
    Verified,
};
use tandem_proto::{
    B256, BlockProposal, CheckpointAttestation, CheckpointProposal, RecoveredTx, SigningDomain,
    SigningKey, time::Timestamp,
};
use tokio::sync::Notify;

/// What a recording block handler does besides recording.
#[derive(Default)]
pub struct Behaviour {
    /// Block (slot, index) whose handler never returns.
    pub hang: HashSet<(u64, u32)>,
    /// Panic on any block.
    pub panic: bool,
    /// The validator handler returns an attestation whose signature does not recover.
    pub bad_attestation: bool,
    /// The validator handler returns only once this is notified (then logs `attested:<slot>`).
    pub attestation_gate: Option<Arc<Notify>>,
}

/// Handlers that log what they were called with, in order.
#[derive(Default)]
pub struct Recorder {
    pub log: Mutex<Vec<String>>,
    pub blocks: Mutex<Vec<Verified<BlockProposal>>>,
    pub notify: Notify,
    pub attester: Option<(SigningKey, SigningDomain)>,
    pub txs: Mutex<Vec<B256>>,
    pub behaviour: Behaviour,
}

impl Recorder {
    fn push(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
        self.notify.notify_waiters();
    }

    pub fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has `count` entries or `timeout` passes.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<String> {
        self.wait_until(timeout, |entries| entries.len() >= count)
            .await
    }

    /// Waits until `done(log)` holds or `timeout` passes; returns the log.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            let entries = self.entries();
            if done(&entries) {
                return entries;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.entries();
            }
        }
    }

    pub async fn wait_for_txs(&self, count: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            let seen = self.txs.lock().unwrap().len();
            if seen >= count || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.txs.lock().unwrap().len();
            }
        }
    }
}

pub struct RecordingBlocks(pub Arc<Recorder>);
pub struct RecordingAllNodes(pub Arc<Recorder>);
pub struct RecordingValidator(pub Arc<Recorder>);
pub struct RecordingTxs(pub Arc<Recorder>);

impl BlockProposalHandler for RecordingBlocks {
    fn on_block_proposal(
        &self,
        proposal: Verified<BlockProposal>,
        _deadline: Timestamp,
    ) -> BoxFuture<'static, ()> {
        let key = (
            proposal.header.slot,
            proposal.header.index_within_checkpoint,
        );
        assert!(!self.0.behaviour.panic, "block handler told to panic");
        self.0.push(format!("block:{}:{}", key.0, key.1));
        self.0.blocks.lock().unwrap().push(proposal);
        if self.0.behaviour.hang.contains(&key) {
            return futures::future::pending().boxed();
        }
        async {}.boxed()
    }
}

impl AllNodesCheckpointHandler for RecordingAllNodes {
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
        _deadline: Timestamp,
    ) -> BoxFuture<'static, ()> {
        self.0.push(format!(
            "all_nodes:{}:{}",
            proposal.payload.header.slot, proposal.payload.fee_asset_price_modifier
        ));
        async {}.boxed()
    }
}

impl ValidatorCheckpointHandler for RecordingValidator {
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
        _deadline: Timestamp,
    ) -> BoxFuture<'static, Vec<CheckpointAttestation>> {
        self.0
            .push(format!("validator:{}", proposal.payload.header.slot));
        let bad = self.0.behaviour.bad_attestation;
        let attestations = self
            .0
            .attester
            .as_ref()
            .map(|(key, domain)| {
                let mut attestation = CheckpointAttestation::sign(&proposal, domain, key);
                if bad {
                    attestation.signature = tandem_proto::Signature::from_bytes([0xff; 65]);
                }
                vec![attestation]
            })
            .unwrap_or_default();
        let (gate, recorder, slot) = (
            self.0.behaviour.attestation_gate.clone(),
            Arc::clone(&self.0),
            proposal.payload.header.slot,
        );
        async move {
            if let Some(gate) = gate {
                gate.notified().await;
                recorder.push(format!("attested:{slot}"));
            }
            attestations
        }
        .boxed()
    }
}

impl TxHandler for RecordingTxs {
    fn on_tx(&self, tx: Verified<RecoveredTx>) {
        self.0.txs.lock().unwrap().push(tx.hash());
        self.0.notify.notify_waiters();
    }
}
