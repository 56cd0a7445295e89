//! Re-executing a proposed block on a fork of its parent, with a typed verdict, and recovering
//! the senders of a proposal's txs in parallel.

use std::num::NonZeroUsize;

use tandem_proto::{
    B256, BlockHeader, RecoveredTx, SigningDomain, Tx, block_body_hash,
    time::{Clock, Timestamp},
};

use crate::{
    builder::BlockGlobals,
    exec::{TX_MANA, TxError, execute_tx},
    fork::Fork,
    world::ExecutedBlock,
};

/// Why a proposed block is not valid (names follow the reference's re-execution reasons).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReexecutionError {
    /// The fork's archive is not the block's parent archive.
    #[error("initial state mismatch: fork archive {fork}, block builds on {expected}")]
    InitialStateMismatch {
        /// Block's `last_archive_root`.
        expected: B256,
        /// The fork's archive root.
        fork: B256,
    },
    /// A global variable differs from what it must be.
    #[error("global variable {field} mismatch")]
    GlobalVariablesMismatch {
        /// The field.
        field: &'static str,
    },
    /// The tx list does not hash to the header's body hash.
    #[error("txs do not hash to the header's body hash")]
    BodyHashMismatch,
    /// A tx failed.
    #[error("tx {index} failed: {reason}")]
    FailedTxs {
        /// Position in the block.
        index: usize,
        /// Why.
        reason: TxError,
    },
    /// The deadline passed before all txs ran.
    #[error("timeout after {processed} of {total} txs")]
    Timeout {
        /// Txs executed.
        processed: usize,
        /// Txs in the block.
        total: usize,
    },
    /// Mana or fees differ from the header.
    #[error("header {field} is {claimed}, execution gives {computed}")]
    AccountingMismatch {
        /// `total_mana_used` or `total_fees`.
        field: &'static str,
        /// Header value.
        claimed: u128,
        /// Re-executed value.
        computed: u128,
    },
    /// The archive tree has no room for another block.
    #[error("the archive is full")]
    ArchiveFull,
    /// The state root after execution differs.
    #[error("state mismatch: header {claimed}, execution gives {computed}")]
    StateMismatch {
        /// Header's state root.
        claimed: B256,
        /// Re-executed root.
        computed: B256,
    },
}

fn check(ok: bool, field: &'static str) -> Result<(), ReexecutionError> {
    if ok {
        Ok(())
    } else {
        Err(ReexecutionError::GlobalVariablesMismatch { field })
    }
}

/// Re-executes block `header` with `txs` (senders recovered, in order) on `fork`, which must sit
/// on the block's parent. `expected` are the global variables the block must carry when the
/// caller knows them (from the checkpoint and its previous block). On success the fork moves onto
/// the block; on any error it is unchanged (execution runs on a draft the fork does not see).
pub fn reexecute(
    fork: &mut Fork,
    header: &BlockHeader,
    txs: &[RecoveredTx],
    expected: Option<&BlockGlobals>,
    deadline: Timestamp,
    clock: &dyn Clock,
) -> Result<ExecutedBlock, ReexecutionError> {
    let started = std::time::Instant::now();
    let result = run(fork, header, txs, expected, deadline, clock);
    let verdict = match &result {
        Ok(_) => "valid",
        Err(ReexecutionError::InitialStateMismatch { .. }) => "initial_state_mismatch",
        Err(ReexecutionError::GlobalVariablesMismatch { .. }) => "global_variables_mismatch",
        Err(ReexecutionError::BodyHashMismatch) => "body_hash_mismatch",
        Err(ReexecutionError::FailedTxs { .. }) => "failed_txs",
        Err(ReexecutionError::Timeout { .. }) => "timeout",
        Err(ReexecutionError::AccountingMismatch { .. }) => "accounting_mismatch",
        Err(ReexecutionError::StateMismatch { .. }) => "state_mismatch",
        Err(ReexecutionError::ArchiveFull) => "archive_full",
    };
    metrics::counter!("state_reexecutions_total", "verdict" => verdict).increment(1);
    metrics::histogram!("state_reexecution_seconds").record(started.elapsed().as_secs_f64());
    result
}

fn run(
    fork: &mut Fork,
    header: &BlockHeader,
    txs: &[RecoveredTx],
    expected: Option<&BlockGlobals>,
    deadline: Timestamp,
    clock: &dyn Clock,
) -> Result<ExecutedBlock, ReexecutionError> {
    if header.last_archive_root != fork.archive_root() {
        return Err(ReexecutionError::InitialStateMismatch {
            expected: header.last_archive_root,
            fork: fork.archive_root(),
        });
    }
    check(
        header.block_number == fork.block_number() + 1,
        "block_number",
    )?;
    check(header.chain_id == fork.chain_id(), "chain_id")?;
    check(
        header.rollup_version == fork.rollup_version(),
        "rollup_version",
    )?;
    if let Some(field) = expected.and_then(|globals| globals.first_mismatch(header)) {
        return Err(ReexecutionError::GlobalVariablesMismatch { field });
    }
    let hashes: Vec<B256> = txs.iter().map(RecoveredTx::hash).collect();
    if block_body_hash(&hashes) != header.body_hash {
        return Err(ReexecutionError::BodyHashMismatch);
    }
    let mut fees: u128 = 0;
    let mut draft = fork.draft();
    for (index, tx) in txs.iter().enumerate() {
        if index.is_multiple_of(16) && clock.now() >= deadline {
            return Err(ReexecutionError::Timeout {
                processed: index,
                total: txs.len(),
            });
        }
        let fee = execute_tx(&mut draft, tx, header.fee_per_mana, header.fee_recipient)
            .map_err(|reason| ReexecutionError::FailedTxs { index, reason })?;
        fees = fees.saturating_add(fee);
    }
    let mana = txs.len() as u64 * TX_MANA;
    if mana != header.total_mana_used {
        return Err(ReexecutionError::AccountingMismatch {
            field: "total_mana_used",
            claimed: u128::from(header.total_mana_used),
            computed: u128::from(mana),
        });
    }
    if fees != header.total_fees {
        return Err(ReexecutionError::AccountingMismatch {
            field: "total_fees",
            claimed: header.total_fees,
            computed: fees,
        });
    }
    let sealed = draft.seal();
    if sealed.state_root() != header.state_root {
        return Err(ReexecutionError::StateMismatch {
            claimed: header.state_root,
            computed: sealed.state_root(),
        });
    }
    // The draft was made from this fork and its root checked: only a full archive can fail.
    fork.commit_sealed(
        sealed,
        header.clone(),
        txs.iter().map(|tx| tx.tx().clone()).collect(),
    )
    .map_err(|_| ReexecutionError::ArchiveFull)
}

/// Recovers the senders of `txs`, taking already-verified ones from `known` (e.g. the pool) and
/// checking the rest in parallel on `threads` threads. Fails with the position of the first bad
/// tx.
pub fn recover_txs(
    txs: Vec<Tx>,
    domain: &SigningDomain,
    known: &(dyn Fn(&B256) -> Option<RecoveredTx> + Sync),
    threads: NonZeroUsize,
) -> Result<Vec<RecoveredTx>, (usize, TxError)> {
    let chunk = txs.len().div_ceil(threads.get()).max(1);
    let results: Vec<Result<Vec<RecoveredTx>, (usize, TxError)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = txs
            .chunks(chunk)
            .enumerate()
            .map(|(chunk_index, part)| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, tx)| {
                            let index = chunk_index * chunk + i;
                            if let Some(recovered) = known(&tx.hash()) {
                                return Ok(recovered);
                            }
                            crate::exec::validate_stateless(tx.clone(), domain)
                                .map_err(|err| (index, err))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut recovered = Vec::with_capacity(txs.len());
    for part in results {
        recovered.extend(part?);
    }
    Ok(recovered)
}
