//! Storage slots of the Rollup contract and the state overrides that let a pipelined proposer
//! simulate checkpoint K while its parent (and possibly grandparent) are only proposed.
//!
//! Layout (`contracts/Rollup.sol`, checked against solc's `storageLayout` by a test):
//! slot 0 `tips` = checkpointed << 128 | proven; slot 1 `archives[n]` at
//! `keccak256(abi.encode(n, 1))`; slot 2 `logs[n]` at `keccak256(abi.encode(n, 2))` with
//! words +0 header hash, +1 slot, +2 fee header.

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    rpc::types::state::{AccountOverride, StateOverride},
    sol_types::SolValue,
};

use crate::{
    fees::{FeeError, FeeHeader, FeeParams},
    reader::SimulationBase,
};

/// Storage slot of the tips word.
pub const TIPS_SLOT: u64 = 0;
/// Storage slot of the `archives` mapping.
pub const ARCHIVES_SLOT: u64 = 1;
/// Storage slot of the `logs` mapping.
pub const LOGS_SLOT: u64 = 2;
/// Offset of the header hash inside a log entry.
pub const LOG_HEADER_HASH_OFFSET: u64 = 0;
/// Offset of the slot number inside a log entry.
pub const LOG_SLOT_OFFSET: u64 = 1;
/// Offset of the fee header inside a log entry.
pub const LOG_FEE_HEADER_OFFSET: u64 = 2;

fn mapping_slot(key: u64, mapping: u64) -> U256 {
    U256::from_be_bytes(keccak256((U256::from(key), U256::from(mapping)).abi_encode()).0)
}

/// Slot of `archives[checkpoint]`.
pub fn archive_slot(checkpoint: u64) -> B256 {
    B256::from(mapping_slot(checkpoint, ARCHIVES_SLOT))
}

/// Slot of word `offset` of `logs[checkpoint]`.
pub fn log_slot(checkpoint: u64, offset: u64) -> B256 {
    B256::from(mapping_slot(checkpoint, LOGS_SLOT) + U256::from(offset))
}

/// The tips word for the given checkpointed and proven numbers.
pub fn tips_word(checkpointed: u64, proven: u64) -> B256 {
    B256::from((U256::from(checkpointed) << 128) | U256::from(proven))
}

/// A checkpoint that was gossiped and validated but is not on L1 yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProposedParent {
    /// Checkpoint number.
    pub number: u64,
    /// Archive root after its last block.
    pub archive: B256,
    /// Its header hash.
    pub header_hash: B256,
    /// Its slot.
    pub slot: u64,
    /// Mana its blocks used.
    pub mana_used: u64,
    /// Its fee-asset price modifier.
    pub fee_asset_price_modifier: i64,
}

/// Why a simulation plan cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Proposed checkpoints must follow the L1 tip without gaps.
    #[error("proposed checkpoint {got} does not follow {expected_after}")]
    NotSequential {
        /// The number it should follow.
        expected_after: u64,
        /// Its number.
        got: u64,
    },
    /// A proposed checkpoint's fee header cannot be derived.
    #[error("fee header of proposed checkpoint {number}: {source}")]
    Fee {
        /// Its number.
        number: u64,
        /// Why.
        source: FeeError,
    },
}

/// What L1 will look like once the proposed checkpoints between the L1 tip and the checkpoint
/// being built have landed. Empty when building directly on the L1 tip (no overrides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationPlan {
    next_checkpoint: u64,
    diff: Vec<(B256, B256)>,
    parent_fee_header: FeeHeader,
}

impl SimulationPlan {
    /// Builds the plan from the L1 tip (numbers and the tip's fee header, read from L1) and the
    /// proposed checkpoints above it, lowest first. Each proposed checkpoint's fee header is
    /// derived from its parent's with the contract's formula, so depth-2 pipelines work too.
    pub fn new(
        l1_checkpointed: u64,
        l1_proven: u64,
        l1_tip_fee_header: FeeHeader,
        proposed: &[ProposedParent],
        fees: &FeeParams,
    ) -> Result<Self, PlanError> {
        let mut diff = Vec::new();
        let mut fee_header = l1_tip_fee_header;
        let mut previous = l1_checkpointed;
        for parent in proposed {
            if Some(parent.number) != previous.checked_add(1) {
                return Err(PlanError::NotSequential {
                    expected_after: previous,
                    got: parent.number,
                });
            }
            fee_header = fees
                .child_fee_header(
                    &fee_header,
                    parent.mana_used,
                    parent.fee_asset_price_modifier,
                )
                .map_err(|source| PlanError::Fee {
                    number: parent.number,
                    source,
                })?;
            diff.push((archive_slot(parent.number), parent.archive));
            diff.push((
                log_slot(parent.number, LOG_HEADER_HASH_OFFSET),
                parent.header_hash,
            ));
            diff.push((
                log_slot(parent.number, LOG_SLOT_OFFSET),
                B256::from(U256::from(parent.slot)),
            ));
            diff.push((
                log_slot(parent.number, LOG_FEE_HEADER_OFFSET),
                B256::from(fee_header.pack()),
            ));
            previous = parent.number;
        }
        if previous != l1_checkpointed {
            // The proven half is kept: the contract never reads it yet, and it must not exceed
            // the checkpointed half once proofs exist.
            diff.push((
                B256::from(U256::from(TIPS_SLOT)),
                tips_word(previous, l1_proven),
            ));
        }
        Ok(Self {
            next_checkpoint: previous.saturating_add(1),
            diff,
            parent_fee_header: fee_header,
        })
    }

    /// [`SimulationPlan::new`] from an L1 state read at one block
    /// ([`crate::L1Reader::simulation_base`]), so tips and the tip's fee header agree.
    pub fn from_base(
        base: &SimulationBase,
        proposed: &[ProposedParent],
        fees: &FeeParams,
    ) -> Result<Self, PlanError> {
        Self::new(
            base.checkpointed,
            base.proven,
            base.tip_fee_header,
            proposed,
            fees,
        )
    }

    /// The checkpoint this plan lets one simulate.
    pub const fn next_checkpoint_number(&self) -> u64 {
        self.next_checkpoint
    }

    /// Fee header of the checkpoint being built upon: its min fee per mana derives from it.
    pub const fn parent_fee_header(&self) -> FeeHeader {
        self.parent_fee_header
    }

    /// Whether the plan changes nothing (building on the L1 tip).
    pub fn is_empty(&self) -> bool {
        self.diff.is_empty()
    }

    /// The `(slot, value)` pairs written on the rollup.
    pub fn storage_diff(&self) -> &[(B256, B256)] {
        &self.diff
    }

    /// The state override for `eth_call` / `eth_estimateGas` / `eth_simulateV1`.
    pub fn state_override(&self, rollup: Address) -> StateOverride {
        let mut overrides = StateOverride::default();
        if !self.diff.is_empty() {
            overrides.insert(
                rollup,
                AccountOverride::default().with_state_diff(self.diff.iter().copied()),
            );
        }
        overrides
    }
}

/// Merges `other` into `into`: storage diffs on the same address are combined (a slot set by
/// both takes `other`'s value); balance, nonce and code from `other` win when set. A full `state`
/// replacement in `other` replaces the account's storage, dropping earlier diffs.
pub fn merge_overrides(into: &mut StateOverride, other: StateOverride) {
    for (address, incoming) in other {
        let entry = into.entry(address).or_default();
        if incoming.balance.is_some() {
            entry.balance = incoming.balance;
        }
        if incoming.nonce.is_some() {
            entry.nonce = incoming.nonce;
        }
        if incoming.code.is_some() {
            entry.code = incoming.code;
        }
        if let Some(state) = incoming.state {
            entry.state = Some(state);
            entry.state_diff = None;
        }
        if let Some(diff) = incoming.state_diff {
            match (&mut entry.state, &mut entry.state_diff) {
                (Some(state), _) => state.extend(diff),
                (None, Some(existing)) => existing.extend(diff),
                (None, None) => entry.state_diff = Some(diff),
            }
        }
        if incoming.move_precompile_to.is_some() {
            entry.move_precompile_to = incoming.move_precompile_to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fees() -> FeeParams {
        FeeParams {
            mana_target: 100,
            min_fee_per_mana: 10,
            fee_update_fraction: 1_000,
        }
    }

    fn parent(number: u64) -> ProposedParent {
        ProposedParent {
            number,
            archive: B256::repeat_byte(number as u8),
            header_hash: B256::repeat_byte(0x40 + number as u8),
            slot: 10 + number,
            mana_used: 150,
            fee_asset_price_modifier: 0,
        }
    }

    #[test]
    fn empty_plan_overrides_nothing() {
        let tip_fee = FeeHeader {
            mana_used: 1,
            excess_mana: 2,
            eth_per_fee_asset: 3,
        };
        let plan = SimulationPlan::new(5, 0, tip_fee, &[], &fees()).unwrap();
        assert!(plan.is_empty());
        assert!(plan.state_override(Address::ZERO).is_empty());
        assert_eq!(plan.parent_fee_header(), tip_fee);
        assert_eq!(plan.next_checkpoint_number(), 6);
    }

    #[test]
    fn depth_two_plan_chains_fee_headers() {
        let tip_fee = FeeHeader {
            mana_used: 0,
            excess_mana: 0,
            eth_per_fee_asset: 1_000_000_000_000,
        };
        let plan = SimulationPlan::new(5, 0, tip_fee, &[parent(6), parent(7)], &fees()).unwrap();
        assert_eq!(plan.next_checkpoint_number(), 8);
        let first = fees().child_fee_header(&tip_fee, 150, 0).unwrap();
        let second = fees().child_fee_header(&first, 150, 0).unwrap();
        assert_eq!(plan.parent_fee_header(), second);
        assert_eq!(second.excess_mana, 50);
        let diff = plan.storage_diff();
        assert!(diff.contains(&(B256::ZERO, tips_word(7, 0))));
        assert!(diff.contains(&(archive_slot(7), B256::repeat_byte(7))));
        assert!(diff.contains(&(log_slot(6, LOG_FEE_HEADER_OFFSET), B256::from(first.pack()))));
    }

    #[test]
    fn gaps_are_refused() {
        let err =
            SimulationPlan::new(5, 0, FeeHeader::default(), &[parent(7)], &fees()).unwrap_err();
        assert_eq!(
            err,
            PlanError::NotSequential {
                expected_after: 5,
                got: 7
            }
        );
    }

    #[test]
    fn merge_combines_diffs_and_later_values_win() {
        let a = Address::repeat_byte(1);
        let mut into = StateOverride::default();
        into.insert(
            a,
            AccountOverride::default().with_state_diff([(B256::ZERO, B256::repeat_byte(1))]),
        );
        let mut other = StateOverride::default();
        other.insert(
            a,
            AccountOverride::default()
                .with_state_diff([
                    (B256::ZERO, B256::repeat_byte(2)),
                    (B256::repeat_byte(9), B256::repeat_byte(3)),
                ])
                .with_balance(U256::from(10)),
        );
        other.insert(
            Address::repeat_byte(2),
            AccountOverride::default().with_balance(U256::from(1)),
        );
        merge_overrides(&mut into, other);
        let merged = &into[&a];
        let diff = merged.state_diff.as_ref().unwrap();
        assert_eq!(diff[&B256::ZERO], B256::repeat_byte(2));
        assert_eq!(diff[&B256::repeat_byte(9)], B256::repeat_byte(3));
        assert_eq!(merged.balance, Some(U256::from(10)));
        assert_eq!(into.len(), 2);
    }
}
