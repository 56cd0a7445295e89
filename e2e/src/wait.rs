//! Waiting is polling a condition with a deadline, never a bare sleep.

use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `probe` until it returns `Ok`; after `within`, the error names `what` and the last
/// failure.
pub fn until<T, E: std::fmt::Display>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> eyre::Result<T> {
    let deadline = Instant::now() + within;
    loop {
        let last = match probe() {
            Ok(value) => return Ok(value),
            Err(err) => err.to_string(),
        };
        if Instant::now() >= deadline {
            eyre::bail!("{what}: not within {within:?} (last: {last})");
        }
        std::thread::sleep(POLL);
    }
}
