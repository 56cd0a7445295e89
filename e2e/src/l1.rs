//! The scenario's L1 clock: anvil runs with `--no-mining` and this thread mines one block at
//! each wall-clock L1-slot boundary, stamped with that boundary, as Ethereum's slot-aligned
//! blocks are. anvil's own `--block-time` miner, starved of CPU, mines missed ticks in a burst
//! with a repeated timestamp (blocks 70 and 71 both at :35 in one run), so a propose sent just
//! after the block stamped T−E landed in a second block stamped T−E, in the slot before its
//! target, and reverted. Here a stamp is never used twice: a driver that falls behind skips to
//! the current boundary (a missed L1 slot, which the protocol handles).

use std::{
    sync::mpsc::{self, RecvTimeoutError},
    thread::JoinHandle,
    time::Duration,
};

use serde_json::json;

use crate::{client, network::unix_ms};

/// Mines anvil's blocks until dropped.
#[derive(Debug)]
pub(crate) struct L1Clock {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The next boundary after `last` (strictly later) that is not in the past of `now_ms`: the
/// first boundary after `now_ms` when the driver is on time, the latest one already due when
/// it is late (`None`: nothing is due yet, wait for `last + slot`).
fn due(last: u64, now_ms: u64, slot: u64) -> Option<u64> {
    let latest = now_ms / 1000 / slot * slot;
    (latest > last).then_some(latest)
}

impl L1Clock {
    /// Starts mining on `url` every `slot_secs` (≥ 1).
    pub(crate) fn start(url: &str, slot_secs: u64) -> std::io::Result<Self> {
        let slot = slot_secs.max(1);
        let url = url.to_string();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("e2e-l1-clock".into())
            .spawn(move || {
                let mut last = 0u64;
                let mut errors = 0u32;
                loop {
                    let now = unix_ms();
                    if let Some(stamp) = due(last, now, slot) {
                        match client::rpc(&url, "evm_mine", json!([stamp])) {
                            Ok(_) => last = stamp,
                            // anvil killed at the end of a scenario, or busy: try the next
                            // boundary; report a few so a broken L1 shows in the test output.
                            Err(err) => {
                                errors += 1;
                                if errors <= 3 {
                                    eprintln!("L1 clock: evm_mine {stamp}: {err}");
                                }
                                last = stamp;
                            }
                        }
                    }
                    // The L1 clock's tick, not a synchronisation: wake at the next boundary.
                    let next_ms = (last.max(unix_ms() / 1000 / slot * slot) + slot) * 1000;
                    let wait = Duration::from_millis(next_ms.saturating_sub(unix_ms()));
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for L1Clock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::due;

    #[test]
    fn each_boundary_is_stamped_once_and_a_late_driver_skips_to_the_current_one() {
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
