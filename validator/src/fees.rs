//! The fee a checkpoint must carry: L1's fee model applied to the parent's fee header.
//!
//! The min fee per mana of checkpoint K is a pure function of K−1's fee header
//! ([`FeeParams::min_fee_per_mana`]). Under pipelining K−1 is usually still on its way to L1,
//! so its fee header is predicted exactly as the publisher's simulation plan overrides it
//! ([`SimulationPlan::parent_fee_header`]): from the fee header L1 stores for the newest
//! checkpoint it holds, rolled forward over the proposed checkpoints above it (their mana used
//! and fee-asset price modifier). One computation for the sequencer (the fee it builds with)
//! and the validator (the fee it accepts).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use alloy::eips::BlockId;
use alloy::{eips::BlockNumberOrTag, providers::Provider};
use futures::{FutureExt, future::BoxFuture};
use tandem_archiver::{ArchiverResult, ReadView};
use tandem_l1::{
    FeeHeader, FeeParams, L1Error, L1Reader,
    overrides::{PlanError, ProposedParent, SimulationPlan},
};
use tandem_proto::B256;

use crate::error::{ValidatorError, ValidatorResult};

/// How far below a checkpoint the walk to an L1 checkpoint may go (the depth guard keeps
/// proposals within checkpointed + 2; anything deeper cannot land anyway).
pub const MAX_PROPOSED_FEE_DEPTH: usize = 8;
/// L1 fee headers the [`L1FeeOracle`] keeps in memory.
pub const FEE_HEADER_CACHE_CAPACITY: usize = 64;
/// Longest one fee-header read may take (an RPC that hangs must not hold a block for ever).
pub const FEE_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Reads of one fee header before the fee is given up as unavailable: an error, a timeout or
/// an L1 node behind the archiver (load-balanced endpoints lag) is retried.
pub const FEE_READ_ATTEMPTS: u32 = 3;
/// Pause between two reads.
pub const FEE_READ_RETRY_DELAY: Duration = Duration::from_millis(250);

/// What fee checks need from L1 (a narrow trait, so the rule is testable without a node).
pub trait FeeOracle: Send + Sync + 'static {
    /// The deployment's fee parameters.
    fn params(&self) -> FeeParams;

    /// The fee header L1 stores for checkpoint `number` if L1's checkpoint `number` ends at
    /// `archive` with header hash `header_hash`; `None` when L1 holds no such checkpoint
    /// (another one there, or none yet).
    fn l1_fee_header(
        &self,
        number: u64,
        archive: B256,
        header_hash: B256,
    ) -> BoxFuture<'_, ValidatorResult<Option<FeeHeader>>>;
}

/// The checkpoints a fee prediction rests on, read from one archiver view: the newest
/// checkpoint known from L1 at or below the parent, and the proposed ones above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeBasis {
    /// Number of the newest L1 checkpoint at or below the parent.
    pub l1_checkpoint: u64,
    /// Its archive root (how the oracle knows L1 holds the same checkpoint).
    pub l1_archive: B256,
    /// Its header hash: L1's fee header depends on the header's mana and the payload's
    /// modifier, which the archive root does not commit to; the log's hash must equal it.
    pub l1_header_hash: B256,
    /// Proposed checkpoints above it up to the parent, lowest first.
    pub proposed: Vec<ProposedParent>,
}

impl FeeBasis {
    /// The basis for a child of checkpoint `parent`, from `view`; `None` when the archiver
    /// knows `parent` (or a checkpoint between it and L1's) neither from L1 nor as a proposed
    /// checkpoint.
    pub fn read(view: &ReadView<'_>, parent: u64) -> ArchiverResult<Option<Self>> {
        let mut proposed = Vec::new();
        let mut number = parent;
        loop {
            if let Some(record) = view.checkpoint(number)? {
                proposed.reverse();
                return Ok(Some(Self {
                    l1_checkpoint: number,
                    l1_archive: record.payload.archive,
                    // L1's genesis log carries a zero header hash.
                    l1_header_hash: if number == 0 {
                        B256::ZERO
                    } else {
                        record.payload.header.hash()
                    },
                    proposed,
                }));
            }
            let Some(checkpoint) = view.proposed_checkpoint(number)? else {
                return Ok(None);
            };
            if proposed.len() >= MAX_PROPOSED_FEE_DEPTH {
                return Ok(None);
            }
            let header = &checkpoint.payload.header;
            proposed.push(ProposedParent {
                number,
                archive: checkpoint.payload.archive,
                header_hash: header.hash(),
                slot: header.slot,
                mana_used: checkpoint.total_mana_used,
                fee_asset_price_modifier: checkpoint.payload.fee_asset_price_modifier,
            });
            let Some(below) = number.checked_sub(1) else {
                return Ok(None);
            };
            number = below;
        }
    }
}

/// Why the required fee could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeeUnknown {
    /// L1 does not hold the checkpoint the archiver says it does (a reorg, or the L1 node is
    /// behind the archiver).
    #[error("L1 does not hold checkpoint {number} with archive {archive}")]
    L1Disagrees {
        /// The checkpoint.
        number: u64,
        /// The archiver's archive root for it.
        archive: B256,
    },
    /// The proposed checkpoints do not roll forward (not sequential, or a fee header that the
    /// contract would refuse to compute).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The fee formula failed on the predicted parent fee header.
    #[error(transparent)]
    Fee(#[from] tandem_l1::FeeError),
    /// L1 could not be read: every one of [`FEE_READ_ATTEMPTS`] reads failed or timed out.
    #[error("L1 fee header of checkpoint {number} unreadable after {attempts} attempts")]
    L1Unavailable {
        /// The checkpoint.
        number: u64,
        /// Reads made.
        attempts: u32,
    },
}

/// The fee per mana a child of the basis's last checkpoint must carry, or why it cannot be
/// derived from what L1 and the archiver hold. Each L1 read is bounded by
/// [`FEE_READ_TIMEOUT`]; a failed, timed-out or disagreeing read is retried, up to
/// [`FEE_READ_ATTEMPTS`] reads in all.
pub async fn required_fee_per_mana(
    oracle: &dyn FeeOracle,
    basis: &FeeBasis,
) -> Result<u128, FeeUnknown> {
    let number = basis.l1_checkpoint;
    let mut unknown = FeeUnknown::L1Unavailable {
        number,
        attempts: FEE_READ_ATTEMPTS,
    };
    for attempt in 1..=FEE_READ_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(FEE_READ_RETRY_DELAY).await;
        }
        let read = oracle.l1_fee_header(number, basis.l1_archive, basis.l1_header_hash);
        match tokio::time::timeout(FEE_READ_TIMEOUT, read).await {
            Ok(Ok(Some(l1_fee_header))) => return predict(&oracle.params(), l1_fee_header, basis),
            // The L1 node may lag the archiver: ask again; after the last read it disagrees.
            Ok(Ok(None)) => {
                unknown = FeeUnknown::L1Disagrees {
                    number,
                    archive: basis.l1_archive,
                };
            }
            Ok(Err(err)) => {
                tracing::warn!(target: "validator::fees", number, attempt, error = %err, "L1 fee header read failed");
                unknown = FeeUnknown::L1Unavailable {
                    number,
                    attempts: attempt,
                };
            }
            Err(_) => {
                tracing::warn!(target: "validator::fees", number, attempt, timeout = ?FEE_READ_TIMEOUT, "L1 fee header read timed out");
                unknown = FeeUnknown::L1Unavailable {
                    number,
                    attempts: attempt,
                };
            }
        }
    }
    Err(unknown)
}

/// The pure part: the publisher's plan rolls the L1 fee header over the proposed parents.
fn predict(
    params: &FeeParams,
    l1_fee_header: FeeHeader,
    basis: &FeeBasis,
) -> Result<u128, FeeUnknown> {
    // The proven tip only shapes the plan's storage diff, not the parent fee header.
    let plan = SimulationPlan::new(
        basis.l1_checkpoint,
        0,
        l1_fee_header,
        &basis.proposed,
        params,
    )?;
    Ok(params.min_fee_per_mana(&plan.parent_fee_header())?)
}

/// [`FeeOracle`] over the rollup contract: fee headers read at the latest L1 block (pinned by
/// hash, so the archive check and the fee header come from one state), cached by checkpoint
/// number and header hash (what the fee header is a function of: every block of a checkpoint,
/// every node's retry and a catch-up of the same basis hit it).
pub struct L1FeeOracle<P> {
    reader: L1Reader<P>,
    params: FeeParams,
    cache: Arc<Mutex<BTreeMap<(u64, B256), FeeHeader>>>,
}

impl<P> std::fmt::Debug for L1FeeOracle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1FeeOracle")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl<P: Provider + Clone + 'static> L1FeeOracle<P> {
    /// An oracle for a deployment whose fee parameters are `params` (the node checks them
    /// against L1 at start).
    pub fn new(reader: L1Reader<P>, params: FeeParams) -> Self {
        Self {
            reader,
            params,
            cache: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// An oracle with the fee parameters read from the contract.
    pub async fn from_l1(reader: L1Reader<P>) -> ValidatorResult<Self> {
        let params = reader.config(BlockId::latest()).await?.fee_params();
        Ok(Self::new(reader, params))
    }

    async fn read(
        &self,
        number: u64,
        archive: B256,
        header_hash: B256,
    ) -> ValidatorResult<Option<FeeHeader>> {
        if let Some(header) = self.cached(number, header_hash) {
            return Ok(Some(header));
        }
        let head = self
            .reader
            .provider()
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(L1Error::from)?
            .ok_or(L1Error::Unexpected("the L1 node has no latest block"))?;
        let at = BlockId::hash(head.header.hash);
        let (checkpointed, _) = self.reader.tips(at).await?;
        if number > checkpointed || self.reader.archive_at(number, at).await? != archive {
            return Ok(None);
        }
        let log = self.reader.checkpoint_log(number, at).await?;
        if log.header_hash != header_hash {
            return Ok(None);
        }
        let header = log.fee_header;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.insert((number, header_hash), header);
        while cache.len() > FEE_HEADER_CACHE_CAPACITY {
            cache.pop_first();
        }
        Ok(Some(header))
    }

    fn cached(&self, number: u64, header_hash: B256) -> Option<FeeHeader> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(number, header_hash))
            .copied()
    }
}

impl<P: Provider + Clone + 'static> FeeOracle for L1FeeOracle<P> {
    fn params(&self) -> FeeParams {
        self.params
    }

    fn l1_fee_header(
        &self,
        number: u64,
        archive: B256,
        header_hash: B256,
    ) -> BoxFuture<'_, ValidatorResult<Option<FeeHeader>>> {
        self.read(number, archive, header_hash).boxed()
    }
}

impl From<FeeUnknown> for ValidatorError {
    fn from(err: FeeUnknown) -> Self {
        Self::FeeUnknown(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_l1::PRICE_PRECISION;

    fn params() -> FeeParams {
        FeeParams {
            mana_target: 100,
            min_fee_per_mana: 1_000,
            fee_update_fraction: 1_000,
        }
    }

    fn parent(number: u64, mana_used: u64, modifier: i64) -> ProposedParent {
        ProposedParent {
            number,
            archive: B256::repeat_byte(number as u8),
            header_hash: B256::ZERO,
            slot: number,
            mana_used,
            fee_asset_price_modifier: modifier,
        }
    }

    const GENESIS: FeeHeader = FeeHeader {
        mana_used: 0,
        excess_mana: 0,
        eth_per_fee_asset: PRICE_PRECISION,
    };

    #[test]
    fn an_l1_parent_gives_its_own_min_fee() {
        let basis = FeeBasis {
            l1_checkpoint: 0,
            l1_archive: B256::ZERO,
            l1_header_hash: B256::ZERO,
            proposed: vec![],
        };
        assert_eq!(predict(&params(), GENESIS, &basis), Ok(1_000));
    }

    #[test]
    fn proposed_parents_roll_the_fee_header_forward() {
        let basis = FeeBasis {
            l1_checkpoint: 0,
            l1_archive: B256::ZERO,
            l1_header_hash: B256::ZERO,
            proposed: vec![parent(1, 600, 100)],
        };
        // Excess 500 over a fraction of 1,000: 1,000·e^0.5 ≈ 1,648 (Taylor, floored), at a
        // price raised by 1 %: ·1/1.01.
        let child = params().child_fee_header(&GENESIS, 600, 100).unwrap();
        let expected = params().min_fee_per_mana(&child).unwrap();
        assert_eq!(predict(&params(), GENESIS, &basis), Ok(expected));
        assert!(
            expected > 1_000,
            "congestion must raise the fee: {expected}"
        );
        let gapped = FeeBasis {
            proposed: vec![parent(2, 600, 0)],
            ..basis
        };
        assert!(matches!(
            predict(&params(), GENESIS, &gapped),
            Err(FeeUnknown::Plan(PlanError::NotSequential { .. }))
        ));
    }
}
