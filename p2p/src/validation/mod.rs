//! Stage 2 of gossip validation: cheap semantic checks of decoded messages (slot window,
//! signatures, proposer and committee, tx lists). Everything here is synchronous and bounded; the
//! processors run it on the blocking pool, off the async workers. Expensive work (re-execution,
//! storage, attesting) happens in the handlers after acceptance.
//!
//! Order inside each check: the cheapest refusals first (window, chain, sizes), then the one
//! signature recovery and the proposer check, and only then the tx-hash check, which is most of
//! the cost of a large proposal.

mod caches;
mod error;

pub use caches::KNOWN_TXS_CAPACITY;
pub use error::GossipInvalid;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tandem_proto::{
    Address, B256, BlockProposal, CheckpointAttestation, CheckpointProposal,
    MAX_BLOCKS_PER_CHECKPOINT, RecoveredTx, Signature, SignatureError, SignatureKind,
    SigningDomain, Tx, WireMessage,
    time::{ConsensusWindows, Slot, Timestamp, Window, WindowCheck},
};

use crate::{
    committee::{CommitteeSource, SlotDuty},
    snappy,
    topics::GossipKind,
    verified::Verified,
};
use caches::{KnownTxs, ProposerCache};

/// How far outside its (already tolerant) window a message may be and still only be ignored: a
/// peer with a slightly skewed clock or a slow path is not at fault. Beyond this it is rejected.
pub const LATE_OR_EARLY_IGNORE_MARGIN: Duration = Duration::from_secs(2);

/// Decodes `data`. proto's decoder refuses any but the canonical encoding of what it decodes
/// to (`WireError::NonCanonical`), so nobody can mint new message ids (and new validation work)
/// from one message by re-encoding it: message ids are over these bytes.
fn decode_canonical<T: WireMessage>(data: &[u8]) -> Result<T, GossipInvalid> {
    Ok(T::from_wire_bytes(data)?)
}

/// Stateless tx rules checked at the gossip edge (the same ones pool admission starts with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRules {
    /// Smallest mana limit a tx may declare.
    pub min_mana_limit: u64,
}

/// A decoded message that passed the stateless checks, before pool admission.
#[derive(Debug)]
pub(crate) enum Checked {
    Tx(Verified<RecoveredTx>),
    Block(Verified<BlockProposal>),
    /// The checkpoint's core (its `last_block` taken out) and its verified last block.
    Checkpoint {
        checkpoint: Verified<CheckpointProposal>,
        last_block: Verified<BlockProposal>,
    },
    Attestation(Verified<CheckpointAttestation>),
}

/// Validates decoded gossip against the time model and the slot's duty. Clones share their
/// caches.
#[derive(Clone)]
pub struct GossipValidator {
    proposer_cache: Arc<Mutex<ProposerCache>>,
    known_txs: Arc<Mutex<KnownTxs>>,
    domain: SigningDomain,
    windows: ConsensusWindows,
    committee: Arc<dyn CommitteeSource>,
    tx_rules: TxRules,
    max_txs_per_block: usize,
    /// Indices at or above this are refused: more blocks than the time model lets a
    /// checkpoint hold (and than a lane would buffer or fetch).
    max_blocks_per_checkpoint: usize,
}

impl std::fmt::Debug for GossipValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipValidator")
            .field("domain", &self.domain)
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl GossipValidator {
    /// A validator for the network of `domain` with time model `windows`.
    pub fn new(
        domain: SigningDomain,
        windows: ConsensusWindows,
        committee: Arc<dyn CommitteeSource>,
        tx_rules: TxRules,
        max_txs_per_block: usize,
    ) -> Self {
        Self {
            proposer_cache: Arc::default(),
            known_txs: Arc::default(),
            domain,
            windows,
            committee,
            tx_rules,
            max_txs_per_block,
            max_blocks_per_checkpoint: usize::try_from(windows.max_blocks_per_checkpoint())
                .unwrap_or(usize::MAX)
                .min(MAX_BLOCKS_PER_CHECKPOINT),
        }
    }

    /// The signing domain messages are checked against.
    pub const fn domain(&self) -> &SigningDomain {
        &self.domain
    }

    /// The consensus windows messages are checked against.
    pub const fn windows(&self) -> &ConsensusWindows {
        &self.windows
    }

    /// The slot at `now`, if after genesis.
    pub fn current_slot(&self, now: Timestamp) -> Option<Slot> {
        self.windows.slot_clock().slot_at(now)
    }

    /// The committee lookup.
    pub fn duty(&self, slot: Slot) -> Option<SlotDuty> {
        self.committee.duty(slot)
    }

    /// Decompresses, decodes and checks a gossip payload received on `kind`'s topic.
    pub(crate) fn check_compressed(
        &self,
        kind: GossipKind,
        data: &[u8],
        now: Timestamp,
    ) -> Result<Checked, GossipInvalid> {
        let data = snappy::decompress(kind, data)?;
        self.check(kind, &data, now)
    }

    /// Decodes and checks a (decompressed) gossip payload.
    pub(crate) fn check(
        &self,
        kind: GossipKind,
        data: &[u8],
        now: Timestamp,
    ) -> Result<Checked, GossipInvalid> {
        Ok(match kind {
            GossipKind::Tx => Checked::Tx(self.validate_tx(decode_canonical(data)?, now)?),
            GossipKind::BlockProposal => {
                Checked::Block(self.validate_block_proposal(decode_canonical(data)?, now)?)
            }
            GossipKind::CheckpointProposal => {
                let proposal: CheckpointProposal = decode_canonical(data)?;
                let (checkpoint, last_block) = self.validate_checkpoint_proposal(proposal, now)?;
                Checked::Checkpoint {
                    checkpoint,
                    last_block,
                }
            }
            GossipKind::CheckpointAttestation => {
                Checked::Attestation(self.validate_attestation(decode_canonical(data)?, now)?)
            }
        })
    }

    /// Checks a gossiped tx.
    pub fn validate_tx(
        &self,
        tx: Tx,
        now: Timestamp,
    ) -> Result<Verified<RecoveredTx>, GossipInvalid> {
        let payload = &tx.payload;
        if payload.chain_id != self.domain.chain_id {
            return Err(GossipInvalid::WrongChain {
                expected: self.domain.chain_id,
                got: payload.chain_id,
            });
        }
        if payload.mana_limit < self.tx_rules.min_mana_limit {
            return Err(GossipInvalid::Tx("mana limit below the minimum"));
        }
        if payload.max_fee_per_mana == 0 {
            return Err(GossipInvalid::Tx("zero max fee per mana"));
        }
        let recovered = tx
            .into_recovered(&self.domain)
            .map_err(GossipInvalid::BadSignature)?;
        lock(&self.known_txs).insert(recovered.hash(), recovered.tx());
        let sender = recovered.sender();
        Ok(Verified::new(recovered, sender, now))
    }

    /// Checks a block proposal: window, chain, sizes, signature and proposer, then its txs.
    pub fn validate_block_proposal(
        &self,
        proposal: BlockProposal,
        now: Timestamp,
    ) -> Result<Verified<BlockProposal>, GossipInvalid> {
        let slot = Slot(proposal.header.slot);
        self.check_window(slot, self.windows.block_proposal(slot), now)?;
        self.verify_block(proposal, now)
    }

    /// [`Self::validate_block_proposal`] without the time window: for a proposal fetched over
    /// req/resp after its gossip window (a missed block, a late-starting node).
    pub fn verify_block(
        &self,
        proposal: BlockProposal,
        now: Timestamp,
    ) -> Result<Verified<BlockProposal>, GossipInvalid> {
        let slot = Slot(proposal.header.slot);
        if proposal.header.chain_id != self.domain.chain_id {
            return Err(GossipInvalid::WrongChain {
                expected: self.domain.chain_id,
                got: proposal.header.chain_id,
            });
        }
        let index = proposal.header.index_within_checkpoint;
        let limit = self.max_blocks_per_checkpoint;
        if usize::try_from(index).map_or(true, |index| index >= limit) {
            return Err(GossipInvalid::IndexTooLarge { index, limit });
        }
        if proposal.tx_hashes.len() > self.max_txs_per_block {
            return Err(GossipInvalid::TooManyTxs {
                count: proposal.tx_hashes.len(),
                limit: self.max_txs_per_block,
            });
        }
        let signer = proposal
            .recover_proposer(&self.domain)
            .map_err(GossipInvalid::BadSignature)?;
        self.check_proposer(slot, signer)?;
        let known = lock(&self.known_txs);
        proposal
            .check_txs_with_known(|hash, tx| known.matches(hash, tx))
            .map_err(GossipInvalid::ProposalTxs)?;
        drop(known);
        Ok(Verified::new(proposal, signer, now))
    }

    /// Checks a checkpoint proposal and its (mandatory) embedded last block. Returns the
    /// checkpoint's core — its `last_block` taken out, as handlers receive it — and the verified
    /// last block, which goes through the block path first.
    pub fn validate_checkpoint_proposal(
        &self,
        mut proposal: CheckpointProposal,
        now: Timestamp,
    ) -> Result<(Verified<CheckpointProposal>, Verified<BlockProposal>), GossipInvalid> {
        let slot = Slot(proposal.payload.header.slot);
        self.check_window(slot, self.windows.checkpoint_proposal(slot), now)?;
        let signer = self
            .recover_checkpoint_proposer(proposal.payload.payload_hash(), proposal.signature)
            .map_err(GossipInvalid::BadSignature)?;
        self.check_proposer(slot, signer)?;
        let block = proposal
            .last_block
            .take()
            .ok_or(GossipInvalid::MissingLastBlock)?;
        if block.header.slot != proposal.payload.header.slot {
            return Err(GossipInvalid::LastBlockMismatch("slot differs"));
        }
        if block.archive_root != proposal.payload.archive {
            return Err(GossipInvalid::LastBlockMismatch("archive differs"));
        }
        let block = self
            .validate_block_proposal(block, now)
            .map_err(|err| GossipInvalid::LastBlockInvalid(Box::new(err)))?;
        if block.signer() != signer {
            return Err(GossipInvalid::LastBlockMismatch("signed by someone else"));
        }
        Ok((Verified::new(proposal, signer, now), block))
    }

    /// Checks an attestation: window, attester signature and membership, proposer signature.
    pub fn validate_attestation(
        &self,
        attestation: CheckpointAttestation,
        now: Timestamp,
    ) -> Result<Verified<CheckpointAttestation>, GossipInvalid> {
        let slot = Slot(attestation.payload.header.slot);
        self.check_window(slot, self.windows.attestation(slot), now)?;
        // Hashed once for both recoveries: this is the per-attestation hot path.
        let payload_hash = attestation.payload.payload_hash();
        let attester = attestation
            .signature
            .recover(
                self.domain
                    .digest(SignatureKind::CheckpointAttestation, payload_hash),
            )
            .map_err(GossipInvalid::BadSignature)?;
        let duty = self
            .committee
            .duty(slot)
            .ok_or(GossipInvalid::CommitteeUnknown(slot))?;
        if duty.committee.is_empty() {
            return Err(unless_provisional(
                &duty,
                slot,
                GossipInvalid::NoCommittee(slot),
            ));
        }
        if !duty.is_member(attester) {
            return Err(unless_provisional(
                &duty,
                slot,
                GossipInvalid::NotInCommittee { slot, attester },
            ));
        }
        let proposer = self
            .recover_checkpoint_proposer(payload_hash, attestation.proposer_signature)
            .map_err(GossipInvalid::BadProposerSignature)?;
        if let Some(expected) = duty.proposer
            && expected != proposer
        {
            return Err(unless_provisional(
                &duty,
                slot,
                GossipInvalid::WrongProposer {
                    slot,
                    expected,
                    got: proposer,
                },
            ));
        }
        Ok(Verified::new(attestation, attester, now))
    }

    fn recover_checkpoint_proposer(
        &self,
        payload_hash: B256,
        signature: Signature,
    ) -> Result<Address, SignatureError> {
        let key = (payload_hash, signature);
        if let Some(signer) = lock(&self.proposer_cache).get(&key) {
            return Ok(signer);
        }
        let signer = signature.recover(
            self.domain
                .digest(SignatureKind::CheckpointProposal, payload_hash),
        )?;
        lock(&self.proposer_cache).insert(key, signer);
        Ok(signer)
    }

    fn check_window(
        &self,
        slot: Slot,
        window: Window,
        now: Timestamp,
    ) -> Result<(), GossipInvalid> {
        match window.check(now) {
            WindowCheck::Inside => Ok(()),
            WindowCheck::TooEarly(by) if by <= LATE_OR_EARLY_IGNORE_MARGIN => {
                Err(GossipInvalid::SlightlyEarly { slot, by })
            }
            WindowCheck::TooLate(by) if by <= LATE_OR_EARLY_IGNORE_MARGIN => {
                Err(GossipInvalid::SlightlyLate { slot, by })
            }
            WindowCheck::TooEarly(by) => Err(GossipInvalid::WrongSlot {
                slot,
                offset_ms: -millis(by),
            }),
            WindowCheck::TooLate(by) => Err(GossipInvalid::WrongSlot {
                slot,
                offset_ms: millis(by),
            }),
        }
    }

    fn check_proposer(&self, slot: Slot, signer: Address) -> Result<(), GossipInvalid> {
        let duty = self
            .committee
            .duty(slot)
            .ok_or(GossipInvalid::CommitteeUnknown(slot))?;
        match duty.proposer {
            Some(expected) if expected != signer => Err(unless_provisional(
                &duty,
                slot,
                GossipInvalid::WrongProposer {
                    slot,
                    expected,
                    got: signer,
                },
            )),
            _ => Ok(()),
        }
    }
}

/// A disagreement with a provisional duty is not the sender's fault (its committee may be the
/// newer one): it counts as a committee not known yet, ignored without a penalty.
fn unless_provisional(duty: &SlotDuty, slot: Slot, error: GossipInvalid) -> GossipInvalid {
    if duty.provisional {
        GossipInvalid::CommitteeUnknown(slot)
    } else {
        error
    }
}

/// Locks a cache. A panic while holding the lock cannot leave a cache inconsistent in a way
/// that matters (entries are whole values): keep using it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
