//! Building a block on a fork from pool txs, until a deadline or a limit.

use tandem_proto::{
    Address, B256, BlockHeader, RecoveredTx, block_body_hash,
    time::{Clock, Timestamp},
};

use crate::{
    exec::{TX_MANA, TxError, execute_tx},
    fork::Fork,
    pool::BestTxs,
    world::ExecutedBlock,
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

/// Limits of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildLimits {
    /// Most txs.
    pub max_txs: usize,
    /// Most mana.
    pub max_mana: u64,
    /// Execution stops at this time.
    pub deadline: Timestamp,
}

/// A built block and the txs that were dropped.
#[derive(Debug)]
pub struct BuiltBlock {
    /// The block, ready to apply and to propose.
    pub executed: ExecutedBlock,
    /// The txs included, with senders.
    pub txs: Vec<RecoveredTx>,
    /// Txs that failed (they changed nothing), with the reason.
    pub failed: Vec<(B256, TxError)>,
    /// Whether building stopped at the deadline rather than for lack of txs or room.
    pub hit_deadline: bool,
}

/// How often (in txs) the clock is read.
const DEADLINE_CHECK_EVERY: usize = 16;

/// Builds the next block on `fork` from `txs`, in order, until the deadline or a limit. Failed
/// txs are dropped (their senders' later txs skipped) and change nothing.
pub fn build_block(
    fork: &mut Fork,
    globals: &BlockGlobals,
    txs: &mut BestTxs<'_>,
    limits: &BuildLimits,
    clock: &dyn Clock,
) -> BuiltBlock {
    let started = std::time::Instant::now();
    let mut included: Vec<RecoveredTx> = Vec::new();
    let mut failed = Vec::new();
    let mut fees: u128 = 0;
    let mut hit_deadline = false;
    let max_by_mana = usize::try_from(limits.max_mana / TX_MANA).unwrap_or(usize::MAX);
    let max_txs = limits.max_txs.min(max_by_mana);
    let mut attempts = 0usize;
    while included.len() < max_txs {
        if attempts.is_multiple_of(DEADLINE_CHECK_EVERY) && clock.now() >= limits.deadline {
            hit_deadline = true;
            break;
        }
        attempts += 1;
        let Some(tx) = txs.next() else { break };
        match execute_tx(fork, &tx, globals.fee_per_mana, globals.fee_recipient) {
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
    let prepared = fork.prepare_seal();
    let tx_hashes: Vec<B256> = included.iter().map(RecoveredTx::hash).collect();
    let header = BlockHeader {
        last_archive_root: fork.archive_root(),
        state_root: prepared.state_root(),
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
    let executed = fork.commit(
        prepared,
        header,
        included.iter().map(|tx| tx.tx().clone()).collect(),
    );
    metrics::histogram!("state_block_build_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("state_txs_failed_total").increment(failed.len() as u64);
    BuiltBlock {
        executed,
        txs: included,
        failed,
        hit_deadline,
    }
}
