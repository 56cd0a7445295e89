//! Chain tips and their invariants.

use alloy_primitives::B256;

/// A block by number and hash.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct BlockId {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
}

/// A checkpoint by number and header hash.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct CheckpointId {
    /// Checkpoint number.
    pub number: u64,
    /// Checkpoint header hash.
    pub hash: B256,
}

/// One chain tip: a block and the checkpoint it belongs to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct L2TipId {
    /// The tip block.
    pub block: BlockId,
    /// The checkpoint of the tip block.
    pub checkpoint: CheckpointId,
}

/// The node's view of the chain, from the most speculative tip to the most final.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct L2Tips {
    /// Latest block in the local store.
    pub proposed: L2TipId,
    /// Last block of the highest proposed checkpoint; equals `checkpointed` when there is none.
    pub proposed_checkpoint: L2TipId,
    /// Last block of the latest checkpoint on L1.
    pub checkpointed: L2TipId,
    /// Last block of the latest checkpoint in a finalized L1 block.
    pub finalized: L2TipId,
}

/// A broken ordering between two tips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tip invariant violated: {higher} {what} {higher_value} < {lower} {what} {lower_value}")]
pub struct TipsInvariantError {
    /// The tip that should be at least as high.
    pub higher: &'static str,
    /// The tip that should not be above it.
    pub lower: &'static str,
    /// "block" or "checkpoint".
    pub what: &'static str,
    /// Number of the higher tip.
    pub higher_value: u64,
    /// Number of the lower tip.
    pub lower_value: u64,
}

impl L2Tips {
    /// All tips at genesis.
    pub const fn genesis(genesis: L2TipId) -> Self {
        Self {
            proposed: genesis,
            proposed_checkpoint: genesis,
            checkpointed: genesis,
            finalized: genesis,
        }
    }

    /// Whether a checkpoint is proposed (gossiped and validated) but not yet on L1.
    pub const fn has_proposed_checkpoint(&self) -> bool {
        self.proposed_checkpoint.checkpoint.number > self.checkpointed.checkpoint.number
    }

    /// Checks `proposed ≥ proposed_checkpoint ≥ checkpointed ≥ finalized`, on block numbers and
    /// on checkpoint numbers.
    pub fn check_invariants(&self) -> Result<(), TipsInvariantError> {
        let ordered = [
            ("proposed", &self.proposed),
            ("proposed_checkpoint", &self.proposed_checkpoint),
            ("checkpointed", &self.checkpointed),
            ("finalized", &self.finalized),
        ];
        for pair in ordered.windows(2) {
            let (higher, high) = pair[0];
            let (lower, low) = pair[1];
            if high.block.number < low.block.number {
                return Err(TipsInvariantError {
                    higher,
                    lower,
                    what: "block",
                    higher_value: high.block.number,
                    lower_value: low.block.number,
                });
            }
            if high.checkpoint.number < low.checkpoint.number {
                return Err(TipsInvariantError {
                    higher,
                    lower,
                    what: "checkpoint",
                    higher_value: high.checkpoint.number,
                    lower_value: low.checkpoint.number,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip(block: u64, checkpoint: u64) -> L2TipId {
        L2TipId {
            block: BlockId {
                number: block,
                hash: B256::with_last_byte(block as u8),
            },
            checkpoint: CheckpointId {
                number: checkpoint,
                hash: B256::with_last_byte(checkpoint as u8),
            },
        }
    }

    #[test]
    fn ordered_tips_pass_and_each_inversion_is_named() {
        let tips = L2Tips {
            proposed: tip(12, 4),
            proposed_checkpoint: tip(10, 3),
            checkpointed: tip(7, 2),
            finalized: tip(3, 1),
        };
        assert_eq!(tips.check_invariants(), Ok(()));
        assert!(tips.has_proposed_checkpoint());

        let inverted = L2Tips {
            checkpointed: tip(11, 2),
            ..tips
        };
        let err = inverted.check_invariants().unwrap_err();
        assert_eq!(
            (err.higher, err.lower, err.what),
            ("proposed_checkpoint", "checkpointed", "block")
        );

        let inverted = L2Tips {
            finalized: tip(3, 5),
            ..tips
        };
        let err = inverted.check_invariants().unwrap_err();
        assert_eq!(
            (err.higher, err.lower, err.what),
            ("checkpointed", "finalized", "checkpoint")
        );
        assert!(!L2Tips::genesis(tip(0, 0)).has_proposed_checkpoint());
    }
}
