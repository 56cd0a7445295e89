//! Pipelined simulation: the override plan makes a child of an unlanded parent valid.

use alloy::primitives::U256;
use tandem_l1::{
    RollupError,
    overrides::{ProposedParent, SimulationPlan},
};

use crate::common::*;

#[tokio::test]
async fn pipelined_simulation_needs_the_plan_overrides() {
    let net = setup(4).await;
    let q = net.quorum();
    let fees = net.deployment.params.fee_params();
    let s1 = net.future_slot().await;
    let s2 = s1 + 1;
    let genesis_archive = net.reader.archive_at(0, latest()).await.unwrap();

    // Checkpoint 1: above the mana target and with a price change, so the parent fee header
    // really changes the child's fee.
    let (payload1, body1) = net.payload(s1, genesis_archive, net.min_fee().await, 1_500_000, 60);
    let bundle1 = net.bundle(1, payload1.clone(), body1, q).await;
    net.harness.mine_at(net.slot_start(s1)).await.unwrap();

    // Checkpoint 1 is only proposed. Build checkpoint 2 on it.
    let genesis_fee = net.reader.fee_header_at(0, None, latest()).await.unwrap();
    let parent = ProposedParent {
        number: 1,
        archive: payload1.archive,
        header_hash: payload1.header.hash(),
        slot: s1,
        mana_used: 1_500_000,
        fee_asset_price_modifier: 60,
    };
    let plan = SimulationPlan::new(0, 0, genesis_fee, &[parent], &fees).unwrap();
    assert_eq!(plan.next_checkpoint_number(), 2);
    let overrides = plan.state_override(net.deployment.rollup);
    let fee2 = fees.min_fee_per_mana(&plan.parent_fee_header()).unwrap();
    assert_ne!(
        fee2,
        net.min_fee().await,
        "the parent's fee header must change the fee"
    );
    assert_eq!(
        net.reader
            .mana_min_fee(Some(overrides.clone()), latest())
            .await
            .unwrap(),
        fee2
    );

    let (payload2, body2) = net.payload(s2, payload1.archive, fee2, 10, 0);
    let payload2_hash = payload2.header.hash();
    let bundle2 = net.bundle(2, payload2, body2, q).await;
    let t2 = net.slot_start(s2);
    let proposer2 = net.reader.proposer_at(t2, latest()).await.unwrap().unwrap();

    let without = net
        .reader
        .can_propose_at(t2, payload1.archive, proposer2, None, latest())
        .await
        .unwrap_err();
    assert!(
        matches!(without.revert(), Some(RollupError::InvalidArchive(_))),
        "{without}"
    );
    assert_eq!(
        net.reader
            .can_propose_at(
                t2,
                payload1.archive,
                proposer2,
                Some(overrides.clone()),
                latest()
            )
            .await
            .unwrap(),
        (s2, 2)
    );
    let without = net.simulate(&bundle2, t2, None).await.unwrap_err();
    assert!(
        matches!(
            without.revert(),
            Some(RollupError::InvalidCheckpointNumber(_))
        ),
        "{without}"
    );
    // The header check before gossip (no attestations yet): fails without the plan, passes with
    // it and predicts the fee header propose will store.
    let invalid = net
        .reader
        .validate_header(&bundle2.args, &bundle2.body, t2, None, latest())
        .await
        .unwrap_err();
    assert!(
        matches!(
            invalid.revert(),
            Some(RollupError::InvalidCheckpointNumber(_))
        ),
        "{invalid}"
    );
    let (header_hash, predicted_fee_header) = net
        .reader
        .validate_header(
            &bundle2.args,
            &bundle2.body,
            t2,
            Some(overrides.clone()),
            latest(),
        )
        .await
        .expect("valid under the plan");
    assert_eq!(header_hash, payload2_hash);
    net.simulate(&bundle2, t2, Some(overrides.clone()))
        .await
        .expect("valid under the plan");

    // What the overrides wrote reads back through the views.
    let tips = net
        .rollup
        .getTips()
        .state(overrides.clone())
        .call()
        .await
        .unwrap();
    assert_eq!(
        (tips.checkpointed, tips.proven),
        (U256::from(1), U256::ZERO)
    );
    let archive = net
        .rollup
        .archiveAt(U256::from(1))
        .state(overrides.clone())
        .call()
        .await
        .unwrap();
    assert_eq!(archive, payload1.archive);
    assert_eq!(
        net.reader
            .fee_header_at(1, Some(overrides), latest())
            .await
            .unwrap(),
        plan.parent_fee_header()
    );

    // Checkpoint 1 lands for real; then checkpoint 2 goes through without any override.
    net.land(&bundle1, net.slot_start(s1) + 1).await;
    assert_eq!(
        net.reader.fee_header_at(1, None, latest()).await.unwrap(),
        plan.parent_fee_header()
    );
    net.simulate(&bundle2, t2, None)
        .await
        .expect("valid once the parent is on L1");
    net.land(&bundle2, t2).await;
    assert_eq!(net.reader.tips(latest()).await.unwrap(), (2, 0));
    assert_eq!(
        net.reader
            .checkpoint_log(2, latest())
            .await
            .unwrap()
            .fee_header,
        predicted_fee_header
    );
}
