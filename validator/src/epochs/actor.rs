//! The actor that fills the epoch cache from L1, and its handle.

use std::{sync::Arc, time::Duration};

use tandem_l1::{L1BlockRef, L1Result};
use tandem_proto::time::{Clock, Epoch, SlotClock};
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    CachedEpoch, CommitteeL1, EpochCache, EpochCacheConfig, EpochCacheStatus, EpochState,
    MAX_EPOCH_CACHE_INTERVAL, fixed_from, l1_epoch,
};
use crate::{
    error::{ValidatorError, ValidatorResult},
    metrics::{self, RefreshResult},
};

/// Commands waiting for the actor; callers of [`EpochCacheHandle::refresh`] wait beyond it.
const COMMAND_QUEUE_CAPACITY: usize = 16;

/// Longest doubling exponent of the retry delay (the delay is capped by `retry_max` anyway).
const MAX_BACKOFF_DOUBLINGS: u32 = 16;

enum Command {
    Refresh(oneshot::Sender<ValidatorResult<EpochCacheStatus>>),
}

/// Handle of the epoch cache actor: the cache itself, its status, and on-demand refreshes.
#[derive(Debug, Clone)]
pub struct EpochCacheHandle {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<EpochCacheStatus>,
    cache: EpochCache,
}

impl EpochCacheHandle {
    /// The cache (the [`tandem_p2p::CommitteeSource`] to hand to p2p, the sequencer and the
    /// validator handler).
    pub fn cache(&self) -> EpochCache {
        self.cache.clone()
    }

    /// The status after the latest pass.
    pub fn status(&self) -> EpochCacheStatus {
        self.status.borrow().clone()
    }

    /// A receiver of the status after every pass (for `/ready` and for tests to wait on).
    pub fn subscribe(&self) -> watch::Receiver<EpochCacheStatus> {
        self.status.clone()
    }

    /// Runs a pass now and returns its status, or the L1 error it failed with (it is retried
    /// with backoff either way).
    pub async fn refresh(&self) -> ValidatorResult<EpochCacheStatus> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Refresh(reply))
            .await
            .map_err(|_| ValidatorError::EpochCacheStopped)?;
        answer
            .await
            .map_err(|_| ValidatorError::EpochCacheStopped)?
    }
}

/// Fills the [`EpochCache`]; see the module docs for what it reads when.
pub struct EpochCacheActor<L> {
    l1: L,
    cache: EpochCache,
    clock: Arc<dyn Clock>,
    config: EpochCacheConfig,
    commands: mpsc::Receiver<Command>,
    commands_open: bool,
    status: watch::Sender<EpochCacheStatus>,
    current: Epoch,
    last_head: Option<L1BlockRef>,
    finalized: Option<u64>,
    failures: u32,
}

impl<L> std::fmt::Debug for EpochCacheActor<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochCacheActor")
            .field("config", &self.config)
            .field("current", &self.current)
            .field("last_head", &self.last_head)
            .finish_non_exhaustive()
    }
}

impl<L: CommitteeL1> EpochCacheActor<L> {
    /// An empty cache over `l1`; epochs follow `clock` through `slot_clock`. Fails with
    /// [`ValidatorError::EpochCacheConfig`] on a setting out of range
    /// ([`EpochCacheConfig::validate`]).
    pub fn new(
        config: EpochCacheConfig,
        slot_clock: SlotClock,
        clock: Arc<dyn Clock>,
        l1: L,
    ) -> ValidatorResult<(EpochCacheHandle, Self)> {
        config.validate()?;
        let cache = EpochCache::new(slot_clock);
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        let initial = EpochCacheStatus {
            current_epoch: Epoch(0),
            current: EpochState::Unknown,
            next: EpochState::Unknown,
            l1_head: None,
        };
        let (status, status_rx) = watch::channel(initial);
        let handle = EpochCacheHandle {
            commands: commands_tx,
            status: status_rx,
            cache: cache.clone(),
        };
        let actor = Self {
            l1,
            cache,
            clock,
            config,
            commands,
            commands_open: true,
            status,
            current: Epoch(0),
            last_head: None,
            finalized: None,
            failures: 0,
        };
        Ok((handle, actor))
    }

    /// Refreshes every `poll_interval` (sooner after errors, with backoff) and on request, until
    /// cancelled. L1 errors never stop it: they are logged, counted and retried.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut next_pass = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                // Requests first: a caller is waiting for the answer.
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(Command::Refresh(reply)) => {
                        let Some(result) = self.pass_unless_cancelled(&cancel).await else {
                            return;
                        };
                        next_pass = self.schedule(&result);
                        // The caller may have given up waiting; the pass counted anyway.
                        let _ = reply.send(result);
                    }
                    // Every handle is gone; the cache still needs filling.
                    None => self.commands_open = false,
                },
                _ = tokio::time::sleep_until(next_pass) => {
                    let Some(result) = self.pass_unless_cancelled(&cancel).await else {
                        return;
                    };
                    next_pass = self.schedule(&result);
                }
            }
        }
    }

    async fn pass_unless_cancelled(
        &mut self,
        cancel: &CancellationToken,
    ) -> Option<ValidatorResult<EpochCacheStatus>> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            result = self.pass() => Some(result),
        }
    }

    /// One pass: refresh (bounded by `pass_timeout`), count, publish the status.
    async fn pass(&mut self) -> ValidatorResult<EpochCacheStatus> {
        let started = std::time::Instant::now();
        let timeout = self.config.pass_timeout;
        let result = match tokio::time::timeout(timeout, self.refresh()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(ValidatorError::L1(err)),
            Err(_) => Err(ValidatorError::EpochCacheTimeout(timeout)),
        };
        let outcome = match &result {
            Ok(()) => RefreshResult::Ok,
            Err(err) if is_transient(err) => RefreshResult::TransientError,
            Err(_) => RefreshResult::PermanentError,
        };
        metrics::epoch_cache_refresh(outcome, started.elapsed());
        let status = self.publish();
        result.map(|()| status)
    }

    /// When the next pass runs, after `result`.
    fn schedule(&mut self, result: &ValidatorResult<EpochCacheStatus>) -> Instant {
        let delay = match result {
            Ok(_) => {
                self.failures = 0;
                self.config.poll_interval
            }
            Err(err) => {
                self.failures = self.failures.saturating_add(1);
                let transient = is_transient(err);
                let delay = if transient {
                    backoff(&self.config, self.failures)
                } else {
                    self.config.retry_max
                };
                if transient {
                    tracing::warn!(
                        target: "validator::epochs", error = %err, attempt = self.failures,
                        retry_in = ?delay, "epoch cache could not read L1"
                    );
                } else {
                    tracing::error!(
                        target: "validator::epochs", error = %err, attempt = self.failures,
                        retry_in = ?delay,
                        "epoch cache got a permanent L1 error (a retry is unlikely to help)"
                    );
                }
                delay
            }
        };
        deadline_after(Instant::now(), delay)
    }

    fn slot_clock(&self) -> SlotClock {
        *self.cache.slot_clock()
    }

    async fn refresh(&mut self) -> L1Result<()> {
        let slot_clock = self.slot_clock();
        let now = self.clock.now();
        self.current = slot_clock
            .slot_at(now)
            .map_or(Epoch(0), |slot| slot_clock.epoch_of(slot));
        self.evict();
        let head = self.l1.head().await?;
        let head_epoch = l1_epoch(&slot_clock, head.timestamp);
        if self.last_head != Some(head) {
            self.check_reorgs(head, head_epoch).await?;
        }
        let first = self
            .current
            .0
            .saturating_sub(self.config.retained_past_epochs.min(1));
        for target in first..=self.current.0.saturating_add(1) {
            let target = Epoch(target);
            let stale = match self.cache.epoch(target) {
                None => true,
                Some(cached) => !cached.fixed && cached.read_at != head,
            };
            if stale {
                self.read(target, head, head_epoch).await?;
            }
        }
        self.last_head = Some(head);
        Ok(())
    }

    /// Reads `target` at `head` if L1 knows it there (fixed, or provisional one epoch short),
    /// else forgets it. Returns the previous entry.
    async fn read(
        &mut self,
        target: Epoch,
        head: L1BlockRef,
        head_epoch: Epoch,
    ) -> L1Result<Option<Arc<CachedEpoch>>> {
        if head_epoch.0.saturating_add(1) < fixed_from(target).0 {
            return Ok(self.cache.write().remove(&target));
        }
        let committee = self.l1.committee_at(target, head).await?;
        metrics::epoch_cache_committee_read();
        let fixed = head_epoch >= fixed_from(target);
        let cached = Arc::new(CachedEpoch::new(committee, head, fixed));
        Ok(self.cache.write().insert(target, cached))
    }

    /// Re-reads every fixed committee whose L1 block (not yet finalized) left the chain.
    async fn check_reorgs(&mut self, head: L1BlockRef, head_epoch: Epoch) -> L1Result<()> {
        let unfinalized = |cached: &CachedEpoch, finalized: Option<u64>| {
            cached.fixed && finalized.is_none_or(|f| cached.read_at.number > f)
        };
        let candidates: Vec<Arc<CachedEpoch>> = self
            .cache
            .read()
            .values()
            .filter(|cached| unfinalized(cached, self.finalized) && cached.read_at != head)
            .cloned()
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        if let Some(finalized) = self.l1.finalized().await? {
            self.finalized = self.finalized.max(Some(finalized.number));
        }
        for cached in candidates {
            if !unfinalized(&cached, self.finalized)
                || self.l1.canonical_hash(cached.read_at.number).await? == Some(cached.read_at.hash)
            {
                continue;
            }
            let epoch = cached.epoch();
            let replaced = self.read(epoch, head, head_epoch).await?;
            let now = self.cache.epoch(epoch);
            let changed = match (&replaced, &now) {
                (Some(old), Some(new)) => !old.same_duties(new.committee()),
                _ => true,
            };
            metrics::epoch_cache_reorged_read(changed);
            if changed {
                tracing::warn!(
                    target: "validator::epochs", %epoch, old_block = %cached.read_at.hash,
                    new_block = %head.hash, known = now.is_some(),
                    "an L1 reorg changed a cached committee"
                );
            } else {
                tracing::info!(
                    target: "validator::epochs", %epoch, old_block = %cached.read_at.hash,
                    "an L1 reorg removed the block a committee was read at; it is unchanged"
                );
            }
        }
        Ok(())
    }

    fn evict(&self) {
        let keep_from = self
            .current
            .0
            .saturating_sub(self.config.retained_past_epochs);
        let keep_to = self.current.0.saturating_add(1);
        self.cache
            .write()
            .retain(|epoch, _| (keep_from..=keep_to).contains(&epoch.0));
    }

    fn publish(&self) -> EpochCacheStatus {
        let next = Epoch(self.current.0.saturating_add(1));
        let status = EpochCacheStatus {
            current_epoch: self.current,
            current: self.cache.state(self.current),
            next: self.cache.state(next),
            l1_head: self.last_head,
        };
        metrics::epoch_cache_state(
            self.cache.read().len(),
            status.current.gauge(),
            status.next.gauge(),
        );
        self.status.send_if_modified(|published| {
            let changed = *published != status;
            if changed {
                published.clone_from(&status);
            }
            changed
        });
        status
    }
}

/// Whether a failed pass may succeed when retried soon: transient L1 errors and timeouts.
fn is_transient(err: &ValidatorError) -> bool {
    match err {
        ValidatorError::L1(err) => err.is_transient(),
        ValidatorError::EpochCacheTimeout(_) => true,
        _ => false,
    }
}

/// `now + delay`, the delay capped at [`MAX_EPOCH_CACHE_INTERVAL`]: `Instant` addition panics on
/// overflow. A validated config keeps delays below the cap, so the fallback (`now`) is only
/// for an instant near the end of the clock's range.
fn deadline_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(MAX_EPOCH_CACHE_INTERVAL))
        .unwrap_or(now)
}

/// `retry_initial · 2^(failures − 1)`, capped at `retry_max`.
fn backoff(config: &EpochCacheConfig, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(MAX_BACKOFF_DOUBLINGS);
    config
        .retry_initial
        .saturating_mul(1u32 << doublings)
        .min(config.retry_max)
}

#[cfg(test)]
mod tests;
