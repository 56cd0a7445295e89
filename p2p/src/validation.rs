//! Stage 2 of gossip validation: cheap semantic checks of decoded messages (slot window,
//! signatures, proposer and committee). Everything here is synchronous and bounded, because
//! gossipsub holds a message awaiting validation for only a few heartbeats; expensive work
//! (re-execution, storage, attesting) happens in the handlers after acceptance.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tandem_proto::{
    Address, B256, BlockProposal, CheckpointAttestation, CheckpointProposal, ProposalTxsError,
    RecoveredTx, Signature, SignatureError, SignatureKind, SigningDomain, Tx, WireError,
    time::{ConsensusWindows, Slot, Timestamp, Window, WindowCheck},
};

use crate::{
    committee::{CommitteeSource, SlotDuty},
    verified::Verified,
};

/// How far outside its (already tolerant) window a message may be and still only be ignored: a
/// peer with a slightly skewed clock or a slow path is not at fault. Beyond this it is rejected.
pub const LATE_OR_EARLY_IGNORE_MARGIN: Duration = Duration::from_secs(2);

/// Why a message was not accepted. [`crate::scoring::judge`] maps each variant to the gossipsub
/// verdict and the peer penalty, in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipInvalid {
    /// The bytes do not decode (after snappy) into the topic's message.
    #[error("undecodable: {0}")]
    Decode(#[from] WireError),
    /// A little outside the slot's window.
    #[error("slot {slot}: {by:?} before its window opens")]
    SlightlyEarly {
        /// Message slot.
        slot: Slot,
        /// How early.
        by: Duration,
    },
    /// A little after the slot's window closed.
    #[error("slot {slot}: {by:?} after its window closed")]
    SlightlyLate {
        /// Message slot.
        slot: Slot,
        /// How late.
        by: Duration,
    },
    /// Far outside the slot's window.
    #[error("slot {slot} is not current: {offset_ms} ms outside its window")]
    WrongSlot {
        /// Message slot.
        slot: Slot,
        /// Signed distance to the window (negative: early).
        offset_ms: i64,
    },
    /// Signed for another chain.
    #[error("chain id {got}, expected {expected}")]
    WrongChain {
        /// Our chain.
        expected: u64,
        /// The message's.
        got: u64,
    },
    /// A signature does not recover.
    #[error("signature: {0}")]
    BadSignature(SignatureError),
    /// The proposal lists more txs than a block may hold.
    #[error("{count} txs exceeds the limit of {limit}")]
    TooManyTxs {
        /// Tx hashes listed.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The tx list disagrees with the header.
    #[error("txs: {0}")]
    ProposalTxs(ProposalTxsError),
    /// Signed by someone other than the slot's proposer.
    #[error("signer {got} is not slot {slot}'s proposer {expected}")]
    WrongProposer {
        /// Message slot.
        slot: Slot,
        /// The slot's proposer.
        expected: Address,
        /// The recovered signer.
        got: Address,
    },
    /// The slot's committee is not known here yet.
    #[error("committee of slot {0} not known yet")]
    CommitteeUnknown(Slot),
    /// An attestation for a slot with an empty committee.
    #[error("slot {0} has no committee")]
    NoCommittee(Slot),
    /// An attestation by a non-member.
    #[error("attester {attester} is not on slot {slot}'s committee")]
    NotInCommittee {
        /// Message slot.
        slot: Slot,
        /// The recovered attester.
        attester: Address,
    },
    /// An attestation whose proposer signature does not recover.
    #[error("attestation's proposer signature: {0}")]
    BadProposerSignature(SignatureError),
    /// The embedded last block does not belong to its checkpoint.
    #[error("embedded last block: {0}")]
    LastBlockMismatch(&'static str),
    /// The embedded last block failed block validation.
    #[error("embedded last block: {0}")]
    LastBlockInvalid(Box<GossipInvalid>),
    /// The embedded last block equivocates with a block proposal seen before.
    #[error("embedded last block equivocates with an earlier proposal")]
    LastBlockEquivocated,
    /// A tx fails a stateless rule.
    #[error("tx: {0}")]
    Tx(&'static str),
    /// Already seen (same content).
    #[error("duplicate")]
    Duplicate,
    /// More distinct messages for one key than the pool keeps (after an equivocation).
    #[error("more than {0} distinct messages for one slot and signer")]
    PoolCapExceeded(usize),
}

/// Stateless tx rules checked at the gossip edge (the same ones pool admission starts with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRules {
    /// Smallest mana limit a tx may declare.
    pub min_mana_limit: u64,
}

/// Proposer signatures recovered recently, keyed by (payload hash, signature): every
/// attestation to a checkpoint repeats its proposer's signature, so without this cache each
/// attestation would cost two recoveries instead of one.
#[derive(Debug, Default)]
struct ProposerCache {
    recovered: HashMap<(B256, Signature), Address>,
}

/// Entries kept before the cache starts over (a few slots' worth of checkpoints).
const PROPOSER_CACHE_CAPACITY: usize = 256;

/// Txs that passed gossip validation recently, by hash. A proposal mostly carries txs that were
/// gossiped before; comparing against the known tx (141 bytes) replaces re-hashing it, which is
/// most of the cost of validating a large proposal.
#[derive(Debug, Default)]
struct KnownTxs {
    by_hash: HashMap<B256, Tx>,
    order: VecDeque<B256>,
}

/// Known txs kept (oldest forgotten first): ~12 MB.
pub const KNOWN_TXS_CAPACITY: usize = 65_536;

impl KnownTxs {
    fn insert(&mut self, hash: B256, tx: &Tx) {
        if self.by_hash.insert(hash, tx.clone()).is_none() {
            self.order.push_back(hash);
            if self.order.len() > KNOWN_TXS_CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_hash.remove(&oldest);
            }
        }
    }

    fn matches(&self, hash: &B256, tx: &Tx) -> bool {
        self.by_hash.get(hash) == Some(tx)
    }
}

/// Validates decoded gossip against the time model and the slot's duty.
#[derive(Clone)]
pub struct GossipValidator {
    proposer_cache: Arc<Mutex<ProposerCache>>,
    known_txs: Arc<Mutex<KnownTxs>>,
    domain: SigningDomain,
    windows: ConsensusWindows,
    committee: Arc<dyn CommitteeSource>,
    tx_rules: TxRules,
    max_txs_per_block: usize,
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
        }
    }

    /// The signing domain messages are checked against.
    pub const fn domain(&self) -> &SigningDomain {
        &self.domain
    }

    /// The slot at `now`, if after genesis.
    pub fn current_slot(&self, now: Timestamp) -> Option<Slot> {
        self.windows.slot_clock().slot_at(now)
    }

    /// Last instant a checkpoint proposal for `slot` is due.
    pub fn checkpoint_proposal_receive_deadline(&self, slot: Slot) -> Timestamp {
        self.windows.checkpoint_proposal_receive_deadline(slot)
    }

    /// The committee lookup.
    pub fn duty(&self, slot: Slot) -> Option<SlotDuty> {
        self.committee.duty(slot)
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

    /// Checks a block proposal: window, chain, signature, tx list, proposer.
    pub fn validate_block_proposal(
        &self,
        proposal: BlockProposal,
        now: Timestamp,
    ) -> Result<Verified<BlockProposal>, GossipInvalid> {
        let slot = Slot(proposal.header.slot);
        self.check_window(slot, self.windows.block_proposal(slot), now)?;
        if proposal.header.chain_id != self.domain.chain_id {
            return Err(GossipInvalid::WrongChain {
                expected: self.domain.chain_id,
                got: proposal.header.chain_id,
            });
        }
        let signer = proposal
            .recover_proposer(&self.domain)
            .map_err(GossipInvalid::BadSignature)?;
        if proposal.tx_hashes.len() > self.max_txs_per_block {
            return Err(GossipInvalid::TooManyTxs {
                count: proposal.tx_hashes.len(),
                limit: self.max_txs_per_block,
            });
        }
        let known = lock(&self.known_txs);
        proposal
            .check_txs_with_known(|hash, tx| known.matches(hash, tx))
            .map_err(GossipInvalid::ProposalTxs)?;
        drop(known);
        self.check_proposer(slot, signer)?;
        Ok(Verified::new(proposal, signer, now))
    }

    /// Checks a checkpoint proposal and its embedded last block. Returns the verified checkpoint
    /// and, separately, the verified last block (which the caller runs through the block path).
    pub fn validate_checkpoint_proposal(
        &self,
        proposal: CheckpointProposal,
        now: Timestamp,
    ) -> Result<
        (
            Verified<CheckpointProposal>,
            Option<Verified<BlockProposal>>,
        ),
        GossipInvalid,
    > {
        let slot = Slot(proposal.payload.header.slot);
        self.check_window(slot, self.windows.checkpoint_proposal(slot), now)?;
        let signer = self
            .recover_checkpoint_proposer(proposal.payload.payload_hash(), proposal.signature)
            .map_err(GossipInvalid::BadSignature)?;
        self.check_proposer(slot, signer)?;
        let last_block = match &proposal.last_block {
            None => None,
            Some(block) => {
                if block.header.slot != proposal.payload.header.slot {
                    return Err(GossipInvalid::LastBlockMismatch("slot differs"));
                }
                if block.archive_root != proposal.payload.archive {
                    return Err(GossipInvalid::LastBlockMismatch("archive differs"));
                }
                let block = self
                    .validate_block_proposal(block.clone(), now)
                    .map_err(|err| GossipInvalid::LastBlockInvalid(Box::new(err)))?;
                if block.signer() != signer {
                    return Err(GossipInvalid::LastBlockMismatch("signed by someone else"));
                }
                Some(block)
            }
        };
        Ok((Verified::new(proposal, signer, now), last_block))
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
        if let Some(signer) = self.cache().recovered.get(&key) {
            return Ok(*signer);
        }
        let signer = signature.recover(
            self.domain
                .digest(SignatureKind::CheckpointProposal, payload_hash),
        )?;
        let mut cache = self.cache();
        if cache.recovered.len() >= PROPOSER_CACHE_CAPACITY {
            cache.recovered.clear();
        }
        cache.recovered.insert(key, signer);
        Ok(signer)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ProposerCache> {
        lock(&self.proposer_cache)
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
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
