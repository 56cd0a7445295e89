//! Committees, proposers and seeds against the contract, rotating across epochs.

use alloy::primitives::U256;
use tandem_proto::SigningKey;

use crate::common::*;

#[tokio::test]
async fn committee_proposers_and_seeds_match_the_contract_and_rotate() {
    let net = setup_with_validators(20, 8).await;
    let genesis = net.deployment.params.genesis_time;
    // A snapshot (new seed) per epoch: the owner registers one more validator in each.
    let extra: Vec<SigningKey> = (20..26).map(validator_key).collect();
    for (epoch, key) in (1..=5u64).zip(&extra) {
        net.harness
            .set_next_block_timestamp(genesis + epoch * EPOCH * SLOT + 1)
            .await
            .unwrap();
        net.register(vec![key.address()]).await;
    }
    let mut seeds = Vec::new();
    let mut committees = Vec::new();
    for epoch in 0..=7u64 {
        let committee = net.reader.committee(epoch, latest()).await.unwrap();
        assert_eq!(committee.members.len(), 8);
        let mut distinct = committee.members.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 8, "epoch {epoch}: members repeat");
        for slot in epoch * EPOCH..(epoch + 1) * EPOCH {
            assert_eq!(
                committee.proposer_of(slot),
                net.reader.proposer_of_slot(slot, latest()).await.unwrap(),
                "slot {slot}"
            );
        }
        assert_eq!(
            net.reader.committee(epoch, latest()).await.unwrap().members,
            net.rollup
                .getEpochCommittee(U256::from(epoch))
                .call()
                .await
                .unwrap()
        );
        seeds.push(committee.seed);
        committees.push(committee.members);
    }
    // Epochs 0..=2 use the genesis snapshot (2-epoch lag); from epoch 3 on each epoch has the
    // seed of the snapshot taken two epochs before it.
    assert_eq!(seeds[0], seeds[1]);
    assert_eq!(seeds[1], seeds[2]);
    for epoch in 3..=7 {
        assert_ne!(
            seeds[epoch],
            seeds[epoch - 1],
            "epoch {epoch} kept the seed"
        );
        assert_ne!(
            committees[epoch],
            committees[epoch - 1],
            "epoch {epoch} kept the committee"
        );
    }
}
