//! Building a block on a fork from pool txs, until a deadline or a limit, without touching the
//! fork: the caller commits the [`BuiltBlock`] (or drops it, e.g. when it is too small).
//!
//! Limits: txs, mana, and the bytes the block adds to its checkpoint's body (one L1 tx carries
//! the body: see [`CheckpointBodyBudget`]). The deadline includes sealing: the state tree is
//! brought up to date after chunks of 1, 2, 4, … up to [`DEADLINE_CHECK_EVERY`] txs, then every
//! [`DEADLINE_CHECK_EVERY`] txs (a tree update of many changes at once shares most of its path
//! hashing: folding too often costs throughput), and
//! the next chunk only starts if, at the slowest cost per tx seen so far, it and its tree update
//! end before the deadline; sealing then has nothing left to do.

use std::{
    collections::{HashSet, VecDeque},
    sync::OnceLock,
    time::Duration,
};

use tandem_proto::{
    Address, B256, Block, BlockHeader, PACKED_TX_LENGTH, RecoveredTx, block_body_hash,
    encode_checkpoint_body,
    time::{Clock, Timestamp},
};

use crate::{
    exec::{TX_MANA, TxError, execute_tx},
    fork::{Fork, Sealed},
    pool::BestTxs,
    world::{ExecutedBlock, StateError},
};

/// The per-block inputs the proposer chooses (all blocks of a checkpoint share most of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockGlobals {
    /// Checkpoint the block belongs to.
    pub checkpoint_number: u64,
    /// Position in the checkpoint.
    pub index_within_checkpoint: u32,
    /// Target slot.
    pub slot: u64,
    /// Slot start, L1 seconds.
    pub timestamp: u64,
    /// L1 address credited.
    pub coinbase: Address,
    /// L2 address receiving fees.
    pub fee_recipient: Address,
    /// Fee per mana (the checkpoint's L1-derived minimum).
    pub fee_per_mana: u128,
}

impl BlockGlobals {
    /// The first field `header` carries differently from these globals, if any (in the
    /// order re-execution checks them).
    pub fn first_mismatch(&self, header: &BlockHeader) -> Option<&'static str> {
        [
            (
                header.checkpoint_number == self.checkpoint_number,
                "checkpoint_number",
            ),
            (
                header.index_within_checkpoint == self.index_within_checkpoint,
                "index_within_checkpoint",
            ),
            (header.slot == self.slot, "slot"),
            (header.timestamp == self.timestamp, "timestamp"),
            (header.coinbase == self.coinbase, "coinbase"),
            (header.fee_recipient == self.fee_recipient, "fee_recipient"),
            (header.fee_per_mana == self.fee_per_mana, "fee_per_mana"),
        ]
        .into_iter()
        .find_map(|(equal, field)| (!equal).then_some(field))
    }
}

/// Limits of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildLimits {
    /// Most txs.
    pub max_txs: usize,
    /// Most mana.
    pub max_mana: u64,
    /// Most bytes the block may add to its checkpoint's body (its header, tx count and txs):
    /// [`CheckpointBodyBudget::remaining`].
    pub max_body_bytes: usize,
    /// The block, sealed, is ready by this time.
    pub deadline: Timestamp,
}

/// Why building stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStop {
    /// No more executable txs.
    OutOfTxs,
    /// [`BuildLimits::max_txs`] reached.
    TxLimit,
    /// [`BuildLimits::max_mana`] reached.
    ManaLimit,
    /// [`BuildLimits::max_body_bytes`] reached.
    BodyBudget,
    /// The deadline (less the time sealing takes) came.
    Deadline,
}

/// A built block, not committed to its fork yet ([`Fork::commit`]).
#[derive(Debug)]
pub struct BuiltBlock {
    /// The header.
    pub header: BlockHeader,
    /// The txs included, with senders.
    pub txs: Vec<RecoveredTx>,
    /// Txs that failed (they changed nothing), with the reason.
    pub failed: Vec<(B256, TxError)>,
    /// Why building stopped.
    pub stop: BuildStop,
    /// Clock reading when the block was sealed.
    pub finished_at: Timestamp,
    /// Bytes it adds to its checkpoint's body.
    pub body_bytes: usize,
    sealed: Sealed,
}

/// How often (in txs) the clock is read and the state tree brought up to date.
pub const DEADLINE_CHECK_EVERY: usize = 128;

/// `(body prefix, per-block overhead)` of the checkpoint body encoding, measured on proto's
/// encoder so the budget counts exactly what it writes.
fn body_layout() -> (usize, usize) {
    static LAYOUT: OnceLock<(usize, usize)> = OnceLock::new();
    *LAYOUT.get_or_init(|| {
        let prefix = encode_checkpoint_body(&[]).len();
        let with_block = encode_checkpoint_body(&[Block::default()]).len();
        (prefix, with_block - prefix)
    })
}

/// Bytes a block of `tx_count` txs adds to a checkpoint body.
pub fn block_body_bytes(tx_count: usize) -> usize {
    body_layout()
        .1
        .saturating_add(tx_count.saturating_mul(PACKED_TX_LENGTH))
}

/// The body-size budget of one checkpoint (the protocol's `max_checkpoint_body_bytes`), as its
/// blocks are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointBodyBudget {
    limit: usize,
    used: usize,
}

impl CheckpointBodyBudget {
    /// A checkpoint whose body may be at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: body_layout().0,
        }
    }

    /// Bytes the next block may add ([`BuildLimits::max_body_bytes`]).
    pub const fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.used)
    }

    /// Bytes the body takes so far.
    pub const fn used(&self) -> usize {
        self.used
    }

    /// Counts a block of `tx_count` txs.
    pub fn add_block(&mut self, tx_count: usize) {
        self.used = self.used.saturating_add(block_body_bytes(tx_count));
    }
}

/// Where a build takes its txs from, best first: the pool itself ([`BestTxs`], under the pool's
/// lock) or [`CandidateTxs`] taken from it beforehand, so a proposer builds without holding the
/// lock for the whole sub-slot.
pub trait TxSource {
    /// The next tx to try.
    fn next_tx(&mut self) -> Option<RecoveredTx>;
    /// Skips the rest of `sender`'s txs (its last tx failed, so later nonces cannot run).
    fn skip_sender(&mut self, sender: Address);
}

impl TxSource for BestTxs<'_> {
    fn next_tx(&mut self) -> Option<RecoveredTx> {
        self.next()
    }

    fn skip_sender(&mut self, sender: Address) {
        BestTxs::skip_sender(self, sender);
    }
}

/// Txs copied out of the pool (in [`BestTxs`] order) for a build that runs without the pool's
/// lock.
#[derive(Debug, Default)]
pub struct CandidateTxs {
    txs: VecDeque<RecoveredTx>,
    skipped: HashSet<Address>,
}

impl CandidateTxs {
    /// Candidates in the order given.
    pub fn new(txs: Vec<RecoveredTx>) -> Self {
        Self {
            txs: txs.into(),
            skipped: HashSet::new(),
        }
    }

    /// Candidates left.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether none is left.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }
}

impl TxSource for CandidateTxs {
    fn next_tx(&mut self) -> Option<RecoveredTx> {
        while let Some(tx) = self.txs.pop_front() {
            if !self.skipped.contains(&tx.sender()) {
                return Some(tx);
            }
        }
        None
    }

    fn skip_sender(&mut self, sender: Address) {
        self.skipped.insert(sender);
    }
}

/// Builds the next block on `fork` from `txs`, in order, until the deadline or a limit. Failed
/// txs are dropped (their senders' later txs skipped) and change nothing. The fork is not
/// touched: commit the result with [`Fork::commit`].
pub fn build_block(
    fork: &Fork,
    globals: &BlockGlobals,
    txs: &mut dyn TxSource,
    limits: &BuildLimits,
    clock: &dyn Clock,
) -> Result<BuiltBlock, StateError> {
    let started = std::time::Instant::now();
    let overhead = block_body_bytes(0);
    if limits.max_body_bytes < overhead {
        return Err(StateError::BodyBudgetExhausted {
            remaining: limits.max_body_bytes,
            needed: overhead,
        });
    }
    let max_by_body = (limits.max_body_bytes - overhead) / PACKED_TX_LENGTH;
    let max_by_mana = usize::try_from(limits.max_mana / TX_MANA).unwrap_or(usize::MAX);
    let (max_txs, limit_stop) = [
        (limits.max_txs, BuildStop::TxLimit),
        (max_by_mana, BuildStop::ManaLimit),
        (max_by_body, BuildStop::BodyBudget),
    ]
    .into_iter()
    .min_by_key(|(max, _)| *max)
    .unwrap_or((0, BuildStop::TxLimit));

    let mut draft = fork.draft();
    let mut included: Vec<RecoveredTx> = Vec::new();
    let mut failed = Vec::new();
    let mut fees: u128 = 0;
    // Chunks of 1, 2, 4, … up to `DEADLINE_CHECK_EVERY` txs: an estimate of the cost per tx
    // (execution and tree update) comes early, and the next chunk goes ahead only if it fits
    // before the deadline at the slowest cost per tx seen.
    let mut per_attempt = Duration::ZERO;
    let mut next_check = 1usize;
    let mut chunk_begin = (0usize, clock.now());
    let mut stop = (chunk_begin.1 >= limits.deadline).then_some(BuildStop::Deadline);
    let mut attempts = 0usize;
    while stop.is_none() {
        if included.len() >= max_txs {
            stop = Some(limit_stop);
            break;
        }
        if attempts == next_check {
            draft.fold();
            let now = clock.now();
            let chunk = u32::try_from(attempts - chunk_begin.0)
                .unwrap_or(u32::MAX)
                .max(1);
            per_attempt = per_attempt.max(chunk_begin.1.until(now) / chunk);
            next_check = if next_check < DEADLINE_CHECK_EVERY {
                next_check * 2
            } else {
                next_check + DEADLINE_CHECK_EVERY
            };
            let coming = u32::try_from(next_check - attempts).unwrap_or(u32::MAX);
            if now.saturating_add(per_attempt.saturating_mul(coming)) >= limits.deadline {
                stop = Some(BuildStop::Deadline);
                break;
            }
            chunk_begin = (attempts, now);
        }
        attempts += 1;
        let Some(tx) = txs.next_tx() else {
            stop = Some(BuildStop::OutOfTxs);
            break;
        };
        match execute_tx(&mut draft, &tx, globals.fee_per_mana, globals.fee_recipient) {
            Ok(fee) => {
                fees = fees.saturating_add(fee);
                included.push(tx);
            }
            Err(reason) => {
                txs.skip_sender(tx.sender());
                failed.push((tx.hash(), reason));
            }
        }
    }
    let sealed = draft.seal();
    let tx_hashes: Vec<B256> = included.iter().map(RecoveredTx::hash).collect();
    let header = BlockHeader {
        last_archive_root: fork.archive_root(),
        state_root: sealed.state_root(),
        body_hash: block_body_hash(&tx_hashes),
        chain_id: fork.chain_id(),
        rollup_version: fork.rollup_version(),
        block_number: fork.block_number() + 1,
        checkpoint_number: globals.checkpoint_number,
        index_within_checkpoint: globals.index_within_checkpoint,
        slot: globals.slot,
        timestamp: globals.timestamp,
        coinbase: globals.coinbase,
        fee_recipient: globals.fee_recipient,
        fee_per_mana: globals.fee_per_mana,
        total_mana_used: included.len() as u64 * TX_MANA,
        total_fees: fees,
    };
    let finished_at = clock.now();
    metrics::histogram!("state_block_build_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("state_txs_failed_total").increment(failed.len() as u64);
    Ok(BuiltBlock {
        body_bytes: block_body_bytes(included.len()),
        header,
        txs: included,
        failed,
        stop: stop.unwrap_or(BuildStop::OutOfTxs),
        finished_at,
        sealed,
    })
}

impl Fork {
    /// Commits a block built on this fork and moves the fork onto it; gives back the executed
    /// block (for the world state) and its txs. Refused if the fork moved since it was built.
    pub fn commit(
        &mut self,
        built: BuiltBlock,
    ) -> Result<(ExecutedBlock, Vec<RecoveredTx>), StateError> {
        let txs = built.txs.iter().map(|tx| tx.tx().clone()).collect();
        let executed = self.commit_sealed(built.sealed, built.header, txs)?;
        Ok((executed, built.txs))
    }
}
