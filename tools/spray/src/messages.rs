//! What the sprayer sends: for each topic, payloads that fail gossip validation in every way an
//! honest node can tell apart (and charges the forwarding peer for).

use std::{fmt, sync::Arc};

use rand::{Rng, RngCore};
use serde::Serialize;
use tandem_p2p::{GossipKind, compress_gossip_payload};
use tandem_proto::{
    Address, B256, BlockHeader, BlockProposal, CheckpointAttestation, CheckpointProposal,
    ConsensusPayload, Signature, SigningDomain, SigningKey, Tx, TxPayload, WireMessage,
    block_body_hash,
    time::{Clock, PipeliningMode, Slot, SlotClock},
};

/// How a sprayed message is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A well-formed consensus message for the current slot signed by a key that is not the
    /// slot's proposer or in its committee.
    WrongSigner,
    /// A well-formed message whose signature bytes recover to nobody (or to a random address).
    BadSignature,
    /// Bytes that are not a snappy frame.
    NotSnappy,
    /// A valid snappy frame of bytes that do not decode as the topic's message.
    Undecodable,
    /// A snappy frame declaring more decompressed bytes than the topic allows.
    Bomb,
    /// A frame larger than the topic's transmit limit (only on topics whose gossipsub
    /// instance carries a larger topic, so the RPC frame itself is still within limits).
    Oversized,
}

impl Category {
    /// Every category, in the order a round sends them: the well-formed ones first, so they
    /// reach validation before the undecodable ones get the sprayer disconnected.
    pub const ALL: [Self; 6] = [
        Self::WrongSigner,
        Self::BadSignature,
        Self::NotSnappy,
        Self::Undecodable,
        Self::Bomb,
        Self::Oversized,
    ];

    /// Name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::WrongSigner => "wrong_signer",
            Self::BadSignature => "bad_signature",
            Self::NotSnappy => "not_snappy",
            Self::Undecodable => "undecodable",
            Self::Bomb => "bomb",
            Self::Oversized => "oversized",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The slot whose proposals are gossiped at an instant: the network's slot clock and
/// pipelining mode, read when a burst is built (a run may wait for subscriptions across slots).
#[derive(Clone)]
pub struct LiveSlot {
    /// The network's slot arithmetic.
    pub slots: SlotClock,
    /// Pipelined: the proposals gossiped during slot N are for slot N + 1.
    pub mode: PipeliningMode,
    /// The time source.
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for LiveSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSlot")
            .field("slots", &self.slots)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl LiveSlot {
    /// The slot proposals claim now (slot 0 before genesis).
    pub fn now(&self) -> Slot {
        let now = self.slots.slot_at(self.clock.now()).unwrap_or(Slot(0));
        match self.mode {
            PipeliningMode::Pipelined => Slot(now.0.saturating_add(1)),
            PipeliningMode::NonPipelined => now,
        }
    }
}

/// The network the well-formed messages claim to belong to.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Chain id and rollup (the signing domain).
    pub domain: SigningDomain,
    /// The slot whose window is open now (messages for other slots are only ignored or
    /// charged as timing faults, before their signatures are looked at).
    pub slot: Slot,
}

/// The largest transmit size among the topics that share `kind`'s gossipsub instance.
fn instance_transmit_limit(kind: GossipKind) -> usize {
    if kind == GossipKind::Tx {
        return kind.max_transmit_size();
    }
    GossipKind::CONSENSUS
        .iter()
        .map(|kind| kind.max_transmit_size())
        .max()
        .unwrap_or_default()
}

/// The compressed payload of one `category` message for `kind`'s topic, or `None` where the
/// category does not apply (txs have no proposer; the largest topic of an instance cannot be
/// oversized without exceeding the RPC frame limit). Every call differs in content, so no
/// two are one gossip message.
pub(crate) fn payload(
    kind: GossipKind,
    category: Category,
    target: &Target,
    rng: &mut impl RngCore,
) -> Option<Vec<u8>> {
    let data = match category {
        Category::WrongSigner => compress_gossip_payload(&wrong_signer(kind, target, rng)?),
        Category::BadSignature => compress_gossip_payload(&bad_signature(kind, target, rng)),
        Category::NotSnappy => {
            // Five continuation bytes overflow snappy's length varint: never a frame.
            let mut data = vec![0xff; 5];
            data.extend((0..64).map(|_| rng.r#gen::<u8>()));
            data
        }
        Category::Undecodable => {
            // Protobuf field 0 does not exist: never one of our messages.
            let mut data = vec![0x00];
            data.extend((0..64).map(|_| rng.r#gen::<u8>()));
            compress_gossip_payload(&data)
        }
        Category::Bomb => {
            let mut data = vec![0u8; kind.max_message_size() + 1];
            rng.fill_bytes(&mut data[..16]);
            compress_gossip_payload(&data)
        }
        Category::Oversized => {
            let size = kind.max_transmit_size() + 1;
            if size > instance_transmit_limit(kind) {
                return None;
            }
            let mut data = vec![0u8; size];
            rng.fill_bytes(&mut data);
            data
        }
    };
    Some(data)
}

fn random_key(rng: &mut impl RngCore) -> SigningKey {
    loop {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        // Almost every 32 bytes are a valid secret key.
        if let Ok(key) = SigningKey::from_bytes(&secret) {
            return key;
        }
    }
}

/// 65 bytes with a valid `v` but random `r`/`s`: recovers to nobody or to a random address.
fn random_signature(rng: &mut impl RngCore) -> Signature {
    let mut bytes = [0u8; 65];
    rng.fill_bytes(&mut bytes[..64]);
    bytes[64] = 27;
    Signature::from_bytes(bytes)
}

fn block(target: &Target, key: &SigningKey, rng: &mut impl RngCore) -> BlockProposal {
    let header = BlockHeader {
        chain_id: target.domain.chain_id,
        block_number: rng.r#gen::<u32>().into(),
        slot: target.slot.0,
        body_hash: block_body_hash(&[]),
        ..BlockHeader::default()
    };
    BlockProposal::sign(
        header,
        B256::from(rng.r#gen::<[u8; 32]>()),
        Vec::new(),
        &target.domain,
        key,
    )
}

fn checkpoint(target: &Target, key: &SigningKey, rng: &mut impl RngCore) -> CheckpointProposal {
    let last_block = block(target, key, rng);
    let mut payload = ConsensusPayload {
        archive: last_block.archive_root,
        ..ConsensusPayload::default()
    };
    payload.header.slot = target.slot.0;
    CheckpointProposal::sign(payload, Some(last_block), &target.domain, key)
}

fn wrong_signer(kind: GossipKind, target: &Target, rng: &mut impl RngCore) -> Option<Vec<u8>> {
    let key = random_key(rng);
    Some(match kind {
        // Anyone may sign a tx: a random signer is no fault.
        GossipKind::Tx => return None,
        GossipKind::BlockProposal => block(target, &key, rng).to_wire_bytes(),
        GossipKind::CheckpointProposal => checkpoint(target, &key, rng).to_wire_bytes(),
        GossipKind::CheckpointAttestation => {
            CheckpointAttestation::sign(&checkpoint(target, &key, rng), &target.domain, &key)
                .to_wire_bytes()
        }
    })
}

fn bad_signature(kind: GossipKind, target: &Target, rng: &mut impl RngCore) -> Vec<u8> {
    let key = random_key(rng);
    match kind {
        GossipKind::Tx => Tx {
            payload: TxPayload {
                chain_id: target.domain.chain_id,
                nonce: rng.r#gen(),
                to: Address::from(rng.r#gen::<[u8; 20]>()),
                amount: 1,
                max_fee_per_mana: 1,
                mana_limit: 1_000_000,
            },
            signature: random_signature(rng),
        }
        .to_wire_bytes(),
        GossipKind::BlockProposal => {
            let mut proposal = block(target, &key, rng);
            proposal.signature = random_signature(rng);
            proposal.to_wire_bytes()
        }
        GossipKind::CheckpointProposal => {
            let mut proposal = checkpoint(target, &key, rng);
            proposal.signature = random_signature(rng);
            proposal.to_wire_bytes()
        }
        GossipKind::CheckpointAttestation => {
            let mut attestation =
                CheckpointAttestation::sign(&checkpoint(target, &key, rng), &target.domain, &key);
            attestation.signature = random_signature(rng);
            attestation.to_wire_bytes()
        }
    }
}
