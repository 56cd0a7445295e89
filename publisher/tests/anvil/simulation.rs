//! Simulations on anvil: the send-time drop of a propose whose parent never landed, both
//! simulation methods under a pipelining plan, and validateHeader.

use super::*;

/// Asserts that a simulator call was refused with the contract error `pattern` names.
macro_rules! assert_refused {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {{
        let error = $result.unwrap_err();
        assert!(
            matches!(error.revert(), Some($pattern) $(if $guard)?),
            "{error}"
        );
    }};
}

#[tokio::test]
async fn a_propose_whose_parent_never_landed_is_dropped_at_simulation() {
    let (net, dir, key, publisher) = one_key(4).await;
    let target = net.current_slot().next();
    // Checkpoint 2 on a parent (checkpoint 1) that only ever existed as a proposal.
    let genesis_archive = net.reader.archive_at(0, BlockId::latest()).await.unwrap();
    let parent_archive = common::archive_after(genesis_archive, Slot(target.0 - 1));
    let bundle = net.bundle(2, target, parent_archive).await;
    let handle = publisher
        .handle
        .enqueue(bundle, target, target)
        .await
        .unwrap();
    assert_eq!(
        outcome(handle).await,
        SubmissionOutcome::DroppedAtSimulation(SimulationDrop::Revert(Revert::from(
            RollupError::InvalidCheckpointNumber(Rollup::InvalidCheckpointNumber {
                expected: U256::from(1),
                got: U256::from(2),
            })
        )))
    );
    assert_eq!(net.nonce(key.address()).await, 0, "nothing was sent");
    publisher.stop().await;
    assert!(
        TxStore::open(dir.path())
            .unwrap()
            .records()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn both_simulation_methods_agree_and_honour_the_pipelining_plan() {
    use tandem_publisher::SimulationMethod::{CallWithOverrides, SimulateV1};

    let (net, _store, publisher, parent, slot) = pipelining_parent().await;
    let simulator = publisher.handle.simulator();
    let at = net.slot_start_secs(slot);
    let latest = SimulationAt::on_l1(BlockId::latest());
    let a = simulator
        .simulate_propose_with(SimulateV1, &parent, at, latest)
        .await
        .unwrap();
    let b = simulator
        .simulate_propose_with(CallWithOverrides, &parent, at, latest)
        .await
        .unwrap();
    assert!(a.gas_used > 100_000);
    // eth_estimateGas reports the limit it needs: at least the gas used, within the 64/63 reserve
    // plus refunds.
    assert!(
        b.gas_used >= a.gas_used && b.gas_used < a.gas_used * 11 / 10,
        "{a:?} {b:?}"
    );

    // Checkpoint 2 on the proposed (not landed) checkpoint 1: only the plan makes it valid.
    let child_slot = slot.next();
    let child = child_of(&net, &parent, child_slot).await;
    let (base, plan) = net.plan_on_genesis(&parent).await;
    let planned = SimulationAt::planned(&base, &plan);
    let bare = SimulationAt::on_l1(base.l1_block.id());
    let child_at = net.slot_start_secs(child_slot);
    for method in [SimulateV1, CallWithOverrides] {
        assert_refused!(
            simulator
                .simulate_propose_with(method, &child, child_at, bare)
                .await,
            RollupError::InvalidCheckpointNumber(e)
                if e.expected == U256::from(1) && e.got == U256::from(2)
        );
        simulator
            .simulate_propose_with(method, &child, child_at, planned)
            .await
            .unwrap_or_else(|err| panic!("{method:?}: {err}"));
    }
    let proposer = net
        .reader
        .proposer_at(child_at, base.l1_block.id())
        .await
        .unwrap()
        .unwrap();
    let can = simulator
        .can_propose_at(
            tandem_proto::time::Timestamp::from_secs(child_at),
            parent.args.archive,
            proposer,
            planned,
        )
        .await
        .unwrap();
    assert_eq!(can.next_checkpoint, 2);
    assert_eq!(can.slot, child_slot);
    assert_refused!(
        simulator
            .can_propose_at(
                tandem_proto::time::Timestamp::from_secs(child_at),
                B256::repeat_byte(9),
                proposer,
                planned,
            )
            .await,
        RollupError::InvalidArchive(_)
    );
    publisher.stop().await;
}

/// A net with a running publisher (and its store), and checkpoint 1 for a slot two ahead
/// (only ever proposed: the parent a pipelined checkpoint 2 builds on).
async fn pipelining_parent() -> (
    Net,
    tempfile::TempDir,
    common::Running,
    tandem_l1::ProposeBundle,
    Slot,
) {
    let (net, store, _, publisher) = one_key(4).await;
    let slot = Slot(net.current_slot().0 + 2);
    let genesis_archive = net.reader.archive_at(0, BlockId::latest()).await.unwrap();
    let parent = net.bundle(1, slot, genesis_archive).await;
    (net, store, publisher, parent, slot)
}

/// Checkpoint 2 for `slot` on top of `parent` (checkpoint 1), paying L1's current min fee.
async fn child_of(
    net: &Net,
    parent: &tandem_l1::ProposeBundle,
    slot: Slot,
) -> tandem_l1::ProposeBundle {
    let fee = net
        .reader
        .mana_min_fee(None, BlockId::latest())
        .await
        .unwrap();
    net.bundle_with_fee(
        2,
        slot,
        parent.args.archive,
        fee,
        Bytes::from(vec![1u8; 64]),
    )
    .await
}

#[tokio::test]
async fn validate_header_accepts_the_built_header_and_names_what_a_tampered_one_breaks() {
    let (net, _store, publisher, parent, slot) = pipelining_parent().await;
    let simulator = publisher.handle.simulator();
    let child_slot = slot.next();
    let child = child_of(&net, &parent, child_slot).await;
    // As the sequencer checks it before gossiping: under the plan (the parent only proposed),
    // at a time inside the target slot.
    let (base, plan) = net.plan_on_genesis(&parent).await;
    let planned = SimulationAt::planned(&base, &plan);
    let inside = tandem_proto::time::Timestamp::from_secs(net.slot_start_secs(child_slot) + 1);
    let valid = simulator
        .validate_header(&child.args, &child.body, inside, planned)
        .await
        .unwrap();
    assert_eq!(
        valid.header_hash,
        tandem_l1::header_from_sol(&child.args.header).hash()
    );
    assert_eq!(valid.fee_header.mana_used, child.args.header.totalManaUsed);

    // The parent is only proposed: without the plan, L1 expects checkpoint 1.
    assert_refused!(
        simulator
            .validate_header(
                &child.args,
                &child.body,
                inside,
                SimulationAt::on_l1(base.l1_block.id()),
            )
            .await,
        RollupError::InvalidCheckpointNumber(e) if e.expected == U256::from(1)
    );
    // A header on another archive.
    let mut tampered = child.args.clone();
    tampered.header.lastArchiveRoot = B256::repeat_byte(0xee);
    assert_refused!(
        simulator
            .validate_header(&tampered, &child.body, inside, planned)
            .await,
        RollupError::InvalidArchive(e)
            if e.expected == parent.args.archive && e.got == B256::repeat_byte(0xee)
    );
    // A body that is not the one the header commits to.
    assert_refused!(
        simulator
            .validate_header(&child.args, &Bytes::from(vec![2u8; 64]), inside, planned)
            .await,
        RollupError::InvalidBodyHash(e) if e.expected == child.args.header.bodyHash
    );
    // The right header at a time outside its slot.
    assert_refused!(
        simulator
            .validate_header(
                &child.args,
                &child.body,
                tandem_proto::time::Timestamp::from_secs(net.slot_start_secs(child_slot.next())),
                planned,
            )
            .await,
        RollupError::InvalidSlot(_)
    );
    publisher.stop().await;
}
