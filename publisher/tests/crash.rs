//! Crash safety against a real anvil: a child process runs a publisher that proposes every slot
//! and is killed with SIGKILL exactly between persisting a tx and sending it, right after the L1
//! node accepted it but before that was written down, or right after it was written down
//! (before any receipt), in turn. After every kill the store must decode,
//! every tx of the key on L1 must be in the store, no nonce may carry two different proposes, and
//! at most one live record may hold a nonce. At the end a publisher on the same store must bring
//! every record to an end, leaving no hole in the key's nonces.
//!
//! CI runs two kills of each kind; `cargo nextest run -p tandem-publisher --run-ignored only`
//! runs 20 of each kind.

mod common;

use std::{
    collections::{BTreeMap, HashSet},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use alloy::{
    consensus::{Transaction, TxEnvelope},
    eips::eip2718::Decodable2718,
    primitives::{Address, B256, Bytes},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use common::{CheckpointMaker, Net, Running, fast_config};
use tandem_proto::time::{Clock, SlotClock, SystemClock, Timestamp};
use tandem_publisher::{
    AttemptKind, FinalState, PublisherDeps, PublisherError, PublisherKeys, SendHooks, SentTx,
    TxRecord, TxState, TxStore,
};

const CHILD_ENV: &str = "TANDEM_PUBLISHER_CRASH_CHILD";
/// The test the child re-runs (its entry point).
const CHILD_TEST: &str = "kill_9_while_sending_loses_no_tx_and_reuses_no_nonce";
const SLOT: u64 = 2;
const VALIDATORS: usize = 4;

#[test]
fn kill_9_while_sending_loses_no_tx_and_reuses_no_nonce() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
    }
    run_kills(6);
}

#[test]
#[ignore = "20 kills of each kind (~3 min); run with --run-ignored only"]
fn kill_9_twenty_times_at_each_point() {
    run_kills(60);
}

/// Where a child is killed.
const KILL_POINTS: [&str; 3] = ["persisted", "accepted", "broadcast"];

/// Parks the sending task at `at` after telling the parent: "persisted" (a new tx is in the
/// store, not sent), "accepted" (L1 accepted a tx this process signed; the store still says
/// "signed") or "broadcast" (the acceptance is stored; no receipt yet). Re-sends of resumed txs
/// do not count.
struct KillPoint {
    at: String,
    /// Txs in the store when this process started.
    resumed: HashSet<B256>,
}

impl KillPoint {
    fn stop(&self, point: &str, tx: &SentTx) {
        if self.at == point {
            let mut out = std::io::stdout().lock();
            writeln!(out, "\nHOOK {point} {} {}", tx.nonce, tx.hash).unwrap();
            out.flush().unwrap();
            loop {
                std::thread::park();
            }
        }
    }
}

impl SendHooks for KillPoint {
    fn persisted(&self, tx: &SentTx) {
        self.stop("persisted", tx);
    }
    fn accepted(&self, tx: &SentTx) {
        if !self.resumed.contains(&tx.hash) {
            self.stop("accepted", tx);
        }
    }
    fn broadcast(&self, tx: &SentTx) {
        if !self.resumed.contains(&tx.hash) {
            self.stop("broadcast", tx);
        }
    }
}

fn env(name: &str) -> String {
    std::env::var(format!("{CHILD_ENV}_{name}")).unwrap()
}

fn slot_clock(genesis: u64) -> SlotClock {
    SlotClock::new(
        Timestamp::from_secs(genesis),
        Duration::from_secs(SLOT),
        Duration::from_secs(common::L1_SLOT),
        common::EPOCH,
    )
    .unwrap()
}

/// The child: proposes for every slot, forever, until killed.
fn child() -> ! {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("publisher=trace")
        .with_writer(std::io::stderr)
        .try_init();
    runtime.block_on(async {
        let provider = ProviderBuilder::new()
            .connect_http(env("ENDPOINT").parse().unwrap())
            .erased();
        let rollup: Address = env("ROLLUP").parse().unwrap();
        let slot_clock = slot_clock(env("GENESIS").parse().unwrap());
        let maker = CheckpointMaker::new(
            provider.clone(),
            rollup,
            env("CHAIN_ID").parse().unwrap(),
            slot_clock,
            VALIDATORS,
        );
        let key: PrivateKeySigner = env("KEY").parse().unwrap();
        let store_path = PathBuf::from(std::env::var_os(CHILD_ENV).unwrap());
        let resumed: HashSet<B256> = TxStore::open(&store_path)
            .unwrap()
            .records()
            .unwrap()
            .iter()
            .flat_map(|record| record.attempts.iter().map(|a| a.hash))
            .collect();
        let deps = PublisherDeps {
            config: fast_config(),
            keys: PublisherKeys::new(vec![key], &[]).unwrap(),
            provider,
            rollup,
            slot_clock,
            clock: Arc::new(SystemClock),
            store_path,
            hooks: Some(Arc::new(KillPoint {
                at: env("KILL_AT"),
                resumed,
            })),
        };
        let running = Running::start(deps).await;
        // The first propose goes into the current slot (sent at once), later ones are pipelined
        // (sent at T - E of the next slot).
        let mut pipelined = false;
        loop {
            let next_block = slot_clock.slot_at_next_l1_block(SystemClock.now()).unwrap();
            let target = if pipelined {
                next_block.next()
            } else {
                next_block
            };
            pipelined = true;
            let bundle = maker.bundle_on_tip(target).await;
            match running.handle.enqueue(bundle, target, target).await {
                Ok(handle) => eprintln!("OUTCOME {:?}", handle.outcome().await),
                Err(PublisherError::SlotAlreadyEnqueued(_)) => {}
                Err(error) => eprintln!("ENQUEUE {error}"),
            }
            let next = slot_clock.slot_start(target);
            tokio::time::sleep(SystemClock.now().until(next)).await;
        }
    })
}

/// Everything the parent has learnt so far.
#[derive(Default)]
struct Audit {
    scanned_to: u64,
    record_ids: HashSet<u64>,
}

fn check_store(store_dir: &Path, key: Address, audit: &mut Audit, kill: usize) -> Vec<TxRecord> {
    let store = TxStore::open(store_dir)
        .unwrap_or_else(|err| panic!("kill {kill}: the store does not open: {err}"));
    let records = store
        .records()
        .unwrap_or_else(|err| panic!("kill {kill}: a record does not decode: {err}"));
    let ids: HashSet<u64> = records.iter().map(|r| r.id).collect();
    assert!(
        audit.record_ids.is_subset(&ids),
        "kill {kill}: a persisted record disappeared"
    );
    audit.record_ids = ids;
    let mut by_nonce: BTreeMap<u64, Vec<&TxRecord>> = BTreeMap::new();
    for record in &records {
        assert_eq!(record.key, key);
        let mut propose_input: Option<Bytes> = None;
        for attempt in &record.attempts {
            let raw = store.raw_tx(attempt.hash).unwrap_or_else(|err| {
                panic!("kill {kill}: raw tx {} missing: {err}", attempt.hash)
            });
            let tx = TxEnvelope::decode_2718(&mut raw.as_slice()).unwrap();
            assert_eq!(*tx.tx_hash(), attempt.hash);
            assert_eq!(tx.nonce(), record.nonce);
            match attempt.kind {
                AttemptKind::Propose => {
                    let input = tx.input().clone();
                    if let Some(first) = &propose_input {
                        assert_eq!(
                            first, &input,
                            "kill {kill}: one nonce carries two different proposes"
                        );
                    }
                    propose_input = Some(input);
                }
                AttemptKind::Cancel => {
                    assert_eq!(tx.to(), Some(key));
                    assert!(tx.input().is_empty());
                }
            }
        }
        by_nonce.entry(record.nonce).or_default().push(record);
    }
    // Only the newest holder of a nonce may be live or have consumed it.
    for (nonce, holders) in &by_nonce {
        let (_newest, earlier) = holders.split_last().unwrap();
        for record in earlier {
            assert!(
                matches!(record.state, TxState::Final(end) if !end.consumed_nonce()),
                "kill {kill}: nonce {nonce} reused while {:?} still held it",
                record.state
            );
        }
    }
    records
}

async fn check_chain(
    net: &Net,
    key: Address,
    records: &[TxRecord],
    audit: &mut Audit,
    kill: usize,
) {
    let known: HashSet<B256> = records
        .iter()
        .flat_map(|r| r.attempts.iter().map(|a| a.hash))
        .collect();
    let provider = net.harness.provider();
    let latest = provider.get_block_number().await.unwrap();
    for number in audit.scanned_to..=latest {
        let block = provider
            .get_block_by_number(number.into())
            .full()
            .await
            .unwrap()
            .unwrap();
        for tx in block.transactions.txns() {
            if tx.inner.signer() == key {
                assert!(
                    known.contains(tx.inner.tx_hash()),
                    "kill {kill}: tx {} of the key is on L1 but not in the store",
                    tx.inner.tx_hash()
                );
            }
        }
    }
    audit.scanned_to = latest.saturating_sub(2);
    let max_nonce = records.iter().map(|r| r.nonce).max();
    let chain_nonce = net.nonce(key).await;
    assert!(
        chain_nonce <= max_nonce.map_or(0, |n| n + 1),
        "kill {kill}: L1 nonce {chain_nonce} is ahead of every stored record"
    );
}

fn run_kills(kills: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let net = runtime.block_on(Net::start(SLOT, VALIDATORS));
    let key = net.publisher_key(0);
    let address = key.address();
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let exe = std::env::current_exe().unwrap();
    let mut audit = Audit::default();
    for kill in 0..kills {
        let at = KILL_POINTS[kill % KILL_POINTS.len()];
        let started = Instant::now();
        let log = dir.path().join(format!("child-{kill}.log"));
        let var = |name: &str| format!("{CHILD_ENV}_{name}");
        let mut child = Command::new(&exe)
            .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &store_dir)
            .env(var("ENDPOINT"), net.harness.endpoint())
            .env(var("ROLLUP"), net.deployment.rollup.to_string())
            .env(
                var("GENESIS"),
                net.deployment.params.genesis_time.to_string(),
            )
            .env(
                var("CHAIN_ID"),
                net.deployment.params.l2_chain_id.to_string(),
            )
            .env(var("KEY"), alloy::hex::encode(key.to_bytes()))
            .env(var("KILL_AT"), at)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            // libtest may print the test's name on the same line, before ours.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("HOOK ")
                    && lines_tx.send(line[at..].to_string()).is_err()
                {
                    break;
                }
            }
        });
        let hook = lines_rx.recv_timeout(Duration::from_secs(60));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let hook = hook.unwrap_or_else(|_| {
            panic!(
                "kill {kill}: the child never reached {at}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        assert!(hook.starts_with(&format!("HOOK {at} ")), "{hook}");
        eprintln!("kill {kill} at {hook} after {:?}", started.elapsed());
        let records = check_store(&store_dir, address, &mut audit, kill);
        runtime.block_on(check_chain(&net, address, &records, &mut audit, kill));
        let wait_for_windows = (kill / KILL_POINTS.len()) % 2 == 1;
        if at == "accepted" && !wait_for_windows {
            // The store says "signed" for a tx L1 has: restart once it is mined, so the next
            // child's re-send meets "nonce too low" for a tx that is in fact ours.
            let hash: B256 = hook.rsplit(' ').next().unwrap().parse().unwrap();
            runtime.block_on(async {
                let provider = net.harness.provider();
                let deadline = Instant::now() + Duration::from_secs(30);
                while provider
                    .get_transaction_receipt(hash)
                    .await
                    .unwrap()
                    .is_none()
                {
                    assert!(Instant::now() < deadline, "kill {kill}: {hash} never mined");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        // Every other round of kill points restarts only after the live txs' windows closed:
        // the next child must cancel them rather than send them.
        if wait_for_windows {
            let closes = records
                .iter()
                .filter(|r| r.state.is_live())
                .map(|r| r.window_end)
                .max();
            if let Some(closes) = closes {
                runtime.block_on(async {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while net.harness.latest_timestamp().await.unwrap() < closes {
                        assert!(
                            Instant::now() < deadline,
                            "kill {kill}: L1 stopped before {closes}"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
            }
        }
    }

    // A publisher on the same store finishes what the children left.
    runtime.block_on(async {
        let running =
            Running::start(net.deps(&store_dir, fast_config(), vec![key.clone()], None)).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while running.handle.live_txs() > 0 {
            assert!(Instant::now() < deadline, "resumed txs never ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        running.stop().await;
    });
    let records = check_store(&store_dir, address, &mut audit, kills);
    runtime.block_on(check_chain(&net, address, &records, &mut audit, kills));
    assert!(
        records.iter().all(|r| !r.state.is_live()),
        "every resumed record ended"
    );
    let chain_nonce = runtime.block_on(net.nonce(address));
    for nonce in 0..chain_nonce {
        assert!(
            records.iter().any(|r| r.nonce == nonce
                && matches!(r.state, TxState::Final(end) if end.consumed_nonce())),
            "nonce {nonce} was used on L1 without a record that consumed it"
        );
    }
    assert!(
        records
            .iter()
            .all(|r| r.state != TxState::Final(FinalState::NonceTaken)),
        "no tx of the key came from elsewhere"
    );
    let landed = records
        .iter()
        .filter(|r| r.state == TxState::Final(FinalState::Landed))
        .count();
    let mut ends: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &records {
        if let TxState::Final(end) = record.state {
            *ends.entry(end.as_str()).or_default() += 1;
        }
    }
    eprintln!(
        "{kills} kills: {} records, L1 nonce {chain_nonce}, outcomes {ends:?}",
        records.len()
    );
    assert!(
        landed * 4 >= kills,
        "too few proposes landed across the kills: {landed} of {} records",
        records.len()
    );
}
