//! The domain types' conversions to and from their generated prost messages.

use super::{
    MAX_BLOCKS_PER_CHECKPOINT, ProtoConvert, WireError,
    codec::{Fields, hashes_from_packed, hashes_to_packed, txs_from_packed, txs_to_packed},
    pb,
};
use crate::{
    block::{Block, BlockHeader},
    checkpoint::{
        Checkpoint, CheckpointHeader, ConsensusPayload, MAX_FEE_ASSET_PRICE_MODIFIER_BPS,
    },
    proposal::{BlockProposal, CheckpointAttestation, CheckpointProposal},
    tips::{BlockId, CheckpointId, L2TipId, L2Tips},
    tx::{Tx, TxPayload},
};

impl ProtoConvert for Tx {
    type Proto = pb::Tx;
    const MESSAGE: &'static str = "Tx";

    fn to_proto(&self) -> pb::Tx {
        let p = &self.payload;
        pb::Tx {
            chain_id: p.chain_id,
            nonce: p.nonce,
            to: p.to.to_vec(),
            amount: p.amount.to_be_bytes().to_vec(),
            max_fee_per_mana: p.max_fee_per_mana.to_be_bytes().to_vec(),
            mana_limit: p.mana_limit,
            signature: self.signature.as_bytes().to_vec(),
        }
    }

    fn from_proto(proto: pb::Tx) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            payload: TxPayload {
                chain_id: proto.chain_id,
                nonce: proto.nonce,
                to: f.address("to", &proto.to)?,
                amount: f.u128("amount", &proto.amount)?,
                max_fee_per_mana: f.u128("max_fee_per_mana", &proto.max_fee_per_mana)?,
                mana_limit: proto.mana_limit,
            },
            signature: f.signature("signature", &proto.signature)?,
        })
    }
}

impl ProtoConvert for BlockHeader {
    type Proto = pb::BlockHeader;
    const MESSAGE: &'static str = "BlockHeader";

    fn to_proto(&self) -> pb::BlockHeader {
        pb::BlockHeader {
            last_archive_root: self.last_archive_root.to_vec(),
            state_root: self.state_root.to_vec(),
            body_hash: self.body_hash.to_vec(),
            chain_id: self.chain_id,
            rollup_version: self.rollup_version,
            block_number: self.block_number,
            checkpoint_number: self.checkpoint_number,
            index_within_checkpoint: self.index_within_checkpoint,
            slot: self.slot,
            timestamp: self.timestamp,
            coinbase: self.coinbase.to_vec(),
            fee_recipient: self.fee_recipient.to_vec(),
            fee_per_mana: self.fee_per_mana.to_be_bytes().to_vec(),
            total_mana_used: self.total_mana_used,
            total_fees: self.total_fees.to_be_bytes().to_vec(),
        }
    }

    fn from_proto(proto: pb::BlockHeader) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            last_archive_root: f.b256("last_archive_root", &proto.last_archive_root)?,
            state_root: f.b256("state_root", &proto.state_root)?,
            body_hash: f.b256("body_hash", &proto.body_hash)?,
            chain_id: proto.chain_id,
            rollup_version: proto.rollup_version,
            block_number: proto.block_number,
            checkpoint_number: proto.checkpoint_number,
            index_within_checkpoint: proto.index_within_checkpoint,
            slot: proto.slot,
            timestamp: proto.timestamp,
            coinbase: f.address("coinbase", &proto.coinbase)?,
            fee_recipient: f.address("fee_recipient", &proto.fee_recipient)?,
            fee_per_mana: f.u128("fee_per_mana", &proto.fee_per_mana)?,
            total_mana_used: proto.total_mana_used,
            total_fees: f.u128("total_fees", &proto.total_fees)?,
        })
    }
}

impl ProtoConvert for Block {
    type Proto = pb::Block;
    const MESSAGE: &'static str = "Block";

    fn to_proto(&self) -> pb::Block {
        pb::Block {
            header: Some(self.header.to_proto()),
            txs_packed: txs_to_packed(&self.txs),
        }
    }

    fn from_proto(proto: pb::Block) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            header: BlockHeader::from_proto(f.required("header", proto.header)?)?,
            txs: txs_from_packed(&f, "txs_packed", &proto.txs_packed)?,
        })
    }
}

impl ProtoConvert for CheckpointHeader {
    type Proto = pb::CheckpointHeader;
    const MESSAGE: &'static str = "CheckpointHeader";

    fn to_proto(&self) -> pb::CheckpointHeader {
        pb::CheckpointHeader {
            last_archive_root: self.last_archive_root.to_vec(),
            block_headers_hash: self.block_headers_hash.to_vec(),
            body_hash: self.body_hash.to_vec(),
            slot: self.slot,
            timestamp: self.timestamp,
            coinbase: self.coinbase.to_vec(),
            fee_recipient: self.fee_recipient.to_vec(),
            fee_per_mana: self.fee_per_mana.to_be_bytes().to_vec(),
            total_mana_used: self.total_mana_used,
            accumulated_fees: self.accumulated_fees.to_be_bytes().to_vec(),
        }
    }

    fn from_proto(proto: pb::CheckpointHeader) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            last_archive_root: f.b256("last_archive_root", &proto.last_archive_root)?,
            block_headers_hash: f.b256("block_headers_hash", &proto.block_headers_hash)?,
            body_hash: f.b256("body_hash", &proto.body_hash)?,
            slot: proto.slot,
            timestamp: proto.timestamp,
            coinbase: f.address("coinbase", &proto.coinbase)?,
            fee_recipient: f.address("fee_recipient", &proto.fee_recipient)?,
            fee_per_mana: f.u128("fee_per_mana", &proto.fee_per_mana)?,
            total_mana_used: proto.total_mana_used,
            accumulated_fees: f.u128("accumulated_fees", &proto.accumulated_fees)?,
        })
    }
}

impl ProtoConvert for ConsensusPayload {
    type Proto = pb::ConsensusPayload;
    const MESSAGE: &'static str = "ConsensusPayload";

    fn to_proto(&self) -> pb::ConsensusPayload {
        pb::ConsensusPayload {
            header: Some(self.header.to_proto()),
            archive: self.archive.to_vec(),
            fee_asset_price_modifier: self.fee_asset_price_modifier,
        }
    }

    fn from_proto(proto: pb::ConsensusPayload) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            header: CheckpointHeader::from_proto(f.required("header", proto.header)?)?,
            archive: f.b256("archive", &proto.archive)?,
            fee_asset_price_modifier: f.bounded_i64(
                "fee_asset_price_modifier",
                proto.fee_asset_price_modifier,
                MAX_FEE_ASSET_PRICE_MODIFIER_BPS,
            )?,
        })
    }
}

impl ProtoConvert for Checkpoint {
    type Proto = pb::Checkpoint;
    const MESSAGE: &'static str = "Checkpoint";

    fn to_proto(&self) -> pb::Checkpoint {
        pb::Checkpoint {
            number: self.number,
            payload: Some(self.payload.to_proto()),
            blocks: self.blocks.iter().map(Block::to_proto).collect(),
        }
    }

    fn from_proto(proto: pb::Checkpoint) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        let blocks = f.bounded("blocks", proto.blocks, MAX_BLOCKS_PER_CHECKPOINT)?;
        Ok(Self {
            number: proto.number,
            payload: ConsensusPayload::from_proto(f.required("payload", proto.payload)?)?,
            blocks: blocks
                .into_iter()
                .map(Block::from_proto)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl ProtoConvert for BlockProposal {
    type Proto = pb::BlockProposal;
    const MESSAGE: &'static str = "BlockProposal";

    fn to_proto(&self) -> pb::BlockProposal {
        pb::BlockProposal {
            header: Some(self.header.to_proto()),
            archive_root: self.archive_root.to_vec(),
            tx_hashes_packed: hashes_to_packed(&self.tx_hashes),
            signature: self.signature.as_bytes().to_vec(),
            txs_packed: txs_to_packed(&self.txs),
        }
    }

    fn from_proto(proto: pb::BlockProposal) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            header: BlockHeader::from_proto(f.required("header", proto.header)?)?,
            archive_root: f.b256("archive_root", &proto.archive_root)?,
            tx_hashes: hashes_from_packed(&f, "tx_hashes_packed", &proto.tx_hashes_packed)?,
            signature: f.signature("signature", &proto.signature)?,
            txs: txs_from_packed(&f, "txs_packed", &proto.txs_packed)?,
        })
    }
}

impl ProtoConvert for CheckpointProposal {
    type Proto = pb::CheckpointProposal;
    const MESSAGE: &'static str = "CheckpointProposal";

    fn to_proto(&self) -> pb::CheckpointProposal {
        pb::CheckpointProposal {
            payload: Some(self.payload.to_proto()),
            signature: self.signature.as_bytes().to_vec(),
            last_block: self.last_block.as_ref().map(BlockProposal::to_proto),
        }
    }

    fn from_proto(proto: pb::CheckpointProposal) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            payload: ConsensusPayload::from_proto(f.required("payload", proto.payload)?)?,
            signature: f.signature("signature", &proto.signature)?,
            last_block: proto
                .last_block
                .map(BlockProposal::from_proto)
                .transpose()?,
        })
    }
}

impl ProtoConvert for CheckpointAttestation {
    type Proto = pb::CheckpointAttestation;
    const MESSAGE: &'static str = "CheckpointAttestation";

    fn to_proto(&self) -> pb::CheckpointAttestation {
        pb::CheckpointAttestation {
            payload: Some(self.payload.to_proto()),
            signature: self.signature.as_bytes().to_vec(),
            proposer_signature: self.proposer_signature.as_bytes().to_vec(),
        }
    }

    fn from_proto(proto: pb::CheckpointAttestation) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        Ok(Self {
            payload: ConsensusPayload::from_proto(f.required("payload", proto.payload)?)?,
            signature: f.signature("signature", &proto.signature)?,
            proposer_signature: f.signature("proposer_signature", &proto.proposer_signature)?,
        })
    }
}

impl ProtoConvert for L2TipId {
    type Proto = pb::L2TipId;
    const MESSAGE: &'static str = "L2TipId";

    fn to_proto(&self) -> pb::L2TipId {
        pb::L2TipId {
            block: Some(pb::BlockId {
                number: self.block.number,
                hash: self.block.hash.to_vec(),
            }),
            checkpoint: Some(pb::CheckpointId {
                number: self.checkpoint.number,
                hash: self.checkpoint.hash.to_vec(),
            }),
        }
    }

    fn from_proto(proto: pb::L2TipId) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        let block = f.required("block", proto.block)?;
        let checkpoint = f.required("checkpoint", proto.checkpoint)?;
        Ok(Self {
            block: BlockId {
                number: block.number,
                hash: f.b256("block.hash", &block.hash)?,
            },
            checkpoint: CheckpointId {
                number: checkpoint.number,
                hash: f.b256("checkpoint.hash", &checkpoint.hash)?,
            },
        })
    }
}

impl ProtoConvert for L2Tips {
    type Proto = pb::L2Tips;
    const MESSAGE: &'static str = "L2Tips";

    fn to_proto(&self) -> pb::L2Tips {
        pb::L2Tips {
            proposed: Some(self.proposed.to_proto()),
            proposed_checkpoint: Some(self.proposed_checkpoint.to_proto()),
            checkpointed: Some(self.checkpointed.to_proto()),
            finalized: Some(self.finalized.to_proto()),
        }
    }

    fn from_proto(proto: pb::L2Tips) -> Result<Self, WireError> {
        let f = Fields(Self::MESSAGE);
        let tip = |field, value| L2TipId::from_proto(f.required(field, value)?);
        Ok(Self {
            proposed: tip("proposed", proto.proposed)?,
            proposed_checkpoint: tip("proposed_checkpoint", proto.proposed_checkpoint)?,
            checkpointed: tip("checkpointed", proto.checkpointed)?,
            finalized: tip("finalized", proto.finalized)?,
        })
    }
}
