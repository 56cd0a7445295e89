//! Who may propose and attest in a slot, as gossip validation needs it: a cheap, synchronous
//! lookup. The node backs it with an epoch cache filled from L1; gossip for a slot whose duty is
//! not known yet is ignored (not our peers' fault), never rejected.

use std::sync::Arc;

use tandem_proto::{Address, time::Slot};

/// The proposer and committee of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDuty {
    /// The slot's proposer; `None` when the committee is empty and anyone may propose (as L1's
    /// `getProposerAt` returning address zero).
    pub proposer: Option<Address>,
    /// The attesters, in L1's committee order.
    pub committee: Arc<[Address]>,
    /// Read before L1 fixed it (bootstrap epochs, or the next epoch in the first L1 slot of
    /// the current one): it may still change, so gossip that disagrees with it is ignored, not
    /// rejected (the sender may know a newer committee).
    pub provisional: bool,
}

impl SlotDuty {
    /// Attestations needed for L1 to accept a checkpoint: more than two thirds of the committee.
    pub fn quorum(&self) -> usize {
        self.committee.len() * 2 / 3 + 1
    }

    /// Whether `address` sits on the committee.
    pub fn is_member(&self, address: Address) -> bool {
        self.committee.contains(&address)
    }
}

/// Source of [`SlotDuty`]s, defined here (the consumer) so p2p can be tested without L1.
pub trait CommitteeSource: Send + Sync + 'static {
    /// The duty of `slot`, or `None` when it is not known (yet).
    fn duty(&self, slot: Slot) -> Option<SlotDuty>;
}

/// A fixed committee with a round-robin proposer (`members[slot mod n]`): for tests, benches and
/// single-operator networks whose validator set never changes.
#[derive(Debug, Clone)]
pub struct StaticCommittee {
    members: Arc<[Address]>,
}

impl StaticCommittee {
    /// A committee of `members`, in order.
    pub fn new(members: impl Into<Arc<[Address]>>) -> Self {
        Self {
            members: members.into(),
        }
    }
}

impl CommitteeSource for StaticCommittee {
    fn duty(&self, slot: Slot) -> Option<SlotDuty> {
        let size = u64::try_from(self.members.len()).ok()?;
        let proposer = slot
            .0
            .checked_rem(size)
            .and_then(|index| usize::try_from(index).ok())
            .map(|index| self.members[index]);
        Some(SlotDuty {
            proposer,
            committee: Arc::clone(&self.members),
            provisional: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_and_quorum() {
        let members: Vec<Address> = (1..=4u8).map(Address::repeat_byte).collect();
        let committee = StaticCommittee::new(members.clone());
        let duty = committee.duty(Slot(6)).unwrap();
        assert_eq!(duty.proposer, Some(members[2]));
        assert_eq!(duty.quorum(), 3);
        assert!(duty.is_member(members[0]));
        assert!(!duty.is_member(Address::ZERO));

        let empty = StaticCommittee::new(Vec::new()).duty(Slot(6)).unwrap();
        assert_eq!(empty.proposer, None);
        assert_eq!(empty.quorum(), 1);
    }
}
