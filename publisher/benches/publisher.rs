//! Figures of the publisher on a local anvil (prints them; asserts nothing):
//!
//! 1. Latency of one propose simulation — `eth_simulateV1` vs `eth_call` (+ `eth_estimateGas` for
//!    the gas) with a block-time override — for a full-body propose at committee 48, at send time
//!    (no state overrides) and as a pipelined pre-check (simulation-plan overrides).
//! 2. Gas of that propose when it lands (through the publisher: schedule, simulate, sign,
//!    persist, send, receipt).
//! 3. L1 inclusion delay over 50 consecutive slots (S = 4 s, E = 1 s, committee 4): each
//!    checkpoint enqueued early in its build slot on top of the previous, still unlanded, one.
//!
//! Left out: a remote L1 node (network latency), real mempool competition, blobs.
//! Run: `cargo bench -p tandem-publisher` (anvil from `.tools/bin`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use alloy::{
    eips::{BlockId, BlockNumberOrTag},
    primitives::Bytes,
    providers::Provider,
};
use common::{Net, archive_after, fast_config};
use tandem_proto::{
    Address as ProtoAddress, Block, BlockHeader, SigningDomain, Tx, TxPayload,
    encode_checkpoint_body, time::Slot,
};
use tandem_publisher::{SimulationAt, SimulationMethod, SubmissionOutcome};

/// The body of a full checkpoint: the most txs that fit the deployment's body cap (120 KiB by
/// default, "Protocol and L1 hardening").
const SIMULATIONS: usize = 40;
const INCLUSION_SLOTS: u64 = 50;

fn full_body(chain_id: u64, cap: usize) -> Bytes {
    let domain = SigningDomain {
        chain_id,
        rollup: ProtoAddress::repeat_byte(1),
    };
    let sender = common::validator_key(500);
    let mut txs = Vec::new();
    let mut nonce = 0;
    loop {
        let tx = Tx::sign(
            TxPayload {
                chain_id,
                nonce,
                to: ProtoAddress::repeat_byte(0x33),
                amount: 1_000 + nonce as u128,
                max_fee_per_mana: 1_000,
                mana_limit: 21_000,
            },
            &domain,
            &sender,
        );
        txs.push(tx);
        nonce += 1;
        let encode = |txs: &[Tx]| {
            encode_checkpoint_body(&[Block {
                header: BlockHeader::default(),
                txs: txs.to_vec(),
            }])
        };
        if encode(&txs).len() > cap {
            txs.pop();
            return Bytes::from(encode(&txs));
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "  {label:<46} p50 {:>7.2} ms  p99 {:>7.2} ms  mean {:>7.2} ms",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
    );
}

async fn latest_hash(net: &Net) -> alloy::primitives::B256 {
    net.harness
        .provider()
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .hash
}

/// The EIP-7623 floor of a tx with `input`: 21,000 + 10 per token (zero byte 1, other 4).
fn calldata_floor(input: &[u8]) -> u64 {
    let zeros = input.iter().filter(|b| **b == 0).count() as u64;
    let tokens = zeros + 4 * (input.len() as u64 - zeros);
    21_000 + 10 * tokens
}

async fn simulations_and_gas() {
    let net = Net::start(4, 48).await;
    let dir = tempfile::tempdir().unwrap();
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![net.publisher_key(0)])
        .await;
    let simulator = publisher.handle.simulator();
    let cap = usize::try_from(net.deployment.params.max_checkpoint_body_bytes).unwrap();
    let body = full_body(net.deployment.params.l2_chain_id, cap);
    let fee = net
        .reader
        .mana_min_fee(None, BlockId::latest())
        .await
        .unwrap();
    let genesis_archive = net.reader.archive_at(0, BlockId::latest()).await.unwrap();
    let slot = Slot(net.current_slot().0 + 2);
    let parent = net
        .bundle_with_fee(1, slot, genesis_archive, fee, body.clone())
        .await;
    let child_slot = slot.next();
    let child = net
        .bundle_with_fee(2, child_slot, parent.args.archive, fee, body.clone())
        .await;
    let (base, plan) = net.plan_on_genesis(&parent).await;
    let planned = SimulationAt::planned(&base, &plan);
    let calldata = tandem_publisher::propose_calldata(&parent);
    println!(
        "propose: committee 48, {} attestations, body {} bytes (cap {cap}), calldata {} bytes \
         ({} zero), EIP-7623 floor {}, anvil --hardfork {}",
        parent.attestation_count(),
        body.len(),
        calldata.len(),
        calldata.iter().filter(|b| **b == 0).count(),
        calldata_floor(&calldata),
        tandem_l1::harness::HARDFORK,
    );
    println!("simulation latency on local anvil ({SIMULATIONS} calls each):");
    let at = net.slot_start_secs(slot);
    let child_at = net.slot_start_secs(child_slot);
    let mut gas = Vec::new();
    for method in [
        SimulationMethod::SimulateV1,
        SimulationMethod::CallWithOverrides,
    ] {
        for (label, bundle, when, planned) in [
            ("send time (no overrides)", &parent, at, None),
            (
                "pipelined (plan overrides)",
                &child,
                child_at,
                Some(planned),
            ),
        ] {
            let mut samples = Vec::with_capacity(SIMULATIONS);
            for _ in 0..SIMULATIONS {
                // Send time pins the simulation to the latest block it read, as the publisher
                // does (the read is not timed); the pipelined check reads at its plan's base.
                let at = match planned {
                    Some(planned) => planned,
                    None => SimulationAt::on_l1(latest_hash(&net).await.into()),
                };
                let started = Instant::now();
                let simulated = simulator
                    .simulate_propose_with(method, bundle, when, at)
                    .await
                    .unwrap();
                samples.push(started.elapsed());
                gas.push((method, simulated.gas_used));
            }
            report(&format!("{} — {label}", method.as_str()), samples);
        }
    }
    let mut samples = Vec::with_capacity(SIMULATIONS);
    for _ in 0..SIMULATIONS {
        let started = Instant::now();
        simulator
            .view(
                calldata.clone(),
                Some(at),
                SimulationAt::on_l1(BlockId::latest()),
            )
            .await
            .unwrap();
        samples.push(started.elapsed());
    }
    report("eth_call alone (no gas estimate)", samples);
    let mut samples = Vec::with_capacity(SIMULATIONS);
    let inside = tandem_proto::time::Timestamp::from_secs(child_at);
    for _ in 0..SIMULATIONS {
        let started = Instant::now();
        simulator
            .validate_header(&child.args, &child.body, inside, planned)
            .await
            .unwrap();
        samples.push(started.elapsed());
    }
    report("validateHeader (eth_call, plan overrides)", samples);
    for method in [
        SimulationMethod::SimulateV1,
        SimulationMethod::CallWithOverrides,
    ] {
        let reported = gas.iter().find(|(m, _)| *m == method).unwrap().1;
        println!("  gas reported by {:<16} {reported}", method.as_str());
    }

    // The simulations took a while: land the same body in a slot still ahead.
    let slot = Slot(net.current_slot().0 + 2);
    let parent = net
        .bundle_with_fee(1, slot, genesis_archive, fee, body.clone())
        .await;
    let floor = calldata_floor(&tandem_publisher::propose_calldata(&parent));
    let handle = publisher.handle.enqueue(parent, slot, slot).await.unwrap();
    match handle.outcome().await {
        SubmissionOutcome::Landed(landed) => println!(
            "propose gas landed (full body, committee 48): {} ({:.1} gas per body byte; \
             its calldata floor {floor})",
            landed.gas_used,
            landed.gas_used as f64 / body.len() as f64
        ),
        other => println!("propose did not land: {other:?}"),
    }
    publisher.stop().await;
}

async fn inclusion_delay() {
    let net = Net::start(4, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let publisher = net
        .publisher(dir.path(), fast_config(), vec![net.publisher_key(0)])
        .await;
    let fee = net
        .reader
        .mana_min_fee(None, BlockId::latest())
        .await
        .unwrap();
    let mut parent_archive = net.reader.archive_at(0, BlockId::latest()).await.unwrap();
    let first_build = net
        .enter_slot_with_room(Duration::from_millis(300), Duration::from_secs(3))
        .await;
    let mut handles = Vec::new();
    for i in 0..INCLUSION_SLOTS {
        let build = Slot(first_build.0 + i);
        let target = build.next();
        net.wait_until(
            net.slot_clock
                .slot_start(build)
                .saturating_add(Duration::from_millis(300)),
        )
        .await;
        let bundle = net
            .bundle_with_fee(
                i + 1,
                target,
                parent_archive,
                fee,
                Bytes::from(vec![9u8; 1_024]),
            )
            .await;
        parent_archive = archive_after(parent_archive, target);
        handles.push(
            publisher
                .handle
                .enqueue(bundle, target, target)
                .await
                .unwrap(),
        );
    }
    let mut delays = Vec::new();
    let mut missed = Vec::new();
    for (i, handle) in handles.into_iter().enumerate() {
        match handle.outcome().await {
            SubmissionOutcome::Landed(landed) => delays.push(landed.inclusion_delay),
            other => missed.push((i + 1, other)),
        }
    }
    delays.sort();
    let first_block = delays.iter().filter(|d| d.is_zero()).count();
    println!(
        "L1 inclusion delay over {INCLUSION_SLOTS} slots (S = 4 s, E = 1 s, each enqueued 0.3 s into its build slot):"
    );
    println!(
        "  landed {} of {INCLUSION_SLOTS}; in the first block of the target slot: {first_block}; p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or_default()
    );
    for (number, outcome) in missed {
        println!("  checkpoint {number}: {outcome:?}");
    }
    publisher.stop().await;
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    // Quiet: only problems (the test support would log every send otherwise).
    let _ = tracing_subscriber::fmt()
        .with_env_filter("publisher=warn")
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(simulations_and_gas());
    runtime.block_on(inclusion_delay());
}
