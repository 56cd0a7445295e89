//! Duties: what one signature of this node is for, and how a duty is keyed in the record.

use tandem_proto::{Address, time::Slot};

/// One signing duty of a validator key. Each duty may be signed over one digest only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Duty {
    /// A block proposal: one per (slot, index of the block within the slot's checkpoint).
    BlockProposal {
        /// The block's (target) slot.
        slot: Slot,
        /// Position of the block inside its checkpoint.
        index: u32,
    },
    /// A checkpoint proposal: one per slot.
    CheckpointProposal {
        /// The checkpoint's (target) slot.
        slot: Slot,
    },
    /// An attestation: one per slot, never for a slot before one already attested.
    Attestation {
        /// The attested checkpoint's slot.
        slot: Slot,
    },
}

/// Bytes of a record key: signer (20) ‖ kind (1) ‖ slot (8, big-endian) ‖ index (4, big-endian).
pub(crate) const KEY_LENGTH: usize = 33;

const KIND_BLOCK_PROPOSAL: u8 = 1;
const KIND_CHECKPOINT_PROPOSAL: u8 = 2;
const KIND_ATTESTATION: u8 = 3;

impl Duty {
    /// The slot the duty is for.
    pub const fn slot(&self) -> Slot {
        match *self {
            Self::BlockProposal { slot, .. }
            | Self::CheckpointProposal { slot }
            | Self::Attestation { slot } => slot,
        }
    }

    /// The metric label of the duty's kind.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::BlockProposal { .. } => "block_proposal",
            Self::CheckpointProposal { .. } => "checkpoint_proposal",
            Self::Attestation { .. } => "attestation",
        }
    }

    const fn kind_byte(&self) -> u8 {
        match self {
            Self::BlockProposal { .. } => KIND_BLOCK_PROPOSAL,
            Self::CheckpointProposal { .. } => KIND_CHECKPOINT_PROPOSAL,
            Self::Attestation { .. } => KIND_ATTESTATION,
        }
    }

    const fn index(&self) -> u32 {
        match *self {
            Self::BlockProposal { index, .. } => index,
            Self::CheckpointProposal { .. } | Self::Attestation { .. } => 0,
        }
    }

    /// The record key of this duty for `signer`. Keys of one signer and kind sort by slot, so
    /// the latest attestation is one reverse seek away.
    pub(crate) fn key(&self, signer: Address) -> [u8; KEY_LENGTH] {
        let mut key = [0u8; KEY_LENGTH];
        key[..20].copy_from_slice(signer.as_slice());
        key[20] = self.kind_byte();
        key[21..29].copy_from_slice(&self.slot().0.to_be_bytes());
        key[29..].copy_from_slice(&self.index().to_be_bytes());
        key
    }

    /// Decodes a record key into its signer and duty; `None` for bytes no key was made of.
    pub(crate) fn from_key(key: &[u8]) -> Option<(Address, Self)> {
        let key: &[u8; KEY_LENGTH] = key.try_into().ok()?;
        let signer = Address::from_slice(&key[..20]);
        let slot = Slot(u64::from_be_bytes(key[21..29].try_into().ok()?));
        let index = u32::from_be_bytes(key[29..].try_into().ok()?);
        let duty = match (key[20], index) {
            (KIND_BLOCK_PROPOSAL, index) => Self::BlockProposal { slot, index },
            (KIND_CHECKPOINT_PROPOSAL, 0) => Self::CheckpointProposal { slot },
            (KIND_ATTESTATION, 0) => Self::Attestation { slot },
            _ => return None,
        };
        Some((signer, duty))
    }
}

impl std::fmt::Display for Duty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BlockProposal { slot, index } => {
                write!(f, "block proposal of slot {slot}, index {index}")
            }
            Self::CheckpointProposal { slot } => write!(f, "checkpoint proposal of slot {slot}"),
            Self::Attestation { slot } => write!(f, "attestation of slot {slot}"),
        }
    }
}

/// The highest attestation key `signer` could have: the upper bound of a reverse seek.
pub(crate) fn last_attestation_key(signer: Address) -> [u8; KEY_LENGTH] {
    Duty::Attestation {
        slot: Slot(u64::MAX),
    }
    .key(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_slot() {
        let signer = Address::repeat_byte(7);
        let duties = [
            Duty::BlockProposal {
                slot: Slot(3),
                index: 9,
            },
            Duty::CheckpointProposal {
                slot: Slot(u64::MAX),
            },
            Duty::Attestation { slot: Slot(0) },
        ];
        for duty in duties {
            assert_eq!(Duty::from_key(&duty.key(signer)), Some((signer, duty)));
        }
        let early = Duty::Attestation { slot: Slot(255) }.key(signer);
        let late = Duty::Attestation { slot: Slot(256) }.key(signer);
        assert!(early < late);
        assert!(late < last_attestation_key(signer));
        // A non-zero index only exists for block proposals.
        let mut bad = Duty::Attestation { slot: Slot(1) }.key(signer);
        bad[32] = 1;
        assert_eq!(Duty::from_key(&bad), None);
        assert_eq!(Duty::from_key(&bad[1..]), None);
    }
}
