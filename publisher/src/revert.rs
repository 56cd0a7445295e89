//! The rollup's refusals as the publisher reports them: the `sol!`-generated [`RollupError`]
//! (matched as `RollupError::InvalidArchive(e)`), with its variant name for metric labels and a
//! readable form for logs.

use alloy::sol_types::SolInterface;
use tandem_l1::RollupError;

/// The contract refused with one of its custom errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revert(RollupError);

impl Revert {
    /// The decoded error, to match on.
    pub const fn error(&self) -> &RollupError {
        &self.0
    }

    /// The decoded error.
    pub fn into_error(self) -> RollupError {
        self.0
    }

    /// The Solidity error's name, e.g. `InvalidArchive` (a bounded metric label).
    pub fn name(&self) -> &'static str {
        RollupError::name_by_selector(self.0.selector()).unwrap_or("Unknown")
    }
}

impl From<RollupError> for Revert {
    fn from(error: RollupError) -> Self {
        Self(error)
    }
}

impl std::fmt::Display for Revert {
    /// `InvalidArchive { expected: 0x…, got: 0x… }`: the generated enum's `Debug` without its
    /// outer `Variant(…)` wrapper.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let debug = format!("{:?}", self.0);
        let inner = debug
            .split_once('(')
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .unwrap_or(&debug);
        f.write_str(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{B256, U256};
    use tandem_l1::Rollup;

    #[test]
    fn names_and_display_come_from_the_contract_error() {
        let archive = Revert::from(RollupError::InvalidArchive(Rollup::InvalidArchive {
            expected: B256::ZERO,
            got: B256::repeat_byte(1),
        }));
        assert_eq!(archive.name(), "InvalidArchive");
        let shown = archive.to_string();
        assert!(
            shown.starts_with("InvalidArchive { expected: 0x0000"),
            "{shown}"
        );
        assert!(shown.ends_with("0101 }"), "{shown}");
        let coinbase = Revert::from(RollupError::InvalidCoinbase(Rollup::InvalidCoinbase {}));
        assert_eq!(coinbase.name(), "InvalidCoinbase");
        assert_eq!(coinbase.to_string(), "InvalidCoinbase");
        let before = Revert::from(RollupError::BeforeGenesis(Rollup::BeforeGenesis {
            timestamp: U256::from(1),
        }));
        assert_eq!(before.name(), "BeforeGenesis");
        assert!(
            matches!(before.error(), RollupError::BeforeGenesis(e) if e.timestamp == U256::from(1))
        );
    }
}
