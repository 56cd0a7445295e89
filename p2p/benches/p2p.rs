//! p2p figures. Run: `cargo bench -p tandem-p2p [-- SCENARIO...]`, scenarios `attestations`,
//! `validation`, `propagation`, `spam`, `star` (all without arguments).
//!
//! 1. `attestations`: gossip validation throughput on one core: decode, validation (attester
//!    recovery, committee, cached proposer recovery) and pool admission.
//! 2. `validation`: one hop's CPU work on a 1 MiB block proposal, with and without its txs known.
//! 3. `propagation`: ~1 MiB block proposals over a pair and 8 nodes on loopback, publish → block
//!    handler on every other node, one proposal per slot.
//! 4. `spam`: on one 8-node mesh, the proposals' txs gossiped first (each node's own cache,
//!    filled by real tx gossip), then propagation and checkpoint proposals (publish → all-nodes
//!    handler on the 7 others), unloaded and with 1,000 tx/s of tx spam from one node.
//! 5. `star` (`p2p/star.rs`): checkpoint proposals from one peer to a node, unloaded and while
//!    3 more peers (bare gossipsub, no tandem node behind them, txs signed before any
//!    measurement) each spray 1,000 tx/s at it; one checkpoint every 20 ms (a run spans 2 s of
//!    spam); 5 alternating runs, median p99s, the attackers' CPU and the load average printed
//!    with each loaded run.
//!
//! Latencies count a delivery that never came (within 2 s) as a failure: it sorts above every
//! real one, so a p99 with more than 1 % missing reads "missing". Left out: real network
//! latency and bandwidth (loopback), and other node work competing for the cores (the handlers
//! only record). All nodes run in this one process on this machine's cores, so every figure
//! includes the other nodes' work (and whatever else runs on the machine).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{FutureExt, future::BoxFuture};
use tandem_p2p::{
    AllNodesCheckpointHandler, BlockProposalHandler, GossipKind, GossipPipeline, GossipValidator,
    HandlersBuilder, NetworkParams, P2pConfig, P2pDeps, P2pHandle, P2pService, Protocol,
    StaticCommittee, TxHandler, TxRules, Verified,
    reqresp::{
        BlockQuery, ChainPoint, ChainProvider, CheckpointCommitment, ProviderError, ServedBlock,
    },
};
use tandem_proto::{
    Address, B256, BlockHeader, BlockProposal, CheckpointAttestation, CheckpointProposal,
    ConsensusPayload, RecoveredTx, SigningDomain, SigningKey, Tx, TxPayload, WireMessage,
    block_body_hash,
    time::{Clock, ConsensusWindows, PipeliningMode, Slot, SlotClock, Timestamp},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[path = "p2p/star.rs"]
mod star;

const SLOT: Duration = Duration::from_secs(60);
const TARGET: Slot = Slot(10);
const COMMITTEE: usize = 48;
const ROUNDS: u32 = 100;
/// How long a round waits for its deliveries before counting the rest as missing.
const ROUND_TIMEOUT: Duration = Duration::from_secs(2);
const GENESIS: Timestamp = Timestamp(1_000_000_000);

fn network(keys: &[SigningKey]) -> (NetworkParams, Arc<StaticCommittee>) {
    let clock = SlotClock::new(GENESIS, SLOT, Duration::from_secs(12), 32).expect("valid clock");
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

/// 40 s before `slot` starts: inside its proposal window.
fn inside_window(slot: Slot) -> Timestamp {
    Timestamp(GENESIS.as_millis() + slot.0 * SLOT.as_millis() as u64 - 40_000)
}

/// 70 s before `slot` starts: 2.5 s into its proposal window, which stays open 55 s.
fn window_opening(slot: Slot) -> Timestamp {
    Timestamp(GENESIS.as_millis() + slot.0 * SLOT.as_millis() as u64 - 70_000)
}

/// A clock that runs at wall-clock speed from an instant the bench sets: windows stay open
/// for as long as they would on a real network, and rate limits refill as they would.
#[derive(Clone)]
struct BenchClock(Arc<Mutex<(Timestamp, Instant)>>);

impl BenchClock {
    fn new(at: Timestamp) -> Self {
        Self(Arc::new(Mutex::new((at, Instant::now()))))
    }

    fn set(&self, at: Timestamp) {
        *self.0.lock().expect("clock lock") = (at, Instant::now());
    }
}

impl Clock for BenchClock {
    fn now(&self) -> Timestamp {
        let (at, since) = *self.0.lock().expect("clock lock");
        at.saturating_add(since.elapsed())
    }
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
    let keys = keys(COMMITTEE);
    let (params, committee) = network(&keys);
    let now = inside_window(TARGET);
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

/// `count` txs of ~170 bytes encoded (6,000 ≈ 1 MiB), from `sender`.
fn txs(domain: &SigningDomain, sender: u8, count: u64) -> Vec<Tx> {
    txs_from(domain, sender, 0, count)
}

/// `count` txs from `sender`, nonces from `first`.
fn txs_from(domain: &SigningDomain, sender: u8, first: u64, count: u64) -> Vec<Tx> {
    let key = SigningKey::from_bytes(&[sender; 32]).expect("key");
    (first..first + count)
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
                &key,
            )
        })
        .collect()
}

fn proposal(
    domain: &SigningDomain,
    txs: &[Tx],
    slot: Slot,
    index: u32,
    proposer: &SigningKey,
) -> BlockProposal {
    let hashes: Vec<B256> = txs.iter().map(Tx::hash).collect();
    let header = BlockHeader {
        chain_id: domain.chain_id,
        index_within_checkpoint: index,
        slot: slot.0,
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
    let keys = keys(4);
    let (params, committee) = network(&keys);
    let now = inside_window(TARGET);
    let proposer = &keys[(TARGET.0 % 4) as usize];
    let block_txs = txs(&params.domain, 9, 6_000);
    let bytes = proposal(&params.domain, &block_txs, TARGET, 0, proposer).to_wire_bytes();
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
    // Its txs reached this node as gossip first (the same validator's cache).
    let mut warm = GossipPipeline::new(validator.clone());
    for tx in &block_txs {
        warm.accept(GossipKind::Tx, &tx.to_wire_bytes(), now)
            .expect("valid tx");
    }
    println!(
        "  same, its txs known from gossip: {:?} per message",
        receive(&validator)
    );
}

/// What a bench node's handlers saw, and when.
#[derive(Default)]
struct Arrivals {
    /// First block proposal handled per slot.
    blocks: Mutex<HashMap<u64, Instant>>,
    /// First checkpoint proposal handled per slot.
    checkpoints: Mutex<HashMap<u64, Instant>>,
    txs: Mutex<usize>,
    notify: Notify,
}

struct Recording(Arc<Arrivals>);

impl BlockProposalHandler for Recording {
    fn on_block_proposal(
        &self,
        proposal: Verified<BlockProposal>,
        _: Timestamp,
    ) -> BoxFuture<'static, ()> {
        self.0.arrived(&self.0.blocks, proposal.header.slot);
        async {}.boxed()
    }
}

impl AllNodesCheckpointHandler for Recording {
    fn on_checkpoint_proposal(
        &self,
        proposal: Verified<CheckpointProposal>,
        _: Timestamp,
    ) -> BoxFuture<'static, ()> {
        self.0
            .arrived(&self.0.checkpoints, proposal.payload.header.slot);
        async {}.boxed()
    }
}

impl TxHandler for Recording {
    fn on_tx(&self, _: Verified<RecoveredTx>) {
        *self.0.txs.lock().expect("lock") += 1;
        self.0.notify.notify_waiters();
    }
}

impl Arrivals {
    /// Records the first arrival for `slot` in `map`.
    fn arrived(&self, map: &Mutex<HashMap<u64, Instant>>, slot: u64) {
        map.lock()
            .expect("lock")
            .entry(slot)
            .or_insert_with(Instant::now);
        self.notify.notify_waiters();
    }

    /// Waits until `done` holds or `timeout` passes.
    async fn wait(&self, timeout: Duration, done: impl Fn(&Self) -> bool) -> bool {
        self.wait_until(tokio::time::Instant::now() + timeout, done)
            .await
    }

    /// Waits until `done` holds or `deadline` passes.
    async fn wait_until(
        &self,
        deadline: tokio::time::Instant,
        done: impl Fn(&Self) -> bool,
    ) -> bool {
        loop {
            let notified = self.notify.notified();
            if done(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(self);
            }
        }
    }
}

struct Nothing;

impl ChainProvider for Nothing {
    fn txs_by_hash(&self, _: Vec<B256>) -> BoxFuture<'static, Result<Vec<Tx>, ProviderError>> {
        async { Ok(Vec::new()) }.boxed()
    }
    fn blocks_by_range(
        &self,
        _: u64,
        _: u32,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>> {
        async { Ok(Vec::new()) }.boxed()
    }
    fn block_proposals(
        &self,
        _: BlockQuery,
    ) -> BoxFuture<'static, Result<Vec<ServedBlock>, ProviderError>> {
        async { Ok(Vec::new()) }.boxed()
    }
    fn proposed_chain(
        &self,
        _: ChainPoint,
        _: u32,
    ) -> BoxFuture<'static, Result<Option<Vec<ServedBlock>>, ProviderError>> {
        async { Ok(None) }.boxed()
    }
    fn l1_checkpoint(
        &self,
        _: u64,
    ) -> BoxFuture<'static, Result<Option<CheckpointCommitment>, ProviderError>> {
        async { Ok(None) }.boxed()
    }
}

struct Mesh {
    nodes: Vec<(P2pHandle, Arc<Arrivals>)>,
    keys: Vec<SigningKey>,
    params: NetworkParams,
    clock: BenchClock,
    cancel: CancellationToken,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// `count` nodes, each dialing the `dials` started before it; waits until every node has a
/// mesh peer on every topic.
async fn mesh(count: usize, dials: usize) -> Mesh {
    build_mesh(
        count,
        |position| (0..position).rev().take(dials).collect(),
        true,
        dials as u32,
    )
    .await
}

/// A star: every node dials node 0 only, no discovery.
async fn star(count: usize) -> Mesh {
    build_mesh(
        count,
        |position| if position == 0 { Vec::new() } else { vec![0] },
        false,
        1,
    )
    .await
}

/// `count` nodes, node `i` dialing the nodes `dials(i)`.
async fn build_mesh(
    count: usize,
    dials: impl Fn(usize) -> Vec<usize>,
    discovery: bool,
    outbound_peers: u32,
) -> Mesh {
    let keys = keys(4);
    let (params, committee) = network(&keys);
    let clock = BenchClock::new(window_opening(TARGET));
    let cancel = CancellationToken::new();
    let mut nodes = Vec::new();
    let mut addrs: Vec<tandem_p2p::Multiaddr> = Vec::new();
    for position in 0..count {
        let arrivals = Arc::new(Arrivals::default());
        let handlers = HandlersBuilder::default()
            .block_proposal(Arc::new(Recording(Arc::clone(&arrivals))))
            .all_nodes_checkpoint(Arc::new(Recording(Arc::clone(&arrivals))))
            .tx(Arc::new(Recording(Arc::clone(&arrivals))))
            .build()
            .expect("handlers");
        let config = P2pConfig {
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
            bootnodes: dials(position)
                .into_iter()
                .map(|peer: usize| addrs[peer].clone())
                .collect(),
            heartbeat_interval: Duration::from_millis(200),
            // Keep the topology close to the one dialed.
            outbound_peers: Some(outbound_peers),
            discovery,
            ..P2pConfig::default()
        };
        let deps = P2pDeps {
            committee: committee.clone(),
            provider: Arc::new(Nothing),
            clock: Arc::new(clock.clone()),
        };
        let (handle, service) = P2pService::new(config, params, deps).expect("service");
        tokio::spawn(service.run(handlers, cancel.clone()));
        let listen = handle.listen_addrs().await.expect("listening");
        addrs.push(
            listen[0]
                .clone()
                .with(Protocol::P2p(handle.local_peer_id())),
        );
        nodes.push((handle, arrivals));
    }
    for (handle, _) in &nodes {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = handle.status().await.expect("status");
            if GossipKind::ALL
                .iter()
                .all(|kind| status.mesh_peers(*kind) >= 1)
            {
                break;
            }
            assert!(Instant::now() < deadline, "mesh did not form: {status:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Mesh {
        nodes,
        keys,
        params,
        clock,
        cancel,
    }
}

/// A running tx sprayer.
struct Sprayer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<(u64, HashMap<String, u64>)>,
}

impl Sprayer {
    /// Stops it; returns how many txs it published and why the others were refused.
    async fn stop(self) -> (u64, HashMap<String, u64>) {
        self.stop.cancel();
        self.task.await.expect("sprayer")
    }
}

/// Sprays pre-signed txs from `node` at `per_second` (in bursts every 10 ms) until stopped.
fn spray(mesh: &Mesh, node: usize, sender: u8, per_second: u64) -> Sprayer {
    let stop = CancellationToken::new();
    let handle = mesh.nodes[node].0.clone();
    let spam = txs(&mesh.params.domain, sender, per_second * 30);
    let stopping = stop.clone();
    let task = tokio::spawn(async move {
        let mut published = 0;
        let mut refused: HashMap<String, u64> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let per_tick = (per_second / 100).max(1) as usize;
        for burst in spam.chunks(per_tick) {
            tokio::select! {
                () = stopping.cancelled() => break,
                _ = tick.tick() => {}
            }
            for tx in burst {
                match handle.publish_tx(tx).await {
                    Ok(()) => published += 1,
                    Err(err) => *refused.entry(err.to_string()).or_default() += 1,
                }
            }
        }
        (published, refused)
    });
    Sprayer { stop, task }
}

/// Stops the sprayers and prints what they sent; returns how many txs they tried to publish.
async fn stop_all(sprayers: Vec<Sprayer>) -> u64 {
    let mut published = 0;
    let mut refused: HashMap<String, u64> = HashMap::new();
    for sprayer in sprayers {
        let (sent, errors) = sprayer.stop().await;
        published += sent;
        for (error, count) in errors {
            *refused.entry(error).or_default() += count;
        }
    }
    println!("  spammers published {published} txs; refused locally: {refused:?}");
    published + refused.values().sum::<u64>()
}

/// Percentiles where a missing delivery counts as the slowest possible.
fn summary(mut delays: Vec<Duration>, missing: usize) -> String {
    delays.sort();
    let total = delays.len() + missing;
    let at = |q: f64| {
        let index = ((total - 1) as f64 * q).round() as usize;
        delays
            .get(index)
            .map_or_else(|| "missing".to_owned(), |delay| format!("{delay:.1?}"))
    };
    format!(
        "{total} deliveries ({missing} missing): p50 {}  p99 {}  max {}",
        at(0.5),
        at(0.99),
        if missing > 0 {
            "missing".to_owned()
        } else {
            delays
                .last()
                .map_or_else(String::new, |delay| format!("{delay:.1?}"))
        }
    )
}

/// Publishes `ROUNDS` block proposals carrying `block_txs` from node 0, one per slot from
/// `first_slot` (so a proposal lost on the way does not hold up the next rounds in its slot's
/// lane), one at a time.
async fn propagation(mesh: &Mesh, block_txs: &[Tx], first_slot: u64, label: &str) {
    let mut delays = Vec::new();
    let mut missing = 0;
    let mut size = 0;
    for round in 0..u64::from(ROUNDS) {
        let slot = Slot(first_slot + round);
        // Early in the slot's window, however long the rounds before took.
        mesh.clock.set(window_opening(slot));
        let proposer = &mesh.keys[(slot.0 % 4) as usize];
        let block = proposal(&mesh.params.domain, block_txs, slot, 0, proposer);
        size = block.to_wire_bytes().len();
        let sent = Instant::now();
        mesh.nodes[0]
            .0
            .publish_block_proposal(block)
            .await
            .expect("publish");
        let round_end = tokio::time::Instant::now() + ROUND_TIMEOUT;
        for (_, arrivals) in &mesh.nodes[1..] {
            let seen =
                |arrivals: &Arrivals| arrivals.blocks.lock().expect("lock").get(&slot.0).copied();
            arrivals
                .wait_until(round_end, |arrivals| seen(arrivals).is_some())
                .await;
            match seen(arrivals) {
                Some(at) => delays.push(at.duration_since(sent)),
                None => missing += 1,
            }
        }
    }
    println!(
        "propagation of {:.3} MiB block proposals, {} nodes ({label}): {}   (target p99 <= 50 ms)",
        size as f64 / (1024.0 * 1024.0),
        mesh.nodes.len(),
        summary(delays, missing)
    );
    if missing > 0 {
        print_drops(mesh).await;
    }
}

/// What the nodes dropped, when deliveries went missing.
async fn print_drops(mesh: &Mesh) {
    for (position, (handle, _)) in mesh.nodes.iter().enumerate() {
        let status = handle.status().await.expect("status");
        let of = |kind| {
            let counters = status.gossip(kind);
            format!(
                "{kind}: {} received, {} accepted, {} ignored, {} rejected ({} queue-dropped, {} rate-limited)",
                counters.received,
                counters.accepted,
                counters.ignored,
                counters.rejected,
                counters.queue_dropped,
                counters.rate_limited
            )
        };
        println!(
            "    node {position}: {} peers, {} messages not sent to slow peers; {}; {}; {}",
            status.connected.len(),
            status.send_dropped,
            of(GossipKind::BlockProposal),
            of(GossipKind::CheckpointProposal),
            of(GossipKind::Tx)
        );
    }
}

/// Publishes `ROUNDS` checkpoint proposals (last block of 100 txs) from node `from`, one per
/// slot, moving the clock into each slot's window; returns (p50, p99) of publish → all-nodes
/// handler at the nodes `at`.
async fn checkpoint_latency(
    mesh: &Mesh,
    from: usize,
    at: &[usize],
    first_slot: u64,
    label: &str,
) -> (Duration, Duration) {
    paced_checkpoint_latency(mesh, from, at, first_slot, label, Duration::ZERO).await
}

/// [`checkpoint_latency`] with rounds started at most every `spacing` (so a run spans a
/// known stretch of whatever load runs beside it).
async fn paced_checkpoint_latency(
    mesh: &Mesh,
    from: usize,
    at: &[usize],
    first_slot: u64,
    label: &str,
    spacing: Duration,
) -> (Duration, Duration) {
    let block_txs = txs(&mesh.params.domain, 11, 100);
    let mut delays = Vec::new();
    let mut missing = 0;
    let mut pace = tokio::time::interval(spacing.max(Duration::from_nanos(1)));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0..u64::from(ROUNDS) {
        if !spacing.is_zero() {
            pace.tick().await;
        }
        let slot = Slot(first_slot + round);
        mesh.clock.set(inside_window(slot));
        let proposer = &mesh.keys[(slot.0 % 4) as usize];
        let last = proposal(&mesh.params.domain, &block_txs, slot, 0, proposer);
        let mut payload = ConsensusPayload {
            archive: last.archive_root,
            ..ConsensusPayload::default()
        };
        payload.header.slot = slot.0;
        let checkpoint =
            CheckpointProposal::sign(payload, Some(last), &mesh.params.domain, proposer);
        let sent = Instant::now();
        if let Err(err) = mesh.nodes[from]
            .0
            .publish_checkpoint_proposal(checkpoint)
            .await
        {
            let handle = &mesh.nodes[from].0;
            let status = handle.status().await.expect("status");
            for peer in &status.connected {
                let reputation = handle.peer_reputation(*peer).await.expect("reputation");
                println!("  publisher's view of {peer}: {reputation:?}");
            }
            panic!("publish in round {round}: {err}; publisher's network: {status:?}");
        }
        let round_end = tokio::time::Instant::now() + ROUND_TIMEOUT;
        for (_, arrivals) in at.iter().map(|position| &mesh.nodes[*position]) {
            let seen = |arrivals: &Arrivals| {
                arrivals
                    .checkpoints
                    .lock()
                    .expect("lock")
                    .get(&slot.0)
                    .copied()
            };
            arrivals
                .wait_until(round_end, |arrivals| seen(arrivals).is_some())
                .await;
            match seen(arrivals) {
                Some(at) => delays.push(at.duration_since(sent)),
                None => missing += 1,
            }
        }
        // The other nodes handle it too before the clock moves on: a copy still on its way
        // when the clock jumps a slot would arrive after its window and cost its honest
        // forwarder points, which a real network's clock never does.
        for (position, (_, arrivals)) in mesh.nodes.iter().enumerate() {
            if position != from && !at.contains(&position) {
                arrivals
                    .wait_until(round_end, |arrivals| {
                        arrivals
                            .checkpoints
                            .lock()
                            .expect("lock")
                            .contains_key(&slot.0)
                    })
                    .await;
            }
        }
    }
    let mut sorted = delays.clone();
    sorted.sort();
    let p = |q: f64| {
        let total = sorted.len() + missing;
        sorted
            .get(((total - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(Duration::MAX)
    };
    let missing_any = missing > 0;
    println!(
        "checkpoint proposal, publish -> all-nodes handler ({label}): {}",
        summary(delays, missing)
    );
    if missing_any {
        print_drops(mesh).await;
    }
    (p(0.5), p(0.99))
}

/// Block propagation over a pair and over 8 nodes, proposals of unknown txs.
async fn propagation_figures() {
    let domain = network(&keys(4)).0.domain;
    let block_txs = txs(&domain, 9, 6_000);
    let empty = mesh(2, 1).await;
    propagation(&empty, &[], 100, "one hop, empty proposal").await;
    drop(empty);
    let one_hop = mesh(2, 1).await;
    propagation(&one_hop, &block_txs, 100, "one hop").await;
    drop(one_hop);
    let line = mesh(8, 2).await;
    propagation(&line, &block_txs, 100, "each dials the 2 before it").await;
    drop(line);
    let full = mesh(8, 7).await;
    propagation(&full, &block_txs, 100, "all connected").await;
}

/// Gossips `block_txs` from node 0 at 1,000 tx/s and waits until every node's own cache has
/// them (or 10 s pass).
async fn gossip_txs_first(mesh: &Mesh, block_txs: &[Tx]) {
    // Paced (bursts of 100 every 100 ms), as a proposer's txs would trickle in over a slot,
    // not in one burst past every queue and rate limit.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for burst in block_txs.chunks(100) {
        tick.tick().await;
        for tx in burst {
            mesh.nodes[0].0.publish_tx(tx).await.expect("publish tx");
        }
    }
    let mut least = usize::MAX;
    for (_, arrivals) in &mesh.nodes[1..] {
        arrivals
            .wait(Duration::from_secs(10), |arrivals| {
                *arrivals.txs.lock().expect("lock") >= block_txs.len()
            })
            .await;
        least = least.min(*arrivals.txs.lock().expect("lock"));
    }
    let mut dropped = 0;
    for (handle, _) in &mesh.nodes[1..] {
        let txs = handle
            .status()
            .await
            .expect("status")
            .gossip(GossipKind::Tx);
        dropped += txs.queue_dropped + txs.rate_limited;
    }
    println!(
        "  txs gossiped first: every node knows >= {least} of {} ({dropped} tx messages dropped at queues or rate limits)",
        block_txs.len()
    );
}

/// Block propagation over 8 nodes with the txs known (gossiped first, each node's own cache),
/// then with 1,000 tx/s of spam on the same mesh; checkpoint verdicts on that mesh, unloaded and
/// under the same spam.
async fn spam_figures() {
    let domain = network(&keys(4)).0.domain;
    let block_txs = txs(&domain, 9, 6_000);
    let line = mesh(8, 2).await;
    gossip_txs_first(&line, &block_txs).await;
    propagation(
        &line,
        &block_txs,
        100,
        "each dials the 2 before it, txs gossiped first",
    )
    .await;
    let everyone: Vec<usize> = (1..8).collect();
    let (_, unloaded) = checkpoint_latency(&line, 0, &everyone, 1000, "8 nodes, unloaded").await;

    let spraying = vec![spray(&line, 7, 21, 1_000)];
    propagation(
        &line,
        &block_txs,
        2000,
        "each dials the 2 before it, txs gossiped first, 1,000 tx/s of spam from node 7",
    )
    .await;
    let (_, loaded) = checkpoint_latency(
        &line,
        0,
        &everyone,
        3000,
        "8 nodes, 1,000 tx/s of spam from node 7",
    )
    .await;
    stop_all(spraying).await;
    print_ratio(loaded, unloaded);
}

fn print_ratio(loaded: Duration, unloaded: Duration) {
    println!(
        "  checkpoint p99 under spam / unloaded: {:.2}x   (target: p99 <= 50 ms and <= 2x unloaded)",
        loaded.as_secs_f64() / unloaded.as_secs_f64()
    );
}

/// Runs the scenarios whose name contains one of the arguments (all without arguments):
/// `cargo bench -p tandem-p2p -- star`.
fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    if wanted("attestations") {
        attestation_throughput();
    }
    if wanted("validation") {
        big_proposal_validation();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if wanted("propagation") {
        runtime.block_on(propagation_figures());
    }
    if wanted("spam") {
        runtime.block_on(spam_figures());
    }
    if wanted("star") {
        let attackers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(star::ATTACKER_THREAD)
            .enable_all()
            .build()
            .expect("attackers' runtime");
        runtime.block_on(star::star_figures(attackers.handle().clone()));
        attackers.shutdown_background();
    }
}
