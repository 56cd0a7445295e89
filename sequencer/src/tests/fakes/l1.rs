//! L1, scripted.

use std::{sync::Mutex, time::Duration};

use alloy::primitives::Bytes;
use futures::FutureExt;
use tandem_l1::{
    FeeHeader, FeeParams, L1BlockRef, Rollup, SimulationBase, overrides::SimulationPlan,
};
use tandem_proto::{Address, B256, time::Timestamp};
use tandem_publisher::{ProposeSlot, ValidatedHeader};

use super::{FEE, slot_clock};
use crate::deps::{DepFuture, L1Simulator};

/// L1, scripted: records every call.
#[derive(Default)]
pub(crate) struct FakeL1 {
    pub(crate) checkpointed: Mutex<u64>,
    pub(crate) calls: Mutex<Vec<&'static str>>,
    /// `(time, archive, proposer, plan)` of every `canProposeAt`.
    pub(crate) can_propose: Mutex<Vec<(Timestamp, B256, Address, SimulationPlan)>>,
    /// `None`: answer what was asked for (slot of the time, the plan's next checkpoint).
    pub(crate) answer: Mutex<Option<ProposeSlot>>,
    pub(crate) refuse_header: Mutex<bool>,
    /// Reading the simulation base fails.
    pub(crate) fail_base: Mutex<bool>,
    /// `validateHeader` takes this long (clock time: the job's deadlines pass meanwhile).
    pub(crate) header_delay: Mutex<Option<Duration>>,
}

pub(crate) fn fee_params() -> FeeParams {
    FeeParams {
        mana_target: 1_000_000,
        min_fee_per_mana: 1_000,
        fee_update_fraction: 5_000_000,
    }
}

impl L1Simulator for FakeL1 {
    fn simulation_base(&self) -> DepFuture<'_, SimulationBase> {
        self.calls.lock().unwrap().push("simulation_base");
        let checkpointed = *self.checkpointed.lock().unwrap();
        let fail = *self.fail_base.lock().unwrap();
        async move {
            if fail {
                return Err(tandem_publisher::PublisherError::InvalidRequest(
                    "L1 unreachable in the test",
                )
                .into());
            }
            Ok(SimulationBase {
                l1_block: L1BlockRef {
                    number: 7,
                    hash: B256::repeat_byte(7),
                    timestamp: 0,
                },
                checkpointed,
                proven: 0,
                tip_archive: B256::ZERO,
                tip_fee_header: FeeHeader {
                    excess_mana: 0,
                    mana_used: 0,
                    eth_per_fee_asset: 1_000_000_000_000,
                },
            })
        }
        .boxed()
    }

    fn can_propose_at<'a>(
        &'a self,
        time: Timestamp,
        archive: B256,
        proposer: Address,
        _base: &'a SimulationBase,
        plan: &'a SimulationPlan,
    ) -> DepFuture<'a, ProposeSlot> {
        self.calls.lock().unwrap().push("can_propose_at");
        self.can_propose
            .lock()
            .unwrap()
            .push((time, archive, proposer, plan.clone()));
        let answer = self.answer.lock().unwrap().unwrap_or(ProposeSlot {
            slot: slot_clock().slot_at(time).unwrap(),
            next_checkpoint: plan.next_checkpoint_number(),
        });
        async move { Ok(answer) }.boxed()
    }

    fn mana_min_fee<'a>(
        &'a self,
        _base: &'a SimulationBase,
        _plan: &'a SimulationPlan,
    ) -> DepFuture<'a, u128> {
        self.calls.lock().unwrap().push("mana_min_fee");
        async { Ok(FEE) }.boxed()
    }

    fn validate_header<'a>(
        &'a self,
        _args: &'a Rollup::ProposeArgs,
        _body: &'a Bytes,
        _time: Timestamp,
        _base: &'a SimulationBase,
        _plan: &'a SimulationPlan,
    ) -> DepFuture<'a, ValidatedHeader> {
        self.calls.lock().unwrap().push("validate_header");
        let refuse = *self.refuse_header.lock().unwrap();
        let delay = *self.header_delay.lock().unwrap();
        async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            if refuse {
                return Err(tandem_publisher::PublisherError::InvalidRequest(
                    "refused by the test",
                )
                .into());
            }
            Ok(ValidatedHeader {
                header_hash: B256::ZERO,
                fee_header: FeeHeader::default(),
            })
        }
        .boxed()
    }
}
