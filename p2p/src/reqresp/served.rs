//! Blocks as peers serve them, and how the requester checks them: a hash chain of archive roots,
//! each body against its header, proposer signatures for blocks not yet on L1, and L1's block
//! headers hash for whole checkpoints served without signatures.

use std::sync::Arc;

use tandem_proto::{
    Address, B256, Block, BlockProposal, CheckpointProposal, Signature, SignatureKind,
    block_headers_hash,
    time::{Slot, Timestamp},
};

use super::ChainProvider;
use crate::{
    evidence::block_payload_hash,
    validation::{GossipInvalid, GossipValidator},
    verified::Verified,
};

/// A block as a node serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedBlock {
    /// Header and txs.
    pub block: Block,
    /// Archive root after the block.
    pub archive_root: B256,
    /// The proposer's signature over the block's proposal payload (header hash, archive root),
    /// which nodes keep for blocks they received as proposals; `None` for blocks known from L1
    /// only.
    pub proposer_signature: Option<Signature>,
    /// When the block is the last block of a checkpoint the serving node holds as a proposed
    /// checkpoint (validated, not on L1 yet): that checkpoint's proposal (payload and proposer
    /// signature, no last block), so a node catching up stores the checkpoint after its blocks
    /// and does not orphan-prune them. `None` otherwise.
    pub checkpoint: Option<CheckpointProposal>,
}

impl ServedBlock {
    /// The served form of a block proposal.
    pub fn from_proposal(proposal: &BlockProposal) -> Self {
        Self {
            block: Block {
                header: proposal.header.clone(),
                txs: proposal.txs.clone(),
            },
            archive_root: proposal.archive_root,
            proposer_signature: Some(proposal.signature),
            checkpoint: None,
        }
    }

    /// The block proposal it was, when it carries a proposer signature.
    pub fn into_proposal(self) -> Option<BlockProposal> {
        let signature = self.proposer_signature?;
        let tx_hashes = self.block.tx_hashes();
        Some(BlockProposal {
            header: self.block.header,
            archive_root: self.archive_root,
            tx_hashes,
            signature,
            txs: self.block.txs,
        })
    }
}

/// A block a peer served that this node checked: it links to the blocks before it, its txs
/// match its header, and it carries its proposer's valid signature or belongs to a checkpoint
/// whose block headers L1 committed to. Only p2p builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBlock {
    served: ServedBlock,
    proposer: Option<Address>,
}

impl ChainBlock {
    /// The block.
    pub const fn block(&self) -> &Block {
        &self.served.block
    }

    /// Archive root after the block.
    pub const fn archive_root(&self) -> B256 {
        self.served.archive_root
    }

    /// The proposer signature it was served with.
    pub const fn proposer_signature(&self) -> Option<Signature> {
        self.served.proposer_signature
    }

    /// The proposer its signature recovered to; `None` when it was checked against L1.
    pub const fn proposer(&self) -> Option<Address> {
        self.proposer
    }

    /// The proposed checkpoint this block ends, as served: checked to end at this block (its
    /// archive and slot), to carry no last block, and to be signed by this block's proposer.
    /// Its contents are not validated here (the all-nodes handler does that).
    pub const fn checkpoint(&self) -> Option<&CheckpointProposal> {
        self.served.checkpoint.as_ref()
    }

    /// The served block.
    pub fn into_served(self) -> ServedBlock {
        self.served
    }
}

/// What is wrong with a peer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentFault {
    /// The answer is false: the peer is at fault.
    Bad(&'static str),
    /// It cannot be checked here (yet): nobody is at fault.
    Unverifiable(&'static str),
}

/// Consecutive served blocks of one checkpoint: checked against L1 as a whole when this node
/// knows that checkpoint from L1, whatever the server attached.
struct Group {
    checkpoint: u64,
    start: usize,
    end: usize,
    /// Index within its checkpoint of the group's first block.
    first_index: u32,
    /// Whether every block carried a (valid) proposer signature.
    signed: bool,
}

/// Checks a run of served blocks starting at `first_number` (right after the block whose
/// archive is `anchor`, when known). A trailing checkpoint served without signatures that does
/// not hash to L1's commitment may just be cut short by the range: it is dropped, not blamed.
pub(crate) async fn verify_segment(
    validator: GossipValidator,
    provider: Arc<dyn ChainProvider>,
    first_number: u64,
    anchor: Option<B256>,
    items: Vec<ServedBlock>,
) -> Result<Vec<ChainBlock>, SegmentFault> {
    let (mut blocks, groups) = tokio::task::spawn_blocking(move || {
        check_links_and_signatures(&validator, first_number, anchor, items)
    })
    .await
    .map_err(|_| SegmentFault::Unverifiable("verification task failed"))??;
    let group_count = groups.len();
    for (position, group) in groups.into_iter().enumerate() {
        let trailing = position + 1 == group_count && group.end == blocks.len();
        // Which blocks are checkpointed is decided by what this node knows from L1, not by
        // whether the server attached signatures: an orphaned proposed block (its checkpoint
        // never landed; the next slot reused its numbers) carries a valid signature too.
        let commitment = provider
            .l1_checkpoint(group.checkpoint)
            .await
            .map_err(|_| SegmentFault::Unverifiable("the chain store could not answer"))?;
        let Some(commitment) = commitment else {
            if group.signed {
                continue;
            }
            return Err(SegmentFault::Unverifiable(
                "a checkpoint served without signatures is not known from L1 here",
            ));
        };
        if group.first_index != 0 {
            return Err(SegmentFault::Unverifiable(
                "blocks start inside a checkpoint L1 has; ask from its first block",
            ));
        }
        let members = &blocks[group.start..group.end];
        let hashes: Vec<B256> = members.iter().map(|block| block.block().hash()).collect();
        let last_archive = members.last().map(ChainBlock::archive_root);
        if block_headers_hash(&hashes) == commitment.block_headers_hash
            && last_archive == Some(commitment.archive)
        {
            continue;
        }
        if trailing && last_archive != Some(commitment.archive) {
            // Possibly a checkpoint cut short by the range: not returned, not blamed.
            blocks.truncate(group.start);
            break;
        }
        return Err(SegmentFault::Bad(
            "blocks do not match the checkpoint L1 committed to",
        ));
    }
    Ok(blocks)
}

fn check_links_and_signatures(
    validator: &GossipValidator,
    first_number: u64,
    anchor: Option<B256>,
    items: Vec<ServedBlock>,
) -> Result<(Vec<ChainBlock>, Vec<Group>), SegmentFault> {
    let domain = validator.domain();
    let mut blocks: Vec<ChainBlock> = Vec::with_capacity(items.len());
    let mut groups: Vec<Group> = Vec::new();
    let mut previous_archive = anchor;
    for (position, served) in items.into_iter().enumerate() {
        let header = &served.block.header;
        let expected_number = first_number
            .checked_add(position as u64)
            .ok_or(SegmentFault::Bad("block numbers overflow"))?;
        if header.block_number != expected_number {
            return Err(SegmentFault::Bad("blocks not consecutive"));
        }
        if header.chain_id != domain.chain_id {
            return Err(SegmentFault::Bad("a block of another chain"));
        }
        if let Some(previous) = previous_archive
            && header.last_archive_root != previous
        {
            return Err(SegmentFault::Bad(
                "a block does not build on the one before it",
            ));
        }
        previous_archive = Some(served.archive_root);
        if !served.block.body_matches_header() {
            return Err(SegmentFault::Bad("txs do not match the header's body hash"));
        }
        let proposer = match served.proposer_signature {
            Some(signature) => Some(check_proposer(validator, &served, signature)?),
            None => None,
        };
        if let Some(checkpoint) = &served.checkpoint {
            check_served_checkpoint(validator, &served, checkpoint, proposer)?;
        }
        let checkpoint = header.checkpoint_number;
        let index = header.index_within_checkpoint;
        match groups.last_mut() {
            Some(group) if group.checkpoint == checkpoint => {
                if index as usize != position - group.start + group.first_index as usize {
                    return Err(SegmentFault::Bad("block indices not consecutive"));
                }
                group.end = position + 1;
                group.signed &= proposer.is_some();
            }
            // Only the first group may start inside its checkpoint (the range started there).
            Some(_) if index != 0 => {
                return Err(SegmentFault::Bad(
                    "a checkpoint that does not start at index 0",
                ));
            }
            _ => groups.push(Group {
                checkpoint,
                start: position,
                end: position + 1,
                first_index: index,
                signed: proposer.is_some(),
            }),
        }
        blocks.push(ChainBlock { served, proposer });
    }
    Ok((blocks, groups))
}

fn check_proposer(
    validator: &GossipValidator,
    served: &ServedBlock,
    signature: Signature,
) -> Result<Address, SegmentFault> {
    let header = &served.block.header;
    let payload = block_payload_hash(header, served.archive_root);
    let signer = signature
        .recover(
            validator
                .domain()
                .digest(SignatureKind::BlockProposal, payload),
        )
        .map_err(|_| SegmentFault::Bad("a proposer signature does not recover"))?;
    let duty = validator
        .duty(Slot(header.slot))
        .ok_or(SegmentFault::Unverifiable(
            "the committee of a block's slot is not known",
        ))?;
    match duty.proposer {
        Some(expected) if expected != signer => Err(SegmentFault::Bad(
            "a block signed by someone other than its slot's proposer",
        )),
        _ => Ok(signer),
    }
}

/// A checkpoint proposal served with its last block: it ends at that block and its proposer
/// signed both.
fn check_served_checkpoint(
    validator: &GossipValidator,
    served: &ServedBlock,
    checkpoint: &CheckpointProposal,
    block_proposer: Option<Address>,
) -> Result<(), SegmentFault> {
    let Some(block_proposer) = block_proposer else {
        return Err(SegmentFault::Bad(
            "a checkpoint proposal served on a block without a signature",
        ));
    };
    if checkpoint.last_block.is_some() {
        return Err(SegmentFault::Bad(
            "a served checkpoint proposal carries a last block",
        ));
    }
    if checkpoint.payload.archive != served.archive_root
        || checkpoint.payload.header.slot != served.block.header.slot
    {
        return Err(SegmentFault::Bad(
            "a served checkpoint proposal does not end at its block",
        ));
    }
    let signer = checkpoint
        .recover_proposer(validator.domain())
        .map_err(|_| SegmentFault::Bad("a checkpoint proposal signature does not recover"))?;
    if signer != block_proposer {
        return Err(SegmentFault::Bad(
            "a checkpoint proposal signed by someone other than its blocks' proposer",
        ));
    }
    Ok(())
}

/// Checks block proposals fetched by query: each a valid proposal of its slot's proposer.
pub(crate) fn verify_proposals(
    validator: &GossipValidator,
    items: Vec<ServedBlock>,
    now: Timestamp,
) -> Result<Vec<Verified<BlockProposal>>, SegmentFault> {
    items
        .into_iter()
        .map(|served| {
            let proposal = served
                .into_proposal()
                .ok_or(SegmentFault::Bad("a block proposal without its signature"))?;
            validator
                .verify_block(proposal, now)
                .map_err(|err| match err {
                    GossipInvalid::CommitteeUnknown(_) => {
                        SegmentFault::Unverifiable("the committee of the block's slot is not known")
                    }
                    _ => SegmentFault::Bad("an invalid block proposal"),
                })
        })
        .collect()
}
