//! When a propose is sent (reference §4.3, newest form): inside the target slot, at once;
//! otherwise sleep until `T − E`, then wait for an L1 block stamped `≥ T − E` — our tx cannot be in
//! that block, which would revert it with a slot mismatch — and send right after it. If that
//! block does not come within the send-wait timeout, the L1 slot was missed: send anyway.
//!
//! This is the one wait measured on the local clock: it exists to detect a missed L1 slot, which
//! L1 time (which stops when L1 stops) cannot.

use std::{future::Future, time::Duration};

use tandem_proto::time::{Clock, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::error::PublisherError;

/// Longest single sleep: the clock is re-read at least this often, so a test's manual clock (or a
/// system clock stepped by NTP) is followed.
pub(crate) const MAX_SLEEP_SLICE: Duration = Duration::from_millis(100);

/// The latest L1 block's timestamp, seconds.
pub(crate) trait L1Head: Sync {
    fn latest_timestamp(&self) -> impl Future<Output = Result<u64, PublisherError>> + Send;
}

/// Why the publisher sends now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendTime {
    /// Already inside the target slot.
    InsideTargetSlot,
    /// The L1 block before the target slot arrived.
    AfterPreviousBlock,
    /// That block did not come in time: its L1 slot was missed.
    PreviousBlockMissed,
}

impl SendTime {
    /// Label for metrics and logs.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::InsideTargetSlot => "inside_target_slot",
            Self::AfterPreviousBlock => "after_previous_block",
            Self::PreviousBlockMissed => "previous_block_missed",
        }
    }
}

/// Sleeps until `clock` reads `deadline`, or fails with `Interrupted` as soon as `cancel` fires.
pub(crate) async fn sleep_until(
    clock: &dyn Clock,
    deadline: Timestamp,
    cancel: &CancellationToken,
) -> Result<(), PublisherError> {
    loop {
        let now = clock.now();
        if now >= deadline {
            return Ok(());
        }
        let nap = now.until(deadline).min(MAX_SLEEP_SLICE);
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(PublisherError::Interrupted),
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// Sleeps for `duration` unless `cancel` fires first.
pub(crate) async fn nap(
    duration: Duration,
    cancel: &CancellationToken,
) -> Result<(), PublisherError> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(PublisherError::Interrupted),
        () = tokio::time::sleep(duration) => Ok(()),
    }
}

/// Timing of one target slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendSchedule {
    /// `T`, the target slot's start.
    pub(crate) target_start: Timestamp,
    /// `E`.
    pub(crate) l1_slot: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) wait_timeout: Duration,
}

/// Waits until it is time to send (see the module docs).
pub(crate) async fn wait_for_send_time(
    clock: &dyn Clock,
    head: &impl L1Head,
    schedule: SendSchedule,
    cancel: &CancellationToken,
) -> Result<SendTime, PublisherError> {
    if clock.now() >= schedule.target_start {
        return Ok(SendTime::InsideTargetSlot);
    }
    let previous_block = schedule.target_start.saturating_sub(schedule.l1_slot);
    sleep_until(clock, previous_block, cancel).await?;
    let give_up = previous_block.saturating_add(schedule.wait_timeout);
    loop {
        match head.latest_timestamp().await {
            Ok(timestamp) if Timestamp::from_secs(timestamp) >= previous_block => {
                return Ok(SendTime::AfterPreviousBlock);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(target: "publisher", %error, "reading the L1 head while waiting to send");
            }
        }
        let now = clock.now();
        if now >= give_up {
            return Ok(SendTime::PreviousBlockMissed);
        }
        if now >= schedule.target_start {
            return Ok(SendTime::InsideTargetSlot);
        }
        let wake = now
            .saturating_add(schedule.poll_interval)
            .min(give_up)
            .min(schedule.target_start);
        sleep_until(clock, wake, cancel).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    };
    use tandem_proto::time::ManualClock;

    /// An L1 head the test moves; counts reads.
    #[derive(Default)]
    struct FakeHead {
        timestamp: AtomicU64,
        reads: AtomicUsize,
    }

    impl L1Head for Arc<FakeHead> {
        async fn latest_timestamp(&self) -> Result<u64, PublisherError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.timestamp.load(Ordering::SeqCst))
        }
    }

    /// A manual clock that counts how often it is read: a task re-reading it is in its sleep
    /// loop.
    #[derive(Clone)]
    struct WatchedClock {
        clock: ManualClock,
        reads: Arc<AtomicUsize>,
    }

    impl Clock for WatchedClock {
        fn now(&self) -> Timestamp {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.clock.now()
        }
    }

    const T: u64 = 1_000;
    /// Bound of every wait on the task (a hang guard, not a timing assertion).
    const PATIENCE: Duration = Duration::from_secs(10);

    fn schedule() -> SendSchedule {
        SendSchedule {
            target_start: Timestamp::from_secs(T),
            l1_slot: Duration::from_secs(12),
            poll_interval: Duration::from_millis(200),
            wait_timeout: Duration::from_secs(8),
        }
    }

    struct Running {
        clock: ManualClock,
        clock_reads: Arc<AtomicUsize>,
        head: Arc<FakeHead>,
        task: tokio::task::JoinHandle<Result<SendTime, PublisherError>>,
        cancel: CancellationToken,
    }

    fn start(now: u64, head_at: u64) -> Running {
        let clock = ManualClock::new(Timestamp::from_secs(now));
        let head = Arc::new(FakeHead::default());
        head.timestamp.store(head_at, Ordering::SeqCst);
        let watched = WatchedClock {
            clock: clock.clone(),
            reads: Arc::new(AtomicUsize::new(0)),
        };
        let cancel = CancellationToken::new();
        let (task_clock, task_head, token) = (watched.clone(), head.clone(), cancel.clone());
        let task = tokio::spawn(async move {
            wait_for_send_time(&task_clock, &task_head, schedule(), &token).await
        });
        Running {
            clock,
            clock_reads: watched.reads,
            head,
            task,
            cancel,
        }
    }

    /// Waits (bounded) until `counter` reaches `at_least`.
    async fn until(counter: &AtomicUsize, at_least: usize, what: &str) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while counter.load(Ordering::SeqCst) < at_least {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn result(running: Running) -> Result<SendTime, PublisherError> {
        tokio::time::timeout(PATIENCE, running.task)
            .await
            .expect("the wait ends")
            .unwrap()
    }

    #[tokio::test]
    async fn inside_the_target_slot_sends_at_once() {
        let running = start(T + 3, 0);
        let head = running.head.clone();
        assert_eq!(result(running).await.unwrap(), SendTime::InsideTargetSlot);
        assert_eq!(head.reads.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn sleeps_to_t_minus_e_then_waits_for_the_previous_block() {
        let running = start(T - 40, T - 13);
        // The task re-reads the clock at least every 100 ms while it sleeps: three reads and
        // still no head read means it sleeps instead of polling L1 before T - E.
        until(&running.clock_reads, 3, "the task reads the clock").await;
        assert_eq!(
            running.head.reads.load(Ordering::SeqCst),
            0,
            "no poll before T - E"
        );
        running.clock.set(Timestamp::from_secs(T - 12));
        until(&running.head.reads, 1, "the head is read at T - E").await;
        // The block at T - E is not there yet: the task polls again one interval later (on its
        // clock) and keeps waiting.
        running.clock.advance(Duration::from_millis(200));
        until(&running.head.reads, 2, "the head is polled again").await;
        assert!(!running.task.is_finished());
        // A block stamped T - E appears: ours goes into the next one.
        running.head.timestamp.store(T - 12, Ordering::SeqCst);
        running.clock.advance(Duration::from_millis(200));
        assert_eq!(result(running).await.unwrap(), SendTime::AfterPreviousBlock);
    }

    #[tokio::test]
    async fn a_missed_l1_slot_sends_after_the_timeout() {
        let running = start(T - 12, T - 24);
        until(&running.head.reads, 1, "the head is read").await;
        running.clock.advance(Duration::from_secs(7));
        let reads = running.head.reads.load(Ordering::SeqCst);
        until(&running.head.reads, reads + 1, "the head is polled again").await;
        assert!(!running.task.is_finished());
        running.clock.advance(Duration::from_secs(1));
        assert_eq!(
            result(running).await.unwrap(),
            SendTime::PreviousBlockMissed
        );
    }

    #[tokio::test]
    async fn interrupt_ends_the_sleep_without_the_clock_moving() {
        let running = start(T - 60, 0);
        until(&running.clock_reads, 2, "the task sleeps").await;
        running.cancel.cancel();
        let clock = running.clock.clone();
        assert!(matches!(
            result(running).await,
            Err(PublisherError::Interrupted)
        ));
        // It did not wait for its deadline (the clock never reached it).
        assert_eq!(clock.now(), Timestamp::from_secs(T - 60));
    }
}
