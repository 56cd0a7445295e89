//! Deployment: the constructor and `RollupParams::validate` apply one body-cap rule with the
//! same numbers.

use alloy::primitives::U256;
use tandem_l1::{
    L1Error, MEMPOOL_TX_SIZE_LIMIT, TX_ENVELOPE_BYTES, max_checkpoint_body_bytes_for,
    propose_calldata_len,
};

use crate::common::*;

#[tokio::test]
async fn the_constructor_and_validate_apply_the_same_body_cap_rule() {
    let net = setup(4).await;
    assert_eq!(
        net.rollup.MEMPOOL_TX_SIZE_LIMIT().call().await.unwrap(),
        U256::from(MEMPOOL_TX_SIZE_LIMIT)
    );
    assert_eq!(
        net.rollup.TX_ENVELOPE_BYTES().call().await.unwrap(),
        U256::from(TX_ENVELOPE_BYTES)
    );
    for (attestations, body) in [(0usize, 0usize), (3, 1), (33, 122_880), (171, 113_696)] {
        assert_eq!(
            net.rollup
                .proposeCalldataLength(U256::from(attestations), U256::from(body))
                .call()
                .await
                .unwrap(),
            U256::from(propose_calldata_len(attestations, body)),
            "{attestations} attestations, {body} body bytes"
        );
    }
    for committee in [48u64, 256] {
        let cap = max_checkpoint_body_bytes_for(committee as usize) as u64;
        let mut params = net.deployment.params.clone();
        params.committee_size = committee;
        params.max_checkpoint_body_bytes = cap;
        net.harness
            .deploy(&params, &[])
            .await
            .unwrap_or_else(|err| panic!("committee {committee}, cap {cap}: {err}"));

        params.max_checkpoint_body_bytes = cap + 1;
        let err = net.harness.deploy(&params, &[]).await.unwrap_err();
        assert!(
            matches!(
                err,
                L1Error::InvalidParams {
                    field: "max_checkpoint_body_bytes",
                    ..
                }
            ),
            "committee {committee}: {err}"
        );
        // Sent around the Rust check, the constructor refuses the same value.
        assert_eq!(
            net.constructor_refusal(&params).await,
            "maxCheckpointBodyBytes",
            "committee {committee}"
        );
    }
}
