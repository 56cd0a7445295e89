//! Applying L1 events in order, never silently.
//!
//! - An event for the next checkpoint promotes the matching proposed checkpoint, or writes the
//!   blocks of its body, or — when the body cannot be used (calldata unreadable, body
//!   undecodable or not matching its header) and no local data rebuilds the header L1 accepted —
//!   is stored as an *awaiting* L1 fact. Later events queue behind it; the L1 cursor keeps
//!   moving. A body supplied later (from peers) is accepted only if it hashes to what L1
//!   committed to.
//! - An event for a checkpoint already stored (or awaiting) must match it (header hash, archive,
//!   L1 block): a difference is an L1 reorg, rolled back, never skipped. Below the finalized
//!   checkpoint it is a fatal error.

use tandem_proto::{
    B256, Block, CheckpointHeader, ConsensusPayload, MAX_CHECKPOINT_SIZE, decode_checkpoint_body,
    keccak256,
};

use crate::{
    error::{ArchiverError, ArchiverResult},
    records::{
        AwaitingCheckpoint, BodyProblem, CheckpointRecord, L1CheckpointEvent, PayloadSource,
    },
    store::{ArchiverStore, Change, L1CheckpointInput, L1Outcome},
    tables::{AwaitingCheckpoints, BlockTxs, Checkpoints, HeaderViews, ProposedCheckpoints, Reads},
};

/// What applying one L1 event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L1EventOutcome {
    /// The store already has exactly this checkpoint (a re-read range).
    Known,
    /// The checkpoint was applied.
    Applied(L1Outcome),
    /// Stored as an L1 fact awaiting its body: the first one of the queue has `problem`, the
    /// ones after it have none (they wait for it).
    Awaiting(Option<BodyProblem>),
}

/// Where the L1 side stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L1SyncStatus {
    /// Every L1 checkpoint read so far is applied.
    Following,
    /// L1 checkpoint `checkpoint` cannot be applied: the node is not ready.
    Blocked {
        /// The first checkpoint that waits.
        checkpoint: u64,
        /// Its slot.
        slot: u64,
        /// Why; `None` if it was not tried yet (it waited behind an earlier one).
        problem: Option<BodyProblem>,
        /// L1 checkpoints waiting, it included.
        waiting: u64,
    },
}

/// The checkpoint header `blocks` make on top of the block whose archive is `parent_archive`.
pub(crate) fn rebuild_checkpoint_header(
    parent_archive: B256,
    blocks: &[Block],
) -> Option<CheckpointHeader> {
    tandem_proto::checkpoint_header_of(parent_archive, blocks).map(|(header, _)| header)
}

/// Whether `event` is the stored L1 checkpoint `record` (what L1 committed to, and where).
pub(crate) fn same_checkpoint(record: &CheckpointRecord, event: &L1CheckpointEvent) -> bool {
    record.payload.header.hash() == event.header_hash
        && record.payload.archive == event.archive
        && record.l1 == event.l1
}

impl ArchiverStore {
    /// Applies one `CheckpointProposed` event (see the module docs).
    pub fn apply_l1_event(&mut self, event: L1CheckpointEvent) -> ArchiverResult<L1EventOutcome> {
        let number = event.number;
        // Checkpoint 0 is genesis: L1 never emits it. Refused before anything is compared (a
        // rollback to "checkpoint −1" must never be computed).
        let Some(previous) = number.checked_sub(1) else {
            return Err(ArchiverError::L1CheckpointNotSequential {
                expected: self.next_l1_number(),
                got: number,
            });
        };
        if number <= self.chain.checkpointed.number {
            let stored = self
                .db()
                .require::<Checkpoints>(&number, "a checkpoint below the tip is missing")?;
            if same_checkpoint(&stored, &event) {
                return Ok(L1EventOutcome::Known);
            }
            tracing::warn!(
                target: "archiver",
                checkpoint = number,
                stored_l1 = stored.l1.number,
                l1 = event.l1.number,
                "L1 has another checkpoint under a stored number: rolling back"
            );
            metrics::counter!("archiver_l1_reorgs_total").increment(1);
            self.rollback_l1(previous, None)?;
        } else if self.chain.awaiting.contains(&number) {
            let stored = self
                .db()
                .require::<AwaitingCheckpoints>(&number, "an awaiting checkpoint is missing")?;
            if stored.event.header_hash == event.header_hash
                && stored.event.archive == event.archive
                && stored.event.l1 == event.l1
            {
                return Ok(L1EventOutcome::Known);
            }
            metrics::counter!("archiver_l1_reorgs_total").increment(1);
            self.rollback_l1(previous, None)?;
        }
        let expected = self.next_l1_number();
        if number != expected {
            return Err(ArchiverError::L1CheckpointNotSequential {
                expected,
                got: number,
            });
        }
        if !self.chain.awaiting.is_empty() {
            self.put_awaiting(AwaitingCheckpoint {
                event,
                problem: None,
            })?;
            return Ok(L1EventOutcome::Awaiting(None));
        }
        match self.try_apply(&event)? {
            Ok(outcome) => Ok(L1EventOutcome::Applied(outcome)),
            Err(problem) => {
                tracing::warn!(
                    target: "archiver",
                    checkpoint = number,
                    ?problem,
                    "L1 checkpoint cannot be applied from L1 alone: waiting for its body"
                );
                self.put_awaiting(AwaitingCheckpoint {
                    event,
                    problem: Some(problem),
                })?;
                Ok(L1EventOutcome::Awaiting(Some(problem)))
            }
        }
    }

    /// The number the next new L1 checkpoint must have: after the checkpointed tip and the ones
    /// awaiting a body.
    fn next_l1_number(&self) -> u64 {
        self.chain
            .checkpointed
            .number
            .saturating_add(1)
            .saturating_add(self.chain.awaiting.len() as u64)
    }

    fn put_awaiting(&mut self, record: AwaitingCheckpoint) -> ArchiverResult<()> {
        let mut batch = self.db().batch();
        batch.put::<AwaitingCheckpoints>(&record.event.number, &record);
        let mut next = self.chain.clone();
        next.awaiting.insert(record.event.number);
        metrics::gauge!("archiver_l1_checkpoints_awaiting_body").set(next.awaiting.len() as f64);
        self.commit(Change::new(batch, next, true))
    }

    /// Tries to apply the next checkpoint from what L1 and the store have: a matching proposed
    /// checkpoint, the calldata's body, or local blocks that rebuild L1's header.
    fn try_apply(
        &mut self,
        event: &L1CheckpointEvent,
    ) -> ArchiverResult<Result<L1Outcome, BodyProblem>> {
        let number = event.number;
        let l1_payload = event.calldata.as_ref().and_then(|calldata| {
            (calldata.header.hash() == event.header_hash).then(|| ConsensusPayload {
                header: calldata.header.clone(),
                archive: event.archive,
                fee_asset_price_modifier: calldata.fee_asset_price_modifier,
            })
        });
        let attestations = event
            .calldata
            .as_ref()
            .map(|calldata| calldata.attestations.clone())
            .unwrap_or_default();
        if let Some(proposed) = self.db().get::<ProposedCheckpoints>(&number)?
            && proposed.payload.header.hash() == event.header_hash
            && proposed.payload.archive == event.archive
        {
            let (payload, source) = match l1_payload {
                Some(payload) => (payload, PayloadSource::L1Calldata),
                None => (proposed.payload, PayloadSource::LocalProposal),
            };
            let input = L1CheckpointInput {
                number,
                payload,
                l1: event.l1,
                attestations,
                blocks: Vec::new(),
            };
            return Ok(Ok(self.insert_l1(input, source)?));
        }
        if let (Some(payload), Some(calldata)) = (l1_payload, &event.calldata) {
            let Ok(blocks) = decode_checkpoint_body(&calldata.body, MAX_CHECKPOINT_SIZE) else {
                return Ok(Err(BodyProblem::Undecodable));
            };
            let input = L1CheckpointInput {
                number,
                payload,
                l1: event.l1,
                attestations,
                blocks,
            };
            return match self.insert_l1(input, PayloadSource::L1Calldata) {
                Ok(outcome) => Ok(Ok(outcome)),
                Err(ArchiverError::L1CheckpointBlocks { reason, .. }) => {
                    tracing::warn!(target: "archiver", checkpoint = number, reason, "L1 body does not match its header");
                    Ok(Err(BodyProblem::DoesNotMatchHeader))
                }
                Err(err) => Err(err),
            };
        }
        // No usable calldata: local blocks of this checkpoint may rebuild L1's header.
        if let Some(input) = self.local_checkpoint(event)? {
            return Ok(Ok(self.insert_l1(input, PayloadSource::LocalBlocks)?));
        }
        Ok(Err(BodyProblem::CalldataMissing))
    }

    /// The stored blocks of checkpoint `event.number` after the checkpointed tip, if they make
    /// exactly the header and archive L1 accepted.
    fn local_checkpoint(
        &self,
        event: &L1CheckpointEvent,
    ) -> ArchiverResult<Option<L1CheckpointInput>> {
        let start = self.chain.checkpointed.last_block.number + 1;
        let parent = self
            .db()
            .require::<HeaderViews>(&(start - 1), "a block below the tip is missing")?;
        let mut blocks = Vec::new();
        let mut archive = None;
        for number in start..=self.chain.last.number() {
            let header = self
                .db()
                .require::<HeaderViews>(&number, "a block below the tip is missing")?;
            if header.header.checkpoint_number != event.number {
                break;
            }
            let txs = self
                .db()
                .require::<BlockTxs>(&number, "a stored block has no tx record")?;
            archive = Some(header.archive_root);
            blocks.push(Block {
                header: header.header,
                txs,
            });
        }
        let Some(header) = rebuild_checkpoint_header(parent.archive_root, &blocks) else {
            return Ok(None);
        };
        if header.hash() != event.header_hash || archive != Some(event.archive) {
            return Ok(None);
        }
        Ok(Some(L1CheckpointInput {
            number: event.number,
            payload: ConsensusPayload {
                header,
                archive: event.archive,
                fee_asset_price_modifier: 0,
            },
            l1: event.l1,
            attestations: Vec::new(),
            blocks,
        }))
    }

    /// Retries the first awaiting L1 checkpoint; `Some` if it (and so the queue) moved.
    pub fn resolve_awaiting(&mut self) -> ArchiverResult<Option<L1Outcome>> {
        let Some(&number) = self.chain.awaiting.first() else {
            return Ok(None);
        };
        let record = self
            .db()
            .require::<AwaitingCheckpoints>(&number, "an awaiting checkpoint is missing")?;
        match self.try_apply(&record.event)? {
            Ok(outcome) => {
                metrics::gauge!("archiver_l1_checkpoints_awaiting_body")
                    .set(self.chain.awaiting.len() as f64);
                Ok(Some(outcome))
            }
            Err(problem) => {
                if record.problem != Some(problem) {
                    self.put_awaiting(AwaitingCheckpoint {
                        event: record.event,
                        problem: Some(problem),
                    })?;
                }
                Ok(None)
            }
        }
    }

    /// The first awaiting checkpoint if it needs its header and body from peers: `(number,
    /// header hash)`.
    pub fn body_wanted(&self) -> ArchiverResult<Option<(u64, B256)>> {
        let Some(&number) = self.chain.awaiting.first() else {
            return Ok(None);
        };
        let record = self
            .db()
            .require::<AwaitingCheckpoints>(&number, "an awaiting checkpoint is missing")?;
        Ok((record.problem == Some(BodyProblem::CalldataMissing))
            .then_some((number, record.event.header_hash)))
    }

    /// Accepts header and body of awaiting checkpoint `number` from outside (peers), only if
    /// `hash(header)` is L1's header hash, `keccak(body)` is the header's body hash, and the
    /// blocks it holds make the header and L1's archive. `fee_asset_price_modifier` is the
    /// supplier's claim (L1's event does not carry it).
    pub fn supply_checkpoint_body(
        &mut self,
        number: u64,
        header: CheckpointHeader,
        body: &[u8],
        fee_asset_price_modifier: i64,
    ) -> ArchiverResult<L1Outcome> {
        let reject = |reason| ArchiverError::SuppliedBodyRejected { number, reason };
        if self.chain.awaiting.first() != Some(&number) {
            return Err(ArchiverError::NotAwaitingBody { number });
        }
        let record = self
            .db()
            .require::<AwaitingCheckpoints>(&number, "an awaiting checkpoint is missing")?;
        if record.problem != Some(BodyProblem::CalldataMissing) {
            return Err(ArchiverError::NotAwaitingBody { number });
        }
        if header.hash() != record.event.header_hash {
            return Err(reject("header does not hash to L1's header hash"));
        }
        if keccak256(body) != header.body_hash {
            return Err(reject("body does not hash to the header's body hash"));
        }
        // From here the body is L1's: problems with it are L1's, not the supplier's.
        let blocks = match decode_checkpoint_body(body, MAX_CHECKPOINT_SIZE) {
            Ok(blocks) => blocks,
            Err(_) => {
                self.put_awaiting(AwaitingCheckpoint {
                    problem: Some(BodyProblem::Undecodable),
                    ..record
                })?;
                return Err(reject("L1's body does not decode"));
            }
        };
        let input = L1CheckpointInput {
            number,
            payload: ConsensusPayload {
                header,
                archive: record.event.archive,
                fee_asset_price_modifier,
            },
            l1: record.event.l1,
            attestations: Vec::new(),
            blocks,
        };
        match self.insert_l1(input, PayloadSource::Peer) {
            Ok(outcome) => {
                metrics::gauge!("archiver_l1_checkpoints_awaiting_body")
                    .set(self.chain.awaiting.len() as f64);
                Ok(outcome)
            }
            Err(ArchiverError::L1CheckpointBlocks { reason, .. }) => {
                self.put_awaiting(AwaitingCheckpoint {
                    problem: Some(BodyProblem::DoesNotMatchHeader),
                    ..record
                })?;
                Err(reject(reason))
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use tandem_proto::{block_body_hash, encode_checkpoint_body};

    use super::*;

    #[test]
    fn a_rebuilt_header_commits_to_every_field_of_its_blocks() {
        let block = |number, mana| Block {
            header: tandem_proto::BlockHeader {
                block_number: number,
                slot: 7,
                timestamp: 70,
                fee_per_mana: 3,
                total_mana_used: mana,
                total_fees: u128::from(mana) * 3,
                body_hash: block_body_hash(&[]),
                ..Default::default()
            },
            txs: Vec::new(),
        };
        let blocks = [block(1, 10), block(2, 20)];
        let header = rebuild_checkpoint_header(B256::repeat_byte(1), &blocks).unwrap();
        assert_eq!(header.total_mana_used, 30);
        assert_eq!(header.accumulated_fees, 90);
        assert_eq!(
            (header.slot, header.timestamp, header.fee_per_mana),
            (7, 70, 3)
        );
        assert_eq!(header.body_hash, keccak256(encode_checkpoint_body(&blocks)));
        assert!(rebuild_checkpoint_header(B256::ZERO, &[]).is_none());
    }
}
