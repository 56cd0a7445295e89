//! JSON shapes of the RPC's answers (Ethereum's conventions: 0x-hex quantities and data,
//! camelCase keys).

use serde::Serialize;
use tandem_archiver::{CheckpointRecord, ProposedCheckpoint, StoredBlock};
use tandem_proto::{Address, B256, L2TipId, L2Tips, SigningDomain, Tx};

use super::{params::quantity, senders::SenderCache};

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
        Self::with_sender(tx, tx.recover_sender(domain).ok())
    }

    /// `tx` with its already recovered sender.
    pub(crate) fn with_sender(tx: &Tx, from: Option<Address>) -> Self {
        let payload = &tx.payload;
        Self {
            hash: tx.hash(),
            from,
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
        full_txs: Option<(&SenderCache, &SigningDomain)>,
    ) -> Self {
        let header = &stored.block.header;
        let txs = &stored.block.txs;
        let hash = header.hash();
        Self {
            number: quantity(header.block_number),
            hash,
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
            txs: match full_txs {
                Some((senders, domain)) => {
                    let senders = senders.of_block(hash, txs, domain);
                    BlockTxs::Full(
                        txs.iter()
                            .zip(senders.iter())
                            .map(|(tx, from)| TxJson::with_sender(tx, *from))
                            .collect(),
                    )
                }
                None => BlockTxs::Hashes(txs.iter().map(Tx::hash).collect()),
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
