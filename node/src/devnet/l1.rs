//! The devnet's own L1: anvil, and the clock that mines its blocks.
//!
//! anvil runs with `--no-mining`, and a clock thread mines one block at each L1-slot boundary,
//! stamped with it, as Ethereum's slot-aligned blocks are. anvil's own `--block-time` miner,
//! starved of CPU, mines missed ticks in a burst with a repeated timestamp: in a loaded
//! crash-loop run blocks 2202 and 2203 were both stamped 02:00:54, and the propose sent after
//! the first (the block stamped T−E, as the publisher's schedule intends) landed in the second,
//! in the slot before its target, and reverted. The clock's boundaries are the chain head's
//! timestamp plus whole L1 slots, so the rollup's genesis (a block's timestamp plus whole slots)
//! stays on them; a boundary is stamped only when it is after the head (never twice), and a
//! clock that falls behind skips to the current one (a missed L1 slot, which the protocol
//! handles). Its own thread and runtime keep it on time while the devnet's thread is busy.

use std::{
    path::PathBuf,
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use eyre::{WrapErr, bail, eyre};
use tokio_util::sync::CancellationToken;

use super::{ANVIL_HARDFORK, Devnet, DevnetArgs, L1_STARTUP, children, children::Running, os};

/// How often anvil dumps its state, in seconds.
const ANVIL_STATE_INTERVAL_SECS: &str = "10";

fn anvil_binary(args: &DevnetArgs) -> PathBuf {
    if let Some(path) = &args.anvil {
        return path.clone();
    }
    if let Some(path) = std::env::var_os("TANDEM_ANVIL") {
        return PathBuf::from(path);
    }
    let local = PathBuf::from(".tools/bin/anvil");
    if local.exists() {
        return local;
    }
    PathBuf::from("anvil")
}

impl Devnet {
    pub(super) async fn start_anvil(&self, args: &DevnetArgs) -> eyre::Result<Option<Running>> {
        if !self.file.own_l1 {
            return Ok(None);
        }
        let port = self
            .file
            .l1_rpc_url
            .rsplit(':')
            .next()
            .unwrap_or("8545")
            .to_string();
        let state = self.data.join("l1").join("anvil-state.json");
        std::fs::create_dir_all(self.data.join("l1"))?;
        let mut anvil_args = os(&[
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            // Blocks come from the devnet's L1 clock (below), one per L1-slot boundary.
            "--no-mining",
            "--hardfork",
            ANVIL_HARDFORK,
            // anvil writes `--state` on its clean shutdown only; the interval keeps a recent
            // copy for a devnet that was killed (or a host that crashed).
            "--state-interval",
            ANVIL_STATE_INTERVAL_SECS,
            "--state",
        ]);
        anvil_args.push(state.into_os_string());
        let binary = anvil_binary(args);
        let anvil = children::spawn(
            "anvil",
            &binary,
            &anvil_args,
            &self.data.join("l1").join("anvil.log"),
        )
        .wrap_err(
            "start anvil (install it with scripts/install-tools.sh, or give --anvil / --l1-rpc)",
        )?;
        Ok(Some(anvil))
    }

    /// The clock that mines the devnet's own anvil (none for `--l1-rpc`); start it once anvil
    /// answers, before anything waits for a receipt.
    pub(super) fn start_l1_clock(&self) -> eyre::Result<Option<L1Clock>> {
        if !self.file.own_l1 {
            return Ok(None);
        }
        L1Clock::start(&self.file.l1_rpc_url, self.profile.l1_slot_secs).map(Some)
    }

    pub(super) async fn wait_for_l1(&self) -> eyre::Result<alloy::providers::DynProvider> {
        let url = self
            .file
            .l1_rpc_url
            .parse()
            .map_err(|_| eyre!("--l1-rpc: {:?} is not a URL", self.file.l1_rpc_url))?;
        let provider = ProviderBuilder::new().connect_http(url).erased();
        let deadline = tokio::time::Instant::now() + L1_STARTUP;
        loop {
            let probe = tokio::time::timeout(crate::client::CALL_TIMEOUT, provider.get_chain_id());
            if matches!(probe.await, Ok(Ok(_))) {
                return Ok(provider);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "L1 at {} did not answer within {}s (see {})",
                    self.file.l1_rpc_url,
                    L1_STARTUP.as_secs(),
                    self.data.join("l1").join("anvil.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Mines the devnet's anvil blocks until dropped.
#[derive(Debug)]
pub(super) struct L1Clock {
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

/// The boundary to stamp next, on the grid `origin + k·slot` (`origin`: the head's timestamp
/// when the clock started, so the rollup's genesis is on the grid): the latest boundary due at
/// `now_ms`, when it is after `head`, the chain's newest timestamp now (so never a stamp twice,
/// whoever else mined); `None` while nothing is due.
fn due(origin: u64, head: u64, now_ms: u64, slot_secs: u64) -> Option<u64> {
    let elapsed = (now_ms / 1000).checked_sub(origin)?;
    let latest = origin.saturating_add(elapsed / slot_secs * slot_secs);
    (latest > head).then_some(latest)
}

/// When the grid's boundary after `now_ms` comes, in ms (the clock's next wake-up).
fn next_boundary_ms(origin: u64, now_ms: u64, slot_secs: u64) -> u64 {
    let elapsed = (now_ms / 1000).saturating_sub(origin);
    origin
        .saturating_add(
            (elapsed / slot_secs)
                .saturating_add(1)
                .saturating_mul(slot_secs),
        )
        .saturating_mul(1000)
}

fn unix_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl L1Clock {
    fn start(url: &str, slot_secs: u64) -> eyre::Result<Self> {
        let url = url
            .parse()
            .map_err(|_| eyre!("the devnet's L1 URL {url:?} is not a URL"))?;
        let slot_secs = slot_secs.max(1);
        let cancel = CancellationToken::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stop = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("devnet-l1-clock".into())
            .spawn(move || {
                runtime.block_on(async {
                    let provider = ProviderBuilder::new().connect_http(url).erased();
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = mine(&provider, slot_secs) => {}
                    }
                });
            })
            .wrap_err("starting the devnet's L1 clock thread")?;
        Ok(Self {
            cancel,
            thread: Some(thread),
        })
    }
}

impl Drop for L1Clock {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn head_timestamp(provider: &DynProvider) -> eyre::Result<u64> {
    let head = tokio::time::timeout(
        crate::client::CALL_TIMEOUT,
        provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest),
    )
    .await
    .map_err(|_| eyre!("no answer within {:?}", crate::client::CALL_TIMEOUT))??
    .ok_or_else(|| eyre!("anvil has no latest block"))?;
    Ok(head.header.timestamp)
}

async fn mine_at(provider: &DynProvider, stamp: u64) -> eyre::Result<()> {
    tokio::time::timeout(
        crate::client::CALL_TIMEOUT,
        provider.raw_request::<_, serde_json::Value>("evm_mine".into(), [stamp]),
    )
    .await
    .map_err(|_| eyre!("no answer within {:?}", crate::client::CALL_TIMEOUT))??;
    Ok(())
}

async fn mine(provider: &DynProvider, slot_secs: u64) {
    let origin = loop {
        match head_timestamp(provider).await {
            Ok(head) => break head,
            // anvil answered the devnet's probe a moment ago: it is busy, not gone.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let now = unix_ms() / 1000;
    if origin > now.saturating_add(slot_secs) {
        eprintln!(
            "warning: devnet L1: anvil's latest block is stamped {}s ahead of this host's clock; \
             blocks resume when the clock passes it",
            origin.saturating_sub(now)
        );
    }
    let mut failures = 0u64;
    loop {
        // The head is read each tick: anything else that mines (`anvil_reorg`) moves it.
        let mined = match head_timestamp(provider).await {
            Ok(head) => match due(origin, head, unix_ms(), slot_secs) {
                Some(stamp) => mine_at(provider, stamp).await,
                None => Ok(()),
            },
            Err(error) => Err(error),
        };
        if let Err(error) = mined {
            // Busy or stopping: the next boundary is tried. A few are reported, so an L1 that
            // stays broken shows.
            failures += 1;
            if failures <= 3 || failures.is_multiple_of(100) {
                eprintln!("warning: devnet L1 clock ({failures} failed so far): {error:#}");
            }
        }
        // The clock's tick, not a synchronisation: wake at the next boundary.
        let wake = next_boundary_ms(origin, unix_ms(), slot_secs);
        tokio::time::sleep(Duration::from_millis(wake.saturating_sub(unix_ms()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{due, next_boundary_ms};

    #[test]
    fn boundaries_stay_on_the_grid_after_the_head_and_are_stamped_once() {
        // On time: grid and head at 100, boundary 101 is due at 101.0 s and not before.
        assert_eq!(due(100, 100, 100_999, 1), None);
        assert_eq!(due(100, 100, 101_000, 1), Some(101));
        assert_eq!(next_boundary_ms(100, 101_000, 1), 102_000);
        // A head equal to the current boundary (a resume within its L1 slot) is not stamped
        // again.
        assert_eq!(due(100, 105, 105_700, 1), None);
        // Late by 2.5 slots: one block stamped 103, not 102 and 103 in a burst.
        assert_eq!(due(100, 100, 103_500, 1), Some(103));
        // E = 2 s on an odd origin (anvil's genesis second): the grid stays odd, where the
        // rollup's genesis (origin + 2E) is; late, exactly on a boundary.
        assert_eq!(due(101, 101, 102_900, 2), None);
        assert_eq!(due(101, 101, 103_000, 2), Some(103));
        assert_eq!(due(101, 103, 106_100, 2), Some(105));
        assert_eq!(due(101, 101, 105_000, 2), Some(105));
        assert_eq!(next_boundary_ms(101, 103_000, 2), 105_000);
        assert_eq!(next_boundary_ms(101, 106_100, 2), 107_000);
        // Someone else mined off the grid (a reorg's blocks at 104): the clock keeps the grid,
        // and stamps only after that head.
        assert_eq!(due(101, 104, 104_500, 2), None);
        assert_eq!(due(101, 104, 105_000, 2), Some(105));
        assert_eq!(due(101, 106, 105_000, 2), None);
        // A head ahead of the wall clock: nothing is due until the clock passes it by a slot.
        assert_eq!(due(200, 200, 150_000, 1), None);
        assert_eq!(next_boundary_ms(200, 150_000, 1), 201_000);
        assert_eq!(due(200, 200, 201_000, 1), Some(201));
    }
}
