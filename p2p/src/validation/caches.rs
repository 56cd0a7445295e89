//! Caches that spare gossip validation repeated work: recovered proposer signatures and txs
//! seen on gossip.

use std::collections::{HashMap, VecDeque};

use tandem_proto::{Address, B256, Signature, Tx};

/// Proposer signatures recovered recently, keyed by (payload hash, signature): every
/// attestation to a checkpoint repeats its proposer's signature, so without this cache each
/// attestation would cost two recoveries instead of one.
#[derive(Debug, Default)]
pub(super) struct ProposerCache {
    recovered: HashMap<(B256, Signature), Address>,
}

/// Entries kept before the cache starts over (a few slots' worth of checkpoints).
const PROPOSER_CACHE_CAPACITY: usize = 256;

impl ProposerCache {
    pub(super) fn get(&self, key: &(B256, Signature)) -> Option<Address> {
        self.recovered.get(key).copied()
    }

    pub(super) fn insert(&mut self, key: (B256, Signature), signer: Address) {
        if self.recovered.len() >= PROPOSER_CACHE_CAPACITY {
            self.recovered.clear();
        }
        self.recovered.insert(key, signer);
    }
}

/// Txs that passed gossip validation recently, by hash. A proposal mostly carries txs that were
/// gossiped before; comparing against the known tx (141 bytes) replaces re-hashing it, which is
/// most of the cost of validating a large proposal.
#[derive(Debug, Default)]
pub(super) struct KnownTxs {
    by_hash: HashMap<B256, Tx>,
    order: VecDeque<B256>,
}

/// Known txs kept (oldest forgotten first): ~12 MB.
pub const KNOWN_TXS_CAPACITY: usize = 65_536;

impl KnownTxs {
    pub(super) fn insert(&mut self, hash: B256, tx: &Tx) {
        if self.by_hash.insert(hash, tx.clone()).is_none() {
            self.order.push_back(hash);
            if self.order.len() > KNOWN_TXS_CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_hash.remove(&oldest);
            }
        }
    }

    pub(super) fn matches(&self, hash: &B256, tx: &Tx) -> bool {
        self.by_hash.get(hash) == Some(tx)
    }
}
