//! Simulations against L1, callable from anywhere at any time: the simulator is a cloneable value,
//! not an actor command, so a proposer's pre-checks never queue behind a submission waiting for
//! its L1 block. Reverts come back decoded into the contract's typed errors.
//!
//! Every method reads at the L1 block a [`SimulationAt`] names. A pipelining plan only comes
//! with the block its base was read at ([`SimulationAt::planned`], by hash), so a plan's tips,
//! archive and fee header are never laid over the state of another block; the send-time check
//! reads real L1 at the block it just saw ([`SimulationAt::on_l1`]).

use std::time::Instant;

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, Bytes},
    providers::{DynProvider, Provider},
    rpc::types::{
        BlockOverrides, TransactionRequest,
        simulate::{SimBlock, SimulatePayload},
        state::StateOverride,
    },
    sol_types::{SolCall, SolInterface},
    transports::{RpcError, TransportError},
};
use tandem_l1::{
    FeeHeader, L1Error, L1Reader, ProposeBundle, Rollup, RollupError, SimulationBase,
    overrides::SimulationPlan,
};
use tandem_proto::time::{Slot, Timestamp};

use crate::{config::SimulationMethod, error::PublisherError};

/// What `canProposeAtTime` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProposeSlot {
    /// The slot of the simulated time.
    pub slot: Slot,
    /// The checkpoint number a propose must carry.
    pub next_checkpoint: u64,
}

/// A propose that would succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulatedPropose {
    /// Gas the tx would use (intrinsic and calldata included).
    pub gas_used: u64,
}

/// A header `validateHeader` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedHeader {
    /// The header hash `propose` would store.
    pub header_hash: B256,
    /// The fee header `propose` would store.
    pub fee_header: FeeHeader,
}

/// Where a simulation reads L1: one block, and the pipelining plan built on it, if any.
#[derive(Debug, Clone, Copy)]
pub struct SimulationAt<'a> {
    block: BlockId,
    plan: Option<&'a SimulationPlan>,
}

impl<'a> SimulationAt<'a> {
    /// Real L1 state at `block`, without overrides (e.g. the send-time check, pinned to the
    /// block it read; `BlockId::latest()` for a one-off view).
    pub const fn on_l1(block: BlockId) -> Self {
        Self { block, plan: None }
    }

    /// `plan`'s overrides on the L1 block its base was read at, by hash.
    pub fn planned(base: &SimulationBase, plan: &'a SimulationPlan) -> Self {
        Self {
            block: base.l1_block.id(),
            plan: Some(plan),
        }
    }

    /// The L1 block read.
    pub const fn block(&self) -> BlockId {
        self.block
    }

    /// The plan, if any.
    pub const fn plan(&self) -> Option<&'a SimulationPlan> {
        self.plan
    }

    fn overrides(&self, rollup: Address) -> Option<StateOverride> {
        self.plan
            .filter(|plan| !plan.is_empty())
            .map(|plan| plan.state_override(rollup))
    }
}

/// The `propose` calldata of a bundle.
pub fn propose_calldata(bundle: &ProposeBundle) -> Bytes {
    Rollup::proposeCall {
        args: bundle.args.clone(),
        proposerSignature: bundle.proposer_signature.clone(),
        attestations: bundle.attestations.clone(),
        signers: bundle.signers,
        body: bundle.body.clone(),
    }
    .abi_encode()
    .into()
}

/// Simulations of the rollup's checks, with or without a pipelining plan.
#[derive(Debug, Clone)]
pub struct Simulator {
    reader: L1Reader<DynProvider>,
    from: Address,
    method: SimulationMethod,
}

/// A failed call: the contract's decoded error when the node returned its revert data, undecoded
/// revert data otherwise; any other failure as an L1 error.
fn call_error(error: TransportError) -> PublisherError {
    let data = error
        .as_error_resp()
        .and_then(|payload| payload.as_revert_data());
    match L1Error::from(error) {
        L1Error::Revert(revert) => PublisherError::Revert(revert.into()),
        other => match data {
            Some(data) => PublisherError::UnknownRevert(data),
            None => PublisherError::L1(other),
        },
    }
}

/// JSON-RPC "method not found" (-32601): the node does not implement the call.
fn is_method_not_found(error: &PublisherError) -> bool {
    matches!(
        error,
        PublisherError::L1(L1Error::Transport(RpcError::ErrorResp(payload)))
            if payload.code == -32601
    )
}

fn revert(data: Bytes) -> PublisherError {
    match RollupError::abi_decode(&data) {
        Ok(revert) => PublisherError::Revert(revert.into()),
        Err(_) => PublisherError::UnknownRevert(data),
    }
}

fn block_time(time: u64) -> BlockOverrides {
    BlockOverrides {
        time: Some(time),
        ..Default::default()
    }
}

impl Simulator {
    /// Simulates against `rollup` through `provider`; proposes are simulated as sent by `from`
    /// (an EOA: `propose` only accepts direct calls).
    pub fn new(
        provider: DynProvider,
        rollup: Address,
        from: Address,
        method: SimulationMethod,
    ) -> Self {
        Self {
            reader: L1Reader::new(provider, rollup),
            from,
            method,
        }
    }

    /// The rollup simulated against.
    pub fn rollup(&self) -> Address {
        self.reader.rollup()
    }

    /// The reader the simulator calls views through.
    pub fn reader(&self) -> &L1Reader<DynProvider> {
        &self.reader
    }

    /// A call of the rollup from the simulator's EOA.
    fn request(&self, calldata: Bytes) -> TransactionRequest {
        TransactionRequest::default()
            .from(self.from)
            .to(self.rollup())
            .input(calldata.into())
    }

    fn provider(&self) -> &DynProvider {
        self.reader.provider()
    }

    /// `canProposeAtTime(time, archive, proposer)`.
    pub async fn can_propose_at(
        &self,
        time: Timestamp,
        archive: B256,
        proposer: Address,
        at: SimulationAt<'_>,
    ) -> Result<ProposeSlot, PublisherError> {
        let (slot, next_checkpoint) = self
            .reader
            .can_propose_at(
                time.as_secs(),
                archive,
                proposer,
                at.overrides(self.rollup()),
                at.block(),
            )
            .await?;
        Ok(ProposeSlot {
            slot: Slot(slot),
            next_checkpoint,
        })
    }

    /// The min fee per mana the next checkpoint must carry.
    pub async fn mana_min_fee(&self, at: SimulationAt<'_>) -> Result<u128, PublisherError> {
        Ok(self
            .reader
            .mana_min_fee(at.overrides(self.rollup()), at.block())
            .await?)
    }

    /// `validateHeader(args, body, time)`: every check `propose` makes except the caller and the
    /// signatures, as if mined at `time` (a timestamp in the target slot; the sequencer uses the
    /// slot's start). The sequencer calls it under its plan before gossiping a checkpoint.
    pub async fn validate_header(
        &self,
        args: &Rollup::ProposeArgs,
        body: &Bytes,
        time: Timestamp,
        at: SimulationAt<'_>,
    ) -> Result<ValidatedHeader, PublisherError> {
        let (header_hash, fee_header) = self
            .reader
            .validate_header(
                args,
                body,
                time.as_secs(),
                at.overrides(self.rollup()),
                at.block(),
            )
            .await?;
        Ok(ValidatedHeader {
            header_hash,
            fee_header,
        })
    }

    /// A view call of the rollup, as if its block had timestamp `time` when given. Returns the
    /// raw return data; reverts come back decoded.
    pub async fn view(
        &self,
        calldata: Bytes,
        time: Option<u64>,
        at: SimulationAt<'_>,
    ) -> Result<Bytes, PublisherError> {
        let request = self.request(calldata);
        self.provider()
            .call(request)
            .block(at.block())
            .overrides_opt(at.overrides(self.rollup()))
            .with_block_overrides_opt(time.map(block_time))
            .await
            .map_err(call_error)
    }

    /// Simulates `propose` as if mined at `time` (seconds), with the configured method.
    pub async fn simulate_propose(
        &self,
        bundle: &ProposeBundle,
        time: u64,
        at: SimulationAt<'_>,
    ) -> Result<SimulatedPropose, PublisherError> {
        self.simulate_propose_with(self.method, bundle, time, at)
            .await
    }

    /// [`Simulator::simulate_propose`] with an explicit method.
    pub async fn simulate_propose_with(
        &self,
        method: SimulationMethod,
        bundle: &ProposeBundle,
        time: u64,
        at: SimulationAt<'_>,
    ) -> Result<SimulatedPropose, PublisherError> {
        let started = Instant::now();
        let calldata = propose_calldata(bundle);
        let result = match method {
            SimulationMethod::SimulateV1 => {
                match self.simulate_v1(calldata.clone(), time, at).await {
                    Err(error) if is_method_not_found(&error) => {
                        tracing::warn!(target: "publisher",
                        "the L1 node has no eth_simulateV1; simulating with eth_call + eth_estimateGas");
                        self.call_and_estimate(calldata, time, at).await
                    }
                    other => other,
                }
            }
            SimulationMethod::CallWithOverrides => self.call_and_estimate(calldata, time, at).await,
        };
        metrics::histogram!("publisher_simulation_seconds", "method" => method.as_str())
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn simulate_v1(
        &self,
        calldata: Bytes,
        time: u64,
        at: SimulationAt<'_>,
    ) -> Result<SimulatedPropose, PublisherError> {
        let request = self.request(calldata);
        let mut block = SimBlock::default()
            .with_block_overrides(block_time(time))
            .call(request);
        if let Some(overrides) = at.overrides(self.rollup()) {
            block = block.with_state_overrides(overrides);
        }
        let payload = SimulatePayload {
            block_state_calls: vec![block],
            trace_transfers: false,
            validation: false,
            return_full_transactions: false,
        };
        let blocks = self
            .provider()
            .simulate(&payload)
            .block_id(at.block())
            .await?;
        let call = blocks.first().and_then(|block| block.calls.first()).ok_or(
            PublisherError::Unexpected("eth_simulateV1 returned no call result"),
        )?;
        if call.status {
            return Ok(SimulatedPropose {
                gas_used: call.gas_used,
            });
        }
        let data = call
            .error
            .as_ref()
            .and_then(|error| error.data.clone())
            .filter(|data| !data.is_empty())
            .unwrap_or_else(|| call.return_data.clone());
        Err(revert(data))
    }

    async fn call_and_estimate(
        &self,
        calldata: Bytes,
        time: u64,
        at: SimulationAt<'_>,
    ) -> Result<SimulatedPropose, PublisherError> {
        self.view(calldata.clone(), Some(time), at).await?;
        let request = self.request(calldata);
        let gas_used = self
            .provider()
            .estimate_gas(request)
            .block(at.block())
            .overrides_opt(at.overrides(self.rollup()))
            .with_block_overrides(block_time(time))
            .await
            .map_err(call_error)?;
        Ok(SimulatedPropose { gas_used })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: i64, data: Option<&str>) -> TransportError {
        let mut payload = serde_json::json!({ "code": code, "message": "execution reverted" });
        if let Some(data) = data {
            payload["data"] = serde_json::Value::String(data.to_string());
        }
        RpcError::ErrorResp(serde_json::from_value(payload).unwrap())
    }

    #[test]
    fn a_plan_is_read_at_its_base_block_by_hash() {
        use tandem_l1::{FeeParams, L1BlockRef};
        let base = SimulationBase {
            l1_block: L1BlockRef {
                number: 7,
                hash: B256::repeat_byte(7),
                timestamp: 1_000,
            },
            checkpointed: 0,
            proven: 0,
            tip_archive: B256::ZERO,
            tip_fee_header: FeeHeader::default(),
        };
        let fees = FeeParams {
            mana_target: 1_000_000,
            min_fee_per_mana: 1_000,
            fee_update_fraction: 5_000_000,
        };
        let plan = SimulationPlan::from_base(&base, &[], &fees).unwrap();
        let at = SimulationAt::planned(&base, &plan);
        assert_eq!(at.block(), BlockId::hash(B256::repeat_byte(7)));
        assert!(at.plan().is_some());
        assert!(SimulationAt::on_l1(BlockId::latest()).plan().is_none());
    }

    #[test]
    fn reverts_are_decoded_and_a_missing_method_is_recognised() {
        use alloy::sol_types::SolError;
        let data = tandem_l1::Rollup::InvalidCoinbase {}.abi_encode();
        let hex = format!("0x{}", alloy::hex::encode(&data));
        assert!(matches!(
            call_error(answer(3, Some(&hex))).revert(),
            Some(RollupError::InvalidCoinbase(_))
        ));
        assert!(matches!(
            revert(data.into()).revert(),
            Some(RollupError::InvalidCoinbase(_))
        ));
        assert!(matches!(
            call_error(answer(3, Some("0xdeadbeef"))),
            PublisherError::UnknownRevert(_)
        ));
        assert!(is_method_not_found(&PublisherError::from(answer(
            -32601, None
        ))));
        assert!(!is_method_not_found(&call_error(answer(-32000, None))));
    }
}
