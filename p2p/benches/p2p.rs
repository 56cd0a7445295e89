//! p2p figures. Run: `cargo bench -p tandem-p2p`.
//!
//! 1. Gossip validation throughput on one core: attestations through decode, validation
//!    (attester recovery, committee, cached proposer recovery) and pool admission.
//! 2. Propagation latency of ~1 MiB block proposals across 8 nodes on loopback (each node
//!    dials the two before it), from publish to the block handler on every other node.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{FutureExt, future::BoxFuture};
use tandem_p2p::{
    AllNodesCheckpointHandler, BlockProposalHandler, GossipKind, GossipPipeline, GossipValidator,
    HandlersBuilder, NetworkParams, P2pConfig, P2pDeps, P2pHandle, P2pService, Protocol,
    StaticCommittee, TxRules, Verified,
    reqresp::{ChainProvider, ProviderError},
};
use tandem_proto::{
    Address, B256, Block, BlockHeader, BlockProposal, CheckpointAttestation, CheckpointProposal,
    ConsensusPayload, SigningDomain, SigningKey, Tx, TxPayload, WireMessage, block_body_hash,
    time::{Clock, ConsensusWindows, PipeliningMode, Slot, SlotClock, SystemClock, Timestamp},
};
use tokio_util::sync::CancellationToken;

const SLOT: Duration = Duration::from_secs(60);
const TARGET: Slot = Slot(10);
const COMMITTEE: usize = 48;

fn network(now: Timestamp, keys: &[SigningKey]) -> (NetworkParams, Arc<StaticCommittee>) {
    // `now` is 70 s before slot 10 starts: 2.5 s into its proposal window, which stays open 52 s.
    let genesis = Timestamp(now.as_millis() + 70_000 - 10 * SLOT.as_millis() as u64);
    let clock = SlotClock::new(genesis, SLOT, Duration::from_secs(12), 32).expect("valid clock");
    let domain = SigningDomain {
        chain_id: 7,
        rollup: Address::repeat_byte(0xaa),
    };
    let params = NetworkParams::new(
        domain,
        ConsensusWindows::new(
            clock,
            Duration::from_secs(6),
            PipeliningMode::Pipelined,
            Duration::from_secs(6),
        ),
        SLOT,
        TxRules {
            min_mana_limit: 10_000,
        },
    );
    let committee = Arc::new(StaticCommittee::new(
        keys.iter().map(SigningKey::address).collect::<Vec<_>>(),
    ));
    (params, committee)
}

fn validator(params: &NetworkParams, committee: Arc<StaticCommittee>) -> GossipValidator {
    GossipValidator::new(
        params.domain,
        params.windows,
        committee,
        params.tx_rules,
        params.max_txs_per_block,
    )
}

fn keys(count: usize) -> Vec<SigningKey> {
    (0..count)
        .map(|i| {
            let mut secret = [0u8; 32];
            secret[24..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            SigningKey::from_bytes(&secret).expect("valid key")
        })
        .collect()
}

fn attestation_throughput() {
    let now = Timestamp::from_secs(1_000_000);
    let keys = keys(COMMITTEE);
    let (params, committee) = network(now, &keys);
    let proposer = &keys[(TARGET.0 % COMMITTEE as u64) as usize];
    let mut payload = ConsensusPayload::default();
    payload.header.slot = TARGET.0;
    let proposal = CheckpointProposal::sign(payload, None, &params.domain, proposer);
    let encoded: Vec<Vec<u8>> = keys
        .iter()
        .map(|key| CheckpointAttestation::sign(&proposal, &params.domain, key).to_wire_bytes())
        .collect();
    let validator = validator(&params, committee);
    let started = Instant::now();
    let mut accepted = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        // A fresh pool per round: each attester may attest once per slot.
        let mut pipeline = GossipPipeline::new(validator.clone());
        for bytes in &encoded {
            pipeline
                .accept(GossipKind::CheckpointAttestation, bytes, now)
                .expect("valid attestation");
            accepted += 1;
        }
    }
    let rate = accepted as f64 / started.elapsed().as_secs_f64();
    println!("attestations validated/s (1 core): {rate:>10.0}   (target >= 20,000)");
}

/// ~1 MiB of txs (6,000 × ~170 bytes encoded).
fn mib_of_txs(domain: &SigningDomain) -> Vec<Tx> {
    let sender = SigningKey::from_bytes(&[9; 32]).expect("key");
    (0..6_000u64)
        .map(|nonce| {
            Tx::sign(
                TxPayload {
                    chain_id: domain.chain_id,
                    nonce,
                    to: Address::repeat_byte(1),
                    amount: 1,
                    max_fee_per_mana: 1,
                    mana_limit: 10_000,
                },
                domain,
                &sender,
            )
        })
        .collect()
}

fn big_proposal(
    domain: &SigningDomain,
    txs: &[Tx],
    index: u32,
    proposer: &SigningKey,
) -> BlockProposal {
    let hashes: Vec<B256> = txs.iter().map(Tx::hash).collect();
    let header = BlockHeader {
        chain_id: domain.chain_id,
        index_within_checkpoint: index,
        slot: TARGET.0,
        body_hash: block_body_hash(&hashes),
        ..BlockHeader::default()
    };
    BlockProposal::sign(
        header,
        B256::repeat_byte(index as u8),
        txs.to_vec(),
        domain,
        proposer,
    )
}

/// One hop's CPU work on a 1 MiB proposal: decode, tx-hash check, signature, pool.
fn big_proposal_validation() {
    let now = Timestamp::from_secs(1_000_000);
    let keys = keys(4);
    let (params, committee) = network(now, &keys);
    let proposer = &keys[(TARGET.0 % 4) as usize];
    let bytes =
        big_proposal(&params.domain, &mib_of_txs(&params.domain), 0, proposer).to_wire_bytes();
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&bytes)
        .expect("compress");
    let validator = validator(&params, committee);
    let rounds = 50;
    let per_round = |op: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..rounds {
            op();
        }
        started.elapsed() / rounds
    };
    let snappy = per_round(&mut || {
        std::hint::black_box(
            snap::raw::Decoder::new()
                .decompress_vec(&compressed)
                .expect("snappy"),
        );
    });
    let compress = per_round(&mut || {
        std::hint::black_box(
            snap::raw::Encoder::new()
                .compress_vec(&bytes)
                .expect("snappy"),
        );
    });
    let decoded = BlockProposal::from_wire_bytes(&bytes).expect("decodes");
    let decode = per_round(&mut || {
        std::hint::black_box(BlockProposal::from_wire_bytes(&bytes).expect("decodes"));
    });
    let tx_check = per_round(&mut || decoded.check_txs().expect("txs match"));
    println!(
        "  1 MiB proposal parts: snappy compress {compress:?} (publisher only), decompress {snappy:?}, decode {decode:?}, tx-hash check {tx_check:?}"
    );
    let receive = |validator: &GossipValidator| {
        per_round(&mut || {
            let data = snap::raw::Decoder::new()
                .decompress_vec(&compressed)
                .expect("decompress");
            GossipPipeline::new(validator.clone())
                .accept(GossipKind::BlockProposal, &data, now)
                .expect("valid proposal");
        })
    };
    println!(
        "1 MiB proposal, snappy + decode + validate + pool: {:?} per message (1 core)",
        receive(&validator)
    );

    // The usual case: the proposal's txs reached this node as gossip first.
    let mut warm = GossipPipeline::new(validator.clone());
    for tx in mib_of_txs(&params.domain) {
        warm.accept(GossipKind::Tx, &tx.to_wire_bytes(), now)
            .expect("valid tx");
    }
    println!(
        "  same, its txs known from gossip: {:?} per message",
        receive(&validator)
    );
}

struct Arrivals {
    log: Arc<Mutex<Vec<(u32, Instant)>>>,
}

impl BlockProposalHandler for Arrivals {
    fn on_block_proposal(&self, proposal: Verified<BlockProposal>) -> BoxFuture<'static, ()> {
        self.log
            .lock()
            .expect("log lock")
            .push((proposal.header.index_within_checkpoint, Instant::now()));
        async {}.boxed()
    }
}

struct Nothing;

impl AllNodesCheckpointHandler for Nothing {
    fn on_checkpoint_proposal(&self, _: Verified<CheckpointProposal>) -> BoxFuture<'static, ()> {
        async {}.boxed()
    }
}

impl ChainProvider for Nothing {
    fn txs_by_hash(&self, _: Vec<B256>) -> BoxFuture<'static, Result<Vec<Tx>, ProviderError>> {
        async { Ok(Vec::new()) }.boxed()
    }

    fn blocks_by_range(
        &self,
        _: u64,
        _: u32,
    ) -> BoxFuture<'static, Result<Vec<Block>, ProviderError>> {
        async { Ok(Vec::new()) }.boxed()
    }
}

struct BenchNode {
    handle: P2pHandle,
    arrivals: Arc<Mutex<Vec<(u32, Instant)>>>,
}

/// `dials`: how many of the previously started nodes each node dials.
/// `txs_first`: gossip the proposal's txs before the proposals (the usual case: proposers take
/// txs from the public pool), so receivers know them.
async fn propagation(
    nodes_count: usize,
    dials: usize,
    tx_count: usize,
    txs_first: bool,
    topology: &str,
) {
    const ROUNDS: u32 = 100;
    let keys = keys(4);
    let (params, committee) = network(SystemClock.now(), &keys);
    let proposer = keys[(TARGET.0 % 4) as usize].clone();
    let cancel = CancellationToken::new();
    let mut nodes: Vec<BenchNode> = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..nodes_count {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let handlers = HandlersBuilder::default()
            .block_proposal(Arc::new(Arrivals {
                log: Arc::clone(&arrivals),
            }))
            .all_nodes_checkpoint(Arc::new(Nothing))
            .build()
            .expect("handlers");
        let config = P2pConfig {
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
            bootnodes: addrs.iter().rev().take(dials).cloned().collect(),
            heartbeat_interval: Duration::from_millis(200),
            ..P2pConfig::default()
        };
        let deps = P2pDeps {
            committee: committee.clone(),
            handlers,
            provider: Arc::new(Nothing),
            clock: Arc::new(SystemClock),
        };
        let (handle, service) = P2pService::new(config, params, deps).expect("service");
        tokio::spawn(service.run(cancel.clone()));
        let listen = handle.listen_addrs().await.expect("listening");
        addrs.push(
            listen[0]
                .clone()
                .with(Protocol::P2p(handle.local_peer_id())),
        );
        nodes.push(BenchNode { handle, arrivals });
    }
    // Let the meshes form.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let txs: Vec<Tx> = mib_of_txs(&params.domain)
        .into_iter()
        .take(tx_count)
        .collect();
    if txs_first {
        for tx in &txs {
            nodes[0].handle.publish_tx(tx).await.expect("publish tx");
        }
        // Every node validates 6,000 txs: let that settle before timing proposals.
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    let mut published = Vec::new();
    let mut size = 0;
    for round in 0..ROUNDS {
        let proposal = big_proposal(&params.domain, &txs, round, &proposer);
        size = proposal.to_wire_bytes().len();
        published.push(Instant::now());
        nodes[0]
            .handle
            .publish_block_proposal(proposal)
            .await
            .expect("publish");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut delays: Vec<Duration> = Vec::new();
    let mut missing = 0;
    for node in &nodes[1..] {
        let arrivals = node.arrivals.lock().expect("log lock").clone();
        for (round, sent) in published.iter().enumerate() {
            match arrivals.iter().find(|(index, _)| *index == round as u32) {
                Some((_, at)) => delays.push(at.duration_since(*sent)),
                None => missing += 1,
            }
        }
    }
    delays.sort();
    let quantile = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    println!(
        "propagation of {:.3} MiB proposals, {nodes_count} nodes ({topology}), {} deliveries ({missing} missing): p50 {:?}  p99 {:?}  max {:?}   (target p99 <= 50 ms)",
        size as f64 / (1024.0 * 1024.0),
        delays.len(),
        quantile(0.5),
        quantile(0.99),
        delays.last().copied().unwrap_or_default(),
    );
    cancel.cancel();
}

fn main() {
    attestation_throughput();
    big_proposal_validation();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(propagation(2, 1, 0, false, "one hop, empty proposal"));
    runtime.block_on(propagation(2, 1, 6_000, false, "one hop"));
    runtime.block_on(propagation(
        8,
        2,
        6_000,
        false,
        "each dials the 2 before it",
    ));
    runtime.block_on(propagation(8, 7, 6_000, false, "all connected"));
    runtime.block_on(propagation(
        8,
        2,
        6_000,
        true,
        "each dials the 2 before it, txs gossiped first",
    ));
}
