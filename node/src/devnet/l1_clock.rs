//! The devnet's L1 clock. The devnet's own anvil runs with `--no-mining`, and this thread mines
//! one block at each wall-clock L1-slot boundary, stamped with that boundary, as Ethereum's
//! slot-aligned blocks are. anvil's own `--block-time` miner, starved of CPU, mines missed ticks
//! in a burst with a repeated timestamp: in a loaded crash-loop run blocks 2202 and 2203 were both
//! stamped 02:00:54, and the propose sent after the first (the block stamped T−E, as the
//! publisher's schedule intends) landed in the second, in the slot before its target, and
//! reverted. Here a stamp is never used twice: a clock that falls behind skips to the current
//! boundary (a missed L1 slot, which the protocol handles). Its own thread and runtime keep it
//! on time while the devnet's thread is busy.

use std::{
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use eyre::{WrapErr, eyre};
use tokio_util::sync::CancellationToken;

/// Mines the devnet's anvil blocks until stopped (or dropped).
#[derive(Debug)]
pub(crate) struct L1Clock {
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

/// The boundary to stamp next: the latest one due at `now_ms` when it is after `last` (the
/// first boundary after `last` when on time, the current one when late); `None`: not due yet.
fn due(last: u64, now_ms: u64, slot_secs: u64) -> Option<u64> {
    let latest = now_ms / 1000 / slot_secs * slot_secs;
    (latest > last).then_some(latest)
}

fn unix_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl L1Clock {
    /// Starts mining on anvil at `url` every `slot_secs` (at least 1).
    pub(crate) fn start(url: &str, slot_secs: u64) -> eyre::Result<Self> {
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

    /// Stops mining (before anvil stops: no failed `evm_mine` is reported then).
    pub(crate) fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for L1Clock {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn mine(provider: &DynProvider, slot_secs: u64) {
    let mut last = 0u64;
    let mut failures = 0u64;
    loop {
        if let Some(stamp) = due(last, unix_ms(), slot_secs) {
            let mined = provider
                .raw_request::<_, serde_json::Value>("evm_mine".into(), [stamp])
                .await;
            if let Err(error) = mined {
                // anvil starting, stopping or busy: the next boundary is tried. A few are
                // reported, so an L1 that stays broken shows.
                failures += 1;
                if failures <= 3 || failures.is_multiple_of(100) {
                    eprintln!(
                        "warning: devnet L1 clock: evm_mine at {stamp} ({failures} failed so far): {error}"
                    );
                }
            }
            last = stamp;
        }
        // The clock's tick, not a synchronisation: wake at the next boundary.
        let next_ms = last
            .max(unix_ms() / 1000 / slot_secs * slot_secs)
            .saturating_add(slot_secs)
            .saturating_mul(1000);
        tokio::time::sleep(Duration::from_millis(next_ms.saturating_sub(unix_ms()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::due;

    #[test]
    fn each_boundary_is_stamped_once_and_a_late_clock_skips_to_the_current_one() {
        // On time: boundary 100 is due at 100.0 s and not again at 100.9 s.
        assert_eq!(due(99, 100_000, 1), Some(100));
        assert_eq!(due(100, 100_900, 1), None);
        // Late by 2.5 slots: one block stamped 102, not 101 and 102 in a burst.
        assert_eq!(due(99, 102_500, 1), Some(102));
        // E = 2 s: boundaries are even seconds.
        assert_eq!(due(100, 101_999, 2), None);
        assert_eq!(due(100, 102_000, 2), Some(102));
    }
}
