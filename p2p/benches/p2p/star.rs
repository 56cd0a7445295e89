//! The `star` scenario: checkpoint proposal verdicts at one node from one peer, unloaded and
//! while 3 more peers (bare gossipsub, no tandem node behind them) each spray 1,000 tx/s at it
//! (the load, at one hop). Every spammer tx is signed and compressed before the first
//! measurement, so no figure counts the attackers' signing; their remaining CPU (gossipsub,
//! noise, yamux on one worker thread) is measured and printed next to each loaded figure, with
//! the load average at the time. Checkpoints are paced (one per [`SPACING`]). Unloaded and loaded runs alternate `REPETITIONS` times; the
//! medians of their p99s are the figure.

use std::{collections::HashMap, time::Duration};

use tandem_p2p::{GossipKind, Multiaddr, Protocol};
use tandem_proto::{SigningDomain, WireMessage};
use tokio_util::sync::CancellationToken;

use super::{Sprayer, paced_checkpoint_latency, print_ratio, star, stop_all, txs_from};

/// Name of the attackers' runtime threads (their CPU time is read by it).
pub(super) const ATTACKER_THREAD: &str = "attacker";
const REPETITIONS: u64 = 5;
const SPAMMERS: [u8; 3] = [31, 32, 33];
const SPAM_PER_SECOND: u64 = 1_000;
/// Frames per spammer and repetition: more than a loaded run lasts (checked: a spammer that
/// runs dry is reported).
const SPAM_SECONDS: u64 = 12;
/// One checkpoint proposal every this often: a run of 100 spans 2 s of spam (about 6,000 txs
/// at the receiver), not the ~0.1 s back-to-back rounds would.
const SPACING: Duration = Duration::from_millis(20);

/// Signed, compressed tx frames of `sender`, nonces `first..first + count`.
fn frames(domain: &SigningDomain, sender: u8, first: u64, count: u64) -> Vec<Vec<u8>> {
    txs_from(domain, sender, first, count)
        .iter()
        .map(|tx| {
            snap::raw::Encoder::new()
                .compress_vec(&tx.to_wire_bytes())
                .expect("snappy")
        })
        .collect()
}

/// Every repetition's frames for every spammer, signed on all cores before anything is measured.
fn presign(domain: &SigningDomain) -> Vec<Vec<Vec<Vec<u8>>>> {
    let per_run = SPAM_PER_SECOND * SPAM_SECONDS;
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..REPETITIONS)
            .map(|run| {
                scope.spawn(move || {
                    SPAMMERS
                        .iter()
                        .map(|sender| frames(domain, *sender, run * per_run, per_run))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("signing thread"))
            .collect()
    })
}

/// (user + system) CPU seconds of this process and of its attacker threads.
fn cpu_seconds() -> (f64, f64) {
    // After the `(comm)` field: state is field 3, utime 14, stime 15; USER_HZ is 100.
    let ticks = |stat: &str| -> f64 {
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(Vec::new(), |(_, rest)| rest.split(' ').collect());
        let field = |index: usize| {
            fields
                .get(index)
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (field(11) + field(12)) / 100.0
    };
    let process = std::fs::read_to_string("/proc/self/stat").map_or(0.0, |stat| ticks(&stat));
    let attackers = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|comm| comm.trim().starts_with(ATTACKER_THREAD))
                })
                .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
                .map(|stat| ticks(&stat))
                .sum()
        })
        .unwrap_or(0.0);
    (process, attackers)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|load| load.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// The scenario; node 0 is the receiver, node 1 the proposer.
pub(super) async fn star_figures(attackers: tokio::runtime::Handle) {
    let star = star(2).await;
    let chain_id = star.params.domain.chain_id;
    let started = std::time::Instant::now();
    let runs = presign(&star.params.domain);
    println!(
        "star: {} spammer txs pre-signed in {:.1?} (before any measurement)",
        REPETITIONS * SPAMMERS.len() as u64 * SPAM_PER_SECOND * SPAM_SECONDS,
        started.elapsed()
    );
    let receiver = star.nodes[0].0.listen_addrs().await.expect("listening")[0]
        .clone()
        .with(Protocol::P2p(star.nodes[0].0.local_peer_id()));
    let arrivals = &star.nodes[0].1;
    let handled = || *arrivals.txs.lock().expect("lock");
    let (mut unloaded_p99s, mut loaded_p99s) = (Vec::new(), Vec::new());
    for (run, frames) in (0..).zip(runs) {
        let first_slot = 1_000 + run * 200;
        let label = format!("one hop, unloaded, run {}", run + 1);
        let (_, unloaded) =
            paced_checkpoint_latency(&star, 1, &[0], first_slot, &label, SPACING).await;
        let supply = frames.iter().map(Vec::len).sum::<usize>() as u64;
        let spraying: Vec<Sprayer> = frames
            .into_iter()
            .map(|frames| {
                bare_spammer(
                    &attackers,
                    receiver.clone(),
                    chain_id,
                    frames,
                    SPAM_PER_SECOND,
                )
            })
            .collect();
        // Until the spam arrives.
        let before = handled();
        let spammed = arrivals.wait(Duration::from_secs(10), |_| handled() >= before + 1_000);
        if !spammed.await {
            stop_all(spraying).await;
            let status = star.nodes[0].0.status().await.expect("status");
            panic!("the spam never reached the receiver: {status:?}");
        }
        let load = load_average();
        let (cpu_before, attackers_before) = cpu_seconds();
        let (wall, txs_before) = (std::time::Instant::now(), handled());
        let label = format!(
            "one hop, 3 peers x 1,000 tx/s at the receiver, run {}",
            run + 1
        );
        let (_, loaded) =
            paced_checkpoint_latency(&star, 1, &[0], first_slot + 100, &label, SPACING).await;
        let (wall, txs) = (wall.elapsed(), handled() - txs_before);
        let (cpu_after, attackers_after) = cpu_seconds();
        let sent = stop_all(spraying).await;
        println!(
            "  during it: {:.2?} wall, receiver handled {txs} txs ({:.0} tx/s); process CPU {:.2} s, of which the attackers' thread {:.2} s; load average {load}{}",
            wall,
            txs as f64 / wall.as_secs_f64(),
            cpu_after - cpu_before,
            attackers_after - attackers_before,
            if sent >= supply {
                " — a spammer ran out of txs"
            } else {
                ""
            }
        );
        print_ratio(loaded, unloaded);
        unloaded_p99s.push(unloaded);
        loaded_p99s.push(loaded);
        // The backlog judged before the next unloaded run.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let txs = star.nodes[0]
                .0
                .status()
                .await
                .expect("status")
                .gossip(GossipKind::Tx);
            if txs.received == txs.accepted + txs.ignored + txs.rejected
                || tokio::time::Instant::now() >= deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let status = star.nodes[0].0.status().await.expect("status");
    let txs = status.gossip(GossipKind::Tx);
    println!(
        "  receiver's tx topic over all runs: {} received, {} accepted, {} ignored, {} rejected ({} queue-dropped, {} rate-limited); {} peers",
        txs.received,
        txs.accepted,
        txs.ignored,
        txs.rejected,
        txs.queue_dropped,
        txs.rate_limited,
        status.connected.len()
    );
    let (unloaded, loaded) = (median(unloaded_p99s), median(loaded_p99s));
    println!(
        "checkpoint verdict one hop, median p99 of {REPETITIONS} runs ({} deliveries each): unloaded {unloaded:.1?}, loaded {loaded:.1?}",
        super::ROUNDS
    );
    print_ratio(loaded, unloaded);
}

/// An attacker's node: bare gossipsub on the tx topic (no validation, no tandem node behind
/// it), on `runtime` (not the nodes' runtime: the attacker is another machine, though it shares
/// this one's cores), dialing `target` and publishing `frames` (signed and compressed before
/// any measurement) at `per_second` until stopped or out of frames.
fn bare_spammer(
    runtime: &tokio::runtime::Handle,
    target: Multiaddr,
    chain_id: u64,
    frames: Vec<Vec<u8>>,
    per_second: u64,
) -> Sprayer {
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    let task = runtime.spawn(async move {
        use futures::StreamExt;
        use libp2p::{
            SwarmBuilder,
            gossipsub::{self, MessageAuthenticity, ValidationMode},
            noise, tcp, yamux,
        };
        let config = gossipsub::ConfigBuilder::default()
            .validation_mode(ValidationMode::Anonymous)
            .protocol_id_prefix(tandem_p2p::tx_gossip_protocol_prefix(chain_id))
            // Without sources and sequence numbers, messages need content ids to differ.
            .message_id_fn(|message| {
                use sha2::{Digest, Sha256};
                gossipsub::MessageId::from(&Sha256::digest(&message.data)[..20])
            })
            .build()
            .expect("gossipsub config");
        let mut behaviour: gossipsub::Behaviour =
            gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).expect("gossipsub");
        let topic = tandem_p2p::GossipTopic::new(chain_id, GossipKind::Tx).ident();
        behaviour.subscribe(&topic).expect("subscribe");
        let mut swarm = SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("transport")
            .with_behaviour(|_| behaviour)
            .expect("behaviour")
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(60))
            })
            .build();
        swarm.dial(target).expect("dial");
        let mut published = 0;
        let mut refused: HashMap<String, u64> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let per_tick = (per_second / 100).max(1) as usize;
        let mut frames = frames.chunks(per_tick);
        loop {
            tokio::select! {
                () = stopping.cancelled() => break,
                _ = swarm.select_next_some() => {}
                _ = tick.tick() => {
                    let Some(burst) = frames.next() else { break };
                    for frame in burst {
                        match swarm.behaviour_mut().publish(topic.clone(), frame.clone()) {
                            Ok(_) => published += 1,
                            Err(err) => *refused.entry(err.to_string()).or_default() += 1,
                        }
                    }
                }
            }
        }
        (published, refused)
    });
    Sprayer { stop, task }
}
