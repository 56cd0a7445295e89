//! JSON shapes of the RPC (Ethereum's conventions: 0x-hex quantities and data, camelCase keys)
//! and the parsing of positional parameters, whose errors name the parameter.

use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde::Serialize;
use serde_json::Value;
use tandem_archiver::{CheckpointRecord, ProposedCheckpoint, StoredBlock};
use tandem_proto::{Address, B256, L2TipId, L2Tips, SigningDomain, Tx};

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IdJson {
    number: String,
    hash: B256,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TipJson {
    block: IdJson,
    checkpoint: IdJson,
}

impl From<L2TipId> for TipJson {
    fn from(tip: L2TipId) -> Self {
        Self {
            block: IdJson {
                number: quantity(tip.block.number),
                hash: tip.block.hash,
            },
            checkpoint: IdJson {
                number: quantity(tip.checkpoint.number),
                hash: tip.checkpoint.hash,
            },
        }
    }
}

/// `tandem_getL2Tips` and the tips subscription.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TipsJson {
    proposed: TipJson,
    proposed_checkpoint: TipJson,
    checkpointed: TipJson,
    finalized: TipJson,
}

impl From<L2Tips> for TipsJson {
    fn from(tips: L2Tips) -> Self {
        Self {
            proposed: tips.proposed.into(),
            proposed_checkpoint: tips.proposed_checkpoint.into(),
            checkpointed: tips.checkpointed.into(),
            finalized: tips.finalized.into(),
        }
    }
}

/// Where a block or tx stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Status {
    Pending,
    Proposed,
    Checkpointed,
    Finalized,
}

impl Status {
    /// The status of block `number` under `tips`.
    pub(crate) const fn of_block(number: u64, tips: &L2Tips) -> Self {
        if number <= tips.finalized.block.number {
            Self::Finalized
        } else if number <= tips.checkpointed.block.number {
            Self::Checkpointed
        } else {
            Self::Proposed
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TxJson {
    hash: B256,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<Address>,
    to: Address,
    nonce: String,
    amount: String,
    max_fee_per_mana: String,
    mana_limit: String,
    chain_id: String,
}

impl TxJson {
    pub(crate) fn new(tx: &Tx, domain: &SigningDomain) -> Self {
        let payload = &tx.payload;
        Self {
            hash: tx.hash(),
            from: tx.recover_sender(domain).ok(),
            to: payload.to,
            nonce: quantity(payload.nonce),
            amount: quantity(payload.amount),
            max_fee_per_mana: quantity(payload.max_fee_per_mana),
            mana_limit: quantity(payload.mana_limit),
            chain_id: quantity(payload.chain_id),
        }
    }
}

/// `tandem_getTx`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TxStatusJson {
    pub(crate) status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) block: Option<IdJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) index: Option<String>,
    pub(crate) tx: TxJson,
}

impl TxStatusJson {
    pub(crate) fn in_block(
        status: Status,
        block: tandem_proto::BlockId,
        index: u32,
        tx: TxJson,
    ) -> Self {
        Self {
            status,
            block: Some(IdJson {
                number: quantity(block.number),
                hash: block.hash,
            }),
            index: Some(quantity(index)),
            tx,
        }
    }
}

/// The txs of a block: hashes, or whole txs.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum BlockTxs {
    Hashes(Vec<B256>),
    Full(Vec<TxJson>),
}

/// `tandem_getBlock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockJson {
    number: String,
    hash: B256,
    status: Status,
    archive_root: B256,
    parent_archive_root: B256,
    state_root: B256,
    body_hash: B256,
    checkpoint_number: String,
    index_within_checkpoint: String,
    slot: String,
    timestamp: String,
    coinbase: Address,
    fee_recipient: Address,
    fee_per_mana: String,
    total_mana_used: String,
    total_fees: String,
    tx_count: String,
    txs: BlockTxs,
}

impl BlockJson {
    pub(crate) fn new(
        stored: &StoredBlock,
        tips: &L2Tips,
        full_txs: bool,
        domain: &SigningDomain,
    ) -> Self {
        let header = &stored.block.header;
        let txs = &stored.block.txs;
        Self {
            number: quantity(header.block_number),
            hash: header.hash(),
            status: Status::of_block(header.block_number, tips),
            archive_root: stored.archive_root,
            parent_archive_root: header.last_archive_root,
            state_root: header.state_root,
            body_hash: header.body_hash,
            checkpoint_number: quantity(header.checkpoint_number),
            index_within_checkpoint: quantity(header.index_within_checkpoint),
            slot: quantity(header.slot),
            timestamp: quantity(header.timestamp),
            coinbase: header.coinbase,
            fee_recipient: header.fee_recipient,
            fee_per_mana: quantity(header.fee_per_mana),
            total_mana_used: quantity(header.total_mana_used),
            total_fees: quantity(header.total_fees),
            tx_count: quantity(txs.len() as u64),
            txs: if full_txs {
                BlockTxs::Full(txs.iter().map(|tx| TxJson::new(tx, domain)).collect())
            } else {
                BlockTxs::Hashes(txs.iter().map(Tx::hash).collect())
            },
        }
    }
}

/// `tandem_getCheckpoint`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckpointJson {
    number: String,
    /// `proposed` (validated over gossip, not on L1), `checkpointed` or `finalized`.
    status: Status,
    header_hash: B256,
    archive: B256,
    slot: String,
    start_block: String,
    block_count: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    l1_block: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    l1_block_hash: Option<B256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    l1_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attestations: Option<String>,
}

impl CheckpointJson {
    pub(crate) fn checkpointed(record: &CheckpointRecord, tips: &L2Tips) -> Self {
        let status = if record.number <= tips.finalized.checkpoint.number {
            Status::Finalized
        } else {
            Status::Checkpointed
        };
        Self {
            number: quantity(record.number),
            status,
            header_hash: record.payload.header.hash(),
            archive: record.payload.archive,
            slot: quantity(record.payload.header.slot),
            start_block: quantity(record.start_block),
            block_count: quantity(record.block_count),
            l1_block: Some(quantity(record.l1.number)),
            l1_block_hash: Some(record.l1.hash),
            l1_timestamp: Some(quantity(record.l1.timestamp)),
            attestations: Some(quantity(record.attestations.len() as u64)),
        }
    }

    pub(crate) fn proposed(checkpoint: &ProposedCheckpoint) -> Self {
        Self {
            number: quantity(checkpoint.number),
            status: Status::Proposed,
            header_hash: checkpoint.payload.header.hash(),
            archive: checkpoint.payload.archive,
            slot: quantity(checkpoint.payload.header.slot),
            start_block: quantity(checkpoint.start_block),
            block_count: quantity(checkpoint.block_count),
            l1_block: None,
            l1_block_hash: None,
            l1_timestamp: None,
            attestations: None,
        }
    }
}

/// `tandem_getAccount`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccountJson {
    pub(crate) address: Address,
    pub(crate) balance: String,
    pub(crate) nonce: String,
    /// The block whose state this is.
    pub(crate) block: IdJson,
}

impl AccountJson {
    pub(crate) fn new(
        address: Address,
        account: tandem_state::Account,
        at: tandem_proto::BlockId,
    ) -> Self {
        Self {
            address,
            balance: quantity(account.balance),
            nonce: quantity(account.nonce),
            block: IdJson {
                number: quantity(at.number),
                hash: at.hash,
            },
        }
    }
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
