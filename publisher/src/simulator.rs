//! Simulations against L1, callable from anywhere at any time: the simulator is a cloneable value,
//! not an actor command, so a proposer's pre-checks never queue behind a submission waiting for
//! its L1 block. Reverts come back decoded into the contract's typed errors.
//!
//! Each contract check is one method over [`Simulator::view`] or the propose simulation, so a new
//! view (e.g. `validateHeader`) is one more method of a few lines.

use std::time::Instant;

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, Bytes},
    providers::{DynProvider, Provider},
    rpc::types::{
        BlockOverrides, TransactionRequest,
        simulate::{SimBlock, SimulatePayload},
        state::StateOverride,
    },
    sol_types::SolCall,
    transports::{RpcError, TransportError},
};
use tandem_l1::{L1Reader, ProposeBundle, Rollup, RollupRevert, overrides::SimulationPlan};
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

fn overrides(plan: Option<&SimulationPlan>, rollup: Address) -> Option<StateOverride> {
    plan.filter(|plan| !plan.is_empty())
        .map(|plan| plan.state_override(rollup))
}

/// A failed call: the contract's decoded error when the node returned revert data.
fn call_error(error: TransportError) -> PublisherError {
    if let RpcError::ErrorResp(payload) = &error
        && let Some(data) = payload.as_revert_data()
    {
        return revert(data);
    }
    error.into()
}

/// JSON-RPC "method not found" (-32601): the node does not implement the call.
fn is_method_not_found(error: &PublisherError) -> bool {
    matches!(
        error,
        PublisherError::L1(tandem_l1::L1Error::Transport(RpcError::ErrorResp(payload)))
            if payload.code == -32601
    )
}

fn revert(data: Bytes) -> PublisherError {
    match RollupRevert::decode(&data) {
        Some(revert) => PublisherError::Revert(revert),
        None => PublisherError::UnknownRevert(data),
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

    /// `canProposeAtTime(at, archive, proposer)` under `plan`.
    pub async fn can_propose_at(
        &self,
        at: Timestamp,
        archive: B256,
        proposer: Address,
        plan: Option<&SimulationPlan>,
    ) -> Result<ProposeSlot, PublisherError> {
        let (slot, next_checkpoint) = self
            .reader
            .can_propose_at(
                at.as_secs(),
                archive,
                proposer,
                overrides(plan, self.rollup()),
            )
            .await?;
        Ok(ProposeSlot {
            slot: Slot(slot),
            next_checkpoint,
        })
    }

    /// The min fee per mana the next checkpoint must carry, under `plan`.
    pub async fn mana_min_fee(
        &self,
        plan: Option<&SimulationPlan>,
    ) -> Result<u128, PublisherError> {
        Ok(self
            .reader
            .mana_min_fee(overrides(plan, self.rollup()))
            .await?)
    }

    /// A view call of the rollup at the latest block, as if that block had timestamp `at`, under
    /// `plan`. Returns the raw return data; reverts come back decoded.
    pub async fn view(
        &self,
        calldata: Bytes,
        at: Option<u64>,
        plan: Option<&SimulationPlan>,
    ) -> Result<Bytes, PublisherError> {
        let request = self.request(calldata);
        let call = self
            .provider()
            .call(request)
            .block(BlockNumberOrTag::Latest.into())
            .overrides_opt(overrides(plan, self.rollup()))
            .with_block_overrides_opt(at.map(|time| BlockOverrides {
                time: Some(time),
                ..Default::default()
            }));
        call.await.map_err(call_error)
    }

    /// Simulates `propose` on the latest L1 state as if mined at `at` (seconds), under `plan`
    /// (`None` at send time: the parent must really be on L1), with the configured method.
    pub async fn simulate_propose(
        &self,
        bundle: &ProposeBundle,
        at: u64,
        plan: Option<&SimulationPlan>,
    ) -> Result<SimulatedPropose, PublisherError> {
        self.simulate_propose_with(self.method, bundle, at, plan)
            .await
    }

    /// [`Simulator::simulate_propose`] with an explicit method.
    pub async fn simulate_propose_with(
        &self,
        method: SimulationMethod,
        bundle: &ProposeBundle,
        at: u64,
        plan: Option<&SimulationPlan>,
    ) -> Result<SimulatedPropose, PublisherError> {
        let started = Instant::now();
        let calldata = propose_calldata(bundle);
        let result = match method {
            SimulationMethod::SimulateV1 => {
                match self.simulate_v1(calldata.clone(), at, plan).await {
                    Err(error) if is_method_not_found(&error) => {
                        tracing::warn!(target: "publisher",
                        "the L1 node has no eth_simulateV1; simulating with eth_call + eth_estimateGas");
                        self.call_and_estimate(calldata, at, plan).await
                    }
                    other => other,
                }
            }
            SimulationMethod::CallWithOverrides => self.call_and_estimate(calldata, at, plan).await,
        };
        metrics::histogram!("publisher_simulation_seconds", "method" => method.as_str())
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn simulate_v1(
        &self,
        calldata: Bytes,
        at: u64,
        plan: Option<&SimulationPlan>,
    ) -> Result<SimulatedPropose, PublisherError> {
        let request = self.request(calldata);
        let mut block = SimBlock::default()
            .with_block_overrides(BlockOverrides {
                time: Some(at),
                ..Default::default()
            })
            .call(request);
        if let Some(overrides) = overrides(plan, self.rollup()) {
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
            .block_id(BlockNumberOrTag::Latest.into())
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
        at: u64,
        plan: Option<&SimulationPlan>,
    ) -> Result<SimulatedPropose, PublisherError> {
        self.view(calldata.clone(), Some(at), plan).await?;
        let request = self.request(calldata);
        let gas_used = self
            .provider()
            .estimate_gas(request)
            .block(BlockNumberOrTag::Latest.into())
            .overrides_opt(overrides(plan, self.rollup()))
            .with_block_overrides(BlockOverrides {
                time: Some(at),
                ..Default::default()
            })
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
    fn reverts_are_decoded_and_a_missing_method_is_recognised() {
        use alloy::sol_types::SolError;
        let data = tandem_l1::Rollup::InvalidCoinbase {}.abi_encode();
        let hex = format!("0x{}", alloy::hex::encode(&data));
        assert!(matches!(
            call_error(answer(3, Some(&hex))),
            PublisherError::Revert(RollupRevert::InvalidCoinbase)
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
