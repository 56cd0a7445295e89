//! The Rust fee model against the contract's.

use alloy::primitives::{I256, U256};
use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};
use tandem_l1::{FeeHeader, L1Error, RollupError};

use crate::common::*;

#[tokio::test]
async fn fee_math_matches_the_contract_on_random_inputs() {
    let net = setup(1).await;
    let fees = net.deployment.params.fee_params();
    let mut rng = StdRng::seed_from_u64(0x7a_4d3e);
    // Log-uniform magnitudes reach both the small values and the caps.
    let magnitude = |rng: &mut StdRng| -> u64 { rng.next_u64() >> rng.gen_range(0..64) };
    for case in 0..1_000 {
        let parent = FeeHeader {
            mana_used: magnitude(&mut rng),
            excess_mana: magnitude(&mut rng),
            eth_per_fee_asset: rng
                .gen_range(tandem_l1::MIN_ETH_PER_FEE_ASSET..=tandem_l1::MAX_ETH_PER_FEE_ASSET),
        };
        let mana_used = magnitude(&mut rng);
        let modifier = rng.gen_range(-120i64..=120);

        let on_chain = net
            .rollup
            .computeManaMinFee(parent.pack())
            .call()
            .await
            .unwrap();
        let in_rust = fees.min_fee_per_mana(&parent).unwrap();
        assert_eq!(
            on_chain,
            U256::from(in_rust),
            "case {case}: min fee for {parent:?}"
        );

        let on_chain = net
            .rollup
            .computeChildFeeHeader(
                parent.pack(),
                U256::from(mana_used),
                I256::try_from(modifier).unwrap(),
            )
            .call()
            .await;
        match fees.child_fee_header(&parent, mana_used, modifier) {
            Ok(child) => assert_eq!(
                on_chain.unwrap(),
                child.pack(),
                "case {case}: child of {parent:?}"
            ),
            Err(_) => {
                let err = L1Error::from(on_chain.unwrap_err());
                assert!(
                    matches!(
                        err.revert(),
                        Some(RollupError::InvalidFeeAssetPriceModifier(_))
                    ),
                    "case {case}: {err}"
                );
            }
        }
    }
}
