//! Why a gossip message was not accepted.

use std::time::Duration;

use tandem_proto::{Address, ProposalTxsError, SignatureError, WireError, time::Slot};

use crate::snappy::SnappyError;

/// Why a message was not accepted. [`crate::scoring::judge`] maps each variant to the gossipsub
/// verdict and the peer penalty, in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipInvalid {
    /// The payload is not a valid snappy frame, or declares more than its topic allows.
    #[error("snappy: {0}")]
    Snappy(#[from] SnappyError),
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
    /// A block index no checkpoint can reach.
    #[error("block index {index} exceeds the limit of {limit} blocks per checkpoint")]
    IndexTooLarge {
        /// The block's index within its checkpoint.
        index: u32,
        /// Most blocks one checkpoint may hold.
        limit: usize,
    },
    /// The tx list disagrees with the header, or the txs are missing.
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
    /// A checkpoint proposal without its last block: the proposer always sends it, so this is a
    /// copy a relay stripped.
    #[error("checkpoint proposal without its last block")]
    MissingLastBlock,
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
    /// With an open (empty) committee, more distinct proposers for one slot than the pool keeps.
    #[error("more than {0} proposers for one slot")]
    TooManyProposers(usize),
}
