//! The tx pool: validated txs waiting for a block.
//!
//! - Ordering for block building: the highest fee first among each sender's next executable tx,
//!   then that sender's following nonces; a nonce gap holds the rest of a sender's txs back.
//! - Limits against spam: at most [`PoolConfig::max_txs_per_sender`] txs per sender, at most
//!   [`PoolConfig::max_nonce_gap`] nonces missing below a tx, and a sender's balance must cover
//!   every one of its pending txs at once (amount + max fee each), not just each alone.
//! - A limit never locks a sender out: a tx below the sender's highest nonce that a sender limit
//!   (count or balance) would refuse evicts the sender's highest nonces instead (lower nonces
//!   win: they are what makes the later ones executable). Txs of pruned blocks come back even
//!   past the per-sender count (they were in a block, so nothing of them is lost on any node).
//! - Limits by count and bytes; when full, the cheapest *last* tx of a sender (its highest nonce,
//!   so no later nonce is left stranded behind a hole) that is not protected is evicted, newest
//!   first among equals; it may be the incoming one.
//! - A tx with the same sender and nonce replaces the old one only with a fee at least
//!   [`PoolConfig::replacement_bump_percent`] higher, and never a protected one.
//! - Txs referenced by a received proposal can be protected (from eviction and replacement):
//!   the proposal is re-executed with exactly them. Protections are counted per holder and
//!   released by dropping a [`ProtectionGuard`] ([`Protections`]).
//! - Mined txs are removed when a block is applied; pruned blocks' txs are re-inserted.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet},
};

use tandem_proto::{Address, B256, PACKED_TX_LENGTH, RecoveredTx};

use crate::{
    account::Account,
    exec::{TxError, max_cost, validate_stateful},
};

/// Pool limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most txs held.
    pub max_txs: usize,
    /// Most bytes held (packed tx size).
    pub max_bytes: usize,
    /// Fee increase a replacement needs, in percent.
    pub replacement_bump_percent: u32,
    /// Most txs held per sender.
    pub max_txs_per_sender: usize,
    /// Most nonces that may be missing between a sender's account nonce and one of its txs.
    pub max_nonce_gap: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 50_000,
            max_bytes: 50_000 * PACKED_TX_LENGTH,
            replacement_bump_percent: 10,
            max_txs_per_sender: 64,
            max_nonce_gap: 16,
        }
    }
}

/// Why a tx was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// It fails validation against its sender's account.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// A tx with the same sender and nonce pays as much or nearly as much.
    #[error("replacement fee {offered} is below the required {required}")]
    ReplacementUnderpriced {
        /// Fee needed.
        required: u128,
        /// Fee offered.
        offered: u128,
    },
    /// The tx it would replace is protected (a proposal being validated uses it).
    #[error("the tx with this nonce is protected and cannot be replaced")]
    ReplacingProtected,
    /// The sender already has the most txs a sender may hold.
    #[error("the sender already holds {0} txs")]
    SenderFull(usize),
    /// Too many nonces are missing below the tx.
    #[error("{gap} nonces are missing below the tx (at most {max})")]
    NonceGapTooLarge {
        /// Missing nonces.
        gap: u64,
        /// The limit.
        max: u64,
    },
    /// The sender cannot pay for all its pending txs together.
    #[error("balance {balance} cannot cover the sender's pending txs ({needed})")]
    PendingExceedBalance {
        /// Sender balance.
        balance: u128,
        /// Worst-case cost of its pending txs with this one.
        needed: u128,
    },
    /// The pool is full of txs paying at least as much.
    #[error("pool is full and the tx pays less than every tx in it")]
    PoolFull,
}

/// What happened to an added tx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// New in the pool.
    Added,
    /// Already in the pool (ignored).
    AlreadyKnown,
    /// Replaced the tx with this hash.
    Replaced(B256),
}

/// Why a tx is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// A new tx (gossip, RPC): every limit applies.
    New,
    /// A tx of a pruned block coming back: not counted against the per-sender cap.
    Returning,
}

/// Order of eviction: fee, then newest first, then hash.
type EvictionKey = (u128, Reverse<u64>, B256);

#[derive(Debug)]
struct Entry {
    tx: RecoveredTx,
    seq: u64,
    /// Amount + max fee: what it can cost its sender.
    cost: u128,
}

impl Entry {
    fn fee(&self) -> u128 {
        self.tx.tx().payload.max_fee_per_mana
    }

    fn nonce(&self) -> u64 {
        self.tx.tx().payload.nonce
    }

    fn eviction_key(&self) -> EvictionKey {
        (self.fee(), Reverse(self.seq), self.tx.hash())
    }
}

/// One sender's txs.
#[derive(Debug, Default)]
struct SenderTxs {
    nonces: BTreeMap<u64, B256>,
    /// Sum of the costs of its txs.
    cost: u128,
}

/// See the module docs.
#[derive(Debug)]
pub struct TxPool {
    config: PoolConfig,
    by_hash: HashMap<B256, Entry>,
    by_sender: HashMap<Address, SenderTxs>,
    /// Eviction candidates, each sender's highest nonce: cheapest first, newest first among
    /// equal fees.
    tails: BTreeSet<EvictionKey>,
    protected: Protections,
    next_seq: u64,
}

impl TxPool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        Self {
            config,
            by_hash: HashMap::new(),
            by_sender: HashMap::new(),
            tails: BTreeSet::new(),
            protected: Protections::default(),
            next_seq: 0,
        }
    }

    /// Number of txs.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.by_hash.len() * PACKED_TX_LENGTH
    }

    /// A tx by hash (sender already recovered).
    pub fn get(&self, hash: &B256) -> Option<&RecoveredTx> {
        self.by_hash.get(hash).map(|entry| &entry.tx)
    }

    /// Whether the pool holds `hash`.
    pub fn contains(&self, hash: &B256) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Number of txs of `sender`.
    pub fn sender_len(&self, sender: &Address) -> usize {
        self.by_sender.get(sender).map_or(0, |txs| txs.nonces.len())
    }

    /// Adds a tx whose signature was checked, validating it against its sender's `account`.
    pub fn add(&mut self, tx: RecoveredTx, account: &Account) -> Result<AddOutcome, PoolError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Ok(AddOutcome::AlreadyKnown);
        }
        validate_stateful(tx.tx(), account)?;
        let cost = max_cost(tx.tx()).ok_or(TxError::BalanceOverflow)?;
        let sender = tx.sender();
        let nonce = tx.tx().payload.nonce;
        let held = self.by_sender.get(&sender);
        let Some(existing) = held.and_then(|txs| txs.nonces.get(&nonce)).copied() else {
            return self.admit_new(tx, account, cost, Admission::New);
        };
        // A replacement: it pays enough more, and the sender can pay for it instead of the
        // tx it replaces.
        if self.protected.contains(&existing) {
            return Err(PoolError::ReplacingProtected);
        }
        let replaced = &self.by_hash[&existing];
        let old_fee = replaced.fee();
        let bump = old_fee.saturating_mul(u128::from(self.config.replacement_bump_percent)) / 100;
        let required = old_fee.saturating_add(bump.max(1));
        let fee = tx.tx().payload.max_fee_per_mana;
        if fee < required {
            return Err(PoolError::ReplacementUnderpriced {
                required,
                offered: fee,
            });
        }
        let needed = held
            .map_or(0, |txs| txs.cost)
            .saturating_sub(replaced.cost)
            .saturating_add(cost);
        if needed > account.balance {
            return Err(PoolError::PendingExceedBalance {
                balance: account.balance,
                needed,
            });
        }
        self.remove(&existing);
        self.insert_within_limits(tx, cost)?;
        Ok(AddOutcome::Replaced(existing))
    }

    /// Adds a tx with a nonce the sender does not hold yet (see the module docs).
    fn admit_new(
        &mut self,
        tx: RecoveredTx,
        account: &Account,
        cost: u128,
        admission: Admission,
    ) -> Result<AddOutcome, PoolError> {
        let sender = tx.sender();
        let nonce = tx.tx().payload.nonce;
        let empty = SenderTxs::default();
        let held = self.by_sender.get(&sender).unwrap_or(&empty);
        // The sender's highest nonces above this one, highest first: evicted (in that order)
        // while a sender limit refuses it.
        let mut above = held.nonces.range(nonce + 1..).rev().map(|(_, hash)| *hash);
        let mut evicted: Vec<B256> = Vec::new();
        let mut count = held.nonces.len();
        let mut pending_cost = held.cost;
        loop {
            let full = admission == Admission::New && count >= self.config.max_txs_per_sender;
            let needed = pending_cost.saturating_add(cost);
            let unaffordable = needed > account.balance;
            if !full && !unaffordable {
                break;
            }
            let victim = above.next().filter(|hash| !self.protected.contains(hash));
            let Some(victim) = victim else {
                return Err(if full {
                    PoolError::SenderFull(count)
                } else {
                    PoolError::PendingExceedBalance {
                        balance: account.balance,
                        needed,
                    }
                });
            };
            count -= 1;
            pending_cost = pending_cost.saturating_sub(self.by_hash[&victim].cost);
            evicted.push(victim);
        }
        // Nonces present below it do not count as missing (evictions only take higher ones).
        let present = held.nonces.range(account.nonce..nonce).count() as u64;
        let gap = nonce - account.nonce - present;
        if gap > self.config.max_nonce_gap {
            return Err(PoolError::NonceGapTooLarge {
                gap,
                max: self.config.max_nonce_gap,
            });
        }
        for victim in &evicted {
            self.remove(victim);
            metrics::counter!("pool_evicted_total", "reason" => "lower_nonce").increment(1);
        }
        self.insert_within_limits(tx, cost)?;
        Ok(AddOutcome::Added)
    }

    /// Inserts, then evicts the cheapest tails while the pool is over its limits; `PoolFull`
    /// if that took the new tx itself.
    fn insert_within_limits(&mut self, tx: RecoveredTx, cost: u128) -> Result<(), PoolError> {
        let hash = tx.hash();
        self.insert(tx, cost);
        while self.by_hash.len() > self.config.max_txs || self.bytes() > self.config.max_bytes {
            let Some(victim) = self.cheapest_evictable() else {
                break;
            };
            self.remove(&victim);
            metrics::counter!("pool_evicted_total", "reason" => "pool_full").increment(1);
            if victim == hash {
                metrics::gauge!("pool_txs").set(self.by_hash.len() as f64);
                return Err(PoolError::PoolFull);
            }
        }
        metrics::gauge!("pool_txs").set(self.by_hash.len() as f64);
        Ok(())
    }

    fn insert(&mut self, tx: RecoveredTx, cost: u128) {
        let hash = tx.hash();
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry { tx, seq, cost };
        let sender = entry.tx.sender();
        let nonce = entry.nonce();
        let previous_tail = self.tail_of(&sender);
        let txs = self.by_sender.entry(sender).or_default();
        txs.nonces.insert(nonce, hash);
        txs.cost = txs.cost.saturating_add(cost);
        let key = entry.eviction_key();
        self.by_hash.insert(hash, entry);
        if previous_tail.is_none_or(|(tail_nonce, _)| nonce > tail_nonce) {
            if let Some((_, tail_key)) = previous_tail {
                self.tails.remove(&tail_key);
            }
            self.tails.insert(key);
        }
    }

    /// A sender's highest nonce and its eviction key.
    fn tail_of(&self, sender: &Address) -> Option<(u64, EvictionKey)> {
        let (nonce, hash) = self.by_sender.get(sender)?.nonces.last_key_value()?;
        Some((*nonce, self.by_hash[hash].eviction_key()))
    }

    fn cheapest_evictable(&self) -> Option<B256> {
        self.tails
            .iter()
            .map(|(_, _, hash)| *hash)
            .find(|hash| !self.protected.contains(hash))
    }

    /// Removes a tx; returns it if it was there.
    pub fn remove(&mut self, hash: &B256) -> Option<RecoveredTx> {
        let entry = self.by_hash.remove(hash)?;
        let sender = entry.tx.sender();
        let was_tail = self.tails.remove(&entry.eviction_key());
        if let Some(txs) = self.by_sender.get_mut(&sender) {
            txs.nonces.remove(&entry.nonce());
            txs.cost = txs.cost.saturating_sub(entry.cost);
            if txs.nonces.is_empty() {
                self.by_sender.remove(&sender);
            } else if was_tail && let Some((_, key)) = self.tail_of(&sender) {
                self.tails.insert(key);
            }
        }
        Some(entry.tx)
    }

    /// The pool's protection table: guards taken from it protect txs (pooled now or later)
    /// from eviction and replacement until dropped; a clone can be kept and used without the
    /// pool.
    pub fn protections(&self) -> &Protections {
        &self.protected
    }

    /// Whether `hash` is protected.
    pub fn is_protected(&self, hash: &B256) -> bool {
        self.protected.contains(hash)
    }

    /// After a block is applied: drops its txs and every tx whose nonce is now used.
    /// `nonce_of` gives the senders' nonces after the block.
    pub fn on_block_applied<'a>(
        &mut self,
        mined: impl IntoIterator<Item = &'a RecoveredTx>,
        nonce_of: impl Fn(&Address) -> u64,
    ) {
        let mut senders = HashSet::new();
        for tx in mined {
            self.remove(&tx.hash());
            senders.insert(tx.sender());
        }
        for sender in senders {
            let nonce = nonce_of(&sender);
            let stale: Vec<B256> = self
                .by_sender
                .get(&sender)
                .map(|txs| txs.nonces.range(..nonce).map(|(_, hash)| *hash).collect())
                .unwrap_or_default();
            for hash in stale {
                self.remove(&hash);
            }
        }
        metrics::gauge!("pool_txs").set(self.by_hash.len() as f64);
    }

    /// After blocks are pruned: puts their txs back (in block order), validated against the
    /// rolled-back state. They are admitted past the per-sender count (they were in a block:
    /// dropping them would lose them on every node at once) and evict the sender's higher
    /// nonces when its balance cannot cover all; every other check applies. Returns how many
    /// were re-inserted.
    pub fn reinsert(
        &mut self,
        txs: impl IntoIterator<Item = RecoveredTx>,
        account_of: impl Fn(&Address) -> Account,
    ) -> usize {
        txs.into_iter()
            .filter(|tx| self.readmit(tx.clone(), &account_of(&tx.sender())))
            .count()
    }

    fn readmit(&mut self, tx: RecoveredTx, account: &Account) -> bool {
        let taken = self
            .by_sender
            .get(&tx.sender())
            .is_some_and(|txs| txs.nonces.contains_key(&tx.tx().payload.nonce));
        // A tx with its nonce arrived meanwhile: that one keeps its place.
        if taken || validate_stateful(tx.tx(), account).is_err() {
            return false;
        }
        let Some(cost) = max_cost(tx.tx()) else {
            return false;
        };
        self.admit_new(tx, account, cost, Admission::Returning)
            .is_ok()
    }

    /// Txs ready to execute, best first. `nonce_of` gives each sender's current nonce (on the
    /// fork being built on).
    pub fn best(&self, nonce_of: impl Fn(&Address) -> u64) -> BestTxs<'_> {
        let mut heap = BinaryHeap::new();
        for (sender, txs) in &self.by_sender {
            let nonce = nonce_of(sender);
            if let Some(hash) = txs.nonces.get(&nonce) {
                let entry = &self.by_hash[hash];
                heap.push((entry.fee(), Reverse(entry.seq), *hash));
            }
        }
        BestTxs {
            pool: self,
            heap,
            skipped: HashSet::new(),
        }
    }
}

mod best;
mod protect;
#[cfg(test)]
mod tests;

pub use best::BestTxs;
pub use protect::{ProtectionGuard, Protections};
