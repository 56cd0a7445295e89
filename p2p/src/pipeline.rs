//! Decoding, validation and pool admission without any I/O: the consensus processor runs its
//! two halves (stateless checks on the blocking pool, admission on its task); tests and
//! benchmarks call [`GossipPipeline::accept`].

use tandem_proto::{
    BlockProposal, CheckpointAttestation, CheckpointProposal, RecoveredTx, time::Timestamp,
};

use crate::{
    evidence::Equivocation,
    pool::{Admission, ProposalPool},
    topics::GossipKind,
    validation::{Checked, GossipInvalid, GossipValidator},
    verified::Verified,
};

/// What accepted gossip leads to.
#[derive(Debug)]
pub enum Accepted {
    /// A tx for the pool.
    Tx(Verified<RecoveredTx>),
    /// A block proposal to process.
    Block(Verified<BlockProposal>),
    /// A checkpoint proposal to process, after the blocks of its slot up to its last block.
    Checkpoint {
        /// Index of its last block within the checkpoint.
        last_index: u32,
        /// The embedded last block, unless the same block was accepted before.
        last_block: Option<Verified<BlockProposal>>,
        /// The checkpoint's core (its `last_block` taken out).
        checkpoint: Verified<CheckpointProposal>,
    },
    /// An attestation, now in the pool.
    Attestation(Verified<CheckpointAttestation>),
    /// An equivocating message: propagated, not processed (except a new embedded last block).
    Equivocated {
        /// The embedded last block of an equivocating checkpoint, when new.
        last_block: Option<Verified<BlockProposal>>,
    },
}

/// Validation and pool admission.
#[derive(Debug)]
pub struct GossipPipeline {
    validator: GossipValidator,
    pool: ProposalPool,
    equivocations: Vec<Equivocation>,
}

impl GossipPipeline {
    /// A pipeline with an empty pool.
    pub fn new(validator: GossipValidator) -> Self {
        Self {
            validator,
            pool: ProposalPool::new(),
            equivocations: Vec::new(),
        }
    }

    /// Decodes, validates and admits one (decompressed) message received at `now`.
    pub fn accept(
        &mut self,
        kind: GossipKind,
        data: &[u8],
        now: Timestamp,
    ) -> Result<Accepted, GossipInvalid> {
        let checked = self.validator.check(kind, data, now)?;
        self.admit(checked)
    }

    /// Admits a message that passed the stateless checks.
    pub(crate) fn admit(&mut self, checked: Checked) -> Result<Accepted, GossipInvalid> {
        match checked {
            Checked::Tx(tx) => Ok(Accepted::Tx(tx)),
            Checked::Block(block) => Ok(match self.admit_block(&block)? {
                Admission::New => Accepted::Block(block),
                Admission::Equivocation(_) => Accepted::Equivocated { last_block: None },
            }),
            Checked::Checkpoint {
                checkpoint,
                last_block,
            } => {
                let last_index = last_block.header.index_within_checkpoint;
                // The embedded block first: an equivocating last block sinks the checkpoint.
                let last_block = match self.admit_block(&last_block) {
                    Ok(Admission::New) => Some(last_block),
                    Err(GossipInvalid::Duplicate) => None,
                    Ok(Admission::Equivocation(_)) => {
                        return Err(GossipInvalid::LastBlockEquivocated);
                    }
                    Err(err) => return Err(GossipInvalid::LastBlockInvalid(Box::new(err))),
                };
                match self
                    .pool
                    .admit_checkpoint_proposal(&checkpoint, checkpoint.signer())?
                {
                    Admission::New => Ok(Accepted::Checkpoint {
                        last_index,
                        last_block,
                        checkpoint,
                    }),
                    Admission::Equivocation(evidence) => {
                        self.equivocations.push(*evidence);
                        Ok(Accepted::Equivocated { last_block })
                    }
                }
            }
            Checked::Attestation(attestation) => {
                match self
                    .pool
                    .admit_attestation(&attestation, attestation.signer())?
                {
                    Admission::New => Ok(Accepted::Attestation(attestation)),
                    Admission::Equivocation(evidence) => {
                        self.equivocations.push(*evidence);
                        Ok(Accepted::Equivocated { last_block: None })
                    }
                }
            }
        }
    }

    /// Admits a block proposal (gossiped, embedded or fetched), recording an equivocation.
    pub(crate) fn admit_block(
        &mut self,
        block: &Verified<BlockProposal>,
    ) -> Result<Admission, GossipInvalid> {
        let admission = self.pool.admit_block_proposal(block, block.signer())?;
        if let Admission::Equivocation(evidence) = &admission {
            self.equivocations.push((**evidence).clone());
        }
        Ok(admission)
    }

    /// Equivocations detected since the last call.
    pub fn take_equivocations(&mut self) -> Vec<Equivocation> {
        std::mem::take(&mut self.equivocations)
    }

    /// The validator.
    pub const fn validator(&self) -> &GossipValidator {
        &self.validator
    }

    /// The pools.
    pub const fn pool(&self) -> &ProposalPool {
        &self.pool
    }

    pub(crate) fn pool_mut(&mut self) -> &mut ProposalPool {
        &mut self.pool
    }
}
