//! Parameters of the RPC: positional parameters parsed in Ethereum's conventions (0x-hex
//! quantities and data), errors that name the parameter, and the error codes.

use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde_json::Value;
use tandem_proto::{Address, B256, L2TipId, L2Tips};

/// JSON-RPC "invalid params".
pub(crate) const INVALID_PARAMS: i32 = -32602;
/// EIP-1474 "resource not found".
pub(crate) const NOT_FOUND: i32 = -32001;
/// EIP-1474 "resource unavailable": the node is still starting.
pub(crate) const UNAVAILABLE: i32 = -32002;
/// EIP-1474 "transaction rejected".
pub(crate) const TX_REJECTED: i32 = -32003;
/// JSON-RPC "internal error".
pub(crate) const INTERNAL: i32 = -32603;

/// An error with `code` and `message`.
pub(crate) fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

/// "invalid params: `name`: `problem`".
pub(crate) fn bad_param(name: &str, problem: impl std::fmt::Display) -> ErrorObjectOwned {
    error(INVALID_PARAMS, format!("invalid params: {name}: {problem}"))
}

/// `0x`-hex of a quantity (no leading zeros).
pub(crate) fn quantity(value: impl Into<u128>) -> String {
    format!("{:#x}", value.into())
}

/// Positional parameters, each taken by name (for the error) in order.
pub(crate) struct Positional {
    values: Vec<Value>,
    expected: &'static [&'static str],
}

impl Positional {
    /// Splits `params` into at most `expected.len()` positional values.
    pub(crate) fn new(
        params: &Params<'_>,
        expected: &'static [&'static str],
    ) -> Result<Self, ErrorObjectOwned> {
        let values: Vec<Value> = if params.is_object() {
            return Err(error(
                INVALID_PARAMS,
                format!(
                    "invalid params: expected a positional array [{}]",
                    expected.join(", ")
                ),
            ));
        } else {
            params
                .parse::<Option<Vec<Value>>>()
                .map_err(|_| {
                    error(
                        INVALID_PARAMS,
                        format!(
                            "invalid params: expected an array [{}]",
                            expected.join(", ")
                        ),
                    )
                })?
                .unwrap_or_default()
        };
        if values.len() > expected.len() {
            return Err(error(
                INVALID_PARAMS,
                format!(
                    "invalid params: {} given, at most {} expected ([{}])",
                    values.len(),
                    expected.len(),
                    expected.join(", ")
                ),
            ));
        }
        Ok(Self { values, expected })
    }

    /// Parameter `index`, if given (and not null).
    pub(crate) fn optional(&self, index: usize) -> Option<(&'static str, &Value)> {
        self.values
            .get(index)
            .filter(|value| !value.is_null())
            .map(|value| (self.expected[index], value))
    }

    /// Parameter `index`; missing is an error naming it.
    pub(crate) fn required(
        &self,
        index: usize,
    ) -> Result<(&'static str, &Value), ErrorObjectOwned> {
        self.optional(index)
            .ok_or_else(|| bad_param(self.expected[index], "missing"))
    }
}

fn as_str<'a>(name: &str, value: &'a Value) -> Result<&'a str, ErrorObjectOwned> {
    value
        .as_str()
        .ok_or_else(|| bad_param(name, format!("expected a 0x-hex string, got {value}")))
}

fn hex_digits<'a>(name: &str, text: &'a str) -> Result<&'a str, ErrorObjectOwned> {
    text.strip_prefix("0x")
        .ok_or_else(|| bad_param(name, format!("{text:?} lacks the 0x prefix")))
}

/// A 0x-hex quantity (`0x0`, `0x1f`; no leading zeros beyond `0x0`).
pub(crate) fn parse_quantity(name: &str, value: &Value) -> Result<u64, ErrorObjectOwned> {
    let text = as_str(name, value)?;
    let digits = hex_digits(name, text)?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return Err(bad_param(
            name,
            format!("{text:?} is not a 0x-hex quantity (no leading zeros, at least one digit)"),
        ));
    }
    // Checked first: `from_str_radix` would take a leading `+`.
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(bad_param(
            name,
            format!("{text:?} is not a 0x-hex quantity ({bad:?} is not a hex digit)"),
        ));
    }
    u64::from_str_radix(digits, 16).map_err(|_| {
        bad_param(
            name,
            format!("{text:?} is not a 0x-hex quantity below 2^64"),
        )
    })
}

/// 0x-hex data of any length.
pub(crate) fn parse_data(name: &str, value: &Value) -> Result<Vec<u8>, ErrorObjectOwned> {
    let text = as_str(name, value)?;
    let digits = hex_digits(name, text)?;
    alloy::hex::decode(digits).map_err(|err| bad_param(name, format!("{text:?} is not hex: {err}")))
}

/// A 32-byte 0x-hex hash.
pub(crate) fn parse_hash(name: &str, value: &Value) -> Result<B256, ErrorObjectOwned> {
    let bytes = parse_data(name, value)?;
    B256::try_from(bytes.as_slice())
        .map_err(|_| bad_param(name, format!("expected 32 bytes, got {}", bytes.len())))
}

/// A 20-byte 0x-hex address.
pub(crate) fn parse_address(name: &str, value: &Value) -> Result<Address, ErrorObjectOwned> {
    let bytes = parse_data(name, value)?;
    Address::try_from(bytes.as_slice())
        .map_err(|_| bad_param(name, format!("expected 20 bytes, got {}", bytes.len())))
}

/// A boolean.
pub(crate) fn parse_bool(name: &str, value: &Value) -> Result<bool, ErrorObjectOwned> {
    value
        .as_bool()
        .ok_or_else(|| bad_param(name, format!("expected true or false, got {value}")))
}

/// Which of the chain tips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tip {
    Proposed,
    ProposedCheckpoint,
    Checkpointed,
    Finalized,
}

impl Tip {
    pub(crate) const NAMES: &'static str =
        "\"proposed\", \"proposedCheckpoint\", \"checkpointed\" or \"finalized\"";

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "proposed" | "latest" => Some(Self::Proposed),
            "proposedCheckpoint" => Some(Self::ProposedCheckpoint),
            "checkpointed" => Some(Self::Checkpointed),
            "finalized" => Some(Self::Finalized),
            _ => None,
        }
    }

    pub(crate) const fn of(self, tips: &L2Tips) -> L2TipId {
        match self {
            Self::Proposed => tips.proposed,
            Self::ProposedCheckpoint => tips.proposed_checkpoint,
            Self::Checkpointed => tips.checkpointed,
            Self::Finalized => tips.finalized,
        }
    }
}

/// A tip name.
pub(crate) fn parse_tip(name: &str, value: &Value) -> Result<Tip, ErrorObjectOwned> {
    value.as_str().and_then(Tip::from_name).ok_or_else(|| {
        bad_param(
            name,
            format!("{value} is not a tip: expected {}", Tip::NAMES),
        )
    })
}

/// A block: by number, by hash, or a tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockRef {
    Number(u64),
    Hash(B256),
    Tip(Tip),
}

/// A block number (0x-hex), a 32-byte block hash, or a tip name.
pub(crate) fn parse_block_ref(name: &str, value: &Value) -> Result<BlockRef, ErrorObjectOwned> {
    let text = value.as_str().ok_or_else(|| {
        bad_param(
            name,
            format!("expected a 0x-hex block number, a block hash or a tip name, got {value}"),
        )
    })?;
    if let Some(tip) = Tip::from_name(text) {
        return Ok(BlockRef::Tip(tip));
    }
    let digits = text.strip_prefix("0x").ok_or_else(|| {
        bad_param(
            name,
            format!(
                "{text:?} is neither a 0x-hex block number, a block hash nor a tip ({})",
                Tip::NAMES
            ),
        )
    })?;
    if digits.len() == 64 {
        return parse_hash(name, value).map(BlockRef::Hash);
    }
    parse_quantity(name, value)
        .map(BlockRef::Number)
        .map_err(|_| {
            bad_param(
                name,
                format!("{text:?} is neither a 0x-hex block number nor a 32-byte hash"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_ethereum_rules_and_errors_name_the_parameter() {
        let v = |s: &str| Value::String(s.into());
        assert_eq!(parse_quantity("block", &v("0x0")).unwrap(), 0);
        assert_eq!(parse_quantity("block", &v("0x1f")).unwrap(), 31);
        for (input, problem) in [
            (
                "0x",
                "\"0x\" is not a 0x-hex quantity (no leading zeros, at least one digit)",
            ),
            (
                "0x01",
                "\"0x01\" is not a 0x-hex quantity (no leading zeros, at least one digit)",
            ),
            ("12", "\"12\" lacks the 0x prefix"),
            (
                "0xzz",
                "\"0xzz\" is not a 0x-hex quantity ('z' is not a hex digit)",
            ),
            (
                "0x+1f",
                "\"0x+1f\" is not a 0x-hex quantity ('+' is not a hex digit)",
            ),
            (
                "0x10000000000000000",
                "\"0x10000000000000000\" is not a 0x-hex quantity below 2^64",
            ),
        ] {
            assert_eq!(
                parse_quantity("block", &v(input)).unwrap_err().message(),
                format!("invalid params: block: {problem}")
            );
        }
        assert_eq!(
            parse_address("address", &v("0x1234"))
                .unwrap_err()
                .message(),
            "invalid params: address: expected 20 bytes, got 2"
        );
        assert_eq!(
            parse_block_ref("block", &v("checkpointed")).unwrap(),
            BlockRef::Tip(Tip::Checkpointed)
        );
        assert_eq!(
            parse_block_ref("block", &Value::from(5))
                .unwrap_err()
                .message(),
            "invalid params: block: expected a 0x-hex block number, a block hash or a tip name, got 5"
        );
        assert_eq!(quantity(255u64), "0xff");
        assert_eq!(quantity(0u64), "0x0");
    }
}
